"""The end-to-end pipeline behind `python -m caduceus_lrp`, in the README's recommended order:
data -> fine-tuning -> attributions -> TF-MoDISco -> Tomtom -> plots -> a markdown summary.

Every step records what it was computed from (its parameters and the size and time of its input
files) in `<out>/.pipeline/<step>.json`; a step whose record matches and whose outputs exist is
skipped unless --force.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError, cli_entry
from .io_utils import atomic_path

__all__ = ["PipelineConfig", "STEPS", "run_pipeline", "main"]

log = logging.getLogger("caduceus_lrp")

STEPS = ("train", "attribute", "motifs", "summary")


def _opt(default, help, **kw):
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class PipelineConfig:
    """What a user changes in the pipeline; everything else keeps the scripts' defaults."""

    out: str = _opt(".", "output folder: OUT/final_models, OUT/plots, OUT/modisco_files "
                         "(default: the current folder)")
    data: str | None = _opt(None, "dataset (see `python caduceus_lrp/train_caduceus_finetune.py "
                                  "--help`); default: the embedded synthetic dataset")
    pretrained: str | None = _opt(None, "backbone folder or Hugging Face id; default: the "
                                        "shipped demo backbone")
    arch: str | None = _opt(None, "a published architecture, randomly initialised, instead of a "
                                  "pretrained backbone")
    model: str = _opt("caduceus", "caduceus (fine-tuned Caduceus) or cnn (the baseline)")
    epochs: int | None = _opt(None, "training epochs (default: the training script's)")
    replicates: int | None = _opt(None, "training seeds of which the best on validation is kept "
                                        "(default: the training script's, 2)")
    n_synthetic: int | None = _opt(None, "sequences of the embedded dataset (default: the data "
                                         "module's)")
    method: str = _opt("lrp", "attribution method for TF-MoDISco (default: lrp)")
    split: str = _opt("all", "sequences whose positives are attributed: train, val, test or all "
                             "(default: all)")
    max_seqlets: int | None = _opt(None, "TF-MoDISco: most seqlets per metacluster (default: "
                                         "the motifs module's)")
    steps: list[str] = _opt(list(STEPS), f"steps to run, in order: {' '.join(STEPS)}")
    force: bool = _opt(False, "recompute steps whose outputs are up to date")

    def __post_init__(self):
        unknown = [s for s in self.steps if s not in STEPS]
        if unknown:
            raise InputError(f"--steps: unknown step(s) {', '.join(unknown)}; choose from "
                             + ", ".join(STEPS))
        if self.split not in ("train", "val", "test", "all"):
            raise InputError(f"--split: {self.split!r} is not one of train, val, test, all")

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
    def checkpoint(self) -> Path:
        return self.models_dir / "best_model.pt"


# ---------------------------------------------------------------------------------------------
# Up-to-date records
# ---------------------------------------------------------------------------------------------
def _files(paths):
    """Every file under the given files and folders, sorted."""
    out = []
    for p in map(Path, paths):
        out += sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
    return out


def _fingerprint(params: dict, inputs) -> str:
    """Hash of a step's parameters and the (path, size, mtime) of its input files."""
    stats = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in _files(inputs) if p.exists()]
    text = json.dumps({"params": params, "inputs": stats}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _record_path(cfg: PipelineConfig, step: str) -> Path:
    return Path(cfg.out) / ".pipeline" / f"{step}.json"


def _up_to_date(cfg, step, key, outputs) -> bool:
    record = _record_path(cfg, step)
    if cfg.force or not record.exists() or not all(Path(o).exists() for o in outputs):
        return False
    return json.loads(record.read_text()).get("key") == key


def _write_record(cfg, step, key, seconds):
    with atomic_path(_record_path(cfg, step)) as tmp:
        tmp.write_text(json.dumps({"key": key, "seconds": round(seconds, 1)}) + "\n")


# ---------------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------------
def _train_config(cfg: PipelineConfig):
    from .data import DataConfig
    from .training import TrainConfig

    data = DataConfig(data=cfg.data)
    if cfg.n_synthetic is not None:
        data = dataclasses.replace(data, n_synthetic=cfg.n_synthetic)
    kw = dict(model=cfg.model, pretrained=cfg.pretrained, arch=cfg.arch,
              out_dir=str(cfg.models_dir), plots_dir=str(cfg.plots_dir), data=data)
    for name in ("epochs", "replicates"):
        if getattr(cfg, name) is not None:
            kw[name] = getattr(cfg, name)
    return TrainConfig(**kw)


def step_train(cfg: PipelineConfig) -> dict:
    from .training import run_training

    return run_training(_train_config(cfg))


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run_script(name: str, *args: str) -> None:
    """Run one of the user's example scripts; its one-line error becomes this step's error."""
    import subprocess
    import sys

    cmd = [sys.executable, str(EXAMPLES / name), *args]
    proc = subprocess.run(cmd, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
        raise InputError(f"{name}: {lines[-1].removeprefix('error: ')}")


def step_attribute(cfg: PipelineConfig) -> dict:
    """Attributions of every task's positive sequences (examples/viz_interpret.py) and the
    saliency figures (examples/viz_saliency.py), as a user would run them."""
    model = ["--model", str(cfg.checkpoint), "--plots-dir", str(cfg.plots_dir)]
    _run_script("viz_interpret.py", *model, "--split", cfg.split, "--method", cfg.method,
                "--out", str(cfg.attributions_dir), "--batch-size", "256")
    _run_script("viz_saliency.py", *model)
    return {"attributions": str(cfg.attributions_dir)}


def step_motifs(cfg: PipelineConfig) -> dict:
    from .motifs import ModiscoConfig, discover, load_attributions
    from .synthetic import DECOY_MOTIF, TASK_MOTIFS

    mcfg = ModiscoConfig() if cfg.max_seqlets is None else \
        ModiscoConfig(max_seqlets_per_metacluster=cfg.max_seqlets)
    attributions = load_attributions(cfg.attributions_dir)
    truth = None
    if cfg.data is None:  # the embedded dataset: its planted motifs are known
        planted = {t: m for t, m in TASK_MOTIFS.items() if t in attributions}
        if "GATA1+TAL1" in attributions:
            planted["GATA1+TAL1"] = [TASK_MOTIFS["GATA1"], TASK_MOTIFS["TAL1"]]
        truth = {"planted": planted, "decoy": DECOY_MOTIF}
    return discover(attributions, cfg.modisco_dir, mcfg, ground_truth=truth,
                    plots_dir=cfg.plots_dir)


def step_summary(cfg: PipelineConfig) -> dict:
    """modisco_files/summary.md: metrics, recovered motifs, figures."""
    metrics_path = cfg.models_dir / "metrics.json"
    recovery_path = cfg.modisco_dir / "recovery.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    lines = ["# caduceus-lrp summary", ""]
    if metrics:
        tasks = [k.split(".", 2)[2] for k in metrics if k.startswith("val.auroc.")]
        lines += ["## Fine-tuning", "", "| task | val auROC | test auROC | test auPRC |",
                  "|---|---:|---:|---:|"]
        fmt = lambda k: f"{metrics[k]:.3f}" if isinstance(metrics.get(k), (int, float)) else "–"  # noqa: E731
        for t in tasks:
            lines.append(f"| {t} | {fmt(f'val.auroc.{t}')} | {fmt(f'test.auroc.{t}')} | "
                         f"{fmt(f'test.auprc.{t}')} |")
        lines.append(f"| **macro** | {fmt('val.macro_auroc')} | {fmt('test.macro_auroc')} | "
                     f"{fmt('test.macro_auprc')} |")
        lines.append("")
    if recovery_path.exists():
        from .tomtom import recovery_report

        rec = json.loads(recovery_path.read_text())
        lines += ["## Motif recovery (TF-MoDISco + Tomtom vs JASPAR 2024)", "",
                  "A planted motif is recovered when it is the top Tomtom match (q < 0.05) of some "
                  "pattern of the stacked run or of a task's own run; a task with several planted "
                  "motifs must find each in its own run. The family column, beside the verdict, "
                  "says whether a factor of the motif's JASPAR family (a paralog) is some "
                  "pattern's top significant match.", "", "```", recovery_report(rec), "```",
                  ""]
    figures = sorted(p.name for p in cfg.plots_dir.glob("*.png")) if cfg.plots_dir.is_dir() else []
    if figures:
        lines += ["## Figures", ""] + [f"![{f}](../plots/{f})" for f in figures] + [""]
    lines += ["Outputs: `final_models/best_model.pt`, `modisco_files/modisco_windows_200bp.h5`, "
              "`big200bp.pos.meme`, `big200bp.neg.meme`, `tomtom_large_sample.tsv`, "
              "`report/report.html`.", ""]
    with atomic_path(cfg.modisco_dir / "summary.md") as tmp:
        tmp.write_text("\n".join(lines))
    return {"summary": str(cfg.modisco_dir / "summary.md")}


def _step_table(cfg: PipelineConfig):
    """step -> (function, parameters, inputs, outputs)."""
    train_params = dataclasses.asdict(_train_config(cfg))
    data_inputs = [cfg.data] if cfg.data else []
    return {
        "train": (step_train, train_params, data_inputs,
                  [cfg.checkpoint, cfg.models_dir / "metrics.json"]),
        "attribute": (step_attribute, {"method": cfg.method, "split": cfg.split},
                      [cfg.checkpoint], [cfg.attributions_dir]),
        "motifs": (step_motifs, {"max_seqlets": cfg.max_seqlets, "data": cfg.data},
                   [cfg.attributions_dir],
                   [cfg.modisco_dir / "modisco_windows_200bp.h5",
                    cfg.modisco_dir / "tomtom_large_sample.tsv"]),
        "summary": (step_summary, {}, [cfg.models_dir / "metrics.json",
                                       cfg.modisco_dir / "recovery.json"],
                    [cfg.modisco_dir / "summary.md"]),
    }


def run_pipeline(cfg: PipelineConfig) -> dict:
    """Run the configured steps in order; returns {step: {"seconds", "skipped", "result"}}."""
    table = _step_table(cfg)
    report = {}
    for i, step in enumerate(s for s in STEPS if s in cfg.steps):
        fn, params, inputs, outputs = table[step]
        key = _fingerprint(params, inputs)
        prefix = f"[{i + 1}/{len(cfg.steps)}] {step}"
        if _up_to_date(cfg, step, key, outputs):
            print(f"{prefix}: up to date, skipped (--force recomputes)", flush=True)
            report[step] = {"seconds": 0.0, "skipped": True}
            continue
        print(f"{prefix}: running", flush=True)
        start = time.perf_counter()
        result = fn(cfg)
        seconds = time.perf_counter() - start
        _write_record(cfg, step, _fingerprint(params, inputs), seconds)
        print(f"{prefix}: done in {seconds:.1f} s", flush=True)
        report[step] = {"seconds": seconds, "skipped": False, "result": result}
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m caduceus_lrp",
        description="Fine-tune Caduceus, explain it (LRP), and find the motifs it relies on "
                    "(TF-MoDISco, Tomtom vs JASPAR). With no arguments: the embedded dataset.")
    for f in dataclasses.fields(PipelineConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if isinstance(default, bool):
            parser.add_argument(flag, action="store_true", help=f.metadata["help"])
        elif isinstance(default, list):
            parser.add_argument(flag, nargs="+", default=default, help=f.metadata["help"])
        else:
            kind = int if f.name in ("epochs", "replicates", "n_synthetic", "max_seqlets") else str
            parser.add_argument(flag, type=kind, default=default, help=f.metadata["help"])
    return parser


@cli_entry
def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = build_parser().parse_args(argv)
    cfg = PipelineConfig(**vars(args))
    start = time.perf_counter()
    report = run_pipeline(cfg)
    steps = ", ".join(f"{k} {v['seconds']:.0f} s" for k, v in report.items())
    print(f"pipeline finished in {time.perf_counter() - start:.1f} s ({steps}); "
          f"summary: {cfg.modisco_dir / 'summary.md'}")
    return 0
