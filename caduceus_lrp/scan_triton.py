"""The selective scan as Triton kernels (forward and backward) and the autograd Function.

Glossary: b batch, d channels (d_inner), n state size (d_state), l length; NP the state size
padded to a power of two; BLOCK_D channels per program; CHUNK steps between saved states; a
segment the stretch of l that one launch of the backward kernel covers.

    delta_t = softplus(delta_t + delta_bias)     (softplus only with delta_softplus)
    a_t = exp(delta_t A),  x_t = delta_t u_t
    s_t = a_t s_{t-1} + x_t B_t                  s: (b, d, n), s_{-1} = 0
    y_t = <s_t, C_t> + D u_t;  out_t = y_t silu(z_t) when z is given

Backward, for dout = dL/dout: dy_t = dout_t silu(z_t) and the adjoint g_t = dL/ds_t,

    g_t = a_{t+1} g_{t+1} + dy_t C_t,   h_t = g_t a_t s_{t-1}
    du_t = delta_t sum_n g_t B_t + D dy_t
    ddelta_t = (sum_n h_t A + u_t sum_n g_t B_t) softplus'(.)
    dB_t = sum_d g_t x_t,  dC_t = sum_d dy_t s_t,  dA = sum_{b,t} h_t delta_t
    dD = sum_{b,t} dy_t u_t,  dz_t = dout_t y_t silu'(z_t),  ddelta_bias = sum_{b,t} ddelta_t

The algorithm of `scan_cpu`: one program (one warp) per batch row and block of BLOCK_D channels
holds its state s as an (NP, BLOCK_D) tile in registers, a thread per channel and NP BLOCK_D / 32
of its states (sums over the states stay within the warp), and walks l one step at a time,
loading step t + 1's inputs while it computes step t. BLOCK_D is 8, 4 or 2 at n = 16 (4 or 2 in
the backward with states), the largest that still gives three programs per multiprocessor
(`launch_config`). The forward keeps s only before every CHUNK steps: states
(b, ceil(l / CHUNK), NP, d) in float32. The backward walks the chunks from the end, recomputes a
chunk's states from the saved one into its own slab of a scratch buffer
(b, d / BLOCK_D, CHUNK, NP, BLOCK_D), then runs the adjoint recursion back through them. When
no gradient needs the states (only u, B or D require grad: the LRP mode), none are saved or
recomputed. Nothing of size (b, d, n, l) exists: beyond inputs, outputs and gradients the memory
is 4 b d NP (l / CHUNK + CHUNK) bytes (states, scratch) + at most PARTIAL_BYTES of partial sums
(at (2, 512, 16, 131,072): 134 + 4 + 134 MB).

Determinism: the sums over channels (dB, dC) are written per program as partial sums
(d / BLOCK_D, b, n, segment) and summed by torch; dA, dD, ddelta_bias are summed over l per
(row, channel) in float32 across launches and over b by torch. No atomics, so two runs give the
same bits. The backward runs in segments of l (whole chunks, walked from the end, the adjoint
carried between launches) so that the partial sums stay within `PARTIAL_BYTES`.

Inputs are read through their strides (the model passes (b, d, l) views of (b, l, channels)
memory); outputs and the gradients of u, delta, z are allocated in their inputs' layout. float32
or bfloat16 (or float16) inputs, float32 compute, the output in u's dtype.
"""
from __future__ import annotations

import os

import torch
from torch.autograd.function import once_differentiable

from .scan_ref import check_shapes
from .scan_triton_kernels import bwd_kernel, fwd_kernel

__all__ = ["CHUNK", "PARTIAL_BYTES", "NUM_WARPS", "MAXNREG", "selective_scan_triton",
           "launch_config", "block_choices"]

CHUNK = 64  # steps between saved states: states take n / CHUNK of a (b, d, l) float32 tensor
PARTIAL_BYTES = 128 << 20  # bound on the backward's partial sums of dB and dC per launch
NUM_WARPS = 1  # per program: the sums over states stay within a warp
# ptxas's occupancy heuristic may cap a one-warp kernel at 96 registers and spill a few bytes
# (seen for the LRP backward on sm_80); an explicit bound lets it take the ~120 it needs.
MAXNREG = 255


# ---------------------------------------------------------------------------------------------
# Launch
# ---------------------------------------------------------------------------------------------
def _pow2(n):
    return 1 << max(0, (n - 1).bit_length())


def block_choices(kind, n):
    """The channel blocks (BLOCK_D, largest first) a kernel runs with at state size n: one warp
    per program, the (NP, BLOCK_D) state tile spread over its 32 threads with at least one and
    at most 4 values per thread (2 for the backward with states, whose prefetched inputs and
    scratch states take more registers), so that no configuration spills (bench/
    triton_compile.py). kind: "forward", "backward" (with states) or "backward_lrp"."""
    NP = _pow2(n)
    per_thread = 2 if kind == "backward" else 4
    largest = max(1, 32 * per_thread // NP)
    smallest = min(largest, max(1, 32 // NP))
    return tuple(1 << k for k in range(largest.bit_length() - 1, smallest.bit_length() - 2, -1))


def launch_config(b, d, n, device, kind="forward"):
    """(BLOCK_D, num_warps) for a (b, d) scan with state size n: the largest of
    `block_choices` that still gives three programs (warps) per multiprocessor, so that a
    small batch of long rows fills the GPU (on the CPU, under the interpreter: the largest).
    CADUCEUS_TRITON_BLOCK_D overrides the block (a power of two; for tuning and tests)."""
    forced = os.environ.get("CADUCEUS_TRITON_BLOCK_D")
    if forced:
        block = int(forced)
        if block < 1 or block & (block - 1):
            raise ValueError(f"CADUCEUS_TRITON_BLOCK_D={forced}: not a power of two")
        return block, NUM_WARPS
    choices = block_choices(kind, n)
    programs = (3 * torch.cuda.get_device_properties(device).multi_processor_count
                if device.type == "cuda" else 0)
    return next((c for c in choices if b * -(-d // c) >= programs), choices[-1]), NUM_WARPS


def _like(t):
    """An empty (b, d, l) tensor in t's layout when t is (b, d, l)- or (b, l, d)-dense, else
    stored as (b, l, d) (t a strided view such as z, half of the in_proj output)."""
    if t.is_contiguous() or t.transpose(1, 2).is_contiguous():
        return torch.empty_like(t)
    return t.new_empty(t.shape[0], t.shape[2], t.shape[1]).transpose(1, 2)


def _strides(t, k):
    return tuple(t.stride()) if t is not None else (0,) * k


def _forward(u, delta, A, B, C, D, z, delta_bias, softplus, save_states):
    """(out (b, d, l) in u's dtype and layout, states (b, ceil(l / CHUNK), NP, d) float32 or an
    empty tensor)."""
    b, d, l = u.shape
    n = A.shape[1]
    block, warps = launch_config(b, d, n, u.device, "forward")
    out = _like(u)
    states = (u.new_empty((b, -(-l // CHUNK), _pow2(n), d), dtype=torch.float32) if save_states
              else u.new_empty(0, dtype=torch.float32))
    grid = (-(-d // block), b)
    if out.numel() == 0:
        return out, states
    fwd_kernel[grid](u, delta, A, B, C, D, u if z is None else z, delta_bias, out, states,
                      d, l, n, *u.stride(), *delta.stride(), *A.stride(), *B.stride(),
                      *C.stride(), *_strides(z, 3), *out.stride(),
                      BLOCK_D=block, NP=_pow2(n), CHUNK=CHUNK, SOFTPLUS=bool(softplus),
                      HAS_Z=z is not None, SAVE_STATES=bool(save_states), num_warps=warps,
                      num_stages=1, maxnreg=MAXNREG)
    return out, states


def _segment_length(l, per_step_bytes):
    """Steps per backward launch: whole chunks whose partial sums fit in PARTIAL_BYTES (at
    least one chunk)."""
    if per_step_bytes == 0:
        return l
    chunks = max(1, PARTIAL_BYTES // (per_step_bytes * CHUNK))
    return min(l, chunks * CHUNK)


def _backward(ctx, dout):
    u, delta, A, B, C, D, z, delta_bias, states = ctx.saved_tensors
    needs = ctx.needs_input_grad
    b, d, l = u.shape
    n = A.shape[1]
    NP = _pow2(n)
    with_states = ctx.with_states
    block, warps = launch_config(b, d, n, u.device,
                                 "backward" if with_states else "backward_lrp")
    blocks = -(-d // block)
    need_dB = bool(needs[3])
    f32 = dict(dtype=torch.float32, device=u.device)

    du = _like(u)
    ddelta = _like(delta) if with_states else u.new_empty(0)
    dz = _like(z) if with_states and z is not None else u.new_empty(0)
    scratch = (torch.empty(b, blocks, CHUNK, NP, block, **f32) if with_states
               else torch.empty(0, **f32))
    carry = torch.zeros(b, NP, d, **f32)
    dA_acc = torch.zeros(b, NP, d, **f32) if with_states else torch.empty(0, **f32)
    dD_acc = torch.zeros(b, d, **f32)
    dbias_acc = torch.zeros(b, d, **f32) if with_states else torch.empty(0, **f32)
    seg = max(1, _segment_length(l, 4 * blocks * b * n * (need_dB + with_states)))
    dB_part = torch.empty(blocks, b, n, seg, **f32) if need_dB else torch.empty(0, **f32)
    dC_part = torch.empty(blocks, b, n, seg, **f32) if with_states else torch.empty(0, **f32)
    dB = torch.empty(b, n, l, **f32) if need_dB else None
    dC = torch.empty(b, n, l, **f32) if with_states else None
    grid = (blocks, b)
    starts = list(range(0, l, seg)) if du.numel() else []
    for t_lo in reversed(starts):
        t_hi = min(t_lo + seg, l)
        bwd_kernel[grid](u, delta, A, B, C, D, u if z is None else z, delta_bias, dout,
                          states, scratch, du, ddelta if with_states else du,
                          dz if dz.numel() else du, dB_part, dC_part, dA_acc, dD_acc, dbias_acc,
                          carry,
                          d, l, n, t_lo, t_hi, seg,
                          *u.stride(), *delta.stride(), *A.stride(), *B.stride(), *C.stride(),
                          *_strides(z, 3), *dout.stride(), *du.stride(),
                          *(ddelta.stride() if with_states else (0, 0, 0)),
                          *(dz.stride() if dz.numel() else (0, 0, 0)),
                          BLOCK_D=block, NP=NP, CHUNK=CHUNK, SOFTPLUS=bool(ctx.softplus),
                          HAS_Z=z is not None, WITH_STATES=with_states, NEED_DB=need_dB,
                          num_warps=warps, num_stages=1, maxnreg=MAXNREG)
        width = t_hi - t_lo
        if need_dB:
            torch.sum(dB_part[..., :width], 0, out=dB[..., t_lo:t_hi])
        if with_states:
            torch.sum(dC_part[..., :width], 0, out=dC[..., t_lo:t_hi])

    def cast(grad, like):
        return grad.to(like.dtype)

    return (du,
            ddelta if needs[1] else None,
            cast(dA_acc.sum(0)[:n].T, A) if needs[2] else None,
            cast(dB, B) if need_dB else None,
            cast(dC, C) if needs[4] else None,
            cast(dD_acc.sum(0), D) if needs[5] else None,
            dz if needs[6] else None,
            cast(dbias_acc.sum(0), delta_bias) if needs[7] else None,
            None)


class _SelectiveScanTriton(torch.autograd.Function):
    """The scan with the Triton kernels; D and delta_bias are tensors (zeros when absent)."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
        # gradients for delta, A, C, z or delta_bias need the states
        ctx.with_states = any(ctx.needs_input_grad[i] for i in (1, 2, 4, 6, 7))
        ctx.softplus = delta_softplus
        out, states = _forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                               ctx.with_states)
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, states)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):
        return _backward(ctx, dout)


def selective_scan_triton(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                          delta_softplus=False):
    """Selective scan with the Triton kernels; arguments as `selective_scan_ref`.

    u, delta, z: (b, d, l); A: (d, n); B, C: (b, n, l); D, delta_bias: (d,), on a CUDA device
    (or CPU tensors under TRITON_INTERPRET=1). float32, bfloat16 or float16 inputs, computed in
    float32; returns (b, d, l) in u's dtype, in u's layout. float64 is refused (the kernels
    compute in float32; the reference computes float64).
    """
    check_shapes(u, delta, A, B, C, D, z, delta_bias)
    if u.dtype == torch.float64:
        raise TypeError("selective_scan_triton computes in float32; use selective_scan_ref "
                        "(or the CPU scan) for float64")
    f32 = dict(dtype=torch.float32, device=u.device)
    D = torch.zeros(u.shape[1], **f32) if D is None else D.contiguous()
    delta_bias = (torch.zeros(u.shape[1], **f32) if delta_bias is None
                  else delta_bias.contiguous())
    inputs = (u, delta, A, B, C, D, z, delta_bias)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs):
        return _SelectiveScanTriton.apply(*inputs, bool(delta_softplus))
    out, _ = _forward(*(None if t is None else t.detach() for t in inputs),
                      bool(delta_softplus), save_states=False)
    return out
