"""Replicate agreement: whether each replicate model, on its own, puts a pattern's relevance on its
seqlets.

Glossary: R replicates, N windows (rows of the TF-MoDISco input), w window width, s seqlets.
When the attribute step averages the attributions of R replicate models, TF-MoDISco finds its
patterns in the average (the ensemble). Each contribution map is put on its own scale, its mean
|contribution| per position over all windows, so that a model with larger logits does not count
for more. Replicate r supports a seqlet when its scaled contribution summed over the seqlet is at
least SEQLET_SHARE of the ensemble's (signed: negative patterns by the negated sums), and agrees
with a pattern when it supports at least AGREE_SHARE of the pattern's seqlets. A replicate that
learned the motif carries about as much of it as the ensemble does; one that did not carries
little or none. docs/motifs.md.
"""
from __future__ import annotations

import numpy as np

__all__ = ["SEQLET_SHARE", "AGREE_SHARE", "replicate_support"]

SEQLET_SHARE = 0.5
AGREE_SHARE = 0.5


def _seqlet_sums(contributions, pattern):
    """(..., s) contributions (..., N, w) summed over each seqlet of `pattern`."""
    prefix = np.concatenate([np.zeros((*contributions.shape[:-1], 1)),
                             np.cumsum(contributions, axis=-1)], axis=-1)
    rows = pattern.example_idx
    return prefix[..., rows, pattern.end] - prefix[..., rows, pattern.start]


def replicate_support(pattern, contributions, ensemble) -> np.ndarray:
    """(R,) the share of `pattern`'s seqlets that each replicate supports (module docstring).
    contributions: (R, N, w) each replicate's per-position contribution on the TF-MoDISco input
    rows the pattern's `example_idx` index; ensemble: (N, w) the contribution TF-MoDISco saw."""
    contributions = np.asarray(contributions, dtype=np.float64)
    ensemble = np.asarray(ensemble, dtype=np.float64)
    tiny = np.finfo(np.float64).tiny
    scales = np.maximum(np.abs(contributions).mean(axis=(1, 2)), tiny)              # (R,)
    sign = -1.0 if pattern.name.startswith("neg_") else 1.0
    own = sign * _seqlet_sums(contributions, pattern) / scales[:, None]               # (R, s)
    seen = sign * _seqlet_sums(ensemble, pattern) / max(np.abs(ensemble).mean(), tiny)  # (s,)
    return ((own >= SEQLET_SHARE * seen) & (seen > 0)).mean(axis=1)
