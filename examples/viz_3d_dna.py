"""A 3-D double helix of one sequence with each base pair coloured by its relevance: a PNG
(matplotlib) and, when plotly is installed, an interactive HTML file.

    python examples/viz_3d_dna.py                        # first positive test sequence of task 0
    python examples/viz_3d_dna.py --sequence ACGT... --task GATA1 --window 80 120
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
                                            as_onehot, checkpoint_data, explain,
                                            first_positive, load_finetuned, split_of,
                                            task_index)
from caduceus_lrp.sequence import one_hot_to_strings  # noqa: E402

WINDOW = 40  # bp drawn by default, centred on the most relevant position


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_checkpoint_arguments(p, ground_truth=False)
    p.add_argument("--sequence", default=None, help="the sequence (default: from the dataset)")
    p.add_argument("--split", default="test", help="split of --id")
    p.add_argument("--id", default=None,
                   help="sequence id (default: the first positive sequence of the task)")
    p.add_argument("--task", default="0", help="task name or index")
    p.add_argument("--method", default="lrp", help=f"one of {', '.join(METHODS)}")
    p.add_argument("--window", type=int, nargs=2, metavar=("START", "END"), default=None,
                   help=f"bp range drawn (default: {WINDOW} bp around the most relevant position)")
    p.add_argument("--out", default="plots/dna_3d.png", help="PNG file")
    p.add_argument("--html", default="plots/dna_3d.html", help="HTML file (needs plotly)")
    p.add_argument("--device", default=None, help="torch device (default: the model's)")
    return p


def _pick(args, cfg, task_name):
    """One-hot (1, l, 4) and a label for the sequence to draw."""
    if args.sequence is not None:
        return as_onehot([args.sequence], length=cfg.seq_len), "given sequence"
    ds = split_of(load_dataset(cfg), args.split)
    if args.id is not None:
        if args.id not in ds.ids:
            raise InputError(f"--id: {args.id!r} is not in the {args.split} split")
        row = ds.ids.index(args.id)
    else:
        row = first_positive(ds, task_name, "pass --id or --sequence")
    return ds.one_hot()[row:row + 1], ds.ids[row]


@cli_entry
def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.method not in METHODS:
        raise InputError(f"--method: unknown method {args.method!r}; choose one of {', '.join(METHODS)}")
    model = load_finetuned(args.model)
    cfg = checkpoint_data(args.model, args.data)
    target = task_index(model, args.task)
    onehot, label = _pick(args, cfg, model.task_names[target])
    result = explain(model, onehot, target=target, method=args.method, device=args.device)
    relevance = result.observed[0].sum(-1)
    length = len(relevance)
    if args.window is None:
        centre = int(np.abs(relevance).argmax())
        start = min(max(0, centre - WINDOW // 2), max(0, length - WINDOW))
        window = (start, min(length, start + WINDOW))
    else:
        window = tuple(args.window)
    if not 0 <= window[0] < window[1] <= length:
        raise InputError(f"--window: {window[0]} {window[1]} is not inside the {length}-bp sequence")
    sequence = one_hot_to_strings(onehot)[0][window[0]:window[1]]
    title = (f"{model.task_names[target]} · {label} · {args.method} · bp {window[0]}-{window[1]}")
    print(f"wrote {plots.plot_helix(args.out, sequence, relevance[window[0]:window[1]], title)}")
    html = plots.write_helix_html(args.html, sequence, relevance[window[0]:window[1]], title)
    print(f"wrote {html}" if html else "plotly is not installed (pip install plotly): no HTML file")
    return 0


if __name__ == "__main__":
    sys.exit(main())
