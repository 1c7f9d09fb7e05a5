"""The EPI head and the fine-tuned classifier: pooling, RC invariance, initialisation, the checkpoint."""
import json

import numpy as np
import pytest
import torch
from conftest import perturbed_model, tiny_config

from caduceus_lrp import build_caduceus, load_caduceus
from caduceus_lrp.cnn import CNNConfig, OneHotCNN, tokens_to_onehot
from caduceus_lrp.epi_head import (CaduceusClassifier, EPIHead, export_hf_folder, load_finetuned,
                                   load_model, rc_onehot, read_checkpoint, save_finetuned)
from caduceus_lrp.errors import InputError


def classifier(rcps, pooling="mean", seed=0):
    cfg = tiny_config(rcps=rcps)
    torch.manual_seed(seed)
    clf = CaduceusClassifier(cfg, 3, pooling, backbone=perturbed_model(cfg, seed).caduceus)
    with torch.no_grad():  # a head far from its N(0, 0.02) init, so differences show
        clf.head.linear.weight.normal_(0, 1.0)
        clf.head.linear.bias.normal_(0, 1.0)
    return clf.double().eval()


def random_ids(b=4, length=23, seed=0):
    return torch.randint(7, 11, (b, length), generator=torch.Generator().manual_seed(seed))


def rc_ids(ids):
    return (17 - ids).flip(-1)  # A7<->T10, C8<->G9


@pytest.mark.parametrize("pooling", ["mean", "max", "center"])
def test_ps_classifier_is_rc_invariant(pooling):
    clf = classifier(rcps=True, pooling=pooling)
    ids = random_ids()
    with torch.no_grad():
        a, b = clf(input_ids=ids), clf(input_ids=rc_ids(ids))
        c = clf(onehot=rc_onehot(tokens_to_onehot(ids).double()))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    torch.testing.assert_close(a, c, rtol=0, atol=1e-12)
    assert a.shape == (4, 3) and a.std() > 0.1


def test_ph_classifier_conjoined_in_eval_only():
    clf = classifier(rcps=False)
    ids = random_ids()
    with torch.no_grad():
        torch.testing.assert_close(clf(input_ids=ids), clf(input_ids=rc_ids(ids)), rtol=0, atol=1e-12)
        clf.train()
        assert (clf(input_ids=ids) - clf(input_ids=rc_ids(ids))).abs().max() > 1e-3


def test_ps_head_averages_the_two_strand_halves():
    clf = classifier(rcps=True)
    h = torch.randn(2, 7, 2 * clf.config.d_model, dtype=torch.float64)
    d = clf.config.d_model
    expected = 0.5 * (clf.head(h[..., :d]) + clf.head(h[..., d:].flip(dims=(-2, -1))))
    torch.testing.assert_close(clf.head_logits(h), expected)


def test_poolings_against_numpy():
    h = torch.randn(3, 6, 5, dtype=torch.float64)
    for pooling, ref in (("mean", h.numpy().mean(1)), ("max", h.numpy().max(1)),
                         ("center", h.numpy()[:, 2:4].mean(1))):
        head = EPIHead(5, 2, pooling).double()
        w, b = head.linear.weight.detach().numpy(), head.linear.bias.detach().numpy()
        np.testing.assert_allclose(head(h).detach().numpy(), ref @ w.T + b, rtol=1e-12)


def test_head_initialisation_and_bad_pooling():
    torch.manual_seed(0)
    head = EPIHead(512, 64)
    assert abs(head.linear.weight.std().item() - 0.02) < 0.001
    assert head.linear.bias.abs().max() == 0
    with pytest.raises(InputError, match="--pooling: unknown pooling 'first'"):
        EPIHead(8, 2, "first")


def test_classifier_without_backbone_gets_the_official_init():
    cfg = tiny_config(rcps=True)
    clf = CaduceusClassifier(cfg, 2)
    expected = build_caduceus(cfg).caduceus.state_dict()
    for name, value in clf.backbone.state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=0, atol=0, msg=name)
    with torch.no_grad():
        assert torch.isfinite(clf(input_ids=random_ids())).all()


def test_cnn_is_rc_invariant_and_shapes():
    torch.manual_seed(0)
    cnn = OneHotCNN(CNNConfig(filters=8, width=5), 3).double()
    ids = random_ids(length=30)
    with torch.no_grad():
        torch.testing.assert_close(cnn(input_ids=ids).double(), cnn(input_ids=rc_ids(ids)).double())
    assert cnn.features(ids).shape == (4, 1, 30, 4)
    with pytest.raises(InputError, match="cnn: filters and width must be positive"):
        CNNConfig(filters=0)


@pytest.mark.parametrize("rcps", [True, False])
def test_checkpoint_round_trip_weights_only(tmp_path, rcps):
    clf = classifier(rcps=rcps, pooling="max").float()
    path = tmp_path / "best_model.pt"
    save_finetuned(path, clf, ["a", "b", "c"], extra={"epoch": 3, "metrics": {"val.x": 0.5}})
    raw = torch.load(path, weights_only=True)
    assert raw["model"] == "caduceus" and raw["extra"]["epoch"] == 3
    loaded = load_finetuned(path)
    assert loaded.task_names == ["a", "b", "c"] and not loaded.training
    ids = random_ids()
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids), clf(input_ids=ids), rtol=0, atol=0)


def test_cnn_checkpoint_and_kind_checks(tmp_path):
    torch.manual_seed(0)
    cnn = OneHotCNN(CNNConfig(filters=8, width=5), 2)
    path = tmp_path / "cnn.pt"
    save_finetuned(path, cnn, ["x", "y"])
    loaded = load_model(path)
    assert isinstance(loaded, OneHotCNN) and loaded.config == CNNConfig(8, 5)
    ids = random_ids(length=30)
    torch.testing.assert_close(loaded(input_ids=ids), cnn(input_ids=ids), rtol=0, atol=0)
    with pytest.raises(InputError, match="holds a 'cnn' model, not a fine-tuned Caduceus"):
        load_finetuned(path)


def test_bad_checkpoint_files(tmp_path):
    with pytest.raises(InputError, match="checkpoint not found"):
        read_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    with pytest.raises(InputError, match="bad.pt: not a readable checkpoint"):
        load_model(bad)
    torch.save({"state_dict": {}, "model": "rnn", "task_names": []}, tmp_path / "rnn.pt")
    with pytest.raises(InputError, match="unknown model kind 'rnn'"):
        load_model(tmp_path / "rnn.pt")


def test_export_hf_folder_round_trip(tmp_path):
    clf = classifier(rcps=True).float()
    export_hf_folder(clf, ["a", "b", "c"], tmp_path / "hf")
    lm = load_caduceus(tmp_path / "hf")
    for key, value in clf.backbone.state_dict().items():
        torch.testing.assert_close(lm.caduceus.state_dict()[key], value, rtol=0, atol=0)
    from safetensors.torch import load_file

    head = load_file(str(tmp_path / "hf" / "epi_head.safetensors"))
    torch.testing.assert_close(head["linear.weight"], clf.head.linear.weight.detach())
    meta = json.loads((tmp_path / "hf" / "epi_head.json").read_text())
    assert meta == {"pooling": "mean", "task_names": ["a", "b", "c"]}
