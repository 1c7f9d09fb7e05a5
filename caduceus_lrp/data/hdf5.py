"""HDF5 input: x/y, DeepSEA and Basset files (HDF5 or MATLAB .mat) read as tokens, labels, splits.

Glossary: b sequences, l length, d bases, t tasks.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..errors import InputError
from ..sequence import NotOneHotError, fit_length, one_hot_to_tokens
from .dataset import SequenceDataset, check_ids, file_suffix, fill_split, parse_split

__all__ = ["load_hdf5"]

log = logging.getLogger(__name__)

_HDF5_CHUNK = 4096  # sequences converted at a time

# layout -> {split: (x dataset, y dataset)}; split None: from a `split` dataset or drawn
_HDF5_LAYOUTS = {
    "x/y": {None: ("x", "y")},
    "DeepSEA": {"train": ("trainxdata", "traindata"), "val": ("validxdata", "validdata"),
                "test": ("testxdata", "testdata")},
    "Basset": {"train": ("train_in", "train_out"), "val": ("valid_in", "valid_out"),
               "test": ("test_in", "test_out")},
}
# (layout, container) -> axes of x and y as stored: b sequences, l length, d bases, 1 unit, t tasks
_HDF5_AXES = {("x/y", "hdf5"): ("bld", "bt"), ("DeepSEA", "hdf5"): ("ldb", "tb"),
              ("DeepSEA", "mat v5"): ("bdl", "bt"), ("Basset", "hdf5"): ("bd1l", "bt")}


def _strings(values):
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(values).ravel()]


def _hdf5_tokens(x, axes, path, name):
    """x stored with `axes` -> tokens (b, l), converted _HDF5_CHUNK sequences at a time."""
    b_axis = axes.index("b")
    kept = axes.replace("1", "")
    out = np.empty((x.shape[b_axis], x.shape[axes.index("l")]), dtype=np.uint8)
    for lo in tqdm(range(0, len(out), _HDF5_CHUNK), desc=name, unit="chunk", disable=None):
        index = [slice(None)] * len(axes)
        index[b_axis] = slice(lo, lo + _HDF5_CHUNK)
        chunk = np.asarray(x[tuple(index)])
        if "1" in axes:
            chunk = chunk.squeeze(axes.index("1"))
        try:
            out[lo:lo + len(chunk)] = one_hot_to_tokens(chunk.transpose([kept.index(a) for a in "bld"]))
        except NotOneHotError as err:
            raise InputError(f"{path}: '{name}': sequence {lo + err.sequence}, position "
                             f"{err.position} is not one-hot") from None
    return out


def _read_hdf5_store(store, container, path):
    """Task names (t) and [(tokens (b, l), labels (b, t), split (b,), ids or None)] of one file."""
    names = {n for n in store.keys() if not n.startswith("__")}
    for layout, pairs in _HDF5_LAYOUTS.items():
        found = {s: xy for s, xy in pairs.items() if xy[0] in names or xy[1] in names}
        if found:
            break
    else:
        raise InputError(f"{path}: no known datasets: expected x and y, DeepSEA's trainxdata/traindata "
                         f"(valid..., test...) or Basset's train_in/train_out (valid_, test_); "
                         f"found {', '.join(sorted(names)) or 'none'}")
    if (layout, container) not in _HDF5_AXES:
        raise InputError(f"{path}: the {layout} layout is read from HDF5 only")
    x_axes, y_axes = _HDF5_AXES[layout, container]
    task_names = next((_strings(store[n][()]) for n in ("task_names", "target_labels") if n in names), None)
    parts = []
    for split, (xn, yn) in found.items():
        if xn not in names or yn not in names:
            raise InputError(f"{path}: dataset '{xn if xn not in names else yn}' is missing "
                             f"(it goes with '{yn if xn not in names else xn}')")
        x, y = store[xn], store[yn]
        if len(x.shape) != len(x_axes) or x.shape[x_axes.index("d")] != 4:
            raise InputError(f"{path}: '{xn}' has shape {tuple(x.shape)}, expected ({', '.join(x_axes)}) "
                             "with d = 4")
        if len(y.shape) != 2:
            raise InputError(f"{path}: '{yn}' has shape {tuple(y.shape)}, expected ({', '.join(y_axes)})")
        b_x, b_y = x.shape[x_axes.index("b")], y.shape[y_axes.index("b")]
        if b_x != b_y:
            raise InputError(f"{path}: '{xn}' has {b_x} sequences but '{yn}' has {b_y}")
        labels = np.asarray(y[()], dtype=np.float32)
        labels = labels.T if y_axes == "tb" else labels
        task_names = task_names or [f"task_{j}" for j in range(labels.shape[1])]
        if len(task_names) != labels.shape[1]:
            raise InputError(f"{path}: '{yn}' has {labels.shape[1]} tasks, not {len(task_names)}")
        if not np.isfinite(labels).all():
            raise InputError(f"{path}: '{yn}' holds NaN or infinite labels")
        rows, ids = np.full(b_x, split or "", dtype="<U5"), None
        if split is None and "split" in names:
            given = _strings(store["split"][()])
            rows = parse_split(pd.Series(given), [f"'split' entry {k}" for k in range(len(given))], path)
        if split is None and "ids" in names:
            ids = _strings(store["ids"][()])
            check_ids(ids, [f"'ids' entry {k}" for k in range(len(ids))], path)
        if len(rows) != b_x or (ids is not None and len(ids) != b_x):
            raise InputError(f"{path}: 'split' and 'ids' need one entry per sequence of '{xn}' ({b_x})")
        parts.append((_hdf5_tokens(x, x_axes, path, xn), labels, rows, ids))
    return task_names, parts


def load_hdf5(paths, cfg):
    """A SequenceDataset from HDF5 / MATLAB files of one layout (x/y, DeepSEA or Basset)."""
    import h5py

    tokens_, labels, split, ids = [], [], [], []
    for path in paths:
        if h5py.is_hdf5(path):
            with h5py.File(path, "r") as store:
                names, parts = _read_hdf5_store(store, "hdf5", path)
        elif file_suffix(path) == ".mat":
            import scipy.io

            try:
                store = scipy.io.loadmat(path)
            except (ValueError, OSError) as err:
                raise InputError(f"{path}: not a MATLAB file: {err}") from None
            names, parts = _read_hdf5_store(store, "mat v5", path)
        else:
            raise InputError(f"{path}: not an HDF5 file")
        if path == paths[0]:
            task_names = names
        elif names != task_names:
            raise InputError(f"{path}: its tasks differ from those of {paths[0]}")
        offset = 0
        for tok, lab, rows, given_ids in parts:
            n_fit = len(tok) if tok.shape[1] != cfg.seq_len else 0
            if n_fit:
                log.info(f"{path}: {n_fit} sequences of {tok.shape[1]} bp centre-cropped or N-padded "
                         f"to {cfg.seq_len} bp")
            tokens_.append(fit_length(tok, cfg.seq_len))
            labels.append(lab)
            split.append(rows)
            ids += given_ids or [f"{path.name}:{offset + k}" for k in range(len(tok))]
            offset += len(tok)
    keep = list(range(len(task_names)))
    if cfg.label_columns:
        unknown = [t for t in cfg.label_columns if t not in task_names]
        if unknown:
            raise InputError(f"--label-columns: task {unknown[0]!r} not in {paths[0]}")
        keep = [task_names.index(t) for t in cfg.label_columns]
    return SequenceDataset(np.concatenate(tokens_), np.concatenate(labels)[:, keep],
                           [task_names[j] for j in keep],
                           fill_split(np.concatenate(split), cfg, "HDF5"), ids,
                           source=", ".join(map(str, paths)))
