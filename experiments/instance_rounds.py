"""Instance recall and precision with one and with two rounds of instance calling, on pipeline
runs whose data have planted-site ground truth.

    python experiments/instance_rounds.py RUN[:DATA:TRUTH] ... [--name instance-rounds]

RUN is a pipeline output folder whose attribute and motifs steps have run (its
modisco_files/attributions holds settings.json); DATA and TRUTH, the dataset table and ground
truth it was trained on (default: the embedded dataset's). For each run and each motif of each
task: the recall of planted sites, the precision of the instances matched to the motif (or its
JASPAR family), and the share of decoy sites in the task's sequences under any instance, with
`--instance-rounds 1` and 2 (`analysis.run_instances`, the analysis step's own code; its files
go to a scratch folder, the run's own are left alone). Results go to bench/results/<name>.json
(docs/results.md).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from results import record  # noqa: E402

from caduceus_lrp.analysis import AnalysisConfig, load_inputs, load_patterns_of  # noqa: E402
from caduceus_lrp.analysis import run_instances  # noqa: E402

ROUNDS = (1, 2)


def recovery_of(run: Path, data, truth, rounds: int):
    """(recovery table, seconds) of `rounds` rounds of instance calling on a run."""
    model_path = run / "final_models" / "best_model.pt"
    _, dataset, ground_truth, data_cfg = load_inputs(model_path, data, truth)
    patterns = load_patterns_of(run / "modisco_files")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        _, recovery, _ = run_instances(dataset, AnalysisConfig(instance_rounds=rounds), patterns,
                                       ground_truth, run / "modisco_files" / "attributions",
                                       "all", scratch, log=lambda _: None,
                                       model_path=model_path, data_cfg=data_cfg)
    return recovery, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="RUN or RUN:DATA:TRUTH")
    parser.add_argument("--name", default="instance-rounds")
    args = parser.parse_args(argv)
    rows, seconds, gains = [], {}, []
    for spec in args.runs:
        run, *rest = spec.split(":")
        data, truth = ([rest[0]], rest[1]) if rest else (None, None)
        label = Path(rest[0]).parent.name if rest else run
        tables = {}
        for rounds in ROUNDS:
            tables[rounds], seconds[f"{label} {rounds}"] = recovery_of(Path(run), data, truth,
                                                                       rounds)
            print(f"{label}: {rounds} round(s) in {seconds[f'{label} {rounds}']:.0f} s",
                  flush=True)
        one, two = (t.set_index(["task", "motif"]) for t in (tables[1], tables[2]))
        for key in one.index:
            a, b = one.loc[key], two.loc[key]
            decoy = key[0].startswith("decoy:")
            rows.append([label, key[0], key[1], int(a["n_sites"]),
                         *(round(float(v), 3) for v in (a["recall"], b["recall"])),
                         *(None if decoy else round(float(v), 3)
                           for v in (a["precision"], b["precision"]))])
            if not decoy:
                gains.append((b["recall"] - a["recall"], b["precision"] - a["precision"]))
    up = [g for g, _ in gains]
    down = [p for _, p in gains if p == p]
    decoys = [(r[4], r[5]) for r in rows if r[1].startswith("decoy:")]
    record(args.name, "Instances with one and with two rounds of calling",
           ["run", "task", "motif", "sites", "recall, 1 round", "recall, 2 rounds",
            "precision, 1 round", "precision, 2 rounds"], rows,
           peer="the same run's instances with one round",
           notes="decoy:<task> rows: the share of decoy sites in the task's sequences under any "
                 "instance of the task (lower is better). Seconds per run and rounds: "
                 + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()) + ".",
           headline=(f"Two rounds of instance calling against one, over {len(up)} (task, "
                     f"planted motif) pairs of {len(args.runs)} runs: recall {min(up):+.3f} to "
                     f"{max(up):+.3f}, precision {min(down):+.3f} to {max(down):+.3f}; decoy "
                     f"sites under an instance at most {max(a for a, _ in decoys):.0%} with one "
                     f"round, {max(b for _, b in decoys):.0%} with two"))

if __name__ == "__main__":
    main()
