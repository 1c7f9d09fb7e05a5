"""The fused CPU selective scan against the reference: outputs, gradients, modes and dispatch."""
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from numba import njit

from caduceus_lrp import scan_cpu
from caduceus_lrp.scan import scan_path, selective_scan, selective_scan_ref
from caduceus_lrp.scan_cpu import CHUNK, LANES, selective_scan_cpu

NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
# float32: the scans round differently (the reference's einsum sums in another order) and the
# gradients are sums of up to l * n terms; measured differences are below 1e-6 of the largest value.
TOL = {torch.float64: dict(rtol=1e-10, atol=1e-10), torch.float32: dict(rtol=1e-4, atol=1e-5)}


def make_inputs(b, d, n, l, dtype, seed=0, gate=True, bias=True, softplus=True, delta_scale=1.0):
    """Random inputs; delta is positive when no softplus follows."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    delta = delta_scale * rand(b, d, l) - 1.0
    inputs = dict(u=rand(b, d, l), delta=delta if softplus else F.softplus(delta),
                  A=-torch.exp(0.5 * rand(d, n)), B=rand(b, n, l), C=rand(b, n, l), D=rand(d),
                  z=rand(b, d, l) if gate else None, delta_bias=0.3 * rand(d) if bias else None)
    return {k: None if v is None else v.to(dtype).requires_grad_() for k, v in inputs.items()}


def outputs_and_grads(scan, inputs, softplus, seed=1):
    out = scan(**inputs, delta_softplus=softplus)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed),
                           dtype=torch.float64).to(out.dtype)
    present = [k for k in NAMES if inputs[k] is not None and inputs[k].requires_grad]
    grads = torch.autograd.grad(out, [inputs[k] for k in present], grad_out)
    return {"out": out, **dict(zip(present, grads))}


def assert_matches_reference(inputs, softplus, dtype):
    fast = outputs_and_grads(selective_scan_cpu, inputs, softplus)
    ref = outputs_and_grads(selective_scan_ref, inputs, softplus)
    assert fast.keys() == ref.keys()
    for name in ref:
        scale = ref[name].abs().max().item() or 1.0
        torch.testing.assert_close(fast[name] / scale, ref[name] / scale, **TOL[dtype],
                                   msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("b, d, n, l", [(2, 3, 4, 37), (2, 3, 4, 1), (1, 4, 5, 2 * CHUNK + 13),
                                        (2, 2 * LANES + 5, 3, 9)])
def test_matches_reference(b, d, n, l, dtype):
    """Odd lengths, l = 1, batch 1, several checkpoint chunks, several blocks of channels (the last
    one partly filled); with and without the gate z, delta_bias and softplus; outputs and the
    gradients of every input."""
    for gate, bias, softplus in itertools.product([True, False], repeat=3):
        inputs = make_inputs(b, d, n, l, dtype, gate=gate, bias=bias, softplus=softplus)
        assert_matches_reference(inputs, softplus, dtype)


def test_extreme_values_match_reference():
    """softplus above its threshold of 20, exp(delta A) underflowing to 0, saturated gates."""
    inputs = make_inputs(2, 3, 4, 40, torch.float64, delta_scale=15.0)
    with torch.no_grad():
        inputs["z"].mul_(40.0)
        inputs["A"].mul_(50.0)
    assert_matches_reference(inputs, True, torch.float64)


def test_lrp_mode_gives_the_same_u_gradient_and_keeps_no_states():
    """Only u requires grad (delta, B, C detached): the same du; no states are saved."""
    full = make_inputs(2, 3, 4, 2 * CHUNK + 5, torch.float64)
    lrp = {k: v.detach().requires_grad_(k == "u") for k, v in full.items()}
    out = selective_scan_cpu(**lrp, delta_softplus=True)
    assert out.grad_fn.saved_tensors[-1].shape == (2, 0, 4, 3)  # no states saved
    (du,) = torch.autograd.grad(out, lrp["u"], torch.ones_like(out))
    (du_ref,) = torch.autograd.grad(selective_scan_ref(**full, delta_softplus=True), full["u"],
                                    torch.ones_like(out))
    torch.testing.assert_close(du, du_ref, rtol=1e-10, atol=1e-10)


def test_saves_one_state_per_chunk():
    """Memory is bounded: the forward keeps (b, ceil(l / CHUNK), n, d) states, not (b, d, l, n)."""
    out = selective_scan_cpu(**make_inputs(2, 3, 4, 3 * CHUNK + 1, torch.float32))
    assert out.grad_fn.saved_tensors[-1].shape == (2, 4, 4, 3)


def test_non_contiguous_inputs():
    """Inputs that are views with other strides (as the model passes them) give the same results."""
    inputs = make_inputs(2, 3, 4, 30, torch.float64)
    strided = {k: v.detach().transpose(-1, 0).contiguous().transpose(-1, 0).requires_grad_()
               if v.dim() == 3 else v for k, v in inputs.items()}
    assert not strided["u"].is_contiguous()
    fast = outputs_and_grads(selective_scan_cpu, strided, True)
    ref = outputs_and_grads(selective_scan_cpu, inputs, True)
    for name in ref:  # gradients come back in their input's layout: torch's sums over (b, l)
        # for delta_bias may then add in another order
        torch.testing.assert_close(fast[name], ref[name], rtol=1e-13, atol=1e-13)


def test_output_and_gradients_follow_the_layout_of_u():
    """(b, d, l)-contiguous u gives a contiguous output; a (b, l, d)-backed view (the model's
    layout) gives a (b, l, d)-backed one, so that neither side pays a transposing copy."""
    inputs = make_inputs(2, 3, 4, 30, torch.float64)
    out = selective_scan_cpu(**inputs, delta_softplus=True)
    assert out.is_contiguous()
    u_grad, = torch.autograd.grad(out.sum(), [inputs["u"]])
    assert u_grad.is_contiguous()
    last = {k: v.detach().transpose(1, 2).contiguous().transpose(1, 2).requires_grad_()
            if k in ("u", "delta", "z") else v for k, v in inputs.items()}
    out = selective_scan_cpu(**last, delta_softplus=True)
    assert out.transpose(1, 2).is_contiguous()
    u_grad, = torch.autograd.grad(out.sum(), [last["u"]])
    assert u_grad.transpose(1, 2).is_contiguous()


def test_no_grad_output_equals_grad_output():
    inputs = make_inputs(2, 3, 4, 50, torch.float64)
    with torch.no_grad():
        plain = selective_scan_cpu(**inputs, delta_softplus=True)
    torch.testing.assert_close(plain, selective_scan_cpu(**inputs, delta_softplus=True),
                               rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_inputs_compute_in_float32(dtype):
    """Half inputs are computed in float32 and returned in their own dtype."""
    inputs = make_inputs(2, 3, 4, 20, dtype)
    out = selective_scan_cpu(**inputs, delta_softplus=True)
    widened = {k: v.detach().float() for k, v in inputs.items()}
    assert out.dtype == dtype
    torch.testing.assert_close(out, selective_scan_cpu(**widened, delta_softplus=True).to(dtype),
                               rtol=0, atol=0)
    (du,) = torch.autograd.grad(out, inputs["u"], torch.ones_like(out))
    assert du.dtype == dtype


def test_dispatch():
    u = torch.zeros(1, 2, 3)
    assert scan_path(u) == "cpu_fused"
    assert scan_path(u.to("meta")) == "reference"
    inputs = make_inputs(1, 2, 3, 9, torch.float64)
    torch.testing.assert_close(selective_scan(**inputs), selective_scan_cpu(**inputs),
                               rtol=0, atol=0)


def test_shape_errors_name_the_argument():
    inputs = make_inputs(2, 3, 4, 5, torch.float32)
    inputs["C"] = inputs["C"][:, :, :4]
    with pytest.raises(ValueError, match=r"C has shape \(2, 4, 4\), expected \(2, 4, 5\)"):
        selective_scan_cpu(**inputs)


@njit(error_model="numpy")
def _elementwise(x, out):
    for i in range(x.shape[0]):
        out[0, i] = scan_cpu._exp(x[i])
        out[1, i], out[2, i] = scan_cpu._softplus(x[i])
        out[3, i], out[4, i] = scan_cpu._silu(x[i])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_math_against_numpy(dtype):
    """The kernels' own exp, softplus and silu (with derivatives) within 4 ulp of float64 numpy
    on [-750, 750] (measured: 1 ulp for exp, 3 for softplus), results within 1e6 x the smallest
    normal number where they underflow; exp overflows to inf; NaN stays NaN. silu' = s (1 + z
    (1 - s)) (torch's formula) cancels, so its ulp are those of its terms' size, 1 + |z|."""
    x = np.concatenate([np.linspace(-750, 750, 20001), np.linspace(-30, 30, 20001),
                        [np.nan, np.inf, -np.inf]]).astype(dtype)
    out = np.empty((5, x.size), dtype)
    _elementwise(x, out)
    w = x.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        sigmoid = 1 / (1 + np.exp(-w))
        expected = [np.exp(w), np.where(w > 20, w, np.log1p(np.exp(w))),
                    np.where(w > 20, 1, sigmoid), w * sigmoid, sigmoid * (1 + w * (1 - sigmoid))]
    flush = 1e6 * np.finfo(dtype).tiny
    for name, got, want in zip(["exp", "softplus", "softplus'", "silu", "silu'"], out, expected):
        with np.errstate(over="ignore"):
            want = want.astype(dtype).astype(np.float64)
        normal = np.isfinite(want) & (np.abs(want) > flush)
        size = np.abs(want[normal]) if name != "silu'" else 1 + np.abs(w[normal])
        ulps = np.abs(got[normal] - want[normal]) / np.spacing(size.astype(dtype))
        assert ulps.max() <= 4, f"{name}: {ulps.max()} ulp at x = {x[normal][ulps.argmax()]}"
        assert np.all(np.abs(got[np.abs(want) <= flush]) <= flush), name
    assert np.isnan(out[:, -3]).all()
    assert out[0, -2] == np.inf and out[0, -1] == 0.0
    assert np.all(out[0, x > np.log(np.finfo(dtype).max) + 0.01] == np.inf)
