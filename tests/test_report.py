"""summary.html (`caduceus_lrp.report.write_report`) for a run folder built here from small inputs
(a tiny checkpoint, the files every step writes, the motif-syntax analyses' files): one
self-contained page (every image a PNG data URI, every relative link a file of the run, every
task and pattern shown, plotly.js once), opened in headless Chromium without console errors;
the helix figures; the pipeline's summary step writing it."""
import base64
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import CTCF, ROOT, SPI1, make_checkpoint

from caduceus_lrp.attribution_plots import helix_plotly, plot_helix
from caduceus_lrp.data.synthetic import TASKS, jaspar_ppm
from caduceus_lrp.motifs import STACKED, combine_recoveries, motif_recovery
from caduceus_lrp.motifs.tomtom import TOMTOM_COLUMNS
from caduceus_lrp.pipeline import PipelineConfig, step_table
from caduceus_lrp.plotting import figure, finish
from caduceus_lrp.report import write_report

CHROMIUM = Path("/usr/bin/chromium")
PNG = b"\x89PNG\r\n\x1a\n"


def load_screenshot_module():
    spec = importlib.util.spec_from_file_location("screenshot", ROOT / "bench" / "screenshot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def small_png(path, title):
    fig = figure(3, 2)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1])
    ax.set(title=title, xlabel="x (unit)", ylabel="y (unit)")
    finish(fig, path)


def write_h5(path, patterns):
    """A modisco-lite h5 file with these (name, PPM (w, 4), seqlets) positive patterns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for name, ppm, n in patterns:
            g = f.create_group(f"pos_patterns/{name}")
            cwm = ppm * np.log2(ppm / 0.25 + 1e-3).clip(0)
            g["sequence"], g["contrib_scores"], g["hypothetical_contribs"] = ppm, cwm, cwm
            s = g.create_group("seqlets")
            s["example_idx"], s["start"] = np.arange(n), np.full(n, 90)
            s["end"], s["is_revcomp"] = np.full(n, 90 + len(ppm)), np.zeros(n, dtype=bool)


def tomtom_rows(queries):
    """A Tomtom table: per pattern name its (target, q-value) matches."""
    rows = [{"Query_ID": q, "Target_ID": t, "Optimal_offset": 0, "p-value": qv / 10,
             "E-value": qv, "q-value": qv, "Overlap": 10, "Query_consensus": "A",
             "Target_consensus": "A", "Orientation": "+"}
            for q, matches in queries.items() for t, qv in matches]
    return pd.DataFrame(rows, columns=TOMTOM_COLUMNS)


def pattern_row(name, n, matches):
    return {"pattern": name, "n_seqlets": n, "consensus": "CCGCGNGGNGGCAG", "peak_share": 0.12,
            "matches": [{"target": t, "q_value": q, "p_value": q / 10, "family": ["C2H2"],
                         "significant": q < 0.05} for t, q in matches]}


def build_run(root: Path) -> Path:
    """A run folder with what train, attribute, motifs and analysis write, made small."""
    run = root / "run"
    models, plots, modisco = run / "final_models", run / "plots", run / "modisco_files"
    make_checkpoint(models / "best_model.pt", root / "cache", seq_len=200, n_synthetic=200)
    rng = np.random.default_rng(0)
    metrics = {"model": "caduceus", "backbone": "random init", "trainable_params": 1000,
               "total_params": 2000, "best_epoch": 2, "epochs_run": 2, "chosen_seed": 0,
               "replicates": [{"seed": 0, "val.macro_auroc": 0.8}]}
    for split in ("val", "test"):
        for m in ("auroc", "auprc"):
            metrics |= {f"{split}.{m}.{t}": float(rng.uniform(0.5, 1)) for t in TASKS}
            metrics[f"{split}.macro_{m}"] = 0.75
    metrics["history"] = [{"epoch": e, "train_loss": 0.5 / e, "val.macro_auroc": 0.7 + e / 100}
                          for e in (1, 2)]
    models.mkdir(parents=True, exist_ok=True)
    (models / "metrics.json").write_text(json.dumps(metrics))
    (models / "train_config.yaml").write_text(yaml.safe_dump(
        {"model": "caduceus", "lr": 0.004, "head_lr": 0.02, "epochs": 2,
         "data": {"data": None, "seq_len": 200, "n_synthetic": 200,
                  "cache_dir": str(root / "cache")}}))
    for name in ["epoch1_roc", "epoch2_roc", "dist_EPI", "conservation", "dist_attribution",
                 "zoomed_in_sample", "TF_motifs", "saliency_CTCF_syn00001",
                 "saliency_TAL1_GATA1_syn00002", "marginalization", "spacing_GATA1_TAL1",
                 "variants"]:
        small_png(plots / f"{name}.png", name)
    for task in ("CTCF", "TAL1+GATA1"):
        folder = modisco / "attributions" / task
        folder.mkdir(parents=True)
        np.savez(folder / "ohe.npz", np.zeros((3, 4, 200), np.float32))
        np.savez(folder / "hyp.npz", np.zeros((3, 4, 200), np.float32))
    ctcf, spi1 = jaspar_ppm(CTCF), jaspar_ppm(SPI1)
    write_h5(modisco / "modisco_windows_200bp.h5", [("pattern_0", ctcf, 40),
                                                     ("pattern_1", spi1, 25)])
    write_h5(modisco / "tasks" / "CTCF" / "modisco.h5", [("pattern_0", ctcf, 30)])
    stacked = tomtom_rows({"pos_patterns.pattern_0": [(f"{CTCF}_CTCF", 1e-6),
                                                      ("MA1929.2_CTCF", 1e-3)],
                           "pos_patterns.pattern_1": [(f"{SPI1}_Spi1", 0.2)]})
    task = tomtom_rows({"pos_patterns.pattern_0": [(f"{CTCF}_CTCF", 1e-5)]})
    stacked.to_csv(modisco / "tomtom_large_sample.tsv", sep="\t", index=False)
    task.to_csv(modisco / "tasks" / "CTCF" / "tomtom.tsv", sep="\t", index=False)
    patterns = {STACKED: [pattern_row("pos_patterns.pattern_0", 40,
                                      [(f"{CTCF}_CTCF", 1e-6), ("MA1929.2_CTCF", 1e-3)]),
                          pattern_row("pos_patterns.pattern_1", 25, [(f"{SPI1}_Spi1", 0.2)])],
                "task CTCF": [pattern_row("pos_patterns.pattern_0", 30, [(f"{CTCF}_CTCF", 1e-5)])],
                "task SPI1": "task SPI1: TF-MoDISco found no pattern in 12 sequences"}
    (modisco / "patterns.json").write_text(json.dumps(patterns))
    planted = {"CTCF": [CTCF], "SPI1": [SPI1]}
    rec_stacked = motif_recovery(stacked, planted)
    rec_tasks = {"CTCF": motif_recovery(task, {"CTCF": [CTCF]})}
    recovery = {"stacked": rec_stacked, "tasks": rec_tasks} | combine_recoveries(rec_stacked,
                                                                                 rec_tasks)
    (modisco / "recovery.json").write_text(json.dumps(recovery))
    (modisco / "summary.md").write_text("# caduceus-lrp summary\n")
    (modisco / "report").mkdir()
    (modisco / "report" / "report.html").write_text("<html>modisco report</html>")
    analysis = modisco / "analysis"
    analysis.mkdir()
    pd.DataFrame({"motif": ["CTCF", "GATA1"], "source": ["jaspar", "discovered"],
                  "task": ["CTCF", "GATA1"], "effect": [1.5, 0.7], "ci_low": [1.2, 0.4],
                  "ci_high": [1.8, 1.0], "n": [50, 50]}).to_csv(
        analysis / "marginalization.tsv", sep="\t", index=False)
    pd.DataFrame({"spacing": [4, 6], "orientation": ["++", "+-"], "effect": [0.3, 0.9]}).to_csv(
        analysis / "spacing_GATA1_TAL1.tsv", sep="\t", index=False)
    pd.DataFrame({"id": [f"syn{i:05d}" for i in range(60)], "start": 10, "end": 20,
                  "strand": "+", "pattern": "pos_patterns.pattern_0", "match": "CTCF",
                  "score": 0.5}).to_csv(modisco / "instances.tsv", sep="\t", index=False)
    pd.DataFrame({"id": ["syn00001"], "position": [12], "ref": ["A"], "alt": ["G"],
                  "task": ["CTCF"], "logit_change": [-0.4]}).to_csv(
        analysis / "variants.tsv", sep="\t", index=False)
    (analysis / "analysis.json").write_text(json.dumps({
        "tasks": {"CTCF": {"motifs": [{"motif": "CTCF", "source": "jaspar", "effect": 1.5,
                                       "ci_low": 1.2, "ci_high": 1.8}],
                           "partner": None, "instances": 60},
                  "TAL1+GATA1": {"motifs": [], "instances": 0, "partner": [
                      {"motifs": ["GATA1", "TAL1"], "orientation": "+-", "spacing": 6,
                       "effect": 0.9, "effect_ci": [0.8, 1.0], "interaction": 0.4,
                       "interaction_ci": [0.3, 0.5], "table": "spacing_GATA1_TAL1.tsv"}]}},
        "pairs": [{"a": "GATA1", "b": "TAL1", "task": "TAL1+GATA1",
                   "preferred": {"spacing": 6, "orientation": "+-"}}]}))
    return run


class Page(HTMLParser):
    """The page's images, links, element ids, data-pattern values, scripts and text."""

    def __init__(self, text):
        super().__init__()
        self.images, self.links, self.ids, self.patterns, self.scripts = [], [], set(), [], []
        self.text = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "a" and "href" in attrs:
            self.links.append(attrs["href"])
        if tag in ("script", "link", "iframe") and (attrs.get("src") or attrs.get("href")):
            self.scripts.append(attrs.get("src") or attrs.get("href"))
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if "data-pattern" in attrs:
            self.patterns.append(attrs["data-pattern"])

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run = build_run(tmp_path_factory.mktemp("report"))
    html = write_report(run, saliency_method="corrected")
    return run, html, html.read_text()


def test_page_is_self_contained_and_shows_every_task_and_pattern(report):
    run, html, text = report
    assert html == run / "modisco_files" / "summary.html"
    page = Page(text)
    assert page.images and not page.scripts  # nothing fetched: no external script or style
    for src in page.images:
        assert src.startswith("data:image/png;base64,"), src[:60]
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)
    relative = [h for h in page.links if not h.startswith(("#", "data:"))]
    assert not [h for h in relative if h.startswith(("http:", "https:", "//", "file:"))]
    missing = [h for h in relative if not (html.parent / unquote(h)).resolve().is_file()]
    assert not missing, missing
    linked = {(html.parent / unquote(h)).resolve() for h in relative}
    for path in ["final_models/metrics.json", "final_models/train_config.yaml",
                 "modisco_files/report/report.html", "modisco_files/instances.tsv",
                 "plots/helix.html", "modisco_files/attributions/TAL1+GATA1/hyp.npz"]:
        assert (run / path).resolve() in linked, path
    words = " ".join(page.text)
    assert all(task in words for task in TASKS)
    shown = set(page.patterns)
    for run_name, rows in json.loads((run / "modisco_files/patterns.json").read_text()).items():
        assert run_name in words
        if isinstance(rows, str):
            assert rows in words
        else:
            assert {f"{run_name}/{r['pattern']}" for r in rows} <= shown
    assert f"{CTCF}_CTCF" in words and "recovers" in words  # matches and the recovery verdict
    assert {"settings", "training", "attribution", "helix", "motifs", "recovery",
            "marginalization", "spacing", "instances", "variants", "analysis-summary",
            "files"} <= page.ids
    assert "CTCF 1.5 [1.2, 1.8]" in words and "GATA1 + TAL1: 6 bp, +-" in words  # readable


def test_helix_is_drawn_once_interactive_with_plotly_inline_once(report):
    run, _, text = report
    assert (run / "plots/helix.png").read_bytes().startswith(PNG)
    assert (run / "plots/helix.html").stat().st_size > 1_000_000  # plotly.js inline
    assert text.count("plotly-graph-div") == 1
    assert text.count("window.Plotly") >= 1 and text.count("plotly.js v") == 1
    assert "known site" in text  # the embedded dataset's planted site is marked


def test_a_run_with_only_some_outputs_still_renders(tmp_path):
    run = tmp_path / "bare"
    (run / "final_models").mkdir(parents=True)
    (run / "final_models" / "metrics.json").write_text(json.dumps({"val.auroc.A": 0.9}))
    text = write_report(run).read_text()
    assert "Fine-tuning" in text and "0.900" in text and "plotly-graph-div" not in text


@pytest.mark.skipif(not CHROMIUM.is_file(), reason="needs Chromium (/usr/bin/chromium: "
                    "apt-get install chromium; .ci/run installs it)")
def test_page_opens_in_chromium_without_errors(report, tmp_path):
    _, html, _ = report
    shot = tmp_path / "summary.png"
    facts = load_screenshot_module().check_page(html, shot, 1400, 2400)
    assert facts["errors"] == [], facts["errors"]
    assert facts["broken_images"] == [] and facts["images"] >= 10
    assert facts["plotly_plots"] == 1 and facts["webgl_canvases"] >= 1
    assert shot.read_bytes().startswith(PNG) and shot.stat().st_size > 50_000


def test_summary_step_lists_summary_html_among_its_outputs(tmp_path):
    cfg = PipelineConfig(out=str(tmp_path / "out"))
    assert cfg.modisco_dir / "summary.html" in step_table(cfg)["summary"][3]


@pytest.mark.slow
def test_pipeline_summary_step_writes_summary_html(report, tmp_path):
    run, _, _ = report
    copy = tmp_path / "run"
    # the analysis step's files are left out: summary.md's rendering of them is that step's
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("summary.html", "helix.*",
                                                             "analysis"))
    env = dict(os.environ, MPLBACKEND="Agg", HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "caduceus_lrp", "--out", str(copy),
                           "--steps", "summary"], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (copy / "modisco_files/summary.html").is_file() and (copy / "plots/helix.png").is_file()
    assert "summary: done" in proc.stdout


def test_helix_figure_fills_its_canvas_with_a_symmetric_labelled_scale():
    sequence = "ACGTTGCA" * 5
    relevance = np.linspace(-0.2, 0.5, len(sequence))
    fig = plot_helix(sequence, relevance, "a title", start=100, sites=[(110, 118, "GATA1")],
                     label="LRP relevance (logit units)")
    ax, bar = fig.axes
    assert ax.get_title() == "a title" and "bp" in ax.get_xlabel()
    assert bar.get_ylabel() == "LRP relevance (logit units)"
    low, high = bar.get_ylim()
    assert low == pytest.approx(-high) and high == pytest.approx(0.5)
    width, height = fig.get_size_inches()
    assert width >= 10 and width / height > 2  # wide: the helix lies along the figure
    assert {t.get_text() for t in ax.texts} >= {"A", "C", "G", "T", "GATA1"}
    plotly = helix_plotly(sequence, relevance, "a title", start=100,
                          sites=[(110, 118, "GATA1")], label="relevance")
    rungs = next(t for t in plotly.data if t.name == "base pairs")
    assert rungs.line.cmin == -rungs.line.cmax == pytest.approx(-0.5)
    assert rungs.line.colorbar.title.text == "relevance"
    assert any(t.mode == "text" and "GATA1" in list(t.text) for t in plotly.data)
