"""LRP rules: each against an independent derivation on its sub-block (float64), and the whole
model's invariants: conservation, RC equivariance, batch independence, unchanged forward values."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F
from helpers import DT, ROOT, classifier, gen, onehot, randn

from caduceus_lrp import lrp_layers
from caduceus_lrp.layers import CausalConv1d, RMSNorm, SelectiveSSM, SiLU
from caduceus_lrp.lrp_composites import MAMBALRP, lrp_mode
from caduceus_lrp.lrp_layers import (LRPCausalConv1d, LRPLinear, LRPRMSNorm, LRPSelectiveSSM,
                                     LRPSiLU, Probe, RuleState, half_gate, silu_identity)
from caduceus_lrp.scan import selective_scan_ref
from caduceus_lrp.sequence import flip_lc


def lrp(model, x, target=1, composite="mambalrp"):
    """(relevance (b, l, 4), bias relevance (b,), logits (b,)) by Gradient x Input in LRP mode."""
    with lrp_mode(model, composite) as probes:
        x = x.clone().requires_grad_(True)
        p = probes.bias.arm(x.shape[0], x.dtype, x.device)
        logits = model(onehot=x).logits[:, target]
        gx, gp = torch.autograd.grad(logits.sum(), [x, p])
    return (x * gx).detach(), gp, logits.detach()


def with_state(module, cls, **params):
    """`module` switched to the rule class `cls`, with fresh probes and `params`."""
    module.__class__ = cls
    module.lrp = RuleState(Probe(), Probe(), params)
    return module


def grad_x_input(fn, *inputs, upstream):
    """Gradient x Input of sum(fn(*inputs) * upstream) for every input."""
    inputs = [t.clone().requires_grad_(True) for t in inputs]
    out = fn(*inputs)
    grads = torch.autograd.grad((out * upstream).sum(), inputs)
    return out.detach(), [t.detach() * g for t, g in zip(inputs, grads)]


# -- each rule on its sub-block ----------------------------------------------------------------------

def test_silu_identity_rule_passes_relevance_unchanged():
    x, g = randn(5, 7, seed=1), randn(5, 7, seed=2)
    y, (r,) = grad_x_input(silu_identity, x, upstream=g)
    assert torch.equal(y, F.silu(x))                        # value bit for bit
    torch.testing.assert_close(r, y * g, rtol=1e-14, atol=1e-15)


def test_half_rule_splits_the_gate_evenly():
    """y * silu(z): half of the product's relevance to each factor, silu(z)'s passed to z."""
    y, z, g = randn(6, seed=1), randn(6, seed=2), randn(6, seed=3)
    o, (ry, rz) = grad_x_input(half_gate, y, z, upstream=g)
    assert torch.equal(o, y * F.silu(z))
    torch.testing.assert_close(ry, 0.5 * o * g, rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(rz, 0.5 * o * g, rtol=1e-14, atol=1e-15)


def test_rmsnorm_rule_is_elementwise_identity():
    norm = RMSNorm(8).to(DT)
    with torch.no_grad():
        norm.weight.copy_(randn(8, seed=4))
    x, g = randn(3, 5, 8, seed=1), randn(3, 5, 8, seed=2)
    ref = norm(x)
    norm.__class__ = LRPRMSNorm
    y, (r,) = grad_x_input(norm, x, upstream=g)
    assert torch.equal(y, ref)
    torch.testing.assert_close(r, y * g, rtol=1e-13, atol=1e-14)


def scan_matrix(delta, A, B, C, D):
    """The scan as an explicit linear map of u for one row: M (e, l, l) with y[c] = M[c] @ u[c].
    delta (e, l) already softplus'ed; A (e, n); B, C (n, l); D (e,)."""
    e, l = delta.shape
    M = torch.zeros(e, l, l, dtype=DT)
    for c in range(e):
        for t in range(l):
            for s in range(t + 1):
                decay = torch.exp(A[c] * delta[c, s + 1:t + 1].sum())        # (n,)
                M[c, t, s] = (C[:, t] * decay * B[:, s]).sum() * delta[c, s]
            M[c, t, t] += D[c]
    return M


def test_scan_rule_against_its_linear_map_and_half_rule():
    b, e, n, l = 1, 3, 2, 6
    u, z, delta, g = (randn(b, e, l, seed=s) for s in (1, 2, 3, 4))
    A, B, C = -torch.rand(e, n, generator=gen(5), dtype=DT), randn(b, n, l, seed=6), randn(b, n, l, seed=7)
    D, bias = randn(e, seed=8), randn(e, seed=9)
    ssm = SelectiveSSM()
    ref = ssm(u, delta, A, B, C, D, z, bias)
    ssm.__class__ = LRPSelectiveSSM

    def gated(u, z):
        return ssm(u, delta, A, B, C, D, z, bias)

    o, (ru, rz) = grad_x_input(gated, u, z, upstream=g)
    torch.testing.assert_close(o, ref, rtol=1e-13, atol=1e-14)
    M = scan_matrix(F.softplus(delta[0] + bias[:, None]), A, B[0], C[0], D)
    y = torch.einsum("cts,cs->ct", M, u[0])
    gate = F.silu(z[0])
    torch.testing.assert_close(o[0], y * gate, rtol=1e-12, atol=1e-13)
    # LRP-0 through the linear map M, half of the product's relevance each
    torch.testing.assert_close(ru[0], 0.5 * u[0] * torch.einsum("cts,ct->cs", M, gate * g[0]),
                               rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(rz[0], 0.5 * o[0] * g[0], rtol=1e-12, atol=1e-13)


def test_scan_rule_same_with_the_reference_scan(monkeypatch):
    model, x = classifier(rcps=True), onehot()
    fast = lrp(model, x)
    monkeypatch.setattr(lrp_layers, "selective_scan", selective_scan_ref)
    ref = lrp(model, x)
    for a, b in zip(fast, ref):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)


def test_causal_conv_equals_torch_conv1d_and_its_bias_relevance():
    e, k, l, n = 3, 4, 7, 2
    conv = CausalConv1d(e, e, k, groups=e, padding=k - 1).to(DT)
    x, g = randn(2 * n, l, e, seed=1), randn(2 * n, l, e, seed=2)  # rows = a stack of 2 x n samples
    # mamba-ssm's convolution: torch's conv1d on (rows, e, l), truncated to l
    ref = F.conv1d(x.transpose(1, 2), conv.weight, conv.bias, padding=k - 1, groups=e)[..., :l]
    torch.testing.assert_close(conv(x), ref.transpose(1, 2), rtol=1e-14, atol=1e-14)
    with_state(conv, LRPCausalConv1d)
    xg = x.clone().requires_grad_(True)
    p = conv.lrp.bias.arm(n, DT, "cpu")
    out = conv(xg)
    gx, gp = torch.autograd.grad((out * g).sum(), [xg, p])
    torch.testing.assert_close(out.detach(), ref.transpose(1, 2), rtol=1e-14, atol=1e-14)
    # out[r, t, c] = sum_j w[c, j] x[r, t + j - (k - 1), c] + b[c]: W as a (l, l) matrix per channel
    w, b = conv.weight.detach()[:, 0], conv.bias.detach()
    W = torch.zeros(e, l, l, dtype=DT)
    for t in range(l):
        for j in range(k):
            if 0 <= t + j - (k - 1) < l:
                W[:, t, t + j - (k - 1)] = w[:, j]
    torch.testing.assert_close(x * gx, x * torch.einsum("cts,rtc->rsc", W, g), rtol=1e-13, atol=1e-14)
    per_row = (b[None, None, :] * g).sum((1, 2))                    # R_b of each row
    torch.testing.assert_close(gp, per_row[:n] + per_row[n:], rtol=1e-13, atol=1e-14)


def test_linear_bias_relevance():
    lin = torch.nn.Linear(5, 3).to(DT)
    with_state(lin, LRPLinear)
    x, g = randn(4, 5, seed=1), randn(4, 3, seed=2)
    xg = x.clone().requires_grad_(True)
    p = lin.lrp.bias.arm(4, DT, "cpu")
    gx, gp = torch.autograd.grad((lin(xg) * g).sum(), [xg, p])
    torch.testing.assert_close(gp, (g * lin.bias.detach()).sum(1), rtol=1e-14, atol=1e-15)
    # conservation of the block: relevance of x plus of the bias is the output's
    torch.testing.assert_close((x * gx).sum(1) + gp, (lin(x) * g).sum(1).detach(), rtol=1e-13, atol=1e-14)


# -- the whole model ---------------------------------------------------------------------------------

@pytest.mark.parametrize("rcps", [True, False])
@pytest.mark.parametrize("pooling", ["mean", "max", "max+mean"])
def test_conservation_float64(rcps, pooling):
    model, x = classifier(rcps, pooling=pooling), onehot()
    rel, bias, logits = lrp(model, x)
    residual = logits - rel.sum((1, 2)) - bias
    assert (residual.abs() <= 1e-8 * logits.abs()).all(), residual
    head_bias = model.head.linear.bias[1].item()
    assert (bias - head_bias).abs().min() > 1e-3                    # the conv biases absorb some too


@pytest.mark.parametrize("rule", [SiLU, SelectiveSSM, RMSNorm])
def test_conservation_fails_without_each_rule(rule):
    """The conservation test has teeth: dropping any one rule breaks it (docs/lrp.md)."""
    rules = {k: v for k, v in MAMBALRP.rules.items() if k is not rule}
    model, x = classifier(rcps=True), onehot()
    rel, bias, logits = lrp(model, x, composite=dataclasses.replace(MAMBALRP, rules=rules))
    assert ((logits - rel.sum((1, 2)) - bias).abs() / logits.abs()).max() > 1e-3


@pytest.mark.parametrize("rcps", [True, False])
def test_relevance_is_rc_equivariant(rcps):
    """ps by construction; ph through the post-hoc conjoined (averaged) evaluation."""
    model, x = classifier(rcps), onehot()
    rel, bias, logits = lrp(model, x)
    rel_rc, bias_rc, logits_rc = lrp(model, flip_lc(x))
    scale = rel.abs().max()
    assert (rel_rc - flip_lc(rel)).abs().max() <= 1e-8 * scale
    torch.testing.assert_close(logits_rc, logits, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(bias_rc, bias, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("rcps", [True, False])
def test_batch_slice_equals_alone(rcps):
    model, x = classifier(rcps), onehot(b=6)
    whole = lrp(model, x)
    alone = lrp(model, x[2:4])
    for a, b in zip(whole, alone):
        torch.testing.assert_close(a[2:4], b, rtol=1e-12, atol=1e-13)


def test_layer_recomputation_gives_the_same_relevance():
    model, x = classifier(rcps=True), onehot()
    plain = lrp(model, x)
    model.caduceus.backbone.gradient_checkpointing = True
    recomputed = lrp(model, x)
    for a, b in zip(plain, recomputed):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("rcps", [True, False])
def test_forward_values_unchanged_and_model_restored(rcps):
    model, x = classifier(rcps), onehot()
    classes = {name: type(m) for name, m in model.named_modules()}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        ref = model(onehot=x).logits
        with lrp_mode(model) as probes:
            assert {type(m) for m in model.modules()} >= {LRPSiLU, LRPSelectiveSSM, LRPRMSNorm,
                                                          LRPCausalConv1d}
            plain = model(onehot=x).logits
            probes.bias.arm(x.shape[0], DT, "cpu")
            probed = model(onehot=x).logits
        after = model(onehot=x).logits
    torch.testing.assert_close(plain, ref, rtol=1e-13, atol=1e-14)   # the fused scan's own silu
    assert torch.equal(probed, plain)
    assert torch.equal(after, ref)
    assert {name: type(m) for name, m in model.named_modules()} == classes
    assert all("lrp" not in m.__dict__ for m in model.modules())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_model_restored_after_an_error():
    model = classifier(rcps=True)
    with pytest.raises(RuntimeError, match="boom"), lrp_mode(model):
        raise RuntimeError("boom")
    assert not any(type(m).__name__.startswith("LRP") for m in model.modules())


def test_probe_rejects_a_batch_that_is_not_a_stack_of_the_samples():
    probe = Probe()
    probe.arm(3, DT, "cpu")
    assert probe.rows(6).shape == (6,)
    with pytest.raises(RuntimeError, match="not a stack"):
        probe.rows(4)


def test_trained_demo_model_conserves_in_float32():
    from caduceus_lrp import explain, load_finetuned  # the import the user writes

    path = ROOT / "final_models" / "best_model.pt"  # the committed demo model

    model = load_finetuned(path)
    x = onehot(b=8, l=200, seed=3).float()
    for target in range(model.n_tasks):
        result = explain(model, x, target=target)
        # relative to sum |R| + |R_bias| + |R_reference| >= |logit|, default composite
        assert result.conservation_error.max() <= 1e-6
