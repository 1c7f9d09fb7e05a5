"""Training losses: one term per task, and how the tasks' terms are weighted.

Glossary: b sequences, t tasks.

Task weighting. The tasks of the EPI head share the trainable layers. A task whose motif is hard
to detect (short, low information, often matched by chance) can stay at the level a correlated
feature gives it while the easy tasks take the shared capacity: the embedded dataset's GATA1 task
did so in about half of the training seeds (PROGRESS.md). With a task focus gamma > 0 each
task's term is weighted by its running mean training loss raised to gamma, normalised to mean 1,
so the tasks the model still gets wrong take a larger share of every step; the weights are
constants of each step (no gradient flows through them). The running mean is an exponential moving average over global
batches (all ranks), decay `EMA_DECAY` (a horizon of about 50 steps), started at the first
batch's losses. The idea is that of dynamic task prioritisation (Guo et al., ECCV 2018), which
weighs tasks by a running measure of their difficulty with a focusing exponent; the measure here
is the loss itself. gamma = 0 weighs all tasks equally.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

__all__ = ["LOSSES", "EMA_DECAY", "loss_functions", "TaskWeights"]

LOSSES = ("bce", "ce")
EMA_DECAY = 0.98


def loss_functions(loss: str, pos_weight: list[float] | None, device):
    """(per-task loss of logits (b, t) and labels (b, t) -> (b, k), probabilities of logits).

    bce: binary cross-entropy per task, k = t (with `pos_weight` per task when given).
    ce: cross-entropy over the t classes, one term per sequence, k = 1."""
    if loss == "ce":
        return (lambda logits, y: F.cross_entropy(logits, y.argmax(1), reduction="none")[:, None],
                lambda logits: logits.softmax(-1))
    weight = None if pos_weight is None else torch.tensor(pos_weight, dtype=torch.float32,
                                                          device=device)
    return (lambda logits, y: F.binary_cross_entropy_with_logits(
        logits, y, pos_weight=weight, reduction="none"), torch.sigmoid)


class TaskWeights:
    """Weights (k,) of the per-task loss terms, updated once per training step: the running
    mean of each term over the global batches raised to `focus`, divided by its mean over terms
    (a single term, as for ce, always gets 1; focus 0: all ones, nothing tracked). `state`
    resumes the running means (from `state()` of an earlier run)."""

    def __init__(self, focus: float, state: list[float] | None = None):
        self.focus = focus
        self.running = None if state is None else torch.tensor(state, dtype=torch.float32)

    def __call__(self, per_task: torch.Tensor, global_batch: int) -> torch.Tensor:
        """per_task (b, k): this rank's loss terms (detached); global_batch: rows over all ranks."""
        if self.focus == 0:
            return torch.ones(per_task.shape[1], dtype=per_task.dtype, device=per_task.device)
        means = per_task.sum(0) / global_batch
        if dist.is_initialized():
            dist.all_reduce(means)
        if self.running is None:
            self.running = means
        else:
            self.running = EMA_DECAY * self.running.to(means.device) + (1 - EMA_DECAY) * means
        return self._weights()

    def state(self) -> list[float] | None:
        """The running means as plain floats (for the resume checkpoint), None before any step."""
        return None if self.running is None else self.running.tolist()

    def current(self) -> list[float] | None:
        """The weights the last step used, None before any step or with focus 0."""
        return None if self.running is None else self._weights().tolist()

    def _weights(self) -> torch.Tensor:
        weights = self.running ** self.focus
        return weights / weights.mean().clamp_min(torch.finfo(weights.dtype).tiny)
