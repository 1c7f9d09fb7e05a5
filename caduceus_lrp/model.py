"""Caduceus in pure PyTorch: BiMamba blocks, the RC-equivariant (ps) and plain (ph) backbones,
the masked-LM model, and loading/saving of the official Hugging Face checkpoints.

Glossary: b batch, l length, d d_model, e d_inner (= 2d), n d_state, r dt_rank, v vocabulary.
Module names follow the official state-dict keys one to one (see docs/caduceus.md).
The functional operations that relevance must cross are small modules (`SiLU`, `SelectiveSSM`,
`RMSNorm`, `CausalConv1d`), so `lrp_layers` can swap in rules without touching this file.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .config import CaduceusConfig
from .errors import InputError
from .io_utils import atomic_path
from .scan import compute_dtype as _compute_dtype
from .scan import selective_scan

__all__ = [
    "Caduceus", "CaduceusForMaskedLM", "CaduceusOutput", "MaskedLMOutput", "load_caduceus",
    "flip_lc", "ONEHOT_TOKEN_IDS",
]

ONEHOT_TOKEN_IDS = [7, 8, 9, 10]  # A, C, G, T


def flip_lc(x):
    """Flip the length and channel axes of (b, l, c): the reverse complement of a strand half."""
    return x.flip(dims=(-2, -1))


def add_residual(h, residual):
    """h + residual in (at least) float32, as the official fused add; h alone in layer 0."""
    if residual is None:
        return h
    return h.to(_compute_dtype(h)) + residual.to(_compute_dtype(h))


@dataclass
class CaduceusOutput:
    last_hidden_state: torch.Tensor              # (b, l, hidden_size)
    hidden_states: tuple | None = None           # n_layer + 1 tensors, official convention


@dataclass
class MaskedLMOutput:
    logits: torch.Tensor                         # (b, l, v)
    hidden_states: tuple | None = None


# ---------------------------------------------------------------------------------------------
# Operations relevance crosses (LRP rules replace their forward in lrp_layers)
# ---------------------------------------------------------------------------------------------
class SiLU(nn.Module):
    """x * sigmoid(x)."""

    def forward(self, x):
        return F.silu(x)


class SelectiveSSM(nn.Module):
    """The selective scan with the gate: y = scan(u; delta, A, B, C, D) * silu(z). No parameters."""

    def forward(self, u, delta, A, B, C, D, z, delta_bias):
        """u, delta, z: (b, e, l); A: (e, n); B, C: (b, n, l); D, delta_bias: (e,) -> (b, e, l)."""
        return selective_scan(u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias,
                              delta_softplus=True)


class RMSNorm(nn.Module):
    """y = x * rsqrt(mean_c(x^2) + eps) * w, computed in (at least) float32, no bias."""

    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def inv_rms(self, x):
        """rsqrt(mean_c(x^2) + eps), (..., 1); x already in the compute dtype."""
        return torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)

    def forward(self, x):
        xc = x.to(_compute_dtype(x))
        return xc * self.inv_rms(xc) * self.weight.to(xc.dtype)


# ---------------------------------------------------------------------------------------------
# Mamba and BiMamba
# ---------------------------------------------------------------------------------------------
class CausalConv1d(nn.Conv1d):
    """Mamba's depthwise causal conv1d on channels-last input: (b, l, e) -> (b, l, e).

    The parameters (and key names) of mamba-ssm's nn.Conv1d(e, e, k, groups=e, padding=k - 1)
    truncated to l: out[:, t] = bias + sum_j w[:, j] * x[:, t + j - (k - 1)] (zero before the
    start). It runs as a 2-D convolution in torch's channels_last format, so the activations stay
    in the (b, l, e) layout of in_proj's output: transposing copies to (b, e, l) and back cost
    more than the convolution itself (2, 8,192, 512 on one core: 30 ms against 105 ms).
    """

    def forward(self, x):
        k = self.kernel_size[0]
        x = F.pad(x.transpose(1, 2).unsqueeze(2), (k - 1, 0))          # (b, e, 1, l + k - 1)
        out = F.conv2d(x.contiguous(memory_format=torch.channels_last), self.weight.unsqueeze(2),
                       self.bias, groups=self.groups)                  # (b, e, 1, l)
        return out.squeeze(2).transpose(1, 2)


class Mamba(nn.Module):
    """One direction of a mamba-ssm v1 `Mamba` block. The in/out projections are held by
    `BiMamba` logic but live here under the official names (tied between directions)."""

    def __init__(self, cfg: CaduceusConfig, in_proj=None, out_proj=None):
        super().__init__()
        d, e, n, r, k = cfg.d_model, cfg.d_inner, cfg.d_state, cfg.dt_rank, cfg.d_conv
        bias = cfg.ssm_cfg["bias"]
        self.in_proj = in_proj if in_proj is not None else nn.Linear(d, 2 * e, bias=bias)
        self.conv1d = CausalConv1d(e, e, k, groups=e, padding=k - 1, bias=cfg.ssm_cfg["conv_bias"])
        self.x_proj = nn.Linear(e, r + 2 * n, bias=False)
        self.dt_proj = nn.Linear(r, e, bias=True)
        self.A_log = nn.Parameter(torch.empty(e, n))
        self.D = nn.Parameter(torch.ones(e))
        self.out_proj = out_proj if out_proj is not None else nn.Linear(e, d, bias=bias)
        self.act = SiLU()
        self.ssm = SelectiveSSM()
        self.dt_rank, self.d_state = r, n

    def gated_scan(self, xz):
        """xz (b, l, 2e), the in_proj output -> gated scan output y (b, l, e), before out_proj.

        Activations stay (b, l, e); the scan takes (b, e, l) views of them (mamba-ssm's
        convention), which the fused CPU kernels read without a copy."""
        x, z = xz.chunk(2, dim=-1)
        x = self.act(self.conv1d(x))                                  # (b, l, e)
        x_dbl = self.x_proj(x)                                        # (b, l, r + 2n)
        dt, B, C = x_dbl.split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = dt @ self.dt_proj.weight.t()                          # (b, l, e), bias in scan
        A = -torch.exp(self.A_log.to(_compute_dtype(self.A_log)))
        y = self.ssm(x.transpose(1, 2), delta.transpose(1, 2), A, B.transpose(1, 2),
                     C.transpose(1, 2), self.D, z.transpose(1, 2), self.dt_proj.bias)
        return y.transpose(1, 2)


RECOMPUTE_ROWS_ELEMENTS = 2 ** 26  # xz elements per group recomputed together (256 MB, float32)


class BiMambaWrapper(nn.Module):
    """out = fwd(h) + flip_l(rev(flip_l(h))) with in_proj/out_proj shared by both directions.

    Since both projections are linear and shared, in_proj runs once and out_proj once:
    out = out_proj(y_fwd + flip_l(y_rev)), where y_rev is computed on flip_l(in_proj(h)).
    """

    def __init__(self, cfg: CaduceusConfig):
        super().__init__()
        self.mamba_fwd = Mamba(cfg)
        self.mamba_rev = Mamba(cfg, in_proj=self.mamba_fwd.in_proj,
                               out_proj=self.mamba_fwd.out_proj)
        self.recompute_directions = False  # set by the backbone's gradient_checkpointing

    def forward_direction(self, xz):
        """xz (b, l, 2e) -> the forward direction's gated scan (b, l, e)."""
        return self.mamba_fwd.gated_scan(xz)

    def reverse_direction(self, xz):
        """xz (b, l, 2e) -> the reverse direction's gated scan, flipped back (b, l, e)."""
        return self.mamba_rev.gated_scan(xz.flip(1)).flip(1)

    def forward(self, h):
        """h (b, l, d) -> (b, l, d). With `recompute_directions` (and grad enabled) each
        direction of each group of rows (at most RECOMPUTE_ROWS_ELEMENTS of xz, one row at
        long lengths) is recomputed in backward from xz alone, so a layer's backward holds
        the activations of one direction of one group at a time."""
        xz = self.mamba_fwd.in_proj(h)                                # (b, l, 2e)
        if not (self.recompute_directions and torch.is_grad_enabled()):
            return self.mamba_fwd.out_proj(self.forward_direction(xz) + self.reverse_direction(xz))
        rows = max(1, RECOMPUTE_ROWS_ELEMENTS // xz[0].numel())
        y = torch.cat([checkpoint(self.forward_direction, part, use_reentrant=False)
                       + checkpoint(self.reverse_direction, part, use_reentrant=False)
                       for part in xz.split(rows)])
        return self.mamba_fwd.out_proj(y)


class RCPSWrapper(nn.Module):
    """RC-equivariant mixer: cat[M(x1), flipLC(M(flipLC(x2)))], both halves in one batch."""

    def __init__(self, submodule):
        super().__init__()
        self.submodule = submodule

    def forward(self, h):
        """h (b, l, 2d) -> (b, l, 2d)."""
        d = h.shape[-1] // 2
        both = torch.cat([h[..., :d], flip_lc(h[..., d:])], dim=0)
        out1, out2 = self.submodule(both).chunk(2, dim=0)
        return torch.cat([out1, flip_lc(out2)], dim=-1)


def rc_norm(norm, x):
    """RC-equivariant RMSNorm of (b, l, 2d): cat[norm(x1), flipLC(norm(flipLC(x2)))]."""
    d = x.shape[-1] // 2
    return torch.cat([norm(x[..., :d]), flip_lc(norm(flip_lc(x[..., d:])))], dim=-1)


class Block(nn.Module):
    """Pre-norm residual block: s = h + residual; residual <- s; h <- mixer(norm(s)).

    ps with fused_add_norm (the released checkpoints): the two strand halves of s are swapped
    before the norm, every layer, and the swapped tensor becomes the residual.
    """

    def __init__(self, cfg: CaduceusConfig):
        super().__init__()
        mixer = BiMambaWrapper(cfg)
        self.mixer = RCPSWrapper(mixer) if cfg.rcps else mixer
        self.norm = RMSNorm(cfg.d_model, eps=cfg.norm_epsilon)
        self.rcps = cfg.rcps
        self.swap_halves = cfg.rcps and cfg.fused_add_norm
        self.residual_in_fp32 = cfg.residual_in_fp32

    def forward(self, h, residual):
        """h, residual: (b, l, hidden) (residual None in layer 0) -> (h, residual)."""
        s = add_residual(h, residual)
        if self.swap_halves:
            s = torch.cat(s.chunk(2, dim=-1)[::-1], dim=-1)
        residual = s if self.residual_in_fp32 else s.to(h.dtype)
        normed = rc_norm(self.norm, s) if self.rcps else self.norm(s)
        return self.mixer(normed.to(h.dtype)), residual


# ---------------------------------------------------------------------------------------------
# Embeddings, backbone, models
# ---------------------------------------------------------------------------------------------
class RCPSEmbedding(nn.Module):
    """cat[E(ids), flipLC(E(rc(ids)))] = cat[E(ids), flipC(E(complement(ids)))], width 2d."""

    def __init__(self, cfg: CaduceusConfig):
        super().__init__()
        self.embedding = nn.Embedding(cfg.padded_vocab_size, cfg.d_model)
        self.register_buffer("complement_map", torch.tensor(cfg.complement, dtype=torch.long))

    def forward(self, ids):
        """ids (b, l) -> (b, l, 2d)."""
        fwd = self.embedding(ids)
        rc = self.embedding(self.complement_map[ids]).flip(-1)
        return torch.cat([fwd, rc], dim=-1)

    @property
    def weight(self):
        return self.embedding.weight


class CaduceusEmbeddings(nn.Module):
    def __init__(self, cfg: CaduceusConfig):
        super().__init__()
        self.word_embeddings = (RCPSEmbedding(cfg) if cfg.rcps
                                else nn.Embedding(cfg.padded_vocab_size, cfg.d_model))
        self.rcps = cfg.rcps

    def forward(self, ids):
        return self.word_embeddings(ids)

    def embed_onehot(self, onehot):
        """onehot (b, l, 4) over A, C, G, T -> the token embedding of ids 7..10, (b, l, hidden).

        Linear in the one-hot, so gradients reach every base; the ps RC half uses the
        complemented one-hot (A<->T, C<->G is the reversal of the base axis). An all-zero row
        (N) embeds to zero.
        """
        table = self.word_embeddings.weight[ONEHOT_TOKEN_IDS]          # (4, d)
        onehot = onehot.to(table.dtype)
        fwd = onehot @ table
        if not self.rcps:
            return fwd
        return torch.cat([fwd, (onehot.flip(-1) @ table).flip(-1)], dim=-1)


class CaduceusMixerModel(nn.Module):
    def __init__(self, cfg: CaduceusConfig):
        super().__init__()
        self.embeddings = CaduceusEmbeddings(cfg)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm_f = RMSNorm(cfg.d_model, eps=cfg.norm_epsilon)
        self.rcps = cfg.rcps
        self.gradient_checkpointing = False

    @property
    def gradient_checkpointing(self) -> bool:
        """Recompute in backward: each layer from its input sum, and inside a layer's backward
        each BiMamba direction from the in_proj output (peak memory: one direction's
        activations, not a layer's)."""
        return self._gradient_checkpointing

    @gradient_checkpointing.setter
    def gradient_checkpointing(self, flag: bool):
        self._gradient_checkpointing = bool(flag)
        for module in self.modules():
            if isinstance(module, BiMambaWrapper):
                module.recompute_directions = bool(flag)

    def run_layers(self, h, residual=None, layers=None, output_hidden_states=False):
        """Run `layers` (default all) from (h, residual); returns (h, residual, hidden list).

        With `gradient_checkpointing` (and grad enabled) each layer is recomputed in backward and
        only its input sum h + residual is kept: one (b, l, hidden) tensor per layer.
        """
        hidden = []
        for layer in self.layers if layers is None else layers:
            if output_hidden_states:
                hidden.append(h)
            if self.gradient_checkpointing and torch.is_grad_enabled():
                h, residual = checkpoint(layer, add_residual(h, residual), None,
                                         use_reentrant=False)
            else:
                h, residual = layer(h, residual)
        return h, residual, hidden

    def final_norm(self, h, residual):
        """The final add + norm (no half swap) -> (b, l, hidden) in h's dtype."""
        s = add_residual(h, residual)
        out = rc_norm(self.norm_f, s) if self.rcps else self.norm_f(s)
        return out.to(h.dtype)

    def forward(self, input_ids=None, inputs_embeds=None, output_hidden_states=False):
        h = inputs_embeds if inputs_embeds is not None else self.embeddings(input_ids)
        h, residual, hidden = self.run_layers(h, output_hidden_states=output_hidden_states)
        out = self.final_norm(h, residual)
        if output_hidden_states:
            # official convention: embedding, mixer outputs of layers 0..n-2, final output
            hidden = tuple(hidden) + (out,)
        return out, hidden or None


class Caduceus(nn.Module):
    """The Caduceus backbone (keys `backbone.*`). Call with input_ids (b, l), inputs_embeds
    (b, l, hidden) or onehot (b, l, 4); returns CaduceusOutput."""

    def __init__(self, cfg: CaduceusConfig):
        super().__init__()
        self.config = cfg
        self.backbone = CaduceusMixerModel(cfg)

    def forward(self, input_ids=None, inputs_embeds=None, onehot=None, output_hidden_states=False):
        given = [x is not None for x in (input_ids, inputs_embeds, onehot)]
        if sum(given) != 1:
            raise ValueError("pass exactly one of input_ids, inputs_embeds, onehot")
        if onehot is not None:
            inputs_embeds = self.backbone.embeddings.embed_onehot(onehot)
        out, hidden = self.backbone(input_ids, inputs_embeds, output_hidden_states)
        return CaduceusOutput(last_hidden_state=out, hidden_states=hidden)


class RCPSLMHead(nn.Module):
    """Tied LM head for ps: x1 @ W^T + flipC(x2) @ W[complement]^T."""

    def __init__(self, cfg: CaduceusConfig, weight: nn.Parameter):
        super().__init__()
        self.lm_head = nn.Linear(cfg.d_model, cfg.padded_vocab_size, bias=False)
        self.lm_head.weight = weight
        self.register_buffer("complement_map", torch.tensor(cfg.complement, dtype=torch.long))

    def forward(self, h):
        """h (b, l, 2d) -> logits (b, l, v)."""
        d = h.shape[-1] // 2
        w = self.lm_head.weight
        return h[..., :d] @ w.t() + h[..., d:].flip(-1) @ w[self.complement_map].t()


class CaduceusForMaskedLM(nn.Module):
    """Caduceus with its tied LM head (keys `caduceus.backbone.*`, `lm_head.*`)."""

    def __init__(self, cfg: CaduceusConfig):
        super().__init__()
        self.config = cfg
        self.caduceus = Caduceus(cfg)
        emb_weight = self.caduceus.backbone.embeddings.word_embeddings.weight
        if cfg.rcps:
            self.lm_head = RCPSLMHead(cfg, emb_weight)
        else:
            self.lm_head = nn.Linear(cfg.d_model, cfg.padded_vocab_size, bias=False)
            self.lm_head.weight = emb_weight

    def forward(self, input_ids=None, inputs_embeds=None, onehot=None, output_hidden_states=False):
        out = self.caduceus(input_ids, inputs_embeds, onehot, output_hidden_states)
        h = out.last_hidden_state
        logits = self.lm_head(h).to(_compute_dtype(h))
        return MaskedLMOutput(logits=logits, hidden_states=out.hidden_states)

    # --- Hugging Face folder format -------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path_or_hf_id, dtype=None) -> "CaduceusForMaskedLM":
        return load_caduceus(path_or_hf_id, dtype=dtype)

    def save_pretrained(self, folder) -> None:
        """Write config.json and model.safetensors (tied weights dropped, as HF does)."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tied = tied_keys(self.config)
        state = {k: v.detach().contiguous() for k, v in self.state_dict().items() if k not in tied}
        with atomic_path(folder / "model.safetensors") as tmp:
            save_file(state, str(tmp), metadata={"format": "pt"})
        self.config.to_json(folder / "config.json")


# ---------------------------------------------------------------------------------------------
# Initialisation (random backbones) and loading
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def init_caduceus_(model: nn.Module, cfg: CaduceusConfig) -> None:
    """The official initialisation (mamba-ssm `Mamba.__init__` + `_init_weights`), in place;
    draws from torch's global generator."""
    ssm = cfg.ssm_cfg
    std = cfg.initializer_cfg["initializer_range"]
    n_res = cfg.initializer_cfg["n_residuals_per_layer"] * cfg.n_layer
    for name, module in model.named_modules():
        if isinstance(module, nn.Embedding):
            module.weight.normal_(0.0, std)
        if not isinstance(module, Mamba):
            continue
        dt_std = module.dt_rank ** -0.5 * ssm["dt_scale"]
        module.dt_proj.weight.uniform_(-dt_std, dt_std)
        u = torch.rand(cfg.d_inner)
        dt = torch.exp(u * (math.log(ssm["dt_max"]) - math.log(ssm["dt_min"])) + math.log(ssm["dt_min"]))
        dt = dt.clamp(min=ssm["dt_init_floor"])
        module.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)
        a = torch.arange(1, cfg.d_state + 1, dtype=torch.float32).repeat(cfg.d_inner, 1)
        module.A_log.copy_(torch.log(a))
        module.D.fill_(1.0)
        if cfg.initializer_cfg["rescale_prenorm_residual"] and name.endswith("mamba_fwd"):
            nn.init.kaiming_uniform_(module.out_proj.weight, a=math.sqrt(5))
            module.out_proj.weight /= math.sqrt(n_res)


def tied_keys(cfg: CaduceusConfig) -> set[str]:
    """State-dict keys of the masked-LM model that the official files do not store (tied)."""
    mixer = "mixer.submodule" if cfg.rcps else "mixer"
    keys = {f"caduceus.backbone.layers.{i}.{mixer}.mamba_rev.{p}.weight"
            for i in range(cfg.n_layer) for p in ("in_proj", "out_proj")}
    keys.add("lm_head.lm_head.weight" if cfg.rcps else "lm_head.weight")
    return keys


def build_caduceus(cfg: CaduceusConfig, seed: int | None = 0) -> CaduceusForMaskedLM:
    """A randomly initialised masked-LM Caduceus with the official init, deterministic for a seed
    (the global RNG state is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        model = CaduceusForMaskedLM(cfg)
        init_caduceus_(model, cfg)
    return model


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


def _read_state_dict(folder: Path) -> dict:
    st, binf = folder / "model.safetensors", folder / "pytorch_model.bin"
    if st.exists():
        from safetensors.torch import load_file

        try:
            return load_file(str(st))
        except Exception as err:
            raise InputError(f"{st}: not a readable safetensors file ({err})") from None
    if binf.exists():
        try:
            return torch.load(binf, map_location="cpu", weights_only=True)
        except Exception as err:
            raise InputError(f"{binf}: cannot be loaded with weights_only=True ({err})") from None
    raise InputError(f"{folder}: missing model.safetensors (or pytorch_model.bin)")


def load_caduceus(path_or_hf_id, dtype=None) -> CaduceusForMaskedLM:
    """Load a masked-LM Caduceus from a local folder (config.json + model.safetensors or a
    pytorch_model.bin, read with weights_only=True) or a Hugging Face id (when online).

    Tied weights (mamba_rev in/out_proj, the LM head) are shared by construction; any other
    missing or unexpected key, or a shape mismatch, raises InputError naming every one.
    Base-model files (keys `backbone.*`) are accepted too.
    """
    folder = _resolve_folder(path_or_hf_id)
    if not (folder / "config.json").exists():
        raise InputError(f"{folder}: missing config.json")
    cfg = CaduceusConfig.from_json(folder / "config.json")
    state = _read_state_dict(folder)
    if state and all(k.startswith("backbone.") for k in state):
        state = {f"caduceus.{k}": v for k, v in state.items()}
    model = CaduceusForMaskedLM(cfg)
    expected = {k: v.shape for k, v in model.state_dict().items() if k not in tied_keys(cfg)}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected) - tied_keys(cfg))
    wrong = sorted(f"{k} (file {tuple(state[k].shape)}, model {tuple(expected[k])})"
                   for k in set(expected) & set(state) if state[k].shape != expected[k])
    problems = ([f"missing keys: {', '.join(missing)}"] if missing else []) + \
               ([f"unexpected keys: {', '.join(unexpected)}"] if unexpected else []) + \
               ([f"shape mismatch: {', '.join(wrong)}"] if wrong else [])
    if problems:
        raise InputError(f"{folder}: checkpoint does not match its config.json: " + "; ".join(problems))
    model.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False)
    if dtype is not None:
        model.to(dtype)
    return model.eval()
