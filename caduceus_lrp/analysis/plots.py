"""Figures of the analyses: the motif x task marginalization heatmap, a pair's spacing sweep, and
the top variants.

The convention of `plotting`: each function takes its data and an optional `path`; with a path
it writes the figure and returns the path, without one it returns the figure. Tables are those
of `marginalize`, `spacing` and `variants`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..plotting import DIVERGING, draw_logo, figure, finish, symmetric_limit
from .marginalize import effect_matrix
from .spacing import ORIENTATIONS

__all__ = ["plot_marginalization", "plot_spacing", "plot_variants"]


def _label(table: pd.DataFrame, motif: str) -> str:
    """A motif's row label: its name, with its JASPAR match for a pattern."""
    row = table[table["motif"] == motif].iloc[0]
    match = str(row.get("match", "") or "")
    return f"{motif} ({match})" if row["source"] == "pattern" and match else motif


def plot_marginalization(table: pd.DataFrame, title: str = "Marginalization: mean logit "
                         "change when a motif is inserted", path=None):
    """Heatmap motif x task of the mean logit change (diverging, symmetric scale, colour bar),
    each cell annotated with its effect; cells whose 95 % interval includes 0 are hatched."""
    effect = effect_matrix(table)
    low, high = effect_matrix(table, "ci_low"), effect_matrix(table, "ci_high")
    m, t = effect.shape
    fig = figure(1.2 * t + 4.5, 0.42 * m + 1.8)
    ax = fig.subplots()
    limit = symmetric_limit(effect.to_numpy())
    image = ax.imshow(effect.to_numpy(), cmap=DIVERGING, vmin=-limit, vmax=limit, aspect="auto")
    for i in range(m):
        for j in range(t):
            value = effect.iat[i, j]
            ax.text(j, i, f"{value:+.2f}", ha="center", va="center", fontsize=7,
                    color="white" if abs(value) > 0.6 * limit else "black")
            if low.iat[i, j] <= 0 <= high.iat[i, j]:
                ax.add_patch(_hatch(j, i))
    ax.set_xticks(range(t), effect.columns, rotation=30, ha="right")
    ax.set_yticks(range(m), [_label(table, name) for name in effect.index], fontsize=8)
    ax.set_xlabel("task")
    ax.set_ylabel("inserted motif")
    n = int(table["n"].iloc[0]) if len(table) else 0
    ax.set_title(f"{title}\n({n} backgrounds; hatched: 95 % interval includes 0)", fontsize=10)
    fig.colorbar(image, ax=ax, label="mean logit change")
    return finish(fig, path)


def _hatch(x, y):
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, hatch="///", lw=0, color="0.4")


def plot_spacing(table: pd.DataFrame, a: str, b: str, task: str, path=None):
    """For one task: the pair's mean logit change against the spacing (bp between A's end and
    B's start) per orientation, with A and B alone summed as a dashed line, and the interaction
    term below; shaded bands are 95 % intervals."""
    rows = table[table["task"] == task]
    fig = figure(7.5, 6)
    top, bottom = fig.subplots(2, 1, sharex=True)
    colours = dict(zip(ORIENTATIONS, ("#D62839", "#255C99", "#109648", "#F7B32B")))
    for orientation in ORIENTATIONS:
        r = rows[rows["orientation"] == orientation].sort_values("spacing")
        if not len(r):
            continue
        x, c = r["spacing"].to_numpy(), colours[orientation]
        top.plot(x, r["effect"], color=c, lw=1.5, label=f"A{orientation[0]} B{orientation[1]}")
        top.fill_between(x, r["effect_low"], r["effect_high"], color=c, alpha=0.2, lw=0)
        top.plot(x, r["effect_a"] + r["effect_b"], color=c, lw=0.8, ls="--")
        bottom.plot(x, r["interaction"], color=c, lw=1.5)
        bottom.fill_between(x, r["ci_low"], r["ci_high"], color=c, alpha=0.2, lw=0)
    for ax in (top, bottom):
        ax.axhline(0, color="0.5", lw=0.6)
        ax.spines[["top", "right"]].set_visible(False)
    top.set_ylabel(f"mean logit change ({task})")
    top.set_title(f"{a} (A) then {b} (B): effect of the pair by spacing and strand\n"
                  "(dashed: A alone + B alone at the same positions)", fontsize=10)
    top.legend(fontsize=8, title="orientation", title_fontsize=8)
    bottom.set_ylabel("interaction\nA+B - A - B")
    bottom.set_xlabel("spacing: bp between the end of A and the start of B")
    return finish(fig, path)


def plot_variants(table: pd.DataFrame, tracks: dict | None = None, top: int = 5, path=None):
    """The `top` variants by largest |logit change|: a bar per task of the change, and, when
    attribution tracks were computed, the contribution logos of ref and alt around the variant
    (its position at 0) for the variant's most affected task."""
    wide = table.pivot_table(index=["id", "position", "ref", "alt"], columns="task",
                             values="delta", sort=False)
    tasks = list(dict.fromkeys(table["task"]))
    wide = wide[tasks]
    order = np.argsort(-np.abs(wide.to_numpy()).max(axis=1), kind="stable")[:top]
    keys = list(wide.index)
    with_tracks = tracks is not None and np.abs(tracks.get("ref", np.zeros(1))).sum() > 0
    columns = 3 if with_tracks else 1
    fig = figure(4 + 4.5 * (columns - 1), 1.9 * len(order) + 0.8)
    axes = fig.subplots(len(order), columns, squeeze=False)
    limit = symmetric_limit(wide.to_numpy()[order])
    for row, i in zip(axes, order):
        vid, pos, ref, alt = keys[i]
        values = wide.iloc[i].to_numpy()
        row[0].barh(range(len(tasks)), values, color=np.where(values < 0, "#255C99", "#D62839"))
        row[0].set_yticks(range(len(tasks)), tasks, fontsize=7)
        row[0].set_xlim(-limit * 1.05, limit * 1.05)
        row[0].axvline(0, color="0.5", lw=0.6)
        row[0].set_title(f"{vid} {pos} {ref}>{alt}", fontsize=8, loc="left")
        row[0].set_xlabel("logit change (alt - ref)", fontsize=7)
        if with_tracks:
            flank = tracks["ref"].shape[1] // 2
            task = tasks[int(tracks["task"][_variant_row(table, keys[i])])]
            for ax, key in zip(row[1:], ("ref", "alt")):
                draw_logo(ax, tracks[key][_variant_row(table, keys[i])], start=-flank,
                          ylabel="contribution")
                ax.axvline(0, color="0.3", lw=0.6, ls=":")
                ax.set_title(f"{key} ({ref if key == 'ref' else alt}), {task}", fontsize=8)
                ax.set_xlabel("bp from the variant", fontsize=7)
    fig.suptitle("Variant effects: the largest logit changes", fontsize=10)
    return finish(fig, path)


def _variant_row(table: pd.DataFrame, key) -> int:
    """The index of a variant (id, position, ref, alt) in the order of `variant_effects`."""
    variants = table.drop_duplicates(["id", "position", "ref", "alt"])
    keys = list(zip(variants["id"], variants["position"], variants["ref"], variants["alt"]))
    return keys.index(key)
