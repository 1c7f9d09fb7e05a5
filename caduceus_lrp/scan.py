"""The selective scan of Mamba (S6) as a pure function, with mamba-ssm's calling convention.

Glossary: b batch, d channels (d_inner), n state size (d_state), l length.

    s_t = exp(delta_t * A) * s_{t-1} + delta_t * u_t * B_t        s: (b, d, n), s_0 = 0
    y_t = <s_t, C_t> + D * u_t;  out = y * silu(z) when z is given

`selective_scan` dispatches to the fastest available implementation for the tensors it gets
(`scan_path` says which): mamba-ssm's CUDA kernel for CUDA tensors when it is importable, the
fused numba kernels of `scan_cpu` for CPU tensors, else the reference below. All paths compute in
float32 (float64 for float64 u) and return u's dtype.
"""
from __future__ import annotations

import functools
import warnings

import torch
import torch.nn.functional as F

__all__ = ["selective_scan", "selective_scan_ref", "scan_path", "prepare_delta", "compute_dtype"]


def prepare_delta(delta, delta_bias=None, delta_softplus=False):
    """delta (b, d, l) + delta_bias (d,), then softplus if asked; the inputs' own dtype."""
    if delta_bias is not None:
        delta = delta + delta_bias[..., None]
    if delta_softplus:
        delta = F.softplus(delta)
    return delta


def compute_dtype(u):
    """The dtype the scan computes in: float64 for float64 u, else float32."""
    return torch.float64 if u.dtype == torch.float64 else torch.float32


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """Reference scan: a loop over l, autograd through it (backward linear in l).

    u, delta, z: (b, d, l); A: (d, n); B, C: (b, n, l); D, delta_bias: (d,).
    Returns (b, d, l) in u's dtype.
    """
    dtype = compute_dtype(u)
    in_dtype = u.dtype
    u, delta, A, B, C = (t.to(dtype) for t in (u, delta, A, B, C))
    bias = None if delta_bias is None else delta_bias.to(dtype)
    delta = prepare_delta(delta, bias, delta_softplus)
    b, d, l = u.shape
    state = u.new_zeros(b, d, A.shape[1])
    du = delta * u
    ys = []
    for dt, du_t, B_t, C_t in zip(delta.unbind(-1), du.unbind(-1), B.unbind(-1), C.unbind(-1)):
        state = torch.exp(dt[:, :, None] * A) * state + du_t[:, :, None] * B_t[:, None, :]
        ys.append(torch.einsum("bdn,bn->bd", state, C_t))
    y = torch.stack(ys, dim=-1)
    if D is not None:
        y = y + u * D.to(dtype)[:, None]
    if z is not None:
        y = y * F.silu(z.to(dtype))
    return y.to(in_dtype)


@functools.cache
def _mamba_ssm_scan():
    """mamba-ssm's CUDA selective_scan_fn, or None when it cannot be imported."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception:  # ImportError, or a broken CUDA build
        return None
    return selective_scan_fn


def scan_path(u):
    """Which implementation `selective_scan` runs for input u (b, d, l): "mamba_ssm" (CUDA
    tensors, mamba-ssm importable), "cpu_fused" (CPU tensors) or "reference" (anything else)."""
    if u.is_cuda and _mamba_ssm_scan() is not None:
        return "mamba_ssm"
    if u.device.type == "cpu":
        return "cpu_fused"
    return "reference"


@functools.cache
def _warn_reference(device_type):
    warnings.warn(f"selective_scan: no fast scan for {device_type} tensors (on CUDA: mamba-ssm is "
                  "not importable); using the reference scan, a Python loop over l", stacklevel=3)


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """Selective scan (shapes as `selective_scan_ref`) by the implementation `scan_path` names."""
    path = scan_path(u)
    kwargs = dict(D=D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus)
    if path == "mamba_ssm":
        return _mamba_ssm_scan()(u, delta, A, B, C, **kwargs)
    if path == "cpu_fused":
        from caduceus_lrp.scan_cpu import selective_scan_cpu  # numba loads on first CPU use
        return selective_scan_cpu(u, delta, A, B, C, **kwargs)
    _warn_reference(u.device.type)
    return selective_scan_ref(u, delta, A, B, C, **kwargs)
