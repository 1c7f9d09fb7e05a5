"""`caduceus-lrp`: one command with a subcommand per stage, each a thin layer over a library function.

    caduceus-lrp pipeline   [options]   train -> attribute -> motifs -> summary (the default of
                                        `python -m caduceus_lrp`)
    caduceus-lrp train      [options]   fine-tune (training.run_training)
    caduceus-lrp attribute  [options]   attributions for TF-MoDISco and their figures
    caduceus-lrp motifs     [options]   TF-MoDISco, Tomtom against JASPAR, recovery
    caduceus-lrp data       [options]   read a dataset and print what was read
    caduceus-lrp pretrain   [options]   masked-LM pretraining of a small backbone

Every option is a field of a config dataclass (`cli.add_arguments`), so the data options are the
same flags in `pipeline`, `train`, `data` and `pretrain`. Bad input gives one line, exit status 2.
"""
from __future__ import annotations

import logging
import sys
import time

from . import cli
from .attribute import AttributeConfig, run_attribute
from .data import DataConfig, load_dataset, read_ground_truth
from .errors import InputError
from .motifs import ModiscoConfig, discover, load_attributions, pattern_report
from .pipeline import PIPELINE_SKIPS, PipelineConfig, run_pipeline
from .training import TrainConfig, run_training
from .training.pretrain import PretrainConfig, pretrain

__all__ = ["main", "build_parser", "train_config_from_argv", "train_main", "attribute_main",
           "pipeline_main"]

DESCRIPTION = ("Fine-tune Caduceus on regulatory genomics data, explain it (saliency, LRP) and "
               "find the motifs it relies on (TF-MoDISco, Tomtom against JASPAR).")


def _logging():
    logging.basicConfig(level=logging.INFO, format="%(message)s")


# --------------------------------------------------------------------------------- parsers
def _pipeline_parser(parser):
    cli.add_arguments(parser, PipelineConfig, skip=PIPELINE_SKIPS)


def _train_parser(parser):
    parser.add_argument("--config", help="YAML or JSON file of fields (train_config.yaml of an "
                                         "earlier run works); explicit flags override it")
    cli.add_arguments(parser, TrainConfig)


def _checkpoint_arguments(parser):
    parser.add_argument("--model", default="final_models/best_model.pt",
                        help="fine-tuned checkpoint")
    parser.add_argument("--data", nargs="+", default=None,
                        help="dataset input (default: the data the model was trained on)")
    parser.add_argument("--ground-truth", default=None,
                        help="known motifs and sites (see `caduceus-lrp pipeline --help`); "
                             "default: the embedded dataset's, when it is used")
    parser.add_argument("--device", default=None, help="torch device (default: the CPU)")


def _attribute_parser(parser):
    _checkpoint_arguments(parser)
    parser.add_argument("--out", default="modisco_files/attributions",
                        help="folder of <task>/ohe.npz and <task>/hyp.npz")
    parser.add_argument("--plots-dir", default="plots", help="folder of the figures")
    cli.add_arguments(parser, AttributeConfig)


def _motifs_parser(parser):
    parser.add_argument("--attributions", required=True,
                        help="folder of <task>/ohe.npz and <task>/hyp.npz (arr_0, (N, 4, L))")
    parser.add_argument("--out", default="modisco_files", help="output folder")
    parser.add_argument("--plots", default=None, help="folder for TF_motifs.png")
    parser.add_argument("--jaspar", default=None,
                        help="MEME motif database (default: JASPAR 2024 CORE vertebrates)")
    parser.add_argument("--ground-truth", default=None,
                        help="known motifs: a site table or a task, motif_id table")
    cli.add_arguments(parser, ModiscoConfig)


def _data_parser(parser):
    cli.add_arguments(parser, DataConfig)


def _pretrain_parser(parser):
    cli.add_arguments(parser, PretrainConfig, title="pretraining")
    cli.add_arguments(parser, DataConfig, title="data")


SUBCOMMANDS = {  # name -> (parser builder, one-line help)
    "pipeline": (_pipeline_parser, "the whole pipeline: train, attribute, motifs, summary"),
    "train": (_train_parser, "fine-tune Caduceus (or the CNN baseline)"),
    "attribute": (_attribute_parser, "attributions of every task's positives for TF-MoDISco"),
    "motifs": (_motifs_parser, "TF-MoDISco, Tomtom against JASPAR, motif recovery"),
    "data": (_data_parser, "read a dataset and print sequences per split, positives per task"),
    "pretrain": (_pretrain_parser, "masked-LM pretraining of a small Caduceus backbone"),
}


def build_parser(prog="caduceus-lrp") -> cli.ArgumentParser:
    parser = cli.ArgumentParser(prog=prog, description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (build, help_text) in SUBCOMMANDS.items():
        build(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def _subparser(name: str, prog: str | None = None) -> cli.ArgumentParser:
    build, help_text = SUBCOMMANDS[name]
    parser = cli.ArgumentParser(prog=prog or f"caduceus-lrp {name}", description=help_text)
    build(parser)
    return parser


# --------------------------------------------------------------------------------- commands
def train_config_from_argv(argv, prog=None) -> TrainConfig:
    """The TrainConfig of a `train` command line (a --config file first, explicit flags win)."""
    parser = _subparser("train", prog)
    cli.set_config_defaults(parser, argv, TrainConfig)
    return cli.from_args(TrainConfig, parser.parse_args(argv))


def _train(args_or_argv, prog=None):
    _logging()
    cfg = train_config_from_argv(args_or_argv, prog)
    try:
        run_training(cfg)
        return 0
    except FloatingPointError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None


def _pipeline(argv, prog=None):
    _logging()
    args = _subparser("pipeline", prog).parse_args(argv)
    cfg = cli.from_args(PipelineConfig, args, skip=PIPELINE_SKIPS)
    start = time.perf_counter()
    report = run_pipeline(cfg, log=lambda text: print(text, flush=True))
    steps = ", ".join(f"{k} {v['seconds']:.0f} s" for k, v in report.items())
    print(f"pipeline finished in {time.perf_counter() - start:.1f} s ({steps}); "
          f"summary: {cfg.modisco_dir / 'summary.md'}")
    return 0


def _attribute(argv, prog=None):
    _logging()
    args = _subparser("attribute", prog).parse_args(argv)
    run_attribute(args.model, cli.from_args(AttributeConfig, args), args.out, args.plots_dir,
                  data=args.data, ground_truth=args.ground_truth, device=args.device)
    return 0


def _motifs(argv, prog=None):
    args = _subparser("motifs", prog).parse_args(argv)
    truth = read_ground_truth(args.ground_truth) if args.ground_truth else None
    result = discover(load_attributions(args.attributions), args.out,
                      cli.from_args(ModiscoConfig, args), truth, args.plots, args.jaspar)
    print(pattern_report(result["patterns"]))
    return 0


def _data(argv, prog=None):
    _logging()
    args = _subparser("data", prog).parse_args(argv)
    print(load_dataset(cli.from_args(DataConfig, args)).summary())
    return 0


def _pretrain(argv, prog=None):
    _logging()
    args = _subparser("pretrain", prog).parse_args(argv)
    pretrain(cli.from_args(PretrainConfig, args), cli.from_args(DataConfig, args))
    return 0


RUNNERS = {"pipeline": _pipeline, "train": _train, "attribute": _attribute, "motifs": _motifs,
           "data": _data, "pretrain": _pretrain}


@cli.cli_entry
def main(argv=None):
    """`caduceus-lrp COMMAND [options]`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in RUNNERS:
        build_parser().parse_args(argv or ["--help"])  # help, or the one-line error
        raise InputError(f"unknown command {argv[0]!r}")
    return RUNNERS[argv[0]](argv[1:])


@cli.cli_entry
def pipeline_main(argv=None):
    """`python -m caduceus_lrp [options]`: the pipeline."""
    return _pipeline(argv, prog="python -m caduceus_lrp")


@cli.cli_entry
def train_main(argv=None):
    """`python caduceus_lrp/train_caduceus_finetune.py [options]`: fine-tuning."""
    return _train(argv, prog="train_caduceus_finetune.py")


@cli.cli_entry
def attribute_main(argv=None, prog=None):
    """The attribute command under another name (examples/viz_interpret.py)."""
    return _attribute(argv, prog)
