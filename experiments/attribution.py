"""Attribution methods side by side on the trained demo model, judged against the embedded ground truth.

    python bench/attribution.py [--model final_models/best_model.pt] [--max-sequences 32]

For every task, its positive test sequences (at most --max-sequences) are attributed with each
method, target = that task. Columns: (1) site AUROC, the per-sequence AUROC of |observed| (summed
over bases) against the planted positions of the task's motif(s), mean over sequences; (2) ΔA_F,
faithfulness: positions replaced by N in order of signed relevance, most- and least-relevant first,
area between the two curves of the target logit (20 steps; higher is better), mean over sequences;
(3) time of attributing one batch relative to a no-grad forward pass of the same batch (the peer),
best of --repeats, each attribution right after a forward pass so that both see the same load.
LRP also gives the largest relative conservation error. A second table gives (1) and (2) per
task. Targets: LRP best or within 0.01 of the best on (1) and (2), LRP AUROC >= 0.9, LRP cost
<= 3 forward passes.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from caduceus_lrp.data import load_dataset  # noqa: E402
from caduceus_lrp.explanation_model import (METHODS, checkpoint_data, explain,  # noqa: E402
                                            faithfulness, ground_truth, load_finetuned,
                                            planted_sites, positive_rows, site_auroc,
                                            site_mask)


def time_ratio(model, X, method, repeats):
    """Best-of-`repeats` time of `method` on the batch X over the best time of a no-grad forward
    pass of X (the peer), each method pass right after a forward pass (same machine load)."""
    forward, attribution = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        with torch.no_grad():
            model(onehot=torch.from_numpy(X))
        forward.append(time.perf_counter() - t)
        t = time.perf_counter()
        explain(model, X, method=method, batch_size=len(X))
        attribution.append(time.perf_counter() - t)
    return min(attribution) / min(forward)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="final_models/best_model.pt")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--max-sequences", type=int, default=32, help="positive test sequences per task")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="ΔA_F perturbation steps")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (the best counts)")
    args = parser.parse_args(argv)
    model = load_finetuned(args.model)
    cfg = checkpoint_data(args.model)
    truth = ground_truth(cfg)
    test = load_dataset(cfg).subset("test")
    onehot = test.one_hot()
    tasks = []  # (task index, rows, mask)
    for k, task in enumerate(model.task_names):
        rows = positive_rows(test, task)[:args.max_sequences]
        mask = site_mask(planted_sites(truth, [test.ids[r] for r in rows], task), test.seq_len)
        if len(rows):
            tasks.append((k, rows, mask))
    n_seq = sum(len(rows) for _, rows, _ in tasks)
    for method in args.methods:  # warm-up: numba compilation, allocator
        options = {"n_steps": 2} if method == "integrated_gradients" else {}
        explain(model, onehot[:2], method=method, **options)
    table, per_task = [], {}  # per_task[(method, task)] = (mean site AUROC, mean ΔA_F)
    for method in args.methods:
        aurocs, deltas, conservation = [], [], []
        for k, rows, mask in tasks:
            result = explain(model, onehot[rows], target=k, method=method, batch_size=args.batch_size)
            aurocs.append(site_auroc(np.abs(result.observed).sum(-1), mask))
            deltas.append(faithfulness(model, onehot[rows], result.observed.sum(-1), target=k,
                                       steps=args.steps, batch_size=4 * args.batch_size))
            per_task[method, model.task_names[k]] = (np.nanmean(aurocs[-1]), np.mean(deltas[-1]))
            if result.conservation_error is not None:
                conservation.append(result.conservation_error.max())
        ratio = time_ratio(model, onehot[:args.batch_size], method, args.repeats)
        table.append((method, np.nanmean(np.concatenate(aurocs)), np.mean(np.concatenate(deltas)),
                      ratio, max(conservation) if conservation else None))
        print(f"  {method}: done", file=sys.stderr)
    print(f"\n{args.model}: {len(tasks)} tasks, {n_seq} positive test sequences of {test.seq_len} bp; "
          f"time: best of {args.repeats} on one batch of {args.batch_size}, each pass right after a "
          f"forward pass of the same batch (the peer), {torch.get_num_threads()} threads\n")
    print("| method | site AUROC | ΔA_F | time / forward | conservation error |")
    print("|---|---:|---:|---:|---:|")
    for method, auroc, delta, ratio, cons in table:
        print(f"| {method} | {auroc:.3f} | {delta:.3f} | {ratio:.1f} | "
              f"{'' if cons is None else f'{cons:.1e}'} |")
    print("\nper task, site AUROC / ΔA_F:\n")
    print("| task | " + " | ".join(args.methods) + " |")
    print("|---|" + "---:|" * len(args.methods))
    for k, rows, _ in tasks:
        task = model.task_names[k]
        print(f"| {task} ({len(rows)}) | " + " | ".join(
            "{:.3f} / {:.2f}".format(*per_task[m, task]) for m in args.methods) + " |")


if __name__ == "__main__":
    main()
