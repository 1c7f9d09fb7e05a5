"""GPU diagnostic: what this machine has, and whether the CUDA path agrees with the reference.

    python caduceus_lrp/test_gpu.py [--length 4096] [--batch 4]

On a CPU-only machine it reports that and exits 0 (nothing to check). On a GPU it reports torch,
CUDA and mamba-ssm, compares `selective_scan` on CUDA (mamba-ssm's kernel when importable, else the
PyTorch path on CUDA) with the float64 reference on the CPU, runs one forward pass of a random
131k-architecture ps model on both devices, explains one sequence with LRP on both (conservation
on CUDA, agreement with the CPU, the model left on CUDA), and prints throughput. Exit status 1 if a
check fails.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from caduceus_lrp.scan import _mamba_ssm_scan, selective_scan, selective_scan_ref  # noqa: E402


def _report():
    print(f"torch {torch.__version__}, CUDA build {torch.version.cuda}, "
          f"device available: {torch.cuda.is_available()}")
    if torch.cuda.is_available():
        print(f"device: {torch.cuda.get_device_name(0)}")
    try:
        import mamba_ssm

        print(f"mamba-ssm {mamba_ssm.__version__}")
    except Exception as err:  # not installed, or a build for another CUDA
        print(f"mamba-ssm not usable ({type(err).__name__}); the PyTorch scan is used on CUDA")


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
    path = "mamba-ssm kernel" if _mamba_ssm_scan() is not None else "PyTorch reference on CUDA"
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


def check_model(length, tol=1e-3):
    """One forward pass of a random 131k ps model on CUDA against the same model on the CPU."""
    from caduceus_lrp import architecture_config, build_caduceus

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
    from caduceus_lrp import CaduceusClassifier, architecture_config, explain

    cfg = architecture_config("caduceus-ps_seqlen-131k_d_model-256_n_layer-16")
    torch.manual_seed(0)
    model = CaduceusClassifier(cfg, 2, "max").eval()
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
    ok = check_scan(args.batch, args.length) & check_model(args.length) & check_lrp(args.length // 2)
    print("all checks passed" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
