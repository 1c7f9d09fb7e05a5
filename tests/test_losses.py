"""Loss terms and the task weighting of fine-tuning (caduceus_lrp/losses.py)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from caduceus_lrp.training.losses import EMA_DECAY, TaskWeights, loss_functions


def test_loss_terms_per_task_and_per_sequence():
    logits = torch.tensor([[2.0, -1.0, 0.5], [-0.5, 0.0, 3.0]])
    y = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    bce, probs = loss_functions("bce", [1.0, 3.0, 1.0], "cpu")
    p = torch.sigmoid(logits)
    by_hand = -(torch.tensor([1.0, 3.0, 1.0]) * y * p.log() + (1 - y) * (1 - p).log())
    assert torch.allclose(bce(logits, y), by_hand) and torch.equal(probs(logits), p)
    ce, probs = loss_functions("ce", None, "cpu")
    assert ce(logits, y).shape == (2, 1)
    assert torch.allclose(ce(logits, y)[:, 0], F.cross_entropy(logits, torch.tensor([0, 2]),
                                                               reduction="none"))
    assert torch.allclose(probs(logits).sum(1), torch.ones(2))


def test_task_weights_follow_the_running_loss():
    """Weights are the EMA of each task's batch-mean loss to the power `focus`, mean 1."""
    rng = np.random.default_rng(0)
    batches = [torch.tensor(rng.random((8, 3)) * [0.1, 1.0, 0.5], dtype=torch.float32)
               for _ in range(5)]
    weights = TaskWeights(focus=2.0)
    running = None
    for b in batches:
        got = weights(b, global_batch=8)
        mean = b.numpy().astype(np.float64).mean(0)
        running = mean if running is None else EMA_DECAY * running + (1 - EMA_DECAY) * mean
        expect = running ** 2 / (running ** 2).mean()
        np.testing.assert_allclose(got.numpy(), expect, rtol=1e-5)
    assert got.mean().item() == pytest.approx(1.0) and got.argmax().item() == 1  # hardest task
    np.testing.assert_allclose(weights.current(), got.numpy(), rtol=1e-6)


def test_task_weights_focus_zero_single_term_and_resume():
    b = torch.tensor([[0.1, 0.9], [0.3, 0.7]])
    equal = TaskWeights(focus=0.0)
    assert torch.equal(equal(b, 2), torch.ones(2)) and equal.state() is None
    assert torch.equal(TaskWeights(focus=2.0)(b[:, :1], 2), torch.ones(1))  # ce: one term
    whole = TaskWeights(focus=1.0)
    whole(b, 2)
    resumed = TaskWeights(focus=1.0, state=whole.state())
    assert torch.equal(whole(b * 2, 2), resumed(b * 2, 2))
