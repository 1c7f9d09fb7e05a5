"""Caduceus as `transformers` models: the backbone, the masked-LM model, the official initialisation,
and loading of the published Hugging Face folders.

Glossary: b batch, l length, v vocabulary. The classes subclass `PreTrainedModel` and are
registered with the Auto classes when `caduceus_lrp` is imported, so
`AutoModelForMaskedLM.from_pretrained(folder)` loads an official checkpoint on a CPU with neither
remote code nor mamba-ssm, and `save_pretrained` writes the official layout: the weights tied to
others (the reverse direction's in_proj and out_proj, the LM head) are left out, as in the
published files (docs/caduceus.md).
"""
from __future__ import annotations

import contextlib
import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutput, MaskedLMOutput

from .config import CaduceusConfig
from .errors import InputError
from .layers import CaduceusMixerModel, Mamba, RCPSLMHead, RMSNorm
from .scan import compute_dtype

__all__ = ["CaduceusPreTrainedModel", "Caduceus", "CaduceusForMaskedLM", "tied_weights",
           "build_caduceus", "load_caduceus"]


def tied_weights(cfg: CaduceusConfig, prefix: str = "", lm_head: bool = False) -> dict[str, str]:
    """{tied parameter: the parameter it shares} of a model whose backbone mixer stack is at
    `prefix` + "backbone.": each layer's reverse in_proj and out_proj (shared with the forward
    direction) and, with `lm_head`, the LM head weight (the embedding). These keys are not stored
    in the published files."""
    mixer = "mixer.submodule" if cfg.rcps else "mixer"
    out = {}
    for i in range(cfg.n_layer):
        layer = f"{prefix}backbone.layers.{i}.{mixer}"
        for p in ("in_proj", "out_proj"):
            out[f"{layer}.mamba_rev.{p}.weight"] = f"{layer}.mamba_fwd.{p}.weight"
    if lm_head:
        embedding = "embedding.weight" if cfg.rcps else "weight"
        head = "lm_head.lm_head.weight" if cfg.rcps else "lm_head.weight"
        out[head] = f"{prefix}backbone.embeddings.word_embeddings.{embedding}"
    return out


class CaduceusPreTrainedModel(PreTrainedModel):
    """Shared `transformers` plumbing: config class, weight prefix, the official initialisation."""

    config_class = CaduceusConfig
    base_model_prefix = "caduceus"
    supports_gradient_checkpointing = True
    _no_split_modules = ["Block"]

    @torch.no_grad()
    def _init_weights(self, module):
        """The official initialisation (mamba-ssm's `Mamba.__init__` and `_init_weights`): PyTorch's
        default for linear and conv layers with zero linear biases, N(0, initializer_range)
        embeddings, unit norm weights, dt_proj's bias the inverse softplus of a log-uniform dt in
        [dt_min, dt_max], A_log[c, n] = log(n + 1), D = 1, and out_proj scaled by
        1 / sqrt(n_residuals_per_layer * n_layer)."""
        cfg = self.config
        if isinstance(module, (nn.Linear, nn.Conv1d)):
            if module.weight is self.get_input_embeddings().weight:
                return  # the LM head: tied to the embedding, initialised there
            module.reset_parameters()
            if isinstance(module, nn.Linear) and module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, std=cfg.initializer_cfg["initializer_range"])
        elif isinstance(module, RMSNorm):
            init.ones_(module.weight)
        elif isinstance(module, Mamba):
            self._init_mamba(module)

    def _init_mamba(self, module: Mamba):
        cfg, ssm = self.config, self.config.ssm_cfg
        dt_std = module.dt_rank ** -0.5 * ssm["dt_scale"]
        init.uniform_(module.dt_proj.weight, -dt_std, dt_std)
        log_dt = torch.rand(cfg.d_inner) * (math.log(ssm["dt_max"]) - math.log(ssm["dt_min"]))
        dt = torch.exp(log_dt + math.log(ssm["dt_min"])).clamp(min=ssm["dt_init_floor"])
        init.copy_(module.dt_proj.bias, dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)
        a = torch.arange(1, cfg.d_state + 1, dtype=torch.float32).repeat(cfg.d_inner, 1)
        init.copy_(module.A_log, torch.log(a))
        init.ones_(module.D)
        if module.owns_projections and cfg.initializer_cfg["rescale_prenorm_residual"]:
            n_res = cfg.initializer_cfg["n_residuals_per_layer"] * cfg.n_layer
            weight = module.out_proj.weight
            init.kaiming_uniform_(weight, a=math.sqrt(5))
            init.copy_(weight, weight / math.sqrt(n_res))


class Caduceus(CaduceusPreTrainedModel):
    """The Caduceus backbone (keys `backbone.*`). Call with input_ids (b, l), inputs_embeds
    (b, l, hidden) or onehot (b, l, 4) over A, C, G, T; returns BaseModelOutput with
    last_hidden_state (b, l, hidden_size) and, when asked, the official hidden_states."""

    def __init__(self, config: CaduceusConfig):
        super().__init__(config)
        self.backbone = CaduceusMixerModel(config)
        self._tied_weights_keys = tied_weights(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.backbone.embeddings.word_embeddings

    def forward(self, input_ids=None, inputs_embeds=None, onehot=None, output_hidden_states=None,
                return_dict=None, **kwargs):
        given = [x is not None for x in (input_ids, inputs_embeds, onehot)]
        if sum(given) != 1:
            raise ValueError("pass exactly one of input_ids, inputs_embeds, onehot")
        if onehot is not None:
            inputs_embeds = self.backbone.embeddings.embed_onehot(onehot)
        hidden_flag = (self.config.output_hidden_states if output_hidden_states is None
                       else output_hidden_states)
        out, hidden = self.backbone(input_ids, inputs_embeds, hidden_flag)
        result = BaseModelOutput(last_hidden_state=out, hidden_states=hidden)
        return result if return_dict is not False else result.to_tuple()


class CaduceusForMaskedLM(CaduceusPreTrainedModel):
    """Caduceus with its tied LM head (keys `caduceus.backbone.*`, `lm_head.*`): logits (b, l, v)
    and, with `labels` (b, l; -100 where not predicted), the masked-LM cross-entropy."""

    def __init__(self, config: CaduceusConfig):
        super().__init__(config)
        self.caduceus = Caduceus(config)
        weight = self.caduceus.backbone.embeddings.word_embeddings.weight
        if config.rcps:
            self.lm_head = RCPSLMHead(config, weight)
        else:
            self.lm_head = nn.Linear(config.d_model, config.padded_vocab_size, bias=False)
            self.lm_head.weight = weight
        self._tied_weights_keys = tied_weights(config, "caduceus.", lm_head=True)
        self.post_init()

    def get_input_embeddings(self):
        return self.caduceus.get_input_embeddings()

    def forward(self, input_ids=None, inputs_embeds=None, onehot=None, labels=None,
                output_hidden_states=None, return_dict=None, **kwargs):
        out = self.caduceus(input_ids, inputs_embeds, onehot, output_hidden_states)
        h = out.last_hidden_state
        logits = self.lm_head(h).to(compute_dtype(h))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten().to(logits.device),
                                   ignore_index=-100)
        result = MaskedLMOutput(loss=loss, logits=logits, hidden_states=out.hidden_states)
        return result if return_dict is not False else result.to_tuple()


def build_caduceus(cfg: CaduceusConfig, seed: int | None = 0) -> CaduceusForMaskedLM:
    """A randomly initialised masked-LM Caduceus with the official init, deterministic for a seed
    (the global RNG state is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        return CaduceusForMaskedLM(cfg)


def _resolve_folder(path_or_hf_id) -> Path:
    path = Path(path_or_hf_id)
    if path.exists():
        if not path.is_dir():
            raise InputError(f"{path}: expected a folder with config.json and model.safetensors")
        return path
    if str(path_or_hf_id).count("/") != 1 or str(path_or_hf_id).startswith((".", "/")):
        raise InputError(f"{path_or_hf_id}: no such folder (and not a Hugging Face id 'owner/name')")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(path_or_hf_id),
                                      allow_patterns=["config.json", "*.safetensors", "*.bin"]))
    except Exception as err:  # offline, unknown repo, ...
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{path_or_hf_id}: not a local folder, and downloading it from the "
                         f"Hugging Face Hub failed ({first}); download it elsewhere and pass the "
                         "folder") from None


def _stored_shapes(folder: Path) -> dict:
    """{key: shape} of the weights file of a folder (safetensors, or a pytorch_model.bin read with
    weights_only=True)."""
    st, binf = folder / "model.safetensors", folder / "pytorch_model.bin"
    if st.exists():
        from safetensors import safe_open

        try:
            with safe_open(str(st), framework="pt") as f:
                return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        except Exception as err:
            raise InputError(f"{st}: not a readable safetensors file ({err})") from None
    if binf.exists():
        try:
            state = torch.load(binf, map_location="cpu", weights_only=True)
        except Exception as err:
            raise InputError(f"{binf}: cannot be loaded with weights_only=True ({err})") from None
        return {k: tuple(v.shape) for k, v in state.items()}
    raise InputError(f"{folder}: missing model.safetensors (or pytorch_model.bin)")


def load_caduceus(path_or_hf_id, dtype=None) -> CaduceusForMaskedLM:
    """Load a masked-LM Caduceus from a local folder (config.json + model.safetensors or a
    pytorch_model.bin) or a Hugging Face id (when online), in eval mode.

    `CaduceusForMaskedLM.from_pretrained` does the loading; before it, the file's keys and shapes
    are checked against the config: tied weights may be absent, any other missing or unexpected
    key or a shape mismatch raises InputError naming every one (from_pretrained itself would only
    warn and initialise them randomly). Base-model files (keys `backbone.*`) are accepted too.
    """
    folder = _resolve_folder(path_or_hf_id)
    if not (folder / "config.json").exists():
        raise InputError(f"{folder}: missing config.json")
    cfg = CaduceusConfig.from_json(folder / "config.json")
    stored = _stored_shapes(folder)
    if stored and all(k.startswith("backbone.") for k in stored):
        stored = {f"caduceus.{k}": v for k, v in stored.items()}
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in CaduceusForMaskedLM(cfg).state_dict().items()}
    tied = set(tied_weights(cfg, "caduceus.", lm_head=True))
    missing = sorted(set(expected) - set(stored) - tied)
    unexpected = sorted(set(stored) - set(expected))
    wrong = sorted(f"{k} (file {stored[k]}, model {expected[k]})"
                   for k in set(expected) & set(stored) if stored[k] != expected[k])
    problems = ([f"missing keys: {', '.join(missing)}"] if missing else []) + \
               ([f"unexpected keys: {', '.join(unexpected)}"] if unexpected else []) + \
               ([f"shape mismatch: {', '.join(wrong)}"] if wrong else [])
    if problems:
        raise InputError(f"{folder}: checkpoint does not match its config.json: " + "; ".join(problems))
    with _quiet_loading():
        model = CaduceusForMaskedLM.from_pretrained(folder, config=cfg, dtype=dtype or torch.float32)
    return model.eval()


@contextlib.contextmanager
def _quiet_loading():
    """No per-tensor progress bar from transformers while a (small) checkpoint loads."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
