"""Fine-tuning: the training configuration, the loop (optimizer groups, schedule, early stopping, resume,
DDP), evaluation and metrics. `run_training(cfg) -> metrics` is the library entry.

Glossary: N sequences, b batch, S strands, l length, c feature width, t tasks.
The loop trains `top(features)` of a split model (`frozen_cache.SplitCaduceus` or the CNN):
features come from the frozen-layer cache or are computed per batch. Under torchrun each rank
takes its slice of every global batch, the loss is scaled so DDP's gradient average equals the
gradient of the global-batch mean, and only rank 0 writes files.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import gc
import io
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from sklearn.metrics import average_precision_score, roc_auc_score
from tqdm import tqdm

from . import plots
from .cnn import CNNConfig, OneHotCNN
from .config import architecture_config
from .data import DataConfig, SequenceDataset, load_dataset
from .epi_head import POOLINGS, CaduceusClassifier, export_hf_folder, save_finetuned
from .errors import InputError
from .frozen_cache import CACHE_DTYPES, FrozenCache, SplitCaduceus
from .io_utils import atomic_path
from .losses import LOSSES, TaskWeights, loss_functions
from .model import build_caduceus, load_caduceus

__all__ = ["TrainConfig", "DEMO_BACKBONE", "run_training", "lr_factor", "param_groups",
           "epoch_batches", "compute_metrics", "build_trainable", "cpu_threads"]

log = logging.getLogger(__name__)

DEMO_BACKBONE = Path(__file__).resolve().parents[1] / "final_models" / "demo_backbone"
MODELS = ("caduceus", "cnn")


def _help(text, **kw):
    return field(metadata={"help": text}, **kw)


@dataclass
class TrainConfig:
    """Everything a fine-tuning run depends on; one --flag per field, `data` holds the DataConfig."""

    model: str = _help("caduceus: the fine-tuned backbone under the EPI head; cnn: the one-hot "
                       "CNN baseline, trained and evaluated the same way", default="caduceus")
    pretrained: str | None = _help(
        "backbone checkpoint: a folder (config.json + model.safetensors) or a Hugging Face id "
        "(online); default: the shipped demo backbone (final_models/demo_backbone) unless --arch "
        "is given", default=None)
    arch: str | None = _help("published architecture to initialise randomly (official init), "
                             "e.g. caduceus-ps_seqlen-1k_d_model-118_n_layer-4_lr-8e-3",
                             default=None)
    unfreeze_layers: int = _help("top backbone layers that train (with the final norm and the "
                                 "head); the embedding and lower layers are frozen", default=2)
    pooling: str = _help(f"pooling over length in the head: {', '.join(POOLINGS)}", default="max")
    gradient_checkpointing: bool = _help("recompute unfrozen layers in the backward pass (saves "
                                         "memory on long sequences)", default=False)
    cnn_filters: int = _help("CNN baseline: number of convolution filters", default=64)
    cnn_width: int = _help("CNN baseline: filter width (bp)", default=15)
    epochs: int = _help("maximum number of epochs", default=5)
    batch_size: int = _help("global batch size (split over torchrun ranks)", default=16)
    eval_batch_size: int = _help("batch size of the passes without gradient (the frozen-layer "
                                 "cache, evaluation)", default=64)
    lr: float = _help("peak learning rate of the unfrozen backbone layers (all CNN layers)",
                      default=4e-3)
    head_lr: float = _help("peak learning rate of the EPI head and the final norm", default=2e-2)
    weight_decay: float = _help("AdamW weight decay of weight matrices (none on A_log, D, norms "
                                "and biases)", default=0.1)
    warmup_frac: float = _help("fraction of the steps with a linear warm-up", default=0.05)
    min_lr_ratio: float = _help("learning rate at the end of the cosine, relative to the peak",
                                default=0.0)
    grad_clip: float = _help("clip the gradient norm to this (0: no clipping; 1.0, the earlier "
                             "default, made no measurable difference to the demo run over seven "
                             "seeds, PROGRESS.md)", default=0.0)
    patience: int = _help("stop after this many epochs without a better validation macro auROC",
                          default=3)
    loss: str = _help("bce: binary cross-entropy per task (multi-label); ce: cross-entropy, "
                      "for labels with exactly one class per sequence", default="bce")
    pos_weight: list[float] | None = _help("BCE positive weight per task (one per task)",
                                           default=None)
    task_focus: float = _help(
        "task weighting (bce): each task's loss term is weighted by its running mean training "
        "loss to this power, normalised to mean 1, so tasks the model still gets wrong weigh "
        "more; 0: equal weights. Default 2: with it the demo's GATA1 task was learned in all 13 "
        "seeds tried, with equal weights in 6 of 11 (PROGRESS.md)", default=2.0)
    train_seed: int = _help("seed of initialisation, shuffling and RC augmentation", default=0)
    replicates: int = _help("train this many seeds (train-seed, train-seed + 1, ...) and keep the "
                            "one with the best validation macro auROC; on CPU they run in "
                            "parallel, one per core, on CUDA one after the other. Default 2: "
                            "the better of two seeds avoids the demo's weak outliers (PROGRESS.md); "
                            "1 for a single run", default=2)
    frozen_cache: bool = _help("compute the frozen layers once and train on the cached outputs",
                               default=True)
    cache_dtype: str = _help(f"dtype of the frozen-layer cache: {', '.join(CACHE_DTYPES)}",
                             default="float16")
    frozen_cache_dir: str | None = _help("keep the frozen-layer cache on disk here (a memmap "
                                         "reused while data and weights are unchanged); default: "
                                         "in memory", default=None)
    device: str = _help("cpu, cuda, cuda:N or auto (cuda when available)", default="auto")
    threads: int = _help("CPU threads of torch and the numba scan per process; 0: all cores "
                         "(shared by the torchrun ranks of a node). Default 1: measured as fast "
                         "as 2 for the demo model on an idle 2-core machine, and 5-10x faster "
                         "when other processes compete; raise it for large backbones on CPU",
                         default=1)
    out_dir: str = _help("folder of best_model.pt, metrics and checkpoints", default="final_models")
    plots_dir: str = _help("folder of epoch{N}_roc.png and dist_EPI.png", default="plots")
    resume: bool = _help("continue from out_dir/last_checkpoint.pt", default=False)
    export_hf: str | None = _help("also write the best model as a Hugging Face folder here",
                                  default=None)
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self):
        if isinstance(self.data, dict):
            self.data = DataConfig(**self.data)
        checks = [
            ("model", self.model in MODELS, f"choose one of {', '.join(MODELS)}"),
            ("pooling", self.pooling in POOLINGS, f"choose one of {', '.join(POOLINGS)}"),
            ("loss", self.loss in LOSSES, f"choose one of {', '.join(LOSSES)}"),
            ("task-focus", self.task_focus >= 0, "must be >= 0"),
            ("cache-dtype", self.cache_dtype in CACHE_DTYPES,
             f"choose one of {', '.join(CACHE_DTYPES)}"),
            ("unfreeze-layers", self.unfreeze_layers >= 0, "must be >= 0"),
            ("epochs", self.epochs >= 1, "must be >= 1"),
            ("batch-size", self.batch_size >= 1, "must be >= 1"),
            ("eval-batch-size", self.eval_batch_size >= 1, "must be >= 1"),
            ("lr", self.lr > 0, "must be positive"),
            ("head-lr", self.head_lr > 0, "must be positive"),
            ("weight-decay", self.weight_decay >= 0, "must be >= 0"),
            ("warmup-frac", 0 <= self.warmup_frac < 1, "must lie in [0, 1)"),
            ("min-lr-ratio", 0 <= self.min_lr_ratio <= 1, "must lie in [0, 1]"),
            ("grad-clip", self.grad_clip >= 0, "must be >= 0"),
            ("patience", self.patience >= 1, "must be >= 1"),
            ("replicates", self.replicates >= 1, "must be >= 1"),
            ("threads", self.threads >= 0, "must be >= 0"),
        ]
        for name, ok, what in checks:
            if not ok:
                value = getattr(self, name.replace("-", "_"))
                raise InputError(f"--{name}: {what} (got {value!r})")
        if self.pretrained and self.arch:
            raise InputError("--pretrained: give --pretrained or --arch, not both")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------
# Pure pieces: schedule, batches, optimizer groups, metrics
# ---------------------------------------------------------------------------------------------
def lr_factor(step: int, total: int, warmup: int, min_ratio: float = 0.0) -> float:
    """Multiplier of the peak learning rate at `step` (0-based) of `total`: linear warm-up over
    `warmup` steps to 1, then a cosine down to `min_ratio` at the last step."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup - 1)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1):
    """This rank's index tensors for every step of an epoch. The global batches are a permutation
    of range(n) seeded by (seed, epoch); rank r takes the r-th of `world` near-equal slices.
    A last global batch smaller than `world` is dropped."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    batches = [perm[i:i + batch_size] for i in range(0, n, batch_size)]
    return [b.tensor_split(world)[rank] for b in batches if len(b) >= world]


def param_groups(model: nn.Module, lr: float, head_lr: float, weight_decay: float) -> list[dict]:
    """AdamW groups of the trainable parameters: head (names `head.*` and the final norm) at
    head_lr, the rest at lr; no weight decay on A_log, D, norms and biases (every tensor of
    fewer than 2 dimensions, and A_log)."""
    groups = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_head = name.startswith("head.") or "norm_f" in name
        decay = p.ndim >= 2 and not name.endswith("A_log")
        key = (is_head, decay)
        groups.setdefault(key, {"params": [], "names": [], "lr": head_lr if is_head else lr,
                                "weight_decay": weight_decay if decay else 0.0})
        groups[key]["params"].append(p)
        groups[key]["names"].append(name)
    return [groups[k] for k in sorted(groups)]


def compute_metrics(labels: np.ndarray, probs: np.ndarray, task_names, split: str) -> dict:
    """auROC and auPRC per task and their macro means: keys `{split}.auroc.{task}`,
    `{split}.auprc.{task}`, `{split}.macro_auroc`, `{split}.macro_auprc`. A task with one
    class only in this split gets None and is left out of the means."""
    out = {}
    for name, metric in (("auroc", roc_auc_score), ("auprc", average_precision_score)):
        values = []
        for j, task in enumerate(task_names):
            y = labels[:, j] > 0.5
            value = float(metric(y, probs[:, j])) if 0 < y.sum() < len(y) else None
            out[f"{split}.{name}.{task}"] = value
            values.append(value)
        known = [v for v in values if v is not None]
        out[f"{split}.macro_{name}"] = float(np.mean(known)) if known else None
    return out


# ---------------------------------------------------------------------------------------------
# Building the model
# ---------------------------------------------------------------------------------------------
def _backbone(cfg: TrainConfig):
    """(CaduceusForMaskedLM, description) from --pretrained, --arch or the demo backbone."""
    if cfg.arch:
        return (build_caduceus(architecture_config(cfg.arch), seed=cfg.train_seed),
                f"RANDOMLY INITIALISED {cfg.arch} (official init, seed {cfg.train_seed}; "
                "no --pretrained checkpoint)")
    source = cfg.pretrained or DEMO_BACKBONE
    if cfg.pretrained is None and not DEMO_BACKBONE.exists():
        raise InputError(f"{DEMO_BACKBONE}: the demo backbone is missing; rebuild it with "
                         "`python -m caduceus_lrp.pretrain`, or pass --pretrained or --arch")
    return load_caduceus(source), f"pretrained {source}"


def build_trainable(cfg: TrainConfig, n_tasks: int) -> tuple[nn.Module, str]:
    """(the split model the loop trains, a description of its backbone)."""
    if cfg.model == "cnn":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.train_seed)
            return OneHotCNN(CNNConfig(cfg.cnn_filters, cfg.cnn_width), n_tasks), "none (CNN)"
    lm, description = _backbone(cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.train_seed)
        classifier = CaduceusClassifier(lm.config, n_tasks, cfg.pooling, backbone=lm.caduceus)
    classifier.backbone.backbone.gradient_checkpointing = cfg.gradient_checkpointing
    return SplitCaduceus(classifier, cfg.unfreeze_layers), description


class _Top(nn.Module):
    """forward = the split model's `top`, so DDP wraps exactly the trained map."""

    def __init__(self, split):
        super().__init__()
        self.split = split

    def forward(self, features):
        return self.split.top(features)


# ---------------------------------------------------------------------------------------------
# Distributed helpers
# ---------------------------------------------------------------------------------------------
def _rank_world():
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def _all_sum(values: list[float], device) -> list[float]:
    """Sum of a short list of floats over ranks (identity without DDP)."""
    if not dist.is_initialized():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _gather_rows(rows: np.ndarray, n: int) -> np.ndarray:
    """Each rank holds rows rank::world of an (n, t) array; return the whole array, in order."""
    rank, world = _rank_world()
    if world == 1:
        return rows
    parts = [None] * world
    dist.all_gather_object(parts, rows)
    out = np.empty((n, rows.shape[1]), dtype=rows.dtype)
    for r, part in enumerate(parts):
        out[r::world] = part
    return out


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device: {name} requested but no CUDA device is available")
    if device.type == "cuda" and device.index is None and dist.is_initialized():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return device


def _torchrun_world() -> int:
    """Processes of this torchrun job (WORLD_SIZE; 1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _cores_each(processes: int) -> int:
    """CPU cores per process when `processes` processes share this machine (at least 1)."""
    return max(1, (os.cpu_count() or 1) // processes)


@contextlib.contextmanager
def _distributed(device_name: str):
    """Initialise torch.distributed under torchrun (WORLD_SIZE > 1): NCCL for CUDA, gloo for CPU;
    on the way out the caller has dropped its DDP model, then the group is destroyed."""
    started = _torchrun_world() > 1 and not dist.is_initialized()
    if started:
        cuda = device_name != "cpu" and torch.cuda.is_available()
        dist.init_process_group("nccl" if cuda else "gloo")
    try:
        yield
    finally:
        if started:
            gc.collect()
            dist.destroy_process_group()


@contextlib.contextmanager
def cpu_threads(threads: int):
    """Run with `threads` torch and numba threads (0: all cores, shared between the torchrun
    ranks of this node); the previous counts are restored on the way out."""
    import numba

    before = torch.get_num_threads(), numba.get_num_threads()
    if threads == 0:
        threads = _cores_each(int(os.environ.get("LOCAL_WORLD_SIZE", _torchrun_world())))
    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        numba.set_num_threads(before[1])


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def _predict(split_model, features, index: torch.Tensor, batch_size: int, probs_fn,
             autocast) -> np.ndarray:
    """Probabilities (len(index), t) with every strand's logits averaged; DDP ranks share rows."""
    rank, world = _rank_world()
    mine = index[rank::world]
    split_model.eval()
    out = []
    for start in range(0, len(mine), batch_size):
        f = features(mine[start:start + batch_size])                    # (b, S, l, c)
        with autocast:
            logits = torch.stack([split_model.top(f[:, s]).float() for s in range(f.shape[1])])
        out.append(probs_fn(logits.mean(0)).cpu().numpy())
    rows = np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)
    return _gather_rows(rows, len(index))


class _Outputs:
    """The files of a run; writes only on rank 0."""

    def __init__(self, cfg: TrainConfig):
        self.out, self.plots = Path(cfg.out_dir), Path(cfg.plots_dir)
        self.writer = _rank_world()[0] == 0
        self.best, self.last = self.out / "best_model.pt", self.out / "last_checkpoint.pt"

    def write_text(self, name: str, text: str):
        if self.writer:
            with atomic_path(self.out / name) as tmp:
                tmp.write_text(text)

    def history_csv(self, history: list[dict]):
        buf = io.StringIO()
        keys = list(dict.fromkeys(k for row in history for k in row))
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
        self.write_text("metrics.csv", buf.getvalue())


def _config_yaml(cfg: TrainConfig) -> str:
    import yaml

    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def _check_data(ds: SequenceDataset, cfg: TrainConfig):
    for name in ("train", "val"):
        if not (ds.split == name).any():
            raise InputError(f"data: the {name} split is empty ({ds.source})")
    if cfg.loss == "ce":
        bad = np.flatnonzero(~np.isin(ds.labels, (0.0, 1.0)).all(1) | (ds.labels.sum(1) != 1))
        if len(bad):
            raise InputError(f"--loss ce: sequence {ds.ids[bad[0]]} does not have exactly one "
                             "class (use --loss bce for multi-label data)")
    if cfg.pos_weight is not None and len(cfg.pos_weight) != len(ds.task_names):
        raise InputError(f"--pos-weight: {len(cfg.pos_weight)} values for "
                         f"{len(ds.task_names)} tasks ({', '.join(ds.task_names)})")


class _Stepper:
    """The optimisation steps of one epoch: batches, RC strand choice (ph), schedule, task
    weights, loss scaled for DDP, NaN check, clipping."""

    def __init__(self, cfg, model, optimizer, features, labels, train_idx, loss_fn, task_weights,
                 lr_factor_at, n_strands, device, autocast):
        self.cfg, self.model, self.optimizer = cfg, model, optimizer
        self.features, self.labels, self.train_idx = features, labels, train_idx
        self.loss_fn, self.task_weights = loss_fn, task_weights
        self.lr_factor_at, self.n_strands = lr_factor_at, n_strands
        self.device, self.autocast = device, autocast

    def epoch(self, epoch: int, first_step: int) -> tuple[float, int]:
        """Train one epoch; (summed per-sequence loss, unweighted mean over tasks, and
        sequences) over all ranks."""
        cfg, (rank, world) = self.cfg, _rank_world()
        n = len(self.train_idx)
        gen = torch.Generator().manual_seed(cfg.train_seed * 100_003 + epoch + 7)
        strands = torch.randint(0, self.n_strands, (n,), generator=gen)   # RC augmentation (ph)
        batches = epoch_batches(n, cfg.batch_size, cfg.train_seed, epoch, rank, world)
        global_sizes = [len(b) for b in epoch_batches(n, cfg.batch_size, cfg.train_seed, epoch)]
        loss_sum, seen, t0 = 0.0, 0, time.perf_counter()
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step",
                   disable=True if rank != 0 else None, leave=False)  # None: terminals only
        for step, local in enumerate(bar):
            for group in self.optimizer.param_groups:
                group["lr"] = group["initial_lr"] * self.lr_factor_at(first_step + step)
            rows = self.train_idx[local]
            f = self.features(rows)                                       # (b, S, l, c)
            f = f[torch.arange(len(rows)), strands[local]]                # (b, l, c)
            with self.autocast:
                logits = self.model(f)
            per_task = self.loss_fn(logits.float(), self.labels[rows].to(self.device))  # (b, k)
            weights = self.task_weights(per_task.detach(), global_sizes[step])           # (k,)
            # DDP averages gradients over ranks: this makes it the global-batch mean
            loss = (per_task * weights).mean(1).sum() * (world / global_sizes[step])
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"epoch {epoch + 1}, step {step + 1}: the loss is {loss.item()}; "
                    "training stopped (lower --lr / --head-lr, or check the labels)")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.optimizer.step()
            loss_sum += per_task.detach().mean(1).sum().item()
            seen += len(rows)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}",
                            seq_s=f"{seen * world / (time.perf_counter() - t0):.1f}")
        loss_sum, seen = _all_sum([loss_sum, seen], self.device)
        return loss_sum, int(seen)


def run_training(cfg: TrainConfig) -> dict:
    """Fine-tune (or train the CNN baseline) as configured; write the outputs; return the final
    metrics (`val.macro_auroc`, `test.macro_auroc`, per task, ...). With cfg.replicates > 1 the
    best of that many seeds (`replicates.run_replicates`)."""
    if cfg.replicates > 1:
        from .replicates import run_replicates

        return run_replicates(cfg)
    with _distributed(cfg.device), cpu_threads(cfg.threads):
        return _train(cfg)


def _train(cfg: TrainConfig) -> dict:
    rank, world = _rank_world()
    device = _resolve_device(cfg.device)
    out = _Outputs(cfg)
    ds = load_dataset(cfg.data)
    _check_data(ds, cfg)
    split, description = build_trainable(cfg, len(ds.task_names))
    split.to(device)
    n_total = sum(p.numel() for p in split.parameters())
    n_train = sum(p.numel() for p in split.parameters() if p.requires_grad)
    log.info(f"data: {ds.source or 'embedded synthetic dataset'}: {len(ds)} sequences of "
             f"{ds.seq_len} bp, {len(ds.task_names)} tasks; "
             + ", ".join(f"{s} {int((ds.split == s).sum())}" for s in ("train", "val", "test")))
    log.info(f"model: {cfg.model}; backbone: {description}")
    log.info(f"parameters: {n_train:,} trainable of {n_total:,}; device {device}, "
             f"{world} process(es)")

    tokens = ds.tokens
    if cfg.frozen_cache:
        t0 = time.perf_counter()
        cache = FrozenCache(split, tokens, cfg.eval_batch_size, device, cfg.cache_dtype,
                            cfg.frozen_cache_dir)
        features = cache.__getitem__
        log.info(f"frozen-layer cache: {tuple(cache.data.shape)} {cfg.cache_dtype}, "
                 f"{cache.source} in {time.perf_counter() - t0:.1f} s")
    else:
        all_ids = torch.from_numpy(tokens.astype(np.int64))

        def features(index):
            return split.features(all_ids[index].to(device))

    labels = torch.from_numpy(ds.labels)
    train_idx, val_idx, test_idx = (torch.from_numpy(np.flatnonzero(ds.split == s))
                                    for s in ("train", "val", "test"))
    loss_fn, probs_fn = loss_functions(cfg.loss, cfg.pos_weight, device)
    top = _Top(split)
    ddp = (nn.parallel.DistributedDataParallel(top, device_ids=[device] if device.type == "cuda"
                                               else None) if world > 1 else top)
    optimizer = torch.optim.AdamW(
        [{k: v for k, v in g.items() if k != "names"} | {"initial_lr": g["lr"]} for g in
         param_groups(split.model, cfg.lr, cfg.head_lr, cfg.weight_decay)], betas=(0.9, 0.95))
    steps_per_epoch = len(epoch_batches(len(train_idx), cfg.batch_size, 0, 0, 0, world))
    total_steps = cfg.epochs * steps_per_epoch
    warmup = round(cfg.warmup_frac * total_steps)
    autocast = _autocast(device)

    state = {"epoch": 0, "history": [], "best_score": None, "best_epoch": None, "bad_epochs": 0,
             "task_losses": None}
    if cfg.resume:
        state = _load_resume(out.last, cfg, split, optimizer, device)
        log.info(f"resumed from {out.last} after epoch {state['epoch']}")
    task_weights = TaskWeights(cfg.task_focus, state["task_losses"])
    step_fn = _Stepper(cfg, ddp, optimizer, features, labels, train_idx, loss_fn, task_weights,
                       lr_factor_at=lambda step: lr_factor(step, total_steps, warmup,
                                                           cfg.min_lr_ratio),
                       n_strands=split.n_strands, device=device, autocast=autocast)
    try:
        for epoch in range(state["epoch"], cfg.epochs):
            if state["bad_epochs"] >= cfg.patience:
                break
            split.train()
            t0 = time.perf_counter()
            loss_sum, seen = step_fn.epoch(epoch, first_step=epoch * steps_per_epoch)
            train_seconds = time.perf_counter() - t0
            probs = _predict(split, features, val_idx, cfg.eval_batch_size, probs_fn, autocast)
            metrics = compute_metrics(ds.labels[val_idx.numpy()], probs, ds.task_names, "val")
            row = {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1),
                   "train_seconds": round(train_seconds, 2),
                   "train_seq_per_s": round(seen / train_seconds, 1), **metrics}
            state["task_losses"] = task_weights.state()
            weights = task_weights.current()
            if weights is not None and len(weights) == len(ds.task_names):
                row |= {f"task_weight.{t}": round(w, 4) for t, w in zip(ds.task_names, weights)}
            state["history"].append(row)
            score = metrics["val.macro_auroc"]
            score = -math.inf if score is None else score
            improved = state["best_score"] is None or score > state["best_score"]
            if improved:
                state.update(best_score=score, best_epoch=epoch + 1, bad_epochs=0)
                if out.writer:
                    save_finetuned(out.best, split.model, ds.task_names, extra={
                        "config": cfg.to_dict(), "epoch": epoch + 1, "metrics": metrics})
            else:
                state["bad_epochs"] += 1
            state["epoch"] = epoch + 1
            log.info(f"epoch {epoch + 1}: loss {row['train_loss']:.4f}, "
                     f"{row['train_seq_per_s']} seq/s, val macro auROC {_fmt(score)}"
                     + (" (best)" if improved else ""))
            if out.writer:
                plots.plot_roc(ds.labels[val_idx.numpy()], probs, ds.task_names,
                               out.plots / f"epoch{epoch + 1}_roc.png",
                               title=f"validation ROC, epoch {epoch + 1}")
                out.history_csv(state["history"])
                _save_resume(out.last, cfg, split, optimizer, state)
    finally:
        del ddp, top, step_fn
        gc.collect()
    return _finish(cfg, out, ds, split, features, probs_fn, state, (test_idx, val_idx),
                   {"trainable_params": n_train, "total_params": n_total,
                    "backbone": description, "world_size": world})


def _autocast(device):
    """bf16 autocast on CUDA, plain fp32 elsewhere."""
    return (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
            else contextlib.nullcontext())


def _fmt(x):
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.4f}"


def _finish(cfg, out, ds, split, features, probs_fn, state, indices, info) -> dict:
    """Reload the best epoch, evaluate val and test, write metrics.json, dist_EPI.png, config."""
    test_idx, val_idx = indices
    if dist.is_initialized():
        dist.barrier()
    best = torch.load(out.best, map_location="cpu", weights_only=True)
    split.model.load_state_dict(best["state_dict"])
    metrics = {"model": cfg.model, "best_epoch": state["best_epoch"],
               "epochs_run": state["epoch"], **info}
    autocast = _autocast(next(split.parameters()).device)
    val_probs = _predict(split, features, val_idx, cfg.eval_batch_size, probs_fn, autocast)
    metrics.update(compute_metrics(ds.labels[val_idx.numpy()], val_probs, ds.task_names, "val"))
    if len(test_idx):
        test_probs = _predict(split, features, test_idx, cfg.eval_batch_size, probs_fn, autocast)
        metrics.update(compute_metrics(ds.labels[test_idx.numpy()], test_probs, ds.task_names,
                                       "test"))
    metrics["history"] = state["history"]
    if out.writer:
        which, idx, probs = (("test", test_idx, test_probs) if len(test_idx)
                             else ("val", val_idx, val_probs))
        plots.plot_score_distributions(ds.labels[idx.numpy()], probs, ds.task_names,
                                       out.plots / "dist_EPI.png",
                                       title=f"predicted probabilities ({which} split, best epoch)")
        out.write_text("metrics.json", json.dumps(metrics, indent=2) + "\n")
        out.write_text("train_config.yaml", _config_yaml(cfg))
        if cfg.export_hf:
            if cfg.model != "caduceus":
                raise InputError("--export-hf: only a fine-tuned Caduceus is exported")
            export_hf_folder(split.model, ds.task_names, cfg.export_hf)
    log.info(f"best epoch {state['best_epoch']}: val macro auROC {_fmt(metrics['val.macro_auroc'])}"
             f", test macro auROC {_fmt(metrics.get('test.macro_auroc'))}")
    return metrics


# ---------------------------------------------------------------------------------------------
# Resume
# ---------------------------------------------------------------------------------------------
_NOT_COMPARED = {"resume", "patience", "eval_batch_size", "out_dir", "plots_dir", "export_hf",
                 "device", "threads", "frozen_cache", "frozen_cache_dir", "replicates"}


def _save_resume(path, cfg, split, optimizer, state):
    payload = {"state_dict": split.model.state_dict(), "optimizer": optimizer.state_dict(),
               "config": cfg.to_dict(), **state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _load_resume(path, cfg, split, optimizer, device) -> dict:
    if not path.exists():
        raise InputError(f"--resume: {path} not found (no earlier run in --out-dir)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise InputError(f"{path}: not a readable checkpoint ({type(err).__name__})") from None
    now = cfg.to_dict()
    changed = sorted(k for k in now if k not in _NOT_COMPARED and ckpt["config"].get(k) != now[k])
    if changed:
        raise InputError(f"--resume: {path} was written with other settings: "
                         + ", ".join(f"{k} {ckpt['config'].get(k)!r} -> {now[k]!r}" for k in changed))
    split.model.load_state_dict(ckpt["state_dict"])
    optimizer.load_state_dict(ckpt["optimizer"])
    for s in optimizer.state.values():
        for k, v in s.items():
            if torch.is_tensor(v) and k != "step":
                s[k] = v.to(device)
    return {k: ckpt[k] for k in ("epoch", "history", "best_score", "best_epoch", "bad_epochs",
                                 "task_losses")}
