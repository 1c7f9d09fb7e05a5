"""LRP composites: each new rule against an independent derivation on its sub-block (float64);
every composite conserves (logit = sum R + bias + reference) and is RC-equivariant; user rules
take precedence; the diagnostics (residual path, pooled positions, exact Shapley values)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import DT, ROOT, classifier, onehot, randn

from caduceus_lrp.epi_head import Pooling
from caduceus_lrp.errors import InputError
from caduceus_lrp.explanation_model import explain, lrp_references
from caduceus_lrp.layers import CausalConv1d
from caduceus_lrp.lrp_composites import (COMPOSITES, DEFAULT_COMPOSITE, MAMBALRP, Rule,
                                         calibrate, composite_of, lrp_mode, needs_references)
from caduceus_lrp.lrp_diagnostics import (pooled_positions, residual_only, shapley_weights,
                                          site_shapley)
from caduceus_lrp.lrp_layers import (LRPCausalConv1dGamma, LRPLinear, LRPLinearEpsilon,
                                     LRPLinearGamma, LRPPooling, LRPPoolingRoot, Probe, RuleState,
                                     root_gate)
from caduceus_lrp.sequence import flip_lc

BACKGROUND = onehot(b=12, l=24, seed=9)


def with_state(module, cls, **params):
    module.__class__ = cls
    module.lrp = RuleState(Probe(), Probe(), params)
    return module


def relevance(module, x, upstream, n=None):
    """(output, x . d~out/dx, bias booked, reference booked) of one rule for upstream gradient."""
    n = n or x.shape[0]
    xg = x.clone().requires_grad_(True)
    pb = module.lrp.bias.arm(n, DT, "cpu")
    pr = module.lrp.reference.arm(n, DT, "cpu")
    out = module(xg)
    gx, gb, gr = torch.autograd.grad((out * upstream).sum(), [xg, pb, pr], allow_unused=True,
                                     materialize_grads=True)
    return out.detach(), (x * gx), gb, gr


def stab(v, eps, dim=-1):
    rms = v.pow(2).mean(dim, keepdim=True).sqrt()
    return v + eps * torch.where(v >= 0, 1.0, -1.0).to(v.dtype) * rms


# -- rules on their sub-blocks -------------------------------------------------------------------

def test_root_gate_splits_around_the_reference_and_books_the_rest():
    y, z, up = randn(2, 3, 5, seed=1), randn(2, 3, 5, seed=2), randn(2, 3, 5, seed=3)
    g0, eps = torch.tensor([0.3, -0.1, 0.0], dtype=DT), 0.05
    yg, zg = y.clone().requires_grad_(True), z.clone().requires_grad_(True)
    out, rest = root_gate(yg, zg, g0, eps)
    gy, gz = torch.autograd.grad((out * up).sum(), [yg, zg])
    g = F.silu(z)
    torch.testing.assert_close(out.detach(), y * g, rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(y * gy, y * (g + g0[:, None]) / 2 * up, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(z * gz, y * (g - g0[:, None]) / 2 * g / stab(g, eps, 1) * up,
                               rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(y * gy + z * gz + rest * up, y * g * up, rtol=1e-12, atol=1e-14)


def test_root_gate_with_zero_reference_is_the_half_rule_away_from_zero():
    y, z, up = randn(1, 4, 6, seed=4), randn(1, 4, 6, seed=5) + 3.0, randn(1, 4, 6, seed=6)
    yg, zg = y.clone().requires_grad_(True), z.clone().requires_grad_(True)
    out, rest = root_gate(yg, zg, torch.zeros(4, dtype=DT), 1e-12)
    gy, gz = torch.autograd.grad((out * up).sum(), [yg, zg])
    torch.testing.assert_close(y * gy, 0.5 * out.detach() * up, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(z * gz, 0.5 * out.detach() * up, rtol=1e-10, atol=1e-12)


def test_epsilon_rule_against_its_formula():
    lin = torch.nn.Linear(5, 4).to(DT)
    with_state(lin, LRPLinearEpsilon, eps=0.3)
    x, up = randn(3, 5, seed=1), randn(3, 4, seed=2)
    out, rx, rb, rr = relevance(lin, x, up)
    W, b = lin.weight.detach(), lin.bias.detach()
    z = x @ W.T + b
    s = z / stab(z, 0.3)
    torch.testing.assert_close(out, z, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(rx, x * ((s * up) @ W), rtol=1e-12, atol=1e-13)  # LRP-epsilon
    torch.testing.assert_close(rb, (b * s * up).sum(1), rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(rr, ((1 - s) * z * up).sum(1), rtol=1e-12, atol=1e-13)


def gamma_contributions(x, W, gamma):
    """LRP-gamma written out: contributions c_jk (n, out, in) of input j to output k with the
    modified weights of the sign of the output's linear part, and that part x W^T (n, out)."""
    wp, wn = W + gamma * W.clamp(min=0), W + gamma * W.clamp(max=0)
    xp, xn = x.clamp(min=0), x.clamp(max=0)
    c_pos = xp[:, None, :] * wp[None] + xn[:, None, :] * wn[None]
    c_neg = xp[:, None, :] * wn[None] + xn[:, None, :] * wp[None]
    lin = x @ W.T
    return torch.where(lin[..., None] > 0, c_pos, c_neg), lin


def test_gamma_rule_against_its_formula():
    lin = torch.nn.Linear(6, 4).to(DT)
    with_state(lin, LRPLinearGamma, gamma=0.25, eps=0.01)
    x, up = randn(3, 6, seed=3), randn(3, 4, seed=4)
    out, rx, rb, rr = relevance(lin, x, up)
    W, b = lin.weight.detach(), lin.bias.detach()
    c, z = gamma_contributions(x, W, 0.25)
    # R_j = sum_k c_jk / stab(sum_j c_jk) * z_k * up_k
    expected = (c / stab(c.sum(-1), 0.01)[..., None] * (z * up)[..., None]).sum(1)
    torch.testing.assert_close(out, x @ W.T + b, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(rx, expected, rtol=1e-11, atol=1e-13)
    torch.testing.assert_close(rb, (b * up).sum(1), rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(rx.sum(1) + rb + rr, (out * up).sum(1), rtol=1e-12, atol=1e-13)


def test_conv_gamma_rule_equals_gamma_on_the_unrolled_convolution():
    e, k, l = 2, 3, 5
    conv = CausalConv1d(e, e, k, groups=e, padding=k - 1).to(DT)
    x, up = randn(2, l, e, seed=1), randn(2, l, e, seed=2)
    w, b = conv.weight.detach()[:, 0], conv.bias.detach()
    with_state(conv, LRPCausalConv1dGamma, gamma=0.5, eps=0.01)
    out, rx, rb, rr = relevance(conv, x, up)
    parts = []
    for c in range(e):  # channel c as a linear map (l -> l) with the causal kernel
        W = torch.zeros(l, l, dtype=DT)
        for t in range(l):
            for j in range(k):
                if 0 <= t + j - (k - 1) < l:
                    W[t, t + j - (k - 1)] = w[c, j]
        parts.append(gamma_contributions(x[:, :, c], W, 0.5))
    totals = torch.stack([c.sum(-1) for c, _ in parts], -1)          # (n, l, e)
    denominators = stab(totals, 0.01)                                  # RMS over channels
    for c, (contrib, z) in enumerate(parts):
        expected = (contrib / denominators[..., c, None] * (z * up[:, :, c])[..., None]).sum(1)
        torch.testing.assert_close(rx[:, :, c], expected, rtol=1e-11, atol=1e-13)
    torch.testing.assert_close(rb, (b * up).sum((1, 2)), rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(rx.sum((1, 2)) + rb + rr, (out * up).sum((1, 2)), rtol=1e-12,
                               atol=1e-13)


def test_pooled_runner_up_root_point():
    pool = with_state(Pooling("max"), LRPPoolingRoot, root="runner_up", window=1, eps=0.01)
    h = randn(2, 9, 3, seed=5)
    up = randn(2, 3, seed=6)
    out, rh, _, rr = relevance(pool, h, up)
    p, where = h.max(1)
    for i in range(2):
        for c in range(3):
            far = [t for t in range(9) if abs(t - where[i, c]) > 1]
            runner = h[i, far, c].max()
            expected = torch.zeros(9, dtype=DT)
            expected[where[i, c]] = (p[i, c] - runner) * p[i, c] / stab(p[i], 0.01)[c] * up[i, c]
            torch.testing.assert_close(rh[i, :, c], expected, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(out, p, rtol=0, atol=0)
    torch.testing.assert_close(rh.sum((1, 2)) + rr, (p * up).sum(1), rtol=1e-12, atol=1e-13)


def test_log_mean_exp_pooling_passes_softmax_shares_and_books_the_entropy_term():
    """p = log mean_l exp(h) = sum_l w_l h_l + H(w) - log l: position l gets w_l h_l, the
    reference H(w) - log l (derived with numpy)."""
    h, up = randn(2, 7, 3, seed=1), randn(2, 3, seed=2)
    pool = with_state(Pooling("lse"), LRPPooling)
    out, rel, _, ref = relevance(pool, h, up)
    a = h.numpy()
    w = np.exp(a) / np.exp(a).sum(1, keepdims=True)
    np.testing.assert_allclose(out.numpy(), np.log(np.exp(a).mean(1)), rtol=1e-13)
    np.testing.assert_allclose(rel.numpy(), w * a * up.numpy()[:, None], rtol=1e-12, atol=1e-14)
    entropy_term = -(w * np.log(w)).sum(1) - np.log(7)
    np.testing.assert_allclose(ref.numpy(), (entropy_term * up.numpy()).sum(1), rtol=1e-12)
    for kind, width in (("max", 3), ("mean", 3), ("max+mean", 6)):  # piecewise linear
        up = randn(2, width, seed=3)
        out, rel, _, ref = relevance(with_state(Pooling(kind), LRPPooling), h, up)
        assert torch.equal(ref, torch.zeros(2, dtype=DT))  # nothing booked
        torch.testing.assert_close(rel.sum((1, 2)), (out * up).sum(1), rtol=1e-13, atol=1e-14)


def test_runner_up_needs_max_pooling():
    model = classifier(pooling="mean")
    with pytest.raises(InputError, match="runner-up root point needs max pooling"):
        explain(model, onehot(), composite="pooled-root")


def test_input_root_point_is_the_corrected_lrp_gradient():
    model, x = classifier(pooling="max"), onehot(b=3)
    x[0, 5] = 0  # an N position gets nothing and books nothing
    plain = explain(model, x, target=1, composite="mambalrp")
    rooted = explain(model, x, target=1, composite="input-root")
    H = plain.hypothetical  # already centred: H - mean H
    np.testing.assert_allclose(rooted.observed, x.numpy() * H, rtol=1e-10, atol=1e-13)
    assert np.all(rooted.observed[0, 5] == 0)
    np.testing.assert_allclose(rooted.observed.sum((1, 2)) + rooted.reference_relevance,
                               plain.observed.sum((1, 2)), rtol=1e-10, atol=1e-12)


# -- every composite -----------------------------------------------------------------------------

def composites_for(pooling):
    return [c for c in COMPOSITES if not (c == "pooled-root" and pooling != "max")]


@pytest.mark.parametrize("rcps", [True, False])
@pytest.mark.parametrize("pooling", ["max", "mean", "lse", "max+mean"])
def test_every_composite_conserves_in_float64(rcps, pooling):
    model, x = classifier(rcps, pooling=pooling), onehot(b=3)
    for name in composites_for(pooling):
        r = explain(model, x, target=1, composite=name, background=BACKGROUND)
        assert np.abs(r.conservation_residual).max() <= 1e-8 * np.abs(r.logits).max(), name
        assert r.composite == name


@pytest.mark.parametrize("rcps", [True, False])
def test_every_composite_is_rc_equivariant(rcps):
    model, x = classifier(rcps, pooling="max"), onehot(b=3)
    for name in COMPOSITES:
        r = explain(model, x, target=1, composite=name, background=BACKGROUND, check_rc=True)
        assert r.rc_residual.max() <= 1e-10, name


def test_reference_statistics_make_attributions_batch_independent():
    model, x = classifier(pooling="max"), onehot(b=5)
    for name in ("gate-root", "pooled-background"):
        whole = explain(model, x, target=0, composite=name, background=BACKGROUND)
        alone = explain(model, x[1:3], target=0, composite=name, background=BACKGROUND)
        np.testing.assert_allclose(whole.observed[1:3], alone.observed, rtol=1e-12, atol=1e-14)


def test_precomputed_references_replace_the_calibration():
    """References calibrated once and passed in give what calibrating on the same background
    does, and are the ones used (another background's change the attribution)."""
    model, x = classifier(pooling="max"), onehot(b=3)
    calibrated = explain(model, x, target=0, composite="gate-root", background=BACKGROUND)
    given = explain(model, x, target=0, composite="gate-root",
                    references=calibrate(model.eval(), BACKGROUND))
    np.testing.assert_allclose(given.observed, calibrated.observed, rtol=1e-12, atol=1e-14)
    once = explain(model, x, target=0, composite="gate-root",
                   references=lrp_references(model, "gate-root", BACKGROUND))
    np.testing.assert_allclose(once.observed, calibrated.observed, rtol=1e-12, atol=1e-14)
    assert lrp_references(model, "mambalrp", BACKGROUND) is None
    other = explain(model, x, target=0, composite="gate-root",
                    references=calibrate(model, onehot(b=12, l=24, seed=10)))
    assert np.abs(other.observed - calibrated.observed).max() > 1e-6


def test_calibration_averages_both_strands():
    """The gate mean of a ps model is the same on a background and on its reverse complement."""
    model = classifier(rcps=True, pooling="max")
    a = calibrate(model, BACKGROUND)
    b = calibrate(model, flip_lc(BACKGROUND))
    assert a.n_sequences == 12 and set(a.gate) and set(a.pooled)
    for name in a.gate:
        torch.testing.assert_close(a.gate[name], b.gate[name], rtol=1e-12, atol=1e-14)


def test_composites_without_references_need_none_and_others_say_so():
    assert not needs_references("mambalrp") and needs_references("gate-root")
    with pytest.raises(InputError, match="needs reference statistics"):
        with lrp_mode(classifier(), "gate-root"):
            pass


def test_user_rules_take_precedence_by_name_then_class():
    model = classifier(pooling="max")
    custom = MAMBALRP.with_rules({"head.linear": Rule(LRPLinearEpsilon, {"eps": 0.1})},
                                 name="mine")
    assert custom.rules["head.linear"].cls is LRPLinearEpsilon
    with lrp_mode(model, custom):
        assert type(model.head.linear) is LRPLinearEpsilon
        in_proj = model.caduceus.backbone.layers[0].mixer.submodule.mamba_fwd.in_proj
        assert type(in_proj) is LRPLinear
    assert type(model.head.linear) is torch.nn.Linear


def test_unknown_composite_and_misapplied_rule():
    with pytest.raises(InputError, match="unknown LRP composite 'nope'"):
        composite_of("nope")
    wrong = MAMBALRP.with_rules({"head.linear": Rule(LRPPoolingRoot, {"root": "runner_up"})})
    with pytest.raises(InputError, match="does not apply to head.linear"):
        with lrp_mode(classifier(), wrong):
            pass


def test_default_composite_conserves_on_the_trained_demo_model_in_float32():
    from caduceus_lrp import load_finetuned

    model = load_finetuned(ROOT / "final_models" / "best_model.pt")
    x = onehot(b=8, l=200, seed=3).float()
    for target in range(model.n_tasks):
        r = explain(model, x, target=target, composite=DEFAULT_COMPOSITE)
        assert r.conservation_error.max() <= 1e-6


# -- diagnostics ---------------------------------------------------------------------------------

def test_residual_path_is_everything_when_the_mixers_output_nothing():
    model, x = classifier(pooling="max"), onehot(b=2)
    full = explain(model, x, target=0, composite=residual_only("mambalrp"))
    assert np.abs(full.observed - explain(model, x, target=0, composite="mambalrp").observed
                  ).max() > 1e-3
    assert np.abs(full.conservation_residual).max() <= 1e-8 * np.abs(full.logits).max()
    with torch.no_grad():
        for layer in model.caduceus.backbone.layers:
            layer.mixer.submodule.mamba_fwd.out_proj.weight.zero_()
    plain = explain(model, x, target=0, composite="mambalrp")
    resid = explain(model, x, target=0, composite=residual_only("mambalrp"))
    np.testing.assert_allclose(resid.observed, plain.observed, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("rcps", [True, False])
def test_pooled_positions_are_the_argmax_of_each_strand(rcps):
    model, x = classifier(rcps, pooling="max"), onehot(b=2)
    picked = pooled_positions(model, x)
    with torch.no_grad():
        hidden = model.caduceus(onehot=x).last_hidden_state
        d = model.config.d_model
        if rcps:
            halves = [hidden[..., :d], flip_lc(hidden[..., d:])]
        else:
            halves = [hidden, model.caduceus(onehot=flip_lc(x)).last_hidden_state]
    expected = np.zeros(picked.shape, dtype=bool)
    for k, h in enumerate(halves):
        where = h.argmax(1).numpy()
        where = x.shape[1] - 1 - where if k else where
        for i in range(len(x)):
            expected[i, where[i]] = True
    np.testing.assert_array_equal(picked, expected)


class Additive(torch.nn.Module):
    """f(x) = sum_i w_i . x_i + b: Shapley values are the per-position terms against the
    reference."""
    n_tasks = 1

    def __init__(self, length):
        super().__init__()
        self.w = torch.nn.Parameter(randn(length, 4, seed=7))

    def forward(self, onehot):
        return (onehot * self.w).sum((1, 2))[:, None] + 0.5


def test_shapley_values_of_an_additive_model_are_its_terms():
    model, x = Additive(10).to(DT), onehot(b=1, l=10)[0]
    positions = np.array([2, 3, 4, 6])
    phi = site_shapley(model, x, positions, reference="N")
    w = model.w.detach()
    np.testing.assert_allclose(phi, (x[positions] * w[positions]).sum(-1).numpy(), rtol=1e-12)


def test_shapley_values_are_efficient():
    model, x = classifier(pooling="max"), onehot(b=1)[0]
    positions = np.arange(5, 10)
    phi = site_shapley(model, x, positions, target=2, reference="N")
    replaced = x.clone()
    replaced[positions] = 0
    with torch.no_grad():
        f = model(onehot=torch.stack([x, replaced])).logits[:, 2]
    assert phi.sum() == pytest.approx((f[0] - f[1]).item(), rel=1e-10)
    assert shapley_weights(3) == pytest.approx([1 / 3, 1 / 6, 1 / 3])
