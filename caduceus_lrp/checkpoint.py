"""Fine-tuned model checkpoints (`best_model.pt`): written atomically, read with weights_only=True.

A checkpoint is a plain dict: the model kind ("caduceus" or "cnn"), its state dict, the fields
that rebuild it (`checkpoint_fields`), the task names and any plain-data `extra` (the training
config and metrics). Nothing in it needs unpickling code. A fine-tuned Caduceus is also written as
a Hugging Face folder with `model.save_pretrained(folder)` (AutoModelForSequenceClassification).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from .cnn import OneHotCNN
from .epi_head import CaduceusClassifier
from .errors import InputError
from .io_utils import atomic_path

__all__ = ["MODEL_KINDS", "save_finetuned", "load_weights", "read_checkpoint", "load_model",
           "load_finetuned"]

MODEL_KINDS = {"caduceus": CaduceusClassifier, "cnn": OneHotCNN}


def save_finetuned(path, model: nn.Module, extra: dict | None = None):
    """Write `model` (a CaduceusClassifier or OneHotCNN) with its task names and `extra`."""
    payload = {"model": model.kind, "state_dict": model.state_dict(),
               **model.checkpoint_fields(), "task_names": list(model.task_names),
               "extra": extra or {}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_weights(path):
    """torch.load(path, weights_only=True) on the CPU; an unreadable file raises InputError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise InputError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") from None


def read_checkpoint(path) -> dict:
    """The raw checkpoint dict, read with weights_only=True; clear errors for a bad file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: checkpoint not found (train one with `caduceus-lrp train`)")
    ckpt = load_weights(path)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "model" not in ckpt:
        raise InputError(f"{path}: not a caduceus-lrp checkpoint (no 'model'/'state_dict' entries)")
    return ckpt


def load_model(path, device=None, kind: str | None = None) -> nn.Module:
    """Any trained model of this project (fine-tuned Caduceus or CNN baseline) from a checkpoint,
    in eval mode; its task names are `model.task_names`. With `kind`, a checkpoint of another
    kind is an error."""
    ckpt = read_checkpoint(path)
    if kind is not None and ckpt["model"] != kind:
        raise InputError(f"{path}: holds a {ckpt['model']!r} model, not a {kind!r} one")
    if ckpt["model"] not in MODEL_KINDS:
        raise InputError(f"{path}: unknown model kind {ckpt['model']!r} (expected one of "
                         f"{', '.join(MODEL_KINDS)})")
    try:
        model = MODEL_KINDS[ckpt["model"]].from_checkpoint(ckpt)
        model.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, KeyError, TypeError, ValueError) as err:
        raise InputError(f"{path}: state dict does not match its config: "
                         + " ".join(str(err).split())[:500]) from None
    return model.to(device).eval()


def load_finetuned(path, device=None) -> CaduceusClassifier:
    """A fine-tuned Caduceus classifier from `best_model.pt`, in eval mode."""
    return load_model(path, device, kind="caduceus")
