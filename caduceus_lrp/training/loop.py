"""One fine-tuning run: build the model, train with early stopping, evaluate, write the outputs.

Glossary: N sequences, b batch, S strands, l length, c feature width, t tasks.
The loop trains `top(features)` of a split model (`frozen_cache.SplitCaduceus` or the CNN):
features come from the frozen-layer cache or are computed per batch. Under torchrun each rank
takes its slice of every global batch, the loss is scaled so DDP's gradient average equals the
gradient of the global-batch mean, and only rank 0 writes files. `run.run_training` is the
library entry (it adds replicates); `train_once` is one run.
"""
from __future__ import annotations

import csv
import gc
import io
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from tqdm import tqdm

from .. import plots
from ..checkpoint import load_weights, save_finetuned
from ..cnn import CNNConfig, OneHotCNN
from ..config import architecture_config
from ..data import SequenceDataset, load_dataset
from ..epi_head import CaduceusClassifier
from ..errors import InputError
from ..io_utils import atomic_path
from ..model import build_caduceus, load_caduceus
from ..resources import demo_backbone
from .config import TrainConfig
from .evaluation import chance_p_value, compute_metrics, predict
from .frozen_cache import FrozenCache, SplitCaduceus
from .losses import TaskWeights, loss_functions
from .optim import adamw, epoch_batches, lr_factor
from .pretrain import pretrained_backbone
from .runtime import all_sum, autocast, cpu_threads, distributed, rank_world, resolve_device

__all__ = ["backbone_source", "load_backbone", "build_trainable", "check_data", "remove_epoch_figures", "train_once"]

log = logging.getLogger("caduceus_lrp.training")


# ---------------------------------------------------------------------------------------------
# Building the model
# ---------------------------------------------------------------------------------------------
def backbone_source(cfg: TrainConfig) -> tuple[str | None, str]:
    """(the folder or Hugging Face id of the backbone, why it is the one): --pretrained; else,
    unless --arch, the demo backbone for the embedded dataset (or with --pretrain-steps 0) and for
    other data a backbone pretrained on their training sequences (built here once, cached)."""
    if cfg.arch:
        return None, (f"RANDOMLY INITIALISED {cfg.arch} (official init, seed {cfg.train_seed}; "
                      "no --pretrained checkpoint)")
    if cfg.pretrained:
        return cfg.pretrained, f"pretrained {cfg.pretrained} (--pretrained)"
    if not cfg.data.data or cfg.pretrain_steps == 0:
        why = "the embedded dataset" if not cfg.data.data else "--pretrain-steps 0"
        return str(demo_backbone()), (f"the demo backbone {demo_backbone()} ({why}; pretrained "
                                      "on the embedded dataset's training sequences)")
    folder = pretrained_backbone(cfg.data, cfg.pretrain_steps, cfg.threads)
    return str(folder), (f"{folder}: pretrained by masked-language modelling on this dataset's "
                         f"training sequences ({cfg.pretrain_steps} steps), as no --pretrained was "
                         "given and the data are not the embedded dataset")


def load_backbone(cfg: TrainConfig):
    """(CaduceusForMaskedLM, description) of the run's backbone (`backbone_source`)."""
    source, description = backbone_source(cfg)
    if source is None:
        return build_caduceus(architecture_config(cfg.arch), seed=cfg.train_seed), description
    return load_caduceus(source), description


def build_trainable(cfg: TrainConfig, task_names) -> tuple[nn.Module, str]:
    """(the split model the loop trains, a description of its backbone)."""
    if cfg.model == "cnn":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.train_seed)
            return OneHotCNN(CNNConfig(cfg.cnn_filters, cfg.cnn_width), task_names), "none (CNN)"
    lm, description = load_backbone(cfg)
    classifier = CaduceusClassifier.from_backbone(lm.caduceus, task_names, cfg.pooling,
                                                  seed=cfg.train_seed)
    classifier.caduceus.backbone.gradient_checkpointing = cfg.gradient_checkpointing
    return SplitCaduceus(classifier, cfg.unfreeze_layers), description


class _Top(nn.Module):
    """forward = the split model's `top`, so DDP wraps exactly the trained map."""

    def __init__(self, split):
        super().__init__()
        self.split = split

    def forward(self, features):
        return self.split.top(features)


# ---------------------------------------------------------------------------------------------
# Outputs and checks
# ---------------------------------------------------------------------------------------------
class _Outputs:
    """The files of a run; writes only on rank 0."""

    def __init__(self, cfg: TrainConfig):
        self.out, self.plots = Path(cfg.out_dir), Path(cfg.plots_dir)
        self.writer = rank_world()[0] == 0
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


def check_data(ds: SequenceDataset, cfg: TrainConfig):
    """InputError when the data cannot train this config: an empty train or val split, labels
    that do not fit the loss, a --pos-weight of another length."""
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


def _fmt(x):
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.4f}"


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------
class _Stepper:
    """The optimisation steps of one epoch: batches, RC strand choice (ph), schedule, task
    weights, loss scaled for DDP, NaN check, clipping."""

    def __init__(self, cfg, model, optimizer, features, labels, train_idx, loss_fn, task_weights,
                 lr_factor_at, n_strands, device, autocast_ctx):
        self.cfg, self.model, self.optimizer = cfg, model, optimizer
        self.features, self.labels, self.train_idx = features, labels, train_idx
        self.loss_fn, self.task_weights = loss_fn, task_weights
        self.lr_factor_at, self.n_strands = lr_factor_at, n_strands
        self.device, self.autocast = device, autocast_ctx

    def epoch(self, epoch: int, first_step: int) -> tuple[float, int]:
        """Train one epoch; (summed per-sequence loss, unweighted mean over tasks, and
        sequences) over all ranks."""
        cfg, (rank, world) = self.cfg, rank_world()
        n = len(self.train_idx)
        gen = torch.Generator().manual_seed(cfg.train_seed * 100_003 + epoch + 7)
        strands = torch.randint(0, self.n_strands, (n,), generator=gen)   # RC augmentation (ph)
        batches = epoch_batches(n, cfg.batch_size, cfg.train_seed, epoch, rank, world)
        global_sizes = [len(b) for b in epoch_batches(n, cfg.batch_size, cfg.train_seed, epoch)]
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        seen, t0 = 0, time.perf_counter()
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
            labels = self.labels[rows].to(self.device, non_blocking=True)
            per_task = self.loss_fn(logits.float(), labels)                               # (b, k)
            weights = self.task_weights(per_task.detach(), global_sizes[step])           # (k,)
            # DDP averages gradients over ranks: this makes it the global-batch mean
            loss = (per_task * weights).mean(1).sum() * (world / global_sizes[step])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.optimizer.step()
            loss_sum += per_task.detach().mean(1).sum()
            seen += len(rows)
            if bar.disable is False:  # a terminal: the running loss costs one host sync per step
                bar.set_postfix(loss=f"{loss_sum.item() / seen:.4f}",
                                seq_s=f"{seen * world / (time.perf_counter() - t0):.1f}")
        total = loss_sum.item()
        if not math.isfinite(total):
            raise FloatingPointError(f"epoch {epoch + 1}: the training loss is {total}; training "
                                     "stopped (lower --lr / --head-lr, or check the labels)")
        total, seen = all_sum([total, seen], self.device)
        return total, int(seen)


def train_once(cfg: TrainConfig) -> dict:
    """One fine-tuning run (cfg.replicates is not read): train, write the outputs, return the
    final metrics (`val.macro_auroc`, `test.macro_auroc`, per task, ...)."""
    with distributed(cfg.device), cpu_threads(cfg.threads):
        return _train(cfg)


def remove_epoch_figures(plots_dir):
    """Delete the per-epoch ROC figures (epoch{N}_roc.png) an earlier run left in plots_dir, so
    that a new run's are not mixed with them."""
    for path in Path(plots_dir).glob("epoch*_roc.png"):  # what the summary shows as epochs
        path.unlink()


def _features(cfg, split, tokens, device):
    """The loop's feature function rows -> (b, S, l, c): the frozen-layer cache, or the frozen
    part run per batch."""
    if cfg.frozen_cache:
        t0 = time.perf_counter()
        cache = FrozenCache(split, tokens, cfg.eval_batch_size, device, cfg.cache_dtype,
                            cfg.frozen_cache_dir)
        log.info(f"frozen-layer cache: {tuple(cache.data.shape)} {cfg.cache_dtype}, "
                 f"{cache.source} in {time.perf_counter() - t0:.1f} s")
        return cache.__getitem__
    all_ids = torch.from_numpy(tokens.astype(np.int64))
    return lambda index: split.features(all_ids[index].to(device))


def _train(cfg: TrainConfig) -> dict:
    rank, world = rank_world()
    device = resolve_device(cfg.device)
    out = _Outputs(cfg)
    ds = load_dataset(cfg.data)
    check_data(ds, cfg)
    split, description = build_trainable(cfg, ds.task_names)
    split.to(device)
    n_total = sum(p.numel() for p in split.parameters())
    n_train = sum(p.numel() for p in split.parameters() if p.requires_grad)
    log.info(f"data: {ds.source or 'embedded synthetic dataset'}: {len(ds)} sequences of "
             f"{ds.seq_len} bp, {len(ds.task_names)} tasks; "
             + ", ".join(f"{s} {int((ds.split == s).sum())}" for s in ("train", "val", "test")))
    log.info(f"model: {cfg.model}; backbone: {description}")
    log.info(f"parameters: {n_train:,} trainable of {n_total:,}; device {device}, "
             f"{world} process(es)")

    features = _features(cfg, split, ds.tokens, device)
    labels = torch.from_numpy(ds.labels)
    train_idx, val_idx, test_idx = (torch.from_numpy(np.flatnonzero(ds.split == s))
                                    for s in ("train", "val", "test"))
    loss_fn, probs_fn = loss_functions(cfg.loss, cfg.pos_weight, device)
    top = _Top(split)
    ddp = (nn.parallel.DistributedDataParallel(top, device_ids=[device] if device.type == "cuda"
                                               else None) if world > 1 else top)
    optimizer = adamw(split.model, cfg.lr, cfg.head_lr, cfg.weight_decay)
    steps_per_epoch = len(epoch_batches(len(train_idx), cfg.batch_size, 0, 0, 0, world))
    total_steps = cfg.epochs * steps_per_epoch
    warmup = round(cfg.warmup_frac * total_steps)
    autocast_ctx = autocast(device)

    state = {"epoch": 0, "history": [], "best_score": None, "best_epoch": None, "bad_epochs": 0,
             "task_losses": None}
    if cfg.resume:
        state = _load_resume(out.last, cfg, split, optimizer, device)
        log.info(f"resumed from {out.last} after epoch {state['epoch']}")
    elif out.writer:
        remove_epoch_figures(out.plots)
    task_weights = TaskWeights(cfg.task_focus, state["task_losses"])
    step_fn = _Stepper(cfg, ddp, optimizer, features, labels, train_idx, loss_fn, task_weights,
                       lr_factor_at=lambda step: lr_factor(step, total_steps, warmup,
                                                           cfg.min_lr_ratio),
                       n_strands=split.n_strands, device=device, autocast_ctx=autocast_ctx)
    extra = {"trainable_params": n_train, "total_params": n_total, "backbone": description,
             "world_size": world}
    try:
        for epoch in range(state["epoch"], cfg.epochs):
            if state["bad_epochs"] >= cfg.patience:
                break
            _epoch(cfg, epoch, steps_per_epoch, split, step_fn, features, val_idx, ds, probs_fn,
                   autocast_ctx, task_weights, state, out, optimizer)
    finally:
        del ddp, top, step_fn
        gc.collect()
    return _finish(cfg, out, ds, split, features, probs_fn, state, (test_idx, val_idx), extra)


def _epoch(cfg, epoch, steps_per_epoch, split, step_fn, features, val_idx, ds, probs_fn,
           autocast_ctx, task_weights, state, out, optimizer):
    """Train and validate one epoch; keep the best model and the resume checkpoint."""
    split.train()
    t0 = time.perf_counter()
    loss_sum, seen = step_fn.epoch(epoch, first_step=epoch * steps_per_epoch)
    train_seconds = time.perf_counter() - t0
    probs = predict(split, features, val_idx, cfg.eval_batch_size, probs_fn, autocast_ctx)
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
            save_finetuned(out.best, split.model, extra={
                "config": cfg.to_dict(), "epoch": epoch + 1, "metrics": metrics})
    else:
        state["bad_epochs"] += 1
    state["epoch"] = epoch + 1
    log.info(f"epoch {epoch + 1}: loss {row['train_loss']:.4f}, "
             f"{row['train_seq_per_s']} seq/s, val macro auROC {_fmt(score)}"
             + (" (best)" if improved else ""))
    if out.writer:
        plots.plot_roc(ds.labels[val_idx.numpy()], probs, ds.task_names,
                       f"validation ROC curves per task, epoch {epoch + 1}",
                       out.plots / f"epoch{epoch + 1}_roc.png")
        out.history_csv(state["history"])
        _save_resume(out.last, cfg, split, optimizer, state)


def _finish(cfg, out, ds, split, features, probs_fn, state, indices, info) -> dict:
    """Reload the best epoch, evaluate val and test, write metrics.json, dist_EPI.png, config."""
    test_idx, val_idx = indices
    if dist.is_initialized():
        dist.barrier()
    best = load_weights(out.best)
    split.model.load_state_dict(best["state_dict"])
    metrics = {"model": cfg.model, "best_epoch": state["best_epoch"],
               "epochs_run": state["epoch"], **info}
    autocast_ctx = autocast(next(split.parameters()).device)
    val_probs = predict(split, features, val_idx, cfg.eval_batch_size, probs_fn, autocast_ctx)
    metrics.update(compute_metrics(ds.labels[val_idx.numpy()], val_probs, ds.task_names, "val"))
    metrics["val.chance_p"] = chance_p_value(ds.labels[val_idx.numpy()], val_probs)
    if len(test_idx):
        test_probs = predict(split, features, test_idx, cfg.eval_batch_size, probs_fn,
                             autocast_ctx)
        metrics.update(compute_metrics(ds.labels[test_idx.numpy()], test_probs, ds.task_names,
                                       "test"))
    metrics["history"] = state["history"]
    if out.writer:
        which, idx, probs = (("test", test_idx, test_probs) if len(test_idx)
                             else ("val", val_idx, val_probs))
        plots.plot_score_distributions(
            ds.labels[idx.numpy()], probs, ds.task_names,
            f"predicted probabilities of positives and negatives ({which} split, best epoch)",
            out.plots / "dist_EPI.png")
        out.write_text("metrics.json", json.dumps(metrics, indent=2) + "\n")
        out.write_text("train_config.yaml", cfg.to_yaml())
        if cfg.export_hf:
            if cfg.model != "caduceus":
                raise InputError("--export-hf: only a fine-tuned Caduceus is exported")
            split.model.save_pretrained(cfg.export_hf)
    log.info(f"best epoch {state['best_epoch']}: val macro auROC {_fmt(metrics['val.macro_auroc'])}"
             f", test macro auROC {_fmt(metrics.get('test.macro_auroc'))}")
    return metrics


# ---------------------------------------------------------------------------------------------
# Resume
# ---------------------------------------------------------------------------------------------
_NOT_COMPARED = {"resume", "patience", "eval_batch_size", "out_dir", "plots_dir", "export_hf",
                 "device", "threads", "frozen_cache", "frozen_cache_dir", "replicates",
                 "chance_rounds"}


def _save_resume(path, cfg, split, optimizer, state):
    payload = {"state_dict": split.model.state_dict(), "optimizer": optimizer.state_dict(),
               "config": cfg.to_dict(), **state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _load_resume(path, cfg, split, optimizer, device) -> dict:
    if not path.exists():
        raise InputError(f"--resume: {path} not found (no earlier run in --out-dir)")
    ckpt = load_weights(path)
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
