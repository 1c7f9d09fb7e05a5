"""explain(): the method registry against direct computations, the result's diagnostics, input
checks, the model left as it was, and the per-task files TF-MoDISco reads."""
import json

import numpy as np
import pytest
import torch
from helpers import classifier, onehot

from caduceus_lrp import explanation_model
from caduceus_lrp.attribute import write_attributions
from caduceus_lrp.cnn import CNNConfig, OneHotCNN
from caduceus_lrp.data import SequenceDataset
from caduceus_lrp.errors import InputError
from caduceus_lrp.explanation_model import METHODS, as_onehot, explain
from caduceus_lrp.sequence import flip_lc, one_hot_to_strings, tokens


@pytest.fixture(scope="module")
def ps():
    return classifier(rcps=True, task_names=["a", "b", "c"])


def gradient(model, x, target):
    x = x.clone().requires_grad_(True)
    return torch.autograd.grad(model(onehot=x).logits[:, target].sum(), x)[0]


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_keeps_the_contract(ps, method):
    x = onehot(b=3, l=16)
    options = {"n_steps": 4} if method == "integrated_gradients" else {}
    r = explain(ps, x, target="b", method=method, batch_size=2, **options)
    assert r.target == 1 and r.observed.shape == r.hypothetical.shape == (3, 16, 4)
    np.testing.assert_allclose(r.hypothetical.sum(-1), 0, atol=1e-12)        # centred
    with torch.no_grad():
        np.testing.assert_allclose(r.logits, ps(onehot=x).logits[:, 1].numpy(), rtol=1e-12)
    if method != "saliency":                                                   # on the observed base
        assert np.all(r.observed[x.numpy() == 0] == 0)
    assert (r.bias_relevance is not None) == (method == "lrp")


def test_gradient_methods_equal_autograd(ps):
    x = onehot(b=3, l=16)
    g = gradient(ps, x, 2).numpy()
    centred = g - g.mean(-1, keepdims=True)
    sal, gxi, cor = (explain(ps, x, 2, method=m) for m in ("saliency", "grad_x_input", "corrected"))
    np.testing.assert_allclose(sal.observed, g, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gxi.observed, x.numpy() * g, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(cor.observed, x.numpy() * centred, rtol=1e-12, atol=1e-14)
    for r in (sal, gxi, cor):
        np.testing.assert_allclose(r.hypothetical, centred, rtol=1e-12, atol=1e-14)


def test_lrp_diagnostics(ps):
    x = onehot(b=3, l=16)
    r = explain(ps, x, target=0, check_rc=True)
    assert r.conservation_residual.shape == (3,)
    np.testing.assert_allclose(r.conservation_residual, 0, atol=1e-12)
    assert r.conservation_error.max() <= 1e-12 and r.rc_residual.max() <= 1e-10
    np.testing.assert_allclose(r.logits - r.observed.sum((1, 2)) - r.bias_relevance
                               - r.reference_relevance, r.conservation_residual)


def test_ism_against_single_mutants(ps):
    x = onehot(b=2, l=12)
    r = explain(ps, x, target=1, method="ism", batch_size=7)
    effects = r.hypothetical + 0.0
    with torch.no_grad():
        ref = ps(onehot=x).logits[:, 1]
        for i, pos, base in [(0, 3, 2), (1, 11, 0), (1, 0, 3)]:
            mutant = x[i:i + 1].clone()
            mutant[0, pos] = torch.eye(4, dtype=x.dtype)[base]
            delta = (ps(onehot=mutant).logits[0, 1] - ref[i]).item()
            # the centred score differences between bases are the substitution effects
            obs = int(x[i, pos].argmax())
            assert effects[i, pos, base] - effects[i, pos, obs] == pytest.approx(delta, abs=1e-12)
    # observed = minus the mean effect of the 4 bases at the observed base
    np.testing.assert_allclose(r.observed.sum(-1), (x.numpy() * r.hypothetical).sum(-1))


@pytest.mark.parametrize("baseline", ["N", "shuffle"])
def test_integrated_gradients_completeness(ps, baseline):
    x = onehot(b=2, l=16)
    r = explain(ps, x, target=0, method="integrated_gradients", baseline=baseline, n_steps=100)
    x0 = explanation_model._baseline(x, baseline, seed=0)
    if baseline == "shuffle":  # same letters, dinucleotide counts kept
        assert torch.equal(x0.sum(1), x.sum(1)) and not torch.equal(x0, x)
    with torch.no_grad():
        gap = (ps(onehot=x).logits[:, 0] - ps(onehot=x0).logits[:, 0]).numpy()
    np.testing.assert_allclose(r.observed.sum((1, 2)), gap, rtol=1e-3, atol=1e-4)


def test_strings_equal_onehot_and_rc_equivariance_of_gradients(ps):
    x = onehot(b=2, l=10)
    strings = one_hot_to_strings(x.numpy())
    a, b = explain(ps, x, 1, method="corrected"), explain(ps, strings, 1, method="corrected")
    np.testing.assert_array_equal(a.observed, b.observed.astype(a.observed.dtype))
    rc = explain(ps, flip_lc(x), 1, method="corrected")
    np.testing.assert_allclose(rc.observed, a.observed[:, ::-1, ::-1], atol=1e-12)


def test_batch_size_does_not_change_results(ps):
    x = onehot(b=5, l=12)
    a, b = explain(ps, x, batch_size=5), explain(ps, x, batch_size=2)
    np.testing.assert_allclose(a.observed, b.observed, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(a.bias_relevance, b.bias_relevance, rtol=1e-12)


def test_model_comes_back_as_it_was(ps, monkeypatch):
    monkeypatch.setattr(explanation_model, "RECOMPUTE_ELEMENTS", 8)  # take the recompute path
    x = onehot(b=2, l=12)
    ps.train()
    try:
        recomputed = explain(ps, x)
        assert ps.training and not ps.caduceus.backbone.gradient_checkpointing
        assert all(p.grad is None and p.requires_grad for p in ps.parameters())
    finally:
        ps.eval()
    monkeypatch.setattr(explanation_model, "RECOMPUTE_ELEMENTS", 10 ** 12)
    plain = explain(ps, x)
    np.testing.assert_allclose(recomputed.observed, plain.observed, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "deeplift"}, "--method: unknown method 'deeplift'"),
    ({"target": "zz"}, "--task: unknown task 'zz'; the model has a, b, c"),
    ({"target": 3}, "task index 3 is out of range"),
    ({"X": np.ones((2, 5, 4))}, "not one-hot"),
    ({"X": np.zeros((2, 5))}, "expected one-hot of shape"),
    ({"X": ["ACGT", "ACG"]}, "lengths differ"),
    ({"method": "integrated_gradients", "baseline": "zeros"}, "unknown baseline 'zeros'"),
])
def test_bad_input_is_named(ps, kwargs, message):
    args = {"X": onehot(b=2, l=5), **kwargs}
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        explain(ps, **args)


def test_length_check():
    with pytest.raises(InputError, match="length 5, but the model was trained on 200-bp"):
        as_onehot(np.zeros((1, 5, 4)), length=200)


def test_write_attributions_for_modisco(ps, tmp_path):
    seqs = one_hot_to_strings(onehot(b=6, l=14, seed=4).numpy())
    labels = np.array([[1, 0, 0], [0, 0, 0], [1, 1, 0], [0, 1, 0], [1, 0, 0], [1, 1, 0]])
    split = np.array(["test", "test", "test", "train", "test", "test"])
    ds = SequenceDataset(tokens(seqs), labels, ["a", "b", "c"], split, [f"s{i}" for i in range(6)])
    results = write_attributions(ps, ds.subset("test"), tmp_path, progress=False)
    assert sorted(results) == ["a", "b"]                      # c has no positive test sequence
    ohe = np.load(tmp_path / "a" / "ohe.npz")["arr_0"]
    hyp = np.load(tmp_path / "a" / "hyp.npz")["arr_0"]
    expected = ds.one_hot()[[0, 2, 4, 5]]
    assert ohe.shape == hyp.shape == (4, 4, 14)
    np.testing.assert_array_equal(ohe, expected.transpose(0, 2, 1))
    np.testing.assert_allclose(hyp.sum(1), 0, atol=1e-12)
    direct = explain(ps, expected, target="a")
    np.testing.assert_allclose(hyp, direct.hypothetical.transpose(0, 2, 1), rtol=1e-12, atol=1e-14)
    assert np.load(tmp_path / "b" / "ohe.npz")["arr_0"].shape == (2, 4, 14)
    assert not (tmp_path / "c").exists()


def test_replicate_attributions_are_averaged_and_each_kept(ps, tmp_path):
    other = classifier(rcps=True, task_names=["a", "b", "c"], seed=5)
    seqs = one_hot_to_strings(onehot(b=4, l=14, seed=4).numpy())
    ds = SequenceDataset(tokens(seqs), np.array([[1, 0, 0]] * 4), ["a", "b", "c"],
                         np.array(["test"] * 4), [f"s{i}" for i in range(4)])
    results = write_attributions([ps, other], ds, tmp_path, progress=False)
    each = [explain(m, ds.one_hot(), target="a") for m in (ps, other)]
    hyp = np.load(tmp_path / "a" / "hyp.npz")["arr_0"].transpose(0, 2, 1)
    np.testing.assert_allclose(hyp, (each[0].hypothetical + each[1].hypothetical) / 2,
                               rtol=1e-12, atol=1e-14)
    replicates = np.load(tmp_path / "a" / "replicates.npz")["arr_0"]
    assert replicates.shape == (2, 4, 14)
    np.testing.assert_allclose(replicates[1], each[1].observed.sum(-1), rtol=1e-6, atol=1e-7)
    assert np.abs(results["a"].conservation_residual).max() < 1e-10   # the mean conserves too
    write_attributions(ps, ds, tmp_path, progress=False)              # one model: no stale file
    assert not (tmp_path / "a" / "replicates.npz").exists()
    weights = np.array([[0.8, 0.5, 0.5], [0.2, 0.5, 0.5]])
    weighted = write_attributions([ps, other], ds, tmp_path / "w", progress=False,
                                  weights=weights)
    hyp = np.load(tmp_path / "w" / "a" / "hyp.npz")["arr_0"].transpose(0, 2, 1)
    np.testing.assert_allclose(hyp, 0.8 * each[0].hypothetical + 0.2 * each[1].hypothetical,
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(weighted["a"].logits, 0.8 * each[0].logits + 0.2 * each[1].logits)
    assert np.abs(weighted["a"].conservation_residual).max() < 1e-10  # a weighted mean too


def test_replicate_checkpoints_are_those_metrics_json_lists(tmp_path):
    from caduceus_lrp.attribute import replicate_checkpoints

    best = tmp_path / "best_model.pt"
    assert replicate_checkpoints(best) == []
    for seed in (3, 4, 9):
        (tmp_path / "replicates" / f"seed-{seed}").mkdir(parents=True)
        (tmp_path / "replicates" / f"seed-{seed}" / "best_model.pt").touch()
    (tmp_path / "metrics.json").write_text('{"replicates": [{"seed": 3}, {"seed": 4}]}')
    assert replicate_checkpoints(best) == [tmp_path / "replicates" / f"seed-{s}" / "best_model.pt"
                                           for s in (3, 4)]


def test_replicate_weights_follow_validation_auroc_above_chance(tmp_path):
    from caduceus_lrp.attribute import replicate_weights

    paths = []
    for seed, aurocs in ((0, {"a": 0.9, "b": 0.45, "c": 0.7}), (1, {"a": 0.6, "b": 0.4})):
        folder = tmp_path / f"seed-{seed}"
        folder.mkdir()
        (folder / "metrics.json").write_text(json.dumps(
            {f"val.auroc.{t}": v for t, v in aurocs.items()}))
        paths.append(folder / "best_model.pt")
    weights = replicate_weights(paths, ["a", "b", "c"])
    np.testing.assert_allclose(weights[:, 0], [0.4 / 0.5, 0.1 / 0.5])   # auROC - 0.5
    np.testing.assert_allclose(weights[:, 1], [0.5, 0.5])    # none above chance: equal
    np.testing.assert_allclose(weights[:, 2], [0.5, 0.5])    # missing for one replicate: equal
    np.testing.assert_allclose(replicate_weights([paths[0], tmp_path / "none" / "m.pt"], ["a"]),
                               [[0.5], [0.5]])               # no metrics.json: equal


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    return OneHotCNN(CNNConfig(filters=8, width=5), ["a", "b"]).double().eval()


def test_the_cnn_baseline_is_explained_by_saliency_and_ism(cnn):
    """explain() takes any one-hot -> logits model: saliency equals autograd on the CNN, ISM its
    single mutants, and both keep RC equivariance (the CNN averages both strands)."""
    x = onehot(b=3, l=20, seed=5)
    sal = explain(cnn, x, target="b", method="saliency")
    np.testing.assert_allclose(sal.observed, gradient(cnn, x, 1).numpy(), rtol=1e-12, atol=1e-14)
    ism = explain(cnn, x, target=1, method="ism", batch_size=16)
    mutant = x[:1].clone()
    mutant[0, 7] = torch.eye(4, dtype=x.dtype)[(int(x[0, 7].argmax()) + 1) % 4]
    with torch.no_grad():
        delta = (cnn(onehot=mutant).logits[0, 1] - cnn(onehot=x[:1]).logits[0, 1]).item()
    base, obs = (int(x[0, 7].argmax()) + 1) % 4, int(x[0, 7].argmax())
    assert ism.hypothetical[0, 7, base] - ism.hypothetical[0, 7, obs] == pytest.approx(delta)
    rc = explain(cnn, flip_lc(x), target=1, method="saliency")
    np.testing.assert_allclose(rc.observed, sal.observed[:, ::-1, ::-1], atol=1e-12)


def test_lrp_needs_a_caduceus_model(cnn):
    with pytest.raises(InputError, match="--method lrp: the LRP rules cover Caduceus models, "
                                         "not a OneHotCNN"):
        explain(cnn, onehot(b=1, l=10), method="lrp")
