"""Evaluation of a model under training: predicted probabilities, auROC / auPRC per task, and
whether a macro auROC can be told from chance.

Glossary: N sequences, b batch, S strands, t tasks, P permutations.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, roc_auc_score

from .runtime import gather_rows, rank_world

__all__ = ["predict", "compute_metrics", "chance_p_value", "CHANCE_P"]

CHANCE_P = 0.05  # a macro auROC whose permutation p-value is above this is at chance
_PERMUTATION_BLOCK = 2 ** 22  # label entries (shufflings x N x t) held at once


@torch.no_grad()
def predict(split_model, features, index: torch.Tensor, batch_size: int, probs_fn,
            autocast) -> np.ndarray:
    """Probabilities (len(index), t) of `split_model.top` on `features(rows)` (b, S, l, c), every
    strand's logits averaged; under DDP the ranks share the rows and gather them."""
    rank, world = rank_world()
    mine = index[rank::world]
    split_model.eval()
    out = []
    for start in range(0, len(mine), batch_size):
        f = features(mine[start:start + batch_size])                    # (b, S, l, c)
        with autocast:
            logits = torch.stack([split_model.top(f[:, s]).float() for s in range(f.shape[1])])
        out.append(probs_fn(logits.mean(0)).cpu().numpy())
    rows = np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)
    return gather_rows(rows, len(index))


def compute_metrics(labels: np.ndarray, probs: np.ndarray, task_names, split: str) -> dict:
    """auROC and auPRC per task and their macro means: keys `{split}.auroc.{task}`,
    `{split}.auprc.{task}`, `{split}.macro_auroc`, `{split}.macro_auprc`. A task with one
    class only in this split gets None and is left out of the means."""
    out = {}
    for name, metric in (("auroc", roc_auc_score), ("auprc", average_precision_score)):
        values = []
        for j, task in enumerate(task_names):
            y = labels[:, j] > 0.5
            value = float(metric(y, probs[:, j])) if 0 < y.sum() < len(y) else None
            out[f"{split}.{name}.{task}"] = value
            values.append(value)
        known = [v for v in values if v is not None]
        out[f"{split}.macro_{name}"] = float(np.mean(known)) if known else None
    return out


def chance_p_value(labels: np.ndarray, probs: np.ndarray, permutations: int = 1000,
                   seed: int = 0) -> float | None:
    """Permutation p-value of the macro auROC of probs (N, t) against labels (N, t): the share of
    P shufflings of the sequences' label rows (tasks shuffled together, so their correlations
    stay) whose macro auROC reaches the observed one, as (1 + count) / (1 + P). Tasks with one
    class only are left out, as in `compute_metrics`; None when none is left.

    Each auROC is the Mann-Whitney statistic of the predictions' ranks (ties averaged), so the
    observed value equals `compute_metrics`' macro auROC."""
    y = labels > 0.5
    keep = (y.sum(0) > 0) & (y.sum(0) < len(y))
    if not keep.any():
        return None
    y, ranks = y[:, keep], rankdata(probs[:, keep], axis=0)               # (N, t')
    pos = y.sum(0)
    neg = len(y) - pos

    def macro(rows: np.ndarray) -> np.ndarray:                            # (P, N) -> (P,)
        rank_sums = np.einsum("pnt,nt->pt", y[rows].astype(np.float64), ranks)
        return ((rank_sums - pos * (pos + 1) / 2) / (pos * neg)).mean(-1)

    observed = macro(np.arange(len(y))[None])[0]
    rng = np.random.default_rng(seed)
    block = max(1, _PERMUTATION_BLOCK // y.size)  # shufflings at a time, to bound the memory
    reached = 0
    for start in range(0, permutations, block):
        rows = np.stack([rng.permutation(len(y)) for _ in range(min(block, permutations - start))])
        reached += int(np.sum(macro(rows) >= observed - 1e-12))
    return (1 + reached) / (1 + permutations)
