"""The one-hot CNN baseline: convolution, ReLU, global max pooling and a linear layer, RC-invariant.

Glossary: b batch, l length, f filters, t tasks.
Both strands are scored by the same network and the logits averaged, so the model is exactly
reverse-complement invariant, like the ps Caduceus head. It has the classifier's interface
(forward(input_ids=None, onehot=None, labels=None) -> SequenceClassifierOutput, `features` and
`top` for the training loop), so the same loop, metrics and attribution methods serve both.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers.modeling_outputs import SequenceClassifierOutput

from .errors import InputError
from .sequence import BASE_TOKENS, flip_lc

__all__ = ["CNNConfig", "OneHotCNN", "tokens_to_onehot"]


def tokens_to_onehot(input_ids, dtype=torch.float32):
    """Caduceus token ids (b, l) -> one-hot (b, l, 4) over A, C, G, T (N and others: all zero)."""
    codes = torch.as_tensor(BASE_TOKENS, device=input_ids.device)
    return (input_ids[..., None] == codes).to(dtype)


@dataclass
class CNNConfig:
    """Size of the baseline: `filters` convolution filters of width `width`."""

    filters: int = 64
    width: int = 15

    def __post_init__(self):
        if self.filters < 1 or self.width < 1:
            raise InputError(f"cnn: filters and width must be positive (got {self.filters}, "
                             f"{self.width})")


class OneHotCNN(nn.Module):
    """Conv1d(4 -> f, width) + ReLU + max over l + Linear(f -> t): forward(input_ids=None,
    onehot=None) -> logits (b, t), the average over both strands."""

    kind = "cnn"
    n_strands = 1

    def __init__(self, cfg: CNNConfig, task_names):
        super().__init__()
        self.config = cfg
        self.task_names = list(task_names)
        self.conv = nn.Conv1d(4, cfg.filters, cfg.width, padding=cfg.width // 2)
        self.linear = nn.Linear(cfg.filters, len(self.task_names))

    @property
    def n_tasks(self) -> int:
        return self.linear.out_features

    def _strand_logits(self, onehot):
        """onehot (b, l, 4) -> logits (b, t) of one strand."""
        h = F.relu(self.conv(onehot.transpose(1, 2)))                  # (b, f, l)
        return self.linear(h.amax(dim=-1))

    def top(self, onehot):
        """The trainable map the training loop runs: one-hot (b, l, 4) -> logits (b, t)."""
        return 0.5 * (self._strand_logits(onehot) + self._strand_logits(flip_lc(onehot)))

    def features(self, input_ids):
        """The input of `top` for token ids (b, l): one-hot (b, 1, l, 4); nothing is frozen."""
        return tokens_to_onehot(input_ids, self.conv.weight.dtype)[:, None]

    def forward(self, input_ids=None, onehot=None, labels=None, **kwargs):
        if (input_ids is None) == (onehot is None):
            raise ValueError("pass exactly one of input_ids, onehot")
        dtype = self.conv.weight.dtype
        logits = self.top(tokens_to_onehot(input_ids, dtype) if onehot is None else onehot.to(dtype))
        loss = None if labels is None else F.binary_cross_entropy_with_logits(logits, labels.float())
        return SequenceClassifierOutput(loss=loss, logits=logits)

    @property
    def model(self):
        """The module to save (itself; the Caduceus adapter returns its classifier)."""
        return self

    def checkpoint_fields(self) -> dict:
        """Plain-data entries that rebuild this model in a checkpoint."""
        return {"cnn_config": asdict(self.config)}

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> "OneHotCNN":
        return cls(CNNConfig(**ckpt["cnn_config"]), ckpt["task_names"])
