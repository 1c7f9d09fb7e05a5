"""The selective scan of Mamba (S6), reference implementation: a loop over the length.

Glossary: b batch, d channels (d_inner), n state size (d_state), l length.

    s_t = exp(delta_t * A) * s_{t-1} + delta_t * u_t * B_t        s: (b, d, n), s_0 = 0
    y_t = <s_t, C_t> + D * u_t;  out = y * silu(z) when z is given

mamba-ssm's calling convention (`selective_scan_fn`). Every fast path (`scan_cpu`, `scan_triton`,
mamba-ssm's CUDA kernel) is tested against `selective_scan_ref` in float64.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["selective_scan_ref", "prepare_delta", "compute_dtype", "check_shapes"]


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


def check_shapes(u, delta, A, B, C, D=None, z=None, delta_bias=None):
    """ValueError naming the first argument whose shape does not fit u (b, d, l) and A (d, n)."""
    b, d, l = u.shape
    n = A.shape[-1]
    expected = {"delta": (delta, (b, d, l)), "A": (A, (d, n)), "B": (B, (b, n, l)),
                "C": (C, (b, n, l)), "D": (D, (d,)), "z": (z, (b, d, l)),
                "delta_bias": (delta_bias, (d,))}
    for name, (tensor, shape) in expected.items():
        if tensor is not None and tuple(tensor.shape) != shape:
            raise ValueError(f"selective_scan: {name} has shape {tuple(tensor.shape)}, "
                             f"expected {shape} for u of shape {(b, d, l)} and A with n = {n}")
