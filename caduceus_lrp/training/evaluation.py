"""Evaluation of a model under training: predicted probabilities and auROC / auPRC per task.

Glossary: N sequences, b batch, S strands, t tasks.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from .runtime import gather_rows, rank_world

__all__ = ["predict", "compute_metrics"]


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
