"""LRP rules for Caduceus as modified-forward modules; `lrp_composites` chooses which module gets
which rule.

Glossary: b batch, l length, e d_inner, n d_state, c channels (any width), d pooled features.

Every rule keeps the forward *value* and changes only local derivatives (with `detach()` or an
autograd Function), so that Gradient x Input of the modified pass is the relevance (MambaLRP,
Rezaei Jafari et al., 2024; docs/lrp.md). A rule that does not pass all of its output's relevance
down (a root point, a stabilised division) books the rest on the *reference probe*; biases book
theirs on the *bias probe*. With both, logit = sum(relevance) + bias + reference exactly.

| class                     | replaces       | rule                                                 |
|---------------------------|----------------|------------------------------------------------------|
| `LRPSiLU`                 | `SiLU`         | identity: derivative sigmoid(x)                      |
| `LRPSelectiveSSM`         | `SelectiveSSM` | delta, A, B, C, D detached (scan linear in u); gate  |
|                           |                | y * silu(z) by the half rule                         |
| `LRPSelectiveSSMRoot`     | `SelectiveSSM` | the same scan; gate with a data root point g0:       |
|                           |                | R_y = y(g + g0)/2, R_z = y(g - g0)/2                 |
| `LRPRMSNorm`              | `RMSNorm`      | 1 / rms detached                                     |
| `LRPCausalConv1d`,        | conv, Linear   | LRP-0                                                |
| `LRPLinear`               |                |                                                      |
| `LRPLinearEpsilon`        | `nn.Linear`    | LRP-epsilon, epsilon a fraction of the output RMS    |
| `LRPLinearGamma`,         | Linear, conv   | LRP-gamma                                            |
| `LRPCausalConv1dGamma`    |                |                                                      |
| `LRPPooling`              | `Pooling`      | LRP-0; log-mean-exp as a softmax-weighted mean       |
| `LRPPoolingRoot`          | `Pooling`      | root point at the pooled features: p - p~ passed     |
| `LRPDetachedMixer`        | BiMamba mixer  | nothing passes (a diagnostic: the residual path only)|

Probes. A `Probe` holds a per-sample zero tensor p (b,) that requires grad; a module adds
p * (value it books) to its output, which leaves the value unchanged, and d logit / d p is then, per
sample, the relevance booked. Inside Caduceus batches are stacks of the sample batch (the ps mixer
runs [fwd half; RC half], 2b rows): row r belongs to sample r mod b.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from .epi_head import POOLINGS, Pooling
from .errors import InputError
from .layers import BiMambaWrapper, CausalConv1d, RMSNorm, SelectiveSSM, SiLU
from .scan import selective_scan

__all__ = ["silu_identity", "half_gate", "root_gate", "stabilise", "Probe", "RuleState",
           "keep_value", "LRPSiLU", "LRPSelectiveSSM", "LRPSelectiveSSMRoot", "LRPRMSNorm",
           "LRPCausalConv1d", "LRPCausalConv1dGamma", "LRPLinear", "LRPLinearEpsilon",
           "LRPLinearGamma", "LRPPooling", "LRPPoolingRoot", "LRPDetachedMixer", "pooled_lrp0",
           "pooled_root_point"]


# -----------------------------------------------------------------------------------------------
# Elementary rules
# -----------------------------------------------------------------------------------------------
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


def stabilise(v, eps: float, dim=None):
    """v + eps * sign(v) * RMS(v) (sign(0) = +1), the RMS over `dim` (all of v when None),
    detached: a denominator that keeps its sign and stays at least eps * RMS away from zero."""
    v = v.detach()
    rms = v.pow(2).mean(dim=dim, keepdim=dim is not None).sqrt()
    return v + eps * torch.where(v >= 0, 1.0, -1.0).to(v.dtype) * rms


class _RootGate(torch.autograd.Function):
    """o = y * silu(z) with the data root point g0 of the gate g = silu(z): R_y = y (g + g0) / 2,
    R_z = y (g - g0) / 2 * g / stab(g). Derivatives: (g + g0) / 2 for y and
    y (g - g0) / (2 stab(g)) * sigmoid(z) for z (through the identity rule on silu)."""

    @staticmethod
    def forward(ctx, y, z, g0, eps):
        """y, z (b, e, l); g0 (e,)."""
        gate = F.silu(z)
        ratio = (gate - g0[:, None]) / stabilise(gate, eps, dim=1)
        ctx.save_for_backward(y, z, g0)
        ctx.ratio = ratio
        return y * gate

    @staticmethod
    def backward(ctx, grad):
        y, z, g0 = ctx.saved_tensors
        grad_y = grad * 0.5 * (F.silu(z) + g0[:, None])
        grad_z = grad * 0.5 * y * ctx.ratio * torch.sigmoid(z)
        return grad_y, grad_z, None, None


def root_gate(y, z, g0, eps: float):
    """(y * silu(z), the relevance it leaves unassigned): the gate with root point g0 (e,) per
    channel; y, z (b, e, l). g0 = 0 is the half rule. What the stabilised division cannot pass
    to z, y (g - g0) / 2 * (1 - g / stab(g)), is returned (detached) for the reference probe."""
    out = _RootGate.apply(y, z, g0, eps)
    with torch.no_grad():
        gate = F.silu(z)
        rest = 0.5 * y * (gate - g0[:, None]) * (1 - gate / stabilise(gate, eps, dim=1))
    return out, rest


# -----------------------------------------------------------------------------------------------
# Probes and the state a rule reads
# -----------------------------------------------------------------------------------------------
class Probe:
    """Per-sample zeros that modules add as `probe * booked value` in LRP mode; the gradient of
    the target with respect to them is the relevance booked (b,)."""

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
            raise RuntimeError(f"LRP probe: a module batch of {n_rows} rows is not a stack "
                               f"of the {n} samples")
        return self.value.repeat(n_rows // n)

    def book(self, out, booked):
        """out + probe * booked (booked detached, of out's shape, rows first): out's value, with
        d logit / d probe gaining the relevance of `booked`."""
        p = self.rows(out.shape[0])
        if p is None:
            return out
        return out + p.view(-1, *[1] * (out.dim() - 1)) * booked.detach()


@dataclass
class RuleState:
    """What a swapped-in rule reads: the two probes and its parameters (`params`: epsilon,
    gamma, window, ...; the reference statistics it needs, such as `g0` or `pooled`)."""

    bias: Probe
    reference: Probe
    params: dict = field(default_factory=dict)


def keep_value(value, modified, reference: Probe):
    """A tensor equal to `value` whose modified gradient is that of `modified`; the relevance
    `modified` does not account for, that of value - modified, is booked on `reference`.

    `modified` must be relevance-exact: its value is the relevance its Gradient x Input (and the
    bias probe) assigns (LRP-0 pieces times detached factors, constants probed)."""
    rest = (value - modified).detach()
    return reference.book(modified + rest, rest)


# -----------------------------------------------------------------------------------------------
# Module rules (subclasses with the same state; `lrp` is a RuleState set by lrp_mode)
# -----------------------------------------------------------------------------------------------
class LRPSiLU(SiLU):
    """SiLU with the identity rule."""

    def forward(self, x):
        return silu_identity(x)


def _linear_scan(u, delta, A, B, C, D, delta_bias):
    """The scan with everything but u detached (linear in u), without the gate."""
    return selective_scan(u, delta.detach(), A.detach(), B.detach(), C.detach(), D=D.detach(),
                          z=None, delta_bias=delta_bias.detach(), delta_softplus=True)


class LRPSelectiveSSM(SelectiveSSM):
    """The gated selective scan with delta, A, B, C, D (and delta_bias) detached, so the scan is
    linear in u; the gate silu(z) gets the identity rule and y * silu(z) the half rule. The scan
    runs without z, so every scan implementation (reference, CPU, CUDA) serves this mode and only
    differentiates with respect to u."""

    def forward(self, u, delta, A, B, C, D, z, delta_bias):
        """u, delta, z: (b, e, l); A: (e, n); B, C: (b, n, l); D, delta_bias: (e,) -> (b, e, l)."""
        return half_gate(_linear_scan(u, delta, A, B, C, D, delta_bias), z)


class LRPSelectiveSSMRoot(SelectiveSSM):
    """The scan as in `LRPSelectiveSSM`; the gate with the data root point g0 (params "g0" (e,),
    the module's mean gate on background sequences, and "eps", the stabiliser of the division
    by the gate, a fraction of the gate's RMS over channels)."""

    def forward(self, u, delta, A, B, C, D, z, delta_bias):
        """u, delta, z: (b, e, l); A: (e, n); B, C: (b, n, l); D, delta_bias: (e,) -> (b, e, l)."""
        y = _linear_scan(u, delta, A, B, C, D, delta_bias)
        g0 = self.lrp.params["g0"].to(y.dtype)
        out, rest = root_gate(y, z, g0, self.lrp.params["eps"])
        return self.lrp.reference.book(out, rest)


class LRPRMSNorm(RMSNorm):
    """RMSNorm with 1 / rms treated as a constant: linear in x, relevance passes per element."""

    def forward(self, x):
        """x (..., c) -> (..., c) in (at least) float32."""
        xc = x.to(torch.promote_types(x.dtype, torch.float32))
        return xc * self.inv_rms(xc.detach()) * self.weight.to(xc.dtype)


class LRPCausalConv1d(CausalConv1d):
    """The causal depthwise conv (LRP-0) whose bias books its relevance on the bias probe."""

    def forward(self, x):
        """x (rows, l, e) -> (rows, l, e)."""
        out = super().forward(x)
        if self.bias is None:
            return out
        return self.lrp.bias.book(out, self.bias.expand_as(out))


def _gamma_parts(x, weight, gamma, apply):
    """LRP-gamma's two modified outputs of a linear map `apply(input, weight)`: for positive
    outputs x+ (W + gamma W+) + x- (W + gamma W-), for negative outputs x+ (W + gamma W-) +
    x- (W + gamma W+) (x+ = max(x, 0), x- = min(x, 0)); each homogeneous of degree one in x."""
    up, down = weight + gamma * weight.clamp(min=0), weight + gamma * weight.clamp(max=0)
    pos, neg = x.clamp(min=0), x.clamp(max=0)
    return apply(pos, up) + apply(neg, down), apply(pos, down) + apply(neg, up)


def _gamma_output(value, bias, parts, lrp: RuleState):
    """The LRP-gamma output of a layer whose value is `value` (bias included) and whose
    modified outputs are `parts`: relevance of the bias-free output passed in proportion to the
    chosen part (stabilised), the bias on the bias probe, the rest on the reference probe."""
    pos, neg = parts
    linear = value if bias is None else value - bias
    chosen = torch.where(linear.detach() > 0, pos, neg)
    scale = linear.detach() / stabilise(chosen, lrp.params["eps"], dim=-1)
    modified = scale * chosen
    if bias is not None:
        modified = lrp.bias.book(modified + bias.detach(), bias.expand_as(value))
    return keep_value(value, modified, lrp.reference)


class LRPCausalConv1dGamma(CausalConv1d):
    """The causal depthwise conv with LRP-gamma (params "gamma", "eps")."""

    def forward(self, x):
        """x (rows, l, e) -> (rows, l, e)."""
        value = super().forward(x)
        parts = _gamma_parts(x, self.weight, self.lrp.params["gamma"],
                             lambda inp, w: self.convolve(inp, w, None))
        return _gamma_output(value, self.bias, parts, self.lrp)


class LRPLinear(nn.Linear):
    """nn.Linear (LRP-0) whose bias books its relevance on the bias probe."""

    def forward(self, x):
        """x (rows, ..., c_in) -> (rows, ..., c_out)."""
        out = super().forward(x)
        return out if self.bias is None else self.lrp.bias.book(out, self.bias.expand_as(out))


class LRPLinearEpsilon(nn.Linear):
    """nn.Linear with LRP-epsilon: relevance R_k passed to the inputs as R_k * z_k / (z_k +
    eps_k sign z_k), eps_k = params["eps"] * RMS of the output row over channels; the bias keeps
    its share on the bias probe, the rest goes to the reference probe."""

    def forward(self, x):
        """x (rows, ..., c_in) -> (rows, ..., c_out)."""
        value = F.linear(x, self.weight, self.bias)
        scale = value.detach() / stabilise(value, self.lrp.params["eps"], dim=-1)
        modified = F.linear(x, self.weight)
        if self.bias is not None:
            modified = self.lrp.bias.book(modified + self.bias.detach(), self.bias.expand_as(value))
        return keep_value(value, scale * modified, self.lrp.reference)


class LRPLinearGamma(nn.Linear):
    """nn.Linear with LRP-gamma (params "gamma", "eps")."""

    def forward(self, x):
        """x (rows, ..., c_in) -> (rows, ..., c_out)."""
        value = F.linear(x, self.weight, self.bias)
        parts = _gamma_parts(x, self.weight, self.lrp.params["gamma"], F.linear)
        return _gamma_output(value, self.bias, parts, self.lrp)


def pooled_lrp0(h, kind: str):
    """A pooling's value and its relevance-exact part: h (b, l, d) -> (p, m), each (b, k d).
    Max, mean, center and max+mean pooling are piecewise linear, m = p. Log-mean-exp is
    p = sum_l w_l h_l + H(w) - log l with w the softmax over l and H its entropy; m is the
    weighted mean with w detached, and p - m = H(w) - log l <= 0 is no position's relevance."""
    p = POOLINGS[kind](h)
    if kind != "lse":
        return p, p
    return p, (torch.softmax(h, dim=1).detach() * h).sum(dim=1)


class LRPPooling(Pooling):
    """LRP-0 through the pooling: h (b, l, d) -> (b, k d); for log-mean-exp each position gets
    its softmax-weighted share w_l h_l and the entropy term is booked on the reference probe."""

    def forward(self, h):
        return keep_value(*pooled_lrp0(h, self.kind), self.lrp.reference)


def pooled_root_point(h, kind: str, window: int):
    """The root point p~ of max pooling: per row and channel, the largest value outside a
    window of `window` positions either side of the maximum. h (b, l, d) -> (p (b, d), argmax
    (b, d), p~ (b, d))."""
    if kind != "max":
        raise InputError(f"composite: the runner-up root point needs max pooling, not {kind!r}; "
                         "use the background root point")
    p, where = h.max(dim=1)
    positions = torch.arange(h.shape[1], device=h.device)[None, :, None]
    inside = (positions - where[:, None, :]).abs() <= window
    runner_up = h.masked_fill(inside, float("-inf")).amax(dim=1)
    return p, where, torch.where(torch.isinf(runner_up), p, runner_up)


class LRPPoolingRoot(Pooling):
    """Pooling that explains p - p~ instead of p: the pooled feature's relevance is passed in
    proportion (p - p~) / stab(p), the rest booked on the reference probe. p~ is the runner-up
    outside a window around the maximum (params "root": "runner_up", "window"; max pooling) or
    the channel's mean on background sequences ("root": "background", "pooled" (d,))."""

    def forward(self, h):
        """h (b, l, d) -> (b, d)."""
        params = self.lrp.params
        if params["root"] == "runner_up":
            p, where, root = pooled_root_point(h.detach(), self.kind, params["window"])
            winner = h.gather(1, where[:, None, :]).squeeze(1)  # differentiable, value p
        else:
            p, winner = pooled_lrp0(h, self.kind)
            p, root = p.detach(), params["pooled"].to(h.dtype)
        scale = (p - root) / stabilise(p, params["eps"], dim=-1)
        return keep_value(p, scale * winner, self.lrp.reference)


class LRPDetachedMixer(BiMambaWrapper):
    """A BiMamba mixer through which no relevance passes: its output's relevance is booked on the
    reference probe. With every mixer detached the relevance that reaches the input is that of
    the residual path alone (the modified pass is linear in what it propagates, so the paths
    through the mixers are the rest)."""

    def forward(self, h):
        """h (b, l, d) -> (b, l, d)."""
        out = super().forward(h)
        return self.lrp.reference.book(out.detach(), out)
