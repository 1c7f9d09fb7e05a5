"""The EPI head, the fine-tuned classifier and the CNN baseline: pooling, RC invariance,
initialisation, loss, and the checkpoint format."""
import numpy as np
import pytest
import torch
from helpers import classifier, tiny_config
from transformers import AutoModelForSequenceClassification

from caduceus_lrp import build_caduceus
from caduceus_lrp.checkpoint import load_finetuned, load_model, read_checkpoint, save_finetuned
from caduceus_lrp.cnn import CNNConfig, OneHotCNN, tokens_to_onehot
from caduceus_lrp.epi_head import CaduceusClassifier, EPIHead, classifier_config
from caduceus_lrp.errors import InputError
from caduceus_lrp.sequence import flip_lc


def random_ids(b=4, length=23, seed=0):
    return torch.randint(7, 11, (b, length), generator=torch.Generator().manual_seed(seed))


def rc_ids(ids):
    return (17 - ids).flip(-1)  # A7<->T10, C8<->G9


def logits(model, **inputs):
    with torch.no_grad():
        return model(**inputs).logits


@pytest.mark.parametrize("pooling", ["mean", "max", "center", "lse", "max+mean"])
def test_ps_classifier_is_rc_invariant(pooling):
    clf = classifier(rcps=True, pooling=pooling)
    ids = random_ids()
    a, b = logits(clf, input_ids=ids), logits(clf, input_ids=rc_ids(ids))
    c = logits(clf, onehot=flip_lc(tokens_to_onehot(ids).double()))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    torch.testing.assert_close(a, c, rtol=0, atol=1e-12)
    assert a.shape == (4, 3) and a.std() > 0.1


def test_ph_classifier_conjoined_in_eval_only():
    clf = classifier(rcps=False)
    ids = random_ids()
    torch.testing.assert_close(logits(clf, input_ids=ids), logits(clf, input_ids=rc_ids(ids)),
                               rtol=0, atol=1e-12)
    clf.train()
    assert (logits(clf, input_ids=ids) - logits(clf, input_ids=rc_ids(ids))).abs().max() > 1e-3


def test_ps_head_averages_the_two_strand_halves():
    clf = classifier(rcps=True)
    h = torch.randn(2, 7, 2 * clf.config.d_model, dtype=torch.float64)
    d = clf.config.d_model
    expected = 0.5 * (clf.head(h[..., :d]) + clf.head(h[..., d:].flip(dims=(-2, -1))))
    torch.testing.assert_close(clf.head_logits(h), expected)


def test_poolings_against_numpy():
    h = torch.randn(3, 6, 5, dtype=torch.float64)
    for pooling, ref in (("mean", h.numpy().mean(1)), ("max", h.numpy().max(1)),
                         ("center", h.numpy()[:, 2:4].mean(1)),
                         ("lse", np.log(np.exp(h.numpy()).mean(1))),
                         ("max+mean", np.concatenate([h.numpy().max(1), h.numpy().mean(1)], 1))):
        head = EPIHead(5, 2, pooling).double()
        w, b = head.linear.weight.detach().numpy(), head.linear.bias.detach().numpy()
        np.testing.assert_allclose(head(h).detach().numpy(), ref @ w.T + b, rtol=1e-12)
    with pytest.raises(InputError, match="--pooling: unknown pooling 'first'"):
        EPIHead(8, 2, "first")


def test_classifier_init_head_and_backbone():
    """A classifier built from a config gets the official backbone init (that of the masked-LM
    model with the same seed) and the head N(0, 0.02) with zero bias."""
    cfg = classifier_config(tiny_config(rcps=True, d_model=64), [f"t{k}" for k in range(64)])
    torch.manual_seed(0)
    clf = CaduceusClassifier(cfg)
    assert abs(clf.head.linear.weight.std().item() - 0.02) < 0.002
    assert clf.head.linear.bias.abs().max() == 0
    reference = build_caduceus(tiny_config(rcps=True, d_model=64), seed=0).caduceus.state_dict()
    for name, value in clf.caduceus.state_dict().items():
        assert value.shape == reference[name].shape, name
    assert torch.isfinite(logits(clf, input_ids=random_ids())).all()


def test_from_backbone_copies_the_backbone_and_the_loss_is_bce():
    backbone = build_caduceus(tiny_config(rcps=True), seed=3).caduceus
    clf = CaduceusClassifier.from_backbone(backbone, ["a", "b"], "max", seed=1)
    for name, value in backbone.state_dict().items():
        assert torch.equal(clf.caduceus.state_dict()[name], value), name
    assert clf.task_names == ["a", "b"] and clf.config.epi_pooling == "max"
    ids, labels = random_ids(b=3), torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    out = clf(input_ids=ids, labels=labels)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(out.logits, labels)
    torch.testing.assert_close(out.loss, expected)


def test_cnn_is_rc_invariant_and_shapes():
    torch.manual_seed(0)
    cnn = OneHotCNN(CNNConfig(filters=8, width=5), ["a", "b", "c"]).double()
    ids = random_ids(length=30)
    torch.testing.assert_close(logits(cnn, input_ids=ids), logits(cnn, input_ids=rc_ids(ids)))
    assert cnn.features(ids).shape == (4, 1, 30, 4) and cnn.n_tasks == 3
    with pytest.raises(InputError, match="cnn: filters and width must be positive"):
        CNNConfig(filters=0)


@pytest.mark.parametrize("rcps, pooling", [(True, "max"), (False, "max"), (True, "max+mean")])
def test_checkpoint_round_trip_weights_only(tmp_path, rcps, pooling):
    clf = classifier(rcps=rcps, pooling=pooling, task_names=["a", "b", "c"], dtype=torch.float32)
    path = tmp_path / "best_model.pt"
    save_finetuned(path, clf, extra={"epoch": 3, "metrics": {"val.x": 0.5}})
    raw = torch.load(path, weights_only=True)
    assert raw["model"] == "caduceus" and raw["extra"]["epoch"] == 3
    loaded = load_finetuned(path)
    assert loaded.task_names == ["a", "b", "c"] and not loaded.training
    assert loaded.head.pooling == pooling
    ids = random_ids()
    torch.testing.assert_close(logits(loaded, input_ids=ids), logits(clf, input_ids=ids),
                               rtol=0, atol=0)


def test_cnn_checkpoint_and_kind_checks(tmp_path):
    torch.manual_seed(0)
    cnn = OneHotCNN(CNNConfig(filters=8, width=5), ["x", "y"])
    path = tmp_path / "cnn.pt"
    save_finetuned(path, cnn)
    loaded = load_model(path)
    assert isinstance(loaded, OneHotCNN) and loaded.config == CNNConfig(8, 5)
    assert loaded.task_names == ["x", "y"]
    ids = random_ids(length=30)
    torch.testing.assert_close(logits(loaded, input_ids=ids), logits(cnn, input_ids=ids),
                               rtol=0, atol=0)
    with pytest.raises(InputError, match="holds a 'cnn' model, not a 'caduceus' one"):
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


def test_a_fine_tuned_model_exports_as_a_hugging_face_folder(tmp_path):
    clf = classifier(rcps=True, task_names=["a", "b", "c"], dtype=torch.float32)
    clf.save_pretrained(tmp_path / "hf")
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path / "hf").eval()
    assert again.task_names == ["a", "b", "c"] and again.head.pooling == "mean"
    ids = random_ids()
    torch.testing.assert_close(logits(again, input_ids=ids), logits(clf, input_ids=ids))
