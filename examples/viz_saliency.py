"""Saliency maps of chosen sequences and tasks: a base x position heatmap and a sequence logo of the
corrected gradient, with the planted sites of the embedded data marked; plots/zoomed_in_sample.png
zooms on one motif site.

    python examples/viz_saliency.py                      # first positive test sequence per task
    python examples/viz_saliency.py --task GATA1 --ids seq00012 --method lrp
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from caduceus_lrp import attribution_plots as plots  # noqa: E402
from caduceus_lrp.data import load_dataset  # noqa: E402
from caduceus_lrp.errors import InputError, cli_entry  # noqa: E402
from caduceus_lrp.explanation_model import (METHODS, add_checkpoint_arguments,  # noqa: E402
                                            as_onehot, checkpoint_data, explain,
                                            first_positive, ground_truth, load_finetuned,
                                            planted_sites, split_of, task_index)


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_checkpoint_arguments(p)
    p.add_argument("--split", default="test", help="split the sequences come from")
    p.add_argument("--task", nargs="+", default=None, help="task names or indices (default: all)")
    p.add_argument("--ids", nargs="+", default=None,
                   help="sequence ids (default: the first positive sequence of each task)")
    p.add_argument("--sequences", nargs="+", default=None,
                   help="explain these sequences (A, C, G, T, N) instead of dataset ones")
    p.add_argument("--method", default="corrected", help=f"one of {', '.join(METHODS)}")
    p.add_argument("--flank", type=int, default=12, help="bp shown on each side of the zoomed site")
    p.add_argument("--plots-dir", default="plots", help="output folder")
    p.add_argument("--device", default=None, help="torch device (default: the model's)")
    return p


def _safe(name):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name))


def _choose(ds, task_name, ids):
    """Rows of the split to plot for one task: the given ids, or its first positive sequence."""
    if ids is not None:
        unknown = [i for i in ids if i not in ds.ids]
        if unknown:
            raise InputError(f"--ids: not in the split: {', '.join(unknown[:5])}")
        return [ds.ids.index(i) for i in ids]
    return [first_positive(ds, task_name, "choose sequences with --ids")]


@cli_entry
def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.method not in METHODS:
        raise InputError(f"--method: unknown method {args.method!r}; choose one of {', '.join(METHODS)}")
    model = load_finetuned(args.model)
    cfg = checkpoint_data(args.model, args.data)
    targets = [task_index(model, t) for t in (args.task or range(model.n_tasks))]
    names = getattr(model, "task_names", [str(k) for k in range(model.n_tasks)])
    truth, ds = None, None
    if args.sequences:
        onehot = as_onehot(args.sequences, length=cfg.seq_len)
        ids = [f"sequence{i + 1}" for i in range(len(onehot))]
    else:
        ds = split_of(load_dataset(cfg), args.split)
        truth = ground_truth(cfg, args.ground_truth)
        onehot, ids = ds.one_hot(), ds.ids
    zoom = None
    for k in targets:
        rows = list(range(len(onehot))) if ds is None else _choose(ds, names[k], args.ids)
        result = explain(model, onehot[rows], target=k, method=args.method, device=args.device)
        sites = ([[]] * len(rows) if truth is None
                 else planted_sites(truth, [ids[r] for r in rows], names[k]))
        for j, r in enumerate(rows):
            title = f"{names[k]} · {ids[r]} · {args.method} · logit {result.logits[j]:+.3f}"
            path = Path(args.plots_dir) / f"saliency_{_safe(names[k])}_{_safe(ids[r])}.png"
            plots.plot_attribution(path, onehot[r], result.hypothetical[j], sites[j], title)
            print(f"wrote {path}")
            if zoom is None:
                zoom = (onehot[r], result.hypothetical[j], sites[j], title,
                        result.observed[j].sum(-1))
    x, hyp, sites, title, position = zoom
    if sites:
        start, end = sites[0][0], sites[0][1]
    else:  # no ground truth: the most relevant position
        start = int(abs(position).argmax())
        end = start + 1
    window = (max(0, start - args.flank), min(len(x), end + args.flank))
    path = plots.plot_attribution(Path(args.plots_dir) / "zoomed_in_sample.png", x, hyp, sites,
                                  title, window=window)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
