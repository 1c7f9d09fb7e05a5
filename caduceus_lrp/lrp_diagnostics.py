"""Diagnostics that locate where an explanation departs from the model's behaviour: the relevance
carried by the residual path alone, the positions max pooling picks, and exact Shapley values over
the positions of one site.

Glossary: N sequences, l length, k positions of a site. docs/lrp.md, "Diagnostics".
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .epi_head import CaduceusClassifier, Pooling
from .errors import InputError
from .explanation_model import as_onehot, explaining, logits_of, task_index
from .layers import BiMambaWrapper
from .lrp_composites import Rule, composite_of
from .lrp_layers import LRPDetachedMixer

__all__ = ["residual_only", "pooled_positions", "shapley_weights", "site_shapley"]


def residual_only(composite):
    """The composite with every BiMamba mixer detached (`LRPDetachedMixer`): its relevance is what
    reaches the input through the residual path alone; the rest of the composite's relevance
    came through the mixers."""
    composite = composite_of(composite)
    return composite.with_rules({BiMambaWrapper: Rule(LRPDetachedMixer)},
                                name=f"{composite.name}, residual path only")


@torch.no_grad()
def pooled_positions(model, X, batch_size: int = 64, device=None) -> np.ndarray:
    """(N, l) bool: the positions that max pooling picks for at least one channel, on either
    strand (a ps model's RC half and a ph model's RC pass are mapped back to the forward
    strand)."""
    if not isinstance(model, CaduceusClassifier) or model.head.pooling != "max":
        raise InputError("pooled positions: needs a Caduceus classifier with max pooling")
    X = as_onehot(X)
    length = X.shape[1]
    picked = []
    pool = next(m for m in model.modules() if isinstance(m, Pooling))

    def record(module, args, out):
        picked.append(args[0].argmax(dim=1))                 # (rows, d)

    handle = pool.register_forward_hook(record)
    out = np.zeros(X.shape[:2], dtype=bool)
    try:
        with explaining(model, device) as param:
            for start in range(0, len(X), batch_size):
                picked.clear()
                x = torch.from_numpy(X[start:start + batch_size]).to(param)
                logits_of(model, x)
                rows = np.arange(len(x))
                for k, where in enumerate(picked):
                    # two calls: the forward strand, then the other strand with its positions
                    # running backwards (ps: the flipLC'd RC half; ph: the RC pass)
                    where = where.cpu().numpy()
                    where = length - 1 - where if k % 2 else where
                    out[start + rows[:, None], where] = True
    finally:
        handle.remove()
    return out


def shapley_weights(k: int) -> np.ndarray:
    """w[s] = s! (k - s - 1)! / k!, the Shapley weight of a coalition of s of the other k - 1
    players, (k,)."""
    return np.array([math.factorial(s) * math.factorial(k - s - 1) / math.factorial(k)
                     for s in range(k)])


@torch.no_grad()
def site_shapley(model, x, positions, target=0, reference: str = "N", n_references: int = 8,
                 seed: int = 0, batch_size: int = 256, device=None) -> np.ndarray:
    """Exact Shapley values of the k `positions` of one sequence x (l, 4) for the target logit,
    (k,): the value of a coalition S is the logit with the site positions outside S replaced by
    the reference (N, or random bases, averaged over `n_references` draws); every other position
    keeps its base. 2^k forwards per reference; they sum to f(x) - f(x with the site replaced)."""
    target = task_index(model, target)
    x = as_onehot(np.asarray(x)[None])[0]
    positions = np.asarray(positions)
    k = len(positions)
    if not 0 < k <= 16:
        raise InputError(f"site_shapley: {k} positions; exact Shapley values need 1 to 16")
    masks = np.arange(2 ** k)
    inside = (masks[:, None] >> np.arange(k)[None, :]) & 1                # (2^k, k) in S
    rng = np.random.default_rng(seed)
    refs = [np.zeros((k, 4))] if reference == "N" else [
        np.eye(4)[rng.integers(0, 4, k)] for _ in range(n_references)]
    if reference not in ("N", "random"):
        raise InputError(f"site_shapley: unknown reference {reference!r}; choose 'N' or 'random'")
    values = np.zeros(2 ** k)
    with explaining(model, device) as param:
        for ref in refs:
            variants = np.repeat(x[None], 2 ** k, axis=0)
            variants[:, positions] = np.where(inside[..., None] == 1, x[positions][None], ref[None])
            v = torch.from_numpy(variants).to(param)
            values += torch.cat([logits_of(model, part)[:, target]
                                 for part in v.split(batch_size)]).double().cpu().numpy()
    values /= len(refs)
    weights, sizes = shapley_weights(k), inside.sum(1)
    phi = np.zeros(k)
    for i in range(k):
        without = masks[inside[:, i] == 0]
        phi[i] = (weights[sizes[without]] * (values[without | (1 << i)] - values[without])).sum()
    return phi
