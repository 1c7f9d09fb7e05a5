"""Motif syntax: the effect of a pair of motifs A and B as a function of their spacing and
orientations, and their interaction effect(A+B) - effect(A) - effect(B).

Glossary: N backgrounds, L length, S spacings, t tasks. A is on the left at a fixed start
(the arrangement of the widest spacing centred in the sequence) and B starts `spacing` bp
after A's end. The four orientations ++, +-, -+, -- give A's strand then B's; with A on the
left they cover both orders up to reverse complement (B then A on the forward strand is A and
B both on the reverse strand, "--"). The pairs are placed by `tangermeme.space.space`; B alone
is the same call with A's bases left as background (N), A alone `tangermeme.ersatz.substitute`
at A's start, so every term of the interaction has its motifs at the same positions. All
effects are paired differences per background with Student-t 95 % intervals; so is each
arrangement's difference from its task's peak (`vs_peak_low`, `vs_peak_high`), which tells the
arrangements the backgrounds cannot rank below the peak (a broad peak spans several spacings).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..errors import InputError
from .adapter import TangermemeModel, mean_interval, predict_logits, to_ncl
from .marginalize import task_names
from .sources import Motif

__all__ = ["ORIENTATIONS", "SPACING_COLUMNS", "spacing_sweep", "preferred", "tied_phrase",
           "focus_task"]

ORIENTATIONS = ("++", "+-", "-+", "--")
SPACING_COLUMNS = ["orientation", "spacing", "task", "effect", "effect_low", "effect_high",
                   "effect_a", "effect_b", "interaction", "ci_low", "ci_high", "vs_peak_low",
                   "vs_peak_high", "n"]


def _diff(result) -> np.ndarray:
    """y_afters - y_before (N, S, t) of a tangermeme SpaceResult, in float64."""
    return (result.y_afters.double() - result.y_before.double()[:, None]).numpy()


def _oriented(motif: Motif, strand: str) -> str:
    return motif.sequence if strand == "+" else motif.reverse_complement().sequence


def spacing_sweep(model, a: Motif, b: Motif, background, spacings=range(31),
                  batch_size: int = 128, device=None) -> pd.DataFrame:
    """A and B inserted into every background (N, L, 4) at each spacing and orientation: one
    row per orientation, spacing and task (SPACING_COLUMNS) with the pair's mean logit change
    (`effect`) and its interval, A's and B's alone at the same positions, and the interaction
    term with its interval (`ci_low`, `ci_high`)."""
    from tangermeme.ersatz import substitute
    from tangermeme.space import space

    spacings = [int(s) for s in spacings]
    if not spacings or min(spacings) < 0:
        raise InputError("spacing: spacings must be a non-empty list of values >= 0")
    X = to_ncl(background)
    length = X.shape[-1]
    total = a.width + max(spacings) + b.width
    if total > length:
        raise InputError(f"spacing: {a.name} ({a.width} bp), {max(spacings)} bp and {b.name} "
                         f"({b.width} bp) do not fit in {length}-bp sequences; lower "
                         "--max-spacing")
    start = (length - total) // 2
    wrapped = TangermemeModel(model)
    grid = torch.tensor(spacings, dtype=torch.int32)[:, None]  # (S, 1)
    options = {"start": start, "batch_size": batch_size, "device": device}
    before = predict_logits(wrapped, X, batch_size, device)  # (N, t)
    alone_a = {o: predict_logits(wrapped, substitute(X, _oriented(a, o), start=start),
                                 batch_size, device) - before for o in "+-"}  # (N, t)
    alone_b = {}
    for o in "+-":  # B alone: A's positions kept as background
        result = space(wrapped, X, ["N" * a.width, _oriented(b, o)], grid, **options)
        alone_b[o] = _diff(result)  # (N, S, t)
    names = task_names(model) or [f"task{k}" for k in range(before.shape[1])]
    pairs = {}
    for oa, ob in ORIENTATIONS:
        result = space(wrapped, X, [_oriented(a, oa), _oriented(b, ob)], grid, **options)
        pairs[oa + ob] = _diff(result)  # (N, S, t)
    stacked = np.stack([pairs[o] for o in ORIENTATIONS], axis=1)  # (N, 4, S, t)
    peak = stacked.mean(axis=0).reshape(-1, len(names)).argmax(axis=0)  # (t,) flat (o, s)
    at_peak = stacked.reshape(len(X), -1, len(names))[:, peak, np.arange(len(names))]  # (N, t)
    rows = []
    for orientation in ORIENTATIONS:
        oa, ob = orientation
        pair = pairs[orientation]
        effect, e_low, e_high = mean_interval(pair)
        inter, i_low, i_high = mean_interval(pair - alone_a[oa][:, None] - alone_b[ob])
        _, p_low, p_high = mean_interval(pair - at_peak[:, None])
        mean_a, mean_b = alone_a[oa].mean(axis=0), alone_b[ob].mean(axis=0)
        for j, spacing in enumerate(spacings):
            for k, task in enumerate(names):
                rows.append([orientation, spacing, task, effect[j, k], e_low[j, k],
                             e_high[j, k], mean_a[k], mean_b[j, k], inter[j, k], i_low[j, k],
                             i_high[j, k], p_low[j, k], p_high[j, k], len(pair)])
    return pd.DataFrame(rows, columns=SPACING_COLUMNS)


def preferred(table: pd.DataFrame, task: str, by: str = "effect") -> dict:
    """The arrangement (orientation, spacing) with the largest `by` (effect or interaction)
    for `task`, with its numbers; for the effect also `tied`, the other arrangements whose
    paired interval of (effect - peak effect) includes 0, as "++ 9" strings."""
    rows = table[table["task"] == task]
    if not len(rows):
        raise InputError(f"spacing: no rows for task {task!r}")
    best = rows.loc[rows[by].idxmax()]
    tied = rows[(rows["vs_peak_high"] >= 0) & (rows.index != best.name)] if by == "effect" \
        else rows.iloc[:0]
    return {"orientation": best["orientation"], "spacing": int(best["spacing"]),
            "tied": [f"{o} {s}" for o, s in zip(tied["orientation"], tied["spacing"])],
            "effect": float(best["effect"]),
            "effect_ci": [float(best["effect_low"]), float(best["effect_high"])],
            "effect_a": float(best["effect_a"]), "effect_b": float(best["effect_b"]),
            "interaction": float(best["interaction"]),
            "interaction_ci": [float(best["ci_low"]), float(best["ci_high"])]}


def tied_phrase(best: dict) -> str:
    """", tied with ++ 9 bp" for `preferred(...)`'s tied arrangements, "" when there are none
    (or when `best` comes from an analysis.json written before ties were reported)."""
    tied = best.get("tied") or []
    return f", tied with {', '.join(tied)} bp" if tied else ""


def focus_task(table: pd.DataFrame, a: Motif, b: Motif, tasks) -> str:
    """The task a pair is drawn for: a cooperative task named after both ("A+B" whose parts are
    the motifs' names or matches), else the task with the largest interaction."""
    for task in tasks:
        parts = task.split("+")
        if len(parts) == 2 and any(all(_names(m, p) for m, p in zip((a, b), order))
                                   for order in (parts, parts[::-1])):
            return task
    return str(table.loc[table["interaction"].idxmax(), "task"])


def _names(motif: Motif, part: str) -> bool:
    """Whether a task-name part (e.g. TAL1) names this motif (TAL1::TCF3, MA0091.2_TAL1::TCF3)."""
    part = part.lower()
    words = {motif.name.lower(), *motif.name.lower().split("::")}
    if "_" in motif.match:
        tf = motif.match.split("_", 1)[1].lower()
        words |= {tf, *tf.split("::")}
    return part in words
