"""GPU diagnostic: what this machine has, and whether the CUDA path agrees with the reference.

    python caduceus_lrp/test_gpu.py [--length 4096] [--batch 4]

On a CPU-only machine it reports that (and the CPU scan path) and exits 0 (nothing to check). On
a GPU it reports torch, CUDA, mamba-ssm and triton, which scan path CUDA tensors take and why
(`scan_path_reason`: mamba-ssm's kernel when its extension imports, else the Triton kernels, else
the PyTorch reference loop), compares `selective_scan` on CUDA with the float64 reference on the
CPU, compares the Triton scan (output and the gradients of all inputs) with the reference, runs
one forward pass of a random 131k-architecture ps model on both devices, explains one sequence
with LRP on both (conservation on CUDA, agreement with the CPU, the model left on CUDA), and
prints throughput. Exit status 1 if a check fails.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from caduceus_lrp.scan import (scan_path, scan_path_reason, selective_scan,  # noqa: E402
                               selective_scan_ref, triton_scan)


def _report():
    print(f"torch {torch.__version__}, CUDA build {torch.version.cuda}, "
          f"device available: {torch.cuda.is_available()}")
    if torch.cuda.is_available():
        print(f"device: {torch.cuda.get_device_name(0)}")
    try:
        import mamba_ssm

        print(f"mamba-ssm {mamba_ssm.__version__}")
    except Exception as err:  # not installed, or a build for another CUDA
        print(f"mamba-ssm not usable ({type(err).__name__})")
    try:
        import triton

        print(f"triton {triton.__version__}")
    except Exception as err:
        print(f"triton not usable ({type(err).__name__})")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    probe = torch.zeros(1, 1, 1, device=device)
    print(f"scan path for {device} tensors: {scan_path_reason(probe)}")


def _scan_inputs(b, e, n, length, device, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64)  # noqa: E731
    tensors = dict(u=r(b, e, length), delta=r(b, e, length) * 0.5, A=-torch.exp(r(e, n) * 0.5),
                   B=r(b, n, length), C=r(b, n, length), D=r(e), z=r(b, e, length), delta_bias=r(e) * 0.1)
    return {k: v.to(device=device, dtype=dtype if k not in ("A", "D", "delta_bias") else torch.float32)
            for k, v in tensors.items()}


def check_scan(b, length, tol=2e-3):
    """CUDA selective_scan against the float64 CPU reference; returns the max relative error."""
    args = _scan_inputs(b, 512, 16, length, "cuda")
    out = selective_scan(**args, delta_softplus=True).double().cpu()
    ref = selective_scan_ref(**{k: v.double().cpu() for k, v in args.items()}, delta_softplus=True)
    err = ((out - ref).abs().max() / ref.abs().max()).item()
    path = scan_path(args["u"])
    print(f"scan ({path}) b={b} l={length}: max relative error vs float64 reference {err:.2e} "
          f"({'ok' if err < tol else 'FAILED'})")
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(3):
        selective_scan(**args, delta_softplus=True)
    torch.cuda.synchronize()
    dt = (time.perf_counter() - t) / 3
    print(f"scan throughput: {b * length / dt / 1e6:.2f} M positions/s (512 channels, 16 states)")
    return err < tol


def check_triton(b, length, tol=2e-5):
    """The Triton scan on CUDA (whatever path the dispatcher prefers) against the float64 CPU
    reference: the output and the gradients of all 8 inputs, max |error| / max |reference|."""
    scan = triton_scan()
    if scan is None:
        print("triton scan: not importable, nothing to compare")
        return True
    names = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
    args = {k: v.requires_grad_() for k, v in _scan_inputs(b, 64, 16, length, "cuda").items()}
    grad = torch.randn(b, 64, length, generator=torch.Generator().manual_seed(1)).cuda()
    out = scan(**args, delta_softplus=True)
    got = [out, *torch.autograd.grad(out, [args[k] for k in names], grad)]
    wide = {k: v.detach().double().cpu().requires_grad_() for k, v in args.items()}
    ref_out = selective_scan_ref(**wide, delta_softplus=True)
    ref = [ref_out, *torch.autograd.grad(ref_out, [wide[k] for k in names], grad.double().cpu())]
    errs = {name: ((a.double().cpu() - r).abs().max() / r.abs().max()).item()
            for name, a, r in zip(("out",) + names, got, ref)}
    worst = max(errs, key=errs.get)
    ok = errs[worst] < tol
    print(f"triton scan b={b} d=64 l={length}: output and 8 gradients vs float64 reference, worst "
          f"{errs[worst]:.2e} ({worst}) ({'ok' if ok else 'FAILED'})")
    return ok


def check_model(length, tol=1e-3):
    """One forward pass of a random 131k ps model on CUDA against the same model on the CPU."""
    from caduceus_lrp.config import architecture_config
    from caduceus_lrp.model import build_caduceus

    model = build_caduceus(architecture_config("caduceus-ps_seqlen-131k_d_model-256_n_layer-16")).eval()
    ids = torch.randint(7, 11, (1, length), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        cpu = model(ids).logits
        model.cuda()
        torch.cuda.synchronize()
        t = time.perf_counter()
        gpu = model(ids.cuda()).logits.cpu()
        torch.cuda.synchronize()
        dt = time.perf_counter() - t
    err = ((gpu - cpu).abs().max() / cpu.abs().max()).item()
    print(f"model forward l={length}: max relative error CUDA vs CPU {err:.2e} "
          f"({'ok' if err < tol else 'FAILED'}), {length / dt / 1e3:.1f} kbp/s")
    return err < tol


def check_lrp(length, tol=1e-3):
    """LRP of a random 131k-architecture ps classifier (max pooling) on CUDA against the CPU."""
    from caduceus_lrp.config import architecture_config
    from caduceus_lrp.epi_head import CaduceusClassifier, classifier_config
    from caduceus_lrp.explanation_model import explain

    cfg = architecture_config("caduceus-ps_seqlen-131k_d_model-256_n_layer-16")
    torch.manual_seed(0)
    model = CaduceusClassifier(classifier_config(cfg, ["a", "b"], "max")).eval()
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (2, length)), 4).float().numpy()
    cpu = explain(model, x, target=1, method="lrp")
    model.cuda()
    torch.cuda.synchronize()
    t = time.perf_counter()
    gpu = explain(model, x, target=1, method="lrp")
    torch.cuda.synchronize()
    dt = time.perf_counter() - t
    err = float(abs(gpu.observed - cpu.observed).max() / abs(cpu.observed).max())
    cons = float(gpu.conservation_error.max())
    stayed = next(model.parameters()).is_cuda
    ok = err < tol and cons < tol and stayed
    print(f"LRP l={length} b=2: max relative error CUDA vs CPU {err:.2e}, conservation residual "
          f"{cons:.2e} (relative), model still on CUDA: {stayed} ({'ok' if ok else 'FAILED'}), "
          f"{2 * length / dt / 1e3:.1f} kbp/s")
    return ok


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--length", type=int, default=4096, help="sequence length for the checks")
    parser.add_argument("--batch", type=int, default=4, help="batch size for the scan check")
    args = parser.parse_args(argv)
    _report()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check (the CPU path is covered by the test suite)")
        return 0
    ok = (check_scan(args.batch, args.length) & check_triton(2, 777) & check_model(args.length)
          & check_lrp(args.length // 2))
    print("all checks passed" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
