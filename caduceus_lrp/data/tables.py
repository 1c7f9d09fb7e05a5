"""Table and FASTA input: label tables (.csv/.tsv, gzipped allowed) and FASTA files with a label table.

Table: a `sequence` column, numeric label columns, optional `id`, `split` (train/val/test) and
`chrom`, `start`, `end`. FASTA: records keyed by the first word of their header, labels from a
table of the same form keyed by `id` (no `sequence` column). Glossary: b sequences, t tasks.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..sequence import first_invalid, fit_length, tokens
from .dataset import (SequenceDataset, check_ids, fill_split, open_text, parse_split,
                      read_text_table)

__all__ = ["NOT_LABELS", "load_table", "load_fasta"]

log = logging.getLogger(__name__)

NOT_LABELS = {"id", "sequence", "split", "chrom", "start", "end"}  # table columns that are not labels


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
    frame = read_text_table(path, skip_blank_lines=False)
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
        task_names = [c for c in frame.columns if c not in NOT_LABELS]
    if not task_names:
        raise InputError(f"{path}: line 1: no label columns (columns: {columns})")
    ids = None
    if "id" in frame:
        ids = frame["id"].str.strip().tolist()
        check_ids(ids, where, path)
    coords = None
    if {"chrom", "start", "end"} <= set(frame.columns):
        start, end = (_integers(frame[c], where, path, c) for c in ("start", "end"))
        coords = list(zip(frame["chrom"].str.strip().tolist(), start.tolist(), end.tolist()))
    return _Table(lines=lines, ids=ids,
                  sequences=frame["sequence"].str.strip().tolist() if "sequence" in frame else None,
                  labels=np.stack([_numbers(frame[c], where, path, c) for c in task_names], axis=1),
                  task_names=task_names,
                  split=(parse_split(frame["split"], where, path) if "split" in frame
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


def load_table(paths, cfg):
    """A SequenceDataset from one table (`paths` holds one file) shaped by the DataConfig."""
    (path,) = paths
    table = _read_table(path, cfg.label_columns, required=("sequence",))
    ids = table.ids or [f"line{n}" for n in table.lines]
    where = [f"line {n}" for n in table.lines]
    return SequenceDataset(_encode(table.sequences, where, path, cfg.seq_len), table.labels,
                           table.task_names, fill_split(table.split, cfg, path), ids, table.coords,
                           str(path))


def _read_fasta(path):
    """(ids, sequences, "line N" of each header) of a FASTA file."""
    ids, seqs, lines, chunks = [], [], [], None
    try:
        with open_text(path) as f:
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


def load_fasta(paths, cfg):
    """A SequenceDataset from one FASTA file with the label table cfg.labels."""
    (path,) = paths
    ids, seqs, where = _read_fasta(path)
    check_ids(ids, where, path)
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
                           table.task_names, fill_split(table.split[order], cfg, path), ids,
                           coords, str(path))
