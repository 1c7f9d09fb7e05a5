"""LRP on long inputs: time and peak memory of one sequence through the 131k ps architecture.

    python bench/long_attribution.py [--lengths 8192 32768 131072]

Each case runs in a fresh process (its peak RSS is its own) with random weights (official init)
under an EPI head: `explain(model, X, method="lrp")` on one random sequence, which recomputes layers
in the backward pass (above RECOMPUTE_ELEMENTS: 2,048 bp and longer for this architecture). The peer is a no-grad forward pass of the same
sequence in the same process, run after it; the table gives the ratio, the peak memory of the process
up to the end of the LRP call (and before it: imports, model, warm-up) and the conservation error
(float32). Target: peak memory under 20 GB at 131,072 bp.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from results import record  # noqa: E402

ARCH = "caduceus-ps_seqlen-131k_d_model-256_n_layer-16"


def run_case(length: int) -> dict:
    import torch

    from caduceus_lrp.config import architecture_config
    from caduceus_lrp.epi_head import CaduceusClassifier
    from caduceus_lrp.explanation_model import explain
    from caduceus_lrp.model import build_caduceus

    model = CaduceusClassifier.from_backbone(build_caduceus(architecture_config(ARCH)).caduceus,
                                             ["task"], "max").eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (1, length), generator=gen), 4).float()
    explain(model, x[:, :64])                              # warm-up: numba compilation, allocator
    base_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    t = time.perf_counter()
    result = explain(model, x)
    seconds = time.perf_counter() - t
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    t = time.perf_counter()
    with torch.no_grad():
        model(onehot=x)
    forward = time.perf_counter() - t
    return {"length": length, "seconds": seconds, "forward": forward, "peak_gb": peak_gb,
            "base_gb": base_gb,
            "conservation": float(result.conservation_error.max())}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[8192, 32768, 131072])
    parser.add_argument("--case", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:  # child process: one measurement, printed as JSON
        print(json.dumps(run_case(args.case)))
        return
    rows = []
    for length in args.lengths:
        out = subprocess.run([sys.executable, __file__, "--case", str(length)],
                             capture_output=True, text=True)
        if out.returncode != 0:
            print(f"L={length}: failed ({out.returncode}): {out.stderr.strip()[-300:]}")
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"  measured L={length}: {rows[-1]['seconds']:.1f} s", file=sys.stderr)
    record("long_attribution", "LRP of one long sequence through the 131k architecture (CPU)",
           ["length", "LRP (s)", "forward (s)", "LRP / forward", "µs per base",
            "peak memory (GB)", "before the call (GB)", "conservation error"],
           [[r["length"], round(r["seconds"], 1), round(r["forward"], 1),
             round(r["seconds"] / r["forward"], 2), round(r["seconds"] / r["length"] * 1e6),
             round(r["peak_gb"], 2), round(r["base_gb"], 2), f"{r['conservation']:.1e}"]
            for r in rows],
           peer="a no-grad forward pass of the same sequence, same process",
           notes=f"{ARCH}, random weights (official init), one task, max pooling, batch 1, "
                 "float32, layer recomputation; target: peak memory under 20 GB at 131,072 bp.",
           headline=(f"LRP of one {rows[-1]['length']:,}-bp sequence through the 131k "
                     f"architecture costs {rows[-1]['seconds'] / rows[-1]['forward']:.1f} forward "
                     f"passes, peak {rows[-1]['peak_gb']:.1f} GB" if rows else ""))

if __name__ == "__main__":
    main()
