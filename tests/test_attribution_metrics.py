"""Attributions judged against ground truth: site masks and per-sequence site AUROC against
sklearn, and MambaLRP's Delta A_F against its value computed by hand on a linear model."""
import numpy as np
import pytest
import torch
from helpers import onehot
from sklearn.metrics import roc_auc_score

from caduceus_lrp.attribution_metrics import faithfulness, site_auroc, site_mask


def test_site_mask_and_auroc_against_sklearn():
    sites = [[(2, 5, "a"), (8, 9, "b")], [], [(0, 10, "c")]]
    mask = site_mask(sites, 10)
    assert mask.tolist()[0] == [0, 0, 1, 1, 1, 0, 0, 0, 1, 0]
    assert not mask[1].any() and mask[2].all()
    scores = np.random.default_rng(0).normal(size=(3, 10))
    auroc = site_auroc(scores, mask)
    assert auroc[0] == pytest.approx(roc_auc_score(mask[0], scores[0]))
    assert np.isnan(auroc[1]) and np.isnan(auroc[2])  # no site; no background


class Linear(torch.nn.Module):
    """logits = sum over positions and bases of W * onehot: a base set to N adds nothing. The
    output is a plain tensor (b, t): any one-hot -> logits module can be judged."""

    task_names = ["t"]
    n_tasks = 1

    def __init__(self, weights):
        super().__init__()
        self.weights = torch.nn.Parameter(weights)          # (l, 4)

    def forward(self, onehot):
        return (onehot * self.weights).sum((1, 2))[:, None]


def test_faithfulness_equals_the_area_between_the_removal_curves_of_a_linear_model():
    length = 12
    weights = torch.randn(length, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    model = Linear(weights)
    x = onehot(b=3, l=length, seed=2)
    contribution = (x * weights).sum(-1).numpy()            # (3, l): each position's share
    got = faithfulness(model, x, contribution, steps=length)
    for i, c in enumerate(contribution):
        total = c.sum()
        morf = [total - np.sort(c)[::-1][:k].sum() for k in range(length + 1)]
        lerf = [total - np.sort(c)[:k].sum() for k in range(length + 1)]
        expected = np.trapezoid(np.subtract(lerf, morf), dx=1 / length)
        assert got[i] == pytest.approx(expected, rel=1e-10)
    assert (got > 0).all()
    assert (faithfulness(model, x, -contribution, steps=length) < 0).all()  # the wrong order
