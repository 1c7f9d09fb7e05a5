"""Figures of attributions: a base x position heatmap with a logo, relevance at sites against
background, the conservation scatter, and a 3-D double helix (PNG and interactive HTML).

Glossary: N sequences, l length; scores (l, 4) over A, C, G, T. The convention of `plotting`:
with `path` a figure is written and its path returned, without one it is returned.
"""
from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize, to_hex
from matplotlib.ticker import MaxNLocator

from .errors import InputError
from .io_utils import atomic_path
from .plotting import BASE_COLOURS, DIVERGING, draw_logo, figure, finish, symmetric_limit
from .sequence import BASES

__all__ = ["heatmap", "mark_sites", "plot_attribution", "plot_dist_attribution",
           "plot_conservation", "helix_coordinates", "plot_helix", "helix_plotly",
           "write_helix_html"]


def heatmap(ax, scores, start=0, label="score"):
    """Bases x positions image of scores (l, 4) on a symmetric diverging colour scale, with its
    colour bar labelled `label`."""
    limit = symmetric_limit(scores)
    image = ax.imshow(scores.T, aspect="auto", cmap=DIVERGING, vmin=-limit, vmax=limit,
                      interpolation="nearest",
                      extent=(start - 0.5, start + len(scores) - 0.5, 3.5, -0.5))
    ax.set_yticks(range(4), list(BASES))
    ax.set_ylabel("base")
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
    top.set_title(title or "attribution of one sequence", fontsize=9, pad=14)
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
    ax.set_xlabel("attribution method")
    ax.set_ylabel("|relevance| / per-sequence maximum")
    ax.legend([boxes["boxes"][0], boxes["boxes"][1]], ["background", "planted site"], fontsize=8)
    ax.set_title(title, fontsize=9)
    return finish(fig, path)


def plot_conservation(logits, relevance_sums, kept_relevance, path=None):
    """Scatter of sum(relevance) + the relevance kept by biases and root points (and
    sum(relevance) alone) against the logit, with the identity line: LRP's conservation, all
    arrays (N,)."""
    fig = figure(4.4, 4.2)
    ax = fig.subplots()
    ax.scatter(logits, relevance_sums + kept_relevance, s=8, label="Σ R + R_bias + R_reference",
               zorder=3)
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


HELIX_INCH_PER_BP = 0.3  # width of a base pair in the helix figure at its readable pitch


def _helix_projection(length, start, samples=1):
    """Side view of B-DNA along a horizontal axis in bp units: (x, height, depth) arrays
    (length * samples, 3) per strand; height and depth are the radius scaled to bp (1 nm is
    1 / 0.34 bp), depth > 0 towards the viewer."""
    rise = 0.34
    s1, s2 = helix_coordinates(length * samples, bp_per_turn=10.5 * samples, rise=rise / samples)
    return [np.stack([start + s[:, 2] / rise, s[:, 0] / rise, s[:, 1] / rise], axis=1)
            for s in (s1, s2)]


def _backbone(ax, strand, lw=3.0):
    """A strand's backbone as segments shaded by depth: the front half darker, wider and drawn
    over the rungs (zorder 2), the back half lighter and under them."""
    points = strand[:, :2]
    segments = np.stack([points[:-1], points[1:]], axis=1)
    depth = (strand[:-1, 2] + strand[1:, 2]) / 2
    near = (depth / np.abs(strand[:, 2]).max() + 1) / 2  # 0 back .. 1 front
    grey = np.stack([0.72 - 0.5 * near] * 3 + [np.ones_like(near)], axis=1)
    for front, z in ((False, 1), (True, 3)):
        keep = (depth > 0) == front
        ax.add_collection(LineCollection(segments[keep], colors=grey[keep],
                                         linewidths=lw * (0.55 + 0.6 * near[keep]),
                                         capstyle="round", zorder=z))


def plot_helix(sequence, relevance, title="", path=None, *, start=0, sites=(),
               label="relevance"):
    """A B-DNA double helix of `sequence` (l bases, strand read 5'->3' left to right) seen from
    the side at its true pitch (10.5 bp per turn, 0.34 nm rise, 2 nm across), each base pair
    (rung) coloured by its relevance (l,) on a symmetric diverging scale labelled `label`; the
    sequence and its complement written above and below, `sites` [(start, end, label)] (end
    exclusive, sequence coordinates) shaded and named. `start`: coordinate of the first base."""
    sequence = str(sequence)
    relevance = np.asarray(relevance, dtype=float)
    n = len(sequence)
    if len(relevance) != n:
        raise InputError(f"helix: {n} bases but {len(relevance)} relevance values")
    limit = symmetric_limit(relevance)
    norm = Normalize(-limit, limit)
    cmap = matplotlib.colormaps[DIVERGING]
    width = float(np.clip(HELIX_INCH_PER_BP * n + 2.2, 7.0, 20.0))
    inch_per_bp = (width - 2.2) / max(n, 1)
    radius = 1.0 / 0.34
    top = radius + 2.8
    fig = figure(width, inch_per_bp * 2 * top + 1.6)
    ax = fig.subplots()
    fine = _helix_projection(n, start, samples=12)
    points = inch_per_bp * 72  # a base pair in points
    for strand in fine:
        _backbone(ax, strand, lw=max(1.0, 0.16 * points))
    s1, s2 = _helix_projection(n, start)
    half = np.maximum(np.abs(s1[:, 1] - s2[:, 1]) / 2, 0.3)  # a pair seen end-on stays visible
    mid = (s1[:, 1] + s2[:, 1]) / 2
    rungs = np.stack([np.stack([s1[:, 0], mid - half], 1), np.stack([s1[:, 0], mid + half], 1)], 1)
    ax.add_collection(LineCollection(rungs, colors=cmap(norm(relevance)),
                                     linewidths=max(1.0, 0.55 * points), zorder=2))
    size = min(13.0, 0.72 * points)
    if size >= 5:
        pair = dict(zip("ACGTN", "TGCAN"))
        for i, base in enumerate(sequence.upper()):
            for y, letter in ((radius + 1.4, base), (-radius - 1.4, pair.get(base, "N"))):
                ax.text(start + i, y, letter, ha="center", va="center", fontsize=size,
                        fontweight="bold", family="monospace",
                        color=BASE_COLOURS.get(letter, "0.4"))
        ends = ((radius + 1.4, ("5′", "3′")), (-radius - 1.4, ("3′", "5′")))
        for y, (left, right) in ends:
            ax.text(start - 1.2, y, left, ha="right", va="center", fontsize=0.8 * size)
            ax.text(start + n + 0.2, y, right, ha="left", va="center", fontsize=0.8 * size)
    mark_sites(ax, sites, start, start + n)
    ax.set_xlim(start - 2.2, start + n + 1.2)
    ax.set_ylim(-top, top)
    ax.set_aspect("equal")
    ax.set_yticks([])
    ax.spines[["left", "right", "top"]].set_visible(False)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("position in the sequence (bp); helix to scale: 10.5 bp per turn, 2 nm across")
    fig.colorbar(ScalarMappable(norm, cmap=cmap), ax=ax, shrink=0.9, pad=0.01, aspect=12,
                 label=label)
    ax.set_title(title or "double helix coloured by relevance", fontsize=10, pad=14)
    return finish(fig, path)


def _plotly_colorscale(stops=11):
    """The package's diverging colour map as a plotly colour scale."""
    cmap = matplotlib.colormaps[DIVERGING]
    return [[float(f), to_hex(cmap(f))] for f in np.linspace(0, 1, stops)]


def helix_plotly(sequence, relevance, title="", *, start=0, sites=(), label="relevance"):
    """The helix of `plot_helix` as an interactive plotly Figure (3-D, rotatable, seen from the
    side at first): backbones, rungs coloured by relevance on a symmetric scale with a labelled
    colour bar, the sequence and its complement written above and below, `sites` marked by a
    named bar above the helix, each base pair's relevance on hover. Needs plotly (ImportError
    without it)."""
    import plotly.graph_objects as go

    sequence = str(sequence).upper()
    relevance = np.asarray(relevance, dtype=float)
    n = len(sequence)
    limit = symmetric_limit(relevance)
    radius = 1.0 / 0.34
    pair = dict(zip("ACGTN", "TGCAN"))
    # plotly axes: x along the helix (bp), z up, y away from the viewer (depth)
    fine = _helix_projection(n, start, samples=12)
    traces = [go.Scatter3d(x=s[:, 0], y=-s[:, 2], z=s[:, 1], mode="lines", name=name,
                           line={"color": "#666666", "width": 7}, hoverinfo="skip")
              for s, name in zip(fine, ("strand 5′→3′", "complementary strand"))]
    s1, s2 = _helix_projection(n, start)
    gap = [None] * n

    def rows(a, b):
        return np.stack([a, b, gap], axis=1).ravel().tolist()

    rung_colour = np.repeat(relevance, 3)
    traces.append(go.Scatter3d(
        x=rows(s1[:, 0], s2[:, 0]), y=rows(-s1[:, 2], -s2[:, 2]), z=rows(s1[:, 1], s2[:, 1]),
        mode="lines", name="base pairs", hoverinfo="skip",
        line={"width": 14, "color": rung_colour, "colorscale": _plotly_colorscale(),
              "cmin": -limit, "cmax": limit, "showscale": True,
              "colorbar": {"title": {"text": label, "side": "right"}, "len": 0.8,
                           "thickness": 18}}))
    mid = (s1 + s2) / 2
    traces.append(go.Scatter3d(
        x=mid[:, 0], y=-mid[:, 2], z=mid[:, 1], mode="markers", name="relevance",
        marker={"size": 3, "color": relevance, "colorscale": _plotly_colorscale(),
                "cmin": -limit, "cmax": limit, "opacity": 0.9},
        hovertext=[f"bp {start + i}: {b}·{pair.get(b, 'N')}<br>{label} {r:+.3g}"
                   for i, (b, r) in enumerate(zip(sequence, relevance))], hoverinfo="text"))
    x = start + np.arange(n)
    for height, letters in ((radius + 2.2, sequence),
                            (-radius - 2.2, "".join(pair.get(b, "N") for b in sequence))):
        traces.append(go.Scatter3d(
            x=x, y=np.zeros(n), z=np.full(n, height), mode="text", text=list(letters),
            hoverinfo="skip", showlegend=False,
            textfont={"size": 15, "family": "monospace",
                      "color": [BASE_COLOURS.get(b, "#666666") for b in letters]}))
    for s, e, name in sites:
        s, e = max(s, start), min(e, start + n)
        if s >= e:
            continue
        traces.append(go.Scatter3d(
            x=[s - 0.5, e - 0.5], y=[0, 0], z=[radius + 3.6] * 2, mode="lines",
            line={"color": "rgba(90, 90, 90, 0.7)", "width": 12}, name=str(name),
            hoverinfo="name"))
        traces.append(go.Scatter3d(
            x=[(s + e) / 2 - 0.5], y=[0], z=[radius + 4.8], mode="text", text=[str(name)],
            textfont={"size": 14}, hoverinfo="skip", showlegend=False))
    span = n + 3
    axis_off = {"visible": False, "showgrid": False, "showbackground": False}
    layout = {
        "title": {"text": title or "double helix coloured by relevance", "x": 0.02},
        "showlegend": False, "height": 520, "margin": {"l": 0, "r": 0, "t": 40, "b": 0},
        "scene": {
            "xaxis": {"title": {"text": ""}, "ticksuffix": " bp", "tickangle": 0,
                      "range": [start - 2, start + n + 1], "showbackground": False,
                      "showgrid": False},
            "yaxis": axis_off | {"range": [-radius, radius]},
            "zaxis": axis_off | {"range": [-radius - 5.5, radius + 5.5]},
            "aspectmode": "manual",
            "aspectratio": {"x": 1.6 * span / (2 * radius + 11),
                            "y": 1.6 * 2 * radius / (2 * radius + 11), "z": 1.6},
            "camera": {"eye": {"x": 0, "y": -1.0, "z": 0.15}, "up": {"x": 0, "y": 0, "z": 1},
                       "projection": {"type": "orthographic"}}}}
    return go.Figure(traces, layout=layout)


def write_helix_html(path, sequence, relevance, title="", *, start=0, sites=(),
                     label="relevance"):
    """`helix_plotly` as a self-contained interactive HTML file (plotly.js inline, no network
    needed); returns the path, or None when plotly is not installed."""
    try:
        fig = helix_plotly(sequence, relevance, title, start=start, sites=sites, label=label)
    except ImportError:
        return None
    with atomic_path(path) as tmp:
        fig.write_html(str(tmp), include_plotlyjs=True, full_html=True)
    return path
