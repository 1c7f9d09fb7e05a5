"""Figures of multi-task predictions: ROC curves and predicted-probability distributions per task.

Glossary: n sequences, t tasks. Inputs are labels (n, t) in {0, 1} and probabilities (n, t).
The convention of `plotting`: with `path` the figure is written and the path returned, without
it the figure is returned. Attribution and motif figures live in their own modules.
"""
from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from .plotting import figure, finish

__all__ = ["plot_roc", "plot_score_distributions"]


def _both_classes(y):
    return 0 < y.sum() < len(y)


def plot_roc(labels, scores, task_names, title, path=None):
    """One ROC curve per task on shared axes, each task's auROC in the legend."""
    fig = figure(5.5, 5)
    ax = fig.subplots()
    for j, task in enumerate(task_names):
        y = np.asarray(labels)[:, j] > 0.5
        if not _both_classes(y):
            continue
        fpr, tpr, _ = roc_curve(y, scores[:, j])
        ax.plot(fpr, tpr, lw=1.5, label=f"{task} (auROC {roc_auc_score(y, scores[:, j]):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8, label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title,
           xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=8)
    return finish(fig, path)


def plot_score_distributions(labels, scores, task_names, title, path=None, bins=30):
    """A panel per task: histograms (density) of the predicted probabilities of its positives
    against its negatives."""
    t = len(task_names)
    cols = min(3, t)
    rows = math.ceil(t / cols)
    fig = figure(3.6 * cols, 2.8 * rows + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False)
    lo, hi = float(np.min(scores)), float(np.max(scores))
    edges = np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
    for j, ax in enumerate(axes.flat):
        if j >= t:
            ax.axis("off")
            continue
        y = np.asarray(labels)[:, j] > 0.5
        ax.hist(scores[~y, j], bins=edges, alpha=0.6, density=True, label=f"negative ({(~y).sum()})")
        ax.hist(scores[y, j], bins=edges, alpha=0.6, density=True, label=f"positive ({y.sum()})")
        ax.set_title(task_names[j], fontsize=9)
        ax.set_xlabel("predicted probability", fontsize=8)
        ax.set_ylabel("density", fontsize=8)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    return finish(fig, path)
