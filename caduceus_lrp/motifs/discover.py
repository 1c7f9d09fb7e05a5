"""`discover`: from each task's attributions to motifs, their JASPAR matches, a pattern report and,
with ground truth, the recovery of the known motifs.

Shapes: N sequences, L length, w window. Runs TF-MoDISco once per task and once over all tasks
stacked; every run's patterns go through MEME files and Tomtom against JASPAR. Files written to
`out_dir` (docs/motifs.md lists them): `tasks/<task>/` (modisco.h5, patterns.{pos,neg}.meme,
tomtom.tsv), `modisco_windows_{w}bp.h5` and `.npz` (the stacked run and its windows),
`big{w}bp.{pos,neg}.meme`, `tomtom_large_sample.tsv`, `report/` (modisco's HTML report),
`patterns.json` (every run's patterns: seqlets, consensus, the share of contribution on the
peak position, top matches with q-values and TF families) and, with ground truth,
`recovery.json`.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..data import GroundTruth
from ..errors import InputError
from ..io_utils import atomic_path
from .agreement import AGREE_SHARE, replicate_support
from .meme import jaspar_families, jaspar_meme, read_motifs
from .modisco import (ModiscoConfig, check_attributions, load_patterns, modisco_report,
                      patterns_to_meme, peak_starts, peak_windows, run_modisco)
from .plots import tf_motifs_figure
from .recovery import combine_recoveries, matrix_id, motif_recovery, recovery_report
from .tomtom import TOMTOM_COLUMNS, consensus, tomtom_table

__all__ = ["discover", "pattern_rows", "pattern_report", "STACKED"]

STACKED = "all tasks stacked"


def pattern_rows(patterns, table, families, cfg, contributions=None) -> list[dict]:
    """One dict per pattern: seqlets, consensus of the trimmed PPM, `peak_share` (the share of
    sum|CWM| on its largest position: a spike rather than a motif when near 1), its best
    Tomtom matches (ID, q-value, p-value, TF families, significant or not) and, given
    `contributions` = (the replicates' (R, N, w), the ensemble's (N, w)) on the TF-MoDISco input,
    each replicate's support and how many agree (`agreement.replicate_support`)."""
    rows = []
    for p in patterns:
        score = np.abs(p.cwm).sum(axis=1)
        matches = table[table["Query_ID"] == p.name].sort_values("p-value", kind="stable")
        agreement = {}
        if contributions is not None:
            support = replicate_support(p, *contributions)
            agreement = {"replicate_support": [round(float(v), 3) for v in support],
                         "replicates_agreeing": int((support >= AGREE_SHARE).sum())}
        rows.append({
            "pattern": p.name, "n_seqlets": int(p.n_seqlets),
            "consensus": consensus(p.trimmed_ppm(cfg.trim_threshold)),
            "peak_share": float(score.max() / max(score.sum(), np.finfo(float).tiny)),
            "matches": [{"target": m["Target_ID"], "q_value": float(m["q-value"]),
                         "p_value": float(m["p-value"]),
                         "family": list(families.get(m["Target_ID"], ())),
                         "significant": bool(m["q-value"] < cfg.q_threshold)}
                        for m in matches.to_dict("records")], **agreement})
    return rows


def pattern_report(patterns: dict, top: int = 3) -> str:
    """patterns.json as text: per run, each pattern's seqlets, consensus, peak share and best
    matches (q-value, family); '*' marks a significant match."""
    lines = []
    for run, rows in patterns.items():
        lines.append(f"{run}:")
        if isinstance(rows, str):
            lines.append(f"  no patterns ({rows})")
            continue
        for r in rows:
            matches = "; ".join(
                f"{m['target']} q={m['q_value']:.2g}{'*' if m['significant'] else ''}"
                f" ({'/'.join(m['family']) or '?'})" for m in r["matches"][:top]) or "-"
            agree = (f"  {r['replicates_agreeing']}/{len(r['replicate_support'])} replicates"
                     if "replicate_support" in r else "")
            lines.append(f"  {r['pattern']:<24} {r['n_seqlets']:>6} seqlets  "
                         f"{r['consensus']:<22} peak {r['peak_share']:.2f}{agree}  {matches}")
    return "\n".join(lines)


def _motifs_run(ohe, hyp, folder: Path, names, cfg, db_meme, label):
    """modisco -> MEME files -> Tomtom for one set of windows; returns (patterns, table)."""
    h5, pos_meme, neg_meme, tsv = (folder / n for n in names)
    run_modisco(ohe, hyp, h5, cfg, name=label)
    patterns_to_meme(h5, pos_meme, neg_meme, cfg.trim_threshold)
    table = tomtom_table([pos_meme, neg_meme], db_meme, tsv, n_nearest=cfg.n_matches)
    return load_patterns(h5), table


def _windows(task_attributions, cfg):
    """{task: (starts (N,), one-hot windows (N, w, 4), hypothetical windows (N, w, 4))}."""
    windows = {}
    for task, (ohe, hyp) in task_attributions.items():
        ohe, hyp = check_attributions(ohe, hyp, f"task {task}", min_sequences=1)
        starts = peak_starts(ohe, hyp, cfg.window, cfg.smooth)
        windows[task] = (starts, *peak_windows(ohe, hyp, cfg.window, cfg.smooth))
    return windows


def _replicate_windows(replicates, windows, width):
    """{task: ((R, N, w), (N, w))}: the replicates' contributions (R, N, L) cut to each task's
    windows, and the ensemble's contributions there (what TF-MoDISco sees)."""
    out = {}
    for task, (starts, ohe, hyp) in windows.items():
        if task in replicates:
            take = starts[:, None] + np.arange(width)
            out[task] = (replicates[task][:, np.arange(len(starts))[:, None], take],
                         (ohe * hyp).sum(axis=2))
    return out


def _save_windows(path, windows):
    ohe = np.concatenate([v[1] for v in windows.values()])
    hyp = np.concatenate([v[2] for v in windows.values()])
    seq = np.where(ohe.any(axis=2), ohe.argmax(axis=2), 4).astype(np.uint8)
    with atomic_path(path) as tmp:
        np.savez_compressed(
            tmp, seq=seq, contrib=(ohe * hyp).sum(axis=2),
            task=np.concatenate([[t] * len(v[0]) for t, v in windows.items()]),
            index=np.concatenate([np.arange(len(v[0])) for v in windows.values()]),
            start=np.concatenate([v[0] for v in windows.values()]))


def discover(task_attributions, out_dir, cfg: ModiscoConfig | None = None,
             ground_truth: GroundTruth | None = None, plots_dir=None, db_meme=None,
             replicates=None) -> dict:
    """Motif discovery on each task's attributions and on all of them stacked.

    task_attributions: {task: (one-hot, hypothetical attributions)}, each (N_task, L, 4), the
    task's positive sequences. Windows of cfg.window bp around each sequence's attribution peak
    go to TF-MoDISco once per task and once stacked (files: the module docstring). With
    `ground_truth`, the recovery of its motifs for these tasks (`recovery.json`, printed).
    plots_dir gives `plots_dir/TF_motifs.png`. db_meme defaults to `jaspar_meme()`.
    replicates: {task: (R, N_task, L)} per-position contributions of each replicate model when
    the attributions are their average; every pattern then reports how many replicates support
    it (`agreement`).
    A task without patterns is reported in patterns.json; the stacked run must find some.
    Returns {"patterns": patterns.json's content, "recovery": verdicts or None}.
    """
    cfg = cfg or ModiscoConfig()
    out_dir = Path(out_dir)
    db_meme = Path(db_meme) if db_meme is not None else jaspar_meme()
    if not task_attributions:
        raise InputError("no task attributions given")
    families = jaspar_families(read_motifs(db_meme))  # ID -> TF families, for the reports
    planted = (None if ground_truth is None
               else _planted(ground_truth, list(task_attributions), families))
    windows = _windows(task_attributions, cfg)
    w = cfg.window
    per_replicate = _replicate_windows(replicates or {}, windows, w)
    steps = tqdm(total=len(windows) + 3, desc="motifs", unit="step", disable=None)  # terminals only

    def stage(text):  # on a terminal the bar's postfix; in a log a line
        if steps.disable:
            tqdm.write(f"motifs: {text}")
        else:
            steps.set_postfix_str(text)

    patterns, tables = {}, {}
    for task, (_, ohe_w, hyp_w) in windows.items():
        stage(f"TF-MoDISco on task {task}")
        folder = out_dir / "tasks" / task
        shutil.rmtree(folder, ignore_errors=True)  # no stale files from an earlier run
        try:
            found, tables[task] = _motifs_run(
                ohe_w, hyp_w, folder, ("modisco.h5", "patterns.pos.meme", "patterns.neg.meme",
                                       "tomtom.tsv"), cfg, db_meme, f"task {task}")
            patterns[f"task {task}"] = pattern_rows(found, tables[task], families, cfg,
                                                    per_replicate.get(task))
        except InputError as err:
            tqdm.write(str(err))
            patterns[f"task {task}"] = str(err)
            tables[task] = pd.DataFrame(columns=TOMTOM_COLUMNS)
        steps.update()

    stage("TF-MoDISco on all tasks stacked")
    ohe_all = np.concatenate([v[1] for v in windows.values()])  # (N, w, 4)
    hyp_all = np.concatenate([v[2] for v in windows.values()])
    names = (f"modisco_windows_{w}bp.h5", f"big{w}bp.pos.meme", f"big{w}bp.neg.meme",
             "tomtom_large_sample.tsv")
    found, stacked_table = _motifs_run(ohe_all, hyp_all, out_dir, names, cfg, db_meme, STACKED)
    stacked = ((np.concatenate([per_replicate[t][0] for t in windows], axis=1),
                np.concatenate([per_replicate[t][1] for t in windows]))
               if per_replicate and set(per_replicate) == set(windows) else None)
    patterns = {STACKED: pattern_rows(found, stacked_table, families, cfg, stacked)} | patterns
    _save_windows(out_dir / f"modisco_windows_{w}bp.npz", windows)
    with atomic_path(out_dir / "patterns.json") as tmp:
        tmp.write_text(json.dumps(patterns, indent=1) + "\n")
    steps.update()

    if cfg.modisco_report:
        stage("modisco report")
        modisco_report(out_dir / names[0], out_dir / "report", db_meme)
    steps.update()

    stage("recovery and plots")
    recovery = None
    if ground_truth is not None:
        recovery = _recovery(ground_truth, planted, stacked_table, tables, families, cfg,
                             patterns)
        with atomic_path(out_dir / "recovery.json") as tmp:
            tmp.write_text(json.dumps(recovery, indent=1) + "\n")
        tqdm.write(recovery_report(recovery))
    if plots_dir is not None:
        tf_motifs_figure(found, stacked_table, read_motifs(db_meme), cfg.trim_threshold,
                         path=Path(plots_dir) / "TF_motifs.png")
    steps.update()
    steps.close()
    return {"patterns": patterns, "recovery": recovery}


def _planted(truth: GroundTruth, tasks, families) -> dict:
    """{task: motif IDs} of the ground truth for these tasks, checked against the database."""
    planted = truth.for_tasks(tasks)
    if not planted:
        raise InputError(f"{truth.source}: names no motif for the tasks "
                         f"{', '.join(tasks)}")
    known = {matrix_id(m) for m in families}
    named = [m for ids in planted.values() for m in ids] + ([truth.decoy] if truth.decoy else [])
    unknown = sorted({m for m in named if matrix_id(m) not in known})
    if unknown:
        raise InputError(f"{truth.source}: motif IDs not in the JASPAR database: "
                         f"{', '.join(unknown)}")
    return planted


def _recovery(truth: GroundTruth, planted, stacked_table, tables, families, cfg,
              patterns) -> dict:
    """recovery.json: the stacked run's and each task's recovery of the ground truth's motifs,
    and the verdict over all runs (`combine_recoveries`); with replicate support in `patterns`
    (patterns.json's content), each recovered motif's best agreement among its patterns."""
    judge = dict(decoy_id=truth.decoy, q=cfg.q_threshold, max_rank=cfg.max_rank,
                 families=families)
    rec = {"stacked": motif_recovery(stacked_table, planted, **judge), "tasks": {}}
    for task, table in tables.items():
        rec["tasks"][task] = motif_recovery(table, {task: planted.get(task, [])}, **judge)
    for run, found in [(STACKED, rec["stacked"])] + [(f"task {t}", r)
                                                     for t, r in rec["tasks"].items()]:
        rows = {r["pattern"]: r for r in patterns[run] if "replicate_support" in r} \
            if isinstance(patterns.get(run), list) else {}
        for m in found["motifs"] + ([found["decoy"]] if found["decoy"] else []):
            support = [rows[p] for p in m["patterns"] if p in rows]
            if support:
                m["replicates"] = len(support[0]["replicate_support"])
                m["replicates_agreeing"] = max(r["replicates_agreeing"] for r in support)
    return rec | combine_recoveries(rec["stacked"], rec["tasks"])

