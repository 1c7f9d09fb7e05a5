"""Fine-tuning throughput with and without the frozen-layer cache, and the share of the selective scan.

    python bench/train.py [--batch 16] [--length 200] [--steps 3] [--models default,d256x4,131kx16]

For each backbone (the default configuration's demo backbone; random ps d256 x 4 layers; random
ps d256 x 16 layers, the 131k architecture), `--unfreeze-layers 2`, max pooling, 6 tasks, one
training step (forward, backward, AdamW) on a batch of random sequences is timed:
  cached:   the top layers and head on the cached frozen activations (what training does);
  uncached: the frozen embedding and lower layers run (no grad) for every batch, then the same step
            (the peer, measured in this run).
Columns: sequences/s of both, the speed-up cached/uncached, and the fraction of the cached step's
CPU time spent in the selective scan (forward + backward kernels, from torch.profiler).
Steps are interleaved and the median reported; on a busy machine use --threads 1.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from results import record  # noqa: E402

from caduceus_lrp.config import architecture_config  # noqa: E402
from caduceus_lrp.epi_head import CaduceusClassifier  # noqa: E402
from caduceus_lrp.model import build_caduceus, load_caduceus  # noqa: E402
from caduceus_lrp.resources import demo_backbone  # noqa: E402
from caduceus_lrp.training.frozen_cache import SplitCaduceus  # noqa: E402
from caduceus_lrp.training.optim import adamw  # noqa: E402

BACKBONES = {
    "default": lambda: load_caduceus(demo_backbone()),
    "d256x4": lambda: build_caduceus(architecture_config(
        "caduceus-ps_seqlen-1k_d_model-256_n_layer-4_lr-8e-3")),
    "131kx16": lambda: build_caduceus(architecture_config(
        "caduceus-ps_seqlen-131k_d_model-256_n_layer-16")),
}


def step_fn(split, optimizer, ids, cached):
    """One training step; `cached` holds the frozen activations, else they are computed."""
    f = cached if cached is not None else split.features(ids)
    loss = split.top(f[:, 0]).float().pow(2).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def seconds_per_step(fns, steps):
    """Median seconds per call of each function, calls interleaved (fair under a varying load)."""
    for fn in fns:
        fn()  # warm-up (kernel compilation, allocator)
    times = [[] for _ in fns]
    for _ in range(steps):
        for fn, out in zip(fns, times):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return [statistics.median(t) for t in times]


def scan_fraction(fn):
    from torch.profiler import profile

    with profile() as prof:
        fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    scan = sum(e.self_cpu_time_total for e in events if "SelectiveScan" in e.key)
    return scan / total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--models", default=",".join(BACKBONES))
    parser.add_argument("--threads", type=int, default=0,
                        help="torch and numba threads (0: the defaults; 1 on a busy machine)")
    args = parser.parse_args()
    if args.threads:
        import numba

        torch.set_num_threads(args.threads)
        numba.set_num_threads(args.threads)
    ids = torch.randint(7, 11, (args.batch, args.length), generator=torch.Generator().manual_seed(0))
    rows = []
    for name in args.models.split(","):
        lm = BACKBONES[name]()
        cfg = lm.config
        split = SplitCaduceus(CaduceusClassifier.from_backbone(
            lm.caduceus, [f"t{k}" for k in range(6)], "max"), 2)
        optimizer = adamw(split.model, 1e-3, 1e-3, 0.1)
        cached = split.features(ids)
        t_cached, t_plain = seconds_per_step([lambda: step_fn(split, optimizer, ids, cached),
                                              lambda: step_fn(split, optimizer, ids, None)],
                                             args.steps)
        share = scan_fraction(lambda: step_fn(split, optimizer, ids, cached))
        trainable = sum(p.numel() for p in split.parameters() if p.requires_grad)
        rows.append([name, f"{cfg.d_model} x {cfg.n_layer}", trainable,
                     round(args.batch / t_cached, 1), round(args.batch / t_plain, 1),
                     round(t_plain / t_cached, 2), f"{share:.0%}"])
    record("train", "Training step with and without the frozen-layer cache",
           ["backbone", "d x layers", "trainable", "cached seq/s", "uncached seq/s",
            "cache speed-up", "scan share (cached)"], rows,
           peer="the same step computing the frozen layers (no cache), interleaved in the same run",
           notes=f"batch {args.batch} x {args.length} bp, 2 of the layers trainable, median of "
                 f"{args.steps} interleaved steps after one warm-up.",
           headline=(f"The frozen-layer cache makes a training step {rows[-1][5]:.1f}x faster "
                     f"(d x layers {rows[-1][1]}, 2 layers trained)" if rows else ""))


if __name__ == "__main__":
    main()
