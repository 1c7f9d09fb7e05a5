"""Attribution methods side by side on the trained demo model, judged against the embedded ground truth.

    python bench/attribution.py [--model final_models/best_model.pt] [--max-sequences 32]

For every task, its positive test sequences (at most --max-sequences) are attributed with each
method, target = that task. Columns: (1) site AUROC, the per-sequence AUROC of |observed| (summed
over bases) against the planted positions of the task's motif(s), mean over sequences; (2) ΔA_F,
faithfulness: positions replaced by N in order of signed relevance, most- and least-relevant first,
area between the two curves of the target logit (20 steps; higher is better), mean over sequences;
(3) time relative to a no-grad forward pass of the same sequences in the same batches (the peer,
measured in this run). LRP also gives the largest relative conservation error. Targets: LRP best or
within 0.01 of the best on (1) and (2), LRP AUROC >= 0.9, LRP cost <= 3 forward passes.
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
                                            planted_sites, site_auroc, site_mask)


def forward_seconds(model, X, batch_size):
    """Time of a no-grad forward pass over X in batches of batch_size (the peer)."""
    t = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(X), batch_size):
            model(onehot=torch.from_numpy(X[start:start + batch_size]))
    return time.perf_counter() - t


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="final_models/best_model.pt")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--max-sequences", type=int, default=32, help="positive test sequences per task")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="ΔA_F perturbation steps")
    args = parser.parse_args(argv)
    model = load_finetuned(args.model)
    cfg = checkpoint_data(args.model)
    truth = ground_truth(cfg)
    test = load_dataset(cfg).subset("test")
    onehot = test.one_hot()
    tasks = []  # (task index, rows, mask)
    for k, task in enumerate(model.task_names):
        rows = (test.labels[:, test.task_names.index(task)] > 0).nonzero()[0][:args.max_sequences]
        mask = site_mask(planted_sites(truth, [test.ids[r] for r in rows], task), test.seq_len)
        if len(rows):
            tasks.append((k, rows, mask))
    n_seq = sum(len(rows) for _, rows, _ in tasks)
    for method in args.methods:  # warm-up: numba compilation, allocator
        options = {"n_steps": 2} if method == "integrated_gradients" else {}
        explain(model, onehot[:2], method=method, **options)
    peer = sum(forward_seconds(model, onehot[rows], args.batch_size) for _, rows, _ in tasks)
    table = []
    for method in args.methods:
        aurocs, deltas, seconds, conservation = [], [], 0.0, []
        for k, rows, mask in tasks:
            t = time.perf_counter()
            result = explain(model, onehot[rows], target=k, method=method, batch_size=args.batch_size)
            seconds += time.perf_counter() - t
            aurocs.append(site_auroc(np.abs(result.observed).sum(-1), mask))
            deltas.append(faithfulness(model, onehot[rows], result.observed.sum(-1), target=k,
                                       steps=args.steps, batch_size=4 * args.batch_size))
            if result.conservation_error is not None:
                conservation.append(result.conservation_error.max())
        table.append((method, np.nanmean(np.concatenate(aurocs)), np.mean(np.concatenate(deltas)),
                      seconds / peer, max(conservation) if conservation else None))
        print(f"  {method}: {seconds:.1f} s", file=sys.stderr)
    print(f"\n{args.model}: {len(tasks)} tasks, {n_seq} positive test sequences of {test.seq_len} bp, "
          f"batch {args.batch_size}, {torch.get_num_threads()} threads; peer: forward pass "
          f"{peer:.2f} s\n")
    print("| method | site AUROC | ΔA_F | time / forward | conservation error |")
    print("|---|---:|---:|---:|---:|")
    for method, auroc, delta, ratio, cons in table:
        print(f"| {method} | {auroc:.3f} | {delta:.3f} | {ratio:.1f} | "
              f"{'' if cons is None else f'{cons:.1e}'} |")


if __name__ == "__main__":
    main()
