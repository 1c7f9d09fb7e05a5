"""The epigenomic (EPI) multi-task head and the fine-tuned Caduceus classifier built on it.

Glossary: b batch, l length, d d_model, t tasks.
ps: the backbone output (b, l, 2d) is split into the forward half and the flipLC'd RC half, one
shared head scores both and the logits are averaged: exactly RC-invariant.
ph: the head scores the forward strand; in eval mode the logits are averaged with those of the
reverse complement ("post-hoc conjoining"); training uses RC augmentation instead.
The classifier is a `transformers` model (AutoModelForSequenceClassification): its config is the
backbone's CaduceusConfig with the task names as `id2label` and the pooling as `epi_pooling`.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import initialization as init
from transformers.modeling_outputs import SequenceClassifierOutput

from .config import CaduceusConfig
from .errors import InputError
from .model import Caduceus, CaduceusPreTrainedModel, tied_weights
from .sequence import flip_lc

__all__ = ["POOLINGS", "POOLED_PER_CHANNEL", "Pooling", "EPIHead", "CaduceusClassifier",
           "classifier_config"]


def _pool_mean(h):
    return h.mean(dim=1)


def _pool_max(h):
    return h.amax(dim=1)


def _pool_center(h):
    """Mean of the central position(s): one for odd l, the two middle ones for even l."""
    length = h.shape[1]
    return h[:, (length - 1) // 2: length // 2 + 1].mean(dim=1)


def _pool_lse(h):
    """Log-mean-exp, a smooth maximum: log(mean_l exp(h)), between the mean and the max. Its
    gradient is the softmax over length, so every position learns, not only the maximum."""
    return torch.logsumexp(h, dim=1) - math.log(h.shape[1])


def _pool_max_mean(h):
    """The max and the mean over length side by side: (b, l, d) -> (b, 2d)."""
    return torch.cat([h.amax(dim=1), h.mean(dim=1)], dim=-1)


POOLINGS = {"mean": _pool_mean, "max": _pool_max, "center": _pool_center, "lse": _pool_lse,
            "max+mean": _pool_max_mean}
POOLED_PER_CHANNEL = {"max+mean": 2}  # pooled features per backbone channel; 1 for the others


class Pooling(nn.Module):
    """Pooling over length, (b, l, d) -> (b, k d) with k = POOLED_PER_CHANNEL (1 but for
    max+mean); a module so that an LRP rule can replace it."""

    def __init__(self, kind: str):
        super().__init__()
        if kind not in POOLINGS:
            raise InputError(f"--pooling: unknown pooling {kind!r}; choose one of "
                             f"{', '.join(POOLINGS)}")
        self.kind = kind

    def forward(self, h):
        return POOLINGS[self.kind](h)


class EPIHead(nn.Module):
    """Pooling over length, then one linear layer to t task logits: (b, l, d) -> (b, k d) ->
    (b, t)."""

    def __init__(self, d_model: int, n_tasks: int, pooling: str = "mean"):
        super().__init__()
        self.pool = Pooling(pooling)
        self.linear = nn.Linear(POOLED_PER_CHANNEL.get(pooling, 1) * d_model, n_tasks)

    @property
    def pooling(self) -> str:
        return self.pool.kind

    def forward(self, h):
        return self.linear(self.pool(h))


def classifier_config(backbone: CaduceusConfig, task_names, pooling: str = "max") -> CaduceusConfig:
    """The backbone's config with the classifier's fields: the tasks as id2label and the pooling."""
    if pooling not in POOLINGS:
        raise InputError(f"--pooling: unknown pooling {pooling!r}; choose one of "
                         f"{', '.join(POOLINGS)}")
    fields = backbone.to_dict() | {"id2label": dict(enumerate(task_names)),
                                   "label2id": {t: i for i, t in enumerate(task_names)},
                                   "epi_pooling": pooling,
                                   "architectures": ["CaduceusClassifier"]}
    return CaduceusConfig.from_dict(fields)


class CaduceusClassifier(CaduceusPreTrainedModel):
    """Caduceus backbone + EPI head (keys `caduceus.backbone.*`, `head.linear.*`).

    forward(input_ids=None, onehot=None, labels=None) -> SequenceClassifierOutput with logits
    (b, t) and, given labels (b, t) in [0, 1], the mean binary cross-entropy over tasks."""

    kind = "caduceus"

    def __init__(self, config: CaduceusConfig):
        super().__init__(config)
        self.caduceus = Caduceus(config)
        self.head = EPIHead(config.d_model, config.num_labels, config.epi_pooling)
        self._tied_weights_keys = tied_weights(config, "caduceus.")
        self.post_init()

    @classmethod
    def from_backbone(cls, backbone: Caduceus, task_names, pooling: str = "max",
                      seed: int | None = 0) -> "CaduceusClassifier":
        """A classifier on a copy of `backbone`'s weights, its head initialised from `seed`."""
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            model = cls(classifier_config(backbone.config, task_names, pooling))
        model.caduceus.load_state_dict(backbone.state_dict())
        return model.to(next(backbone.parameters()).dtype)

    @torch.no_grad()
    def _init_weights(self, module):
        """The backbone's official init; the head's linear layer N(0, initializer_range), zero
        bias (the official classifier's head was left badly initialised)."""
        if module is self.head.linear:
            init.normal_(module.weight, std=self.config.initializer_cfg["initializer_range"])
            init.zeros_(module.bias)
        else:
            super()._init_weights(module)

    def get_input_embeddings(self):
        return self.caduceus.get_input_embeddings()

    @property
    def n_tasks(self) -> int:
        return self.head.linear.out_features

    @property
    def task_names(self) -> list[str]:
        return [self.config.id2label[i] for i in range(self.n_tasks)]

    def head_logits(self, hidden):
        """Final backbone output (b, l, hidden_size) -> logits (b, t); for ps the two strand
        halves share the head and their logits are averaged."""
        if not self.config.rcps:
            return self.head(hidden)
        d = self.config.d_model
        return 0.5 * (self.head(hidden[..., :d]) + self.head(flip_lc(hidden[..., d:])))

    def forward(self, input_ids=None, onehot=None, labels=None, return_dict=None, **kwargs):
        hidden = self.caduceus(input_ids=input_ids, onehot=onehot).last_hidden_state
        logits = self.head_logits(hidden)
        if not self.config.rcps and not self.training:  # ph: average with the other strand
            if onehot is not None:
                rc = self.caduceus(onehot=flip_lc(onehot)).last_hidden_state
            else:
                comp = torch.as_tensor(self.config.complement, device=input_ids.device)
                rc = self.caduceus(input_ids=comp[input_ids].flip(-1)).last_hidden_state
            logits = 0.5 * (logits + self.head_logits(rc))
        loss = None
        if labels is not None:
            loss = F.binary_cross_entropy_with_logits(logits.float(), labels.float())
        result = SequenceClassifierOutput(loss=loss, logits=logits)
        return result if return_dict is not False else result.to_tuple()

    def checkpoint_fields(self) -> dict:
        """Plain-data entries that rebuild this model in a checkpoint."""
        return {"caduceus_config": self.config.to_dict()}

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> "CaduceusClassifier":
        return cls(CaduceusConfig.from_dict(ckpt["caduceus_config"]))
