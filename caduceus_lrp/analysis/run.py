"""`run_analysis`: every analysis on a trained model and its discovered motifs, the files they
write and the summary `analysis.json` (the pipeline's analysis step).

Files (under the run's modisco_files/ and plots/): `analysis/marginalization.tsv`,
`analysis/spacing_<A>_<B>.tsv`, `instances.tsv`, `analysis/instance_recovery.tsv` (with site
ground truth), `analysis/variants.tsv` (with --variants), `analysis/analysis.json`;
`plots/marginalization.png`, `plots/spacing_<A>_<B>.png`, `plots/variants.png`.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..attribute import checkpoint_data, load_ensemble, read_settings
from ..checkpoint import load_model
from ..data import GroundTruth, SequenceDataset, ground_truth_for, load_dataset
from ..errors import InputError
from ..explanation_model import task_index
from ..io_utils import atomic_path
from . import plots
from .config import AnalysisConfig, parse_pairs
from .instances import attribution_inputs, call_instances, instance_recovery, write_instances
from .marginalize import marginalize, task_names
from .sources import (Discovered, backgrounds, composite, default_motifs, discovered,
                      resolve_motif, safe_name)
from .spacing import focus_task, preferred, spacing_sweep
from .variants import read_variants, variant_effects

__all__ = ["ANALYSIS_DIR", "run_analysis", "run_spacing", "run_marginalization",
           "run_instances", "run_variants", "load_inputs", "choose_pairs", "co_occurring",
           "motifs_for", "causal_motifs", "write_table", "load_patterns_of"]

ANALYSIS_DIR = "analysis"  # under modisco_files
RELATIVE_EFFECT = 0.1  # a causal motif moves its task by at least this share of the largest


def load_inputs(model_path, data=None, ground_truth=None, device=None):
    """(model, dataset, ground truth or None, DataConfig) for the analysis commands: the
    checkpoint, the data it was trained on (or `data`), and `ground_truth` or the embedded
    dataset's."""
    model = load_model(model_path, device)
    data_cfg = checkpoint_data(model_path, data)
    return model, load_dataset(data_cfg), ground_truth_for(data_cfg, ground_truth), data_cfg


def write_table(table: pd.DataFrame, path) -> Path:
    """A TSV written atomically (floats with 6 significant digits)."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    return Path(path)


def load_patterns_of(modisco_dir, window=200, trim=0.3, q_threshold=0.05):
    """The discovered patterns of a modisco_files folder, or None when the motifs step has not
    written them."""
    if not (Path(modisco_dir) / f"modisco_windows_{window}bp.npz").is_file():
        return None
    return discovered(modisco_dir, window, trim, q_threshold)


def co_occurring(patterns: Discovered) -> tuple[str, str] | None:
    """The two positive patterns whose seqlets share the most sequences (None with fewer than
    two)."""
    sets = {n: set(p.example_idx.tolist()) for n, p in patterns.patterns.items()
            if n.startswith("pos_patterns.")}
    pairs = list(itertools.combinations(sets, 2))
    if not pairs:
        return None
    return max(pairs, key=lambda ab: len(sets[ab[0]] & sets[ab[1]]))


def choose_pairs(tokens, tasks, patterns: Discovered | None, truth: GroundTruth | None,
                 log=print) -> list:
    """[(Motif A, Motif B)]: the `--pairs` given, else each cooperative task's (A+B) parts
    that resolve to motifs, else the two most co-occurring patterns."""
    if tokens:
        return [(resolve_motif(a, patterns, truth), resolve_motif(b, patterns, truth))
                for a, b in parse_pairs(tokens)]
    pairs = []
    for task in tasks:
        parts = task.split("+")
        if len(parts) != 2:
            continue
        try:
            pairs.append(tuple(resolve_motif(p, patterns, truth) for p in parts))
        except InputError as err:
            log(f"spacing: {task}: {err}; skipped")
    if not pairs and patterns is not None:
        found = co_occurring(patterns)
        pairs = [(patterns.motif(found[0]), patterns.motif(found[1]))] if found else []
    return pairs


def motifs_for(cfg: AnalysisConfig, patterns: Discovered | None,
               truth: GroundTruth | None) -> list:
    """The motifs to marginalize: cfg.marginalize_motifs resolved, else `default_motifs`."""
    if cfg.marginalize_motifs:
        return [resolve_motif(s, patterns, truth) for s in cfg.marginalize_motifs]
    return default_motifs(patterns, truth)


def causal_motifs(table: pd.DataFrame, task: str) -> list[dict]:
    """The motifs a task relies on: interval excluding 0 and |effect| at least RELATIVE_EFFECT
    of the task's largest, by effect (largest first)."""
    rows = table[table["task"] == task]
    if not len(rows):
        return []
    largest = rows["effect"].abs().max()
    keep = rows[((rows["ci_low"] > 0) | (rows["ci_high"] < 0))
                & (rows["effect"].abs() >= RELATIVE_EFFECT * largest)]
    return [{"motif": r["motif"], "source": r["source"], "match": r["match"],
             "effect": float(r["effect"]), "ci_low": float(r["ci_low"]),
             "ci_high": float(r["ci_high"])}
            for r in keep.sort_values("effect", ascending=False).to_dict("records")]


def run_spacing(model, dataset, cfg: AnalysisConfig, pairs, modisco_dir, plots_dir,
                device=None, log=print) -> list[dict]:
    """The spacing sweep of each pair [(Motif A, Motif B)]: `analysis/spacing_<A>_<B>.tsv` and
    `plots/spacing_<A>_<B>.png`; returns per pair its motifs, focus task, files and preferred
    arrangement (largest effect) and peak interaction."""
    if not pairs:
        return []
    out = Path(modisco_dir) / ANALYSIS_DIR
    tasks = task_names(model)
    background = backgrounds(dataset, cfg.marginalize_background, cfg.spacing_backgrounds,
                             cfg.analysis_seed)
    results = []
    for a, b in pairs:
        log(f"spacing: {a.name} and {b.name}, 0..{cfg.max_spacing} bp, 4 orientations, "
            f"{len(background)} backgrounds")
        table = spacing_sweep(model, a, b, background, range(cfg.max_spacing + 1),
                              cfg.analysis_batch_size, device)
        task = focus_task(table, a, b, tasks)
        stem = f"spacing_{safe_name(a.name)}_{safe_name(b.name)}"
        write_table(table, out / f"{stem}.tsv")
        plots.plot_spacing(table, a.name, b.name, task, path=Path(plots_dir) / f"{stem}.png")
        results.append({"a": a, "b": b, "task": task, "table": f"{stem}.tsv",
                        "figure": f"{stem}.png", "preferred": preferred(table, task),
                        "peak_interaction": preferred(table, task, "interaction")})
    return results


def run_marginalization(model, dataset, cfg: AnalysisConfig, motifs, modisco_dir, plots_dir,
                        device=None, log=print) -> pd.DataFrame:
    """Marginalization of `motifs` (duplicates by name dropped) into cfg's backgrounds:
    `analysis/marginalization.tsv` and `plots/marginalization.png`; returns the table."""
    motifs = list({m.name: m for m in motifs}.values())
    if not motifs:
        raise InputError("marginalization: no motifs (no patterns, ground truth or "
                         "--marginalize-motifs)")
    background = backgrounds(dataset, cfg.marginalize_background, cfg.n_backgrounds,
                             cfg.analysis_seed)
    log(f"marginalization: {len(motifs)} motifs into {len(background)} backgrounds "
        f"({cfg.marginalize_background}, both strands)")
    table = marginalize(model, motifs, background, cfg.analysis_batch_size, device)
    write_table(table, Path(modisco_dir) / ANALYSIS_DIR / "marginalization.tsv")
    plots.plot_marginalization(table, path=Path(plots_dir) / "marginalization.png")
    return table


def run_instances(dataset, cfg: AnalysisConfig, patterns, truth, attributions, split,
                  modisco_dir, log=print, model_path=None, data_cfg=None, device=None):
    """Instances in the attribute step's files (`attribution_inputs`): `instances.tsv` and,
    with site ground truth, `analysis/instance_recovery.tsv`; returns (instances, recovery or
    None, {task: ids searched}). Rounds after the first attribute again with the checkpoint at
    `model_path` (and its replicates) as the attributions' settings.json records."""
    inputs = attribution_inputs(attributions, dataset, split)
    ensemble, rounds = None, cfg.instance_rounds
    if rounds > 1:
        settings = read_settings(attributions)
        if settings is None or model_path is None:
            log(f"instances: one round ({attributions} records no attribution settings or no "
                "model was given; rerun the attribute step for more)")
            rounds = 1
        else:
            ensemble = load_ensemble(model_path, settings, data_cfg, device)
    parts = []
    for task, (ids, ohe, hyp) in inputs.items():
        attribute = None
        if ensemble is not None:
            k = task_index(ensemble.models[0], task)
            attribute = lambda x, k=k: ensemble.explain(x, k)[0].hypothetical  # noqa: E731
        parts.append(call_instances(ohe, hyp, ids, task, patterns, None, cfg.instance_threshold,
                                    cfg.instance_flank, cfg.instance_max_p, attribute=attribute,
                                    rounds=rounds))
    table = pd.concat(parts, ignore_index=True)
    write_instances(table, Path(modisco_dir) / "instances.tsv")
    later = int((table["round"] > 1).sum()) if len(table) else 0
    log(f"instances: {len(table)} in {sum(len(v[0]) for v in inputs.values())} attributed "
        f"sequences ({later} found after replacing stronger sites by N)")
    analysed = {t: v[0] for t, v in inputs.items()}
    recovery = None
    if truth is not None and truth.sites is not None:
        recovery = instance_recovery(table, truth, analysed)
        write_table(recovery, Path(modisco_dir) / ANALYSIS_DIR / "instance_recovery.tsv")
    return table, recovery, analysed


def run_variants(model, dataset, cfg: AnalysisConfig, modisco_dir, plots_dir, genome=None,
                 device=None, log=print) -> pd.DataFrame:
    """Variant effects of cfg.variants: `analysis/variants.tsv` and `plots/variants.png`."""
    if not cfg.variants:
        raise InputError("--variants: give a variant table or VCF")
    variants = read_variants(cfg.variants, dataset, genome, dataset.seq_len)
    table = variant_effects(model, variants, cfg.variant_method, cfg.variant_flank,
                            cfg.analysis_batch_size, device)
    write_table(table, Path(modisco_dir) / ANALYSIS_DIR / "variants.tsv")
    plots.plot_variants(table, variants.tracks, cfg.top_variants,
                        path=Path(plots_dir) / "variants.png")
    log(f"variants: {len(variants)} scored")
    return table


def run_analysis(model, dataset: SequenceDataset, cfg: AnalysisConfig, modisco_dir, plots_dir,
                 truth: GroundTruth | None = None, attributions=None, attribution_split="all",
                 genome=None, window=200, trim=0.3, q_threshold=0.05, device=None,
                 log=print, model_path=None, data_cfg=None) -> dict:
    """Spacing of the pairs, marginalization of the motifs (with each pair's preferred
    composite element), instances from the attribute step's files (when present; rounds
    after the first attribute again with the checkpoint at `model_path`, whose data
    `data_cfg` is) and, with cfg.variants, variant effects; writes the files of the module
    docstring and returns analysis.json's content."""
    tasks = task_names(model)
    patterns = load_patterns_of(modisco_dir, window, trim, q_threshold)
    pairs = choose_pairs(cfg.pairs, tasks, patterns, truth, log)
    motifs = motifs_for(cfg, patterns, truth)  # first: a bad name fails before any file
    if cfg.variants:
        read_variants(cfg.variants, dataset, genome, dataset.seq_len)  # checked up front
    spacing = run_spacing(model, dataset, cfg, pairs, modisco_dir, plots_dir, device, log)
    if not cfg.marginalize_motifs:
        motifs += [composite(s["a"], s["b"], s["preferred"]["spacing"],
                             s["preferred"]["orientation"]) for s in spacing]
    margin = run_marginalization(model, dataset, cfg, motifs, modisco_dir, plots_dir, device,
                                 log)
    instances = recovery = None
    if attributions is not None and Path(attributions).is_dir():
        instances, recovery, _ = run_instances(dataset, cfg, patterns, truth, attributions,
                                               attribution_split, modisco_dir, log, model_path,
                                               data_cfg, device)
    else:
        log("instances: no attributions (run the attribute step): skipped")
    variant_table = None
    if cfg.variants:
        variant_table = run_variants(model, dataset, cfg, modisco_dir, plots_dir, genome,
                                     device, log)
    summary = _summary(cfg, tasks, margin, spacing, instances, recovery, variant_table,
                       int(margin["n"].iloc[0]))
    with atomic_path(Path(modisco_dir) / ANALYSIS_DIR / "analysis.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1, default=_plain) + "\n")
    return summary


def _plain(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return str(value)


def _summary(cfg, tasks, margin, spacing, instances, recovery, variants, n_backgrounds) -> dict:
    per_task = {}
    for task in tasks:
        partner = [s for s in spacing if s["task"] == task]
        mine = instances[instances["task"] == task] if instances is not None and \
            len(instances) else None
        per_task[task] = {
            "motifs": causal_motifs(margin, task),
            "partner": [{"motifs": [s["a"].name, s["b"].name], **s["preferred"],
                         "peak_interaction": s["peak_interaction"], "table": s["table"]}
                        for s in partner] or None,
            "instances": None if instances is None else (0 if mine is None else len(mine)),
            "instances_later_rounds": None if instances is None else
            (0 if mine is None else int((mine["round"] > 1).sum())),
            "instance_patterns": {} if mine is None else
            {str(k): int(v) for k, v in mine["pattern"].replace("", "(JASPAR only)")
             .value_counts().items()}}
    files = {"marginalization": "marginalization.tsv",
             "spacing": [s["table"] for s in spacing],
             "instances": None if instances is None else "../instances.tsv",
             "instance_recovery": None if recovery is None else "instance_recovery.tsv",
             "variants": None if variants is None else "variants.tsv",
             "figures": ["marginalization.png", *(s["figure"] for s in spacing)]
             + (["variants.png"] if variants is not None else [])}
    summary = {"tasks": per_task,
               "pairs": [{"a": s["a"].name, "b": s["b"].name, "task": s["task"],
                          "preferred": s["preferred"], "peak_interaction": s["peak_interaction"]}
                         for s in spacing],
               "backgrounds": {"kind": cfg.marginalize_background, "n": n_backgrounds},
               "files": files, "settings": dataclasses.asdict(cfg)}
    if recovery is not None:
        summary["instance_recovery"] = recovery.replace({np.nan: None}).to_dict("records")
    if variants is not None:
        summary["variants"] = {"n": int(variants[["id", "position", "ref", "alt"]]
                                        .drop_duplicates().shape[0])}
    return summary
