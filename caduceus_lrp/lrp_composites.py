"""LRP composites: named mappings from module to rule (`lrp_layers`), the reference statistics
some rules need, and `lrp_mode`, which swaps a composite's rules into a model.

Glossary: M background sequences, l length, e d_inner, d pooled features.

A `Composite` maps keys to `Rule`s. A key is a module class (exact match) or a name suffix
("in_proj" matches "...mamba_fwd.in_proj", "head.linear" the head's layer); name keys are
tried first, in order, then the module's class. `composite.with_rules({...})` puts a user's
rules ahead of the composite's. A composite may also move the input's root point to the mean
base (`input_root_point`): R = (x - 1/4) . H per position instead of x . H, the 1/4 sum of H
of every non-N position booked as reference relevance (the gradient correction of Majdandzic et
al. 2023 carried to LRP). docs/lrp.md has every rule's equation and how the default was chosen.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import torch
import torch.nn as nn

from .epi_head import Pooling
from .errors import InputError
from .layers import CausalConv1d, RMSNorm, SelectiveSSM, SiLU
from .lrp_layers import (LRPCausalConv1d, LRPCausalConv1dGamma, LRPLinear, LRPLinearEpsilon,
                         LRPLinearGamma, LRPPooling, LRPPoolingRoot, LRPRMSNorm, LRPSelectiveSSM,
                         LRPSelectiveSSMRoot, LRPSiLU, Probe, RuleState)

__all__ = ["Rule", "Composite", "COMPOSITES", "DEFAULT_COMPOSITE", "composite_of", "References",
           "calibrate", "needs_references", "Probes", "lrp_mode"]


@dataclass(frozen=True)
class Rule:
    """An LRP class (a subclass of the module's class with the same state) and its parameters."""

    cls: type
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Composite:
    """A named set of rules (keys: module classes or name suffixes) and the input's root point."""

    name: str
    rules: dict
    input_root_point: bool = False
    description: str = ""

    def with_rules(self, rules: dict, name: str | None = None, **fields) -> "Composite":
        """This composite with `rules` taking precedence over its own (and other `fields`)."""
        merged = dict(rules)
        for key, rule in self.rules.items():
            merged.setdefault(key, rule)
        return replace(self, name=name or f"{self.name}+custom", rules=merged, **fields)

    def rule_for(self, name: str, module: nn.Module) -> Rule | None:
        """The rule of a module called `name`: the first name-suffix key it matches, else its
        class's, else None (LRP-0: the module's own forward)."""
        for key, rule in self.rules.items():
            if isinstance(key, str) and (name == key or name.endswith("." + key)):
                return rule
        return self.rules.get(type(module))


MAMBALRP = Composite(
    "mambalrp",
    {SiLU: Rule(LRPSiLU), SelectiveSSM: Rule(LRPSelectiveSSM), RMSNorm: Rule(LRPRMSNorm),
     CausalConv1d: Rule(LRPCausalConv1d), nn.Linear: Rule(LRPLinear), Pooling: Rule(LRPPooling)},
    description="MambaLRP's rules: identity on SiLU, the scan linear in u, the half rule on "
                "the gate, 1/rms constant, LRP-0 elsewhere (log-mean-exp pooling as a "
                "softmax-weighted mean)")

POOLED_ROOT = Rule(LRPPoolingRoot, {"root": "runner_up", "window": 10, "eps": 1e-2})
POOLED_BACKGROUND = Rule(LRPPoolingRoot, {"root": "background", "eps": 1e-2})
GATE_ROOT = Rule(LRPSelectiveSSMRoot, {"eps": 1e-2})
EPSILON = Rule(LRPLinearEpsilon, {"eps": 0.25})
GAMMA = Rule(LRPLinearGamma, {"gamma": 0.25, "eps": 1e-2})
CONV_GAMMA = Rule(LRPCausalConv1dGamma, {"gamma": 0.25, "eps": 1e-2})

COMPOSITES = {c.name: c for c in [
    MAMBALRP,
    MAMBALRP.with_rules({Pooling: POOLED_ROOT}, "pooled-root",
                        description="MambaLRP with the max pooling's runner-up as root point"),
    MAMBALRP.with_rules({Pooling: POOLED_BACKGROUND}, "pooled-background",
                        description="MambaLRP with the background mean of each pooled feature "
                                    "as root point"),
    MAMBALRP.with_rules({}, "input-root", input_root_point=True,
                        description="MambaLRP with the input's root point at the mean base"),
    MAMBALRP.with_rules({SelectiveSSM: GATE_ROOT}, "gate-root",
                        description="MambaLRP with the gate's root point at its background mean"),
    MAMBALRP.with_rules({"in_proj": EPSILON, "out_proj": EPSILON, "head.linear": EPSILON},
                        "epsilon", description="MambaLRP with LRP-epsilon on in_proj, out_proj "
                                               "and the head"),
    MAMBALRP.with_rules({"in_proj": GAMMA, "conv1d": CONV_GAMMA}, "gamma",
                        description="MambaLRP with LRP-gamma on in_proj and the conv"),
]}
DEFAULT_COMPOSITE = "input-root"


def composite_of(composite) -> Composite:
    """A Composite from itself or its name in COMPOSITES."""
    if isinstance(composite, Composite):
        return composite
    if composite not in COMPOSITES:
        raise InputError(f"--composite: unknown LRP composite {composite!r}; choose one of "
                         f"{', '.join(COMPOSITES)}")
    return COMPOSITES[composite]


# -----------------------------------------------------------------------------------------------
# Reference statistics
# -----------------------------------------------------------------------------------------------
@dataclass
class References:
    """Per-module means on background sequences: `gate` {SelectiveSSM name: mean silu(z) per
    channel (e,)}, `pooled` {Pooling name: mean pooled feature per channel (d,)}, over both
    strands; `n_sequences` background sequences cost that many forward passes, once."""

    gate: dict
    pooled: dict
    n_sequences: int


def _reference_key(rule: Rule) -> str | None:
    """The parameter a rule reads from `References` ("g0", "pooled"), or None."""
    if rule.cls is LRPSelectiveSSMRoot:
        return "g0"
    if rule.cls is LRPPoolingRoot and rule.params.get("root") == "background":
        return "pooled"
    return None


def needs_references(composite) -> bool:
    """Whether a composite has rules that read background statistics."""
    return any(_reference_key(rule) for rule in composite_of(composite).rules.values())


@torch.no_grad()
def calibrate(model, background, batch_size: int = 64) -> References:
    """Reference statistics of `model` on one-hot `background` (M, l, 4): the mean gate of every
    SelectiveSSM and the mean pooled feature of every Pooling, over sequences, positions, both
    strands (the ps halves, or ph's conjoined passes) and both directions' own modules."""
    sums, counts = {}, {}

    def hook(name, kind):
        def record(module, args, out):
            if kind == "gate":
                z = args[6]                                              # (rows, e, l)
                value = torch.nn.functional.silu(z.to(torch.promote_types(z.dtype, torch.float32)))
                total, n = value.sum(dim=(0, 2)), value.shape[0] * value.shape[2]
            else:
                total, n = out.double().sum(dim=0), out.shape[0]         # (rows, d)
            sums[name] = sums.get(name, 0) + total.double()
            counts[name] = counts.get(name, 0) + n
        return record

    kinds = {name: ("gate" if isinstance(m, SelectiveSSM) else "pooled")
             for name, m in model.named_modules() if isinstance(m, (SelectiveSSM, Pooling))}
    modules = dict(model.named_modules())
    handles = [modules[name].register_forward_hook(hook(name, kind)) for name, kind in kinds.items()]
    param = next(model.parameters())
    try:
        for start in range(0, len(background), batch_size):
            x = torch.as_tensor(background[start:start + batch_size]).to(param)
            model(onehot=x)
    finally:
        for h in handles:
            h.remove()
    means = {name: (sums[name] / counts[name]) for name in sums}
    return References(gate={n: v for n, v in means.items() if kinds[n] == "gate"},
                      pooled={n: v for n, v in means.items() if kinds[n] == "pooled"},
                      n_sequences=len(background))


# -----------------------------------------------------------------------------------------------
# lrp_mode
# -----------------------------------------------------------------------------------------------
class Probes(NamedTuple):
    """The probes of one `lrp_mode`: relevance booked by biases and by rules' root points."""

    bias: Probe
    reference: Probe


def _params(name, rule: Rule, references: References | None, composite: Composite) -> dict:
    """The rule's parameters, with the reference statistic it reads."""
    params, key = dict(rule.params), _reference_key(rule)
    if key is None:
        return params
    if references is None:
        raise InputError(f"composite {composite.name!r}: {name} needs reference statistics "
                         "(`calibrate` the model on background sequences)")
    params[key] = (references.gate if key == "g0" else references.pooled)[name]
    return params


@contextlib.contextmanager
def lrp_mode(model: nn.Module, composite="mambalrp", references: References | None = None):
    """Swap a composite's rules into `model` (by class, parameters shared) and yield its
    `Probes`.

    Forward values are unchanged; Gradient x Input of the target logit is the LRP relevance, and
    the gradients with respect to the armed probes the relevance of biases and references.
    Composites with background root points need `references` (`calibrate`). The original
    classes are restored in `finally`, leaving the model as it was."""
    composite = composite_of(composite)
    probes = Probes(Probe(), Probe())
    swapped = []
    try:
        for name, module in model.named_modules():
            rule = composite.rule_for(name, module)
            if rule is None or type(module) is rule.cls:
                continue
            if not isinstance(module, rule.cls.__mro__[1]):
                raise InputError(f"composite {composite.name!r}: rule {rule.cls.__name__} does "
                                 f"not apply to {name} ({type(module).__name__})")
            state = RuleState(probes.bias, probes.reference,
                              _params(name, rule, references, composite))
            swapped.append((module, type(module)))
            module.__class__ = rule.cls
            module.lrp = state
        yield probes
    finally:
        for probe in probes:
            probe.disarm()
        for module, cls in swapped:
            module.__class__ = cls
            module.__dict__.pop("lrp", None)
