"""LRP (or --method) attributions of a whole split, per task, saved as the ohe.npz / hyp.npz pairs
`modisco motifs` reads, with plots/dist_attribution.png (relevance at planted-motif positions
against background, per method) and plots/conservation.png (sum of relevance against the logit).

    python examples/viz_interpret.py
    python examples/viz_interpret.py --method corrected --compare saliency corrected lrp ism
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from caduceus_lrp import attribution_plots as plots  # noqa: E402
from caduceus_lrp.data import load_dataset  # noqa: E402
from caduceus_lrp.errors import InputError, cli_entry  # noqa: E402
from caduceus_lrp.explanation_model import (METHODS, add_checkpoint_arguments,  # noqa: E402
                                            checkpoint_data, explain,
                                            ground_truth, load_finetuned, planted_sites,
                                            positive_rows, site_auroc, site_mask, split_of,
                                            write_attributions)


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_checkpoint_arguments(p)
    p.add_argument("--split", default="test",
                   help="split whose positive sequences are explained: train, val, test or all")
    p.add_argument("--method", default="lrp", help=f"method of the saved files: {', '.join(METHODS)}")
    p.add_argument("--compare", nargs="+", default=["saliency", "corrected", "lrp"],
                   help="methods in plots/dist_attribution.png")
    p.add_argument("--max-sequences", type=int, default=200,
                   help="positive sequences per task in the distribution plot")
    p.add_argument("--out", default="modisco_files/attributions",
                   help="folder of <task>/ohe.npz and <task>/hyp.npz")
    p.add_argument("--plots-dir", default="plots", help="folder of the figures")
    p.add_argument("--batch-size", type=int, default=32, help="sequences per pass")
    p.add_argument("--device", default=None, help="torch device (default: the model's)")
    return p


def _site_and_background(model, onehot, sites, target, method, batch_size, device):
    """|position relevance| normalised by each sequence's maximum, at sites and elsewhere."""
    result = explain(model, onehot, target=target, method=method, batch_size=batch_size,
                     device=device)
    score = np.abs(result.observed).sum(-1)
    score = score / np.maximum(score.max(axis=1, keepdims=True), np.finfo(score.dtype).tiny)
    mask = site_mask(sites, onehot.shape[1])
    return score[mask], score[~mask]


@cli_entry
def main(argv=None):
    args = build_parser().parse_args(argv)
    for m in [args.method, *args.compare]:
        if m not in METHODS:
            raise InputError(f"--method/--compare: unknown method {m!r}; choose one of {', '.join(METHODS)}")
    model = load_finetuned(args.model)
    cfg = checkpoint_data(args.model, args.data)
    ds = load_dataset(cfg)  # sequences cropped or N-padded to the trained length
    results = write_attributions(model, ds, args.out, method=args.method, split=args.split,
                                 batch_size=args.batch_size, device=args.device)
    if not results:
        raise InputError(f"--split: no positive {args.split} sequence for any task")
    print(f"wrote {args.out}/<task>/ohe.npz, hyp.npz for {len(results)} tasks ({args.method})")
    if args.method == "lrp":
        cat = {k: np.concatenate([getattr(r, k) for r in results.values()])
               for k in ("logits", "bias_relevance", "observed")}
        path = plots.plot_conservation(Path(args.plots_dir) / "conservation.png", cat["logits"],
                                       cat["observed"].sum((1, 2)), cat["bias_relevance"])
        error = np.concatenate([r.conservation_error for r in results.values()]).max()
        print(f"wrote {path}; largest relative conservation error {error:.1e}")
    truth = ground_truth(cfg, args.ground_truth)
    if truth is None:
        print("no ground truth (not the embedded dataset and no --ground-truth): "
              "skipping plots/dist_attribution.png")
        return 0
    test = split_of(ds, args.split)
    per_method = {m: ([], []) for m in args.compare}
    for k, task in enumerate(model.task_names):
        if task not in results:
            continue
        rows = positive_rows(test, task)[:args.max_sequences]
        sites = planted_sites(truth, [test.ids[r] for r in rows], task)
        onehot = test.one_hot()[rows]
        mask = site_mask(sites, onehot.shape[1])
        auroc = np.nanmean(site_auroc(np.abs(results[task].observed[:len(rows)]).sum(-1), mask))
        print(f"  {task:<14} {len(results[task].logits):>5} sequences attributed; mean site AUROC "
              f"({args.method}) of the first {len(rows)}: {auroc:.3f}")
        for m in args.compare:
            site, background = _site_and_background(model, onehot, sites, k, m, args.batch_size,
                                                    args.device)
            per_method[m][0].append(site)
            per_method[m][1].append(background)
    path = plots.plot_dist_attribution(
        Path(args.plots_dir) / "dist_attribution.png",
        {m: (np.concatenate(s), np.concatenate(b)) for m, (s, b) in per_method.items()})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
