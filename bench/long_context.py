"""Long-context scaling of the 131k ps architecture (random weights) on this machine.

    python bench/long_context.py [--lengths 1024 8192 32768 131072] [--modes fwd fwd+bwd]

Each case runs in a fresh process (so its peak RSS is its own): "fwd" is a no-grad forward pass of
one sequence; "fwd+bwd" is a forward and a backward pass from the summed logits to the one-hot input
and all parameters, with layer-wise recomputation (`backbone.gradient_checkpointing`). The table
gives time per base and its ratio to the shortest length (the peer: linear scaling means 1.0), and
peak memory. Targets: time per base within 1.5x across the range; fwd+bwd peak < 12 GB at 131,072.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from results import record

ARCH = "caduceus-ps_seqlen-131k_d_model-256_n_layer-16"


def run_case(length: int, mode: str) -> dict:
    import torch

    from caduceus_lrp.config import architecture_config
    from caduceus_lrp.model import build_caduceus

    model = build_caduceus(architecture_config(ARCH))
    gen = torch.Generator().manual_seed(0)
    onehot = torch.nn.functional.one_hot(torch.randint(0, 4, (1, length), generator=gen), 4).float()
    # warm-up on a short input (numba compilation, allocator)
    with torch.no_grad():
        model(onehot=onehot[:, :64])
    t = time.perf_counter()
    if mode == "fwd":
        with torch.no_grad():
            model(onehot=onehot)
    else:
        model.caduceus.backbone.gradient_checkpointing = True
        onehot.requires_grad_(True)
        model(onehot=onehot).logits.sum().backward()
    seconds = time.perf_counter() - t
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    return {"length": length, "mode": mode, "seconds": seconds, "peak_gb": peak_gb}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 8192, 32768, 131072])
    parser.add_argument("--modes", nargs="+", default=["fwd", "fwd+bwd"], choices=["fwd", "fwd+bwd"])
    parser.add_argument("--case", nargs=2, metavar=("LENGTH", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:  # child process: one measurement, printed as JSON
        print(json.dumps(run_case(int(args.case[0]), args.case[1])))
        return
    rows = []
    for mode in args.modes:
        for length in args.lengths:
            out = subprocess.run([sys.executable, __file__, "--case", str(length), mode],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{mode} L={length}: failed ({out.returncode}): {out.stderr.strip()[-300:]}")
                continue
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"  measured {mode} L={length}: {rows[-1]['seconds']:.1f} s", file=sys.stderr)
    table = []
    for mode in args.modes:
        mine = [r for r in rows if r["mode"] == mode]
        if not mine:
            continue
        base = mine[0]["seconds"] / mine[0]["length"]
        for r in mine:
            per = r["seconds"] / r["length"]
            table.append([mode, r["length"], round(r["seconds"], 2), round(per * 1e6, 1),
                          round(per / base, 2), round(r["peak_gb"], 2)])
    record("long_context", "The 131k architecture on long inputs (CPU)",
           ["mode", "length", "time (s)", "µs per base", "ratio to shortest",
            "peak memory (GB)"], table, peer="the same mode at the shortest length (time per "
           "base), same run",
           notes=f"{ARCH}, random weights, batch 1; fwd+bwd from the summed logits to the input "
                 "and every parameter with gradient checkpointing; each case in its own process.",
           headline=next((f"The 131k architecture runs forward + backward on {r[1]:,} bp in "
                          f"{r[2]:.0f} s with a peak of {r[5]:.1f} GB on this CPU"
                          for r in reversed(table) if r[0] == "fwd+bwd"), ""))

if __name__ == "__main__":
    main()
