"""The pure-PyTorch Caduceus against the official code's outputs, and its invariants."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import FIXTURES, perturbed_model, tiny_config

from caduceus_lrp import ARCHITECTURES, CaduceusConfig, architecture_config, load_caduceus
from caduceus_lrp import layers as layers_module
from caduceus_lrp.errors import InputError
from caduceus_lrp.model import CaduceusForMaskedLM, tied_weights
from caduceus_lrp.sequence import flip_lc

# -- exactness against the official implementation -------------------------------------------------


def test_official_fixture_float32(official):
    folder, ref = official
    model = load_caduceus(folder)
    ids = torch.from_numpy(ref["input_ids"])
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
        rc = model(torch.from_numpy(ref["rc_input_ids"]), output_hidden_states=True)
    assert len(out.hidden_states) == int(ref["hidden_states_count"]) == model.config.n_layer + 1
    np.testing.assert_allclose(out.hidden_states[-1].numpy(), ref["last_hidden_state"], rtol=0, atol=2e-5)
    np.testing.assert_allclose(torch.stack(out.hidden_states).numpy(), ref["hidden_states"], rtol=0, atol=2e-5)
    np.testing.assert_allclose(out.logits.numpy(), ref["logits"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(rc.hidden_states[-1].numpy(), ref["rc_last_hidden_state"], rtol=0, atol=2e-5)
    np.testing.assert_allclose(rc.logits.numpy(), ref["rc_logits"], rtol=0, atol=1e-5)


def test_official_fixture_float64(official):
    folder, ref = official
    model = load_caduceus(folder, dtype=torch.float64)
    with torch.no_grad():
        out = model(torch.from_numpy(ref["input_ids"]), output_hidden_states=True)
    np.testing.assert_allclose(out.hidden_states[-1].numpy(), ref["last_hidden_state_f64"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(torch.stack(out.hidden_states).numpy(), ref["hidden_states_f64"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(out.logits.numpy(), ref["logits_f64"], rtol=0, atol=1e-10)


def test_ps_half_swap_matters():
    """Without the per-layer half swap the official ps fixture is not reproduced."""
    folder = FIXTURES / "tiny_ps"
    ref = np.load(folder / "reference.npz")
    model = load_caduceus(folder)
    for layer in model.caduceus.backbone.layers:
        layer.swap_halves = False
    with torch.no_grad():
        h = model.caduceus(torch.from_numpy(ref["input_ids"])).last_hidden_state.numpy()
    assert np.abs(h - ref["last_hidden_state"]).max() > 0.1


# -- module tree ---------------------------------------------------------------------------------

PARAMS = {(256, 16): 7_725_312, (256, 4): 1_934_592, (118, 4): 470_702}


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_published_parameter_counts_and_keys(name):
    cfg = architecture_config(name)
    with torch.device("meta"):
        model = CaduceusForMaskedLM(cfg)
    n = sum(p.numel() for p in model.parameters())
    assert n == PARAMS[(cfg.d_model, cfg.n_layer)]
    # the official key listing (docs/caduceus.md), what the published files store
    mixer = "mixer.submodule." if cfg.rcps else "mixer."
    emb = "embeddings.word_embeddings.embedding.weight" if cfg.rcps else "embeddings.word_embeddings.weight"
    expected = {f"caduceus.backbone.{emb}", "caduceus.backbone.norm_f.weight"}
    if cfg.rcps:
        expected |= {"caduceus.backbone.embeddings.word_embeddings.complement_map", "lm_head.complement_map"}
    for i in range(cfg.n_layer):
        pre = f"caduceus.backbone.layers.{i}."
        expected.add(pre + "norm.weight")
        own = ["conv1d.weight", "conv1d.bias", "x_proj.weight", "dt_proj.weight", "dt_proj.bias", "A_log", "D"]
        expected |= {f"{pre}{mixer}mamba_fwd.{k}" for k in own + ["in_proj.weight", "out_proj.weight"]}
        expected |= {f"{pre}{mixer}mamba_rev.{k}" for k in own}
    stored = set(model.state_dict()) - set(tied_weights(cfg, "caduceus.", lm_head=True))
    assert stored == expected


def test_config_round_trip_keeps_every_published_field(tmp_path):
    src = FIXTURES / "tiny_ps" / "config.json"
    cfg = CaduceusConfig.from_json(src)
    assert cfg.dt_rank == 2 and cfg.padded_vocab_size == 16 and cfg.complement_map[7] == 10
    cfg.to_json(tmp_path / "config.json")
    written, published = (json.loads(p.read_text()) for p in (tmp_path / "config.json", src))
    published.pop("transformers_version")
    assert {k: written.get(k) for k in published if k != "torch_dtype"} == \
        {k: v for k, v in published.items() if k != "torch_dtype"}
    assert written["dtype"] == published["torch_dtype"] and written["model_type"] == "caduceus"


def test_vocab_rounding_and_dt_rank():
    cfg = CaduceusConfig(d_model=118, n_layer=4, vocab_size=12)
    assert cfg.padded_vocab_size == 16 and cfg.dt_rank == 8 and cfg.d_inner == 236


# -- invariants ------------------------------------------------------------------------------------

def _random_ids(b=3, l=37, seed=0):
    return torch.randint(7, 11, (b, l), generator=torch.Generator().manual_seed(seed))


def _rc_ids(ids):
    comp = torch.tensor([0, 1, 2, 3, 4, 5, 6, 10, 9, 8, 7, 11, 12, 13, 14, 15])
    return comp[ids].flip(-1)


def test_ps_reverse_complement_equivariance_float64():
    model = perturbed_model(tiny_config(rcps=True))
    ids = _random_ids()
    with torch.no_grad():
        out, rc = model(ids, output_hidden_states=True), model(_rc_ids(ids), output_hidden_states=True)
    assert torch.allclose(rc.hidden_states[-1], flip_lc(out.hidden_states[-1]), rtol=0, atol=1e-10)
    comp = model.lm_head.complement_map
    assert torch.allclose(rc.logits, out.logits.flip(1)[..., comp], rtol=0, atol=1e-10)


def test_ph_conjoined_average_is_rc_invariant():
    model = perturbed_model(tiny_config(rcps=False))
    comp = model.caduceus.backbone.embeddings.word_embeddings.weight.new_tensor(
        model.config.complement).long()

    def conjoined(ids):  # post-hoc conjoining: average f(x) and the RC-mapped f(rc(x))
        with torch.no_grad():
            return 0.5 * (model(ids).logits + model(_rc_ids(ids)).logits.flip(1)[..., comp])

    ids = _random_ids()
    assert torch.allclose(conjoined(_rc_ids(ids)), conjoined(ids).flip(1)[..., comp], rtol=0, atol=1e-10)
    with torch.no_grad():  # while the plain ph model is not RC-equivariant
        assert not torch.allclose(model(_rc_ids(ids)).logits, model(ids).logits.flip(1)[..., comp], atol=1e-3)


@pytest.mark.parametrize("rcps", [True, False])
def test_onehot_path_equals_token_path_and_gets_gradients(rcps):
    model = perturbed_model(tiny_config(rcps=rcps))
    ids = _random_ids()
    onehot = torch.nn.functional.one_hot(ids - 7, 4).double().requires_grad_()
    with torch.no_grad():
        ref = model(ids, output_hidden_states=True)
    out = model(onehot=onehot, output_hidden_states=True)
    assert torch.allclose(out.logits, ref.logits, rtol=0, atol=1e-12)
    assert torch.allclose(out.hidden_states[-1], ref.hidden_states[-1], rtol=0, atol=1e-12)
    out.logits[:, :, 7].sum().backward()
    assert onehot.grad.abs().sum(-1).min() > 0  # every position gets a gradient


@pytest.mark.parametrize("rcps", [True, False])
@pytest.mark.parametrize("rows_elements", [2 ** 26, 1])  # one group; one row per group
def test_gradient_checkpointing_same_outputs_and_grads(rcps, rows_elements, monkeypatch):
    monkeypatch.setattr(layers_module, "RECOMPUTE_ROWS_ELEMENTS", rows_elements)
    model = perturbed_model(tiny_config(rcps=rcps))
    ids = _random_ids()
    grads = []
    for flag in (False, True):
        model.caduceus.backbone.gradient_checkpointing = flag
        model.zero_grad()
        out = model(ids).logits
        out.square().mean().backward()
        grads.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    if rows_elements > 1:
        assert torch.equal(grads[0][0], grads[1][0])
    else:  # rows run one at a time: per-row matmuls may round differently
        torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-13, atol=1e-15)
    for a, b in zip(grads[0][1], grads[1][1]):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("rcps", [True, False])
def test_gradients_with_the_fused_scan_equal_the_reference(rcps, monkeypatch):
    """The whole model's parameter gradients (float64) with the fused CPU scan, which reads and
    writes channels-last views, equal those with the reference scan."""
    from caduceus_lrp.scan import selective_scan_ref

    model = perturbed_model(tiny_config(rcps=rcps)).train()
    ids = _random_ids()
    grads = []
    for scan in (layers_module.selective_scan, selective_scan_ref):
        monkeypatch.setattr(layers_module, "selective_scan", scan)
        model.zero_grad()
        model(ids).logits.square().mean().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-10, atol=1e-12,
                                   msg=name)


def test_batch_independence():
    model = perturbed_model(tiny_config(rcps=True))
    ids = _random_ids(b=4)
    with torch.no_grad():
        full = model(ids).logits
        part = model(ids[1:3]).logits
    assert torch.allclose(full[1:3], part, rtol=0, atol=1e-12)


# -- save / load -------------------------------------------------------------------------------------

@pytest.mark.parametrize("rcps", [True, False])
def test_save_load_round_trip_exact(tmp_path, rcps):
    model = perturbed_model(tiny_config(rcps=rcps), dtype=torch.float32)
    model.save_pretrained(tmp_path)
    loaded = load_caduceus(tmp_path)
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    fwd = loaded.caduceus.backbone.layers[0].mixer
    fwd = fwd.submodule if rcps else fwd
    assert fwd.mamba_rev.in_proj.weight is fwd.mamba_fwd.in_proj.weight  # ties survive loading
    emb = loaded.caduceus.backbone.embeddings.word_embeddings.weight
    head = loaded.lm_head.lm_head.weight if rcps else loaded.lm_head.weight
    assert head is emb


def test_load_pytorch_bin(tmp_path):
    folder = FIXTURES / "tiny_ph"
    shutil.copy(folder / "config.json", tmp_path)
    from safetensors.torch import load_file

    torch.save(load_file(folder / "model.safetensors"), tmp_path / "pytorch_model.bin")
    a, b = load_caduceus(folder), load_caduceus(tmp_path)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def _copy_fixture(tmp_path, name="tiny_ps"):
    dst = tmp_path / name
    shutil.copytree(FIXTURES / name, dst)
    dst.chmod(0o755)
    for f in dst.iterdir():
        f.chmod(0o644)
    return dst


def _edit_weights(folder, edit):
    from safetensors.torch import load_file, save_file

    state = load_file(folder / "model.safetensors")
    edit(state)
    save_file(state, folder / "model.safetensors")


@pytest.mark.parametrize("case,needle", [
    ("no_weights", "missing model.safetensors"),
    ("no_config", "missing config.json"),
    ("missing_key", "missing keys: caduceus.backbone.layers.1.norm.weight"),
    ("extra_key", "unexpected keys: caduceus.backbone.extra.weight"),
    ("wrong_shape", "shape mismatch: caduceus.backbone.norm_f.weight (file (5,), model (32,))"),
])
def test_load_errors_name_the_problem(tmp_path, case, needle):
    folder = _copy_fixture(tmp_path)
    if case == "no_weights":
        (folder / "model.safetensors").unlink()
    elif case == "no_config":
        (folder / "config.json").unlink()
    elif case == "missing_key":
        _edit_weights(folder, lambda s: s.pop("caduceus.backbone.layers.1.norm.weight"))
    elif case == "extra_key":
        _edit_weights(folder, lambda s: s.__setitem__("caduceus.backbone.extra.weight", torch.zeros(2)))
    else:
        _edit_weights(folder, lambda s: s.__setitem__("caduceus.backbone.norm_f.weight", torch.zeros(5)))
    with pytest.raises(InputError) as err:
        load_caduceus(folder)
    assert needle in str(err.value) and str(folder) in str(err.value)


def test_offline_hf_id_fails_clearly():
    code = ("from caduceus_lrp import load_caduceus\n"
            "try:\n    load_caduceus('kuleshov-group/no-such-model')\n"
            "except Exception as e:\n    print(type(e).__name__, e)\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.startswith("InputError kuleshov-group/no-such-model: not a local folder"), out.stdout + out.stderr


def test_imports_and_runs_without_mamba_ssm_and_triton():
    code = ("import sys\nsys.modules['mamba_ssm'] = None\nsys.modules['triton'] = None\n"
            "sys.modules['causal_conv1d'] = None\n"
            "import torch\nfrom caduceus_lrp import CaduceusConfig, build_caduceus\n"
            "m = build_caduceus(CaduceusConfig(d_model=8, n_layer=1))\n"
            "print(tuple(m(torch.full((1, 5), 7)).logits.shape))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "(1, 5, 16)", out.stderr
