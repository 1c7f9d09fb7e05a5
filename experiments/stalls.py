"""Which fine-tuning settings let single replicates leave the loss plateau on a suite dataset.

    python experiments/stalls.py [--dataset gc1000] [--seeds 0 1 2 3 4 5 6 7]
        [--variants default task-focus-0 ...] [--jobs 2] [--out /tmp/stalls]

On the suite's small, long-sequence datasets (generalization.py) the training loss of a
replicate of the default recipe stays at its base-rate value for several epochs, and some
replicates never leave it: the run keeps a chance-level model. This screen trains single
replicates (`--replicates 1`, train step only, one thread each) for every replicate seed and
variant of the fine-tuning settings, on the dataset's own pretrained backbone (built once and
cached, as the default recipe does), and scores each kept model on the dataset's held-out set
(HOLDOUT_SEQUENCES sequences of the generator with another seed). A replicate is counted as
stalled when its held-out macro auROC is below STALLED. Finished runs under --out are reused.
The table goes to bench/results/stalls.json.
"""
from __future__ import annotations

import argparse
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from generalization import (SUITE, build, holdout_auroc, holdout_scores, holdout_table,
                            load_holdout, run)
from results import record  # bench/, on the path that generalization sets

VARIANTS = {  # name: flags added to the default recipe's train step
    "default": [],
    "task-focus-0": ["--task-focus", "0"],
    "lr-halved": ["--lr", "2e-3", "--head-lr", "1e-2"],
    "lse-pooling": ["--pooling", "lse"],
    "max+mean-pooling": ["--pooling", "max+mean"],
    "batch-8": ["--batch-size", "8"],
}
STALLED = 0.55  # held-out macro auROC below which a replicate is counted as never having learned


def replicate(dataset, variant, seed, out: Path) -> dict:
    """Train (or reuse) one replicate; its held-out macro and per-task auROC, epochs run, best
    epoch and training seconds."""
    table, _ = build(dataset, out)
    folder = out / "replicates" / dataset / variant / f"seed-{seed}"
    metrics_path = folder / "final_models" / "metrics.json"
    if not metrics_path.is_file():
        (folder / "holdout.npz").unlink(missing_ok=True)
        run(["-m", "caduceus_lrp", "--out", folder, "--data", table,
             "--seq-len", SUITE[dataset].seq_len, "--train-seed", seed, "--threads", 1,
             "--cache-dir", out / "cache", "--steps", "train", "--replicates", 1,
             *VARIANTS[variant]], folder / "run.log")
    metrics = json.loads(metrics_path.read_text())
    auroc = holdout_auroc(*load_holdout(holdout_scores(folder, holdout_table(dataset, out))))
    return {"variant": variant, "seed": seed, "held_macro": float(auroc.mean()),
            "held": auroc.tolist(), "epochs_run": metrics["epochs_run"],
            "best_epoch": metrics["best_epoch"],
            "train_seconds": sum(h["train_seconds"] for h in metrics["history"])}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="gc1000", choices=list(SUITE))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(8)),
                        help="replicate seeds (each trains one replicate)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="the first is the peer")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/stalls"))
    args = parser.parse_args(argv)
    build(args.dataset, args.out)
    # the first run builds the dataset's pretrained backbone; the others reuse it
    jobs = [(v, s) for v in args.variants for s in args.seeds]
    first = replicate(args.dataset, *jobs[0], args.out)
    with ThreadPoolExecutor(args.jobs) as pool:
        results = [first, *pool.map(lambda j: replicate(args.dataset, *j, args.out), jobs[1:])]
    (args.out / f"stalls-{args.dataset}.json").write_text(json.dumps(results, indent=1))
    tasks = SUITE[args.dataset].tasks
    rows, verdicts = [], []
    for variant in args.variants:
        runs = [r for r in results if r["variant"] == variant]
        held = np.array([r["held_macro"] for r in runs])
        per_task = np.mean([r["held"] for r in runs], 0)
        verdicts.append(f"{variant} {int((held < STALLED).sum())} of {len(runs)} stalled, mean "
                        f"{held.mean():.3f}, best {held.max():.2f}")
        rows.append([variant, " ".join(VARIANTS[variant]) or "(none)", len(runs),
                     " ".join(f"{x:.2f}" for x in held), round(float(held.mean()), 3),
                     round(float(np.median(held)), 3), int((held < STALLED).sum()),
                     " ".join(str(r["epochs_run"]) for r in runs),
                     f"{tasks[int(np.argmin(per_task))]} {per_task.min():.3f}",
                     round(float(np.mean([r["train_seconds"] for r in runs])))])
    record("stalls", f"Single replicates on {args.dataset}: which settings leave the plateau",
           ["variant", "flags", "replicates", "held-out macro auROC per seed", "mean",
            "median", f"stalled (< {STALLED})", "epochs run per seed", "weakest task (mean)",
            "train (s)"], rows,
           peer=f"the {args.variants[0]} variant's replicates, same seeds",
           notes=f"Dataset {args.dataset} (generalization.py), replicate seeds "
                 f"{' '.join(map(str, args.seeds))}, one replicate per run (--replicates 1), "
                 "train step only, the dataset's pretrained backbone shared by all runs; held-out "
                 "macro auROC on the dataset's held-out set; stalled: held-out macro auROC "
                 f"below {STALLED}. train (s): the sum of the epochs' times, one thread, "
                 "with other jobs beside (context only).",
           headline=f"On {args.dataset}, no fine-tuning setting screened both keeps single "
                    f"replicates off chance (held-out macro auROC < {STALLED}) and lets them "
                    f"learn as far as the default's best ({'; '.join(verdicts)})")


if __name__ == "__main__":
    main()
