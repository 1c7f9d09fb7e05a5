"""Optimisation pieces shared by fine-tuning and pretraining: batches, AdamW groups, the schedule.

All pure functions of their arguments (no global state), so they are tested directly.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

__all__ = ["lr_factor", "epoch_batches", "param_groups", "adamw"]


def lr_factor(step: int, total: int, warmup: int, min_ratio: float = 0.0) -> float:
    """Multiplier of the peak learning rate at `step` (0-based) of `total`: linear warm-up over
    `warmup` steps to 1, then a cosine down to `min_ratio` at the last step."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup - 1)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1):
    """This rank's index tensors for every step of an epoch. The global batches are a permutation
    of range(n) seeded by (seed, epoch); rank r takes the r-th of `world` near-equal slices.
    A last global batch smaller than `world` is dropped."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    batches = [perm[i:i + batch_size] for i in range(0, n, batch_size)]
    return [b.tensor_split(world)[rank] for b in batches if len(b) >= world]


def param_groups(model: nn.Module, lr: float, head_lr: float, weight_decay: float) -> list[dict]:
    """AdamW groups of the trainable parameters: head (names `head.*` and the final norm) at
    head_lr, the rest at lr; no weight decay on A_log, D, norms and biases (every tensor of
    fewer than 2 dimensions, and A_log). Each group also carries `initial_lr` (its peak) and the
    parameter `names`."""
    groups = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_head = name.startswith("head.") or "norm_f" in name
        decay = p.ndim >= 2 and not name.endswith("A_log")
        key = (is_head, decay)
        peak = head_lr if is_head else lr
        groups.setdefault(key, {"params": [], "names": [], "lr": peak, "initial_lr": peak,
                                "weight_decay": weight_decay if decay else 0.0})
        groups[key]["params"].append(p)
        groups[key]["names"].append(name)
    return [groups[k] for k in sorted(groups)]


def adamw(model: nn.Module, lr: float, head_lr: float, weight_decay: float):
    """AdamW (betas 0.9, 0.95) over `param_groups`; the schedule scales each group's
    `initial_lr`."""
    groups = [{k: v for k, v in g.items() if k != "names"}
              for g in param_groups(model, lr, head_lr, weight_decay)]
    return torch.optim.AdamW(groups, betas=(0.9, 0.95))
