"""Figures of motifs: patterns beside their JASPAR matches, seqlet positions, seqlets on a window's
attributions.

Shapes: w motif width, L window length. Matrices are (w, 4) in A, C, G, T order. The convention
of `plotting`: with `path` a figure is written and its path returned, without one it is returned
(a notebook shows it).
"""
from __future__ import annotations

import numpy as np

from ..plotting import draw_logo, figure, finish
from .tomtom import top_matches

__all__ = ["information_matrix", "draw_pattern_row", "tf_motifs_figure", "pattern_figure",
           "seqlet_positions_figure", "attribution_track", "example_track"]


def information_matrix(ppm):
    """A PPM (w, 4) scaled by each position's information content in bits (uniform
    background): the heights of a JASPAR-style logo."""
    p = np.clip(ppm, 1e-9, 1)
    return ppm * (2 + (p * np.log2(p)).sum(axis=1, keepdims=True))


def draw_pattern_row(left, right, pattern, match, db_motifs, trim=0.3):
    """One pattern on two axes: its contribution logo (CWM trimmed where sum|CWM| >= trim x
    max) on `left`, the information logo of its Tomtom `match` (a row of the Tomtom table, or
    None) from `db_motifs` ({id: PPM (w, 4)}) on `right`, aligned at Tomtom's offset and
    orientation, titled with the match's name and q-value."""
    cwm = pattern.cwm[pattern.trim(trim)]
    draw_logo(left, cwm)
    left.set_title(f"{pattern.name} ({pattern.n_seqlets} seqlets)", fontsize=9, loc="left")
    left.set_ylabel("contribution", fontsize=8)
    left.set_xlabel("position in pattern (bp)", fontsize=8)
    if match is None or match["Target_ID"] not in db_motifs:
        right.set_axis_off()
        right.set_title("no Tomtom match", fontsize=9, loc="left")
        return
    target = db_motifs[match["Target_ID"]]
    minus = match["Orientation"] == "-"
    first = -int(match["Optimal_offset"])  # target drawn in the query's coordinates
    draw_logo(right, information_matrix(target[::-1, ::-1] if minus else target), first)
    right.set_ylim(0, 2)
    right.set_ylabel("information (bits)", fontsize=8)
    right.set_xlabel("position in pattern (bp)", fontsize=8)
    right.set_title(f"{match['Target_ID']}{' (rev. comp.)' if minus else ''}  "
                    f"q = {match['q-value']:.2g}", fontsize=9, loc="left")
    lo, hi = min(0, first) - 0.5, max(len(cwm), first + len(target)) - 0.5
    left.set_xlim(lo, hi)
    right.set_xlim(lo, hi)


def tf_motifs_figure(patterns, tomtom, db_motifs, trim=0.3, path=None):
    """One row per pattern (`draw_pattern_row`): its contribution logo beside the logo of its
    best Tomtom match in `db_motifs` ({id: PPM (w, 4)})."""
    if not patterns:
        raise ValueError("no patterns to plot")
    best = top_matches(tomtom)
    fig = figure(11, 1.9 * len(patterns) + 0.5)
    axes = fig.subplots(len(patterns), 2, squeeze=False)
    for (left, right), p in zip(axes, patterns, strict=True):
        draw_pattern_row(left, right, p, best.get(p.name), db_motifs, trim)
    fig.suptitle("Discovered patterns (contribution logos, left) and their best JASPAR matches "
                 "(information logos, right)")
    return finish(fig, path)


def pattern_figure(pattern, match, db_motifs, trim=0.3, path=None):
    """One pattern beside its best JASPAR match (`draw_pattern_row`; `match` a Tomtom row or
    None), a small figure for reports."""
    fig = figure(9, 2.1)
    left, right = fig.subplots(1, 2)
    draw_pattern_row(left, right, pattern, match, db_motifs, trim)
    return finish(fig, path)


def seqlet_positions_figure(patterns, window, path=None):
    """Histogram of seqlet centres per pattern, relative to the window centre."""
    fig = figure(8, 3)
    ax = fig.subplots()
    bins = np.linspace(-window / 2, window / 2, 41)
    for p in patterns:
        ax.hist((p.start + p.end) / 2 - window / 2, bins=bins, histtype="step",
                label=f"{p.name} ({p.n_seqlets})")
    ax.set_xlabel("seqlet centre relative to the window centre (bp)")
    ax.set_ylabel("seqlets")
    ax.set_title("where the seqlets of each pattern sit in the windows", fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    return finish(fig, path)


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


def example_track(results, row=None, path=None):
    """Attribution track of one window of a `MotifResults` (default: the window with the most
    seqlets) with the seqlets of every pattern in it."""
    rows = np.concatenate([p.example_idx for p in results.patterns])
    if row is None:
        row = int(np.bincount(rows).argmax())
    seqlets = [(s, e, p.name.replace("_patterns.pattern_", "."))
               for p in results.patterns
               for i, s, e in zip(p.example_idx, p.start, p.end, strict=True) if i == row]
    w = results.windows
    fig = figure(14, 2.8)
    ax = fig.subplots()
    attribution_track(ax, w["seq"][row], w["contrib"][row], seqlets)
    ax.set_title(f"task {w['task'][row]}, sequence {w['index'][row]}, bases "
                 f"{w['start'][row]}-{w['start'][row] + len(w['seq'][row])}", fontsize=9,
                 loc="left")
    return finish(fig, path)
