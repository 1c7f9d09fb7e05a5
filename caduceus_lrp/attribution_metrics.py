"""Attributions judged against ground truth: site AUROC and AUPRC against planted positions,
faithfulness by perturbation (MambaLRP's Delta A_F, removing to N or to shuffled bases) and
paired bootstrap intervals between methods. docs/lrp.md, "How attributions are judged".

Glossary: N sequences, l length. Scores are per position (N, l); planted sites come from a
`data.GroundTruth` (`sites_of`).
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from .errors import InputError
from .explanation_model import as_onehot, explaining, logits_of, task_index
from .sequence import shuffled_one_hot

__all__ = ["site_mask", "site_auroc", "site_auprc", "faithfulness", "paired_interval"]


def site_mask(sites, length) -> np.ndarray:
    """(N, length) bool: True inside a site of each sequence's list (end exclusive)."""
    mask = np.zeros((len(sites), length), dtype=bool)
    for i, seq_sites in enumerate(sites):
        for start, end, _ in seq_sites:
            mask[i, start:end] = True
    return mask


def site_auroc(scores, mask) -> np.ndarray:
    """Per-sequence AUROC of position scores (N, l) against site positions (N, l); NaN for a
    sequence without sites or without background."""
    from sklearn.metrics import roc_auc_score

    return np.array([roc_auc_score(m, s) if 0 < m.sum() < len(m) else np.nan
                     for s, m in zip(scores, mask)])


def site_auprc(scores, mask) -> np.ndarray:
    """Per-sequence average precision of position scores (N, l) against site positions (N, l);
    NaN for a sequence without sites or without background."""
    from sklearn.metrics import average_precision_score

    return np.array([average_precision_score(m, s) if 0 < m.sum() < len(m) else np.nan
                     for s, m in zip(scores, mask)])


def paired_interval(a, b, n_boot: int = 2000, level: float = 0.95, seed: int = 0):
    """(mean of a - b, low, high): a percentile bootstrap interval of the mean paired difference
    over sequences (pairs with a NaN left out), a and b (N,)."""
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    diff = diff[~np.isnan(diff)]
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (n_boot, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(diff.mean()), float(low), float(high)


def _replacement(X, kind: str, seed: int) -> np.ndarray:
    """What removed positions become: N (zeros), or the bases of a dinucleotide shuffle of each
    sequence (seeded by the sequence), (N, l, 4)."""
    if kind == "N":
        return np.zeros_like(X)
    if kind != "shuffle":
        raise InputError(f"replacement: unknown replacement {kind!r}; choose 'N' or 'shuffle'")
    return shuffled_one_hot(X, seed)


def faithfulness(model, X, scores, target=0, steps: int = 20, batch_size: int = 64, device=None,
                 progress: bool = False, replacement: str = "N", seed: int = 0) -> np.ndarray:
    """MambaLRP's Delta A_F per sequence (N,): positions are removed in order of `scores`
    (N, l), most-relevant-first (MoRF) and least-relevant-first (LeRF), in `steps` equal steps;
    the target logit traces two curves over the fraction removed, and Delta A_F is the area under
    LeRF minus the area under MoRF (trapezoids on [0, 1]). Higher is better. A removed position
    becomes N (`replacement="N"`) or the base a dinucleotide shuffle of the sequence has there
    ("shuffle": the model sees no N, only bases out of context)."""
    target = task_index(model, target)
    X, scores = as_onehot(X), np.asarray(scores)
    filler = _replacement(X, replacement, seed)
    length = X.shape[1]
    counts = np.round(np.linspace(0, length, steps + 1)).astype(int)      # positions removed
    orders = np.argsort(-scores, axis=1, kind="stable"), np.argsort(scores, axis=1, kind="stable")
    # variants[i, o, k]: sequence i with its first counts[k] positions in order o replaced
    rank = np.stack([np.argsort(o, axis=1) for o in orders], axis=1)      # (N, 2, l)
    keep = rank[:, :, None, :] >= counts[None, None, :, None]            # (N, 2, k, l)
    curves = np.empty(keep.shape[:3])
    flat_keep = keep.reshape(len(X), -1, length)[..., None]
    with explaining(model, device) as param, torch.no_grad():
        for i in tqdm(range(len(X)), desc="faithfulness", unit="seq", disable=not progress):
            variants = np.where(flat_keep[i], X[i][None], filler[i][None])
            variants = torch.from_numpy(variants).to(param)
            logits = torch.cat([logits_of(model, v)[:, target] for v in variants.split(batch_size)])
            curves[i] = logits.cpu().numpy().reshape(2, -1)
    morf, lerf = curves[:, 0], curves[:, 1]
    return np.trapezoid(lerf - morf, dx=1 / steps, axis=1)
