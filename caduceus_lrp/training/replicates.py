"""Replicates: one fine-tuning run repeated with consecutive seeds, keeping the best on validation.

Small models on weak motifs can learn a task in a seed-dependent jump, or only partly; training
a few replicates and keeping the one with the best validation macro auROC is the usual remedy. Replicate k trains with seed
`train_seed + k` into `out_dir/replicates/seed-S/` (its own checkpoints, metrics, plots and a
train.log); the chosen one's files are then copied to `out_dir` and `plots_dir`, where a single
run puts them;
`metrics.json` there gains a `replicates` table and `train_config.yaml` there is the replicated
run's. On CPU the replicates run in parallel processes, at most one per core, each with `threads`
threads; on CUDA one after the other.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ..checkpoint import load_finetuned
from ..errors import InputError
from ..io_utils import atomic_path
from .loop import remove_epoch_figures, train_once
from .runtime import cores_each, resolve_device, torchrun_world

__all__ = ["run_replicates"]

log = logging.getLogger(__name__)


def _replicate_configs(cfg) -> list:
    root = Path(cfg.out_dir) / "replicates"
    return [dataclasses.replace(cfg, replicates=1, train_seed=seed,
                                out_dir=str(root / f"seed-{seed}"),
                                plots_dir=str(root / f"seed-{seed}" / "plots"), export_hf=None)
            for seed in range(cfg.train_seed, cfg.train_seed + cfg.replicates)]


def _train_logged(cfg, to_terminal: bool) -> dict:
    """One replicate in a worker process: its log goes to out_dir/train.log (and, for the first
    replicate, also to the terminal with its progress bars)."""
    log_path = Path(cfg.out_dir) / "train.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handlers = [logging.FileHandler(log_path, mode="a" if cfg.resume else "w")]
    if to_terminal:
        handlers.append(logging.StreamHandler())
    else:
        sys.stderr = open(log_path, "a", buffering=1)  # progress bars of the others: their log
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=handlers, force=True)
    return train_once(cfg)


def _copy_files(src: Path, dst: Path):
    """Copy the plain files of src into dst, each atomically."""
    for path in sorted(p for p in src.iterdir() if p.is_file() and p.name != "train.log"):
        with atomic_path(dst / path.name) as tmp:
            shutil.copyfile(path, tmp)


def run_replicates(cfg) -> dict:
    """Train cfg.replicates seeds; copy the best (validation macro auROC) to cfg.out_dir and
    cfg.plots_dir; return its metrics with `replicates` [{seed, val.macro_auroc}] and
    `chosen_seed` added."""
    if torchrun_world() > 1:
        raise InputError("--replicates: use either torchrun or replicates (give --replicates 1 "
                         "under torchrun)")
    configs = _replicate_configs(cfg)
    on_cpu = resolve_device(cfg.device).type == "cpu"
    jobs = min(len(configs), os.cpu_count() or 1) if on_cpu else 1
    if on_cpu and cfg.threads == 0:
        configs = [dataclasses.replace(c, threads=cores_each(jobs))
                   for c in configs]
    log.info(f"{len(configs)} replicates (seeds {configs[0].train_seed}-{configs[-1].train_seed}),"
             f" {jobs} at a time; each under {Path(cfg.out_dir) / 'replicates'}")
    if jobs == 1:
        results = [train_once(c) for c in configs]
    else:
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_train_logged, configs,
                                    [k == 0 for k in range(len(configs))]))
    scores = [r["val.macro_auroc"] if r["val.macro_auroc"] is not None else -1.0 for r in results]
    best = max(range(len(configs)), key=lambda k: scores[k])
    chosen = configs[best]
    _copy_files(Path(chosen.out_dir), Path(cfg.out_dir))
    remove_epoch_figures(cfg.plots_dir)  # an earlier run's, possibly more epochs than this one's
    _copy_files(Path(chosen.plots_dir), Path(cfg.plots_dir))
    metrics = results[best] | {
        "chosen_seed": chosen.train_seed,
        "replicates": [{"seed": c.train_seed, "val.macro_auroc": r["val.macro_auroc"]}
                       for c, r in zip(configs, results)]}
    with atomic_path(Path(cfg.out_dir) / "metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    with atomic_path(Path(cfg.out_dir) / "train_config.yaml") as tmp:
        tmp.write_text(cfg.to_yaml())  # reruns all replicates; the kept one's is beside it
    if cfg.export_hf:
        load_finetuned(Path(cfg.out_dir) / "best_model.pt").save_pretrained(cfg.export_hf)
    log.info("replicates, val macro auROC: " + ", ".join(
        f"seed {c.train_seed} {s:.4f}" for c, s in zip(configs, scores))
        + f"; kept seed {chosen.train_seed}")
    return metrics
