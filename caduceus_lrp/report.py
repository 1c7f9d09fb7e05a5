"""`write_report`: modisco_files/summary.html, one self-contained page of a pipeline run.

The page shows the run's settings and data, the fine-tuning metrics and figures, the attribution
figures, the 3-D helix of one positive test sequence, every TF-MoDISco pattern of every run with
its logo and JASPAR matches, the recovery of known motifs, the motif-syntax analyses where they
ran, and links to every output file. Every figure is embedded as a base64 PNG data URI and the
CSS inline; the interactive helix carries plotly.js once, inline: the page needs no network.
Links to the run's files are relative to modisco_files/. The page is rendered by Jinja2 from the
package's template `assets/report.html.j2`; this module gathers what it shows (`report_context`).
"""
from __future__ import annotations

import base64
import dataclasses
import datetime
import io
import json
import math
import os
import re
from importlib import resources
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import yaml

from .attribute import checkpoint_data, example_helix
from .attribution_plots import helix_plotly
from .checkpoint import load_model
from .data import SPLITS, DataConfig, ground_truth_for, load_dataset
from .errors import InputError
from .io_utils import atomic_path
from .motifs import STACKED, load_patterns, recovery_report
from .motifs.meme import jaspar_meme, read_motifs
from .motifs.plots import pattern_figure
from .motifs.tomtom import read_tomtom, top_matches
from .plotting import DPI

__all__ = ["write_report", "report_context", "TEMPLATE"]

TEMPLATE = "report.html.j2"  # in caduceus_lrp/assets
MAX_TABLE_ROWS = 40          # rows of a long table shown on the page (the file is linked)
ANALYSES = [  # (section id, title, figure in plots/, table in modisco_files/)
    ("marginalization", "In-silico marginalization: the effect of each motif",
     "marginalization.png", "analysis/marginalization.tsv"),
    ("variants", "Variant effects", "variants.png", "analysis/variants.tsv"),
    ("instances", "Motif instances", None, "instances.tsv"),
]


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figure_uri(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return _png_uri(buffer.getvalue())


class _Page:
    """Paths of a run and links relative to the page (modisco_files/summary.html)."""

    def __init__(self, run_dir):
        self.run = Path(run_dir)
        self.models, self.plots = self.run / "final_models", self.run / "plots"
        self.modisco = self.run / "modisco_files"

    def link(self, path) -> str:
        return quote(Path(os.path.relpath(path, self.modisco)).as_posix())

    def link_if(self, path) -> str | None:
        return self.link(path) if Path(path).is_file() else None

    def figure(self, path, caption="") -> dict | None:
        """{"src": data URI, "href", "name", "caption"} of a PNG file; None when it is absent."""
        path = Path(path)
        if not path.is_file():
            return None
        return {"src": _png_uri(path.read_bytes()), "href": self.link(path), "name": path.name,
                "caption": caption}

    def table(self, path, max_rows=MAX_TABLE_ROWS) -> dict | None:
        """A TSV/CSV file as {"columns", "rows" (the first max_rows, values formatted), "n",
        "href", "name"}, whatever its columns; None when it is absent or unreadable."""
        path = Path(path)
        if not path.is_file():
            return None
        try:
            frame = pd.read_csv(path, sep="\t" if path.suffix != ".csv" else ",")
        except (ValueError, OSError, pd.errors.ParserError):
            return None
        rows = [[_value(v) for v in row] for row in frame.head(max_rows).itertuples(index=False)]
        return {"columns": [str(c) for c in frame.columns], "rows": rows, "n": len(frame),
                "href": self.link(path), "name": path.name}


def _value(v) -> str:
    """A table cell: floats with 3 significant digits, missing values as '–'."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, (float, np.floating)):
        return f"{v:.3g}"
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v, default=str)
    return str(v)


def _metric(v):
    return f"{v:.3f}" if isinstance(v, (int, float)) else None


def _cell(v) -> str:
    """A value of analysis.json as text: a motif with its effect and interval, a partner with
    its spacing, other dicts as 'key value' pairs, lists joined by '; '."""
    if isinstance(v, dict):
        if {"motif", "effect"} <= v.keys():
            ci = (f" [{_value(v['ci_low'])}, {_value(v['ci_high'])}]"
                  if {"ci_low", "ci_high"} <= v.keys() else "")
            return f"{v['motif']} {_value(v['effect'])}{ci}"
        if {"motifs", "spacing"} <= v.keys():
            return (f"{' + '.join(map(str, v['motifs']))}: {v['spacing']} bp"
                    + (f", {v['orientation']}" if "orientation" in v else ""))
        return ", ".join(f"{k} {_cell(x)}" for k, x in v.items())
    if isinstance(v, list):
        return "; ".join(_cell(x) for x in v) or "–"
    return _value(v)


def _records(records, name) -> dict:
    """A list of dicts as a table (the union of their keys as columns)."""
    records = [r for r in records if isinstance(r, dict)]
    columns = list(dict.fromkeys(k for r in records for k in r))
    return {"columns": columns, "rows": [[_cell(r.get(c)) for c in columns] for r in records],
            "n": len(records), "href": None, "name": name}


def _read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _natural(name):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(name))]


def _safe(name):  # the file-name form of a name (saliency_<task>_<id>.png, spacing_<A>_<B>)
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_")


def _settings(page: _Page, metrics: dict, dataset, data_cfg, data_error) -> dict:
    config_path = page.models / "train_config.yaml"
    config = yaml.safe_load(config_path.read_text()) if config_path.is_file() else {}
    config = config or {}
    data = config.get("data") or {}
    if data.get("data"):
        source = "files: " + ", ".join(map(str, data["data"]))
        source += "".join(f"; {k}: {data[k]}" for k in ("labels", "genome") if data.get(k))
    elif data or data_cfg is not None:
        n = data.get("n_synthetic", getattr(data_cfg, "n_synthetic", "?"))
        source = f"the embedded synthetic dataset ({n} sequences with planted JASPAR motifs)"
    else:
        source = "unknown (no train_config.yaml)"
    keys = [("model", metrics.get("model", config.get("model"))),
            ("backbone", metrics.get("backbone", config.get("pretrained"))),
            ("trainable / total parameters",
             f"{metrics['trainable_params']:,} / {metrics['total_params']:,}"
             if "trainable_params" in metrics and "total_params" in metrics else None),
            ("epochs run (best)", f"{metrics.get('epochs_run')} ({metrics.get('best_epoch')})"
             if "epochs_run" in metrics else None),
            ("replicates (chosen seed)",
             f"{len(metrics['replicates'])} ({metrics.get('chosen_seed')})"
             if metrics.get("replicates") else None),
            ("sequence length (bp)", data.get("seq_len")),
            ("learning rate (backbone / head)",
             f"{config['lr']} / {config.get('head_lr')}" if "lr" in config else None),
            ("batch size", config.get("batch_size")), ("loss", config.get("loss")),
            ("pooling", config.get("pooling")),
            ("unfrozen layers", config.get("unfreeze_layers"))]
    sizes = None
    if dataset is not None:
        splits = {s: int(np.sum(dataset.split == s)) for s in SPLITS}
        positives = [{"task": t, **{s: int(np.sum((dataset.labels[:, j] > 0)
                                                   & (dataset.split == s))) for s in SPLITS}}
                     for j, t in enumerate(dataset.task_names)]
        sizes = {"total": len(dataset), "seq_len": dataset.seq_len, "splits": splits,
                 "positives": positives}
    attributed = {}
    for d in sorted((page.modisco / "attributions").glob("*/ohe.npz")):
        with np.load(d, allow_pickle=False) as f:
            attributed[d.parent.name] = int(f["arr_0"].shape[0])
    return {"source": source, "rows": [(k, v) for k, v in keys if v not in (None, "")],
            "sizes": sizes, "data_error": data_error, "attributed": attributed,
            "yaml": config_path.read_text() if config_path.is_file() else None,
            "yaml_href": page.link_if(config_path)}


def _training(page: _Page, metrics: dict) -> dict | None:
    if not metrics:
        return None
    tasks = [k.split(".", 2)[2] for k in metrics if k.startswith("val.auroc.")]
    rows = [{"task": t, **{f"{s}_{m}": metrics.get(f"{s}.{m}.{t}") for s in ("val", "test")
                           for m in ("auroc", "auprc")}} for t in tasks]
    macro = {f"{s}_{m}": metrics.get(f"{s}.macro_{m}") for s in ("val", "test")
             for m in ("auroc", "auprc")}
    history = metrics.get("history") or []
    columns = [c for c in ("epoch", "train_loss", "val.macro_auroc", "val.macro_auprc",
                           "train_seconds") if any(c in h for h in history)]
    rocs = sorted(page.plots.glob("epoch*_roc.png"), key=lambda p: _natural(p.name))
    return {"tasks": tasks, "rows": rows, "macro": macro,
            "history": {"columns": columns,
                        "rows": [[_value(h.get(c)) for c in columns] for h in history]},
            "rocs": [page.figure(p, f"validation ROC curves, epoch "
                                    f"{re.sub(r'[^0-9]', '', p.name)}") for p in rocs],
            "dist": page.figure(page.plots / "dist_EPI.png",
                                "predicted probabilities of the test positives and negatives"),
            "metrics_href": page.link(page.models / "metrics.json")}


def _attribution(page: _Page, tasks, method, composite, saliency_method, truth_known) -> dict:
    record = {"composite": composite} if composite and method == "lrp" else {}
    for path in (page.modisco / "attributions" / "attribution.json",
                 page.modisco / "attributions" / "attribute.json",
                 page.run / ".pipeline" / "attribute.json"):
        found = _read_json(path)
        if isinstance(found, dict):
            found = found.get("result", found) if isinstance(found.get("result"), dict) else found
            record |= {k: v for k, v in found.items() if k in ("method", "composite", "rules",
                                                               "conservation_error")}
    method = record.get("method", method)
    saliency = []
    names = sorted(tasks, key=lambda t: -len(_safe(t)))  # GATA1_TAL1 before GATA1
    for path in sorted(page.plots.glob("saliency_*.png")):
        stem = path.stem[len("saliency_"):]
        task = next((t for t in names if stem.startswith(_safe(t) + "_")), None)
        label = stem[len(_safe(task)) + 1:] if task else stem
        sites = " (known sites shaded)" if truth_known else ""
        saliency.append(page.figure(path, f"{task or '?'} · sequence {label} · "
                                          f"{saliency_method or 'saliency'}{sites}")
                        | {"task": task})
    return {"method": method, "composite": record.get("composite") or record.get("rules"),
            "conservation_error": record.get("conservation_error"),
            "saliency_method": saliency_method,
            "conservation": page.figure(page.plots / "conservation.png",
                                        "LRP conservation: the relevance of each sequence sums "
                                        "to its logit"),
            "sites": page.figure(page.plots / "dist_attribution.png",
                                 "relevance at known sites against the background, per method"),
            "saliency": saliency,
            "zoom": page.figure(page.plots / "zoomed_in_sample.png",
                                "the first saliency map zoomed in on its first site")}


def _match_rows(table: pd.DataFrame) -> dict:
    """{pattern: its best Tomtom row as a dict}."""
    return {k: dict(v) for k, v in top_matches(table).items()} if len(table) else {}


def _motif_runs(page: _Page, report: dict, recovery, db_motifs, trim) -> list[dict]:
    """Every run of patterns.json with its patterns: logo figure, matches, recovered motifs."""
    stacked_h5 = sorted(page.modisco.glob("modisco_windows_*bp.h5"))
    runs = []
    for run, rows in report.items():
        if run == STACKED:
            h5 = stacked_h5[0] if stacked_h5 else None
            tsv, rec = page.modisco / "tomtom_large_sample.tsv", (recovery or {}).get("stacked")
        else:
            task = run.removeprefix("task ")
            h5, tsv = page.modisco / "tasks" / task / "modisco.h5", \
                page.modisco / "tasks" / task / "tomtom.tsv"
            rec = (recovery or {}).get("tasks", {}).get(task)
        entry = {"name": run, "reason": rows if isinstance(rows, str) else None, "patterns": [],
                 "h5_href": page.link_if(h5) if h5 is not None else None,
                 "tomtom_href": page.link_if(tsv)}
        if isinstance(rows, str):
            runs.append(entry)
            continue
        try:
            loaded = {p.name: p for p in load_patterns(h5)} if h5 is not None else {}
            best = _match_rows(read_tomtom(tsv)) if tsv.is_file() else {}
        except (InputError, OSError, KeyError, ValueError):
            loaded, best = {}, {}
        recovers = {}
        for m in (rec or {}).get("motifs", []):
            for name in m.get("patterns", []):
                recovers.setdefault(name, []).append(m["motif_id"])
        for row in rows:
            pattern = loaded.get(row["pattern"])
            logo = None if pattern is None else _figure_uri(
                pattern_figure(pattern, best.get(row["pattern"]), db_motifs or {}, trim))
            entry["patterns"].append(row | {"logo": logo,
                                            "recovers": recovers.get(row["pattern"], [])})
        runs.append(entry)
    return runs


def _recovery(recovery) -> dict | None:
    if not recovery:
        return None
    return {"all_recovered": recovery.get("all_recovered"),
            "decoy_found": recovery.get("decoy_found"),
            "motifs": recovery.get("motifs", []),
            "multi": recovery.get("multi_motif_tasks", {}),
            "decoy": (recovery.get("stacked") or {}).get("decoy"),
            "text": recovery_report(recovery)}


def _analyses(page: _Page) -> list[dict]:
    """The motif-syntax analyses that ran: each a figure and a table, spacing per motif pair,
    and analysis.json; any other table of modisco_files/analysis/ as well."""
    out, shown = [], set()
    folder = page.modisco / "analysis"
    for key, title, png, tsv in ANALYSES:
        figure = page.figure(page.plots / png) if png else None
        table = page.table(page.modisco / tsv)
        shown.add((page.modisco / tsv).resolve())
        if figure or table:
            out.append({"id": key, "title": title, "figures": [figure] if figure else [],
                        "tables": [table] if table else [], "json": None, "href": None})
    pairs = sorted({p.stem[len("spacing_"):] for p in [*page.plots.glob("spacing_*.png"),
                                                        *folder.glob("spacing_*.tsv")]})
    if pairs:
        summary = _read_json(folder / "analysis.json")
        named = {f"{_safe(p['a'])}_{_safe(p['b'])}": f"{p['a']} then {p['b']}"
                 for p in (summary or {}).get("pairs", []) if isinstance(p, dict)
                 and {"a", "b"} <= p.keys()} if isinstance(summary, dict) else {}
        figures = [page.figure(page.plots / f"spacing_{pair}.png", named.get(pair, pair))
                   for pair in pairs]
        tables = [page.table(folder / f"spacing_{pair}.tsv") for pair in pairs]
        shown.update((folder / f"spacing_{pair}.tsv").resolve() for pair in pairs)
        out.append({"id": "spacing", "title": "Motif spacing: pairs of motifs and their distance",
                    "figures": [f for f in figures if f], "tables": [t for t in tables if t],
                    "json": None, "href": None})
    other = [page.table(p) for p in sorted(folder.glob("*.tsv")) if p.resolve() not in shown]
    if any(other):
        out.append({"id": "other-analyses", "title": "Other analysis tables", "figures": [],
                    "tables": [t for t in other if t], "json": None, "href": None})
    summary = _read_json(folder / "analysis.json")
    if summary is not None:
        tasks = summary.get("tasks") if isinstance(summary, dict) else None
        tables = []
        if isinstance(tasks, dict):
            tables.append(_records([{"task": t} | (v if isinstance(v, dict) else {"": v})
                                    for t, v in tasks.items()], "per task"))
        if isinstance(summary, dict) and isinstance(summary.get("pairs"), list):
            tables.append(_records(summary["pairs"], "motif pairs"))
        out.append({"id": "analysis-summary", "title": "Motif syntax per task (analysis.json)",
                    "figures": [], "tables": [t for t in tables if t["rows"]],
                    "json": json.dumps(summary, indent=1),
                    "href": page.link(folder / "analysis.json")})
    order = ["marginalization", "spacing", "instances", "variants", "other-analyses"]
    return sorted(out, key=lambda a: order.index(a["id"]) if a["id"] in order else len(order))


def _helix(page: _Page, model, dataset, truth, method, composite, device) -> dict | None:
    """The helix of one positive test sequence (`example_helix`, which writes plots/helix.png
    and helix.html): the page's figure and plotly markup."""
    data = example_helix(model, dataset, method, page.plots, truth, device,
                         **({"composite": composite} if composite and method == "lrp" else {}))
    if data is None:
        return None
    markup = plotly_js = None
    if data["html"] is not None:
        from plotly.offline import get_plotlyjs

        markup = helix_plotly(data["sequence"], data["relevance"], data["title"],
                              **{k: data[k] for k in ("start", "sites", "label")}).to_html(
            full_html=False, include_plotlyjs=False, default_height="520px",
            config={"displaylogo": False, "responsive": True})
        plotly_js = get_plotlyjs()
    return {"figure": page.figure(data["png"]), "markup": markup, "plotly_js": plotly_js,
            "html_href": page.link_if(data["html"]) if data["html"] else None,
            "task": data["task"], "id": data["id"], "sites": [s[2] for s in data["sites"]],
            "method": method}


def _files(page: _Page) -> list[dict]:
    """Every file of the run (hidden ones aside) as relative links, grouped by folder:
    final_models, plots, modisco_files, then modisco_files' subfolders."""
    groups = {}
    for path in sorted(page.run.rglob("*")):
        rel = path.relative_to(page.run)
        if not path.is_file() or any(p.startswith(".") for p in rel.parts) \
                or rel.as_posix() == "modisco_files/summary.html":
            continue
        depth = 2 if rel.parts[0] == "modisco_files" and len(rel.parts) > 2 else 1
        group = "/".join(rel.parts[:depth]) if len(rel.parts) > 1 else "."
        groups.setdefault(group, []).append(
            {"href": page.link(path), "name": "/".join(rel.parts[depth:]) or rel.name,
             "size": _size(path.stat().st_size)})
    first = ["final_models", "plots", "modisco_files"]
    order = sorted(groups, key=lambda g: (first.index(g) if g in first else len(first), g))
    return [{"folder": g, "files": groups[g]} for g in order]


def _size(n):
    return f"{n} B" if n < 1e3 else f"{n / 1e3:.1f} kB" if n < 1e6 else f"{n / 1e6:.1f} MB"


def report_context(run_dir, method="lrp", composite=None, saliency_method=None,
                   ground_truth=None, helix=True, trim=0.3, device=None, log=print) -> dict:
    """What summary.html shows, gathered from the run folder `run_dir` (what is absent is left
    out). With `helix` and a checkpoint, plots/helix.png and helix.html are (re)made for one
    positive test sequence (`method`'s relevance; `composite`: its LRP composite). method,
    composite, saliency_method, ground_truth, trim: the pipeline's settings of the run."""
    page = _Page(run_dir)
    metrics = _read_json(page.models / "metrics.json") or {}
    checkpoint = page.models / "best_model.pt"
    dataset = data_cfg = truth = data_error = None
    try:
        if checkpoint.is_file():
            data_cfg = checkpoint_data(checkpoint)
        elif (page.models / "train_config.yaml").is_file():
            stored = yaml.safe_load((page.models / "train_config.yaml").read_text()) or {}
            names = {f.name for f in dataclasses.fields(DataConfig)}
            data_cfg = DataConfig(**{k: v for k, v in (stored.get("data") or {}).items()
                                     if k in names})
        if data_cfg is not None:
            dataset = load_dataset(data_cfg)
            truth = ground_truth_for(data_cfg, ground_truth)
    except (InputError, OSError, ValueError, TypeError) as err:
        data_error = str(err)
    report = _read_json(page.modisco / "patterns.json") or {}
    recovery = _read_json(page.modisco / "recovery.json")
    try:
        db_motifs = read_motifs(jaspar_meme()) if report else {}
    except (InputError, OSError, ImportError) as err:
        log(f"summary.html: no JASPAR logos ({err})")
        db_motifs = {}
    training = _training(page, metrics)
    tasks = training["tasks"] if training else (dataset.task_names if dataset else [])
    known_sites = truth is not None and truth.sites is not None
    helix_section = None
    if helix and checkpoint.is_file() and dataset is not None:
        helix_section = _helix(page, load_model(checkpoint), dataset,
                               truth if known_sites else None, method, composite, device)
    elif (page.plots / "helix.png").is_file():  # drawn before; no checkpoint to redraw it
        helix_section = {"figure": page.figure(page.plots / "helix.png"), "markup": None,
                         "html_href": page.link_if(page.plots / "helix.html"), "task": None}
    macro = (training or {}).get("macro", {})
    n_patterns = sum(len(v) for v in report.values() if isinstance(v, list))
    return {
        "title": f"caduceus-lrp run: {page.run.resolve().name}",
        "run_dir": str(page.run.resolve()),
        "generated": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "headline": [(k, v) for k, v in [
            ("test macro auROC", _metric(macro.get("test_auroc"))),
            ("test macro auPRC", _metric(macro.get("test_auprc"))),
            ("tasks", len(tasks) or None),
            ("patterns (all runs)", n_patterns if report else None),
            ("known motifs recovered", None if not recovery else
             "all" if recovery.get("all_recovered") else
             f"{sum(m['recovered'] for m in recovery.get('motifs', []))} of "
             f"{len(recovery.get('motifs', []))}")] if v not in (None, "–")],
        "settings": _settings(page, metrics, dataset, data_cfg, data_error),
        "training": training,
        "attribution": _attribution(page, tasks, method, composite, saliency_method,
                                    known_sites),
        "helix": helix_section,
        "motifs": {"runs": _motif_runs(page, report, recovery, db_motifs, trim),
                   "recovery": _recovery(recovery),
                   "overview": page.figure(page.plots / "TF_motifs.png",
                                           "patterns of the stacked run and their best match"),
                   "modisco_report": page.link_if(page.modisco / "report" / "report.html"),
                   "patterns_href": page.link_if(page.modisco / "patterns.json"),
                   "summary_md": page.link_if(page.modisco / "summary.md")},
        "analyses": _analyses(page),
        "files": _files(page),
    }


def _template():
    import jinja2

    text = (resources.files("caduceus_lrp") / "assets" / TEMPLATE).read_text()
    env = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.ChainableUndefined)  # keys a file lacks: left out
    env.filters["num"] = _value
    env.filters["metric"] = lambda v: _metric(v) or "–"
    env.filters["q"] = lambda v: f"{v:.2g}" if isinstance(v, (int, float)) else "–"
    return env.from_string(text)


def write_report(run_dir, **options) -> Path:
    """Write `run_dir`/modisco_files/summary.html (`report_context(run_dir, **options)` rendered
    by the package's Jinja2 template) and return its path."""
    context = report_context(run_dir, **options)
    path = Path(run_dir) / "modisco_files" / "summary.html"
    with atomic_path(path) as tmp:
        tmp.write_text(_template().render(**context), encoding="utf-8")
    return path
