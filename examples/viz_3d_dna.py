"""A 3-D double helix of one sequence with each base pair coloured by its relevance: a PNG
(matplotlib, the helix seen from the side at its true pitch) and an interactive HTML file (plotly,
self-contained). A sequence of the dataset has its known sites (the embedded dataset's planted
motifs, or --ground-truth) marked, and the window drawn is centred on the first one.

    python examples/viz_3d_dna.py                        # first positive test sequence of task 0
    python examples/viz_3d_dna.py --sequence ACGT... --task GATA1 --window 80 120
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from caduceus_lrp import cli  # noqa: E402
from caduceus_lrp.attribute import checkpoint_data, first_positive, helix_figures  # noqa: E402
from caduceus_lrp.checkpoint import load_finetuned  # noqa: E402
from caduceus_lrp.data import ground_truth_for, load_dataset  # noqa: E402
from caduceus_lrp.errors import InputError  # noqa: E402
from caduceus_lrp.explanation_model import METHODS, as_onehot, task_index  # noqa: E402


def build_parser():
    p = cli.ArgumentParser(prog="viz_3d_dna.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="final_models/best_model.pt", help="fine-tuned checkpoint")
    p.add_argument("--data", nargs="+", default=None,
                   help="dataset input (default: the data the model was trained on)")
    p.add_argument("--sequence", default=None, help="the sequence (default: from the dataset)")
    p.add_argument("--split", default="test", help="split of --id")
    p.add_argument("--id", default=None,
                   help="sequence id (default: the first positive sequence of the task)")
    p.add_argument("--task", default="0", help="task name or index")
    p.add_argument("--method", default="lrp", help=f"one of {', '.join(METHODS)}")
    p.add_argument("--window", type=int, nargs=2, metavar=("START", "END"), default=None,
                   help="bp range drawn (default: 40 bp around the most relevant position)")
    p.add_argument("--out", default="plots/dna_3d.png", help="PNG file")
    p.add_argument("--html", default="plots/dna_3d.html", help="interactive HTML file")
    p.add_argument("--ground-truth", default=None,
                   help="site table whose sites are marked (default: the embedded dataset's)")
    p.add_argument("--device", default=None, help="torch device (default: the CPU)")
    return p


@cli.cli_entry
def main(argv=None):
    args = build_parser().parse_args(argv)
    model = load_finetuned(args.model)
    cfg = checkpoint_data(args.model, args.data)
    target = task_index(model, args.task)
    sites = []
    if args.sequence is not None:
        onehot, label = as_onehot([args.sequence], length=cfg.seq_len), "given sequence"
    else:
        dataset = load_dataset(cfg).subset(args.split)
        if args.id is not None and args.id not in dataset.ids:
            raise InputError(f"--id: {args.id!r} is not in the {args.split} split")
        row = (dataset.ids.index(args.id) if args.id is not None else
               first_positive(dataset, model.task_names[target], "pass --id or --sequence"))
        onehot, label = dataset.one_hot()[row:row + 1], dataset.ids[row]
        truth = ground_truth_for(cfg, args.ground_truth)
        if truth is not None:
            sites = truth.sites_of([label], model.task_names[target])[0]
    png, html = helix_figures(model, onehot, target, args.method, label, args.out, args.html,
                              tuple(args.window) if args.window else None, args.device,
                              sites=sites)
    print(f"wrote {png}")
    print(f"wrote {html}" if html else "plotly is not installed (pip install plotly): no HTML file")
    return 0


if __name__ == "__main__":
    sys.exit(main())
