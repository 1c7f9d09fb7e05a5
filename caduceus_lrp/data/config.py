"""DataConfig: where a dataset comes from and how it is shaped, one --flag per field for every command."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..cli import option
from ..resources import cache_dir

__all__ = ["DataConfig"]


@dataclass
class DataConfig:
    """Where the data comes from and how it is shaped; the same flags in `train`, `pipeline`,
    `data` and `pretrain` (`cli.add_arguments`)."""
    data: list[str] | None = option(None, (
        "input: a table (.csv/.tsv), a FASTA with --labels, BED/narrowPeak files or a folder of "
        "them with --genome, or HDF5/.mat file(s) (DeepSEA: train.mat valid.mat test.mat); "
        "none: the embedded synthetic dataset"))
    labels: str | None = option(None, "label table (.csv/.tsv) with an `id` column, for FASTA "
                                      "input")
    genome: str | None = option(None, "genome FASTA for peak input (its .fai index is built when "
                                      "missing)")
    label_columns: list[str] | None = option(None, (
        "label columns of a table (default: all but id, sequence, split, chrom, start, end), or "
        "the tasks to keep from HDF5"))
    seq_len: int = option(200, "sequence length; longer sequences are centre-cropped, shorter "
                               "ones N-padded")
    val_chroms: list[str] = option(["chr8"], "chromosomes held out for validation (peak input)")
    test_chroms: list[str] = option(["chr9"], "chromosomes held out for testing (peak input)")
    val_fraction: float = option(0.1, "fraction drawn for validation where rows have no split "
                                      "(and from train when no row is val)")
    test_fraction: float = option(0.1, "fraction drawn for testing where rows have no split")
    negatives_per_positive: float = option(1.0, "GC-matched negative windows per peak window, "
                                                "from the same chromosome")
    cache_dir: str | None = option(None, "where built peak datasets and the embedded dataset are "
                                         "kept (default: $CADUCEUS_LRP_CACHE or "
                                         "~/.cache/caduceus_lrp)")
    seed: int = option(0, "seed of drawn splits, negatives and the embedded dataset")
    n_synthetic: int = option(6000, "number of sequences of the embedded dataset")

    def __post_init__(self):
        if isinstance(self.data, (str, Path)):
            self.data = [str(self.data)]

    @property
    def cache(self) -> Path:
        """The cache folder, resolved."""
        return Path(self.cache_dir).expanduser() if self.cache_dir else cache_dir()
