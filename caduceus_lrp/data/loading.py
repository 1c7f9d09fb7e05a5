"""`load_dataset`: any supported input (or the embedded dataset) read into a SequenceDataset.

Formats, told apart by file name (a trailing .gz allowed for text):
  table  .csv .tsv (`data.tables`)
  FASTA  .fa .fasta .fna with `labels`, a table keyed by `id` (`data.tables`)
  peaks  .bed .narrowPeak .broadPeak, one file per task (files or a folder) with `genome`
         (`data.peaks`)
  HDF5   .h5 .hdf5 .mat (`data.hdf5`)
No data: the embedded synthetic dataset (`data.synthetic`), built once in the cache.
To add a format: a reader `load_x(paths, cfg) -> SequenceDataset` in its own module of this
folder, its suffixes in `FORMATS` and its reader in `READERS`.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from ..errors import InputError
from . import synthetic
from .config import DataConfig
from .dataset import SequenceDataset, digest, file_suffix
from .ground_truth import GroundTruth, read_ground_truth
from .hdf5 import load_hdf5
from .peaks import load_peaks
from .tables import load_fasta, load_table

__all__ = ["FORMATS", "READERS", "load_dataset", "embedded_dataset", "embedded_ground_truth",
           "ground_truth_for"]

log = logging.getLogger(__name__)

FORMATS = {".csv": "table", ".tsv": "table", ".fa": "fasta", ".fasta": "fasta",
           ".fna": "fasta", ".bed": "peaks", ".narrowpeak": "peaks", ".broadpeak": "peaks",
           ".h5": "hdf5", ".hdf5": "hdf5", ".mat": "hdf5"}
READERS = {"table": load_table, "fasta": load_fasta, "peaks": load_peaks, "hdf5": load_hdf5}


def load_dataset(cfg: DataConfig) -> SequenceDataset:
    """Read cfg.data in its format, or the embedded dataset when it is None."""
    if cfg.seq_len < 1:
        raise InputError(f"--seq-len: must be positive, got {cfg.seq_len}")
    if not (0 <= cfg.val_fraction and 0 <= cfg.test_fraction
            and cfg.val_fraction + cfg.test_fraction < 1):
        raise InputError("--val-fraction, --test-fraction: must be >= 0 with a sum below 1")
    if not cfg.data:
        _check_options("the embedded dataset", cfg)
        table, _ = embedded_dataset(cfg)
        return load_table([table], cfg)
    paths = _expand(cfg.data)
    if not paths:
        raise InputError("--data: no input files")
    kind = _detect_format(paths)
    _check_options(kind, cfg)
    return READERS[kind](paths, cfg)


def embedded_dataset(cfg: DataConfig):
    """(table path, ground-truth path) of the embedded dataset, built in the cache when missing."""
    try:
        scfg = synthetic.SyntheticConfig(n_sequences=cfg.n_synthetic, seq_len=cfg.seq_len,
                                         seed=cfg.seed, val_fraction=cfg.val_fraction,
                                         test_fraction=cfg.test_fraction)
        out_dir = cfg.cache / f"synthetic-{digest(dataclasses.asdict(scfg))}"
        table, truth = out_dir / synthetic.TABLE_NAME, out_dir / synthetic.GROUND_TRUTH_NAME
        if table.is_file() and truth.is_file():
            log.info(f"embedded dataset: reusing {out_dir}")
            return table, truth
        log.info(f"embedded dataset: building {cfg.n_synthetic} sequences in {out_dir}")
        return synthetic.make_synthetic(scfg, out_dir)
    except ValueError as err:
        raise InputError(f"embedded dataset: {err}") from None


def embedded_ground_truth(cfg: DataConfig) -> GroundTruth:
    """The ground truth of the embedded dataset configured by cfg (built when missing)."""
    return read_ground_truth(embedded_dataset(cfg)[1])


def ground_truth_for(cfg: DataConfig, path=None) -> GroundTruth | None:
    """The ground truth of a dataset: read from `path` when given, else the embedded dataset's
    when cfg reads it, else None (unknown)."""
    if path is not None:
        return read_ground_truth(path)
    return None if cfg.data else embedded_ground_truth(cfg)


def _check_options(kind, cfg):
    if (kind == "fasta") != (cfg.labels is not None):
        raise InputError("--labels: FASTA input needs a label table" if kind == "fasta"
                         else f"--labels: a label table goes with FASTA input, not {kind}")
    if (kind == "peaks") != (cfg.genome is not None):
        raise InputError("--genome: peak input needs a genome FASTA" if kind == "peaks"
                         else f"--genome: a genome goes with peak input, not {kind}")
    if kind == "peaks" and cfg.label_columns:
        raise InputError("--label-columns: peak input has one task per file")


def _expand(paths):
    """Paths, a folder replaced by its files of known formats."""
    out = []
    for p in (Path(s).expanduser() for s in paths):
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.is_file() and file_suffix(f) in FORMATS)
            if not files:
                raise InputError(f"{p}: no files of a known format in this folder")
            out += files
        elif not p.is_file():
            raise InputError(f"{p}: file not found")
        else:
            out.append(p)
    return out


def _detect_format(paths):
    kinds = []
    for p in paths:
        if file_suffix(p) not in FORMATS:
            raise InputError(f"{p}: unknown format; expected one of {', '.join(FORMATS)} "
                             "(text optionally .gz)")
        kinds.append(FORMATS[file_suffix(p)])
    if len(set(kinds)) > 1:
        raise InputError(f"--data: mixes formats ({', '.join(sorted(set(kinds)))})")
    if kinds[0] in ("table", "fasta") and len(paths) > 1:
        raise InputError(f"--data: one {kinds[0]} at a time, got {len(paths)} files")
    return kinds[0]
