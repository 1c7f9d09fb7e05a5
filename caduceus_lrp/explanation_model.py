"""Attributions of a fine-tuned Caduceus classifier on one-hot DNA: saliency, gradient methods, LRP,
integrated gradients and in-silico mutagenesis from one registry, with LRP's diagnostics, and the
per-task files TF-MoDISco reads.

Glossary: N sequences, b batch, l length, t tasks; one-hot bases in the order A, C, G, T.

Every method has the same contract (`explain`): one-hot X (N, l, 4) in, `observed` (N, l, 4) and
`hypothetical` (N, l, 4) out. `hypothetical` is the score every base would get at every position,
centred per position (mean over the 4 bases removed), as TF-MoDISco takes it; `observed` is the
method's map (for all but `saliency`, zero off the observed base). docs/lrp.md has the rules and
how attributions are judged.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .epi_head import load_finetuned, rc_onehot
from .errors import InputError
from .io_utils import atomic_path
from .lrp_layers import lrp_mode

__all__ = ["load_finetuned", "METHODS", "Attribution", "explain", "task_index", "as_onehot",
           "split_of", "write_attributions", "RECOMPUTE_ELEMENTS", "planted_sites", "site_mask",
           "site_auroc", "faithfulness", "checkpoint_data", "ground_truth", "positive_rows",
           "first_positive", "add_checkpoint_arguments"]

# batch x length x n_layer x d_model above which layers are recomputed in the backward pass (one
# layer's activations kept at a time); below it, the activations kept for the backward pass take a
# few GB at most (a few hundred bytes per element in float32)
RECOMPUTE_ELEMENTS = 2 ** 23


# -----------------------------------------------------------------------------------------------
# Methods: f(model, x, target, batch_size, **options) -> (observed, hypothetical, logits, bias)
# x (b, l, 4) in the model's dtype and device; outputs (b, l, 4), (b, l, 4), (b,), (b,) or None
# -----------------------------------------------------------------------------------------------
def _gradient(model, x, target, probe=None):
    """Target logits (b,) and d logit / d x (b, l, 4); with an LRP `probe`, also d logit / d probe."""
    x = x.detach().requires_grad_(True)
    inputs = [x] if probe is None else [x, probe.arm(x.shape[0], x.dtype, x.device)]
    logits = model(onehot=x)[:, target]
    grads = torch.autograd.grad(logits.sum(), inputs)
    return logits.detach(), grads


def _saliency(model, x, target, batch_size):
    """The signed gradient at every base."""
    logits, (grad,) = _gradient(model, x, target)
    return grad, grad, logits, None


def _grad_x_input(model, x, target, batch_size):
    """Gradient x input."""
    logits, (grad,) = _gradient(model, x, target)
    return x * grad, grad, logits, None


def _corrected(model, x, target, batch_size):
    """Gradient with its per-position mean over the bases removed, times input (Majdandzic et al.
    2023)."""
    logits, (grad,) = _gradient(model, x, target)
    grad = grad - grad.mean(-1, keepdim=True)
    return x * grad, grad, logits, None


def _lrp(model, x, target, batch_size):
    """LRP: Gradient x Input of the modified pass (lrp_layers), and the biases' relevance."""
    with lrp_mode(model) as probe:
        logits, (grad, bias) = _gradient(model, x, target, probe)
    return x * grad, grad, logits, bias


def _baseline(x, kind, seed):
    """The integrated-gradients reference for x (b, l, 4): all-N zeros, or each sequence
    dinucleotide-shuffled (positions that are N stay where the shuffle puts them)."""
    if kind == "N":
        return torch.zeros_like(x)
    if kind != "shuffle":
        raise InputError(f"baseline: unknown baseline {kind!r}; choose 'N' or 'shuffle'")
    from .sequence import dinucleotide_shuffle, one_hot_to_tokens, tokens_to_one_hot

    rng = np.random.default_rng(seed)
    tokens = one_hot_to_tokens(x.detach().cpu().numpy())
    shuffled = np.stack([dinucleotide_shuffle(row, rng) for row in tokens])
    return torch.from_numpy(tokens_to_one_hot(shuffled)).to(x)


def _integrated_gradients(model, x, target, batch_size, baseline="N", n_steps=50, seed=0):
    """Integrated gradients (captum) from an all-N or dinucleotide-shuffled `baseline`.

    captum returns the path-averaged gradient G (b, l, 4); the attribution of a position,
    sum_bases (x - x0) * G, is put on its observed base, and G is the hypothetical score.
    """
    from captum.attr import IntegratedGradients

    x0 = _baseline(x, baseline, seed)
    ig = IntegratedGradients(lambda inp: model(onehot=inp)[:, target], multiply_by_inputs=False)
    grad = ig.attribute(x, baselines=x0, n_steps=n_steps, internal_batch_size=batch_size)
    with torch.no_grad():
        logits = model(onehot=x)[:, target]
    return x * ((x - x0) * grad).sum(-1, keepdim=True), grad, logits, None


@torch.no_grad()
def _ism(model, x, target, batch_size):
    """In-silico mutagenesis: hypothetical[i, j] = f(x with base j at position i) - f(x), every
    substitution scored in batches of `batch_size` mutants; observed is the centred score of the
    observed base (minus the mean effect of mutating it)."""
    logits = model(onehot=x)[:, target]
    effects = torch.zeros_like(x)
    eye = torch.eye(4, dtype=x.dtype, device=x.device)
    for i, seq in enumerate(x):
        pos, base = torch.nonzero(seq == 0, as_tuple=True)          # every substitution
        for start in range(0, len(pos), batch_size):
            p, k = pos[start:start + batch_size], base[start:start + batch_size]
            mutants = seq.expand(len(p), -1, -1).clone()
            mutants[torch.arange(len(p)), p] = eye[k]
            effects[i, p, k] = model(onehot=mutants)[:, target] - logits[i]
    centred = effects - effects.mean(-1, keepdim=True)
    return x * centred, effects, logits, None


METHODS = {
    "saliency": _saliency,
    "grad_x_input": _grad_x_input,
    "corrected": _corrected,
    "lrp": _lrp,
    "integrated_gradients": _integrated_gradients,
    "ism": _ism,
}


# -----------------------------------------------------------------------------------------------
# The result and its diagnostics
# -----------------------------------------------------------------------------------------------
@dataclass
class Attribution:
    """What `explain` returns; arrays are numpy in the model's dtype.

    observed (N, l, 4): the method's map. hypothetical (N, l, 4): centred per position.
    logits (N,): the target logit. bias_relevance (N,): relevance absorbed by biases (LRP only).
    rc_residual (N,): max |R(rc x) - rc(R(x))| / max |R(x)| per sequence (when asked for).
    """

    method: str
    target: int
    observed: np.ndarray
    hypothetical: np.ndarray
    logits: np.ndarray
    bias_relevance: np.ndarray | None = None
    rc_residual: np.ndarray | None = None

    @property
    def conservation_residual(self) -> np.ndarray | None:
        """logit - sum(observed) - bias_relevance, (N,); zero up to rounding for LRP."""
        if self.bias_relevance is None:
            return None
        return self.logits - self.observed.sum(axis=(1, 2)) - self.bias_relevance

    @property
    def conservation_error(self) -> np.ndarray | None:
        """|conservation_residual| relative to the relevance mass sum|observed| + |bias|, (N,)."""
        if self.bias_relevance is None:
            return None
        mass = np.abs(self.observed).sum(axis=(1, 2)) + np.abs(self.bias_relevance)
        return np.abs(self.conservation_residual) / np.maximum(mass, np.finfo(mass.dtype).tiny)


# -----------------------------------------------------------------------------------------------
# explain
# -----------------------------------------------------------------------------------------------
def task_index(model, task) -> int:
    """The head column of `task`: an index, or a name from `model.task_names`."""
    names = list(getattr(model, "task_names", []))
    n_tasks = model.n_tasks
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
        from .sequence import one_hot

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


@contextlib.contextmanager
def _explaining(model, device, recompute: bool):
    """The model in eval mode on `device`, its parameters frozen (no activation is kept for
    weight gradients), with layer recomputation if asked; all restored after."""
    mixer = model.backbone.backbone
    first = next(model.parameters())
    mode, where, checkpointing = model.training, first.device, mixer.gradient_checkpointing
    trainable = [p for p in model.parameters() if p.requires_grad]
    try:
        model.to(device if device is not None else where).eval()
        mixer.gradient_checkpointing = checkpointing or recompute
        for p in trainable:
            p.requires_grad_(False)
        with torch.enable_grad():
            yield next(model.parameters())
    finally:
        for p in trainable:
            p.requires_grad_(True)
        mixer.gradient_checkpointing = checkpointing
        model.to(where).train(mode)


def explain(model, X, target=0, method: str = "lrp", batch_size: int = 32, device=None,
            check_rc: bool = False, progress: bool = False, **options) -> Attribution:
    """Attribute the `target` logit of a CaduceusClassifier for sequences X.

    X: one-hot (N, l, 4) over A, C, G, T (numpy or torch; an all-zero row is N) or a list of
    equal-length strings. target: task index or name. method: a key of METHODS; `options` go to
    it (integrated_gradients: baseline="N" | "shuffle", n_steps, seed). check_rc: also attribute
    rc(X) and report `rc_residual`. The model comes back in its mode and on its device; large
    batches and long sequences are attributed with layer-wise recomputation (RECOMPUTE_ELEMENTS).
    """
    if method not in METHODS:
        raise InputError(f"--method: unknown method {method!r}; choose one of {', '.join(METHODS)}")
    target = task_index(model, target)
    X = as_onehot(X)
    run = METHODS[method]
    out = {k: [] for k in ("observed", "hypothetical", "logits", "bias", "rc")}
    cfg = model.config
    size = min(batch_size, len(X)) * X.shape[1] * cfg.n_layer * cfg.d_model
    with _explaining(model, device, recompute=size > RECOMPUTE_ELEMENTS) as param:
        starts = range(0, len(X), batch_size)
        for start in tqdm(starts, desc=f"{method} attributions", unit="batch", disable=not progress):
            x = torch.from_numpy(X[start:start + batch_size]).to(param)
            observed, hyp, logits, bias = run(model, x, target, batch_size, **options)
            if check_rc:
                observed_rc = run(model, rc_onehot(x), target, batch_size, **options)[0]
                scale = observed.abs().flatten(1).amax(1).clamp_min(torch.finfo(x.dtype).tiny)
                out["rc"].append((observed_rc - rc_onehot(observed)).abs().flatten(1).amax(1) / scale)
            out["observed"].append(observed)
            out["hypothetical"].append(hyp - hyp.mean(-1, keepdim=True))
            out["logits"].append(logits)
            out["bias"].append(bias)

    def stack(key):
        parts = out[key]
        return torch.cat(parts).detach().cpu().numpy() if parts and parts[0] is not None else None

    return Attribution(method=method, target=target, observed=stack("observed"),
                       hypothetical=stack("hypothetical"), logits=stack("logits"),
                       bias_relevance=stack("bias"), rc_residual=stack("rc"))


# -----------------------------------------------------------------------------------------------
# Files for TF-MoDISco
# -----------------------------------------------------------------------------------------------
def split_of(dataset, split: str):
    """The sequences of one split of a SequenceDataset ("train", "val", "test"), or all of them."""
    from .data import SPLITS

    if split == "all":
        return dataset
    if split not in SPLITS:
        raise InputError(f"--split: unknown split {split!r}; choose one of {', '.join(SPLITS)}, all")
    return dataset.subset(split)


def write_attributions(model, dataset, out_dir, method: str = "lrp", split: str = "test",
                       batch_size: int = 32, device=None, progress: bool = True, **options) -> dict:
    """For every task of the model, attribute its positive sequences of `split` (or "all") and write
    `<out_dir>/<task>/ohe.npz` and `hyp.npz` (key arr_0, (N, 4, l): what `modisco motifs` reads;
    hyp centred per position). Returns {task: Attribution}; tasks without positives are skipped.
    """
    subset = split_of(dataset, split)
    names = list(model.task_names)
    missing = [t for t in names if t not in subset.task_names]
    if missing:
        raise InputError(f"dataset: has no labels for the model's task(s) {', '.join(missing)} "
                         f"(it has {', '.join(subset.task_names)})")
    onehot = subset.one_hot()
    results = {}
    for k, task in enumerate(names):
        positive = positive_rows(subset, task)
        if not len(positive):
            continue
        result = explain(model, onehot[positive], target=k, method=method, batch_size=batch_size,
                         device=device, progress=progress, **options)
        folder = Path(out_dir) / task
        for name, array in (("ohe.npz", onehot[positive]), ("hyp.npz", result.hypothetical)):
            with atomic_path(folder / name) as tmp:
                np.savez(tmp, np.ascontiguousarray(array.transpose(0, 2, 1)))
        results[task] = result
    return results


def positive_rows(dataset, task_name: str) -> np.ndarray:
    """Rows (k,) of the sequences of `dataset` labelled positive for `task_name`, in order."""
    labels = np.asarray(dataset.labels)
    return (labels[:, list(dataset.task_names).index(task_name)] > 0).nonzero()[0]


def first_positive(dataset, task_name: str, hint: str) -> int:
    """Row of the first positive sequence of `task_name` in `dataset`; an InputError ending in
    `hint` (how to choose sequences instead) when the dataset has no such labels or positives."""
    if task_name not in dataset.task_names:
        raise InputError(f"--data: has no labels for task {task_name!r}; {hint}")
    positives = positive_rows(dataset, task_name)
    if len(positives) == 0:
        raise InputError(f"--split: no positive sequence of task {task_name!r}; {hint}")
    return int(positives[0])


# -----------------------------------------------------------------------------------------------
# The data a checkpoint was trained on, and its ground truth
# -----------------------------------------------------------------------------------------------
def add_checkpoint_arguments(parser, ground_truth: bool = True) -> None:
    """The scripts' --model, --data (and --ground-truth) options, read by `load_finetuned`,
    `checkpoint_data` and `ground_truth`."""
    parser.add_argument("--model", default="final_models/best_model.pt",
                        help="fine-tuned checkpoint")
    parser.add_argument("--data", default=None,
                        help="dataset input (default: the data the model was trained on)")
    if ground_truth:
        parser.add_argument("--ground-truth", default=None, help="planted-site TSV (default: the "
                            "embedded dataset's, when it is used)")


def checkpoint_data(path, data=None):
    """The DataConfig the fine-tuned checkpoint at `path` was trained with (the embedded dataset
    when it records none); `data` (a path) replaces its input, keeping its other settings (sequence
    length, labels, genome)."""
    import dataclasses

    from .data import DataConfig
    from .epi_head import read_checkpoint

    stored = read_checkpoint(path).get("extra", {}).get("config", {}).get("data", {})
    names = {f.name for f in dataclasses.fields(DataConfig)}
    cfg = DataConfig(**{k: v for k, v in stored.items() if k in names})
    return cfg if data is None else dataclasses.replace(cfg, data=str(data))


def ground_truth(cfg, path=None):
    """The planted-site table: from `path`, else the embedded dataset's when cfg reads it, else None."""
    from .data import embedded_dataset
    from .synthetic import load_ground_truth

    if path is None and cfg.data is not None:
        return None
    return load_ground_truth(path if path is not None else embedded_dataset(cfg)[1])


# -----------------------------------------------------------------------------------------------
# Judging attributions against ground truth (docs/lrp.md, "How attributions are judged")
# -----------------------------------------------------------------------------------------------
def planted_sites(truth, ids, task) -> list[list[tuple[int, int, str]]]:
    """Planted sites [(start, end, motif name)] of `task` in each sequence of `ids`, from a
    ground-truth table (synthetic.load_ground_truth). A cooperative task "A+B" has the sites of
    A and of B."""
    tasks = set(task.split("+"))
    rows = truth[truth["task"].isin(tasks)]
    by_id = {k: list(zip(g["start"], g["end"], g["motif_name"])) for k, g in rows.groupby("id")}
    return [sorted((int(s), int(e), str(n)) for s, e, n in by_id.get(i, [])) for i in ids]


def site_mask(sites, length) -> np.ndarray:
    """(N, length) bool: True inside a site of each sequence's list (end exclusive)."""
    mask = np.zeros((len(sites), length), dtype=bool)
    for i, seq_sites in enumerate(sites):
        for start, end, _ in seq_sites:
            mask[i, start:end] = True
    return mask


def site_auroc(scores, mask) -> np.ndarray:
    """Per-sequence AUROC of position scores (N, l) against site positions (N, l); NaN for a
    sequence without sites or without background."""
    from sklearn.metrics import roc_auc_score

    return np.array([roc_auc_score(m, s) if 0 < m.sum() < len(m) else np.nan
                     for s, m in zip(scores, mask)])


def faithfulness(model, X, scores, target=0, steps: int = 20, batch_size: int = 64, device=None,
                 progress: bool = False) -> np.ndarray:
    """MambaLRP's Delta A_F per sequence (N,): positions are replaced by N in order of `scores`
    (N, l), most-relevant-first (MoRF) and least-relevant-first (LeRF), in `steps` equal steps;
    the target logit traces two curves over the fraction removed, and Delta A_F is the area under
    LeRF minus the area under MoRF (trapezoids on [0, 1]). Higher is better."""
    target = task_index(model, target)
    X, scores = as_onehot(X), np.asarray(scores)
    length = X.shape[1]
    counts = np.round(np.linspace(0, length, steps + 1)).astype(int)      # positions removed
    orders = np.argsort(-scores, axis=1, kind="stable"), np.argsort(scores, axis=1, kind="stable")
    # variants[i, o, k]: sequence i with its first counts[k] positions in order o set to N
    rank = np.stack([np.argsort(o, axis=1) for o in orders], axis=1)      # (N, 2, l)
    keep = rank[:, :, None, :] >= counts[None, None, :, None]            # (N, 2, k, l)
    curves = np.empty(keep.shape[:3])
    flat_keep = keep.reshape(len(X), -1, length)
    with _explaining(model, device, recompute=False) as param, torch.no_grad():
        for i in tqdm(range(len(X)), desc="faithfulness", unit="seq", disable=not progress):
            variants = torch.from_numpy(X[i][None] * flat_keep[i][..., None]).to(param)
            logits = torch.cat([model(onehot=v)[:, target] for v in variants.split(batch_size)])
            curves[i] = logits.cpu().numpy().reshape(2, -1)
    morf, lerf = curves[:, 0], curves[:, 1]
    return np.trapezoid(lerf - morf, dx=1 / steps, axis=1)
