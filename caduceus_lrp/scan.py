"""The selective scan of Mamba (S6): one entry point that dispatches to the fastest implementation.

Glossary: b batch, d channels (d_inner), n state size (d_state), l length.

`selective_scan` takes mamba-ssm's arguments (see `scan_ref`) and runs, by `scan_path`:
on CUDA, mamba-ssm's kernel when its compiled extension imports, else the Triton kernels of
`scan_triton` when triton imports, else the reference loop of `scan_ref` (with a one-time
warning); on the CPU the fused numba kernels of `scan_cpu`. `scan_path_reason` says why.
CADUCEUS_SCAN=reference|cpu_fused|triton|mamba_ssm forces a path (benchmarks, tests); a forced
path that cannot run raises. All paths compute in float32 (float64 for float64 u, which on CUDA
only the reference does) and return u's dtype.
"""
from __future__ import annotations

import functools
import os
import warnings

import torch

from .scan_ref import compute_dtype, selective_scan_ref

__all__ = ["selective_scan", "selective_scan_ref", "scan_path", "scan_path_reason",
           "compute_dtype", "mamba_ssm_scan", "triton_scan", "PATHS", "ENV"]

ENV = "CADUCEUS_SCAN"
PATHS = ("reference", "cpu_fused", "triton", "mamba_ssm")


@functools.cache
def _mamba_ssm():
    """(mamba-ssm's selective_scan_fn or None, why not). Newer mamba-ssm releases import without
    their compiled extension and fail only when called, so the extension itself must import."""
    try:
        import selective_scan_cuda  # noqa: F401  (the compiled extension)
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception as err:  # ImportError, or a build for another CUDA / torch
        return None, f"mamba-ssm not usable ({type(err).__name__}: {err})".splitlines()[0]
    return selective_scan_fn, "mamba-ssm's compiled extension selective_scan_cuda imports"


def mamba_ssm_scan():
    """mamba-ssm's CUDA selective_scan_fn, or None when it (or its compiled extension) cannot
    be imported."""
    return _mamba_ssm()[0]


@functools.cache
def _triton():
    """(selective_scan_triton or None, why not); triton is imported only here."""
    try:
        from .scan_triton import selective_scan_triton
    except Exception as err:  # triton missing, or a version the kernels do not build with
        return None, f"triton not usable ({type(err).__name__}: {err})".splitlines()[0]
    import triton

    return selective_scan_triton, f"triton {triton.__version__} imports"


def triton_scan():
    """The Triton selective scan, or None when triton cannot be imported."""
    return _triton()[0]


def _interpreting():
    return os.environ.get("TRITON_INTERPRET", "").lower() in ("1", "true", "on", "yes")


def _decide(u):
    """(path, reason, error): error is None, or why a path forced by CADUCEUS_SCAN cannot run."""
    device = u.device.type
    forced = os.environ.get(ENV, "").strip().lower()
    if forced:
        if forced not in PATHS:
            return forced, "", f"{ENV}={forced!r}: not one of {', '.join(PATHS)}"
        why = f"forced by {ENV}={forced}"
        if forced == "cpu_fused" and device != "cpu":
            return forced, why, f"{ENV}=cpu_fused needs CPU tensors, got {device} tensors"
        if forced == "mamba_ssm":
            if device != "cuda":
                return forced, why, f"{ENV}=mamba_ssm needs CUDA tensors, got {device} tensors"
            if mamba_ssm_scan() is None:
                return forced, why, f"{ENV}=mamba_ssm: {_mamba_ssm()[1]}"
        if forced == "triton":
            if not (device == "cuda" or (device == "cpu" and _interpreting())):
                return forced, why, (f"{ENV}=triton needs CUDA tensors (or CPU tensors under "
                                     f"TRITON_INTERPRET=1), got {device} tensors")
            if triton_scan() is None:
                return forced, why, f"{ENV}=triton: {_triton()[1]}"
        return forced, why, None
    if device == "cpu":
        return "cpu_fused", "CPU tensors: the fused numba kernels", None
    if device != "cuda":
        return "reference", f"{device} tensors: no fast scan for this device", None
    if compute_dtype(u) == torch.float64:
        return "reference", "float64 CUDA tensors: only the reference computes in float64", None
    if mamba_ssm_scan() is not None:
        return "mamba_ssm", f"CUDA tensors, {_mamba_ssm()[1]}", None
    if triton_scan() is not None:
        return "triton", f"CUDA tensors, {_mamba_ssm()[1]}; {_triton()[1]}", None
    return "reference", f"CUDA tensors, {_mamba_ssm()[1]}; {_triton()[1]}", None


def scan_path(u):
    """Which implementation `selective_scan` runs for input u (b, d, l): "mamba_ssm" (CUDA,
    mamba-ssm's extension importable), "triton" (CUDA, triton importable), "cpu_fused" (CPU),
    "reference" (anything else, and float64 on CUDA), or the path CADUCEUS_SCAN forces
    (ValueError when it cannot run)."""
    path, _, error = _decide(u)
    if error:
        raise ValueError(error)
    return path


def scan_path_reason(u):
    """One line: the path `scan_path` picks for u and why (or why a forced path cannot run)."""
    path, why, error = _decide(u)
    return f"{path}: {error}" if error else f"{path}: {why}"


@functools.cache
def _warn_reference(reason):
    warnings.warn(f"selective_scan: no fast scan ({reason}); using the reference scan, a "
                  "Python loop over l", stacklevel=3)


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """Selective scan (shapes as `selective_scan_ref`) by the implementation `scan_path` names."""
    path = scan_path(u)
    kwargs = dict(D=D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus)
    if path == "mamba_ssm":
        return mamba_ssm_scan()(u, delta, A, B, C, **kwargs)
    if path == "triton":
        return triton_scan()(u, delta, A, B, C, **kwargs)
    if path == "cpu_fused":
        from .scan_cpu import selective_scan_cpu  # numba loads on first CPU use
        return selective_scan_cpu(u, delta, A, B, C, **kwargs)
    if not os.environ.get(ENV):
        _warn_reference(_decide(u)[1])
    return selective_scan_ref(u, delta, A, B, C, **kwargs)
