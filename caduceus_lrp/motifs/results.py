"""Reading what the motif step wrote (for the notebook and the report) and the attribution files it
reads: `load_results`, `seqlet_table`, `task_table`, `load_attributions`.

Shapes: N sequences, L length, w window. Attribution files are `DIR/<task>/ohe.npz` and
`hyp.npz` (key arr_0, (N, 4, L), as `modisco motifs -s -a` reads them).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from .modisco import check_attributions, load_patterns
from .tomtom import read_tomtom, top_matches

__all__ = ["MotifResults", "load_results", "task_table", "seqlet_table", "load_attributions",
           "load_replicates", "REPLICATES_NAME"]


@dataclass
class MotifResults:
    """What `discover` wrote for one run, loaded: patterns, Tomtom table, windows; and for all
    runs the pattern report (patterns.json) and the recovery (recovery.json)."""

    patterns: list
    tomtom: pd.DataFrame
    windows: dict          # seq (N, w), contrib (N, w), task (N,), index (N,), start (N,)
    report: dict           # patterns.json: {run: [pattern rows] or the reason there are none}
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
    rec, report = out_dir / "recovery.json", out_dir / "patterns.json"
    return MotifResults(load_patterns(h5), read_tomtom(tsv), windows,
                        json.loads(report.read_text()) if report.is_file() else {},
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


REPLICATES_NAME = "replicates.npz"  # <task>/replicates.npz: (R, N, L) contributions per replicate


def load_replicates(directory) -> dict:
    """{task: (R, N, L)} per-position contributions of each replicate model, from
    DIR/<task>/replicates.npz, key arr_0 (written when the attributions are the replicates'
    average); {} when there are none."""
    out = {}
    for d in sorted(Path(directory).iterdir()):
        path = d / REPLICATES_NAME
        if not path.is_file():
            continue
        with np.load(path, allow_pickle=False) as f:
            x = f["arr_0"] if "arr_0" in f.files else None
        if x is None or x.ndim != 3:
            raise InputError(f"{path}: expected an array arr_0 of shape (R, N, L)")
        out[d.name] = x
    return out


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
