"""From attributions to motifs: TF-MoDISco patterns and report, and `discover` with its CLI.

Shapes: N sequences, L length, w motif width, s seqlets. One-hot sequences and hypothetical
attributions are (N, L, 4) in A, C, G, T order (`modisco motifs` files hold them as (N, 4, L));
the contribution of a base is one-hot * hypothetical. Motif matrices are (w, 4) here and (4, w)
in memelite. A pattern is named as modisco's report names it: `pos_patterns.pattern_0`.

MEME files and JASPAR are in caduceus_lrp.meme; Tomtom and motif recovery in caduceus_lrp.tomtom.

`python -m caduceus_lrp.motifs --attributions DIR --out modisco_files` runs `discover` on
`DIR/<task>/ohe.npz` and `DIR/<task>/hyp.npz` (key `arr_0`, shape (N, 4, L)).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from tqdm import tqdm

from .errors import InputError, cli_entry
from .io_utils import atomic_path
from .meme import jaspar_families, jaspar_meme, read_motifs, write_meme
from .tomtom import (TOMTOM_COLUMNS, combine_recoveries, motif_recovery, read_tomtom,
                     recovery_report, tomtom_table, top_matches)

__all__ = ["ModiscoConfig", "check_attributions", "peak_starts", "peak_windows", "run_modisco",
           "Pattern", "load_patterns", "patterns_to_meme", "modisco_report", "discover",
           "MotifResults", "load_results", "seqlet_table", "task_table", "load_attributions", "main"]

METACLUSTERS = ("pos_patterns", "neg_patterns")


# ---------------------------------------------------------------------------- TF-MoDISco

def _opt(default, help, modisco=False):
    return field(default=default, metadata={"help": help, "modisco": modisco})


@dataclass(frozen=True)
class ModiscoConfig:
    """Motif discovery settings. Fields marked `modisco` are passed to modisco-lite's
    `TFMoDISco` under their own names; defaults follow `modisco motifs` (the CLI), not the
    Python API (FDR 0.2 and 50 Leiden runs there: 168 s against 6.5 s for the same patterns
    on 2,000 x 200 bp, docs/motifs.md)."""

    window: int = _opt(200, "width (bp, even) of the window around each sequence's "
                            "attribution peak that TF-MoDISco sees")
    smooth: int = _opt(21, "width (bp) of the box filter on |contribution| that finds the peak")
    max_seqlets_per_metacluster: int = _opt(
        20000, "most seqlets kept per sign (positive, negative)", True)
    sliding_window_size: int = _opt(20, "width (bp) of the seqlet core windows", True)
    flank_size: int = _opt(5, "bases added on each side of a seqlet core", True)
    target_seqlet_fdr: float = _opt(0.05, "false discovery rate of seqlet calling", True)
    n_leiden_runs: int = _opt(2, "Leiden clusterings with different seeds (best kept)", True)
    min_metacluster_size: int = _opt(
        100, "a sign with this many seqlets or fewer gives no patterns", True)
    final_min_cluster_size: int = _opt(20, "fewest seqlets of a reported pattern", True)
    trim_to_window_size: int = _opt(30, "width (bp) patterns are trimmed to while merging",
                                    True)
    initial_flank_to_add: int = _opt(10, "flank (bp) added to patterns before merging", True)
    final_flank_to_add: int = _opt(0, "flank (bp) added to the final patterns", True)
    trim_threshold: float = _opt(0.3, "MEME files and Tomtom keep the positions of a "
                                      "pattern where sum|CWM| >= this x its maximum")
    n_matches: int = _opt(5, "best Tomtom matches kept per pattern")
    q_threshold: float = _opt(0.05, "a Tomtom match is significant when its q-value is "
                                    "below this")
    max_rank: int = _opt(1, "a planted motif is recovered when it is among this many best "
                            "significant matches of a pattern (1: its top match)")

    def __post_init__(self):
        if self.window <= 0 or self.window % 2:
            raise InputError(f"window: must be even and positive, got {self.window}")
        if not 0 < self.trim_threshold <= 1:
            raise InputError(f"trim_threshold: must be in (0, 1], got {self.trim_threshold}")
        for name in ("smooth", "sliding_window_size", "n_leiden_runs", "n_matches",
                     "max_seqlets_per_metacluster", "max_rank"):
            if getattr(self, name) < 1:
                raise InputError(f"{name}: must be at least 1, got {getattr(self, name)}")
        for name in ("target_seqlet_fdr", "q_threshold"):
            if not 0 < getattr(self, name) < 1:
                raise InputError(f"{name}: must be in (0, 1), got {getattr(self, name)}")

    def modisco_kwargs(self):
        """The keyword arguments of `modiscolite.tfmodisco.TFMoDISco` this config sets."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.metadata["modisco"]}


def check_attributions(ohe, hyp, name, min_sequences=20):
    """Check one-hot sequences and hypothetical attributions, both (N, L, 4), before modisco;
    return them as float32. Bad input raises InputError naming `name` and what is wrong."""
    ohe, hyp = np.asarray(ohe), np.asarray(hyp)
    for what, x in (("one-hot", ohe), ("attributions", hyp)):
        if x.ndim != 3 or x.shape[2] != 4:
            hint = " (it looks like (N, 4, L): transpose it)" \
                if x.ndim == 3 and x.shape[1] == 4 else ""
            raise InputError(f"{name}: {what} must have shape (N, L, 4), got "
                             f"{x.shape}{hint}")
    if ohe.shape != hyp.shape:
        raise InputError(f"{name}: one-hot {ohe.shape} and attributions {hyp.shape} differ "
                         "in shape")
    bad = ~(np.isin(ohe, (0, 1)).all(axis=2) & (ohe.sum(axis=2) <= 1))  # (N, L)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise InputError(f"{name}: sequence {i} position {j} is not one-hot: {ohe[i, j]}")
    finite = np.isfinite(hyp).all(axis=2)
    if not finite.all():
        i, j = np.argwhere(~finite)[0]
        raise InputError(f"{name}: attributions of sequence {i} at position {j} are not "
                         f"finite: {hyp[i, j]}")
    if len(ohe) < min_sequences:
        raise InputError(f"{name}: {len(ohe)} sequences are too few for TF-MoDISco "
                         f"(at least {min_sequences})")
    if not (ohe * hyp).any():
        raise InputError(f"{name}: all attributions of the observed bases are zero")
    return ohe.astype(np.float32), hyp.astype(np.float32)


def peak_starts(ohe, hyp, width=200, smooth=21):
    """Start (N,) of the `width`-bp window centred on each sequence's attribution peak: the
    maximum of |contribution| (N, L) summed over a `smooth`-bp box (the middle position when
    several tie), clipped to the sequence."""
    contrib = np.abs((ohe * hyp).sum(axis=2))  # (N, L)
    length = contrib.shape[1]
    if width > length:
        raise InputError(f"window of {width} bp is longer than the sequences ({length} bp)")
    csum = np.pad(np.cumsum(contrib, axis=1), ((0, 0), (1, 0)))  # (N, L + 1)
    lo = np.clip(np.arange(length) - smooth // 2, 0, length)
    hi = np.clip(np.arange(length) + smooth - smooth // 2, 0, length)
    smoothed = csum[:, hi] - csum[:, lo]  # (N, L)
    first = np.argmax(smoothed, axis=1)
    last = length - 1 - np.argmax(smoothed[:, ::-1], axis=1)
    peak = (first + last) // 2  # (N,) the middle of a plateau of maxima
    return np.clip(peak - width // 2, 0, length - width)


def peak_windows(ohe, hyp, width=200, smooth=21):
    """Windows (N, width, 4) of one-hot and attributions around each sequence's attribution
    peak (`peak_starts`); the whole sequences when L == width."""
    starts = peak_starts(ohe, hyp, width, smooth)
    take = starts[:, None] + np.arange(width)  # (N, width)
    rows = np.arange(len(ohe))[:, None]
    return ohe[rows, take], hyp[rows, take]


def run_modisco(ohe, hyp, out_h5, cfg=None, name=None):
    """TF-MoDISco (modisco-lite's Python API) on one-hot and hypothetical attributions
    (N, L, 4); writes `out_h5` (modiscolite.io.save_hdf5, window_size L) and returns
    (pos_patterns, neg_patterns), each a list or None. No pattern at all raises InputError."""
    from modiscolite.io import save_hdf5
    from modiscolite.tfmodisco import TFMoDISco

    cfg = cfg or ModiscoConfig()
    name = name or str(out_h5)
    ohe, hyp = check_attributions(ohe, hyp, name)
    pos, neg = TFMoDISco(ohe, hyp, **cfg.modisco_kwargs())
    if not pos and not neg:
        raise InputError(
            f"{name}: TF-MoDISco found no pattern in {len(ohe)} sequences x {ohe.shape[1]} bp: "
            f"too few seqlets (a sign needs more than {cfg.min_metacluster_size}, a pattern "
            f"{cfg.final_min_cluster_size}); give more sequences or raise target_seqlet_fdr")
    with atomic_path(out_h5) as tmp:
        save_hdf5(str(tmp), pos, neg, window_size=ohe.shape[1])
    return pos, neg


@dataclass
class Pattern:
    """A TF-MoDISco pattern read from its h5 file: matrices (w, 4) and seqlets (s,)."""

    name: str              # e.g. pos_patterns.pattern_0
    ppm: np.ndarray        # (w, 4) base frequencies of the aligned seqlets
    cwm: np.ndarray        # (w, 4) mean contribution
    hcwm: np.ndarray       # (w, 4) mean hypothetical contribution
    example_idx: np.ndarray  # (s,) row of the modisco input each seqlet is in
    start: np.ndarray      # (s,) seqlet start in that row
    end: np.ndarray        # (s,) seqlet end (exclusive)
    is_revcomp: np.ndarray  # (s,) seqlet aligned on the reverse strand

    @property
    def n_seqlets(self):
        return len(self.start)

    def trim(self, threshold=0.3):
        """Slice of the positions from the first to the last where sum|CWM| >= threshold x
        its maximum."""
        score = np.abs(self.cwm).sum(axis=1)  # (w,)
        keep = np.flatnonzero(score >= threshold * score.max())
        return slice(keep[0], keep[-1] + 1)

    def trimmed_ppm(self, threshold=0.3):
        """The PPM (w', 4) over `trim(threshold)`, each row normalised to sum 1."""
        ppm = self.ppm[self.trim(threshold)]
        return ppm / ppm.sum(axis=1, keepdims=True)


def load_patterns(h5_path):
    """The patterns of a modisco h5 file, positive then negative, in pattern order."""
    h5_path = Path(h5_path)
    if not h5_path.is_file():
        raise InputError(f"{h5_path}: no such modisco h5 file")
    patterns = []
    with h5py.File(h5_path, "r") as f:
        for group in METACLUSTERS:
            items = f[group].items() if group in f else []
            for key, g in sorted(items, key=lambda kv: int(kv[0].split("_")[-1])):
                s = g["seqlets"]
                patterns.append(Pattern(
                    f"{group}.{key}", g["sequence"][:], g["contrib_scores"][:],
                    g["hypothetical_contribs"][:], s["example_idx"][:], s["start"][:],
                    s["end"][:], s["is_revcomp"][:].astype(bool)))
    return patterns


def patterns_to_meme(h5_path, pos_meme, neg_meme, trim=0.3):
    """Write the positive and negative patterns' PPMs, trimmed to the positions where
    sum|CWM| >= trim x max, as two MEME files (a file with no motif when a sign has none).
    Returns {pattern name: trimmed PPM (w, 4)}."""
    patterns = load_patterns(h5_path)
    out = {}
    for group, path in zip(METACLUSTERS, (pos_meme, neg_meme), strict=True):
        chosen = [p for p in patterns if p.name.startswith(group + ".")]
        motifs = {p.name: p.trimmed_ppm(trim) for p in chosen}
        write_meme(path, motifs, {p.name: p.n_seqlets for p in chosen})
        out.update(motifs)
    return out


def modisco_report(h5_path, out_dir, db_meme):
    """`modisco report -i h5 -o out_dir -m db_meme -l` (Tomtom by memelite); the report is
    built in a temporary folder that replaces `out_dir` once `report.html` exists and names
    every pattern. Returns the path of report.html."""
    out_dir = Path(out_dir)
    names = [p.name for p in load_patterns(h5_path)]
    exe = Path(sys.executable).with_name("modisco")
    exe = str(exe) if exe.is_file() else shutil.which("modisco")
    if exe is None:
        raise RuntimeError("the `modisco` command of modisco-lite is not on PATH")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        cmd = [exe, "report", "-i", str(h5_path), "-o", str(tmp), "-m", str(db_meme), "-l"]
        try:
            subprocess.run(cmd, check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as err:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{err.stderr[-2000:]}") from None
        html = tmp / "report.html"
        text = html.read_text() if html.is_file() else ""
        missing = [n for n in names if n not in text]
        if not text or missing:
            raise RuntimeError(f"{html}: the modisco report is missing patterns {missing}")
        old = out_dir.with_name(tmp.name + ".old")
        if out_dir.exists():
            out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir / "report.html"


# ---------------------------------------------------------------------------- pipeline

def _summarise(patterns, table, n_sequences, q):
    best = top_matches(table)
    rows = []
    for p in patterns:
        r = best.get(p.name, {"Target_ID": None, "q-value": None})
        rows.append({"pattern": p.name, "n_seqlets": p.n_seqlets, "top_match": r["Target_ID"],
                     "q_value": r["q-value"],
                     "significant": r["q-value"] is not None and r["q-value"] < q})
    return {"n_sequences": n_sequences, "patterns": rows}


def _motifs_run(ohe, hyp, h5, pos_meme, neg_meme, tsv, cfg, db_meme, name):
    """modisco -> MEME files -> Tomtom for one set of windows; returns its summary."""
    run_modisco(ohe, hyp, h5, cfg, name=name)
    patterns_to_meme(h5, pos_meme, neg_meme, cfg.trim_threshold)
    table = tomtom_table([pos_meme, neg_meme], db_meme, tsv, n_nearest=cfg.n_matches)
    return _summarise(load_patterns(h5), table, len(ohe), cfg.q_threshold)


def discover(task_attributions, out_dir, cfg=None, ground_truth=None, plots_dir=None,
             db_meme=None):
    """Motif discovery on each task's attributions and on all of them stacked.

    task_attributions: {task: (one-hot, hypothetical attributions)}, each (N_task, L, 4), the
    task's positive sequences. Windows of cfg.window bp around each sequence's attribution
    peak go to TF-MoDISco once per task (`out_dir/tasks/<task>/`: modisco.h5, its pos/neg
    MEME files, tomtom.tsv) and once stacked (`out_dir/`: modisco_windows_{w}bp.h5 and .npz
    (the windows: `seq` (N, w) base codes 0-3 (4 = N), `contrib` (N, w), `task`, `index`,
    `start`), big{w}bp.pos.meme, big{w}bp.neg.meme, tomtom_large_sample.tsv, report/).
    ground_truth: {"planted": {task: JASPAR ID or IDs}, "decoy": ID or None} gives
    `out_dir/recovery.json` (stacked and per-task recoveries and the verdict over all runs,
    `combine_recoveries`), printed as tables.
    plots_dir gives `plots_dir/TF_motifs.png`. db_meme defaults to `jaspar_meme()`.
    A task without patterns is reported in the summary; the stacked run must find some.
    Returns a summary dict: per-task and stacked patterns with their top matches, recovery.
    """
    cfg = cfg or ModiscoConfig()
    out_dir = Path(out_dir)
    db_meme = Path(db_meme) if db_meme is not None else jaspar_meme()
    if not task_attributions:
        raise InputError("no task attributions given")
    if ground_truth is not None:
        unknown = set(ground_truth["planted"]) - set(task_attributions)
        if unknown:
            raise InputError(f"ground truth names tasks without attributions: {sorted(unknown)}")

    windows = {}
    for task, (ohe, hyp) in task_attributions.items():
        ohe, hyp = check_attributions(ohe, hyp, f"task {task}", min_sequences=1)
        starts = peak_starts(ohe, hyp, cfg.window, cfg.smooth)
        windows[task] = (starts, *peak_windows(ohe, hyp, cfg.window, cfg.smooth))

    summary = {"tasks": {}, "stacked": None, "recovery": None}
    w = cfg.window
    steps = tqdm(total=len(windows) + 3, desc="motifs", unit="step", disable=None)  # terminals only

    def stage(text):  # on a terminal the bar's postfix; in a log a line
        if steps.disable:
            tqdm.write(f"motifs: {text}")
        else:
            steps.set_postfix_str(text)

    for task, (_, ohe_w, hyp_w) in windows.items():
        stage(f"TF-MoDISco on task {task}")
        d = out_dir / "tasks" / task
        shutil.rmtree(d, ignore_errors=True)  # no stale files from an earlier run
        try:
            summary["tasks"][task] = _motifs_run(
                ohe_w, hyp_w, d / "modisco.h5", d / "patterns.pos.meme",
                d / "patterns.neg.meme", d / "tomtom.tsv", cfg, db_meme, f"task {task}")
        except InputError as err:
            tqdm.write(f"task {task}: {err}")
            summary["tasks"][task] = {"n_sequences": len(ohe_w), "error": str(err)}
        steps.update()

    stage("TF-MoDISco on all tasks stacked")
    ohe_all = np.concatenate([v[1] for v in windows.values()])  # (N, w, 4)
    hyp_all = np.concatenate([v[2] for v in windows.values()])
    h5 = out_dir / f"modisco_windows_{w}bp.h5"
    pos_meme, neg_meme = out_dir / f"big{w}bp.pos.meme", out_dir / f"big{w}bp.neg.meme"
    tsv = out_dir / "tomtom_large_sample.tsv"
    summary["stacked"] = _motifs_run(ohe_all, hyp_all, h5, pos_meme, neg_meme, tsv, cfg,
                                     db_meme, "all tasks stacked")
    seq = np.where(ohe_all.any(axis=2), ohe_all.argmax(axis=2), 4).astype(np.uint8)
    with atomic_path(h5.with_suffix(".npz")) as tmp:
        np.savez_compressed(
            tmp, seq=seq, contrib=(ohe_all * hyp_all).sum(axis=2),
            task=np.concatenate([[t] * len(v[0]) for t, v in windows.items()]),
            index=np.concatenate([np.arange(len(v[0])) for v in windows.values()]),
            start=np.concatenate([v[0] for v in windows.values()]))
    steps.update()

    stage("modisco report")
    modisco_report(h5, out_dir / "report", db_meme)
    steps.update()

    stage("recovery and plots")
    if ground_truth is not None:
        planted, decoy = ground_truth["planted"], ground_truth.get("decoy")
        families = jaspar_families(read_motifs(db_meme))  # ID -> TF families, for the report
        judge = dict(decoy_id=decoy, q=cfg.q_threshold, max_rank=cfg.max_rank, families=families)
        rec = {"stacked": motif_recovery(tsv, planted, **judge), "tasks": {}}
        for task in windows:
            task_tsv = out_dir / "tasks" / task / "tomtom.tsv"
            table = read_tomtom(task_tsv) if "error" not in summary["tasks"][task] else \
                pd.DataFrame(columns=TOMTOM_COLUMNS)
            rec["tasks"][task] = motif_recovery(table, {task: planted.get(task, [])}, **judge)
        rec |= combine_recoveries(rec["stacked"], rec["tasks"])
        with atomic_path(out_dir / "recovery.json") as tmp:
            Path(tmp).write_text(json.dumps(rec, indent=1) + "\n")
        tqdm.write(recovery_report(rec))
        summary["recovery"] = {k: rec[k] for k in ("all_recovered", "decoy_found")}
    if plots_dir is not None:
        from .motif_plots import tf_motifs_figure

        tf_motifs_figure(load_patterns(h5), read_tomtom(tsv), read_motifs(db_meme),
                         Path(plots_dir) / "TF_motifs.png", cfg.trim_threshold)
    steps.update()
    steps.close()
    return summary


@dataclass
class MotifResults:
    """What `discover` wrote for the stacked run, loaded: patterns, Tomtom table, windows."""

    patterns: list
    tomtom: pd.DataFrame
    windows: dict          # seq (N, w), contrib (N, w), task (N,), index (N,), start (N,)
    recovery: dict | None  # recovery.json, when ground truth was given


def load_results(out_dir, window=200, task=None):
    """Load what `discover` wrote to `out_dir` (a modisco_files folder) for the stacked run, or
    for one task's run (its windows are the stacked windows of that task, in order)."""
    out_dir = Path(out_dir)
    npz = out_dir / f"modisco_windows_{window}bp.npz"
    if not npz.is_file():
        raise InputError(f"{npz}: no such file (run discover first)")
    with np.load(npz, allow_pickle=False) as f:
        windows = dict(f)
    if task is None:
        h5, tsv = npz.with_suffix(".h5"), out_dir / "tomtom_large_sample.tsv"
    else:
        h5, tsv = out_dir / "tasks" / task / "modisco.h5", out_dir / "tasks" / task / "tomtom.tsv"
        windows = {k: v[windows["task"] == task] for k, v in windows.items()}
    rec = out_dir / "recovery.json"
    return MotifResults(load_patterns(h5), read_tomtom(tsv), windows,
                        json.loads(rec.read_text()) if rec.is_file() else None)


def task_table(out_dir, window=200):
    """`seqlet_table` rows for the patterns of each task's own run in `out_dir`."""
    rows = []
    for d in sorted(p for p in (Path(out_dir) / "tasks").iterdir() if p.is_dir()):
        if not (d / "modisco.h5").is_file():
            rows.append({"task": d.name, "pattern": None})  # the run found no pattern
            continue
        table = seqlet_table(load_patterns(d / "modisco.h5"), read_tomtom(d / "tomtom.tsv"),
                             window)
        rows += [{"task": d.name} | r for r in table.to_dict("records")]
    return pd.DataFrame(rows)


def seqlet_table(patterns, tomtom=None, window=None):
    """One row per pattern: seqlet count, share on the reverse strand, median and spread of
    the seqlet centres (relative to the window centre when `window` is given), and the top
    Tomtom match with its q-value when a table is given."""
    best = top_matches(tomtom) if tomtom is not None else {}
    rows = []
    for p in patterns:
        centre = (p.start + p.end) / 2 - (window / 2 if window else 0)
        r = best.get(p.name, {"Target_ID": None, "q-value": np.nan})
        rows.append({"pattern": p.name, "n_seqlets": p.n_seqlets,
                     "frac_revcomp": p.is_revcomp.mean(), "median_centre": np.median(centre),
                     "iqr_centre": np.subtract(*np.percentile(centre, [75, 25])),
                     "top_match": r["Target_ID"], "q_value": r["q-value"]})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- CLI

def _load_npz(path):
    """(N, L, 4) from a `modisco motifs` input file: key arr_0, shape (N, 4, L)."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "arr_0" not in f.files:
                raise InputError(f"{path}: no array 'arr_0' (found {f.files})")
            x = f["arr_0"]
    except (ValueError, OSError) as err:
        raise InputError(f"{path}: not a readable npz file ({err})") from None
    if x.ndim != 3 or x.shape[1] != 4:
        raise InputError(f"{path}: arr_0 must have shape (N, 4, L), got {x.shape}")
    return x.transpose(0, 2, 1)


def load_attributions(directory):
    """{task: (one-hot, hypothetical)} (N, L, 4) from DIR/<task>/ohe.npz and hyp.npz."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory}: no such directory")
    tasks = sorted(d for d in directory.iterdir()
                   if (d / "ohe.npz").exists() or (d / "hyp.npz").exists())
    if not tasks:
        raise InputError(f"{directory}: no <task>/ohe.npz and <task>/hyp.npz inside")
    out = {}
    for d in tasks:
        ohe, hyp = _load_npz(d / "ohe.npz"), _load_npz(d / "hyp.npz")
        check_attributions(ohe, hyp, str(d), min_sequences=1)
        out[d.name] = (ohe, hyp)
    return out


def _load_ground_truth(path):
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        gt = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: line {err.lineno}: {err.msg}") from None
    if not isinstance(gt, dict) or not isinstance(gt.get("planted"), dict):
        raise InputError(f"{path}: needs an object with \"planted\": {{task: JASPAR ID}}")
    return gt


@cli_entry
def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m caduceus_lrp.motifs",
        description="TF-MoDISco, Tomtom against JASPAR and a motif report from attributions.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--attributions", required=True,
                        help="folder of <task>/ohe.npz and <task>/hyp.npz (arr_0, (N, 4, L))")
    parser.add_argument("--out", default="modisco_files", help="output folder")
    parser.add_argument("--plots", default=None, help="folder for TF_motifs.png")
    parser.add_argument("--jaspar", default=None,
                        help="MEME motif database (default: JASPAR2024 CORE vertebrates)")
    parser.add_argument("--ground-truth", default=None,
                        help='JSON {"planted": {task: JASPAR ID or IDs}, "decoy": ID}')
    for f in dataclasses.fields(ModiscoConfig):
        parser.add_argument("--" + f.name.replace("_", "-"), type=type(f.default),
                            default=f.default, help=f.metadata["help"])
    args = parser.parse_args(argv)
    cfg = ModiscoConfig(**{f.name: getattr(args, f.name)
                           for f in dataclasses.fields(ModiscoConfig)})
    gt = _load_ground_truth(args.ground_truth) if args.ground_truth else None
    summary = discover(load_attributions(args.attributions), args.out, cfg, gt, args.plots,
                       args.jaspar)
    for row in summary["stacked"]["patterns"]:
        print(f"{row['pattern']:<24} {row['n_seqlets']:>6} seqlets  top match "
              f"{row['top_match']}  q={row['q_value']:.2g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
