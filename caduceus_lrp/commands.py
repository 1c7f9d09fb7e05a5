"""`caduceus-lrp`: one command with a subcommand per stage, each a thin layer over a library function.

    caduceus-lrp pipeline   [options]   train -> attribute -> motifs -> analysis -> summary (the
                                        default of `python -m caduceus_lrp`)
    caduceus-lrp train      [options]   fine-tune (training.run_training)
    caduceus-lrp attribute  [options]   attributions for TF-MoDISco and their figures
    caduceus-lrp motifs     [options]   TF-MoDISco, Tomtom against JASPAR, recovery
    caduceus-lrp data       [options]   read a dataset and print what was read
    caduceus-lrp pretrain   [options]   masked-LM pretraining of a small backbone
    caduceus-lrp marginalize | spacing | instances | variants  [options]
                                        causal analyses of a trained model (analysis/)

Every option is a field of a config dataclass (`cli.add_arguments`), so the data options are the
same flags in `pipeline`, `train`, `data` and `pretrain`. Bad input gives one line, exit status 2.
"""
from __future__ import annotations

import logging
import sys
import time

from . import analysis, cli
from .attribute import AttributeConfig, run_attribute
from .data import DataConfig, load_dataset, read_ground_truth
from .errors import InputError
from .motifs import ModiscoConfig, discover, load_attributions, load_replicates, pattern_report
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


def _analysis_parser(parser, command="marginalize"):
    _checkpoint_arguments(parser)
    parser.add_argument("--modisco-dir", default="modisco_files",
                        help="the motif step's folder: patterns are read from it, tables "
                             "written to its analysis/ folder")
    parser.add_argument("--plots-dir", default="plots", help="folder of the figures")
    parser.add_argument("--window", type=int, default=200,
                        help="window (bp) of the motif step's stacked TF-MoDISco run")
    cli.add_arguments(parser, analysis.AnalysisConfig, title="analysis",
                      skip=analysis.skipped_fields(command))


def _spacing_parser(parser):
    _analysis_parser(parser, "spacing")


def _instances_parser(parser):
    _analysis_parser(parser, "instances")
    parser.add_argument("--attributions", default="modisco_files/attributions",
                        help="the attribute step's folder of <task>/ohe.npz and hyp.npz")
    parser.add_argument("--split", default="all",
                        help="split those attributions were computed on (the attribute step's "
                             "--split; the pipeline's is all)")


def _variants_parser(parser):
    _analysis_parser(parser, "variants")
    parser.add_argument("--genome", default=None,
                        help="genome FASTA of a VCF's positions (default: the model's data "
                             "genome)")


SUBCOMMANDS = {  # name -> (parser builder, one-line help)
    "pipeline": (_pipeline_parser, "the whole pipeline: train, attribute, motifs, analysis, "
                                   "summary"),
    "train": (_train_parser, "fine-tune Caduceus (or the CNN baseline)"),
    "attribute": (_attribute_parser, "attributions of every task's positives for TF-MoDISco"),
    "motifs": (_motifs_parser, "TF-MoDISco, Tomtom against JASPAR, motif recovery"),
    "data": (_data_parser, "read a dataset and print sequences per split, positives per task"),
    "pretrain": (_pretrain_parser, "masked-LM pretraining of a small Caduceus backbone"),
    "marginalize": (_analysis_parser, "each motif's effect on every task, inserted into "
                                      "background sequences"),
    "spacing": (_spacing_parser, "a motif pair's effect by spacing and orientation, and its "
                                 "interaction"),
    "instances": (_instances_parser, "where each sequence uses a discovered pattern "
                                     "(instances.tsv)"),
    "variants": (_variants_parser, "each task's logit change of single-base variants, and the "
                                   "attribution change"),
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
    summary = cfg.modisco_dir / "summary.html"
    if not summary.is_file():
        summary = cfg.modisco_dir / "summary.md"
    print(f"pipeline finished in {time.perf_counter() - start:.1f} s ({steps}); "
          f"summary: {summary}")
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
                      cli.from_args(ModiscoConfig, args), truth, args.plots, args.jaspar,
                      replicates=load_replicates(args.attributions))
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


def _analysis_inputs(name, argv, prog):
    """(args, AnalysisConfig, model, dataset, ground truth, data config, patterns or None)."""
    args = _subparser(name, prog).parse_args(argv)
    cfg = cli.from_args(analysis.AnalysisConfig, args)
    model, dataset, truth, data_cfg = analysis.load_inputs(args.model, args.data,
                                                           args.ground_truth, args.device)
    return args, cfg, model, dataset, truth, data_cfg, \
        analysis.load_patterns_of(args.modisco_dir, args.window)


def _marginalize(argv, prog=None):
    args, cfg, model, dataset, truth, _, patterns = _analysis_inputs("marginalize", argv, prog)
    table = analysis.run_marginalization(model, dataset, cfg,
                                         analysis.motifs_for(cfg, patterns, truth),
                                         args.modisco_dir, args.plots_dir, args.device)
    print(analysis.effect_matrix(table).round(3).to_string())
    return 0


def _spacing(argv, prog=None):
    args, cfg, model, dataset, truth, _, patterns = _analysis_inputs("spacing", argv, prog)
    pairs = analysis.choose_pairs(cfg.pairs, model.task_names, patterns, truth)
    if not pairs:
        raise InputError("--pairs: no pair given, no cooperative task (A+B) and fewer than two "
                         "discovered patterns")
    for r in analysis.run_spacing(model, dataset, cfg, pairs, args.modisco_dir, args.plots_dir,
                                  args.device):
        best = r["preferred"]
        print(f"{r['a'].name} + {r['b'].name} on {r['task']}: largest effect "
              f"{best['effect']:+.3f} at {best['orientation']} {best['spacing']} bp"
              f"{analysis.tied_phrase(best)}, "
              f"interaction {best['interaction']:+.3f} [{best['interaction_ci'][0]:+.3f}, "
              f"{best['interaction_ci'][1]:+.3f}] ({r['table']})")
    return 0


def _instances(argv, prog=None):
    args, cfg, _, dataset, truth, data_cfg, patterns = _analysis_inputs("instances", argv,
                                                                         prog)
    table, recovery, _ = analysis.run_instances(dataset, cfg, patterns, truth,
                                                args.attributions, args.split,
                                                args.modisco_dir, model_path=args.model,
                                                data_cfg=data_cfg, device=args.device)
    print(table.groupby(["task", "match"]).size().rename("instances").to_string()
          if len(table) else "no instances")
    if recovery is not None:
        print(recovery.round(3).to_string(index=False))
    return 0


def _variants(argv, prog=None):
    args, cfg, model, dataset, _, data_cfg, _ = _analysis_inputs("variants", argv, prog)
    table = analysis.run_variants(model, dataset, cfg, args.modisco_dir, args.plots_dir,
                                  args.genome or data_cfg.genome, args.device)
    print(table.round(4).to_string(index=False, max_rows=40))
    return 0


RUNNERS = {"pipeline": _pipeline, "train": _train, "attribute": _attribute, "motifs": _motifs,
           "data": _data, "pretrain": _pretrain, "marginalize": _marginalize,
           "spacing": _spacing, "instances": _instances, "variants": _variants}


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
