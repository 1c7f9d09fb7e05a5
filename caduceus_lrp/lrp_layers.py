"""LRP rules for Caduceus as modified-forward modules, and `lrp_mode`, which swaps them in.

Glossary: b batch, l length, e d_inner, n d_state, c channels (any width).

MambaLRP (Rezaei Jafari et al., 2024) carried to Caduceus (docs/lrp.md): every rule keeps the
forward *value* and changes only local derivatives with `detach()`, so that Gradient x Input of the
modified pass is the relevance and sums to the logit. Values are kept bit for bit, except that the
scan's gate is applied outside the (fused) kernel: equal up to rounding.

| module            | rule                                                               |
|-------------------|--------------------------------------------------------------------|
| `SiLU`            | identity: derivative sigmoid(x), so relevance passes unchanged     |
| `SelectiveSSM`    | delta, A, B, C, D detached (the scan is linear in u); gate z gets  |
|                   | the SiLU rule; the product y * silu(z) gets the half rule          |
| `RMSNorm`         | 1 / rms detached                                                   |
| CausalConv1d,     | LRP-0 (unchanged), plus a bias probe                               |
| Linear            |                                                                    |

Residual adds, fwd + rev, the strand flips, swaps and concatenations, tied weights, pooling and the
averaging of strand logits are linear: LRP-0, nothing to change. No rule is written as a division.

Bias relevance. Biases absorb part of the relevance (docs/lrp.md: R_b = b * df/db). A `BiasProbe`
holds a per-sample zero tensor p (b,); each biased module adds p * bias to its output (value
unchanged), so df/dp is, per sample, the relevance every bias on the path absorbs. Inside Caduceus
batches are stacks of the sample batch (the ps mixer runs [fwd half; RC half], 2b rows): row r
belongs to sample r mod b.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import CausalConv1d, RMSNorm, SelectiveSSM, SiLU
from .scan import selective_scan

__all__ = ["silu_identity", "half_gate", "BiasProbe", "LRPSiLU", "LRPSelectiveSSM",
           "LRPRMSNorm", "LRPCausalConv1d", "LRPLinear", "RULES", "lrp_mode"]


class _SiLUIdentity(torch.autograd.Function):
    """silu(x) with local derivative sigmoid(x); keeps only x."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return F.silu(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.sigmoid(x)


def silu_identity(x):
    """silu(x), exactly, with local derivative sigmoid(x): Gradient x Input gives x * sigmoid(x)
    * g = silu(x) * g, the relevance of the output (identity rule). Any shape."""
    return _SiLUIdentity.apply(x)


class _HalfGate(torch.autograd.Function):
    """y * silu(z) with derivatives silu(z) / 2 and y * sigmoid(z) / 2; keeps y and a compact
    copy of z (z is a view into the in_proj output, twice its size) in y's memory order, which
    in the model is z's own channel order: a plain copy, not a transposing one."""

    @staticmethod
    def forward(ctx, y, z):
        ctx.save_for_backward(y, torch.empty_like(y).copy_(z))
        return y * F.silu(z)

    @staticmethod
    def backward(ctx, grad):
        y, z = ctx.saved_tensors
        half = 0.5 * grad * torch.sigmoid(z)
        return half * z, half * y


def half_gate(y, z):
    """The gate y * silu(z), exactly, with the half rule on the product (each factor receives
    half of its relevance) and the identity rule on silu(z). y and z of one shape, any."""
    return _HalfGate.apply(y, z)


class BiasProbe:
    """Per-sample zeros added as `probe * bias` by every biased module in LRP mode; the gradient
    of the target with respect to them is the bias relevance (b,)."""

    def __init__(self):
        self.value = None

    def arm(self, n: int, dtype, device) -> torch.Tensor:
        """A fresh zero probe (n,) that requires grad, used by the next forward passes."""
        self.value = torch.zeros(n, dtype=dtype, device=device, requires_grad=True)
        return self.value

    def disarm(self) -> None:
        self.value = None

    def rows(self, n_rows: int):
        """The probe for a module batch of n_rows = k * n rows (row r -> sample r mod n), or None
        when not armed."""
        if self.value is None:
            return None
        n = self.value.shape[0]
        if n_rows % n:
            raise RuntimeError(f"LRP bias probe: a module batch of {n_rows} rows is not a stack "
                               f"of the {n} samples")
        return self.value.repeat(n_rows // n)


class LRPSiLU(SiLU):
    """SiLU with the identity rule."""

    def forward(self, x):
        return silu_identity(x)


class LRPSelectiveSSM(SelectiveSSM):
    """The gated selective scan with delta, A, B, C, D (and delta_bias) detached, so the scan is
    linear in u; the gate silu(z) gets the identity rule and y * silu(z) the half rule. The scan
    runs without z, so every scan implementation (reference, CPU, CUDA) serves this mode and only
    differentiates with respect to u."""

    def forward(self, u, delta, A, B, C, D, z, delta_bias):
        """u, delta, z: (b, e, l); A: (e, n); B, C: (b, n, l); D, delta_bias: (e,) -> (b, e, l)."""
        y = selective_scan(u, delta.detach(), A.detach(), B.detach(), C.detach(), D=D.detach(),
                           z=None, delta_bias=delta_bias.detach(), delta_softplus=True)
        return half_gate(y, z)


class LRPRMSNorm(RMSNorm):
    """RMSNorm with 1 / rms treated as a constant: linear in x, relevance passes per element."""

    def forward(self, x):
        """x (..., c) -> (..., c) in (at least) float32."""
        xc = x.to(torch.promote_types(x.dtype, torch.float32))
        return xc * self.inv_rms(xc.detach()) * self.weight.to(xc.dtype)


class LRPCausalConv1d(CausalConv1d):
    """The causal depthwise conv (LRP-0) whose bias reports its relevance through the
    `lrp_probe`."""

    def forward(self, x):
        """x (rows, l, e) -> (rows, l, e)."""
        out = super().forward(x)
        probe = None if self.bias is None else self.lrp_probe.rows(x.shape[0])
        return out if probe is None else out + probe[:, None, None] * self.bias


class LRPLinear(nn.Linear):
    """nn.Linear (LRP-0) whose bias reports its relevance through the `lrp_probe`."""

    def forward(self, x):
        """x (rows, ..., c_in) -> (rows, ..., c_out)."""
        out = super().forward(x)
        probe = None if self.bias is None else self.lrp_probe.rows(x.shape[0])
        return out if probe is None else out + probe.view(-1, *[1] * (out.dim() - 1)) * self.bias


# module class -> its LRP class (exact class match; the LRP class is a subclass with the same state)
RULES = {SiLU: LRPSiLU, SelectiveSSM: LRPSelectiveSSM, RMSNorm: LRPRMSNorm,
         CausalConv1d: LRPCausalConv1d, nn.Linear: LRPLinear}


@contextlib.contextmanager
def lrp_mode(model: nn.Module):
    """Swap the LRP rules into `model` (by class, parameters shared) and yield its `BiasProbe`.

    Forward values are unchanged; Gradient x Input of the target logit is the LRP relevance. The
    original classes are restored and the probe detached in `finally`, leaving the model as it was.
    """
    probe = BiasProbe()
    swapped = []
    try:
        for module in model.modules():
            rule = RULES.get(type(module))
            if rule is None:
                continue
            swapped.append((module, type(module)))
            module.__class__ = rule
            if rule in (LRPCausalConv1d, LRPLinear):
                module.lrp_probe = probe
        yield probe
    finally:
        probe.disarm()
        for module, cls in swapped:
            module.__class__ = cls
            module.__dict__.pop("lrp_probe", None)
