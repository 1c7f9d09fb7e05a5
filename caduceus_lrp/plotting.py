"""The plotting convention of every figure module: pyplot-free figures, one base palette, logos.

Every plotting function of the package takes its data and an optional `path`: with a path it
writes the figure atomically (PNG, or what the suffix says) and returns the path; without one it
returns the `matplotlib.figure.Figure` (a notebook shows it). Figures are made with
`matplotlib.figure.Figure`, never pyplot, so no GUI backend is involved and nothing stays open.
Matrices over bases are (w, 4) in A, C, G, T order (`sequence.BASES`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .io_utils import atomic_path
from .sequence import BASES

__all__ = ["BASE_COLOURS", "DIVERGING", "DPI", "figure", "finish", "draw_logo",
           "symmetric_limit"]

BASE_COLOURS = {"A": "#109648", "C": "#255C99", "G": "#F7B32B", "T": "#D62839"}
DIVERGING = "RdBu_r"  # negative blue, positive red; always with a symmetric colour scale
DPI = 150


def figure(width: float, height: float) -> Figure:
    """A new pyplot-free figure of this size (inches) with a constrained layout."""
    return Figure(figsize=(width, height), layout="constrained")


def finish(fig: Figure, path=None):
    """Write `fig` to `path` atomically and return the path; without a path return the figure."""
    if path is None:
        return fig
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI)
    return Path(path)


def draw_logo(ax, matrix, start: int = 0, ylabel: str | None = None):
    """A sequence logo (logomaker) of `matrix` (w, 4) on `ax`: letter heights are the signed
    values, positions numbered from `start`, the base palette of the package."""
    import logomaker
    import pandas as pd

    frame = pd.DataFrame(np.asarray(matrix, dtype=float), columns=list(BASES),
                         index=np.arange(start, start + len(matrix)))
    logomaker.Logo(frame, ax=ax, color_scheme=BASE_COLOURS, flip_below=False)
    ax.axhline(0, color="0.5", lw=0.5)
    ax.spines[["top", "right"]].set_visible(False)
    if ylabel:
        ax.set_ylabel(ylabel)
    return ax


def symmetric_limit(values) -> float:
    """max |values| (1 when all are zero): the half-range of a diverging colour scale."""
    limit = float(np.max(np.abs(values))) if np.size(values) else 0.0
    return limit or 1.0
