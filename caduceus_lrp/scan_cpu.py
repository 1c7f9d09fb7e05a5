"""The fused CPU selective scan: numba kernels for forward and backward, and the autograd Function.

Glossary: b batch, d channels (d_inner), n state size (d_state), l length, c saved states per
row, g groups of channel blocks.

One kernel call runs the whole of `selective_scan_ref` (delta_bias, softplus, the recurrence,
D * u, the silu(z) gate). A task takes one batch row and a block of LANES channels, side by side
in vector registers, with their state s (n, LANES); nothing of size (b, d, l, n) exists. The
forward keeps s only at the start of every CHUNK steps; the backward walks the chunks from the
end, recomputes their states from the saved one into a (CHUNK + 1, n, LANES) buffer per task, and
runs the adjoint recursion

    g_t = dL/ds_t = g_{t+1} * exp(delta_{t+1} A) + dy_t C_t

through them. When no gradient needs the states (only u, B or D require grad: the LRP mode),
none are saved or recomputed. exp, log1p, softplus and silu are written out branch-free (to a
few ulp) because numba's calls into libm do not vectorise.
"""
from __future__ import annotations

import math

import numba
import numpy as np
import torch
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload
from torch.autograd.function import once_differentiable

from .scan_ref import check_shapes, compute_dtype

__all__ = ["CHUNK", "LANES", "selective_scan_cpu"]

CHUNK = 64  # steps between saved states: memory n / CHUNK of a (b, d, l) tensor
LANES = 64  # channels per task, side by side in vector registers (a power of two). The kernels
# take it as an argument: a compile-time trip count would be unrolled instead of vectorised.
FASTMATH = {"contract"}  # a * b + c may become one fused multiply-add (rounded once); nothing else
# The backward kernel may also reassociate: its sums over a block's channels (the B and C
# gradients) then run as vector partial sums, not one long chain of dependent additions.
FASTMATH_BACKWARD = {"contract", "reassoc"}


@intrinsic
def _pow2(typingctx, k):
    """2.0 ** k for a float k holding an integer in the normal exponent range, from its bits."""
    if not isinstance(k, types.Float):
        return None
    width = k.bitwidth
    mantissa, bias = {32: (23, 127), 64: (52, 1023)}[width]

    def codegen(context, builder, signature, args):
        int_type = ir.IntType(width)
        exponent = builder.add(builder.fptosi(args[0], int_type), int_type(bias))
        bits = builder.shl(exponent, int_type(mantissa))
        return builder.bitcast(bits, context.get_value_type(k))

    return k(k), codegen


def _exp(x):
    """exp(x), in numba kernels (the overload below)."""
    raise NotImplementedError("numba kernels only")


def _constants(numba_type, *values):
    """values as numpy scalars of a numba float type, for constants inside overloads."""
    ftype = {32: np.float32, 64: np.float64}[numba_type.bitwidth]
    return tuple(ftype(v) for v in values)


@overload(_exp, jit_options={"fastmath": FASTMATH})
def _exp_numba(x):
    """exp for float32 / float64 to about 1 ulp: x = k ln2 + r, |r| <= ln2 / 2, exp(r) by its
    Taylor polynomial (degree 7 / 13), 2^k from the exponent bits (as 2^(k-1) * 2 so that k may
    reach the overflow threshold). Below exp's normal range it returns 0, above it inf; NaN stays
    NaN. The clamps are written as selects, not min/max, so that NaN passes through."""
    if not isinstance(x, types.Float):
        return None
    wide = x.bitwidth == 64
    degree = 13 if wide else 7
    # Cody-Waite split of ln 2: k * ln2_hi is exact for every k in range
    lo, hi, log2e, ln2_hi, ln2_lo, half, one, two, zero = _constants(
        x, -707.0 if wide else -86.5, 709.9 if wide else 88.75, 1 / math.log(2),
        6.93147180369123816490e-01 if wide else 0.693145751953125,
        1.90821492927058770002e-10 if wide else 1.428606765330187e-06, 0.5, 1, 2, 0)
    coefficients = _constants(x, *(1 / math.factorial(i) for i in range(degree, -1, -1)))

    def impl(x):
        xc = lo if x < lo else x
        xc = hi if xc > hi else xc
        k = np.floor(xc * log2e + half)
        r = (xc - k * ln2_hi) - k * ln2_lo
        p = coefficients[0]
        for c in coefficients[1:]:
            p = p * r + c
        e = p * _pow2(k - one) * two
        return zero if x < lo else e

    return impl


def _log1p_unit(w):
    """log(1 + w) for 0 <= w <= 1, in numba kernels (the overload below)."""
    raise NotImplementedError("numba kernels only")


@overload(_log1p_unit, jit_options={"fastmath": FASTMATH})
def _log1p_unit_numba(w):
    """log(1 + w) = 2 atanh(s), s = w / (2 + w) in [0, 1/3], by its odd series to about 1 ulp
    (8 / 17 terms for float32 / float64); branch-free, so it vectorises."""
    if not isinstance(w, types.Float):
        return None
    terms = 17 if w.bitwidth == 64 else 8
    two, = _constants(w, 2)
    coefficients = _constants(w, *(1 / (2 * j + 1) for j in range(terms - 1, -1, -1)))

    def impl(w):
        s = w / (two + w)
        s2 = s * s
        p = coefficients[0]
        for c in coefficients[1:]:
            p = p * s2 + c
        return two * s * p

    return impl


def _softplus(x):
    """(softplus(x), sigmoid(x)): torch's softplus (x itself above 20) and its derivative (1 above
    20), in numba kernels (the overload below)."""
    raise NotImplementedError("numba kernels only")


@overload(_softplus, jit_options={"fastmath": FASTMATH})
def _softplus_numba(x):
    """softplus(x) = max(x, 0) + log1p(exp(-|x|)), sigmoid from exp(-|x|): no overflow, no
    branches."""
    if not isinstance(x, types.Float):
        return None
    zero, one, threshold = _constants(x, 0, 1, 20)

    def impl(x):
        w = _exp(-abs(x))
        value = (x if x > zero else zero) + _log1p_unit(w)
        sigmoid = (one if x >= zero else w) / (one + w)
        return (x if x > threshold else value), (one if x > threshold else sigmoid)

    return impl


def _silu(z):
    """(silu(z), silu'(z)) = (z s, s (1 + z (1 - s))), s = sigmoid(z), in numba kernels (the
    overload below)."""
    raise NotImplementedError("numba kernels only")


@overload(_silu, jit_options={"fastmath": FASTMATH})
def _silu_numba(z):
    """sigmoid from exp(-|z|): no overflow, no branches."""
    if not isinstance(z, types.Float):
        return None
    zero, one = _constants(z, 0, 1)

    def impl(z):
        w = _exp(-abs(z))
        sigmoid = (one if z >= zero else w) / (one + w)
        return z * sigmoid, sigmoid * (one + z * (one - sigmoid))

    return impl


@njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def _load(x, bi, j0, steps, t0, tile):
    """tile[k, j] = x[bi, j0 + j, t0 + k] for the block's channels j, 0 in the lanes beyond d."""
    w = min(tile.shape[1], x.shape[1] - j0)
    for j in range(w):
        row = x[bi, j0 + j]
        for k in range(steps):
            tile[k, j] = row[t0 + k]
    tile[:steps, w:] = 0


@njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def _store(tile, bi, j0, steps, t0, x):
    """x[bi, j0 + j, t0 + k] = tile[k, j] for the block's channels."""
    for j in range(min(tile.shape[1], x.shape[1] - j0)):
        row = x[bi, j0 + j]
        for k in range(steps):
            row[t0 + k] = tile[k, j]


@njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def _block_params(A, D, delta_bias, j0, lanes):
    """A (n, lanes), D and delta_bias (lanes,) of the block's channels, zero in unused lanes."""
    n = A.shape[1]
    a = np.zeros((n, lanes), dtype=A.dtype)
    Dl = np.zeros(lanes, dtype=A.dtype)
    bias = np.zeros(lanes, dtype=A.dtype)
    for j in range(min(lanes, A.shape[0] - j0)):
        for m in range(n):
            a[m, j] = A[j0 + j, m]
        Dl[j] = D[j0 + j]
        bias[j] = delta_bias[j0 + j]
    return a, Dl, bias


@njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def _step_scalars(steps, delta, bias, softplus, z, gated, out):
    """The per-step scalars of a chunk, vectorised over lanes: delta, z (CHUNK, lanes) tiles ->
    out (4, CHUNK, lanes): delta_t, d delta_t / d delta, silu(z_t), d silu(z_t) / d z_t
    (1 and 0 without a gate)."""
    one = delta.dtype.type(1)
    zero = delta.dtype.type(0)
    for k in range(steps):
        for j in range(delta.shape[1]):
            if softplus:
                out[0, k, j], out[1, k, j] = _softplus(delta[k, j] + bias[j])
            else:
                out[0, k, j], out[1, k, j] = delta[k, j] + bias[j], one
            if gated:
                out[2, k, j], out[3, k, j] = _silu(z[k, j])
            else:
                out[2, k, j], out[3, k, j] = one, zero


@njit(parallel=True, cache=True, error_model="numpy", fastmath=FASTMATH)
def _forward_kernel(u, delta, A, Bt, Ct, D, z, delta_bias, softplus, lanes, out, states):
    """out = (scan + D * u) * silu(z), with delta_t = softplus(delta + delta_bias) if `softplus`.

    u, delta, out: (b, d, l); z: (b, d, l) or (b, d, 0) (no gate); A: (d, n); Bt, Ct: (b, l, n);
    D, delta_bias: (d,); lanes = LANES. states: (b, c, n, d), filled with the state before steps
    0, CHUNK, 2 CHUNK, ... (c = 0: none saved). One task per batch row and block of lanes channels.
    """
    b, d, l = u.shape
    n = A.shape[1]
    blocks = -(-d // lanes)
    save = states.shape[1] > 0
    gated = z.shape[2] > 0
    for task in prange(b * blocks):
        bi = task // blocks
        j0 = task % blocks * lanes
        w = min(lanes, d - j0)
        a, Dl, bias = _block_params(A, D, delta_bias, j0, lanes)
        s = np.zeros((n, lanes), dtype=u.dtype)
        tiles = np.zeros((4, CHUNK, lanes), dtype=u.dtype)  # u, delta, z, out
        scalars = np.empty((4, CHUNK, lanes), dtype=u.dtype)
        x = np.empty(lanes, dtype=u.dtype)
        y = np.empty(lanes, dtype=u.dtype)
        for t0 in range(0, l, CHUNK):
            steps = min(CHUNK, l - t0)
            if save:
                states[bi, t0 // CHUNK, :, j0:j0 + w] = s[:, :w]
            _load(u, bi, j0, steps, t0, tiles[0])
            _load(delta, bi, j0, steps, t0, tiles[1])
            if gated:
                _load(z, bi, j0, steps, t0, tiles[2])
            _step_scalars(steps, tiles[1], bias, softplus, tiles[2], gated, scalars)
            for k in range(steps):
                for j in range(lanes):
                    x[j] = scalars[0, k, j] * tiles[0, k, j]
                    y[j] = 0
                for m in range(n):
                    bm = Bt[bi, t0 + k, m]
                    cm = Ct[bi, t0 + k, m]
                    for j in range(lanes):
                        s[m, j] = _exp(scalars[0, k, j] * a[m, j]) * s[m, j] + x[j] * bm
                        y[j] += s[m, j] * cm
                for j in range(lanes):
                    tiles[3, k, j] = (y[j] + Dl[j] * tiles[0, k, j]) * scalars[2, k, j]
            _store(tiles[3], bi, j0, steps, t0, out)


@njit(parallel=True, cache=True, error_model="numpy", fastmath=FASTMATH_BACKWARD)
def _backward_kernel(u, delta, A, Bt, Ct, D, z, delta_bias, softplus, lanes, states, dout,
                     groups, du, dD, dBt, ddelta, dA, dCt, dz):
    """Gradients of `_forward_kernel`'s out for dout = dL/dout (b, d, l); one task per batch row
    and group of channel blocks (blocks j, j + groups, j + 2 groups, ...).

    Inputs as `_forward_kernel`'s. Always writes du (b, d, l) and dD (b, d) (summed over l); dBt
    (g, b, l, n) (summed over each group's channels) unless it is empty. When `states` is filled,
    also ddelta (b, d, l), dA (b, d, n), dCt (g, b, l, n) and, with a gate, dz (b, d, l); else
    these may be empty. The caller sums dD, dA over b and dBt, dCt over g.
    """
    b, d, l = u.shape
    n = A.shape[1]
    blocks = -(-d // lanes)
    with_states = states.shape[1] > 0
    want_B = dBt.shape[0] > 0
    gated = z.shape[2] > 0
    zero = u.dtype.type(0)
    for task in prange(b * groups):
        bi = task // groups
        S = np.zeros((CHUNK + 1, n, lanes), dtype=u.dtype)  # S[k]: state before step t0 + k
        E = np.empty((CHUNK, n, lanes), dtype=u.dtype)  # E[k] = exp(delta_{t0 + k} A)
        tiles = np.zeros((7, CHUNK, lanes), dtype=u.dtype)  # u, delta, z, dout, du, ddelta, dz
        scalars = np.empty((4, CHUNK, lanes), dtype=u.dtype)
        x = np.empty((CHUNK, lanes), dtype=u.dtype)  # delta_t u_t
        g = np.empty((n, lanes), dtype=u.dtype)  # dL/ds, carried backwards
        dA_acc = np.empty((n, lanes), dtype=u.dtype)
        dD_acc = np.empty(lanes, dtype=u.dtype)
        dy = np.empty(lanes, dtype=u.dtype)
        gB = np.empty(lanes, dtype=u.dtype)
        gA = np.empty(lanes, dtype=u.dtype)
        y = np.empty(lanes, dtype=u.dtype)
        for block in range(task % groups, blocks, groups):
            j0 = block * lanes
            w = min(lanes, d - j0)
            a, Dl, bias = _block_params(A, D, delta_bias, j0, lanes)
            g[:] = zero
            dA_acc[:] = zero
            dD_acc[:] = zero
            for t0 in range((l - 1) // CHUNK * CHUNK, -1, -CHUNK):
                steps = min(CHUNK, l - t0)
                _load(u, bi, j0, steps, t0, tiles[0])
                _load(delta, bi, j0, steps, t0, tiles[1])
                if gated:
                    _load(z, bi, j0, steps, t0, tiles[2])
                _load(dout, bi, j0, steps, t0, tiles[3])
                _step_scalars(steps, tiles[1], bias, softplus, tiles[2], gated, scalars)
                if with_states:
                    S[0] = zero
                    S[0, :, :w] = states[bi, t0 // CHUNK, :, j0:j0 + w]
                for k in range(steps):  # recompute the chunk's steps
                    for j in range(lanes):
                        x[k, j] = scalars[0, k, j] * tiles[0, k, j]
                    for m in range(n):
                        for j in range(lanes):
                            E[k, m, j] = _exp(scalars[0, k, j] * a[m, j])
                    if with_states:
                        for m in range(n):
                            bm = Bt[bi, t0 + k, m]
                            for j in range(lanes):
                                S[k + 1, m, j] = E[k, m, j] * S[k, m, j] + x[k, j] * bm
                for k in range(steps - 1, -1, -1):  # the adjoint recursion
                    t = t0 + k
                    for j in range(lanes):
                        dy[j] = tiles[3, k, j] * scalars[2, k, j]
                        gB[j] = zero
                        gA[j] = zero
                        y[j] = zero
                    for m in range(n):
                        bm = Bt[bi, t, m]
                        cm = Ct[bi, t, m]
                        sum_B = zero
                        if with_states:
                            sum_C = zero
                            for j in range(lanes):
                                gm = g[m, j] + dy[j] * cm
                                gB[j] += gm * bm
                                h = gm * E[k, m, j] * S[k, m, j]  # dL/d(delta_t A) via exp
                                gA[j] += h * a[m, j]
                                dA_acc[m, j] += h * scalars[0, k, j]
                                y[j] += S[k + 1, m, j] * cm
                                sum_B += gm * x[k, j]
                                sum_C += dy[j] * S[k + 1, m, j]
                                g[m, j] = gm * E[k, m, j]
                            dBt[task % groups, bi, t, m] += sum_B
                            dCt[task % groups, bi, t, m] += sum_C
                        else:
                            for j in range(lanes):
                                gm = g[m, j] + dy[j] * cm
                                gB[j] += gm * bm
                                sum_B += gm * x[k, j]
                                g[m, j] = gm * E[k, m, j]
                            if want_B:
                                dBt[task % groups, bi, t, m] += sum_B
                    for j in range(lanes):
                        ut = tiles[0, k, j]
                        tiles[4, k, j] = scalars[0, k, j] * gB[j] + Dl[j] * dy[j]
                        tiles[5, k, j] = (gA[j] + ut * gB[j]) * scalars[1, k, j]
                        tiles[6, k, j] = tiles[3, k, j] * (y[j] + Dl[j] * ut) * scalars[3, k, j]
                        dD_acc[j] += dy[j] * ut
                _store(tiles[4], bi, j0, steps, t0, du)
                if with_states:
                    _store(tiles[5], bi, j0, steps, t0, ddelta)
                    if gated:
                        _store(tiles[6], bi, j0, steps, t0, dz)
            for j in range(w):
                dD[bi, j0 + j] = dD_acc[j]
                if with_states:
                    for m in range(n):
                        dA[bi, j0 + j, m] = dA_acc[m, j]


def _array(t):
    """A C-contiguous numpy view of t (a copy only when t is not contiguous)."""
    return t.detach().contiguous().numpy()


def _strided(t):
    """A numpy view of t with t's strides, no copy. The kernels move (b, d, l) arrays through
    (CHUNK, LANES) tiles, so any layout reads well; the model's are views of (b, l, d) memory,
    whose transposing copies cost more than the scan at long lengths."""
    return t.detach().numpy()


def _like(t):
    """An empty (b, d, l) tensor in t's layout when t is (b, d, l)- or (b, l, d)-dense, else
    stored as (b, l, d) (t a strided view such as z, half of the in_proj output): the layout of
    the model's activations, so that out_proj reads the scan's output without a copy."""
    if t.is_contiguous() or t.transpose(1, 2).is_contiguous():
        return torch.empty_like(t)
    return t.new_empty(t.shape[0], t.shape[2], t.shape[1]).transpose(1, 2)


def _groups(b, d):
    """Groups of channel blocks per batch row in the backward pass: two tasks per thread."""
    return max(1, min(-(-d // LANES), -(-2 * numba.get_num_threads() // b)))


def _kernel_inputs(u, delta, A, B, C, D, z, delta_bias):
    """Numpy arrays in the kernels' layout: B, C as (b, l, n); an absent z as (b, d, 0)."""
    z = u.new_empty(*u.shape[:2], 0) if z is None else z
    return (_strided(u), _strided(delta), _array(A), _array(B.transpose(1, 2)),
            _array(C.transpose(1, 2)), _array(D), _strided(z), _array(delta_bias))


def _scan_forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, with_states):
    """The output (b, d, l) and the saved states (b, c, n, d), c = 0 unless `with_states`."""
    b, d, l = u.shape
    out = _like(u)
    states = u.new_empty(b, -(-l // CHUNK) if with_states else 0, A.shape[1], d)
    _forward_kernel(*_kernel_inputs(u, delta, A, B, C, D, z, delta_bias), delta_softplus, LANES,
                    _strided(out), states.numpy())
    return out, states


class _SelectiveScanCPU(torch.autograd.Function):
    """The scan with the fused kernels; inputs in the compute dtype, D and delta_bias tensors."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
        # gradients for delta, A, C, z or delta_bias need the states
        with_states = any(ctx.needs_input_grad[i] for i in (1, 2, 4, 6, 7))
        out, states = _scan_forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                    with_states)
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, states)
        ctx.delta_softplus = delta_softplus
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):
        u, delta, A, B, C, D, z, delta_bias, states = ctx.saved_tensors
        needs = ctx.needs_input_grad
        b, d, l = u.shape
        n = A.shape[1]
        groups = _groups(b, d)
        with_states = states.shape[1] > 0

        def buffer(needed, *shape, zeros=False):
            shape = shape if needed else (0,) * len(shape)
            return u.new_zeros(shape) if zeros else u.new_empty(shape)

        du = _like(u)  # gradients in the layout of their inputs
        dD = u.new_empty(b, d)
        dBt = buffer(needs[3] or with_states, groups, b, l, n, zeros=True)
        ddelta = _like(delta) if with_states else buffer(False, b, d, l)
        dA = buffer(with_states, b, d, n)
        dCt = buffer(with_states, groups, b, l, n, zeros=True)
        dz = _like(z) if with_states and z is not None else buffer(False, b, d, l)
        _backward_kernel(*_kernel_inputs(u, delta, A, B, C, D, z, delta_bias),
                         ctx.delta_softplus, LANES, states.numpy(), _strided(dout), groups,
                         _strided(du), dD.numpy(), dBt.numpy(), _strided(ddelta), dA.numpy(),
                         dCt.numpy(), _strided(dz))
        return (du, ddelta if needs[1] else None, dA.sum(0) if needs[2] else None,
                dBt.sum(0).transpose(1, 2) if needs[3] else None,
                dCt.sum(0).transpose(1, 2) if needs[4] else None, dD.sum(0) if needs[5] else None,
                dz if needs[6] else None, ddelta.sum((0, 2)) if needs[7] else None, None)


def selective_scan_cpu(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """Selective scan on CPU tensors with the fused kernels; arguments as `selective_scan_ref`.

    u, delta, z: (b, d, l); A: (d, n); B, C: (b, n, l); D, delta_bias: (d,).
    Computes in float64 for float64 u, else in float32; returns (b, d, l) in u's dtype.
    """
    check_shapes(u, delta, A, B, C, D, z, delta_bias)
    dtype = compute_dtype(u)
    D = u.new_zeros(u.shape[1]) if D is None else D
    delta_bias = u.new_zeros(u.shape[1]) if delta_bias is None else delta_bias
    inputs = [None if t is None else t.to(dtype) for t in (u, delta, A, B, C, D, z, delta_bias)]
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs):
        out = _SelectiveScanCPU.apply(*inputs, delta_softplus)
    else:
        out, _ = _scan_forward(*inputs, delta_softplus, with_states=False)
    return out.to(u.dtype)
