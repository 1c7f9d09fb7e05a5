"""Attribution methods and LRP composites side by side, judged against planted sites, on several
trained models.

    python experiments/attribution.py --models final_models/best_model.pt other.pt ...
        [--max-sequences 32] [--composites all] [--name attribution]
    python experiments/attribution.py --merge NAME NAME ... --name attribution

For every model and task, the task's positive test sequences (at most --max-sequences) are
attributed with each method (LRP once per composite), target = that task. Per sequence:
site AUROC of |R| (summed over bases) against the planted positions of the task's motif(s), the
AUROC of the positive part of R alone, the average precision (AUPRC) of |R|, and faithfulness
Delta A_F with removed positions set to N and set to the bases of a dinucleotide shuffle (20
steps each). Per method: the cost, time of attributing one batch over a no-grad forward pass of
it (the peer; best of --repeats, each right after a forward pass), plus the one-time reference
statistics of composites that have them; the largest relative conservation error (LRP); the
paired bootstrap 95 % interval of (method - ISM) over sequences on every measure, per model;
the share of planted GATA1 sites whose central base gets positive relevance; and the ratio of
mean |R| at the background positions that max pooling picks to that at other background
positions. Diagnostics on the first model: the share of site relevance that reaches the input
through the residual path alone, and exact Shapley values over GATA1 sites (N and random-base
references), for the best composite (below) and mambalrp. DeepLIFT/SHAP (tangermeme, 20
shuffles) is tried on 8 sequences and its convergence delta reported. Results go to
bench/results/<name>.json (docs/results.md). On a machine with few cores, one run per model
side by side (each with --threads 1 and NUMBA_NUM_THREADS=1, so that no run's thread pool waits
on a core another run holds), then --merge of their results, gives the same table sooner; the
merge computes the first model's diagnostics when its run did not, and only while that
checkpoint is still the file the run measured (each run records its checkpoints' SHA-256).

Targets for the default composite on every model: the interval of (LRP - ISM) site AUROC
includes 0 or lies above it; Delta A_F >= 0.9 x ISM's under both replacements; better than
saliency, grad_x_input and corrected on every measure; <= 3.5 forwards; conservation <= 1e-6.
The best composite, the one the package default should be: the best mean rank over the five
measures and the models, among the composites within 3.5 forwards on every model.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from results import RESULTS, record  # noqa: E402

from caduceus_lrp.attribute import background_sequences, checkpoint_data  # noqa: E402
from caduceus_lrp.attribution_metrics import (faithfulness, paired_interval,  # noqa: E402
                                              site_auprc, site_auroc, site_mask)
from caduceus_lrp.checkpoint import load_finetuned  # noqa: E402
from caduceus_lrp.data import ground_truth_for, load_dataset  # noqa: E402
from caduceus_lrp.explanation_model import explain, lrp_references  # noqa: E402
from caduceus_lrp.lrp_composites import (COMPOSITES, DEFAULT_COMPOSITE,  # noqa: E402
                                         needs_references)
from caduceus_lrp.lrp_diagnostics import pooled_positions, residual_only, site_shapley  # noqa: E402

MEASURES = ["site AUROC", "AUROC R>0", "AUPRC", "ΔA_F N", "ΔA_F shuffle"]
COLUMNS = ["model", "method", *MEASURES, *[f"{m} − ISM [95 % CI]" for m in MEASURES],
           "forwards", "conservation", "GATA1 centre > 0", "pooled / other background |R|"]
ONE_PASS = ("saliency", "grad_x_input", "corrected")


def entries(composites, comparators=True):
    """[(label, method, options)]: the one-pass gradient methods, LRP per composite, the
    integrated and expected gradients (unless not `comparators`), ISM (the peer of the
    intervals) last."""
    references = [("integrated_gradients N", "integrated_gradients", {"baseline": "N"}),
                  ("integrated_gradients 10 shuffles", "integrated_gradients",
                   {"baseline": "shuffle", "n_references": 10, "n_steps": 20}),
                  ("expected_gradients 20 shuffles", "expected_gradients", {"n_references": 20})]
    return ([(m, m, {}) for m in ONE_PASS]
            + [(f"lrp {c}", "lrp", {"composite": c}) for c in composites]
            + (references if comparators else []) + [("ism", "ism", {})])


def time_ratio(model, X, method, options, repeats):
    """Best-of-`repeats` time of `method` on the batch X over the best time of a no-grad forward
    pass of X, each method pass right after a forward pass (same machine load). A composite's
    reference statistics come precomputed in `options` (their one-time cost is reported apart)."""
    forward, attribution = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        with torch.no_grad():
            model(onehot=torch.from_numpy(X))
        forward.append(time.perf_counter() - t)
        t = time.perf_counter()
        explain(model, X, batch_size=len(X), **dict(options, method=method))
        attribution.append(time.perf_counter() - t)
    return min(attribution) / min(forward)


def central_signs(observed, sites, motif):
    """+1 / -1 / 0 per planted site of `motif`: the sign of the relevance of its central base."""
    position = observed.sum(-1)
    return [np.sign(position[i, (s + e) // 2]) for i, seq in enumerate(sites)
            for s, e, name in seq if name == motif]


def evaluate(model, onehot, tasks, label, method, options, steps):
    """Per-sequence measures {measure: (n,)} over all tasks, the task of each sequence, the
    largest conservation error, the GATA1 central-base signs and the pooled-position ratio."""
    per = {m: [] for m in MEASURES}
    task_of, conservation, signs, ratio_site, ratio_rest = [], [], [], [], []
    for k, name, rows, mask, sites, picked in tasks:
        result = explain(model, onehot[rows], target=k, method=method, **options)
        observed = result.observed
        score = np.abs(observed).sum(-1)
        per["site AUROC"].append(site_auroc(score, mask))
        per["AUROC R>0"].append(site_auroc(np.clip(observed.sum(-1), 0, None), mask))
        per["AUPRC"].append(site_auprc(score, mask))
        for replacement in ("N", "shuffle"):
            per[f"ΔA_F {replacement}"].append(faithfulness(
                model, onehot[rows], observed.sum(-1), target=k, steps=steps,
                replacement=replacement))
        task_of += [name] * len(rows)
        if result.conservation_error is not None:
            conservation.append(result.conservation_error.max())
        signs += central_signs(observed, sites, "GATA1")
        if picked is not None:
            background = ~mask
            ratio_site.append(score[picked & background])
            ratio_rest.append(score[~picked & background])
        print(f"    {label} {name}: site AUROC {np.nanmean(per['site AUROC'][-1]):.3f}",
              file=sys.stderr)
    out = {m: np.concatenate(v) for m, v in per.items()}
    ratio = (np.concatenate(ratio_site).mean() / np.concatenate(ratio_rest).mean()
             if ratio_site else np.nan)
    return (out, np.array(task_of), max(conservation) if conservation else None,
            np.mean(np.array(signs) > 0) if signs else np.nan, ratio)


def diagnostics(model, onehot, tasks, composite, n_sites):
    """Residual-path share of site relevance for `composite` and for mambalrp, and the GATA1
    central base under exact Shapley values (N and random references) beside LRP."""
    lines = []
    for name in dict.fromkeys([composite, "mambalrp"]):
        share = []
        for k, task, rows, mask, _, _ in tasks:
            full = explain(model, onehot[rows], target=k, composite=name).observed.sum(-1)
            resid = explain(model, onehot[rows], target=k,
                            composite=residual_only(name)).observed.sum(-1)
            share.append((resid * mask).sum(1) / (full * mask).sum(1))
        share = np.concatenate(share)
        lines.append(f"{name}: relevance at planted sites through the residual path alone, "
                     f"median share {np.median(share):.2f} (IQR {np.percentile(share, 25):.2f}"
                     f"-{np.percentile(share, 75):.2f})")
    gata = next((t for t in tasks if t[1] == "GATA1"), None)
    if gata is None:
        return lines, {}
    k, _, rows, _, sites, _ = gata
    found = [(r, s, e) for r, seq in zip(rows, sites) for s, e, m in seq if m == "GATA1"][:n_sites]
    shap = {"N": [], "random": []}
    lrp_sign = {c: [] for c in dict.fromkeys([composite, "mambalrp"])}
    for r, s, e in found:
        for ref in shap:
            phi = site_shapley(model, onehot[r], np.arange(s, e), target=k, reference=ref)
            shap[ref].append(phi)
        for c in lrp_sign:
            rel = explain(model, onehot[r:r + 1], target=k, composite=c).observed[0].sum(-1)
            lrp_sign[c].append(rel[s:e])
    centre = (found[0][2] - found[0][1]) // 2 if found else 0
    summary = {f"Shapley ({ref} reference)": float(np.mean([p[centre] > 0 for p in v]))
               for ref, v in shap.items()}
    summary |= {f"lrp {c}": float(np.mean([p[centre] > 0 for p in v]))
                for c, v in lrp_sign.items()}
    agree = {c: float(np.mean([np.mean(np.sign(a) == np.sign(b)) for a, b in
                               zip(v, shap["random"])])) for c, v in lrp_sign.items()}
    lines.append(f"GATA1 central base positive over {len(found)} sites: " + ", ".join(
        f"{k} {v:.2f}" for k, v in summary.items()))
    lines.append("sign agreement with Shapley (random reference) over the site's positions: "
                 + ", ".join(f"lrp {c} {v:.2f}" for c, v in agree.items()))
    return lines, summary


def deep_lift_shap_delta(model, X, target):
    """tangermeme's DeepLIFT/SHAP (20 dinucleotide shuffles) with the package's SiLU and RMSNorm
    given tangermeme's rules: the largest |convergence delta| relative to the mean |f(x) -
    f(ref)|, or the error it raised."""
    from tangermeme.deep_lift_shap import _nonlinear, _rmsnorm, deep_lift_shap

    from caduceus_lrp.layers import RMSNorm, SiLU

    class ChannelsFirst(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model(onehot=x.transpose(1, 2)).logits

    for m in model.modules():
        if isinstance(m, RMSNorm):
            m.normalized_shape = tuple(m.weight.shape)
    wrapper = ChannelsFirst().eval()
    x = torch.from_numpy(X).float().transpose(1, 2).contiguous()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            attr, refs = deep_lift_shap(wrapper, x, target=target, n_shuffles=20,
                                        return_references=True, random_state=0, device="cpu",
                                        additional_nonlinear_ops={SiLU: _nonlinear,
                                                                  RMSNorm: _rmsnorm})
        with torch.no_grad():
            fx = wrapper(x)[:, target]
            fr = torch.stack([wrapper(refs[:, j])[:, target] for j in range(refs.shape[1])], 1)
        delta = attr.sum((1, 2)) - (fx - fr.mean(1))
        return (f"max |Σ attribution - (f(x) - mean f(ref))| = {delta.abs().max():.3g}, relative "
                f"to mean |f(x) - f(ref)| {(delta.abs() / (fx[:, None] - fr).abs().mean(1)).max():.2f}"
                f"; tangermeme warnings: {len(caught)}")
    except Exception as err:  # the statement is the measurement
        return f"failed: {type(err).__name__}: {err}"
    finally:
        for m in model.modules():
            m.__dict__.pop("normalized_shape", None)


def model_labels(paths) -> dict:
    """{path: its folder's name}, or the last two folders where names repeat."""
    names = [Path(p).parent.name for p in paths]
    return {p: (n if names.count(n) == 1 else "/".join(Path(p).parent.parts[-2:]))
            for p, n in zip(paths, names)}


COST_BUDGET = 3.5  # forward passes per sequence a default composite may cost


def best_composite(rows, composites) -> str:
    """The composite of the best mean rank over MEASURES and models (rank 1 the highest value
    among `composites` on one measure of one model), among those whose cost per sequence
    (one-time references left out) is within COST_BUDGET on every model; ties go to the order
    of `composites`."""
    lrp = {f"lrp {c}": c for c in composites}
    ranks = {c: [] for c in composites}
    cost = {c: 0.0 for c in composites}
    for model in dict.fromkeys(r[0] for r in rows):
        mine = {lrp[r[1]]: r for r in rows if r[0] == model and r[1] in lrp}
        for k in map(COLUMNS.index, MEASURES):
            order = sorted(mine, key=lambda c: -mine[c][k])
            for c in mine:
                ranks[c].append(1 + order.index(c))
        for c, r in mine.items():  # "2.3" or "2.3 + 128 once"
            cost[c] = max(cost[c], float(str(r[COLUMNS.index("forwards")]).split()[0]))
    ranked = [c for c in composites if ranks[c]]
    within = [c for c in ranked if cost[c] <= COST_BUDGET] or ranked
    return min(within, key=lambda c: np.mean(ranks[c]))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["final_models/best_model.pt"])
    parser.add_argument("--composites", nargs="+", default=list(COMPOSITES),
                        choices=list(COMPOSITES))
    parser.add_argument("--max-sequences", type=int, default=32, help="positive test sequences per task")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="ΔA_F perturbation steps")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (the best counts)")
    parser.add_argument("--shapley-sites", type=int, default=12)
    parser.add_argument("--no-comparators", action="store_true",
                        help="leave out integrated and expected gradients (a quick pilot)")
    parser.add_argument("--name", default="attribution", help="result name (bench/results/)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--merge", nargs="+", metavar="NAME",
                        help="instead of attributing, join the results NAME ... of earlier runs "
                             "(one or more models each, run side by side) into --name")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.merge:
        missing = [n for n in args.merge for suffix in ("", "-tasks")
                   if not (RESULTS / f"{n}{suffix}.json").is_file()]
        if missing:
            parser.error(f"--merge: no result {RESULTS / missing[0]}.json (or its -tasks.json)")
        return merge(args)
    rows, per_task, notes = [], {}, []
    labels = model_labels(args.models)
    hashes = {p: sha256(p) for p in args.models}
    for model_path in args.models:
        model, onehot, tasks, background = prepare(model_path, args.max_sequences)
        n_seq = sum(len(t[2]) for t in tasks)
        print(f"{model_path}: {len(tasks)} tasks, {n_seq} positive test sequences", file=sys.stderr)
        results = {}
        for label, method, options in entries(args.composites, not args.no_comparators):
            options = dict(options, batch_size=args.batch_size)
            if method == "lrp":  # calibrated once per model and composite, reported apart
                options["references"] = lrp_references(model, options["composite"], background,
                                                       batch_size=args.batch_size)
            results[label] = evaluate(model, onehot, tasks, label, method, options, args.steps)
            cost = time_ratio(model, onehot[tasks[0][2][:args.batch_size]], method,
                              {k: v for k, v in options.items() if k != "batch_size"},
                              args.repeats)
            results[label] += (cost,)
        ism = results["ism"][0]
        for label, (per, task_of, cons, gata, ratio, cost) in results.items():
            intervals = [paired_interval(per[m], ism[m]) for m in MEASURES]
            once = (f" + {len(background)} once" if label.startswith("lrp")
                    and needs_references(label.split(" ", 1)[1]) else "")
            rows.append([labels[model_path], label,
                         *[round(float(np.nanmean(per[m])), 3) for m in MEASURES],
                         *[f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]" for d, lo, hi in intervals],
                         f"{cost:.1f}{once}", None if cons is None else float(f"{cons:.1e}"),
                         round(float(gata), 2), round(float(ratio), 2)])
            for task in dict.fromkeys(task_of):
                sel = task_of == task
                per_task.setdefault((task, label), []).append(
                    (np.nanmean(per["site AUROC"][sel]), np.mean(per["ΔA_F N"][sel])))
        if model_path == args.models[0]:
            first = (model, onehot, tasks)
        if model_path != args.models[-1]:  # a partial table survives an interrupted run
            write(args, rows, per_task, notes + [
                f"Partial: {len(set(r[0] for r in rows))} of {len(args.models)} models; the "
                "diagnostics follow the last one."], hashes)
    notes += [f"{labels[args.models[0]]}: {line}"
              for line in first_diagnostics(*first, rows, args)]
    write(args, rows, per_task, notes, hashes)


def prepare(model_path, max_sequences):
    """(model, test one-hot (n, L, 4), tasks, background one-hot) of a trained model; tasks:
    (index, name, rows of at most `max_sequences` positives, site mask (n_k, L), planted sites,
    positions max pooling picks (n_k, L) or None) per task with positives."""
    model = load_finetuned(model_path)
    cfg = checkpoint_data(model_path)
    truth = ground_truth_for(cfg, None)
    test = load_dataset(cfg).subset("test")
    onehot = test.one_hot()
    tasks = []
    for k, task in enumerate(model.task_names):
        chosen = test.positives(task)[:max_sequences]
        if not len(chosen):
            continue
        sites = truth.sites_of([test.ids[r] for r in chosen], task)
        picked = (pooled_positions(model, onehot[chosen]) if model.head.pooling == "max"
                  else None)
        tasks.append((k, task, chosen, site_mask(sites, test.seq_len), sites, picked))
    return model, onehot, tasks, background_sequences(cfg)


def first_diagnostics(model, onehot, tasks, rows, args):
    """The diagnostics lines of one model, for the best composite of `rows` and mambalrp, and
    the DeepLIFT/SHAP attempt on 8 sequences of its first task."""
    lines, _ = diagnostics(model, onehot, tasks, best_composite(rows, args.composites),
                           args.shapley_sites)
    k, _, chosen, *_ = tasks[0]
    lines.append("DeepLIFT/SHAP (tangermeme, 20 shuffles, 8 sequences): "
                 + deep_lift_shap_delta(model, onehot[chosen[:8]], k))
    return lines


def merge(args):
    """One table from the results `args.merge` of earlier runs of this script (each on one or
    more models, run side by side to use the cores): their rows relabelled over all models, the
    per-task means over all models, the diagnostics each kept, and those of the first model
    computed here when its run did not get to them."""
    sources = []
    for name in args.merge:
        source = json.loads((RESULTS / f"{name}.json").read_text())
        named = model_labels(parse_models(source["command"]))
        present = {r[0] for r in source["rows"]}  # a partial table holds fewer models
        sources.append((name, source, {p: n for p, n in named.items() if n in present}))
    labels = model_labels([p for *_, named in sources for p in named])
    rows, per_task, notes = [], {}, []
    for name, source, named in sources:
        relabel = {n: labels[p] for p, n in named.items()}
        rows += [[relabel[r[0]], *r[1:]] for r in source["rows"]]
        tasks = json.loads((RESULTS / f"{name}-tasks.json").read_text())["rows"]
        for task, label, *values in tasks:
            per_task.setdefault((task, label), []).extend([tuple(values)] * len(named))
        for note in source["notes"].split("\n\n"):
            label, _, text = note.partition(": ")
            if label in relabel:
                notes.append(f"{relabel[label]}: {text}")
        notes.append(f"{', '.join(relabel.values())}: from `{source['command']}` "
                     f"({source['date']}, load {source['machine'].get('load_average')}).")
    hashes = {p: h for _, source, named in sources
              for p, h in source.get("extra", {}).get("checkpoints", {}).items() if p in named}
    first = next(iter(sources[0][2]))
    if not any(n.startswith(f"{labels[first]}: ") and "DeepLIFT" in n for n in notes):
        if hashes.get(first) != sha256(first):  # its diagnostics would not match its rows
            raise SystemExit(f"--merge: {first} is not the checkpoint {sources[0][0]} measured "
                             f"(sha256 recorded: {hashes.get(first) or 'none'}); its "
                             "diagnostics cannot be added here: rerun that model")
        model, onehot, tasks, _ = prepare(first, args.max_sequences)
        notes = [f"{labels[first]}: {line}"
                 for line in first_diagnostics(model, onehot, tasks, rows, args)] + notes
    write(args, rows, per_task, notes, hashes)


def sha256(path) -> str:
    """The SHA-256 of a checkpoint file, recorded with its rows."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def parse_models(command: str) -> list[str]:
    """The --models paths of a recorded command line of this script."""
    return build_parser().parse_known_args(shlex.split(command)[1:])[0].models


def write(args, rows, per_task, notes, hashes):
    """Record the table of the models done so far (with `hashes`, {checkpoint: sha256}) and its
    per-task companion."""
    best = best_composite(rows, args.composites)
    notes = notes + [f"Best composite (best mean rank over the {len(MEASURES)} measures and the "
                     f"models, within {COST_BUDGET} forwards): {best}; "
                     f"the package default (lrp_composites.DEFAULT_COMPOSITE): "
                     f"{DEFAULT_COMPOSITE}."]
    task_rows = [[task, label, *np.round(np.mean(v, axis=0), 3)]
                 for (task, label), v in sorted(per_task.items())]
    default = [r for r in rows if r[1] == f"lrp {best}"]
    record(args.name, "Attribution methods and LRP composites against planted sites",
           COLUMNS, rows, peer="ism (interval columns); a no-grad forward pass (cost)",
           notes="\n\n".join(notes),
           headline=(f"LRP (composite {best}) site AUROC "
                     + ", ".join(str(r[COLUMNS.index("site AUROC")]) for r in default)
                     + f" on {len(default)} models; − ISM: "
                     + "; ".join(r[COLUMNS.index("site AUROC − ISM [95 % CI]")] for r in default)),
           extra={"checkpoints": hashes})
    record(f"{args.name}-tasks", "Attribution per task (mean over the models)",
           ["task", "method", "site AUROC", "ΔA_F N"], task_rows)


if __name__ == "__main__":
    main()
