"""Reading what the analysis step wrote (for the notebook, the summary and reports):
`load_analysis` and `analysis_report`.

Files are those of `run` (modisco_files/analysis/ and modisco_files/instances.tsv).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .instances import read_instances
from .run import ANALYSIS_DIR
from .spacing import tied_phrase

__all__ = ["AnalysisResults", "load_analysis", "analysis_report"]


@dataclass
class AnalysisResults:
    """analysis.json (`summary`), the marginalization table, each analysed pair's spacing
    table ({"a", "b", "task", "table"} per pair), the instances and their recovery, the
    variant table (None when not written)."""

    summary: dict
    marginalization: pd.DataFrame
    pairs: list
    instances: pd.DataFrame | None
    recovery: pd.DataFrame | None
    variants: pd.DataFrame | None


def _tsv(path):
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""]) \
        if Path(path).is_file() else None


def load_analysis(modisco_dir) -> AnalysisResults | None:
    """The analysis step's outputs under `modisco_dir`, or None when it has not run there."""
    folder = Path(modisco_dir) / ANALYSIS_DIR
    if not (folder / "analysis.json").is_file():
        return None
    summary = json.loads((folder / "analysis.json").read_text())
    pairs = [{"a": p["a"], "b": p["b"], "task": p["task"],
              "table": _tsv(folder / f)}
             for p, f in zip(summary["pairs"], summary["files"]["spacing"])]
    instances = Path(modisco_dir) / "instances.tsv"
    return AnalysisResults(summary, _tsv(folder / "marginalization.tsv"), pairs,
                           read_instances(instances) if instances.is_file() else None,
                           _tsv(folder / "instance_recovery.tsv"), _tsv(folder / "variants.tsv"))


def analysis_report(summary: dict) -> str:
    """analysis.json as a Markdown table: per task the motifs it relies on (mean logit change
    and 95 % interval), its partner and preferred arrangement, and its instances (those found
    once stronger sites were replaced by N in brackets)."""
    lines = ["| task | motifs it relies on (mean logit change [95 % interval]) | partner | "
             "instances (after replacing stronger sites) |", "|---|---|---|---:|"]
    for task, r in summary["tasks"].items():
        motifs = "; ".join(f"{m['motif']} {m['effect']:+.2f} [{m['ci_low']:+.2f}, "
                           f"{m['ci_high']:+.2f}]" for m in r["motifs"][:4]) or "–"
        partner = "; ".join(f"{' + '.join(p['motifs'])}: {p['orientation']} {p['spacing']} bp"
                            f"{tied_phrase(p)} (interaction {p['interaction']:+.2f} "
                            f"[{p['interaction_ci'][0]:+.2f}, {p['interaction_ci'][1]:+.2f}])"
                            for p in r["partner"] or []) or "–"
        later = r.get("instances_later_rounds")
        count = ("–" if r["instances"] is None
                 else f"{r['instances']}" + (f" ({later})" if later is not None else ""))
        lines.append(f"| {task} | {motifs} | {partner} | {count} |")
    return "\n".join(lines)
