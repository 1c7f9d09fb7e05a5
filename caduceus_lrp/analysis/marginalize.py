"""Marginalization: a motif inserted at the centre of many background sequences, and each task's
mean logit change with its 95 % interval.

Glossary: N backgrounds, L length, w motif width, t tasks. The insertion is
`tangermeme.ersatz.substitute` at start (L - w) // 2 (so that, with backgrounds closed under
reverse complement and L - w even, a motif and its reverse complement give the same effects
through an RC-invariant model); predictions are `tangermeme.predict.predict` through the
adapter. The backgrounds' own logits are computed once for all motifs (tangermeme's
`marginalize` computes them again for every motif; the numbers are the same, bench/analysis.py
compares the two). Effects are paired differences after - before per background; the interval
is Student's t (`adapter.mean_interval`).
"""
from __future__ import annotations

import pandas as pd

from ..errors import InputError
from .adapter import TangermemeModel, mean_interval, predict_logits, to_ncl
from .sources import Motif

__all__ = ["MARGINALIZATION_COLUMNS", "insertion_start", "task_names", "marginalize",
           "effect_matrix"]

MARGINALIZATION_COLUMNS = ["motif", "source", "task", "effect", "ci_low", "ci_high", "n",
                           "consensus", "match"]


def insertion_start(length: int, width: int) -> int:
    """Start of a `width`-bp insertion centred in a `length`-bp sequence."""
    if width > length:
        raise InputError(f"motif of {width} bp does not fit in {length}-bp sequences")
    return (length - width) // 2


def task_names(model) -> list[str]:
    """The model's task names, or task0.. when it has none."""
    names = list(getattr(model, "task_names", []) or [])
    if names:
        return names
    return [f"task{k}" for k in range(int(getattr(model, "n_tasks", 0)))]


def marginalize(model, motifs: list[Motif], background, batch_size: int = 128,
                device=None) -> pd.DataFrame:
    """Each motif inserted at the centre of every background (N, L, 4): one row per motif and
    task with the mean logit change (`effect`), its 95 % interval and N (MARGINALIZATION_COLUMNS,
    in motif then task order)."""
    from tangermeme.ersatz import substitute

    if not motifs:
        raise InputError("marginalization: no motifs given")
    X = to_ncl(background)
    wrapped = TangermemeModel(model)
    before = predict_logits(wrapped, X, batch_size, device)  # (N, t)
    names = task_names(model) or [f"task{k}" for k in range(before.shape[1])]
    rows = []
    for motif in motifs:
        inserted = substitute(X, motif.sequence, start=insertion_start(X.shape[-1], motif.width))
        diffs = predict_logits(wrapped, inserted, batch_size, device) - before  # (N, t)
        mean, low, high = mean_interval(diffs)
        for k, task in enumerate(names):
            rows.append([motif.name, motif.source, task, mean[k], low[k], high[k], len(diffs),
                         motif.sequence, motif.match])
    return pd.DataFrame(rows, columns=MARGINALIZATION_COLUMNS)


def effect_matrix(table: pd.DataFrame, column: str = "effect") -> pd.DataFrame:
    """A marginalization table as motif x task (rows and columns in table order)."""
    frame = table.pivot(index="motif", columns="task", values=column)
    return frame.loc[list(dict.fromkeys(table["motif"])), list(dict.fromkeys(table["task"]))]
