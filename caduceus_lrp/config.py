"""CaduceusConfig: the official Caduceus `config.json` as a `transformers` configuration.

The field names and meanings are those of the official `configuration_caduceus.py`, so the
published folders load with `AutoConfig.from_pretrained(folder)` (no remote code) and a saved
config is read back by the official code. docs/caduceus.md lists the values of the published
checkpoints.
"""
from __future__ import annotations

import math
from dataclasses import field
from pathlib import Path

from transformers import PretrainedConfig

from .errors import InputError
from .io_utils import atomic_path

__all__ = ["CaduceusConfig", "ARCHITECTURES", "architecture_config"]

DEFAULT_SSM_CFG = {
    "d_state": 16, "d_conv": 4, "expand": 2, "dt_rank": "auto", "dt_min": 0.001, "dt_max": 0.1,
    "dt_init": "random", "dt_scale": 1.0, "dt_init_floor": 1e-4, "conv_bias": True, "bias": False,
    "use_fast_path": True,
}
DEFAULT_INITIALIZER_CFG = {
    "initializer_range": 0.02, "rescale_prenorm_residual": True, "n_residuals_per_layer": 1,
}
# Token ids of the Caduceus character tokenizer: complement swaps A<->T (7<->10), C<->G (8<->9).
DEFAULT_COMPLEMENT_MAP = {i: i for i in range(16)} | {7: 10, 8: 9, 9: 8, 10: 7}


class CaduceusConfig(PretrainedConfig):
    """The fields of the official config.json (model_type "caduceus"). Keys it does not name
    (auto_map, ...) are kept as attributes and written back. `tie_word_embeddings` is always on:
    the LM head shares the embedding, and the reverse direction of each BiMamba shares the
    forward direction's in_proj and out_proj, as in the released checkpoints. A classifier's
    config adds its tasks (`id2label`) and its head's pooling (`epi_pooling`)."""

    model_type = "caduceus"

    d_model: int = 256
    n_layer: int = 16
    vocab_size: int = 12
    pad_vocab_size_multiple: int = 8
    ssm_cfg: dict = field(default_factory=dict)
    rms_norm: bool = True
    norm_epsilon: float = 1e-5
    fused_add_norm: bool = True
    residual_in_fp32: bool = False
    initializer_cfg: dict = field(default_factory=dict)
    bidirectional: bool = True
    bidirectional_strategy: str = "add"
    bidirectional_weight_tie: bool = True
    rcps: bool = True
    complement_map: dict = field(default_factory=dict)
    tie_word_embeddings: bool = True
    epi_pooling: str = "max"  # not official: the pooling of the EPI head of a CaduceusClassifier

    def __post_init__(self, **kwargs):
        self.ssm_cfg = {**DEFAULT_SSM_CFG, **(self.ssm_cfg or {})}
        self.initializer_cfg = {**DEFAULT_INITIALIZER_CFG, **(self.initializer_cfg or {})}
        self.complement_map = {int(k): int(v) for k, v in
                               (self.complement_map or DEFAULT_COMPLEMENT_MAP).items()}
        if not self.rms_norm:
            raise InputError("config.json: rms_norm: only RMSNorm Caduceus models are supported")
        if not self.bidirectional:
            raise InputError("config.json: bidirectional: only bidirectional Caduceus is supported")
        if self.bidirectional_strategy != "add":
            raise InputError(f"config.json: bidirectional_strategy: {self.bidirectional_strategy!r} "
                             "is not supported (the released checkpoints use 'add')")
        if not self.bidirectional_weight_tie:
            raise InputError("config.json: bidirectional_weight_tie: only the weight-tied "
                             "BiMamba of the released checkpoints is supported")
        if not self.tie_word_embeddings:
            raise InputError("config.json: tie_word_embeddings: the Caduceus LM head is tied to "
                             "the embedding")
        super().__post_init__(**kwargs)

    # Derived sizes ---------------------------------------------------------------------------
    @property
    def padded_vocab_size(self) -> int:
        """vocab_size rounded up to a multiple of pad_vocab_size_multiple (the embedding rows)."""
        m = self.pad_vocab_size_multiple
        return self.vocab_size + (-self.vocab_size) % m

    @property
    def d_inner(self) -> int:
        return self.ssm_cfg["expand"] * self.d_model

    @property
    def d_state(self) -> int:
        return self.ssm_cfg["d_state"]

    @property
    def d_conv(self) -> int:
        return self.ssm_cfg["d_conv"]

    @property
    def dt_rank(self) -> int:
        r = self.ssm_cfg["dt_rank"]
        return math.ceil(self.d_model / 16) if r == "auto" else int(r)

    @property
    def hidden_size(self) -> int:
        """Width of the backbone output: 2 * d_model for ps (both strands), d_model for ph."""
        return 2 * self.d_model if self.rcps else self.d_model

    @property
    def complement(self) -> list[int]:
        """complement[token] for every embedding row (ids past the map are their own complement)."""
        return [self.complement_map.get(i, i) for i in range(self.padded_vocab_size)]

    # Files with one-line errors ------------------------------------------------------------------
    @classmethod
    def from_json(cls, path) -> "CaduceusConfig":
        """Read a config.json; a missing or malformed file raises InputError naming it."""
        import json

        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise InputError(f"{path}: file not found") from None
        except json.JSONDecodeError as err:
            raise InputError(f"{path}: line {err.lineno}: not valid JSON ({err.msg})") from None
        if not isinstance(d, dict):
            raise InputError(f"{path}: expected a JSON object")
        try:
            return cls.from_dict(d)
        except (TypeError, ValueError) as err:
            raise InputError(f"{path}: {err}") from None

    def to_json(self, path) -> None:
        """Write config.json atomically."""
        with atomic_path(path) as tmp:
            self.to_json_file(tmp)


# The six published architectures (HF ids under kuleshov-group/): name -> (d_model, n_layer, rcps).
ARCHITECTURES = {
    "caduceus-ps_seqlen-131k_d_model-256_n_layer-16": (256, 16, True),
    "caduceus-ph_seqlen-131k_d_model-256_n_layer-16": (256, 16, False),
    "caduceus-ps_seqlen-1k_d_model-256_n_layer-4_lr-8e-3": (256, 4, True),
    "caduceus-ph_seqlen-1k_d_model-256_n_layer-4_lr-8e-3": (256, 4, False),
    "caduceus-ps_seqlen-1k_d_model-118_n_layer-4_lr-8e-3": (118, 4, True),
    "caduceus-ph_seqlen-1k_d_model-118_n_layer-4_lr-8e-3": (118, 4, False),
}


def architecture_config(name: str) -> CaduceusConfig:
    """Config of a published architecture, by its HF name (with or without 'kuleshov-group/')."""
    key = name.split("/")[-1]
    if key not in ARCHITECTURES:
        raise InputError(f"--arch: unknown architecture {name!r}; choose one of "
                         + ", ".join(ARCHITECTURES))
    d_model, n_layer, rcps = ARCHITECTURES[key]
    return CaduceusConfig(d_model=d_model, n_layer=n_layer, rcps=rcps, vocab_size=16)
