"""Attributions on one-hot DNA from one registry: saliency, gradient methods, LRP, integrated
gradients and in-silico mutagenesis, with LRP's diagnostics (conservation, RC consistency).

Glossary: N sequences, b batch, l length, t tasks; one-hot bases in the order A, C, G, T.

`explain(model, X, target, method)` works on any module that maps one-hot (b, l, 4) to task
logits (b, t), as a tensor or as an output with `.logits` (the CNN baseline, a fine-tuned
Caduceus, a user's own model). Caduceus-specific parts are chosen by the model's type: LRP needs
the rules of `lrp_layers` (a CaduceusClassifier), and long inputs through Caduceus are
recomputed layer by layer. Every method has the same contract: `observed` (N, l, 4) and
`hypothetical` (N, l, 4) out. `hypothetical` is the score every base would get at every
position, centred per position (mean over the 4 bases removed), as TF-MoDISco takes it;
`observed` is the method's map (for all but `saliency`, zero off the observed base).
docs/lrp.md has the rules and how attributions are judged. To add a method: a function of the
signature below, registered in METHODS.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from tqdm.auto import tqdm

from .epi_head import CaduceusClassifier
from .errors import InputError
from .lrp_composites import (DEFAULT_COMPOSITE, calibrate, composite_of, lrp_mode,
                             needs_references)
from .sequence import flip_lc, one_hot, shuffled_one_hot

__all__ = ["METHODS", "Scores", "Attribution", "explain", "task_index", "as_onehot", "logits_of",
           "explaining", "random_background", "lrp_references", "RECOMPUTE_ELEMENTS",
           "BACKGROUND_SEQUENCES"]

# batch x length x n_layer x d_model above which layers are recomputed in the backward pass (one
# layer's activations kept at a time); below it, the activations kept for the backward pass take a
# few GB at most (a few hundred bytes per element in float32)
RECOMPUTE_ELEMENTS = 2 ** 23
BACKGROUND_SEQUENCES = 128  # random sequences for reference statistics when none are given


# -----------------------------------------------------------------------------------------------
# Methods: f(model, x, target, batch_size, **options) -> Scores
# x (b, l, 4) in the model's dtype and device
# -----------------------------------------------------------------------------------------------
class Scores(NamedTuple):
    """A method's output for one batch: observed and hypothetical (b, l, 4), the target logits
    (b,) and, for LRP, the relevance booked by biases and by root points (b,)."""

    observed: torch.Tensor
    hypothetical: torch.Tensor
    logits: torch.Tensor
    bias: torch.Tensor | None = None
    reference: torch.Tensor | None = None


def logits_of(model, x):
    """The model's task logits (b, t) for one-hot x (b, l, 4): its output, or the output's
    `.logits` (transformers-style models)."""
    out = model(onehot=x)
    return out.logits if hasattr(out, "logits") else out


def _gradient(model, x, target, probes=()):
    """Target logits (b,) and d logit / d x (b, l, 4), then d logit / d each armed probe (zero
    for a probe no module used)."""
    x = x.detach().requires_grad_(True)
    inputs = [x] + [probe.arm(x.shape[0], x.dtype, x.device) for probe in probes]
    logits = logits_of(model, x)[:, target]
    grads = torch.autograd.grad(logits.sum(), inputs, allow_unused=True, materialize_grads=True)
    return logits.detach(), grads


def _saliency(model, x, target, batch_size):
    """The signed gradient at every base."""
    logits, (grad,) = _gradient(model, x, target)
    return Scores(grad, grad, logits)


def _grad_x_input(model, x, target, batch_size):
    """Gradient x input."""
    logits, (grad,) = _gradient(model, x, target)
    return Scores(x * grad, grad, logits)


def _corrected(model, x, target, batch_size):
    """Gradient with its per-position mean over the bases removed, times input (Majdandzic et al.
    2023)."""
    logits, (grad,) = _gradient(model, x, target)
    grad = grad - grad.mean(-1, keepdim=True)
    return Scores(x * grad, grad, logits)


def _lrp(model, x, target, batch_size, composite=DEFAULT_COMPOSITE, references=None):
    """LRP under a composite (lrp_composites): Gradient x Input of the modified pass, the
    relevance booked by biases and by root points; with the composite's input root point,
    (x - 1/4) . H per position, the 1/4 sum of H of every base position booked as reference."""
    if not isinstance(model, CaduceusClassifier):
        raise InputError(f"--method lrp: the LRP rules cover Caduceus models, not a "
                         f"{type(model).__name__}; use saliency, grad_x_input, corrected, "
                         "integrated_gradients or ism")
    composite = composite_of(composite)
    with lrp_mode(model, composite, references) as probes:
        logits, (grad, bias, reference) = _gradient(model, x, target, probes)
    observed = x * grad
    if composite.input_root_point:
        mean = grad.mean(-1, keepdim=True)
        observed = x * (grad - mean)
        reference = reference + (x * mean).sum((1, 2))
    return Scores(observed, grad, logits, bias, reference)


def _baseline(x, kind, seed):
    """A reference for x (b, l, 4): all-N zeros, or each sequence dinucleotide-shuffled (N
    positions stay where the shuffle puts them). A sequence's shuffle depends only on the
    sequence and `seed`, not on the rest of the batch."""
    if kind == "N":
        return torch.zeros_like(x)
    if kind != "shuffle":
        raise InputError(f"baseline: unknown baseline {kind!r}; choose 'N' or 'shuffle'")
    return torch.from_numpy(shuffled_one_hot(x.detach().cpu().numpy(), seed)).to(x)


def _integrated_gradients(model, x, target, batch_size, baseline="N", n_steps=50,
                          n_references=1, seed=0):
    """Integrated gradients (captum) from an all-N or dinucleotide-shuffled `baseline`,
    averaged over `n_references` shuffles (seeds seed, seed + 1, ...).

    captum returns the path-averaged gradient G (b, l, 4) of each reference; the attribution of
    a position, sum_bases (x - x0) * G, is put on its observed base, and G (averaged over the
    references) is the hypothetical score. Cost: n_steps * n_references gradients.
    """
    from captum.attr import IntegratedGradients

    ig = IntegratedGradients(lambda inp: logits_of(model, inp)[:, target],
                             multiply_by_inputs=False)
    grads, scores = torch.zeros_like(x), torch.zeros_like(x[..., :1])
    for k in range(n_references):
        x0 = _baseline(x, baseline, seed + k)
        grad = ig.attribute(x, baselines=x0, n_steps=n_steps, internal_batch_size=batch_size)
        grads += grad / n_references
        scores += ((x - x0) * grad).sum(-1, keepdim=True) / n_references
    with torch.no_grad():
        logits = logits_of(model, x)[:, target]
    return Scores(x * scores, grads, logits)


def _expected_gradients(model, x, target, batch_size, n_references=20, seed=0):
    """Expected gradients (Erion et al. 2021): the mean over `n_references` dinucleotide
    shuffles x0 of (x - x0) . grad f(x0 + a (x - x0)), a ~ U(0, 1) drawn per shuffle and
    sequence; the mean gradient is the hypothetical score. Cost: n_references gradients."""
    rng = torch.Generator().manual_seed(seed)
    grads, scores = torch.zeros_like(x), torch.zeros_like(x[..., :1])
    for k in range(n_references):
        x0 = _baseline(x, "shuffle", seed + k)
        alpha = torch.rand(len(x), 1, 1, generator=rng, dtype=torch.float64).to(x)
        _, (grad,) = _gradient(model, x0 + alpha * (x - x0), target)
        grads += grad / n_references
        scores += ((x - x0) * grad).sum(-1, keepdim=True) / n_references
    with torch.no_grad():
        logits = logits_of(model, x)[:, target]
    return Scores(x * scores, grads, logits)


@torch.no_grad()
def _ism(model, x, target, batch_size):
    """In-silico mutagenesis: hypothetical[i, j] = f(x with base j at position i) - f(x), every
    substitution scored in batches of `batch_size` mutants; observed is the centred score of the
    observed base (minus the mean effect of mutating it)."""
    logits = logits_of(model, x)[:, target]
    effects = torch.zeros_like(x)
    eye = torch.eye(4, dtype=x.dtype, device=x.device)
    for i, seq in enumerate(x):
        pos, base = torch.nonzero(seq == 0, as_tuple=True)          # every substitution
        for start in range(0, len(pos), batch_size):
            p, k = pos[start:start + batch_size], base[start:start + batch_size]
            mutants = seq.expand(len(p), -1, -1).clone()
            mutants[torch.arange(len(p)), p] = eye[k]
            effects[i, p, k] = logits_of(model, mutants)[:, target] - logits[i]
    centred = effects - effects.mean(-1, keepdim=True)
    return Scores(x * centred, effects, logits)


METHODS = {
    "saliency": _saliency,
    "grad_x_input": _grad_x_input,
    "corrected": _corrected,
    "lrp": _lrp,
    "integrated_gradients": _integrated_gradients,
    "expected_gradients": _expected_gradients,
    "ism": _ism,
}


# -----------------------------------------------------------------------------------------------
# The result and its diagnostics
# -----------------------------------------------------------------------------------------------
@dataclass
class Attribution:
    """What `explain` returns; arrays are numpy in the model's dtype.

    observed (N, l, 4): the method's map. hypothetical (N, l, 4): centred per position.
    logits (N,): the target logit. For LRP: bias_relevance (N,), the relevance absorbed by
    biases, reference_relevance (N,), the relevance the composite's root points and stabilisers
    keep back, and the composite's name. rc_residual (N,): max |R(rc x) - rc(R(x))| / max |R(x)|
    per sequence (when asked for).
    """

    method: str
    target: int
    observed: np.ndarray
    hypothetical: np.ndarray
    logits: np.ndarray
    bias_relevance: np.ndarray | None = None
    reference_relevance: np.ndarray | None = None
    rc_residual: np.ndarray | None = None
    composite: str | None = None

    @property
    def conservation_residual(self) -> np.ndarray | None:
        """logit - sum(observed) - bias_relevance - reference_relevance, (N,); zero up to
        rounding for LRP."""
        if self.bias_relevance is None:
            return None
        return (self.logits - self.observed.sum(axis=(1, 2)) - self.bias_relevance
                - self.reference_relevance)

    @property
    def conservation_error(self) -> np.ndarray | None:
        """|conservation_residual| relative to the relevance mass sum|observed| + |bias| +
        |reference|, (N,)."""
        if self.bias_relevance is None:
            return None
        mass = (np.abs(self.observed).sum(axis=(1, 2)) + np.abs(self.bias_relevance)
                + np.abs(self.reference_relevance))
        return np.abs(self.conservation_residual) / np.maximum(mass, np.finfo(mass.dtype).tiny)


# -----------------------------------------------------------------------------------------------
# explain
# -----------------------------------------------------------------------------------------------
def check_method(method: str) -> None:
    """InputError unless `method` is a key of METHODS."""
    if method not in METHODS:
        raise InputError(f"--method: unknown method {method!r}; choose one of {', '.join(METHODS)}")


def task_index(model, task) -> int:
    """The head column of `task`: an index, or a name from `model.task_names`."""
    names = list(getattr(model, "task_names", []))
    n_tasks = model.n_tasks if hasattr(model, "n_tasks") else len(names)
    if isinstance(task, str) and task in names:
        return names.index(task)
    if isinstance(task, str) and not task.isdigit():
        raise InputError(f"--task: unknown task {task!r}; the model has "
                         + (", ".join(names) if names else f"{n_tasks} unnamed tasks"))
    index = int(task)
    if not 0 <= index < n_tasks:
        raise InputError(f"--task: task index {index} is out of range for a model with {n_tasks} tasks")
    return index


def as_onehot(X, length: int | None = None) -> np.ndarray:
    """One-hot (N, l, 4) float array from an array / tensor (N, l, 4) or a list of equal-length
    strings (A, C, G, T; anything else is N). With `length`, every sequence must have it."""
    if isinstance(X, str) or (isinstance(X, (list, tuple)) and X and isinstance(X[0], str)):
        seqs = [X] if isinstance(X, str) else list(X)
        lengths = sorted({len(s) for s in seqs})
        if len(lengths) > 1:
            raise InputError(f"sequences: lengths differ ({', '.join(map(str, lengths[:5]))}); "
                             "attribute equal-length sequences together")
        X = one_hot(seqs)
    X = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
    if X.ndim != 3 or X.shape[-1] != 4 or X.shape[0] == 0:
        raise InputError(f"sequences: expected one-hot of shape (N, length, 4), got {X.shape}")
    if not np.all((X == 0) | (X == 1)) or np.any(X.sum(-1) > 1):
        raise InputError("sequences: not one-hot (each position must be one base or all zeros for N)")
    if length is not None and X.shape[1] != length:
        raise InputError(f"sequences: length {X.shape[1]}, but the model was trained on "
                         f"{length}-bp sequences")
    return X


def _needs_recomputation(model, batch: int, length: int) -> bool:
    """Whether a Caduceus classifier should recompute its layers for batches of this size."""
    if not isinstance(model, CaduceusClassifier):
        return False
    return batch * length * model.config.n_layer * model.config.d_model > RECOMPUTE_ELEMENTS


@contextlib.contextmanager
def explaining(model, device=None, recompute: bool = False):
    """The model in eval mode on `device`, its parameters frozen (no activation is kept for
    weight gradients), with layer recomputation if asked (Caduceus); all restored after.
    Yields a parameter of the model (its dtype and device are those inputs need)."""
    mixer = model.caduceus.backbone if isinstance(model, CaduceusClassifier) else None
    first = next(model.parameters())
    mode, where = model.training, first.device
    checkpointing = mixer.gradient_checkpointing if mixer is not None else False
    trainable = [p for p in model.parameters() if p.requires_grad]
    try:
        model.to(device if device is not None else where).eval()
        if mixer is not None:
            mixer.gradient_checkpointing = checkpointing or recompute
        for p in trainable:
            p.requires_grad_(False)
        with torch.enable_grad():
            yield next(model.parameters())
    finally:
        for p in trainable:
            p.requires_grad_(True)
        if mixer is not None:
            mixer.gradient_checkpointing = checkpointing
        model.to(where).train(mode)


def random_background(length: int, n: int = BACKGROUND_SEQUENCES, seed: int = 0) -> np.ndarray:
    """n uniform random one-hot sequences (n, length, 4): the background of reference
    statistics when none is given."""
    rng = np.random.default_rng(seed)
    return np.eye(4)[rng.integers(0, 4, (n, length))]


def lrp_references(model, composite=DEFAULT_COMPOSITE, background=None, length=None,
                   batch_size: int = 32, device=None):
    """The reference statistics of `composite` for `model` (lrp_composites.calibrate on one-hot
    `background` (M, l, 4), default BACKGROUND_SEQUENCES uniform random sequences of `length`
    bp), computed with the model as `explain` runs it; None for a composite without references.
    Passed to `explain(..., references=)`, they calibrate once for many calls."""
    if not needs_references(composite):
        return None
    if background is None:
        background = random_background(length)
    with explaining(model, device), torch.no_grad():
        return calibrate(model, as_onehot(background), batch_size)


def explain(model, X, target=0, method: str = "lrp", batch_size: int = 32, device=None,
            check_rc: bool = False, progress: bool = False, composite=DEFAULT_COMPOSITE,
            background=None, **options) -> Attribution:
    """Attribute the `target` logit of a model for sequences X.

    X: one-hot (N, l, 4) over A, C, G, T (numpy or torch; an all-zero row is N) or a list of
    equal-length strings. target: task index or name. method: a key of METHODS; `options` go to
    it (integrated_gradients: baseline="N" | "shuffle", n_steps, n_references, seed;
    expected_gradients: n_references, seed). LRP: `composite`, a name in
    lrp_composites.COMPOSITES or a Composite; one whose root points are background statistics
    calibrates them once on `background` (one-hot (M, l, 4); default BACKGROUND_SEQUENCES
    uniform random sequences), unless `references` (from `lrp_references`) are given.
    check_rc: also attribute rc(X) and report `rc_residual`. The model comes back in its mode
    and on its device; large batches and long sequences are attributed with layer-wise
    recomputation (RECOMPUTE_ELEMENTS).
    """
    check_method(method)
    target = task_index(model, target)
    X = as_onehot(X)
    run = METHODS[method]
    name = None
    if method == "lrp":
        name = composite_of(composite).name
        options = dict(options, composite=composite)
    out = {k: [] for k in ("observed", "hypothetical", "logits", "bias", "reference", "rc")}
    recompute = _needs_recomputation(model, min(batch_size, len(X)), X.shape[1])
    with explaining(model, device, recompute) as param:
        if method == "lrp" and "references" not in options:
            options["references"] = lrp_references(model, composite, background, X.shape[1],
                                                   batch_size, device)
        starts = range(0, len(X), batch_size)
        for start in tqdm(starts, desc=f"{method} attributions", unit="batch", disable=not progress):
            x = torch.from_numpy(X[start:start + batch_size]).to(param)
            scores = run(model, x, target, batch_size, **options)
            if check_rc:
                observed_rc = run(model, flip_lc(x), target, batch_size, **options).observed
                scale = scores.observed.abs().flatten(1).amax(1).clamp_min(torch.finfo(x.dtype).tiny)
                out["rc"].append((observed_rc - flip_lc(scores.observed)).abs().flatten(1).amax(1)
                                 / scale)
            out["observed"].append(scores.observed)
            out["hypothetical"].append(scores.hypothetical
                                       - scores.hypothetical.mean(-1, keepdim=True))
            out["logits"].append(scores.logits)
            out["bias"].append(scores.bias)
            out["reference"].append(scores.reference)

    def stack(key):
        parts = out[key]
        return torch.cat(parts).detach().cpu().numpy() if parts and parts[0] is not None else None

    return Attribution(method=method, target=target, observed=stack("observed"),
                       hypothetical=stack("hypothetical"), logits=stack("logits"),
                       bias_relevance=stack("bias"), reference_relevance=stack("reference"),
                       rc_residual=stack("rc"), composite=name)
