"""Datasets: the four input formats read into one container of tokens, labels and splits, with a CLI.

Formats, told apart by file name (a trailing .gz allowed for text):
  table  .csv .tsv: a `sequence` column, numeric label columns, optional `id`, `split`
         (train/val/test) and `chrom`, `start`, `end`.
  FASTA  .fa .fasta .fna with `labels`, a table as above keyed by `id` (no `sequence`).
  peaks  .bed .narrowPeak .broadPeak, one file per task (files or a folder) with `genome`:
         windows of seq_len centred on summits, labelled by overlap, plus GC-matched negatives.
  HDF5   .h5 .hdf5 .mat: `x` (b, l, 4) with `y` (b, t); DeepSEA's {train,valid,test}xdata and
         ...data (MATLAB v7.3 as HDF5, or v5); Basset's {train,valid,test}_in (b, 4, 1, l), _out.
No data: the embedded synthetic dataset (caduceus_lrp.synthetic), built once in the cache.
Tables and FASTA are read here, peaks in caduceus_lrp.peaks, HDF5 in caduceus_lrp.hdf5_data.
Glossary: b sequences, l length, t tasks.
"""
from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import json
import logging
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import synthetic
from .errors import InputError, cli_entry
from .io_utils import atomic_path
from .sequence import first_invalid, fit_length, tokens, tokens_to_one_hot

__all__ = ["SPLITS", "SequenceDataset", "DataConfig", "load_dataset", "embedded_dataset",
           "add_arguments", "config_from_args", "main"]

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
_SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
_NOT_LABELS = {"id", "sequence", "split", "chrom", "start", "end"}
_FORMATS = {".csv": "table", ".tsv": "table", ".fa": "fasta", ".fasta": "fasta",
            ".fna": "fasta", ".bed": "peaks", ".narrowpeak": "peaks", ".broadpeak": "peaks",
            ".h5": "hdf5", ".hdf5": "hdf5", ".mat": "hdf5"}


@dataclass
class SequenceDataset:
    """Fixed-length sequences with a multi-task label matrix and a split.

    tokens (b, l) uint8 Caduceus tokens; labels (b, t) float32; task_names (t); split (b,) str in
    SPLITS; ids (b); coords: (chrom, start, end) per sequence, or None; source: where it came from.
    """
    tokens: np.ndarray
    labels: np.ndarray
    task_names: list[str]
    split: np.ndarray
    ids: list[str]
    coords: list[tuple[str, int, int]] | None = None
    source: str = ""

    def __post_init__(self):
        self.tokens = np.asarray(self.tokens, dtype=np.uint8)
        self.labels = np.asarray(self.labels, dtype=np.float32)
        self.split = np.asarray(self.split, dtype="<U5")
        self.task_names, self.ids = list(self.task_names), list(self.ids)
        b = len(self.tokens)
        if self.tokens.ndim != 2:
            raise ValueError(f"tokens must be (b, l), got shape {self.tokens.shape}")
        if self.labels.shape != (b, len(self.task_names)):
            raise ValueError(f"labels must be ({b}, {len(self.task_names)}), got {self.labels.shape}")
        if self.split.shape != (b,) or not np.isin(self.split, SPLITS).all():
            raise ValueError(f"split must be ({b},) of {', '.join(SPLITS)}")
        if len(self.ids) != b or (self.coords is not None and len(self.coords) != b):
            raise ValueError(f"ids and coords must have {b} entries")

    def __len__(self):
        return len(self.tokens)

    @property
    def seq_len(self):
        return self.tokens.shape[1]

    def one_hot(self):
        """(b, l, 4) float32 over A, C, G, T; N is all zeros."""
        return tokens_to_one_hot(self.tokens)

    def subset(self, split_name):
        """The sequences of one split ("all": every sequence), as a SequenceDataset."""
        if split_name not in (*SPLITS, "all"):
            raise ValueError(f"unknown split {split_name!r}; expected one of {', '.join(SPLITS)} or all")
        rows = np.flatnonzero((self.split == split_name) | (split_name == "all"))
        return SequenceDataset(self.tokens[rows], self.labels[rows], self.task_names,
                               self.split[rows], [self.ids[i] for i in rows],
                               None if self.coords is None else [self.coords[i] for i in rows],
                               self.source)

    def summary(self):
        """Sequences per split and positives (label > 0) per task and split, as text."""
        counts = "  ".join(f"{s} {np.sum(self.split == s)}" for s in SPLITS)
        lines = [f"source: {self.source}",
                 f"{len(self)} sequences of {self.seq_len} bp: {counts}",
                 f"{'task':<24}" + "".join(f"{s:>8}" for s in SPLITS) + "   (positives: label > 0)"]
        for j, name in enumerate(self.task_names):
            positives = [np.sum((self.labels[:, j] > 0) & (self.split == s)) for s in SPLITS]
            lines.append(f"{name:<24}" + "".join(f"{p:>8}" for p in positives))
        return "\n".join(lines)

    def save(self, path):
        """Write to an .npz file (atomically; no pickles)."""
        coords = self.coords or []
        with atomic_path(path) as tmp:
            np.savez(tmp, tokens=self.tokens, labels=self.labels, split=self.split,
                     task_names=np.array(self.task_names, dtype=str), ids=np.array(self.ids, dtype=str),
                     has_coords=self.coords is not None, chrom=np.array([c[0] for c in coords], dtype=str),
                     start=np.array([c[1] for c in coords], dtype=np.int64),
                     end=np.array([c[2] for c in coords], dtype=np.int64), source=self.source)

    @classmethod
    def load(cls, path):
        """Read a file written by `save`."""
        with np.load(path, allow_pickle=False) as f:
            coords = (list(zip(f["chrom"].tolist(), f["start"].tolist(), f["end"].tolist()))
                      if f["has_coords"] else None)
            return cls(f["tokens"], f["labels"], f["task_names"].tolist(), f["split"],
                       f["ids"].tolist(), coords, str(f["source"]))


@dataclass
class DataConfig:
    """Where the data comes from and how it is shaped; one --flag per field (add_arguments)."""
    data: str | list[str] | None = field(default=None, metadata={"help": (
        "input: a table (.csv/.tsv), a FASTA with --labels, BED/narrowPeak files or a folder of "
        "them with --genome, or HDF5/.mat file(s) (DeepSEA: train.mat valid.mat test.mat); "
        "none: the embedded synthetic dataset")})
    labels: str | None = field(default=None, metadata={
        "help": "label table (.csv/.tsv) with an `id` column, for FASTA input"})
    genome: str | None = field(default=None, metadata={
        "help": "genome FASTA for peak input (its .fai index is built when missing)"})
    label_columns: list[str] | None = field(default=None, metadata={"help": (
        "label columns of a table (default: all but id, sequence, split, chrom, start, end), "
        "or the tasks to keep from HDF5")})
    seq_len: int = field(default=200, metadata={
        "help": "sequence length; longer sequences are centre-cropped, shorter ones N-padded"})
    val_chroms: list[str] = field(default_factory=lambda: ["chr8"], metadata={
        "help": "chromosomes held out for validation (peak input)"})
    test_chroms: list[str] = field(default_factory=lambda: ["chr9"], metadata={
        "help": "chromosomes held out for testing (peak input)"})
    val_fraction: float = field(default=0.1, metadata={"help": (
        "fraction drawn for validation where rows have no split (and from train when no row is "
        "val)")})
    test_fraction: float = field(default=0.1, metadata={
        "help": "fraction drawn for testing where rows have no split"})
    negatives_per_positive: float = field(default=1.0, metadata={
        "help": "GC-matched negative windows per peak window, from the same chromosome"})
    cache_dir: str = field(default="~/.cache/caduceus_lrp", metadata={
        "help": "where built peak datasets and the embedded dataset are kept"})
    seed: int = field(default=0, metadata={
        "help": "seed of drawn splits, negatives and the embedded dataset"})
    n_synthetic: int = field(default=6000, metadata={
        "help": "number of sequences of the embedded dataset"})


def load_dataset(cfg: DataConfig) -> SequenceDataset:
    """Read cfg.data in its format, or the embedded dataset when it is None."""
    if cfg.seq_len < 1:
        raise InputError(f"--seq-len: must be positive, got {cfg.seq_len}")
    if not (0 <= cfg.val_fraction and 0 <= cfg.test_fraction and cfg.val_fraction + cfg.test_fraction < 1):
        raise InputError("--val-fraction, --test-fraction: must be >= 0 with a sum below 1")
    if cfg.data is None:
        _check_options("the embedded dataset", cfg)
        table, _ = embedded_dataset(cfg)
        return _load_table([table], cfg)
    paths = _expand([cfg.data] if isinstance(cfg.data, (str, Path)) else cfg.data)
    if not paths:
        raise InputError("--data: no input files")
    kind = _detect_format(paths)
    _check_options(kind, cfg)
    from .hdf5_data import load_hdf5  # they import this module, so they are imported here
    from .peaks import load_peaks

    readers = {"table": _load_table, "fasta": _load_fasta, "peaks": load_peaks, "hdf5": load_hdf5}
    return readers[kind](paths, cfg)


def embedded_dataset(cfg: DataConfig):
    """(table path, ground-truth path) of the embedded dataset, built in cfg.cache_dir when missing."""
    try:
        scfg = synthetic.SyntheticConfig(n_sequences=cfg.n_synthetic, seq_len=cfg.seq_len,
                                         seed=cfg.seed, val_fraction=cfg.val_fraction,
                                         test_fraction=cfg.test_fraction)
        out_dir = Path(cfg.cache_dir).expanduser() / f"synthetic-{_digest(dataclasses.asdict(scfg))}"
        table, truth = out_dir / synthetic.TABLE_NAME, out_dir / synthetic.GROUND_TRUTH_NAME
        if table.is_file() and truth.is_file():
            log.info(f"embedded dataset: reusing {out_dir}")
            return table, truth
        log.info(f"embedded dataset: building {cfg.n_synthetic} sequences in {out_dir}")
        return synthetic.make_synthetic(scfg, out_dir)
    except ValueError as err:
        raise InputError(f"embedded dataset: {err}") from None


def _digest(obj):
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _check_options(kind, cfg):
    if (kind == "fasta") != (cfg.labels is not None):
        raise InputError("--labels: FASTA input needs a label table" if kind == "fasta"
                         else f"--labels: a label table goes with FASTA input, not {kind}")
    if (kind == "peaks") != (cfg.genome is not None):
        raise InputError("--genome: peak input needs a genome FASTA" if kind == "peaks"
                         else f"--genome: a genome goes with peak input, not {kind}")
    if kind == "peaks" and cfg.label_columns:
        raise InputError("--label-columns: peak input has one task per file")


def _suffix(path):
    """The format suffix of a file name: .tsv for x.tsv.gz; lower case."""
    name = path.name.lower().removesuffix(".gz")
    return Path(name).suffix


def _expand(paths):
    """Paths, a folder replaced by its files of known formats."""
    out = []
    for p in (Path(s).expanduser() for s in paths):
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.is_file() and _suffix(f) in _FORMATS)
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
        if _suffix(p) not in _FORMATS:
            raise InputError(f"{p}: unknown format; expected one of {', '.join(_FORMATS)} "
                             "(text optionally .gz)")
        kinds.append(_FORMATS[_suffix(p)])
    if len(set(kinds)) > 1:
        raise InputError(f"--data: mixes formats ({', '.join(sorted(set(kinds)))})")
    if kinds[0] in ("table", "fasta") and len(paths) > 1:
        raise InputError(f"--data: one {kinds[0]} at a time, got {len(paths)} files")
    return kinds[0]


# ---------------------------------------------------------------- tables and FASTA

@dataclass
class _Table:
    """Rows of a label table; lines (b,) are their line numbers in the file."""
    lines: list[int]
    ids: list[str] | None
    sequences: list[str] | None
    labels: np.ndarray
    task_names: list[str]
    split: np.ndarray
    coords: list[tuple[str, int, int]] | None


def _read_table(path, label_columns, required):
    sep = "," if _suffix(path) == ".csv" else "\t"
    try:
        frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, skip_blank_lines=False)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: empty file") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as err:
        raise InputError(f"{path}: {err}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    filled = ~(frame == "").all(axis=1).to_numpy()
    frame, lines = frame[filled], (np.flatnonzero(filled) + 2).tolist()
    where = [f"line {n}" for n in lines]
    columns = ", ".join(frame.columns)
    if not len(frame):
        raise InputError(f"{path}: no rows below the header")
    for name in required:
        if name not in frame:
            raise InputError(f"{path}: line 1: no '{name}' column (columns: {columns})")
    if label_columns:
        for name in label_columns:
            if name not in frame:
                raise InputError(f"{path}: line 1: label column '{name}' not found (columns: {columns})")
        task_names = list(label_columns)
    else:
        task_names = [c for c in frame.columns if c not in _NOT_LABELS]
    if not task_names:
        raise InputError(f"{path}: line 1: no label columns (columns: {columns})")
    ids = None
    if "id" in frame:
        ids = frame["id"].str.strip().tolist()
        _check_ids(ids, where, path)
    coords = None
    if {"chrom", "start", "end"} <= set(frame.columns):
        start, end = (_integers(frame[c], where, path, c) for c in ("start", "end"))
        coords = list(zip(frame["chrom"].str.strip().tolist(), start.tolist(), end.tolist()))
    return _Table(lines=lines, ids=ids,
                  sequences=frame["sequence"].str.strip().tolist() if "sequence" in frame else None,
                  labels=np.stack([_numbers(frame[c], where, path, c) for c in task_names], axis=1),
                  task_names=task_names,
                  split=(_parse_split(frame["split"], where, path) if "split" in frame
                         else np.full(len(frame), "", dtype="<U5")),
                  coords=coords)


# Checks of columns: `where` (b,) names each row's place in `path` ("line 5", "'ids' entry 3").

def _numbers(column, where, path, name):
    values = pd.to_numeric(column.str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        i = np.flatnonzero(bad)[0]
        raw = column.iloc[i].strip()
        what = (f"missing label '{name}'" if not raw else
                f"label '{name}' is not a number: {raw!r} (choose labels with --label-columns)")
        raise InputError(f"{path}: {where[i]}: {what}")
    return values.astype(np.float32)


def _integers(column, where, path, name):
    values = pd.to_numeric(column.str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values != np.round(values))
    if bad.any():
        i = np.flatnonzero(bad)[0]
        raise InputError(f"{path}: {where[i]}: '{name}' is not an integer: {column.iloc[i]!r}")
    return values.astype(np.int64)


def _parse_split(column, where, path):
    names = column.str.strip().str.lower()
    known = names.isin(list(_SPLIT_NAMES)).to_numpy()
    if not known.all():
        i = np.flatnonzero(~known)[0]
        raise InputError(f"{path}: {where[i]}: unknown split {column.iloc[i]!r} "
                         "(expected train, val or test)")
    return names.map(_SPLIT_NAMES).to_numpy(dtype="<U5")


def _check_ids(ids, where, path):
    first = {}
    for id_, place in zip(ids, where):
        if not id_:
            raise InputError(f"{path}: {place}: missing id")
        if id_ in first:
            raise InputError(f"{path}: {place}: duplicate id {id_!r} (first on {first[id_]})")
        first[id_] = place


def _encode(seqs, where, path, seq_len):
    """Checked sequences -> tokens (b, seq_len), centre-cropped or N-padded with a count in the log."""
    lengths = np.array([len(s) for s in seqs])
    if (lengths == 0).any():
        raise InputError(f"{path}: {where[np.flatnonzero(lengths == 0)[0]]}: empty sequence")
    joined = "".join(seqs)
    pos = first_invalid(joined)
    if pos is not None:
        ends = np.cumsum(lengths)
        i = int(np.searchsorted(ends, pos, side="right"))
        raise InputError(f"{path}: {where[i]}: invalid character {joined[pos]!r} at position "
                         f"{pos - ends[i] + lengths[i] + 1} of the sequence")
    n_crop, n_pad = int(np.sum(lengths > seq_len)), int(np.sum(lengths < seq_len))
    if n_crop or n_pad:
        log.info(f"{path}: {n_crop} sequences centre-cropped and {n_pad} N-padded to {seq_len} bp")
        seqs = [fit_length(s, seq_len) for s in seqs]
    return tokens(seqs)


def _fill_split(split, cfg, source):
    """Rows with split "" are drawn test/val/train by the configured fractions (seeded); when no
    row is val, val_fraction of all rows is drawn from train."""
    rng = np.random.default_rng(cfg.seed)
    split = split.copy()
    free = rng.permutation(np.flatnonzero(split == ""))
    n_test, n_val = round(len(free) * cfg.test_fraction), round(len(free) * cfg.val_fraction)
    split[free] = "train"
    split[free[:n_test]], split[free[n_test:n_test + n_val]] = "test", "val"
    if len(free):
        log.info(f"{source}: {len(free)} rows without a split drawn: {n_test} test, {n_val} val")
    if not (split == "val").any():
        train = np.flatnonzero(split == "train")
        n_val = min(round(len(split) * cfg.val_fraction), len(train))
        split[rng.choice(train, n_val, replace=False)] = "val"
        if n_val:
            log.info(f"{source}: no validation rows; {n_val} train rows drawn for validation")
    for name in SPLITS:
        if not (split == name).any():
            log.warning(f"{source}: no {name} rows")
    return split


def _load_table(paths, cfg):
    (path,) = paths
    table = _read_table(path, cfg.label_columns, required=("sequence",))
    ids = table.ids or [f"line{n}" for n in table.lines]
    where = [f"line {n}" for n in table.lines]
    return SequenceDataset(_encode(table.sequences, where, path, cfg.seq_len), table.labels,
                           table.task_names, _fill_split(table.split, cfg, path), ids, table.coords,
                           str(path))


def _open_text(path):
    return gzip.open(path, "rt") if path.name.lower().endswith(".gz") else open(path)


def _read_fasta(path):
    """(ids, sequences, "line N" of each header) of a FASTA file."""
    ids, seqs, lines, chunks = [], [], [], None
    try:
        with _open_text(path) as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if line.startswith(">"):
                    if not line[1:].strip():
                        raise InputError(f"{path}: line {n}: header without an id")
                    chunks = []
                    ids.append(line[1:].split()[0])
                    seqs.append(chunks)
                    lines.append(f"line {n}")
                elif line and chunks is None:
                    raise InputError(f"{path}: line {n}: sequence before the first '>' header")
                elif line:
                    chunks.append(line)
    except (UnicodeDecodeError, OSError, EOFError) as err:
        raise InputError(f"{path}: {err}") from None
    if not ids:
        raise InputError(f"{path}: empty file")
    return ids, ["".join(c) for c in seqs], lines


def _load_fasta(paths, cfg):
    (path,) = paths
    ids, seqs, where = _read_fasta(path)
    _check_ids(ids, where, path)
    labels_path = Path(cfg.labels).expanduser()
    table = _read_table(labels_path, cfg.label_columns, required=("id",))
    row = {id_: i for i, id_ in enumerate(table.ids)}
    for id_, place in zip(ids, where):
        if id_ not in row:
            raise InputError(f"{path}: {place}: record {id_!r} has no labels in {labels_path}")
    if len(row) > len(ids):
        in_fasta = set(ids)
        i = next(i for i, id_ in enumerate(table.ids) if id_ not in in_fasta)
        raise InputError(f"{labels_path}: line {table.lines[i]}: id {table.ids[i]!r} has no "
                         f"sequence in {path}")
    order = np.array([row[id_] for id_ in ids])
    coords = None if table.coords is None else [table.coords[i] for i in order]
    return SequenceDataset(_encode(seqs, where, path, cfg.seq_len), table.labels[order],
                           table.task_names, _fill_split(table.split[order], cfg, path), ids,
                           coords, str(path))


# ---------------------------------------------------------------- command line

def _flag_type(hint):
    """(element type, is a list) of a field's type hint such as int, str | None, list[str] | None."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    options = [o for o in options if o is not type(None)]
    lists = [o for o in options if typing.get_origin(o) is list]
    return (typing.get_args(lists[0])[0], True) if lists else (options[0], False)


def add_arguments(parser, config_cls):
    """Add one --flag per field of the dataclass `config_cls` (help from field metadata)."""
    hints = typing.get_type_hints(config_cls)
    for f in dataclasses.fields(config_cls):
        kind, many = _flag_type(hints[f.name])
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        options = {"default": default, "help": f.metadata.get("help", "")}
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        else:
            options.update(type=kind, nargs="+" if many else None)
        parser.add_argument("--" + f.name.replace("_", "-"), **options)


def config_from_args(config_cls, args):
    """The dataclass `config_cls` from parsed arguments (argparse.Namespace) of add_arguments."""
    return config_cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(config_cls)})


@cli_entry
def main(argv=None):
    """python -m caduceus_lrp.data: load a dataset and print a summary."""
    parser = argparse.ArgumentParser(prog="python -m caduceus_lrp.data", description=(
        "Load a dataset (built and cached when needed) and print sequences per split and "
        "positives per task."), formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_arguments(parser, DataConfig)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(load_dataset(config_from_args(DataConfig, args)).summary())


if __name__ == "__main__":
    main()
