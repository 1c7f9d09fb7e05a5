"""The Triton kernels of the selective scan, forward and backward; `scan_triton` launches them.

Glossary and equations: `scan_triton`. One program (one warp) per batch row and block of BLOCK_D
channels; the state s is an (NP, BLOCK_D) tile in registers. The kernels take every tensor through
its strides and are compiled once for every length (`do_not_specialize`).
"""
from __future__ import annotations

import triton
import triton.language as tl

__all__ = ["fwd_kernel", "bwd_kernel"]


# ---------------------------------------------------------------------------------------------
# Element-wise helpers (float32)
# ---------------------------------------------------------------------------------------------
@triton.jit
def _sigmoid_parts(x):
    """(w, sigmoid(x)) with w = exp(-|x|): no overflow for any x."""
    w = tl.exp(-tl.abs(x))
    return w, tl.where(x >= 0, 1.0, w) / (1.0 + w)


@triton.jit
def _softplus(x):
    """(softplus(x), softplus'(x)) as torch's: x itself (derivative 1) above 20, else
    max(x, 0) + log(1 + exp(-|x|)), log(1 + w) accurate for small w (w / ((1 + w) - 1) corrects
    the rounding of 1 + w)."""
    w, sig = _sigmoid_parts(x)
    v = 1.0 + w
    den = v - 1.0
    log1p = tl.where(den == 0.0, w, tl.log(v) * (w / tl.where(den == 0.0, 1.0, den)))
    big = x > 20.0
    return tl.where(big, x, tl.maximum(x, 0.0) + log1p), tl.where(big, 1.0, sig)


@triton.jit
def _delta(raw, SOFTPLUS: tl.constexpr):
    """(delta_t, d delta_t / d raw) for raw = delta + delta_bias."""
    if SOFTPLUS:
        dl, dsp = _softplus(raw)
    else:
        dl = raw
        dsp = tl.full(raw.shape, 1.0, tl.float32)
    return dl, dsp


@triton.jit
def _gate(z, HAS_Z: tl.constexpr):
    """(silu(z), silu'(z)) = (z s, s (1 + z (1 - s))), s = sigmoid(z); (1, 0) without a gate."""
    if HAS_Z:
        _, s = _sigmoid_parts(z)
        gate = z * s
        dgate = s * (1.0 + z * (1.0 - s))
    else:
        gate = tl.full(z.shape, 1.0, tl.float32)
        dgate = tl.zeros(z.shape, tl.float32)
    return gate, dgate


@triton.jit
def _load_step(u_b, ou, delta_b, odl, z_b, oz, B_b, oB, C_b, oC, t, s_ul, s_dl, s_zl, s_Bl,
               s_Cl, dmask, nmask, ok, HAS_Z: tl.constexpr, LOAD_C: tl.constexpr):
    """u_t, delta_t, z_t (BLOCK_D,) and B_t, C_t (NP,) in float32, zeros where not `ok`: each
    tensor at its row's base pointer (`*_b`, scalar) + t * its stride along l + the offsets of
    the block's channels or states (`o*`, int32)."""
    t = tl.cast(t, tl.int64)
    rows = dmask & ok
    cols = nmask & ok
    u = tl.load(u_b + t * s_ul + ou, mask=rows, other=0.0).to(tl.float32)
    dr = tl.load(delta_b + t * s_dl + odl, mask=rows, other=0.0).to(tl.float32)
    if HAS_Z:
        z = tl.load(z_b + t * s_zl + oz, mask=rows, other=0.0).to(tl.float32)
    else:
        z = tl.zeros(u.shape, tl.float32)
    Bt = tl.load(B_b + t * s_Bl + oB, mask=cols, other=0.0).to(tl.float32)
    if LOAD_C:
        Ct = tl.load(C_b + t * s_Cl + oC, mask=cols, other=0.0).to(tl.float32)
    else:
        Ct = tl.zeros(Bt.shape, tl.float32)
    return u, dr, z, Bt, Ct


if not isinstance(_sigmoid_parts, triton.runtime.JITFunction):
    # Under TRITON_INTERPRET=1 each call of a jit function re-patches triton.language (about a
    # millisecond); helpers called from a running kernel need none, so they run as plain Python.
    _sigmoid_parts, _softplus, _delta, _gate, _load_step = (
        f.fn for f in (_sigmoid_parts, _softplus, _delta, _gate, _load_step))


# ---------------------------------------------------------------------------------------------
# Forward
# ---------------------------------------------------------------------------------------------
@triton.jit(do_not_specialize=["d", "l", "n"])  # one build for every length
def fwd_kernel(u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, out_ptr,
                states_ptr, d, l, n,
                s_ub, s_ud, s_ul, s_db, s_dd, s_dl, s_Ad, s_An, s_Bb, s_Bn, s_Bl,
                s_Cb, s_Cn, s_Cl, s_zb, s_zd, s_zl, s_ob, s_od, s_ol,
                BLOCK_D: tl.constexpr, NP: tl.constexpr, CHUNK: tl.constexpr,
                SOFTPLUS: tl.constexpr, HAS_Z: tl.constexpr, SAVE_STATES: tl.constexpr):
    """out (b, d, l) = (scan + D u) silu(z) for one batch row (program_id 1) and BLOCK_D
    channels (program_id 0). u, delta, z, out: (b, d, l) any strides; A: (d, n); B, C: (b, n, l);
    D, delta_bias: (d,) contiguous float32. SAVE_STATES: states (b, ceil(l / CHUNK), NP, d)
    float32 gets s before steps 0, CHUNK, 2 CHUNK, ..."""
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, NP)
    dmask = offs_d < d
    nmask = offs_n < n
    mask2 = nmask[:, None] & dmask[None, :]
    A = tl.load(A_ptr + offs_n[:, None] * s_An + offs_d[None, :] * s_Ad, mask=mask2,
                other=0.0).to(tl.float32)
    Dv = tl.load(D_ptr + offs_d, mask=dmask, other=0.0).to(tl.float32)
    bias = tl.load(bias_ptr + offs_d, mask=dmask, other=0.0).to(tl.float32)
    u_b = u_ptr + pid_b * s_ub
    delta_b = delta_ptr + pid_b * s_db
    z_b = z_ptr + pid_b * s_zb
    out_b = out_ptr + pid_b * s_ob
    B_b = B_ptr + pid_b * s_Bb
    C_b = C_ptr + pid_b * s_Cb
    ou = offs_d * s_ud
    odl = offs_d * s_dd
    oz = offs_d * s_zd
    oo = offs_d * s_od
    oB = offs_n * s_Bn
    oC = offs_n * s_Cn
    n_chunks = tl.cdiv(l, CHUNK)
    st_b = states_ptr + pid_b * n_chunks * NP * d  # (b, n_chunks, NP, d)
    st_o = offs_n[:, None] * d + offs_d[None, :]

    s = tl.zeros((NP, BLOCK_D), tl.float32)
    nu, ndr, nz, nB, nC = _load_step(u_b, ou, delta_b, odl, z_b, oz, B_b, oB, C_b, oC, 0, s_ul,
                                     s_dl, s_zl, s_Bl, s_Cl, dmask, nmask, l > 0, HAS_Z, True)
    for t in range(0, l):
        u, dr, z, Bt, Ct = nu, ndr, nz, nB, nC
        nu, ndr, nz, nB, nC = _load_step(u_b, ou, delta_b, odl, z_b, oz, B_b, oB, C_b, oC, t + 1,
                                         s_ul, s_dl, s_zl, s_Bl, s_Cl, dmask, nmask, t + 1 < l,
                                         HAS_Z, True)
        if SAVE_STATES:
            if t % CHUNK == 0:
                tl.store(st_b + tl.cast(t // CHUNK, tl.int64) * NP * d + st_o, s, mask=mask2)
        dl, _ = _delta(dr + bias, SOFTPLUS)
        s = tl.exp(dl[None, :] * A) * s + (dl * u)[None, :] * Bt[:, None]
        y = tl.sum(s * Ct[:, None], axis=0) + Dv * u
        gate, _ = _gate(z, HAS_Z)
        tl.store(out_b + tl.cast(t, tl.int64) * s_ol + oo, y * gate, mask=dmask)


# ---------------------------------------------------------------------------------------------
# Backward
# ---------------------------------------------------------------------------------------------
@triton.jit(do_not_specialize=["d", "l", "n", "t_lo", "t_hi", "seg"])
def bwd_kernel(u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, dout_ptr,
                states_ptr, scratch_ptr, du_ptr, ddelta_ptr, dz_ptr, dB_ptr, dC_ptr, dA_ptr,
                dD_ptr, dbias_ptr, carry_ptr, d, l, n, t_lo, t_hi, seg,
                s_ub, s_ud, s_ul, s_db, s_dd, s_dl, s_Ad, s_An, s_Bb, s_Bn, s_Bl,
                s_Cb, s_Cn, s_Cl, s_zb, s_zd, s_zl, s_gb, s_gd, s_gl,
                s_dub, s_dud, s_dul, s_ddb, s_ddd, s_ddl, s_dzb, s_dzd, s_dzl,
                BLOCK_D: tl.constexpr, NP: tl.constexpr, CHUNK: tl.constexpr,
                SOFTPLUS: tl.constexpr, HAS_Z: tl.constexpr, WITH_STATES: tl.constexpr,
                NEED_DB: tl.constexpr):
    """Gradients for steps t_lo <= t < t_hi (t_lo a multiple of CHUNK) of one batch row
    (program_id 1) and BLOCK_D channels (program_id 0), chunks walked from the end.

    Inputs as `_fwd_kernel`'s, dout (b, d, l) any strides, states as the forward saved them.
    scratch: (b, d / BLOCK_D, CHUNK, NP, BLOCK_D) float32. Writes du (b, d, l) always; with
    NEED_DB the partial sums dB (d / BLOCK_D, b, n, seg) over the block's channels at t - t_lo;
    with WITH_STATES also ddelta (b, d, l), dC partial sums like dB's and, with HAS_Z, dz
    (b, d, l). Carried across launches (read, updated, written; float32): carry (b, NP, d) =
    a_{t_hi} g_{t_hi}; dD (b, d), and with WITH_STATES dA (b, NP, d) and ddelta_bias (b, d),
    summed over the steps done so far.
    """
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, NP)
    dmask = offs_d < d
    nmask = offs_n < n
    mask2 = nmask[:, None] & dmask[None, :]
    A = tl.load(A_ptr + offs_n[:, None] * s_An + offs_d[None, :] * s_Ad, mask=mask2,
                other=0.0).to(tl.float32)
    Dv = tl.load(D_ptr + offs_d, mask=dmask, other=0.0).to(tl.float32)
    bias = tl.load(bias_ptr + offs_d, mask=dmask, other=0.0).to(tl.float32)
    u_b = u_ptr + pid_b * s_ub
    delta_b = delta_ptr + pid_b * s_db
    z_b = z_ptr + pid_b * s_zb
    dout_b = dout_ptr + pid_b * s_gb
    du_b = du_ptr + pid_b * s_dub
    ddelta_b = ddelta_ptr + pid_b * s_ddb
    dz_b = dz_ptr + pid_b * s_dzb
    B_b = B_ptr + pid_b * s_Bb
    C_b = C_ptr + pid_b * s_Cb
    ou = offs_d * s_ud
    odl = offs_d * s_dd
    oz = offs_d * s_zd
    og = offs_d * s_gd
    oB = offs_n * s_Bn
    oC = offs_n * s_Cn
    # partial sums (d / BLOCK_D, b, n, seg) at t - t_lo
    part_o = (pid_d * tl.num_programs(1) + pid_b) * n * seg - t_lo
    op = offs_n * seg
    acc_b = pid_b * NP * d  # (b, NP, d) buffers
    tile_o = offs_n[:, None] * d + offs_d[None, :]
    n_chunks = tl.cdiv(l, CHUNK)
    st_b = states_ptr + pid_b * n_chunks * NP * d
    sc_b = scratch_ptr + (pid_b * tl.num_programs(0) + pid_d) * CHUNK * NP * BLOCK_D
    sc_o = offs_n[:, None] * BLOCK_D + tl.arange(0, BLOCK_D)[None, :]

    carry = tl.load(carry_ptr + acc_b + tile_o, mask=mask2, other=0.0)
    dD_acc = tl.load(dD_ptr + pid_b * d + offs_d, mask=dmask, other=0.0)
    if WITH_STATES:
        dA_acc = tl.load(dA_ptr + acc_b + tile_o, mask=mask2, other=0.0)
        dbias_acc = tl.load(dbias_ptr + pid_b * d + offs_d, mask=dmask, other=0.0)
    seg_chunks = tl.cdiv(t_hi - t_lo, CHUNK)
    for ci in range(0, seg_chunks):
        c0 = t_lo + (seg_chunks - 1 - ci) * CHUNK
        steps = tl.minimum(c0 + CHUNK, t_hi) - c0
        if WITH_STATES:  # the chunk's states s_{t-1} into the scratch slab
            s = tl.load(st_b + tl.cast(c0 // CHUNK, tl.int64) * NP * d + tile_o, mask=mask2,
                        other=0.0)
            nu, ndr, nz, nB, nC = _load_step(u_b, ou, delta_b, odl, z_b, oz, B_b, oB, C_b, oC,
                                             c0, s_ul, s_dl, s_zl, s_Bl, s_Cl, dmask, nmask,
                                             steps > 0, False, False)
            for k in range(0, steps):
                u, dr, Bt = nu, ndr, nB
                nu, ndr, nz, nB, nC = _load_step(u_b, ou, delta_b, odl, z_b, oz, B_b, oB, C_b,
                                                 oC, c0 + k + 1, s_ul, s_dl, s_zl, s_Bl, s_Cl,
                                                 dmask, nmask, k + 1 < steps, False, False)
                tl.store(sc_b + k * NP * BLOCK_D + sc_o, s)
                dl, _ = _delta(dr + bias, SOFTPLUS)
                s = tl.exp(dl[None, :] * A) * s + (dl * u)[None, :] * Bt[:, None]
            tl.debug_barrier()
        # the adjoint recursion, k = steps - 1 down to 0
        t = c0 + steps - 1
        nu, ndr, nz, nB, nC = _load_step(u_b, ou, delta_b, odl, z_b, oz, B_b, oB, C_b, oC, t,
                                         s_ul, s_dl, s_zl, s_Bl, s_Cl, dmask, nmask, steps > 0,
                                         HAS_Z, True)
        ng = tl.load(dout_b + tl.cast(t, tl.int64) * s_gl + og, mask=dmask & (steps > 0),
                     other=0.0).to(tl.float32)
        if WITH_STATES:
            nsp = tl.load(sc_b + (steps - 1) * NP * BLOCK_D + sc_o)
        for kk in range(0, steps):
            k = steps - 1 - kk
            t = c0 + k
            u, dr, z, Bt, Ct, go = nu, ndr, nz, nB, nC, ng
            nu, ndr, nz, nB, nC = _load_step(u_b, ou, delta_b, odl, z_b, oz, B_b, oB, C_b, oC,
                                             t - 1, s_ul, s_dl, s_zl, s_Bl, s_Cl, dmask, nmask,
                                             k > 0, HAS_Z, True)
            ng = tl.load(dout_b + tl.cast(t - 1, tl.int64) * s_gl + og, mask=dmask & (k > 0),
                         other=0.0).to(tl.float32)
            if WITH_STATES:
                sp = nsp
                nsp = tl.load(sc_b + (k - 1) * NP * BLOCK_D + sc_o, mask=mask2 & (k > 0),
                              other=0.0)
            dl, dsp = _delta(dr + bias, SOFTPLUS)
            gate, dgate = _gate(z, HAS_Z)
            dy = go * gate
            x = dl * u
            a = tl.exp(dl[None, :] * A)
            g = carry + dy[None, :] * Ct[:, None]
            gB = tl.sum(g * Bt[:, None], axis=0)
            t64 = tl.cast(t, tl.int64)
            tl.store(du_b + t64 * s_dul + offs_d * s_dud, dl * gB + Dv * dy, mask=dmask)
            dD_acc += dy * u
            if NEED_DB:
                tl.store(dB_ptr + part_o + t + op, tl.sum(g * x[None, :], axis=1), mask=nmask)
            if WITH_STATES:
                s = a * sp + x[None, :] * Bt[:, None]
                h = g * a * sp
                gA = tl.sum(h * A, axis=0)
                dA_acc += h * dl[None, :]
                ddl = (gA + u * gB) * dsp
                dbias_acc += ddl
                tl.store(ddelta_b + t64 * s_ddl + offs_d * s_ddd, ddl, mask=dmask)
                tl.store(dC_ptr + part_o + t + op, tl.sum(dy[None, :] * s, axis=1), mask=nmask)
                if HAS_Z:
                    y = tl.sum(s * Ct[:, None], axis=0) + Dv * u
                    tl.store(dz_b + t64 * s_dzl + offs_d * s_dzd, go * y * dgate, mask=dmask)
            carry = g * a
        if WITH_STATES:
            tl.debug_barrier()  # the next chunk's recomputation overwrites the slab
    tl.store(carry_ptr + acc_b + tile_o, carry, mask=mask2)
    tl.store(dD_ptr + pid_b * d + offs_d, dD_acc, mask=dmask)
    if WITH_STATES:
        tl.store(dA_ptr + acc_b + tile_o, dA_acc, mask=mask2)
        tl.store(dbias_ptr + pid_b * d + offs_d, dbias_acc, mask=dmask)
