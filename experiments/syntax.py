"""Does the analysis find the embedded dataset's rules in a trained model: which motif drives which
task, the TAL1::TCF3-GATA1 composite element's spacing, where the motifs are, and what a
mutation does?

    python experiments/syntax.py RUN [--n-backgrounds 128] [--spacing-backgrounds 32]
        [--max-spacing 24] [--name syntax]

RUN is a pipeline output folder (`python -m caduceus_lrp --out RUN --steps train attribute
motifs`) trained on the current embedded dataset. Checks, each against its target:
- marginalization (JASPAR consensus of each planted motif, the decoy, and the composite element
  TAL1::TCF3 + 9 bp + GATA1, into dinucleotide shuffles of test sequences on both strands):
  every planted motif moves its own task more than any other motif does, with separated 95 %
  intervals; the decoy's interval on every task includes 0 or its effect stays under 10 % of that
  task's own effect; on the cooperative task, TAL1::TCF3 alone and GATA1 alone each move it by
  less than half of what the composite does;
- spacing (TAL1::TCF3 then GATA1, 0..max bp, four orientations): the cooperative task's largest
  effect is at ++ and 9 bp, where the interaction's interval lies above 0;
- instances (the analysis step's instances with its default settings: seqlets of the run's
  LRP attributions, then of the attributions once those are replaced by N, Tomtom against
  JASPAR and the stacked run's patterns, FIMO): recall and precision >= 0.8 against the planted
  sites for CTCF, TAL1::TCF3, Spi1 and CEBPB (an instance counts when it overlaps a site and
  matches the motif or its JASPAR family); every motif is reported;
- variants (test sequences): the most informative base of each planted site (highest
  information content) changed to its least likely base lowers the site's task logit in >= 90 %
  of sites; a random base >= 10 bp from every planted site changes it by less than 10 % of the
  task's median site effect in >= 90 % of cases.
Results go to bench/results/<name>.json (docs/results.md).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from results import record  # noqa: E402

from caduceus_lrp.analysis import (AnalysisConfig, Variants, backgrounds,  # noqa: E402
                                   composite, jaspar_motif, load_inputs, load_patterns_of,
                                   marginalize, preferred, run_instances, spacing_sweep,
                                   variant_effects)
from caduceus_lrp.data.synthetic import COOPERATIVE_TASK, DECOY_MOTIF, TASK_MOTIFS  # noqa: E402
from caduceus_lrp.sequence import BASES  # noqa: E402

PLANTED_SPACING = 9
MOTIFS_WITH_TARGETS = {"CTCF": "CTCF", "TAL1": "TAL1::TCF3", "SPI1": "Spi1", "CEBPB": "CEBPB"}


def marginalization_checks(model, dataset, n, rows):
    motifs = {task: jaspar_motif(mid) for task, mid in TASK_MOTIFS.items()}
    decoy = jaspar_motif(DECOY_MOTIF)
    first, second = COOPERATIVE_TASK.split("+")
    pair = composite(motifs[first], motifs[second], PLANTED_SPACING, "++")
    background = backgrounds(dataset, "shuffle", n, seed=0)
    table = marginalize(model, [*motifs.values(), decoy, pair], background)
    cell = table.set_index(["motif", "task"])
    singles = [m.name for m in motifs.values()] + [decoy.name]
    own = {}
    for task, motif in motifs.items():
        mine = cell.loc[(motif.name, task)]
        others = [(m, cell.loc[(m, task)]) for m in singles if m != motif.name]
        best_name, best = max(others, key=lambda o: o[1]["effect"])
        separated = mine["ci_low"] > max(o["ci_high"] for _, o in others)
        own[task] = mine["effect"]
        rows.append([f"marginalization: {motif.name} on {task} vs any other motif",
                     "own effect largest, intervals separated",
                     f"{mine['effect']:+.2f} [{mine['ci_low']:+.2f}, {mine['ci_high']:+.2f}] vs "
                     f"{best_name} {best['effect']:+.2f} [{best['ci_low']:+.2f}, "
                     f"{best['ci_high']:+.2f}]",
                     bool(mine["effect"] > best["effect"] and separated)])
    coop = cell.loc[(pair.name, COOPERATIVE_TASK)]
    own[COOPERATIVE_TASK] = coop["effect"]
    for task in [*TASK_MOTIFS, COOPERATIVE_TASK]:
        d = cell.loc[(decoy.name, task)]
        ok = d["ci_low"] <= 0 <= d["ci_high"] or abs(d["effect"]) < 0.1 * own[task]
        rows.append([f"marginalization: decoy {decoy.name} on {task}",
                     "interval includes 0 or abs(effect) < 10 % of own",
                     f"{d['effect']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] "
                     f"(own {own[task]:+.2f})", bool(ok)])
    for task in (first, second):
        single = cell.loc[(motifs[task].name, COOPERATIVE_TASK)]
        rows.append([f"marginalization: {motifs[task].name} alone on {COOPERATIVE_TASK}",
                     "< half of the composite's effect",
                     f"{single['effect']:+.2f} vs composite {coop['effect']:+.2f} "
                     f"[{coop['ci_low']:+.2f}, {coop['ci_high']:+.2f}]",
                     bool(single["effect"] < 0.5 * coop["effect"])])
    return table


def spacing_checks(model, dataset, n, max_spacing, rows):
    first, second = COOPERATIVE_TASK.split("+")
    a, b = jaspar_motif(TASK_MOTIFS[first]), jaspar_motif(TASK_MOTIFS[second])
    table = spacing_sweep(model, a, b, backgrounds(dataset, "shuffle", n, seed=1),
                          range(max_spacing + 1))
    best = preferred(table, COOPERATIVE_TASK)
    at = table[(table["task"] == COOPERATIVE_TASK) & (table["orientation"] == "++")
               & (table["spacing"] == PLANTED_SPACING)].iloc[0]
    rows.append([f"spacing: {a.name} then {b.name} on {COOPERATIVE_TASK}",
                 f"peak at ++ {PLANTED_SPACING} bp",
                 f"peak {best['orientation']} {best['spacing']} bp, effect "
                 f"{best['effect']:+.2f} [{best['effect_ci'][0]:+.2f}, "
                 f"{best['effect_ci'][1]:+.2f}]; tied with it: "
                 f"{', '.join(best['tied']) or 'none'}",
                 bool(best["orientation"] == "++" and best["spacing"] == PLANTED_SPACING)])
    rows.append([f"spacing: interaction at ++ {PLANTED_SPACING} bp", "interval above 0",
                 f"{at['interaction']:+.2f} [{at['ci_low']:+.2f}, {at['ci_high']:+.2f}]",
                 bool(at["ci_low"] > 0)])
    return table


def instance_checks(run, dataset, truth, rows):
    patterns = load_patterns_of(run / "modisco_files")
    with tempfile.TemporaryDirectory() as scratch:  # the run's own instances.tsv is left alone
        table, recovery, _ = run_instances(
            dataset, AnalysisConfig(), patterns, truth, run / "modisco_files" / "attributions",
            "all", scratch, model_path=run / "final_models" / "best_model.pt")
    for r in recovery.to_dict("records"):
        target = MOTIFS_WITH_TARGETS.get(r["task"]) == r["motif"]
        single = ("" if r["recall_single"] != r["recall_single"]
                  else f" ({r['recall_single']:.3f} where the site is alone in its sequence)")
        measured = (f"recall {r['recall']:.3f} of {r['n_sites']} sites{single}, precision "
                    + ("–" if r["precision"] != r["precision"] else f"{r['precision']:.3f}")
                    + f" of {r['n_instances']} instances")
        rows.append([f"instances: {r['motif']} in {r['task']}",
                     ">= 0.8 each" if target else "reported", measured,
                     bool(r["recall"] >= 0.8 and r["precision"] >= 0.8) if target else None])
    return table, recovery


def _information(ppm):
    p = np.clip(ppm, 1e-9, 1)
    return 2 + (p * np.log2(p)).sum(axis=1)


def variant_checks(model, dataset, truth, rows, seed=0):
    test = dataset.subset("test")
    index = {i: k for k, i in enumerate(test.ids)}
    onehot = test.one_hot()
    sites = truth.sites[truth.sites["id"].isin(index) & (truth.sites["task"] != "decoy")]
    rng = np.random.default_rng(seed)
    ids, pos, ref, alt, tasks, kind = [], [], [], [], [], []
    ppms = {m: jaspar_motif(m).ppm for m in sites["motif_id"].unique()}
    for r in sites.to_dict("records"):
        ppm = ppms[r["motif_id"]]
        j = int(_information(ppm).argmax())
        column = ppm[j] if r["strand"] == "+" else ppm[::-1, ::-1][len(ppm) - 1 - j]
        p = r["start"] + j if r["strand"] == "+" else r["end"] - 1 - j
        seen = int(onehot[index[r["id"]], p].argmax())
        order = [b for b in np.argsort(column, kind="stable") if b != seen]
        ids.append(r["id"]), pos.append(p), ref.append(BASES[seen]), alt.append(BASES[order[0]])
        tasks.append(r["task"]), kind.append("site")
    covered = {}
    for r in truth.sites[truth.sites["id"].isin(index)].to_dict("records"):
        covered.setdefault(r["id"], []).append((r["start"] - 10, r["end"] + 10))
    for (seq, task), _ in sites.groupby(["id", "task"]):
        free = [p for p in range(dataset.seq_len)
                if not any(s <= p < e for s, e in covered[seq])]
        if not free:
            continue
        p = int(rng.choice(free))
        seen = int(onehot[index[seq], p].argmax())
        ids.append(seq), pos.append(p), ref.append(BASES[seen])
        alt.append(BASES[int(rng.choice([b for b in range(4) if b != seen]))])
        tasks.append(task), kind.append("background")
    variants = Variants(ids, np.array(pos), ref, alt, onehot[[index[i] for i in ids]])
    table = variant_effects(model, variants, method="none")
    # a composite's site is a variant of two tasks (TAL1 and TAL1+GATA1): each keeps its own
    delta = table.drop_duplicates(["id", "position", "alt", "task"]).set_index(
        ["id", "position", "alt", "task"])["delta"]
    effects = pd.DataFrame({"task": tasks, "kind": kind,
                            "delta": [delta.loc[(i, p, a, t)] for i, p, a, t in
                                      zip(ids, pos, alt, tasks)]})
    median = effects[effects["kind"] == "site"].groupby("task")["delta"].median()
    sites_all = effects[effects["kind"] == "site"]
    bg_all = effects[effects["kind"] == "background"]
    lowered = float((sites_all["delta"] < 0).mean())
    small = float((bg_all["delta"].abs() < 0.1 * bg_all["task"].map(median).abs()).mean())
    rows.append(["variants: most informative base, all sites", ">= 90 % lower their task",
                 f"{lowered:.1%} of {len(sites_all)}", bool(lowered >= 0.9)])
    rows.append(["variants: background bases, all", "abs(change) < 10 % of the task's median "
                 "in >= 90 %", f"{small:.1%} of {len(bg_all)}", bool(small >= 0.9)])
    for task, g in effects.groupby("task"):
        s, bg = g[g["kind"] == "site"]["delta"], g[g["kind"] == "background"]["delta"]
        centre = float(np.median(s))
        lowered = float((s < 0).mean())
        small = float((bg.abs() < 0.1 * abs(centre)).mean())
        rows.append([f"variants: most informative base of {task} sites", "reported",
                     f"{lowered:.1%} of {len(s)} lower it (median change {centre:+.2f})",
                     None])
        rows.append([f"variants: background bases in {task} positives", "reported",
                     f"{small:.1%} of {len(bg)} under 10 % of the median (median abs(change) "
                     f"{bg.abs().median():.3f})", None])
    return effects


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="pipeline output folder")
    parser.add_argument("--n-backgrounds", type=int, default=128)
    parser.add_argument("--spacing-backgrounds", type=int, default=32)
    parser.add_argument("--max-spacing", type=int, default=24)
    parser.add_argument("--name", default="syntax")
    args = parser.parse_args()
    model, dataset, truth, _ = load_inputs(args.run / "final_models" / "best_model.pt")
    rows, seconds = [], {}
    for name, step in [
            ("marginalization", lambda: marginalization_checks(model, dataset,
                                                               args.n_backgrounds, rows)),
            ("spacing", lambda: spacing_checks(model, dataset, args.spacing_backgrounds,
                                               args.max_spacing, rows)),
            ("instances", lambda: instance_checks(args.run, dataset, truth, rows)),
            ("variants", lambda: variant_checks(model, dataset, truth, rows))]:
        start = time.perf_counter()
        step()
        seconds[name] = round(time.perf_counter() - start, 1)
        print(f"{name}: {seconds[name]} s", flush=True)
    judged = [r for r in rows if r[3] is not None]
    met = sum(r[3] for r in judged)
    failed = [r[0] for r in judged if not r[3]]
    kind = "the CNN baseline" if type(model).__name__ == "OneHotCNN" else "a Caduceus model"
    trained = args.run / "final_models"
    metrics = json.loads((trained / "metrics.json").read_text())
    budget = yaml.safe_load((trained / "train_config.yaml").read_text())["epochs"]
    kind += (f" ({budget}-epoch budget, test macro auROC "
             f"{metrics['test.macro_auroc']:.3f})")
    headline = (f"Analysis of {kind} trained on the embedded dataset: {met} of {len(judged)} "
                "checks met (motif effects, the 9-bp TAL1::TCF3-GATA1 syntax, instance recall "
                "and precision, variant effects)"
                + (f"; not met: {'; '.join(failed[:3])}" if failed else "")
                + (f" and {len(failed) - 3} more" if len(failed) > 3 else ""))
    record(args.name, "Motif effects, syntax, instances and variants on the embedded dataset",
           ["check", "target", "measured", "met"],
           [[c, t, m, "–" if ok is None else ("yes" if ok else "no")] for c, t, m, ok in rows],
           notes=f"Run folder {args.run}; {args.n_backgrounds} backgrounds (and their reverse "
                 f"complements) for marginalization, {args.spacing_backgrounds} for spacing "
                 f"(0..{args.max_spacing} bp); seconds per analysis: {seconds}.",
           headline=headline, extra={"seconds": seconds})


if __name__ == "__main__":
    main()
