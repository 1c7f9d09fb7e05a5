"""The dataset container every reader returns, and the helpers the readers share (splits, ids, files).

Glossary: b sequences, l length, t tasks.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io_utils import atomic_path
from ..sequence import tokens_to_one_hot

__all__ = ["SPLITS", "SequenceDataset", "parse_split", "fill_split", "check_ids", "digest",
           "open_text", "file_suffix", "read_text_table"]

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
_SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


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
        """The sequences of one split ("all": every sequence), as a SequenceDataset. An unknown
        split name raises InputError."""
        if split_name not in (*SPLITS, "all"):
            raise InputError(f"--split: unknown split {split_name!r}; choose one of "
                             f"{', '.join(SPLITS)}, all")
        rows = np.flatnonzero((self.split == split_name) | (split_name == "all"))
        return SequenceDataset(self.tokens[rows], self.labels[rows], self.task_names,
                               self.split[rows], [self.ids[i] for i in rows],
                               None if self.coords is None else [self.coords[i] for i in rows],
                               self.source)

    def positives(self, task_name: str) -> np.ndarray:
        """Rows (k,) of the sequences labelled positive (label > 0) for `task_name`, in order."""
        if task_name not in self.task_names:
            raise InputError(f"dataset: has no labels for task {task_name!r} (it has "
                             f"{', '.join(self.task_names)})")
        return np.flatnonzero(self.labels[:, self.task_names.index(task_name)] > 0)

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
                     task_names=np.array(self.task_names, dtype=str),
                     ids=np.array(self.ids, dtype=str), has_coords=self.coords is not None,
                     chrom=np.array([c[0] for c in coords], dtype=str),
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


def parse_split(column, where, path):
    """A pandas column of split names (train, val/valid/validation, test, any case) -> (b,) of
    SPLITS; `where` (b,) names each row's place in `path` for the error of an unknown name."""
    names = column.str.strip().str.lower()
    known = names.isin(list(_SPLIT_NAMES)).to_numpy()
    if not known.all():
        i = np.flatnonzero(~known)[0]
        raise InputError(f"{path}: {where[i]}: unknown split {column.iloc[i]!r} "
                         "(expected train, val or test)")
    return names.map(_SPLIT_NAMES).to_numpy(dtype="<U5")


def fill_split(split, cfg, source):
    """Rows with split "" are drawn test/val/train by cfg.test_fraction and cfg.val_fraction
    (seeded by cfg.seed); when no row is val, val_fraction of all rows is drawn from train."""
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


def check_ids(ids, where, path):
    """Every id present and unique; `where` names each id's place in `path` for the error."""
    first = {}
    for id_, place in zip(ids, where):
        if not id_:
            raise InputError(f"{path}: {place}: missing id")
        if id_ in first:
            raise InputError(f"{path}: {place}: duplicate id {id_!r} (first on {first[id_]})")
        first[id_] = place


def digest(obj) -> str:
    """A short stable hash of a JSON-able object (cache file names)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def open_text(path):
    """A text file, gunzipped on the fly when its name ends in .gz."""
    path = Path(path)
    return gzip.open(path, "rt") if path.name.lower().endswith(".gz") else open(path)


def file_suffix(path) -> str:
    """The format suffix of a file name in lower case: .tsv for x.tsv.gz."""
    name = Path(path).name.lower().removesuffix(".gz")
    return Path(name).suffix


def read_text_table(path, **options) -> pd.DataFrame:
    """A .csv (comma) or other (tab) text table, every cell a string, gzipped allowed; a missing,
    empty or malformed file raises InputError naming it. `options` go to pandas.read_csv."""
    sep = "," if file_suffix(path) == ".csv" else "\t"
    try:
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, **options)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: empty file") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as err:
        raise InputError(f"{path}: {err}") from None
