"""Replicates: one fine-tuning run repeated with consecutive seeds, keeping the best on validation.

Small models on weak motifs can learn a task in a seed-dependent jump, or only partly; training
a few replicates and keeping the one with the best validation macro auROC is the usual remedy. Replicate k trains with seed
`train_seed + k` into `out_dir/replicates/seed-S/` (its own checkpoints, metrics, plots and a
train.log); the chosen one's files are then copied to `out_dir` and `plots_dir`, where a single
run puts them;
`metrics.json` there gains a `replicates` table and `train_config.yaml` there is the replicated
run's. On CPU the replicates run in parallel processes, at most one per core, each with `threads`
threads; on CUDA one after the other.

On small data with sparse motifs a replicate can stay on the base-rate loss plateau for good
(docs/recipe.md), and all of a run's replicates can. When the best replicate's validation macro
auROC cannot be told from chance (a label-permutation p-value, `evaluation.chance_p_value`), up
to `chance_rounds` further rounds of as many replicates train, with seeds 1000 apart per round
so that they are not the replicates of a run with a nearby train seed.
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
from .config import ROUND_SEED_STEP
from .evaluation import CHANCE_P
from .loop import remove_epoch_figures, train_once
from .runtime import cores_each, resolve_device, torchrun_world

__all__ = ["run_replicates"]

log = logging.getLogger(__name__)


def _replicate_configs(cfg, round_: int = 0) -> list:
    root = Path(cfg.out_dir) / "replicates"
    first = cfg.train_seed + ROUND_SEED_STEP * round_
    return [dataclasses.replace(cfg, replicates=1, train_seed=seed,
                                out_dir=str(root / f"seed-{seed}"),
                                plots_dir=str(root / f"seed-{seed}" / "plots"), export_hf=None)
            for seed in range(first, first + cfg.replicates)]


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


def _train_round(configs, on_cpu: bool, threads: int) -> list[dict]:
    """Train the replicates of one round: on CPU in parallel processes (one per core at most),
    else one after the other; their metrics in order."""
    jobs = min(len(configs), os.cpu_count() or 1) if on_cpu else 1
    if on_cpu and threads == 0:
        configs = [dataclasses.replace(c, threads=cores_each(jobs)) for c in configs]
    log.info(f"{len(configs)} replicates (seeds {configs[0].train_seed}-{configs[-1].train_seed}),"
             f" {jobs} at a time; each under {Path(configs[0].out_dir).parent}")
    if jobs == 1:
        return [train_once(c) for c in configs]
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(_train_logged, configs, [k == 0 for k in range(len(configs))]))


def _score(result: dict) -> float:
    return result["val.macro_auroc"] if result["val.macro_auroc"] is not None else -1.0


def _at_chance(result: dict) -> bool:
    """The validation macro auROC was tested (some task has both classes) and is at chance."""
    return result.get("val.chance_p") is not None and result["val.chance_p"] > CHANCE_P


def run_replicates(cfg) -> dict:
    """Train cfg.replicates seeds; while the best of all trained so far cannot be told from
    chance on validation (`evaluation.chance_p_value` above CHANCE_P), train up to
    cfg.chance_rounds further rounds of as many seeds. Copy the best (validation macro auROC) to
    cfg.out_dir and cfg.plots_dir; return its metrics with `chosen_seed`, `replicates`
    [{seed, val.macro_auroc, val.chance_p}] of the kept replicate's round (the ones the attribute
    step averages) and, after further rounds, `replicates_at_chance` of the rounds before it."""
    if torchrun_world() > 1:
        raise InputError("--replicates: use either torchrun or replicates (give --replicates 1 "
                         "under torchrun)")
    on_cpu = resolve_device(cfg.device).type == "cpu"
    rounds = []  # [(configs, results)]
    for round_ in range(cfg.chance_rounds + 1):
        configs = _replicate_configs(cfg, round_)
        rounds.append((configs, _train_round(configs, on_cpu, cfg.threads)))
        best = max((r for _, results in rounds for r in results), key=_score)
        if not _at_chance(best) or round_ == cfg.chance_rounds:
            break
        log.info(f"the best replicate so far (val macro auROC {_score(best):.4f}, permutation "
                 f"p = {best['val.chance_p']:.3f}) cannot be told from chance; training "
                 f"{cfg.replicates} more (round {round_ + 2} of at most {cfg.chance_rounds + 1})")
    kept_round, index = next((k, j) for k, (_, results) in enumerate(rounds)
                             for j, r in enumerate(results) if r is best)
    configs, results = rounds[kept_round]
    chosen = configs[index]
    if _at_chance(best):
        log.warning(f"the kept replicate (seed {chosen.train_seed}, val macro auROC "
                    f"{_score(best):.4f}) cannot be told from chance on validation")
    _copy_files(Path(chosen.out_dir), Path(cfg.out_dir))
    remove_epoch_figures(cfg.plots_dir)  # an earlier run's, possibly more epochs than this one's
    _copy_files(Path(chosen.plots_dir), Path(cfg.plots_dir))

    def table(pairs):
        return [{"seed": c.train_seed, "val.macro_auroc": r["val.macro_auroc"],
                 "val.chance_p": r.get("val.chance_p")} for c, r in pairs]
    metrics = best | {"chosen_seed": chosen.train_seed, "replicates": table(zip(configs, results))}
    if len(rounds) > 1:
        metrics["replicates_at_chance"] = table(
            (c, r) for k, (cs, rs) in enumerate(rounds) if k != kept_round for c, r in zip(cs, rs))
    with atomic_path(Path(cfg.out_dir) / "metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    with atomic_path(Path(cfg.out_dir) / "train_config.yaml") as tmp:
        tmp.write_text(cfg.to_yaml())  # reruns all replicates; the kept one's is beside it
    if cfg.export_hf:
        load_finetuned(Path(cfg.out_dir) / "best_model.pt").save_pretrained(cfg.export_hf)
    log.info("replicates, val macro auROC: " + ", ".join(
        f"seed {c.train_seed} {_score(r):.4f}" for cs, rs in rounds for c, r in zip(cs, rs))
        + f"; kept seed {chosen.train_seed}")
    return metrics
