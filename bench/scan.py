"""Benchmark: the fused CPU selective scan against a PyTorch loop over l and mambapy's pscan.

Forward + backward of the whole Mamba scan as the model calls it (D, the silu(z) gate, delta_bias,
softplus; every input requires grad), b = 8, d = 512, n = 16, float32, at each length. Every case
runs in a fresh subprocess, so its peak memory (the process's peak RSS, imports and inputs
included) is its own. Prints one table: time, peak memory and the fast scan's ratios to each peer.

    python bench/scan.py [--lengths 1024 8192] [--repeats 3] [--threads N]

Implementations:
  fast      caduceus_lrp.scan_cpu.selective_scan_cpu (numba kernels).
  fast-lrp  the same with only u requiring grad (the LRP mode).
  loop      a PyTorch loop over l: `selective_scan_ref`, which unbinds its inputs once and runs the
            recursion in a plain Python loop, autograd through it.
  mambapy   mambapy 1.2's `pscan` (Blelloch scan) on materialised (b, l, d, n) tensors, as mambapy's
            own selective_scan uses it. Bench only: `pip install mambapy`; skipped when absent.

Peers at lengths above the smallest are timed once without a warm-up (they take tens of seconds),
and are skipped, with the reason, when their peak memory extrapolated linearly from the smallest
length (an overestimate) would not fit in the memory available now. The load average is
printed: other work on the machine slows every case, the many small threaded operations of the
loop and mambapy most, so `--threads 1` gives the steadier per-core ratios on a busy machine.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from results import record

from caduceus_lrp.scan import selective_scan_ref
from caduceus_lrp.scan_cpu import selective_scan_cpu

BATCH, CHANNELS, STATES = 8, 512, 16
IMPLEMENTATIONS = ("fast", "fast-lrp", "loop", "mambapy")


def mambapy_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    """The scan through mambapy's pscan as mambapy's Mamba runs it; shapes as selective_scan_ref."""
    from mambapy.pscan import pscan

    delta = delta + delta_bias[:, None]
    delta = F.softplus(delta) if delta_softplus else delta
    delta_t, u_t = delta.transpose(1, 2), u.transpose(1, 2)  # (b, l, d)
    deltaA = torch.exp(delta_t[..., None] * A)  # (b, l, d, n)
    BX = (delta_t * u_t)[..., None] * B.transpose(1, 2)[:, :, None, :]  # (b, l, d, n)
    hs = pscan(deltaA, BX)  # (b, l, d, n)
    y = (hs @ C.transpose(1, 2)[..., None]).squeeze(-1) + D * u_t  # (b, l, d)
    return y.transpose(1, 2) * F.silu(z)


def make_inputs(l, seed=0):
    """Inputs as a Mamba layer makes them: delta_bias = softplus^-1(dt), dt log-uniform in
    [1e-3, 0.1]; A = -(1..n). All float32, all requiring grad."""
    g = torch.Generator().manual_seed(seed)
    dt = torch.exp(torch.empty(CHANNELS).uniform_(math.log(1e-3), math.log(0.1), generator=g))
    inputs = dict(
        u=torch.randn(BATCH, CHANNELS, l, generator=g),
        delta=0.1 * torch.randn(BATCH, CHANNELS, l, generator=g),
        A=-torch.arange(1, STATES + 1, dtype=torch.float32).repeat(CHANNELS, 1),
        B=torch.randn(BATCH, STATES, l, generator=g), C=torch.randn(BATCH, STATES, l, generator=g),
        D=torch.ones(CHANNELS), z=torch.randn(BATCH, CHANNELS, l, generator=g),
        delta_bias=dt + torch.log(-torch.expm1(-dt)))
    return {k: v.requires_grad_() for k, v in inputs.items()}


def run_case(impl, l, warmup, repeats):
    """Time forward + backward of one implementation in this process; return a result dict."""
    startup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # interpreter, libraries
    inputs = make_inputs(l)
    if impl == "fast-lrp":
        for name, tensor in inputs.items():
            tensor.requires_grad_(name == "u")
    scan = {"fast": selective_scan_cpu, "fast-lrp": selective_scan_cpu, "loop": selective_scan_ref,
            "mambapy": mambapy_scan}[impl]
    grad_out = torch.randn(BATCH, CHANNELS, l, generator=torch.Generator().manual_seed(1))
    times = []
    for _ in range(warmup + repeats):
        for tensor in inputs.values():
            tensor.grad = None
        start = time.perf_counter()
        out = scan(**inputs, delta_softplus=True)
        out.backward(grad_out)
        times.append(time.perf_counter() - start)
        del out
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"seconds": sorted(times[warmup:])[len(times[warmup:]) // 2], "peak_bytes": peak,
            "startup_bytes": startup}


def available_bytes():
    with open("/proc/meminfo") as f:
        fields = dict(line.split(":") for line in f)
    return int(fields["MemAvailable"].split()[0]) * 1024


def child(impl, l, warmup, repeats, threads):
    """Run one case in a fresh interpreter with `threads` threads (torch and numba); its JSON
    result, or a note why it did not run."""
    command = [sys.executable, os.path.abspath(__file__), "--child", impl, str(l),
               str(warmup), str(repeats)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads))
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return {"note": f"failed: {reason}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def mambapy_installed():
    return importlib.util.find_spec("mambapy") is not None


def _headline(rows):
    """The fast scan's speed-up over the loop at the smallest length measured."""
    loops = [r for r in rows if r[0] == "loop" and r[4] is not None]
    if not loops:
        return ""
    r = loops[0]
    return (f"The fused CPU selective scan is {r[4]:.1f}x the PyTorch loop (forward + backward, "
            f"b {BATCH}, d {CHANNELS}, n {STATES}, L {r[1]:,})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 8192])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads for torch and numba in every case (default: all cores)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        impl, l, warmup, repeats = args.child
        print(json.dumps(run_case(impl, int(l), int(warmup), int(repeats))))
        return
    lengths = sorted(args.lengths)
    impls = [i for i in IMPLEMENTATIONS if i != "mambapy" or mambapy_installed()]
    results = {}
    load_before = os.getloadavg()[0]
    cases = [(impl, l) for l in lengths for impl in impls]
    for impl, l in tqdm(cases, desc="cases", file=sys.stderr):
        peer_long = impl in ("loop", "mambapy") and l > lengths[0]
        small = results.get((impl, lengths[0]), {})
        if peer_long and "peak_bytes" in small:
            start, peak = small["startup_bytes"], small["peak_bytes"]
            estimate = start + (peak - start) * l / lengths[0]
            if estimate > available_bytes():
                results[impl, l] = {"note": f"skipped: needs about {estimate / 2**30:.0f} GB, "
                                            f"{available_bytes() / 2**30:.0f} GB available"}
                continue
        warmup, repeats = (0, 1) if peer_long else (1, args.repeats)
        results[impl, l] = child(impl, l, warmup, repeats, args.threads)

    rows = []
    for l in lengths:
        fast = results[("fast", l)]
        for impl in impls:
            r = results[impl, l]
            if "seconds" not in r:
                rows.append([impl, l, None, None, None, None, r["note"]])
                continue
            speedup = memory = None
            if impl in ("loop", "mambapy") and "seconds" in fast:
                speedup = round(r["seconds"] / fast["seconds"], 1)
                memory = round(fast["peak_bytes"] / r["peak_bytes"], 2)
            rows.append([impl, l, round(r["seconds"], 3), round(r["peak_bytes"] / 2**30, 2),
                         speedup, memory, ""])
    notes = (f"b={BATCH}, d={CHANNELS}, n={STATES}, float32, delta_softplus, D, z, delta_bias; "
             f"{args.threads} threads; load average {load_before:.1f} before, "
             f"{os.getloadavg()[0]:.1f} after. Time: median of the timed runs (peers above the "
             "smallest length: one run); peak: the process's peak RSS."
             + ("" if "mambapy" in impls else " mambapy not installed, not measured."))
    record("scan", "Fused CPU selective scan, forward + backward",
           ["implementation", "L", "time (s)", "peak (GB)", "fast speed-up", "fast memory ratio",
            "note"], rows, peer="the PyTorch loop over l (selective_scan_ref) and mambapy's pscan, "
           "in the same run", notes=notes, headline=_headline(rows))

if __name__ == "__main__":
    main()
