"""AnalysisConfig: the settings of the causal analyses (marginalization, spacing, instances,
variants), one --flag per field in `pipeline` and in each analysis command.

Flag names carry their analysis (`--marginalize-background`, `--instance-threshold`, ...) so
that they never collide with the pipeline's other flags.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..cli import option
from ..errors import InputError
from ..explanation_model import METHODS

__all__ = ["BACKGROUNDS", "COMMAND_FIELDS", "AnalysisConfig", "parse_pairs", "skipped_fields"]

BACKGROUNDS = ("shuffle", "negatives")
_SHARED = ("analysis_batch_size",)
COMMAND_FIELDS = {  # the AnalysisConfig fields each analysis command has flags for
    "marginalize": ("marginalize_background", "n_backgrounds", "marginalize_motifs",
                    "analysis_seed", *_SHARED),
    "spacing": ("marginalize_background", "pairs", "max_spacing", "spacing_backgrounds",
                "analysis_seed", *_SHARED),
    "instances": ("instance_threshold", "instance_flank", "instance_max_p", "instance_rounds"),
    "variants": ("variants", "variant_method", "variant_flank", "top_variants", *_SHARED),
}


@dataclass
class AnalysisConfig:
    """Which motifs are inserted into which backgrounds, how instances are called and how
    variants are scored."""

    marginalize_background: str = option(
        "shuffle", "background sequences motifs are inserted into: dinucleotide shuffles of the "
                   "test sequences, or the test sequences negative for every task",
        choices=BACKGROUNDS)
    n_backgrounds: int = option(128, "background sequences per motif (each also on its reverse "
                                     "strand, so the effects average over both)")
    marginalize_motifs: list[str] | None = option(None, (
        "motifs to marginalize: pattern names (pos_patterns.pattern_0), JASPAR IDs (MA0139.2), "
        "sequences (letters ACGTN; N keeps the background), task names with ground truth, or "
        "a pattern's matched TF name; default: the discovered positive patterns, the ground "
        "truth's motifs and the composite element of each analysed pair"))
    pairs: list[str] | None = option(None, (
        "motif pairs for the spacing analysis, two names per pair (A B C D ...) or A+B tokens; "
        "default: the cooperative tasks' pairs (A+B), else the two most co-occurring patterns"))
    max_spacing: int = option(24, "spacings (bp between the two sites) 0..this are swept")
    spacing_backgrounds: int = option(32, "background sequences of the spacing sweep (each also "
                                                "on its reverse strand)")
    analysis_seed: int = option(0, "seed of the background draws")
    analysis_batch_size: int = option(128, "sequences per forward pass of the analyses")
    instance_threshold: float = option(0.05, "seqlet p-value threshold (tangermeme "
                                             "recursive_seqlets) of the motif instances")
    instance_flank: int = option(3, "bases added on each side of a seqlet before it is matched")
    instance_max_p: float = option(0.05, "a seqlet is annotated with a pattern or JASPAR motif "
                                         "whose Tomtom p-value is below this")
    instance_rounds: int = option(2, (
        "rounds of instance calling: each round after the first replaces the instances called "
        "so far by N, attributes those sequences again as the attribute step did, and calls "
        "the sites the model uses once the stronger ones are gone (a max-pooling head gives a "
        "second site of a motif little relevance while the first is there); 1: the "
        "attributions as they are"))
    variants: str | None = option(None, (
        "variants to score: a table (id, position 0-based, ref, alt) of dataset sequences, or a "
        "VCF (chrom, 1-based pos, ref, alt) resolved against --genome"))
    variant_method: str = option("lrp", "attribution method of the variants' attribution "
                                        "difference ('none': logits only)",
                                 choices=(*METHODS, "none"))
    variant_flank: int = option(10, "bases on each side of a variant whose attribution "
                                    "difference is summed (and drawn)")
    top_variants: int = option(5, "variants drawn in plots/variants.png (largest |logit change|)")

    def __post_init__(self):
        if self.marginalize_background not in BACKGROUNDS:
            raise InputError(f"--marginalize-background: unknown background "
                             f"{self.marginalize_background!r}; choose {' or '.join(BACKGROUNDS)}")
        for name in ("n_backgrounds", "spacing_backgrounds", "analysis_batch_size",
                     "top_variants", "instance_rounds"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')}: must be at least 1, got "
                                 f"{getattr(self, name)}")
        for name in ("max_spacing", "instance_flank", "variant_flank"):
            if getattr(self, name) < 0:
                raise InputError(f"--{name.replace('_', '-')}: must be >= 0, got "
                                 f"{getattr(self, name)}")
        for name in ("instance_threshold", "instance_max_p"):
            if not 0 < getattr(self, name) <= 1:
                raise InputError(f"--{name.replace('_', '-')}: must be in (0, 1], got "
                                 f"{getattr(self, name)}")
        if self.variant_method not in (*METHODS, "none"):
            raise InputError(f"--variant-method: unknown method {self.variant_method!r}; choose "
                             f"one of {', '.join(METHODS)}, none")
        parse_pairs(self.pairs)


def parse_pairs(tokens) -> list[tuple[str, str]]:
    """[(A, B)] from `--pairs` tokens: `A+B` tokens, or names taken two at a time."""
    pairs, single = [], []
    for token in tokens or []:
        if "+" in token:
            parts = [p for p in token.split("+") if p]
            if len(parts) != 2:
                raise InputError(f"--pairs: {token!r} is not a pair A+B")
            pairs.append(tuple(parts))
        else:
            single.append(token)
    if len(single) % 2:
        raise InputError(f"--pairs: an odd number of names ({' '.join(single)}); give two per "
                         "pair")
    return pairs + list(zip(single[::2], single[1::2]))


def skipped_fields(command: str) -> list[str]:
    """The AnalysisConfig fields an analysis command has no flags for."""
    import dataclasses

    return [f.name for f in dataclasses.fields(AnalysisConfig)
            if f.name not in COMMAND_FIELDS[command]]
