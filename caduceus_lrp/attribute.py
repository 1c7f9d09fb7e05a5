"""The attribution step: every task's positive sequences attributed and saved for TF-MoDISco, with
the figures that check the attributions (conservation, relevance at planted sites, saliency maps).

Glossary: N sequences, l length, t tasks. `run_attribute` is what the pipeline's attribute step and
`examples/viz_interpret.py` run; `saliency_figures` what `examples/viz_saliency.py` runs. Files:
`<out>/<task>/ohe.npz` and `hyp.npz` (key arr_0, (N, 4, l): what `modisco motifs -s -a` reads;
hypothetical scores centred per position).
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import attribution_plots as figures
from .attribution_metrics import site_auroc, site_mask
from .checkpoint import load_model, read_checkpoint
from .cli import option
from .data import SPLITS, DataConfig, GroundTruth, ground_truth_for, load_dataset
from .errors import InputError
from .explanation_model import BACKGROUND_SEQUENCES, METHODS, explain, lrp_references, task_index
from .lrp_composites import COMPOSITES, DEFAULT_COMPOSITE, needs_references
from .motifs import REPLICATES_NAME
from .io_utils import atomic_path
from .sequence import one_hot_to_strings

REPLICATE_WEIGHTS = ("equal", "auroc")
SETTINGS_NAME = "settings.json"  # beside the attributions: the AttributeConfig they were made with

__all__ = ["AttributeConfig", "Ensemble", "load_ensemble", "write_settings", "read_settings",
           "checkpoint_data", "replicate_weights", "write_attributions", "run_attribute",
           "remove_saliency_figures", "saliency_figures", "saliency_rows", "first_positive",
           "helix_data", "helix_figures", "example_helix"]


@dataclass
class AttributeConfig:
    """How the attribute step attributes and what it draws; one --flag per field."""

    method: str = option("lrp", "attribution method of the TF-MoDISco input",
                         choices=tuple(METHODS))
    composite: str = option(DEFAULT_COMPOSITE, (
        "LRP composite (rules per layer; docs/lrp.md): its background statistics, where it has "
        "any, come from training sequences negative for every task"), choices=tuple(COMPOSITES))
    split: str = option("test", "split whose positive sequences are attributed",
                        choices=(*SPLITS, "all"))
    attribution_batch_size: int = option(64, "sequences per attribution pass")
    compare: list[str] = option(["saliency", "corrected", "lrp"], (
        "methods compared at planted sites in plots/dist_attribution.png (needs ground truth "
        "with site positions)"))
    max_sequences: int = option(200, "positive sequences per task in that comparison")
    ensemble: bool = option(True, (
        "when the checkpoint was chosen from replicates (<its folder>/replicates/seed-*), "
        "attribute with every replicate and average, so that the motifs do not hang on one "
        "training seed; each pattern then reports how many replicates support it"))
    replicate_weights: str = option("equal", (
        "how the replicates' attributions are averaged, per task: equal, the plain mean; auroc, "
        "each replicate weighted by its validation auROC on the task above chance (auROC - "
        "0.5, none below), so that a replicate that did not learn a task does not blur its "
        "motifs"), choices=REPLICATE_WEIGHTS)

    def __post_init__(self):
        if self.composite not in COMPOSITES:
            raise InputError(f"--composite: unknown LRP composite {self.composite!r}; choose one "
                             f"of {', '.join(COMPOSITES)}")
        for name in [self.method, *self.compare]:
            if name not in METHODS:
                raise InputError(f"--method/--compare: unknown method {name!r}; choose one of "
                                 f"{', '.join(METHODS)}")
        if self.replicate_weights not in REPLICATE_WEIGHTS:
            raise InputError(f"--replicate-weights: choose one of {', '.join(REPLICATE_WEIGHTS)} "
                             f"(got {self.replicate_weights!r})")
        if self.split not in (*SPLITS, "all"):
            raise InputError(f"--split: unknown split {self.split!r}; choose one of "
                             f"{', '.join(SPLITS)}, all")
        if self.attribution_batch_size < 1 or self.max_sequences < 1:
            raise InputError("--attribution-batch-size, --max-sequences: must be at least 1")


def checkpoint_data(path, data=None) -> DataConfig:
    """The DataConfig the checkpoint at `path` was trained with (the embedded dataset when it
    records none); `data` (paths) replaces its input, keeping its other settings (sequence length,
    labels, genome)."""
    stored = read_checkpoint(path).get("extra", {}).get("config", {}).get("data", {})
    names = {f.name for f in dataclasses.fields(DataConfig)}
    cfg = DataConfig(**{k: v for k, v in stored.items() if k in names})
    return cfg if not data else dataclasses.replace(cfg, data=list(data))


def background_sequences(data_cfg: DataConfig, n: int = BACKGROUND_SEQUENCES) -> np.ndarray:
    """One-hot (m, l, 4): the first n training sequences negative for every task (every training
    sequence when none is), the background of an LRP composite's reference statistics."""
    train = load_dataset(data_cfg).subset("train")
    negative = np.flatnonzero((train.labels <= 0).all(axis=1))
    rows = negative if len(negative) else np.arange(len(train))
    return train.one_hot()[rows[:n]]


def replicate_checkpoints(model_path) -> list[Path]:
    """The best models of the replicates a checkpoint was chosen from, as its metrics.json lists
    them (<its folder>/replicates/seed-S/best_model.pt), in seed order; [] for a single run."""
    folder = Path(model_path).parent
    metrics = folder / "metrics.json"
    seeds = ([r["seed"] for r in json.loads(metrics.read_text()).get("replicates", [])]
             if metrics.is_file() else [])
    paths = [folder / "replicates" / f"seed-{s}" / "best_model.pt" for s in seeds]
    return paths if all(p.is_file() for p in paths) else []


def replicate_weights(paths, task_names) -> np.ndarray:
    """(R, t) weights of R replicate checkpoints per task, each column summing to 1: a
    replicate's validation auROC above chance, max(auROC - 0.5, 0), from the metrics.json beside
    it; a task's weights are equal where no replicate is above chance or a value is missing."""
    rows = []
    for path in paths:
        metrics = Path(path).parent / "metrics.json"
        values = json.loads(metrics.read_text()) if metrics.is_file() else {}
        rows.append([values.get(f"val.auroc.{t}") for t in task_names])
    weights = np.ones((len(rows), len(task_names)))
    for k in range(len(task_names)):
        column = [r[k] for r in rows]
        if all(v is not None for v in column):
            above = np.maximum(np.array(column, dtype=float) - 0.5, 0.0)
            if above.sum() > 0:
                weights[:, k] = above
    return weights / weights.sum(0, keepdims=True)


def _mean_attribution(results, weights=None):
    """The Attribution whose arrays are the mean of `results` (one per model), weighted by
    `weights` (R,) when given (conservation holds for any weighted mean, as for each)."""
    first = results[0]
    if len(results) == 1:
        return first
    fields = ("observed", "hypothetical", "logits", "bias_relevance", "reference_relevance")
    return dataclasses.replace(first, rc_residual=None, **{
        k: None if getattr(first, k) is None
        else np.average([getattr(r, k) for r in results], axis=0, weights=weights)
        for k in fields})


@dataclass
class Ensemble:
    """Replicates of one training run, attributed together: R models, each with its method
    options (an LRP composite's reference statistics calibrated once per model), and `weights`
    (R, t) per task, or None for the plain mean."""

    models: list
    method: str
    options: list[dict]
    weights: np.ndarray | None = None
    batch_size: int = 32
    device: object = None
    seeds: list = dataclasses.field(default_factory=list)  # the replicates' training seeds

    @classmethod
    def calibrated(cls, models, method="lrp", length=None, batch_size=32, device=None,
                   weights=None, seeds=(), **options) -> Ensemble:
        """An Ensemble of `models` (one model or a list) whose LRP references are calibrated
        once on options["background"] at sequence length `length`."""
        models = list(models) if isinstance(models, (list, tuple)) else [models]
        return cls(models, method,
                   [_calibrated(m, method, options, length, batch_size, device) for m in models],
                   weights, batch_size, device, list(seeds))

    def explain(self, onehot, target: int, progress: bool = False):
        """(the weighted mean Attribution of task index `target` for one-hot (N, l, 4), each
        model's Attribution)."""
        each = [explain(m, onehot, target=target, method=self.method,
                        batch_size=self.batch_size, device=self.device, progress=progress, **o)
                for m, o in zip(self.models, self.options)]
        return (_mean_attribution(each, None if self.weights is None else self.weights[:, target]),
                each)


def load_ensemble(model_path, cfg: AttributeConfig, data_cfg: DataConfig | None = None,
                  device=None) -> Ensemble:
    """The Ensemble the attribute step attributes with under `cfg`: the replicates the checkpoint
    was chosen from when cfg.ensemble (else the checkpoint alone), weighted as
    cfg.replicate_weights says, with the composite's references calibrated on the training
    sequences negative for every task."""
    data_cfg = data_cfg or checkpoint_data(model_path)
    replicas = replicate_checkpoints(model_path) if cfg.ensemble else []
    models = ([load_model(p) for p in replicas] if len(replicas) > 1
              else [load_model(model_path)])
    weights = (replicate_weights(replicas, models[0].task_names)
               if len(models) > 1 and cfg.replicate_weights == "auroc" else None)
    seeds = [p.parent.name[5:] for p in replicas] if len(models) > 1 else []
    return Ensemble.calibrated(models, cfg.method, load_dataset(data_cfg).seq_len,
                               cfg.attribution_batch_size, device, weights, seeds,
                               **(_lrp_options(cfg, data_cfg) if cfg.method == "lrp" else {}))


def _lrp_options(cfg: AttributeConfig, data_cfg: DataConfig) -> dict:
    """The composite of cfg and, when it has reference statistics, their background."""
    return {"composite": cfg.composite,
            "background": background_sequences(data_cfg) if needs_references(cfg.composite)
            else None}


def write_settings(cfg: AttributeConfig, out_dir) -> Path:
    """`<out_dir>/settings.json`: the AttributeConfig the attributions there were made with, so
    that later steps attribute edited sequences the same way (`read_settings`)."""
    path = Path(out_dir) / SETTINGS_NAME
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(dataclasses.asdict(cfg), indent=1) + "\n")
    return path


def read_settings(out_dir) -> AttributeConfig | None:
    """The AttributeConfig of an attributions folder (None when it records none)."""
    path = Path(out_dir) / SETTINGS_NAME
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not JSON ({err.msg}, line {err.lineno})") from None
    names = {f.name for f in dataclasses.fields(AttributeConfig)}
    return AttributeConfig(**{k: v for k, v in stored.items() if k in names})


def write_attributions(models, dataset, out_dir, method="lrp", batch_size=32, device=None,
                       progress=True, weights=None, **options) -> dict:
    """Attribute every task's positive sequences of `dataset` for that task and write
    `<out_dir>/<task>/ohe.npz` and `hyp.npz`. `models`: an Ensemble, one model, or several
    replicates of one training run whose attributions are averaged (with `weights` (R, t) per
    task when given, `replicate_weights`, else equally); each replicate's per-position
    contributions (R, N, L) then go to `<task>/replicates.npz` (motifs.agreement). Returns
    {task: Attribution (the mean)}; tasks without positives are skipped."""
    ensemble = models if isinstance(models, Ensemble) else Ensemble.calibrated(
        models, method, dataset.seq_len, batch_size, device, weights, **options)
    model = ensemble.models[0]
    missing = [t for t in model.task_names if t not in dataset.task_names]
    if missing:
        raise InputError(f"dataset: has no labels for the model's task(s) {', '.join(missing)} "
                         f"(it has {', '.join(dataset.task_names)})")
    onehot = dataset.one_hot()
    results = {}
    for k, task in enumerate(model.task_names):
        positive = dataset.positives(task)
        if not len(positive):
            continue
        result, each = ensemble.explain(onehot[positive], k, progress)
        folder = Path(out_dir) / task
        for name, array in (("ohe.npz", onehot[positive]), ("hyp.npz", result.hypothetical)):
            with atomic_path(folder / name) as tmp:
                np.savez(tmp, np.ascontiguousarray(array.transpose(0, 2, 1)))
        replicates = folder / REPLICATES_NAME
        if len(each) > 1:
            with atomic_path(replicates) as tmp:
                np.savez(tmp, np.stack([r.observed.sum(-1) for r in each]).astype(np.float32))
        else:
            replicates.unlink(missing_ok=True)  # not from an earlier ensemble
        results[task] = result
    return results


def _calibrated(model, method, options, length, batch_size, device) -> dict:
    """`options` with an LRP composite's `background` replaced by the model's reference
    statistics, calibrated once for every task's call (other methods: unchanged)."""
    if method != "lrp":
        return options
    rest = {k: v for k, v in options.items() if k != "background"}
    return dict(rest, references=lrp_references(
        model, options.get("composite", DEFAULT_COMPOSITE), options.get("background"), length,
        batch_size, device))


def _site_and_background(model, onehot, mask, target, method, batch_size, device, options):
    """|position relevance| normalised by each sequence's maximum, at sites and elsewhere, and
    each sequence's site AUROC."""
    result = explain(model, onehot, target=target, method=method, batch_size=batch_size,
                     device=device, **options)
    score = np.abs(result.observed).sum(-1)
    score = score / np.maximum(score.max(axis=1, keepdims=True), np.finfo(score.dtype).tiny)
    return score[mask], score[~mask], site_auroc(score, mask)


def run_attribute(model_path, cfg: AttributeConfig, out_dir, plots_dir, data=None,
                  ground_truth=None, device=None, log=print) -> dict:
    """Attribute the positives of cfg.split for every task of the checkpoint at `model_path`
    (`write_attributions` into `out_dir`); write plots_dir/conservation.png (LRP) and, with
    ground truth that has site positions, plots_dir/dist_attribution.png (cfg.compare methods at
    planted sites against background). Returns a summary: sequences per task, the largest
    conservation error (LRP) and the mean site AUROC per task and method."""
    data_cfg = checkpoint_data(model_path, data)
    ensemble = load_ensemble(model_path, cfg, data_cfg, device)
    model, models, weights = load_model(model_path), ensemble.models, ensemble.weights
    dataset = load_dataset(data_cfg).subset(cfg.split)
    results = write_attributions(ensemble, dataset, out_dir)
    if not results:
        raise InputError(f"--split: no positive {cfg.split} sequence for any task")
    write_settings(cfg, out_dir)
    described = (f", the {'weighted ' if weights is not None else ''}mean of {len(models)} "
                f"replicates (seeds {', '.join(ensemble.seeds)}; each one's "
                f"contributions in <task>/{REPLICATES_NAME})" if len(models) > 1 else "")
    log(f"wrote {out_dir}/<task>/ohe.npz, hyp.npz for {len(results)} tasks ({cfg.method}"
        f"{described})")
    per_task = {} if weights is None else {
        t: [round(float(w), 4) for w in weights[:, k]] for k, t in enumerate(model.task_names)}
    if per_task:
        log("replicate weights per task (validation auROC above chance): " + "; ".join(
            f"{t} " + "/".join(f"{w:.2f}" for w in ws) for t, ws in per_task.items()))
    summary = {"method": cfg.method, "split": cfg.split, "replicates": len(models),
               **({"replicate_weights": per_task} if per_task else {}),
               **({"composite": cfg.composite} if cfg.method == "lrp" else {}),
               "sequences": {t: len(r.logits) for t, r in results.items()}}
    if cfg.method == "lrp":
        cat = {k: np.concatenate([getattr(r, k) for r in results.values()])
               for k in ("logits", "bias_relevance", "reference_relevance", "observed")}
        figures.plot_conservation(cat["logits"], cat["observed"].sum((1, 2)),
                                  cat["bias_relevance"] + cat["reference_relevance"],
                                  Path(plots_dir) / "conservation.png")
        error = float(np.concatenate([r.conservation_error for r in results.values()]).max())
        summary["conservation_error"] = error
        log(f"wrote {plots_dir}/conservation.png; largest relative conservation error {error:.1e}")
    truth = ground_truth_for(data_cfg, ground_truth)
    if truth is None or truth.sites is None:
        log("no planted-site positions (give --ground-truth with a site table): no "
            "dist_attribution.png")
        return summary
    lrp = _lrp_options(cfg, data_cfg)
    if "lrp" in cfg.compare:
        lrp = _calibrated(model, "lrp", lrp, dataset.seq_len, cfg.attribution_batch_size, device)
    summary["site_auroc"] = _compare_at_sites(model, dataset, truth, cfg, plots_dir, device, log,
                                              lrp)
    return summary


def _compare_at_sites(model, dataset, truth: GroundTruth, cfg, plots_dir, device, log,
                      lrp) -> dict:
    per_method = {m: ([], []) for m in cfg.compare}
    aurocs = {}
    onehot_all = dataset.one_hot()
    for k, task in enumerate(model.task_names):
        rows = dataset.positives(task)[:cfg.max_sequences]
        if not len(rows):
            continue
        mask = site_mask(truth.sites_of([dataset.ids[r] for r in rows], task), dataset.seq_len)
        for m in cfg.compare:
            site, background, auroc = _site_and_background(
                model, onehot_all[rows], mask, k, m, cfg.attribution_batch_size, device,
                lrp if m == "lrp" else {})
            per_method[m][0].append(site)
            per_method[m][1].append(background)
            aurocs.setdefault(task, {})[m] = float(np.nanmean(auroc))
        log(f"  {task:<14} site AUROC of the first {len(rows)} positives: "
            + ", ".join(f"{m} {a:.3f}" for m, a in aurocs[task].items()))
    path = figures.plot_dist_attribution(
        {m: (np.concatenate(s), np.concatenate(b)) for m, (s, b) in per_method.items()},
        path=Path(plots_dir) / "dist_attribution.png")
    log(f"wrote {path}")
    return aurocs


def first_positive(dataset, task_name: str, hint: str) -> int:
    """Row of the first positive sequence of `task_name` in `dataset`; an InputError ending in
    `hint` (how to choose sequences instead) when the dataset has no such labels or positives."""
    if task_name not in dataset.task_names:
        raise InputError(f"--data: has no labels for task {task_name!r}; {hint}")
    positives = dataset.positives(task_name)
    if len(positives) == 0:
        raise InputError(f"--split: no positive sequence of task {task_name!r}; {hint}")
    return int(positives[0])


def _safe(name):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name))


def remove_saliency_figures(plots_dir):
    """Delete the saliency_<task>_<id>.png figures an earlier run left in plots_dir."""
    for path in Path(plots_dir).glob("saliency_*.png"):
        path.unlink()


def saliency_figures(model, onehot, ids, targets, method, plots_dir, truth=None, rows=None,
                     flank=12, device=None, log=print) -> list[Path]:
    """For each target task (names or indices) and its sequences, plots_dir/saliency_<task>_<id>.png
    (hypothetical scores as a heatmap, the observed track as a logo, planted sites shaded), and
    plots_dir/zoomed_in_sample.png around the first one's first site (or its most relevant
    position). onehot (N, l, 4) and ids (N) are the candidate sequences; `rows` maps each target
    to its rows (default: all)."""
    written, zoom = [], None
    for target in targets:
        k = task_index(model, target)
        name = model.task_names[k]
        chosen = list(range(len(onehot))) if rows is None else rows[target]
        result = explain(model, onehot[chosen], target=k, method=method, device=device)
        sites = (truth.sites_of([ids[r] for r in chosen], name) if truth is not None
                 else [[] for _ in chosen])
        for j, r in enumerate(chosen):
            title = f"{name} · {ids[r]} · {method} · logit {result.logits[j]:+.3f}"
            path = figures.plot_attribution(onehot[r], result.hypothetical[j], sites[j], title,
                                            path=Path(plots_dir) / f"saliency_{_safe(name)}_"
                                                                   f"{_safe(ids[r])}.png")
            written.append(path)
            log(f"wrote {path}")
            if zoom is None:
                zoom = (onehot[r], result.hypothetical[j], sites[j], title,
                        result.observed[j].sum(-1))
    x, hyp, sites, title, position = zoom
    start, end = (sites[0][0], sites[0][1]) if sites else (int(abs(position).argmax()),) * 2
    window = (max(0, start - flank), min(len(x), max(end, start + 1) + flank))
    path = figures.plot_attribution(x, hyp, sites, title, window=window,
                                    path=Path(plots_dir) / "zoomed_in_sample.png")
    log(f"wrote {path}")
    return written + [path]


def saliency_rows(dataset, model, targets, ids=None) -> dict:
    """{target: rows of `dataset` to draw}: the rows of `ids` for every target, or each target
    task's first positive sequence."""
    if ids is not None:
        unknown = [i for i in ids if i not in dataset.ids]
        if unknown:
            raise InputError(f"--ids: not in the split: {', '.join(unknown[:5])}")
        return {t: [dataset.ids.index(i) for i in ids] for t in targets}
    return {t: [first_positive(dataset, model.task_names[task_index(model, t)],
                               "choose sequences with --ids")] for t in targets}


HELIX_WINDOW = 40  # bp drawn by default, centred on the first site or the most relevant position


def helix_data(model, onehot, target, method, label, window=None, sites=(), device=None,
               **options) -> dict:
    """One sequence (onehot (1, l, 4)) attributed for `target` and cut to the helix window:
    {"sequence", "relevance" (w,), "start", "title", "sites" (those overlapping the window),
    "label" (the colour scale's)}, the keyword arguments of `plot_helix` and `helix_plotly`.
    `window` (start, end) chooses the bases (default HELIX_WINDOW bp around the first of
    `sites` [(start, end, label)], or else around the most relevant position). `options`: the
    method's (an LRP composite)."""
    k = task_index(model, target)
    result = explain(model, onehot, target=k, method=method, device=device, **options)
    relevance = result.observed[0].sum(-1)
    length = len(relevance)
    if window is None:
        centre = ((sites[0][0] + sites[0][1]) // 2 if sites
                  else int(np.abs(relevance).argmax()))
        start = min(max(0, centre - HELIX_WINDOW // 2), max(0, length - HELIX_WINDOW))
        window = (start, min(length, start + HELIX_WINDOW))
    start, end = window
    if not 0 <= start < end <= length:
        raise InputError(f"--window: {start} {end} is not inside the {length}-bp sequence")
    units = "relevance (logit units)" if method == "lrp" else f"{method} score"
    return {"sequence": one_hot_to_strings(onehot)[0][start:end],
            "relevance": relevance[start:end], "start": start,
            "title": f"{model.task_names[k]} · {label} · {method} · bp {start}-{end}",
            "sites": [s for s in sites if s[0] < end and s[1] > start],
            "label": f"{'LRP ' if method == 'lrp' else ''}{units}"}


def helix_figures(model, onehot, target, method, label, png, html=None, window=None,
                  device=None, sites=()) -> tuple[Path, Path | None]:
    """One sequence (onehot (1, l, 4)) as a double helix coloured by its relevance for
    `target` (`helix_data`): `png` and, when plotly is installed, the interactive `html`.
    `sites` [(start, end, label)] are marked; `window` (start, end) chooses the bases drawn."""
    data = helix_data(model, onehot, target, method, label, window, sites, device)
    args = (data["sequence"], data["relevance"], data["title"])
    options = {k: data[k] for k in ("start", "sites", "label")}
    png = figures.plot_helix(*args, path=png, **options)
    html = figures.write_helix_html(html, *args, **options) if html else None
    return png, html


def example_helix(model, dataset, method, plots_dir, truth=None, device=None,
                  **options) -> dict | None:
    """plots_dir/helix.png and, with plotly, helix.html (`helix_figures`) for the first
    positive test sequence of the first task that has one, a task whose sequence has a known
    site (`truth`) first. Returns `helix_data`'s dict with "task", "id", "png" and "html" added;
    None when no task has a positive test sequence. `options`: the method's."""
    test = dataset.subset("test")
    choice = None
    for task in model.task_names:
        if task not in test.task_names or not len(test.positives(task)):
            continue
        row = int(test.positives(task)[0])
        sites = truth.sites_of([test.ids[row]], task)[0] if truth is not None else []
        if choice is None or (sites and not choice[2]):
            choice = (task, row, sites)
        if sites:
            break
    if choice is None:
        return None
    task, row, sites = choice
    data = helix_data(model, test.one_hot()[row:row + 1], task, method, test.ids[row],
                      sites=sites, device=device, **options)
    args = (data["sequence"], data["relevance"], data["title"])
    options = {k: data[k] for k in ("start", "sites", "label")}
    png = figures.plot_helix(*args, path=Path(plots_dir) / "helix.png", **options)
    html = figures.write_helix_html(Path(plots_dir) / "helix.html", *args, **options)
    return data | {"task": task, "id": test.ids[row], "png": png, "html": html}

