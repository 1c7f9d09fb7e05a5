"""The epigenomic (EPI) multi-task head, the fine-tuned Caduceus classifier, and its checkpoint.

Glossary: b batch, l length, d d_model, t tasks.
ps: the backbone output (b, l, 2d) is split into the forward half and the flipLC'd RC half, one
shared head scores both and the logits are averaged: exactly RC-invariant.
ph: the head scores the forward strand; in eval mode the logits are averaged with those of the
reverse complement ("post-hoc conjoining"); training uses RC augmentation instead.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn

from .cnn import OneHotCNN
from .config import CaduceusConfig
from .errors import InputError
from .io_utils import atomic_path
from .model import Caduceus, CaduceusForMaskedLM, build_caduceus, flip_lc

__all__ = ["POOLINGS", "EPIHead", "CaduceusClassifier", "save_finetuned", "load_finetuned",
           "load_model", "read_checkpoint", "export_hf_folder", "rc_onehot"]


def _pool_mean(h):
    return h.mean(dim=1)


def _pool_max(h):
    return h.amax(dim=1)


def _pool_center(h):
    """Mean of the central position(s): one for odd l, the two middle ones for even l."""
    length = h.shape[1]
    return h[:, (length - 1) // 2: length // 2 + 1].mean(dim=1)


POOLINGS = {"mean": _pool_mean, "max": _pool_max, "center": _pool_center}


class EPIHead(nn.Module):
    """Pooling over length, then one linear layer to t task logits: (b, l, d) -> (b, t)."""

    def __init__(self, d_model: int, n_tasks: int, pooling: str = "mean", init_std: float = 0.02):
        super().__init__()
        if pooling not in POOLINGS:
            raise InputError(f"--pooling: unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
        self.pooling = pooling
        self.linear = nn.Linear(d_model, n_tasks)
        nn.init.normal_(self.linear.weight, mean=0.0, std=init_std)
        nn.init.zeros_(self.linear.bias)

    def forward(self, h):
        return self.linear(POOLINGS[self.pooling](h))


def rc_onehot(x):
    """Reverse complement of a one-hot batch (b, l, 4) over A, C, G, T."""
    return x.flip(dims=(-2, -1))


class CaduceusClassifier(nn.Module):
    """Caduceus backbone + EPI head. forward(input_ids=None, onehot=None) -> logits (b, t).

    Without `backbone`, the backbone gets the official random init (seed 0)."""

    kind = "caduceus"

    def __init__(self, cfg: CaduceusConfig, n_tasks: int, pooling: str = "mean",
                 backbone: Caduceus | None = None):
        super().__init__()
        self.config = cfg
        # without a backbone: the official random init (seed 0), never uninitialised memory
        self.backbone = backbone if backbone is not None else build_caduceus(cfg).caduceus
        self.head = EPIHead(cfg.d_model, n_tasks, pooling)

    @property
    def n_tasks(self) -> int:
        return self.head.linear.out_features

    def head_logits(self, hidden):
        """Final backbone output (b, l, hidden_size) -> logits (b, t); for ps the two strand
        halves share the head and their logits are averaged."""
        if not self.config.rcps:
            return self.head(hidden)
        d = self.config.d_model
        return 0.5 * (self.head(hidden[..., :d]) + self.head(flip_lc(hidden[..., d:])))

    def forward(self, input_ids=None, onehot=None):
        hidden = self.backbone(input_ids=input_ids, onehot=onehot).last_hidden_state
        logits = self.head_logits(hidden)
        if self.config.rcps or self.training:
            return logits
        # ph at evaluation: average with the reverse-complement strand
        if onehot is not None:
            rc = self.backbone(onehot=rc_onehot(onehot)).last_hidden_state
        else:
            comp = torch.as_tensor(self.config.complement, device=input_ids.device)
            rc = self.backbone(input_ids=comp[input_ids].flip(-1)).last_hidden_state
        return 0.5 * (logits + self.head_logits(rc))

    def checkpoint_fields(self) -> dict:
        """Plain-data entries that rebuild this model in a checkpoint."""
        return {"caduceus_config": self.config.to_dict(), "pooling": self.head.pooling}

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> "CaduceusClassifier":
        cfg = CaduceusConfig.from_dict(ckpt["caduceus_config"])
        return cls(cfg, len(ckpt["task_names"]), ckpt["pooling"])


def save_finetuned(path, model: nn.Module, task_names, extra: dict | None = None):
    """Write a checkpoint that loads with weights_only=True: the model kind ("caduceus" or
    "cnn"), state dict, model config, task names and any plain-data `extra` (e.g. the training
    config and metrics). Atomic."""
    payload = {
        "model": model.kind,
        "state_dict": model.state_dict(),
        **model.checkpoint_fields(),
        "task_names": list(task_names),
        "extra": extra or {},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read_checkpoint(path) -> dict:
    """The raw checkpoint dict, read with weights_only=True; clear errors for a bad file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: checkpoint not found (train one with "
                         "`python caduceus_lrp/train_caduceus_finetune.py`)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise InputError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "model" not in ckpt:
        raise InputError(f"{path}: not a caduceus-lrp checkpoint (no 'model'/'state_dict' entries)")
    return ckpt


def load_model(path, device=None) -> nn.Module:
    """Load any trained model of this project (fine-tuned Caduceus or CNN baseline) from a
    checkpoint, in eval mode. The task names are on `model.task_names`."""
    ckpt = read_checkpoint(path)
    classes = {"caduceus": CaduceusClassifier, "cnn": OneHotCNN}
    if ckpt["model"] not in classes:
        raise InputError(f"{path}: unknown model kind {ckpt['model']!r} (expected one of "
                         f"{', '.join(classes)})")
    model = classes[ckpt["model"]].from_checkpoint(ckpt)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        raise InputError(f"{path}: state dict does not match its config: "
                         + " ".join(str(err).split())[:500]) from None
    model.task_names = list(ckpt["task_names"])
    return model.to(device).eval()


def load_finetuned(path, device=None) -> CaduceusClassifier:
    """Load a fine-tuned Caduceus classifier from `best_model.pt`, in eval mode.
    The task names are on `model.task_names`."""
    kind = read_checkpoint(path)["model"]
    if kind != "caduceus":
        raise InputError(f"{path}: holds a {kind!r} model, not a fine-tuned Caduceus")
    return load_model(path, device)


def export_hf_folder(model: CaduceusClassifier, task_names, folder) -> None:
    """Write a fine-tuned Caduceus as a Hugging Face folder: the backbone as the masked-LM model
    (config.json, model.safetensors, loadable with `load_caduceus`) plus the head in
    `epi_head.safetensors` and `epi_head.json` (pooling, task names)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    lm = CaduceusForMaskedLM(model.config)
    lm.caduceus.load_state_dict(model.backbone.state_dict())
    lm.save_pretrained(folder)
    head = {k: v.detach().contiguous() for k, v in model.head.state_dict().items()}
    with atomic_path(folder / "epi_head.safetensors") as tmp:
        save_file(head, str(tmp), metadata={"format": "pt"})
    with atomic_path(folder / "epi_head.json") as tmp:
        tmp.write_text(json.dumps({"pooling": model.head.pooling,
                                   "task_names": list(task_names)}, indent=2) + "\n")
