"""Saliency maps of chosen sequences and tasks: a base x position heatmap and a sequence logo of the
corrected gradient (or --method), with the planted sites of the embedded data marked;
plots/zoomed_in_sample.png zooms on one motif site.

    python examples/viz_saliency.py                      # first positive test sequence per task
    python examples/viz_saliency.py --task GATA1 --ids syn00012 --method lrp
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from caduceus_lrp import cli  # noqa: E402
from caduceus_lrp.attribute import checkpoint_data, saliency_figures, saliency_rows  # noqa: E402
from caduceus_lrp.checkpoint import load_finetuned  # noqa: E402
from caduceus_lrp.data import ground_truth_for, load_dataset  # noqa: E402
from caduceus_lrp.explanation_model import METHODS, as_onehot, check_method  # noqa: E402


def build_parser():
    p = cli.ArgumentParser(prog="viz_saliency.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="final_models/best_model.pt", help="fine-tuned checkpoint")
    p.add_argument("--data", nargs="+", default=None,
                   help="dataset input (default: the data the model was trained on)")
    p.add_argument("--ground-truth", default=None,
                   help="planted sites (default: the embedded dataset's, when it is used)")
    p.add_argument("--split", default="test", help="split the sequences come from")
    p.add_argument("--task", nargs="+", default=None, help="task names or indices (default: all)")
    p.add_argument("--ids", nargs="+", default=None,
                   help="sequence ids (default: the first positive sequence of each task)")
    p.add_argument("--sequences", nargs="+", default=None,
                   help="explain these sequences (A, C, G, T, N) instead of dataset ones")
    p.add_argument("--method", default="corrected", help=f"one of {', '.join(METHODS)}")
    p.add_argument("--flank", type=int, default=12, help="bp shown on each side of the zoomed site")
    p.add_argument("--plots-dir", default="plots", help="output folder")
    p.add_argument("--device", default=None, help="torch device (default: the CPU)")
    return p


@cli.cli_entry
def main(argv=None):
    args = build_parser().parse_args(argv)
    check_method(args.method)
    model = load_finetuned(args.model)
    cfg = checkpoint_data(args.model, args.data)
    targets = args.task or model.task_names
    if args.sequences:
        onehot = as_onehot(args.sequences, length=cfg.seq_len)
        ids, truth, rows = [f"sequence{i + 1}" for i in range(len(onehot))], None, None
    else:
        dataset = load_dataset(cfg).subset(args.split)
        onehot, ids = dataset.one_hot(), dataset.ids
        truth = ground_truth_for(cfg, args.ground_truth)
        rows = saliency_rows(dataset, model, targets, args.ids)
    saliency_figures(model, onehot, ids, targets, args.method, args.plots_dir, truth=truth,
                     rows=rows, flank=args.flank, device=args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
