"""How much a fine-tuning recipe depends on its seed: the same training run over several seeds.

    python experiments/seeds.py [--seeds 0 1 2 3 4] [--jobs 2] [--out /tmp/seed_bench] [training flags]

Each seed runs `caduceus_lrp/train_caduceus_finetune.py --train-seed S --threads 1` into
OUT/seed-S, with every unknown flag passed through (e.g. `--grad-clip 0`, `--epochs 8`); `--jobs`
runs that many at once (one thread each). The table has, per seed, the best epoch, the validation
macro auROC and each task's validation auROC at the best epoch, and for the weakest task on average
the first epoch where its auROC reached 0.8 ("-": never). A recipe is robust when every seed
learns every task; with equal task weights (`--task-focus 0`) the embedded dataset's GATA1 task
fails in about half of the seeds, with the default task focus in none of the 13 seeds tried (PROGRESS.md).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
LEARNED = 0.8


def train(seed: int, out: Path, extra: list[str]) -> pd.DataFrame:
    """Run one seed; its metrics.csv (one row per epoch)."""
    folder = out / f"seed-{seed}"
    cmd = [sys.executable, str(ROOT / "caduceus_lrp" / "train_caduceus_finetune.py"),
           "--train-seed", str(seed), "--replicates", "1", "--threads", "1", "--out-dir", str(folder),
           "--plots-dir", str(folder / "plots"), *extra]
    with open(out / f"seed-{seed}.log", "w") as log:
        done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise SystemExit(f"seed {seed}: training failed (exit {done.returncode}); "
                         f"see {out / f'seed-{seed}.log'}")
    return pd.read_csv(folder / "metrics.csv")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--jobs", type=int, default=2, help="seeds trained at once")
    parser.add_argument("--out", type=Path, default=Path("/tmp/seed_bench"))
    args, extra = parser.parse_known_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"recipe: defaults{' ' + ' '.join(extra) if extra else ''}; seeds {args.seeds}")
    with ThreadPoolExecutor(args.jobs) as pool:
        histories = dict(zip(args.seeds, pool.map(lambda s: train(s, args.out, extra), args.seeds)))

    tasks = [c.removeprefix("val.auroc.") for c in next(iter(histories.values())).columns
             if c.startswith("val.auroc.")]
    rows = []
    for seed, h in histories.items():
        best = h.loc[h["val.macro_auroc"].idxmax()]
        rows.append({"seed": seed, "best epoch": int(best["epoch"]),
                     "val macro": best["val.macro_auroc"],
                     **{t: best[f"val.auroc.{t}"] for t in tasks}})
    table = pd.DataFrame(rows).set_index("seed")
    weakest = table[tasks].mean().idxmin()
    for seed, h in histories.items():
        reached = h.loc[h[f"val.auroc.{weakest}"] >= LEARNED, "epoch"]
        table.loc[seed, f"{weakest} >= {LEARNED} from epoch"] = (
            str(int(reached.iloc[0])) if len(reached) else "-")
    print(table.to_string(float_format=lambda x: f"{x:.3f}"))
    learned = (table[tasks] >= LEARNED).all(axis=1)
    print(f"seeds that learned every task (val auROC >= {LEARNED}): {int(learned.sum())} of "
          f"{len(table)}")


if __name__ == "__main__":
    main()
