"""The fused CPU selective scan: numba kernels for its forward and backward, and the autograd Function.

Glossary: b batch, d channels (d_inner), n state size (d_state), l length, c saved states per
row, g channel groups.

One kernel call runs the whole of `selective_scan_ref` (delta_bias, softplus, the recurrence,
D * u, the silu(z) gate), one task per (b, d) row holding its state s (n,); nothing of size
(b, d, l, n) exists. The forward keeps s only at the start of every CHUNK steps; the backward
walks the chunks from the end, recomputes their states from the saved one into a (CHUNK, n)
buffer per task, and runs the adjoint recursion

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

from caduceus_lrp.scan import compute_dtype

__all__ = ["CHUNK", "selective_scan_cpu"]

CHUNK = 64  # steps between saved states: memory n / CHUNK of a (b, d, l) tensor


@intrinsic
def _pow2(typingctx, k):
    """2.0 ** k for a float k holding an integer in the normal exponent range, built from its bits."""
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


@overload(_exp)
def _exp_numba(x):
    """exp for float32 / float64 to about 1 ulp: x = k ln2 + r, |r| <= ln2 / 2, exp(r) by its
    Taylor polynomial (degree 7 / 13), 2^k from the exponent bits (as 2^(k-1) * 2 so that k may
    reach the overflow threshold). Below exp's normal range it returns 0, above it inf; NaN stays NaN."""
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


@overload(_log1p_unit)
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


@overload(_softplus)
def _softplus_numba(x):
    """softplus(x) = max(x, 0) + log1p(exp(-|x|)), sigmoid from exp(-|x|): no overflow, no branches."""
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


@overload(_silu)
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


@njit(cache=True, error_model="numpy")
def _step_scalars(delta, bias, softplus, z, out):
    """The per-step scalars of one row's chunk, in loops the compiler vectorises.

    delta: (k,); z: (k,) or (0,) (no gate); out (4, CHUNK): rows delta_t, d delta_t / d delta,
    silu(z_t), d silu(z_t) / d z_t (1 and 0 without a gate).
    """
    one = delta.dtype.type(1)
    zero = delta.dtype.type(0)
    steps = delta.shape[0]
    if softplus:
        for k in range(steps):
            out[0, k], out[1, k] = _softplus(delta[k] + bias)
    else:
        for k in range(steps):
            out[0, k], out[1, k] = delta[k] + bias, one
    if z.shape[0] > 0:
        for k in range(steps):
            out[2, k], out[3, k] = _silu(z[k])
    else:
        out[2, :steps] = one
        out[3, :steps] = zero


@njit(parallel=True, cache=True, error_model="numpy")
def _forward_kernel(u, delta, A, Bt, Ct, D, z, delta_bias, softplus, out, states):
    """out = (scan + D * u) * silu(z), with delta_t = softplus(delta + delta_bias) if `softplus`.

    u, delta, out: (b, d, l); z: (b, d, l) or (b, d, 0) (no gate); A: (d, n); Bt, Ct: (b, l, n);
    D, delta_bias: (d,). states: (b, d, c, n), filled with the state before steps 0, CHUNK,
    2 CHUNK, ... (c = 0: none saved).
    """
    b, d, l = u.shape
    n = A.shape[1]
    save = states.shape[2] > 0
    for row in prange(b * d):
        bi = row // d
        di = row % d
        a = A[di]
        s = np.zeros(n, dtype=u.dtype)
        scalars = np.empty((4, CHUNK), dtype=u.dtype)
        for t0 in range(0, l, CHUNK):
            t1 = min(l, t0 + CHUNK)
            if save:
                states[bi, di, t0 // CHUNK] = s
            _step_scalars(delta[bi, di, t0:t1], delta_bias[di], softplus,
                          z[bi, di, t0:t1], scalars)
            for t in range(t0, t1):
                dt = scalars[0, t - t0]
                x = dt * u[bi, di, t]
                for m in range(n):
                    s[m] = _exp(dt * a[m]) * s[m] + x * Bt[bi, t, m]
                y = s[0] * Ct[bi, t, 0]
                for m in range(1, n):
                    y += s[m] * Ct[bi, t, m]
                out[bi, di, t] = (y + D[di] * u[bi, di, t]) * scalars[2, t - t0]


@njit(parallel=True, cache=True, error_model="numpy")
def _backward_kernel(u, delta, A, Bt, Ct, D, z, delta_bias, softplus, states, dout, groups,
                     du, dD, dBt, ddelta, dA, dCt, dz):
    """Gradients of `_forward_kernel`'s out for dout = dL/dout (b, d, l); one task per
    (batch row, group of channels d = j, j + groups, j + 2 groups, ...).

    Always writes du (b, d, l) and dD (b, d) (summed over l); dBt (g, b, l, n) (summed over each
    group's channels) unless it is empty. When `states` is filled, also ddelta (b, d, l), dA
    (b, d, n), dCt (g, b, l, n) and, with a gate, dz (b, d, l); else these may be empty.
    The caller sums dD, dA over b and dBt, dCt over g.
    """
    b, d, l = u.shape
    n = A.shape[1]
    with_states = states.shape[2] > 0
    want_B = dBt.shape[0] > 0
    gated = z.shape[2] > 0
    zero = u.dtype.type(0)
    for task in prange(b * groups):
        bi = task // groups
        gi = task % groups
        S = np.zeros((CHUNK + 1, n), dtype=u.dtype)  # S[k]: state before step t0 + k
        E = np.empty((CHUNK, n), dtype=u.dtype)  # E[k] = exp(delta_{t0 + k} A)
        G = np.empty((CHUNK, n), dtype=u.dtype)  # G[k] = dL/ds after step t0 + k
        scalars = np.empty((4, CHUNK), dtype=u.dtype)
        dys = np.empty(CHUNK, dtype=u.dtype)  # dL/dy (before the gate)
        s = np.empty(n, dtype=u.dtype)
        g = np.empty(n, dtype=u.dtype)  # dL/ds, carried backwards
        dA_row = np.empty(n, dtype=u.dtype)
        for di in range(gi, d, groups):
            a = A[di]
            g[:] = zero
            dA_row[:] = zero
            dD_row = zero
            for t0 in range((l - 1) // CHUNK * CHUNK, -1, -CHUNK):
                steps = min(CHUNK, l - t0)
                _step_scalars(delta[bi, di, t0:t0 + steps], delta_bias[di], softplus,
                              z[bi, di, t0:t0 + steps], scalars)
                if with_states:
                    s[:] = states[bi, di, t0 // CHUNK]
                    S[0] = s
                for k in range(steps):  # recompute the chunk's steps
                    dt = scalars[0, k]
                    for m in range(n):
                        E[k, m] = _exp(dt * a[m])
                    if with_states:
                        x = dt * u[bi, di, t0 + k]
                        for m in range(n):
                            s[m] = E[k, m] * s[m] + x * Bt[bi, t0 + k, m]
                            S[k + 1, m] = s[m]
                for k in range(steps - 1, -1, -1):  # the adjoint recursion
                    dy = dout[bi, di, t0 + k] * scalars[2, k]
                    dys[k] = dy
                    for m in range(n):
                        g[m] += dy * Ct[bi, t0 + k, m]
                        G[k, m] = g[m]
                        g[m] *= E[k, m]
                for k in range(steps):  # gradients of the per-step inputs
                    t = t0 + k
                    dt = scalars[0, k]
                    ut = u[bi, di, t]
                    dy = dys[k]
                    gB = G[k, 0] * Bt[bi, t, 0]
                    for m in range(1, n):
                        gB += G[k, m] * Bt[bi, t, m]
                    du[bi, di, t] = dt * gB + D[di] * dy
                    dD_row += dy * ut
                    if with_states:
                        gA = G[k, 0] * E[k, 0] * S[k, 0] * a[0]  # through exp(delta_t A)
                        y = S[k + 1, 0] * Ct[bi, t, 0]
                        for m in range(1, n):
                            gA += G[k, m] * E[k, m] * S[k, m] * a[m]
                            y += S[k + 1, m] * Ct[bi, t, m]
                        ddelta[bi, di, t] = (gA + ut * gB) * scalars[1, k]
                        if gated:
                            dz[bi, di, t] = dout[bi, di, t] * (y + D[di] * ut) * scalars[3, k]
                if want_B:
                    for k in range(steps):
                        x = scalars[0, k] * u[bi, di, t0 + k]
                        for m in range(n):
                            dBt[gi, bi, t0 + k, m] += G[k, m] * x
                if with_states:
                    for k in range(steps):
                        dt = scalars[0, k]
                        for m in range(n):
                            dCt[gi, bi, t0 + k, m] += dys[k] * S[k + 1, m]
                            dA_row[m] += G[k, m] * E[k, m] * S[k, m] * dt
            if with_states:
                dA[bi, di] = dA_row
            dD[bi, di] = dD_row


def _check_shapes(u, delta, A, B, C, D, z, delta_bias):
    b, d, l = u.shape
    n = A.shape[-1]
    expected = {"delta": (delta, (b, d, l)), "A": (A, (d, n)), "B": (B, (b, n, l)),
                "C": (C, (b, n, l)), "D": (D, (d,)), "z": (z, (b, d, l)),
                "delta_bias": (delta_bias, (d,))}
    for name, (tensor, shape) in expected.items():
        if tensor is not None and tuple(tensor.shape) != shape:
            raise ValueError(f"selective_scan: {name} has shape {tuple(tensor.shape)}, "
                             f"expected {shape} for u of shape {(b, d, l)} and A with n = {n}")


def _array(t):
    """A C-contiguous numpy view of t (a copy only when t is not contiguous)."""
    return t.detach().contiguous().numpy()


def _groups(b, d):
    """Channel groups per batch row in the backward pass: at least two tasks per thread."""
    return max(1, min(d, -(-2 * numba.get_num_threads() // b)))


def _kernel_inputs(u, delta, A, B, C, D, z, delta_bias):
    """Numpy arrays in the kernels' layout: B, C as (b, l, n); an absent z as (b, d, 0)."""
    z = u.new_empty(*u.shape[:2], 0) if z is None else z
    return (_array(u), _array(delta), _array(A), _array(B.transpose(1, 2)),
            _array(C.transpose(1, 2)), _array(D), _array(z), _array(delta_bias))


def _scan_forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, with_states):
    """The output (b, d, l) and the saved states (b, d, c, n), c = 0 unless `with_states`."""
    b, d, l = u.shape
    out = torch.empty_like(u)
    states = u.new_empty(b, d, -(-l // CHUNK) if with_states else 0, A.shape[1])
    _forward_kernel(*_kernel_inputs(u, delta, A, B, C, D, z, delta_bias), delta_softplus,
                    out.numpy(), states.numpy())
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
    def backward(ctx, dout):
        u, delta, A, B, C, D, z, delta_bias, states = ctx.saved_tensors
        needs = ctx.needs_input_grad
        b, d, l = u.shape
        n = A.shape[1]
        groups = _groups(b, d)
        with_states = states.shape[2] > 0

        def buffer(needed, *shape, zeros=False):
            shape = shape if needed else (0,) * len(shape)
            return u.new_zeros(shape) if zeros else u.new_empty(shape)

        du = torch.empty_like(u)
        dD = u.new_empty(b, d)
        dBt = buffer(needs[3] or with_states, groups, b, l, n, zeros=True)
        ddelta = buffer(with_states, b, d, l)
        dA = buffer(with_states, b, d, n)
        dCt = buffer(with_states, groups, b, l, n, zeros=True)
        dz = buffer(with_states and z is not None, b, d, l)
        _backward_kernel(*_kernel_inputs(u, delta, A, B, C, D, z, delta_bias),
                         ctx.delta_softplus, states.numpy(), _array(dout), groups,
                         du.numpy(), dD.numpy(), dBt.numpy(), ddelta.numpy(), dA.numpy(),
                         dCt.numpy(), dz.numpy())
        return (du, ddelta if needs[1] else None, dA.sum(0) if needs[2] else None,
                dBt.sum(0).transpose(1, 2) if needs[3] else None,
                dCt.sum(0).transpose(1, 2) if needs[4] else None, dD.sum(0) if needs[5] else None,
                dz if needs[6] else None, ddelta.sum((0, 2)) if needs[7] else None, None)


def selective_scan_cpu(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """Selective scan on CPU tensors with the fused kernels; arguments as `selective_scan_ref`.

    u, delta, z: (b, d, l); A: (d, n); B, C: (b, n, l); D, delta_bias: (d,).
    Computes in float64 for float64 u, else in float32; returns (b, d, l) in u's dtype.
    """
    _check_shapes(u, delta, A, B, C, D, z, delta_bias)
    dtype = compute_dtype(u)
    D = u.new_zeros(u.shape[1]) if D is None else D
    delta_bias = u.new_zeros(u.shape[1]) if delta_bias is None else delta_bias
    inputs = [None if t is None else t.to(dtype) for t in (u, delta, A, B, C, D, z, delta_bias)]
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs):
        out = _SelectiveScanCPU.apply(*inputs, delta_softplus)
    else:
        out, _ = _scan_forward(*inputs, delta_softplus, with_states=False)
    return out.to(u.dtype)
