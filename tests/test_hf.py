"""Caduceus as a transformers model: the Auto classes load the official fixtures without remote code
and reproduce their outputs, save_pretrained writes the official layout, a classifier starts from
a masked-LM folder, and transformers.Trainer fine-tunes it."""
import numpy as np
import pytest
import torch
from helpers import FIXTURES, tiny_config
from safetensors import safe_open
from transformers import (AutoConfig, AutoModel, AutoModelForMaskedLM,
                          AutoModelForSequenceClassification)

import caduceus_lrp  # noqa: F401  (registers the Auto classes)
from caduceus_lrp import CaduceusClassifier, CaduceusConfig, CaduceusForMaskedLM, build_caduceus


def stored_keys(folder):
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        return set(f.keys())


@pytest.mark.parametrize("dtype,atol", [(torch.float32, (2e-5, 1e-5)), (torch.float64, (1e-10,) * 2)])
def test_auto_classes_reproduce_the_official_outputs(official, dtype, atol):
    folder, ref = official
    assert isinstance(AutoConfig.from_pretrained(folder), CaduceusConfig)
    model = AutoModelForMaskedLM.from_pretrained(folder, dtype=dtype).eval()
    assert isinstance(model, CaduceusForMaskedLM)
    suffix = "_f64" if dtype == torch.float64 else ""
    with torch.no_grad():
        out = model(torch.from_numpy(ref["input_ids"]), output_hidden_states=True)
    np.testing.assert_allclose(torch.stack(out.hidden_states).numpy(), ref["hidden_states" + suffix],
                               rtol=0, atol=atol[0])
    np.testing.assert_allclose(out.logits.numpy(), ref["logits" + suffix], rtol=0, atol=atol[1])
    base = AutoModel.from_pretrained(folder, dtype=dtype).eval()  # the backbone alone
    with torch.no_grad():
        hidden = base(torch.from_numpy(ref["input_ids"])).last_hidden_state
    np.testing.assert_allclose(hidden.numpy(), ref["last_hidden_state" + suffix], rtol=0,
                               atol=atol[0])


def test_save_pretrained_writes_the_official_layout(official, tmp_path):
    folder, ref = official
    model = AutoModelForMaskedLM.from_pretrained(folder)
    model.save_pretrained(tmp_path)
    assert stored_keys(tmp_path) == stored_keys(folder)  # tied weights left out, as published
    again = AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        logits = again(torch.from_numpy(ref["input_ids"])).logits
    np.testing.assert_allclose(logits.numpy(), ref["logits"], rtol=0, atol=1e-5)


def test_classifier_from_a_masked_lm_folder_and_back(tmp_path):
    folder = FIXTURES / "tiny_ps"
    tasks = ["CTCF", "GATA1", "SPI1"]
    clf = AutoModelForSequenceClassification.from_pretrained(
        folder, id2label=dict(enumerate(tasks)), epi_pooling="max")
    assert isinstance(clf, CaduceusClassifier) and clf.task_names == tasks
    lm = AutoModelForMaskedLM.from_pretrained(folder)
    for (k, a), (k2, b) in zip(clf.caduceus.state_dict().items(), lm.caduceus.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    assert clf.head.linear.weight.std() < 0.05 and not clf.head.linear.bias.any()  # EPI head init
    clf.save_pretrained(tmp_path)
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (2, 40)), 4).float()
    with torch.no_grad():
        torch.testing.assert_close(again(onehot=x).logits, clf.eval()(onehot=x).logits)
    assert again.head.pooling == "max"


def test_trainer_lowers_the_loss(tmp_path):
    from transformers import Trainer, TrainingArguments

    from caduceus_lrp.data import DataConfig, load_dataset
    from caduceus_lrp.training.hf import TrainerDataset

    ds = load_dataset(DataConfig(n_synthetic=300, seq_len=200, cache_dir=str(tmp_path / "cache")))
    train = TrainerDataset(ds, "train")
    backbone = build_caduceus(tiny_config(d_model=16), seed=0).caduceus
    model = CaduceusClassifier.from_backbone(backbone, ds.task_names, "max")

    def mean_loss():
        model.eval()
        with torch.no_grad():
            return model(input_ids=train.tokens, labels=train.labels).loss.item()

    before = mean_loss()
    args = TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=40,
                             per_device_train_batch_size=16, learning_rate=1e-2,
                             lr_scheduler_type="constant", report_to=[], save_strategy="no",
                             use_cpu=True, disable_tqdm=True, seed=0)
    Trainer(model=model, args=args, train_dataset=train).train()
    after = mean_loss()
    assert after < 0.9 * before, (before, after)
