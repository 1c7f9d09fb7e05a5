"""The end-to-end pipeline behind `caduceus-lrp pipeline` (and `python -m caduceus_lrp`):
data -> fine-tuning -> attributions -> TF-MoDISco -> Tomtom -> causal analyses (marginalization,
spacing, instances, variants) -> plots -> a markdown summary.

Each step is a library function of the PipelineConfig. Every step records what it was computed
from (its parameters and the size and time of its input files) in `<out>/.pipeline/<step>.json`;
a step whose record matches and whose outputs exist is skipped unless --force.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from .analysis import ANALYSIS_DIR, AnalysisConfig, analysis_report, run_analysis
from .attribute import (AttributeConfig, first_positive, remove_saliency_figures, run_attribute,
                        saliency_figures)
from .checkpoint import load_model
from .cli import option
from .data import ground_truth_for, load_dataset
from .errors import InputError
from .io_utils import atomic_path
from .motifs import (ModiscoConfig, discover, load_attributions, load_replicates, pattern_report,
                     recovery_report)
from .report import write_report
from .training import TrainConfig, run_training

__all__ = ["PipelineConfig", "STEPS", "PIPELINE_SKIPS", "run_pipeline", "step_table"]

STEPS = ("train", "attribute", "motifs", "analysis", "summary")
PIPELINE_SKIPS = ("out_dir", "plots_dir")  # TrainConfig fields the pipeline derives from --out


@dataclass
class PipelineConfig:
    """The pipeline's own options, and the training, attribution and TF-MoDISco configs whose
    fields are its other flags."""

    out: str = option(".", "output folder: OUT/final_models, OUT/plots, OUT/modisco_files")
    steps: list[str] = option(list(STEPS), f"steps to run, in order: {' '.join(STEPS)}")
    force: bool = option(False, "recompute steps whose outputs are up to date")
    ground_truth: str | None = option(None, (
        "known motifs of the tasks, for the recovery report: a site table (the embedded "
        "dataset's ground_truth.tsv columns) or a table with the columns task, motif_id (JASPAR "
        "IDs; task 'decoy' for a motif that must not be found); default: the embedded dataset's "
        "own when it is used"))
    saliency_method: str = option("corrected", "method of the per-task saliency figures")
    train: TrainConfig = field(default_factory=TrainConfig)
    attribute: AttributeConfig = field(default_factory=lambda: AttributeConfig(split="all"))
    motifs: ModiscoConfig = field(default_factory=ModiscoConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)

    def __post_init__(self):
        unknown = [s for s in self.steps if s not in STEPS]
        if unknown:
            raise InputError(f"--steps: unknown step(s) {', '.join(unknown)}; choose from "
                             + ", ".join(STEPS))
        self.train = dataclasses.replace(self.train, out_dir=str(self.models_dir),
                                         plots_dir=str(self.plots_dir))

    @property
    def models_dir(self) -> Path:
        return Path(self.out) / "final_models"

    @property
    def plots_dir(self) -> Path:
        return Path(self.out) / "plots"

    @property
    def modisco_dir(self) -> Path:
        return Path(self.out) / "modisco_files"

    @property
    def attributions_dir(self) -> Path:
        return self.modisco_dir / "attributions"

    @property
    def analysis_dir(self) -> Path:
        return self.modisco_dir / ANALYSIS_DIR

    @property
    def checkpoint(self) -> Path:
        return self.models_dir / "best_model.pt"

    def truth(self):
        """The ground truth of the run's data (`--ground-truth`, or the embedded dataset's)."""
        return ground_truth_for(self.train.data, self.ground_truth)


# ---------------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------------
def step_train(cfg: PipelineConfig) -> dict:
    return run_training(cfg.train)


def step_attribute(cfg: PipelineConfig) -> dict:
    """Attributions of every task's positive sequences for TF-MoDISco, the conservation and
    site figures, and one saliency figure per task (its first positive test sequence)."""
    summary = run_attribute(cfg.checkpoint, cfg.attribute, cfg.attributions_dir, cfg.plots_dir,
                            ground_truth=cfg.ground_truth, device=_device(cfg))
    model = load_model(cfg.checkpoint)
    test = load_dataset(cfg.train.data).subset("test")
    tasks = [t for t in model.task_names if len(test.positives(t))]
    rows = {t: [first_positive(test, t, "")] for t in tasks}
    remove_saliency_figures(cfg.plots_dir)
    saliency_figures(model, test.one_hot(), test.ids, tasks, cfg.saliency_method, cfg.plots_dir,
                     truth=cfg.truth(), rows=rows, device=_device(cfg))
    return summary


def _device(cfg: PipelineConfig):
    return None if cfg.train.device == "auto" else cfg.train.device


def step_motifs(cfg: PipelineConfig) -> dict:
    return discover(load_attributions(cfg.attributions_dir), cfg.modisco_dir, cfg.motifs,
                    ground_truth=cfg.truth(), plots_dir=cfg.plots_dir,
                    replicates=load_replicates(cfg.attributions_dir))


def step_analysis(cfg: PipelineConfig) -> dict:
    """Marginalization, spacing, instances and (with --variants) variant effects of the trained
    model and its discovered patterns (caduceus_lrp.analysis): modisco_files/analysis/."""
    model = load_model(cfg.checkpoint)
    return run_analysis(model, load_dataset(cfg.train.data), cfg.analysis, cfg.modisco_dir,
                        cfg.plots_dir, truth=cfg.truth(), attributions=cfg.attributions_dir,
                        attribution_split=cfg.attribute.split, genome=cfg.train.data.genome,
                        window=cfg.motifs.window, trim=cfg.motifs.trim_threshold,
                        q_threshold=cfg.motifs.q_threshold, device=_device(cfg),
                        model_path=cfg.checkpoint, data_cfg=cfg.train.data)


def step_summary(cfg: PipelineConfig) -> dict:
    """modisco_files/summary.md: the training metrics, the patterns with their JASPAR matches,
    the recovery of known motifs (with ground truth), the figures; then summary.html, all of it
    and the helix on one self-contained page (`report.write_report`)."""
    metrics_path = cfg.models_dir / "metrics.json"
    patterns_path = cfg.modisco_dir / "patterns.json"
    recovery_path = cfg.modisco_dir / "recovery.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    lines = ["# caduceus-lrp summary", ""]
    if metrics:
        tasks = [k.split(".", 2)[2] for k in metrics if k.startswith("val.auroc.")]
        lines += ["## Fine-tuning", "", "| task | val auROC | test auROC | test auPRC |",
                  "|---|---:|---:|---:|"]
        for t in tasks:
            lines.append(f"| {t} | {_fmt(metrics, f'val.auroc.{t}')} | "
                         f"{_fmt(metrics, f'test.auroc.{t}')} | {_fmt(metrics, f'test.auprc.{t}')} |")
        lines.append(f"| **macro** | {_fmt(metrics, 'val.macro_auroc')} | "
                     f"{_fmt(metrics, 'test.macro_auroc')} | {_fmt(metrics, 'test.macro_auprc')} |")
        lines.append("")
    if patterns_path.exists():
        lines += ["## Patterns (TF-MoDISco) and their best JASPAR 2024 matches (Tomtom)", "",
                  "Per run: seqlets, consensus, the share of the pattern's contribution on its "
                  "largest position (near 1: a single-base spike, not a motif), and the best "
                  "matches with q-values and TF families (* significant).", "", "```",
                  pattern_report(json.loads(patterns_path.read_text())), "```", ""]
    if recovery_path.exists():
        lines += ["## Recovery of the known motifs", "",
                  "A known motif is recovered when it is the top significant Tomtom match of some "
                  "pattern of the stacked run or of a task's own run (docs/motifs.md).", "", "```",
                  recovery_report(json.loads(recovery_path.read_text())), "```", ""]
    analysis_path = cfg.analysis_dir / "analysis.json"
    if analysis_path.exists():
        lines += ["## Causal analyses (modisco_files/analysis/)", "",
                  analysis_report(json.loads(analysis_path.read_text())), ""]
    figures = sorted(p.name for p in cfg.plots_dir.glob("*.png")) if cfg.plots_dir.is_dir() else []
    if figures:
        lines += ["## Figures", ""] + [f"![{f}](../plots/{f})" for f in figures] + [""]
    lines += ["Outputs: `final_models/best_model.pt`, `modisco_files/modisco_windows_"
              f"{cfg.motifs.window}bp.h5`, `patterns.json`, `tomtom_large_sample.tsv`, "
              "`report/report.html`.", ""]
    with atomic_path(cfg.modisco_dir / "summary.md") as tmp:
        tmp.write_text("\n".join(lines))
    html = write_report(cfg.out, method=cfg.attribute.method,
                        composite=getattr(cfg.attribute, "composite", None),
                        saliency_method=cfg.saliency_method, ground_truth=cfg.ground_truth,
                        trim=cfg.motifs.trim_threshold, device=_device(cfg))
    return {"summary": str(cfg.modisco_dir / "summary.md"), "html": str(html)}


def _fmt(metrics, key):
    value = metrics.get(key)
    return f"{value:.3f}" if isinstance(value, (int, float)) else "–"


# ---------------------------------------------------------------------------------------------
# Up-to-date records and the run
# ---------------------------------------------------------------------------------------------
def _files(paths):
    """Every file under the given files and folders, sorted."""
    out = []
    for p in map(Path, paths):
        out += sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
    return out


def fingerprint(params: dict, inputs) -> str:
    """Hash of a step's parameters and the (path, size, mtime) of its input files."""
    stats = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in _files(inputs) if p.exists()]
    text = json.dumps({"params": params, "inputs": stats}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def step_table(cfg: PipelineConfig) -> dict:
    """step -> (function, parameters, inputs, outputs)."""
    asdict = dataclasses.asdict
    data_inputs = list(cfg.train.data.data or [])
    truth_inputs = [cfg.ground_truth] if cfg.ground_truth else []
    return {
        "train": (step_train, asdict(cfg.train), data_inputs,
                  [cfg.checkpoint, cfg.models_dir / "metrics.json"]),
        "attribute": (step_attribute, asdict(cfg.attribute) | {"saliency": cfg.saliency_method},
                      [cfg.checkpoint, *truth_inputs], [cfg.attributions_dir]),
        "motifs": (step_motifs, asdict(cfg.motifs) | {"ground_truth": cfg.ground_truth},
                   [cfg.attributions_dir, *truth_inputs],
                   [cfg.modisco_dir / f"modisco_windows_{cfg.motifs.window}bp.h5",
                    cfg.modisco_dir / "patterns.json"]),
        "analysis": (step_analysis, asdict(cfg.analysis) | {"ground_truth": cfg.ground_truth},
                     [cfg.checkpoint, cfg.modisco_dir / "patterns.json", cfg.attributions_dir,
                      *truth_inputs, *([cfg.analysis.variants] if cfg.analysis.variants else [])],
                     [cfg.analysis_dir / "analysis.json",
                      cfg.analysis_dir / "marginalization.tsv"]),
        "summary": (step_summary, {}, [cfg.models_dir / "metrics.json",
                                       cfg.modisco_dir / "patterns.json",
                                       cfg.modisco_dir / "recovery.json",
                                       cfg.analysis_dir / "analysis.json"],
                    [cfg.modisco_dir / "summary.md", cfg.modisco_dir / "summary.html"]),
    }


def _record_path(cfg: PipelineConfig, step: str) -> Path:
    return Path(cfg.out) / ".pipeline" / f"{step}.json"


def _up_to_date(cfg, step, key, outputs) -> bool:
    record = _record_path(cfg, step)
    if cfg.force or not record.exists() or not all(Path(o).exists() for o in outputs):
        return False
    return json.loads(record.read_text()).get("key") == key


def run_pipeline(cfg: PipelineConfig, log=print) -> dict:
    """Run the configured steps in order; returns {step: {"seconds", "skipped", "result"}}."""
    table = step_table(cfg)
    chosen = [s for s in STEPS if s in cfg.steps]
    report = {}
    for i, step in enumerate(chosen):
        fn, params, inputs, outputs = table[step]
        key = fingerprint(params, inputs)
        prefix = f"[{i + 1}/{len(chosen)}] {step}"
        if _up_to_date(cfg, step, key, outputs):
            log(f"{prefix}: up to date, skipped (--force recomputes)")
            report[step] = {"seconds": 0.0, "skipped": True}
            continue
        log(f"{prefix}: running")
        start = time.perf_counter()
        result = fn(cfg)
        seconds = time.perf_counter() - start
        with atomic_path(_record_path(cfg, step)) as tmp:
            tmp.write_text(json.dumps({"key": fingerprint(params, inputs),
                                       "seconds": round(seconds, 1)}) + "\n")
        log(f"{prefix}: done in {seconds:.1f} s")
        report[step] = {"seconds": seconds, "skipped": False, "result": result}
    return report
