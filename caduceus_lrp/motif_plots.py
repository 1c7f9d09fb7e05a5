"""Sequence-logo figures of motifs: patterns beside their JASPAR matches, seqlets on attributions.

Shapes: w motif width, L window length. Matrices are (w, 4) in A, C, G, T order.
A figure given an output path is written atomically and closed; otherwise it is returned open
(for a notebook).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .io_utils import atomic_path
from .tomtom import top_matches

__all__ = ["draw_logo", "information_matrix", "tf_motifs_figure", "seqlet_positions_figure",
           "attribution_track", "example_track"]

BASES = list("ACGT")


def draw_logo(ax, matrix, first=0):
    """Logo of a (w, 4) matrix on `ax`, its positions numbered from `first`."""
    import logomaker

    df = pd.DataFrame(np.asarray(matrix, dtype=float), columns=BASES,
                      index=np.arange(first, first + len(matrix)))
    logomaker.Logo(df, ax=ax, color_scheme="classic")
    ax.spines[["top", "right"]].set_visible(False)
    return ax


def information_matrix(ppm):
    """A PPM (w, 4) scaled by each position's information content in bits (uniform
    background): the heights of a JASPAR-style logo."""
    p = np.clip(ppm, 1e-9, 1)
    return ppm * (2 + (p * np.log2(p)).sum(axis=1, keepdims=True))


def _finish(fig, out_png):
    if out_png is not None:
        with atomic_path(out_png) as tmp:
            fig.savefig(tmp, dpi=120, bbox_inches="tight")
        plt.close(fig)
    return fig


def tf_motifs_figure(patterns, tomtom, db_motifs, out_png=None, trim=0.3):
    """One row per pattern: its contribution logo (CWM trimmed where sum|CWM| >= trim x max)
    beside the logo of its best Tomtom match in `db_motifs` ({id: PPM (w, 4)}), aligned at
    Tomtom's offset and orientation, titled with the match's name and q-value."""
    if not patterns:
        raise ValueError("no patterns to plot")
    best = top_matches(tomtom)
    height = 1.9 * len(patterns)
    fig, axes = plt.subplots(len(patterns), 2, figsize=(11, height), squeeze=False,
                             gridspec_kw={"wspace": 0.15, "hspace": 0.7,
                                          "top": 1 - 0.7 / height})  # title room: 0.7 inch
    for (left, right), p in zip(axes, patterns, strict=True):
        cwm = p.cwm[p.trim(trim)]
        draw_logo(left, cwm)
        left.set_title(f"{p.name} ({p.n_seqlets} seqlets)", fontsize=9, loc="left")
        left.set_ylabel("contribution", fontsize=8)
        match = best.get(p.name)
        if match is None:
            right.set_axis_off()
            right.set_title("no Tomtom match", fontsize=9, loc="left")
            continue
        target = db_motifs[match["Target_ID"]]
        minus = match["Orientation"] == "-"
        first = -int(match["Optimal_offset"])  # target drawn in the query's coordinates
        draw_logo(right, information_matrix(target[::-1, ::-1] if minus else target), first)
        right.set_ylim(0, 2)
        right.set_ylabel("bits", fontsize=8)
        right.set_title(f"{match['Target_ID']}{' (rev. comp.)' if minus else ''}  "
                        f"q = {match['q-value']:.2g}", fontsize=9, loc="left")
        lo, hi = min(0, first) - 0.5, max(len(cwm), first + len(target)) - 0.5
        left.set_xlim(lo, hi)
        right.set_xlim(lo, hi)
    fig.suptitle("Discovered patterns (left) and their best JASPAR matches (right)", y=1.0)
    return _finish(fig, out_png)


def seqlet_positions_figure(patterns, window, out_png=None):
    """Histogram of seqlet centres per pattern, relative to the window centre."""
    fig, ax = plt.subplots(figsize=(8, 3))
    bins = np.linspace(-window / 2, window / 2, 41)
    for p in patterns:
        ax.hist((p.start + p.end) / 2 - window / 2, bins=bins, histtype="step",
                label=f"{p.name} ({p.n_seqlets})")
    ax.set_xlabel("seqlet centre relative to the window centre (bp)")
    ax.set_ylabel("seqlets")
    ax.legend(fontsize=7, frameon=False)
    return _finish(fig, out_png)


def attribution_track(ax, seq, contrib, seqlets=()):
    """Contribution logo of one window (base codes (L,) 0-3, 4 = N; contributions (L,)) with
    seqlets [(start, end, label)] shaded."""
    seq = np.asarray(seq)
    matrix = np.zeros((len(seq), 4))
    known = seq < 4
    matrix[np.flatnonzero(known), seq[known]] = np.asarray(contrib)[known]
    draw_logo(ax, matrix)
    top = np.abs(matrix).max()
    for start, end, label in seqlets:
        ax.axvspan(start - 0.5, end - 0.5, color="tab:orange", alpha=0.2, lw=0)
        ax.text((start + end) / 2, top, label, ha="center", va="bottom", fontsize=7)
    ax.set_xlabel("position in window (bp)")
    ax.set_ylabel("contribution")
    return ax


def example_track(results, row=None, out_png=None):
    """Attribution track of one window of a `MotifResults` (default: the window with the most
    seqlets) with the seqlets of every pattern in it."""
    rows = np.concatenate([p.example_idx for p in results.patterns])
    if row is None:
        row = int(np.bincount(rows).argmax())
    seqlets = [(s, e, p.name.replace("_patterns.pattern_", "."))
               for p in results.patterns
               for i, s, e in zip(p.example_idx, p.start, p.end, strict=True) if i == row]
    w = results.windows
    fig, ax = plt.subplots(figsize=(14, 2.6))
    attribution_track(ax, w["seq"][row], w["contrib"][row], seqlets)
    ax.set_title(f"task {w['task'][row]}, sequence {w['index'][row]}, bases "
                 f"{w['start'][row]}-{w['start'][row] + len(w['seq'][row])}", fontsize=9,
                 loc="left")
    return _finish(fig, out_png)
