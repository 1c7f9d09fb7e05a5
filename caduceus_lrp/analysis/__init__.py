"""Which motifs the model uses, with what syntax, where, and what a variant does: causal analyses
of a trained model through tangermeme (and memelite), on this project's (N, L, 4) one-hot layout.

Modules: `adapter` (the model and layout bridge, predictions, intervals), `config`
(AnalysisConfig), `sources` (motifs by name, background sequences), `marginalize`, `spacing`,
`instances`, `variants`, `plots`, `run` (each analysis with its files, and `run_analysis`: the
pipeline's analysis step and analysis.json) and `results` (reading them back). Each module's
docstring gives its method.
"""
from .adapter import TangermemeModel, mean_interval, predict_logits, to_ncl, to_nlc
from .config import AnalysisConfig, parse_pairs, skipped_fields
from .instances import (attribution_inputs, call_instances, instance_recovery, read_instances,
                        write_instances)
from .marginalize import effect_matrix, marginalize
from .plots import plot_marginalization, plot_spacing, plot_variants
from .results import AnalysisResults, analysis_report, load_analysis
from .run import (ANALYSIS_DIR, choose_pairs, load_inputs, load_patterns_of, motifs_for,
                  run_analysis, run_instances, run_marginalization, run_spacing, run_variants,
                  write_table)
from .sources import (Discovered, Motif, backgrounds, composite, default_motifs, discovered,
                      jaspar_motif, resolve_motif, safe_name)
from .spacing import ORIENTATIONS, focus_task, preferred, spacing_sweep, tied_phrase
from .variants import Variants, read_variant_table, read_variants, read_vcf, variant_effects

__all__ = ["AnalysisResults", "analysis_report", "load_analysis", "TangermemeModel",
           "mean_interval", "predict_logits", "to_ncl", "to_nlc", "AnalysisConfig",
           "parse_pairs", "skipped_fields", "attribution_inputs", "call_instances",
           "instance_recovery", "read_instances", "write_instances", "effect_matrix",
           "marginalize", "plot_marginalization", "plot_spacing", "plot_variants",
           "ANALYSIS_DIR", "choose_pairs", "load_inputs", "load_patterns_of", "motifs_for",
           "run_analysis", "run_instances", "run_marginalization", "run_spacing", "run_variants",
           "write_table", "Discovered", "Motif", "backgrounds", "composite", "default_motifs",
           "discovered", "jaspar_motif", "resolve_motif", "safe_name", "ORIENTATIONS",
           "focus_task", "preferred", "spacing_sweep", "tied_phrase", "Variants",
           "read_variant_table", "read_variants", "read_vcf", "variant_effects"]
