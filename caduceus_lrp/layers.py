"""The building blocks of Caduceus: Mamba and BiMamba mixers, the RC-equivariant (ps) wrappers,
pre-norm blocks, embeddings, the mixer stack and the tied LM heads.

Glossary: b batch, l length, d d_model, e d_inner (= 2d), n d_state, r dt_rank, v vocabulary.
Module names follow the official state-dict keys one to one (docs/caduceus.md). The functional
operations that relevance must cross are small modules (`SiLU`, `SelectiveSSM`, `RMSNorm`,
`CausalConv1d`), so the LRP composites (`lrp_layers`) can swap in rules without touching this file.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .config import CaduceusConfig
from .scan import compute_dtype
from .scan import selective_scan
from .sequence import BASE_TOKENS, flip_lc

__all__ = ["SiLU", "SelectiveSSM", "RMSNorm", "CausalConv1d", "Mamba", "BiMambaWrapper",
           "RCPSWrapper", "Block", "RCPSEmbedding", "CaduceusEmbeddings", "CaduceusMixerModel",
           "RCPSLMHead", "add_residual", "rc_norm", "RECOMPUTE_ROWS_ELEMENTS"]


def add_residual(h, residual):
    """h + residual in (at least) float32, as the official fused add; h alone in layer 0."""
    if residual is None:
        return h
    return h.to(compute_dtype(h)) + residual.to(compute_dtype(h))


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
        xc = x.to(compute_dtype(x))
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
        return self.convolve(x, self.weight, self.bias)

    def convolve(self, x, weight, bias):
        """The causal conv of x (b, l, e) with `weight` (e, 1, k) and `bias` (e,) or None."""
        k = self.kernel_size[0]
        x = F.pad(x.transpose(1, 2).unsqueeze(2), (k - 1, 0))          # (b, e, 1, l + k - 1)
        out = F.conv2d(x.contiguous(memory_format=torch.channels_last), weight.unsqueeze(2),
                       bias, groups=self.groups)                       # (b, e, 1, l)
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
        self.owns_projections = in_proj is None  # the forward direction; the reverse shares them

    def gated_scan(self, xz):
        """xz (b, l, 2e), the in_proj output -> gated scan output y (b, l, e), before out_proj.

        Activations stay (b, l, e); the scan takes (b, e, l) views of them (mamba-ssm's
        convention), which the fused CPU kernels read without a copy."""
        x, z = xz.chunk(2, dim=-1)
        x = self.act(self.conv1d(x))                                  # (b, l, e)
        x_dbl = self.x_proj(x)                                        # (b, l, r + 2n)
        dt, B, C = x_dbl.split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = dt @ self.dt_proj.weight.t()                          # (b, l, e), bias in scan
        A = -torch.exp(self.A_log.to(compute_dtype(self.A_log)))
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
        table = self.word_embeddings.weight[list(BASE_TOKENS)]          # (4, d)
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
