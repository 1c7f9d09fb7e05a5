"""Figures of attributions: a base x position heatmap with a logo, relevance at sites against
background, the conservation scatter, and a 3-D double helix (PNG and interactive HTML).

Glossary: N sequences, l length; scores (l, 4) over A, C, G, T. The convention of `plotting`:
with `path` a figure is written and its path returned, without one it is returned.
"""
from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize

from .errors import InputError
from .io_utils import atomic_path
from .plotting import DIVERGING, draw_logo, figure, finish, symmetric_limit
from .sequence import BASES

__all__ = ["heatmap", "mark_sites", "plot_attribution", "plot_dist_attribution",
           "plot_conservation", "helix_coordinates", "plot_helix", "write_helix_html"]


def heatmap(ax, scores, start=0, label="score"):
    """Bases x positions image of scores (l, 4) on a symmetric diverging colour scale, with its
    colour bar labelled `label`."""
    limit = symmetric_limit(scores)
    image = ax.imshow(scores.T, aspect="auto", cmap=DIVERGING, vmin=-limit, vmax=limit,
                      interpolation="nearest",
                      extent=(start - 0.5, start + len(scores) - 0.5, 3.5, -0.5))
    ax.set_yticks(range(4), list(BASES))
    colorbar = ax.figure.colorbar(image, ax=ax, pad=0.01, fraction=0.03)
    colorbar.set_label(label, fontsize=8)
    return ax


def mark_sites(ax, sites, start=0, end=None):
    """Shade sites [(start, end, label)] (end exclusive) that overlap [start, end), labelled."""
    for s, e, label in sites:
        if end is not None and (e <= start or s >= end):
            continue
        ax.axvspan(max(s, start) - 0.5, (e if end is None else min(e, end)) - 0.5,
                   color="0.6", alpha=0.25, lw=0)
        ax.text((max(s, start) + (e if end is None else min(e, end))) / 2 - 0.5, 1.0, label,
                transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=7)


def plot_attribution(onehot, hypothetical, sites=(), title="", window=None, path=None):
    """Two tracks for one sequence: the hypothetical scores of all bases as a heatmap and a logo of
    the observed bases (onehot * hypothetical); `sites` shaded; `window` (start, end) zooms in.
    onehot, hypothetical: (l, 4)."""
    start, end = window if window is not None else (0, len(onehot))
    if not 0 <= start < end <= len(onehot):
        raise InputError(f"window: ({start}, {end}) is not inside a {len(onehot)}-bp sequence")
    hyp = hypothetical[start:end]
    fig = figure(max(6.0, 0.06 * (end - start) + 3), 4.4)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[1, 1.3])
    heatmap(top, hyp, start, label="hypothetical score")
    draw_logo(bottom, onehot[start:end] * hyp, start, ylabel="observed score")
    for ax in (top, bottom):
        mark_sites(ax, sites, start, end)
    top.set_title(title, fontsize=9, pad=14)
    bottom.set_xlabel("position (bp)")
    return finish(fig, path)


def plot_dist_attribution(per_method, title="relevance at planted motif sites and background",
                          path=None):
    """Box plots per method of |position relevance| at planted-site positions against background.
    per_method: {method: (site values, background values)}; values normalised per sequence by
    the caller (each sequence's maximum is 1)."""
    fig = figure(1.6 * len(per_method) + 2, 3.6)
    ax = fig.subplots()
    data, positions, colours = [], [], []
    for i, (site, background) in enumerate(per_method.values()):
        data += [background, site]
        positions += [3 * i, 3 * i + 1]
        colours += ["0.75", "#D62839"]
    boxes = ax.boxplot(data, positions=positions, widths=0.8, patch_artist=True, showfliers=False)
    for patch, colour in zip(boxes["boxes"], colours):
        patch.set_facecolor(colour)
    ax.set_xticks([3 * i + 0.5 for i in range(len(per_method))], list(per_method), rotation=20)
    ax.set_ylabel("|relevance| / per-sequence maximum")
    ax.legend([boxes["boxes"][0], boxes["boxes"][1]], ["background", "planted site"], fontsize=8)
    ax.set_title(title, fontsize=9)
    return finish(fig, path)


def plot_conservation(logits, relevance_sums, bias_relevance, path=None):
    """Scatter of sum(relevance) + bias relevance (and sum(relevance) alone) against the logit,
    with the identity line: LRP's conservation, all arrays (N,)."""
    fig = figure(4.4, 4.2)
    ax = fig.subplots()
    ax.scatter(logits, relevance_sums + bias_relevance, s=8, label="Σ R + R_bias", zorder=3)
    ax.scatter(logits, relevance_sums, s=8, alpha=0.6, label="Σ R (inputs only)")
    low, high = float(np.min(logits)), float(np.max(logits))
    ax.plot([low, high], [low, high], color="0.3", lw=0.8, label="identity")
    ax.set_xlabel("target logit")
    ax.set_ylabel("total relevance (logit units)")
    ax.set_title("LRP conservation: relevance sums to the logit", fontsize=9)
    ax.legend(fontsize=8)
    return finish(fig, path)


def helix_coordinates(length, bp_per_turn=10.5, rise=0.34, radius=1.0, groove=2.4):
    """B-DNA backbone points of both strands (nm): two arrays (length, 3); strand 2 is offset by
    `groove` radians (minor groove) around the axis z."""
    angle = 2 * np.pi * np.arange(length) / bp_per_turn
    z = rise * np.arange(length)

    def strand(phase):
        return np.stack([radius * np.cos(angle + phase), radius * np.sin(angle + phase), z], axis=1)

    return strand(0.0), strand(groove)


def plot_helix(sequence, relevance, title="", path=None):
    """A double helix whose base pairs (rungs) are coloured by relevance (l,), PNG (matplotlib)."""
    s1, s2 = helix_coordinates(len(sequence))
    relevance = np.asarray(relevance)
    limit = symmetric_limit(relevance)
    colours = matplotlib.colormaps[DIVERGING]((relevance / limit + 1) / 2)
    fig = figure(4, 8)
    ax = fig.add_subplot(projection="3d")
    for strand in (s1, s2):
        ax.plot(*strand.T, color="0.4", lw=1.5)
    for i, base in enumerate(sequence):
        ax.plot(*np.stack([s1[i], s2[i]]).T, color=colours[i], lw=3)
        if len(sequence) <= 60:
            ax.text(*s1[i], base, fontsize=6)
    ax.set_box_aspect((1, 1, max(1.0, 0.34 * len(sequence) / 2)))
    ax.set_axis_off()
    scale = ScalarMappable(Normalize(-limit, limit), cmap=DIVERGING)
    fig.colorbar(scale, ax=ax, shrink=0.4, label="relevance")
    ax.set_title(title, fontsize=9)
    return finish(fig, path)


def write_helix_html(path, sequence, relevance, title=""):
    """The helix as an interactive plotly HTML file; None when plotly is not installed."""
    try:
        import plotly.graph_objects as go
    except ImportError:
        return None
    s1, s2 = helix_coordinates(len(sequence))
    relevance = np.asarray(relevance)
    traces = [go.Scatter3d(x=s[:, 0], y=s[:, 1], z=s[:, 2], mode="lines",
                           line={"color": "grey", "width": 5}, hoverinfo="skip") for s in (s1, s2)]
    limit = symmetric_limit(relevance)
    mid = (s1 + s2) / 2
    traces.append(go.Scatter3d(
        x=mid[:, 0], y=mid[:, 1], z=mid[:, 2], mode="markers",
        marker={"size": 6, "color": relevance, "colorscale": "RdBu", "reversescale": True,
                "cmin": -limit, "cmax": limit, "colorbar": {"title": "relevance"}},
        text=[f"{i}: {b} {r:+.3g}" for i, (b, r) in enumerate(zip(sequence, relevance))],
        hoverinfo="text"))
    fig = go.Figure(traces, layout={"title": title, "showlegend": False,
                                    "scene": {"aspectmode": "data"}})
    with atomic_path(path) as tmp:
        fig.write_html(str(tmp), include_plotlyjs=True)
    return path
