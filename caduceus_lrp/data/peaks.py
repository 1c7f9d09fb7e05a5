"""Peak input: BED/narrowPeak files on a genome FASTA as summit windows with GC-matched negatives.

Windows of seq_len centred on summits are labelled by overlap with each file's peaks; negatives
match their G+C histogram on the same chromosome. Built datasets are cached in the data cache folder.
Glossary: k intervals or windows, l window length, t tasks (one per peak file).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import InputError
from ..sequence import N_TOKEN, tokens
from .dataset import SequenceDataset, digest, file_suffix, fill_split, open_text

__all__ = ["load_peaks"]

log = logging.getLogger(__name__)

_GC_BINS = 20  # negatives match the peak windows' G+C histogram in bins of 1/20
_MAX_N_FRACTION = 0.1  # candidate negatives with more N than this are skipped
_NEGATIVE_ROUNDS = 50  # draws per chromosome before a GC bin is left short


def _task_name(path):
    name = path.name.removesuffix(".gz").removesuffix(".GZ")
    return name[:len(name) - len(file_suffix(path))]


def _read_peaks(path, sizes):
    """Intervals on the genome: (chrom (k,) str, start, end, centre (k,) int64) and skip counts.

    The centre is the narrowPeak summit (column 10) when given, else the interval's middle.
    """
    narrow = file_suffix(path) == ".narrowpeak"
    rows, missing, past_end = [], 0, 0
    try:
        with open_text(path) as f:
            for n, line in enumerate(f, 1):
                fields = line.split()
                if not fields or fields[0].startswith("#") or fields[0] in ("track", "browser"):
                    continue
                if len(fields) < 3 or not (fields[1].isdigit() and fields[2].isdigit()):
                    raise InputError(f"{path}: line {n}: expected chrom, start, end (non-negative integers)")
                chrom, start, end = fields[0], int(fields[1]), int(fields[2])
                if end <= start:
                    raise InputError(f"{path}: line {n}: end {end} is not after start {start}")
                summit = -1
                if narrow or len(fields) == 10:
                    if len(fields) < 10 or not fields[9].lstrip("-").isdigit():
                        raise InputError(f"{path}: line {n}: narrowPeak needs an integer summit in column 10")
                    summit = int(fields[9])
                    if summit >= end - start:
                        raise InputError(f"{path}: line {n}: summit {summit} lies past the interval")
                if chrom not in sizes:
                    missing += 1
                elif end > sizes[chrom]:
                    past_end += 1
                else:
                    rows.append((chrom, start, end, start + summit if summit >= 0 else (start + end) // 2))
    except (UnicodeDecodeError, OSError, EOFError) as err:
        raise InputError(f"{path}: {err}") from None
    if not rows:
        raise InputError(f"{path}: no usable intervals ({missing} on chromosomes missing from the "
                         f"genome, {past_end} past a chromosome end)")
    chrom, start, end, centre = zip(*rows)
    return (np.array(chrom), np.array(start), np.array(end), np.array(centre)), (missing, past_end)


def _overlaps(chrom, start, end, peaks):
    """(k,) bool: whether each interval [start, end) on chrom overlaps an interval of `peaks`."""
    p_chrom, p_start, p_end = peaks[:3]
    out = np.zeros(len(chrom), dtype=bool)
    for c in np.unique(chrom):
        mine = p_chrom == c
        if not mine.any():
            continue
        order = np.argsort(p_start[mine])
        starts, reach = p_start[mine][order], np.maximum.accumulate(p_end[mine][order])
        rows = np.flatnonzero(chrom == c)
        k = np.searchsorted(starts, end[rows], side="left") - 1  # last peak starting before the end
        hit = k >= 0
        out[rows[hit]] = reach[k[hit]] > start[rows[hit]]
    return out


def _gc_bins(windows):
    """(k, l) tokens -> (k,) G+C bin of each window, and its N fraction."""
    n_fraction = (windows == N_TOKEN).mean(axis=1)
    gc = np.isin(windows, (8, 9)).sum(axis=1) / np.maximum((windows != N_TOKEN).sum(axis=1), 1)
    return np.minimum((gc * _GC_BINS).astype(np.int64), _GC_BINS - 1), n_fraction


def _negatives(seq, chrom, quota, all_peaks, length, rng):
    """Starts of negative windows on one chromosome: per GC bin, quota[bin] windows that overlap
    no peak and hold at most _MAX_N_FRACTION N. Returns (starts, number left short)."""
    chosen, left = [], quota.copy()
    offsets = np.arange(length)
    for _ in range(_NEGATIVE_ROUNDS):
        if not left.any():
            break
        starts = np.unique(rng.integers(0, len(seq) - length + 1, size=max(1024, 4 * left.sum())))
        starts = rng.permutation(starts[~np.isin(starts, chosen)])
        bins, n_fraction = _gc_bins(seq[starts[:, None] + offsets])
        ok = (n_fraction <= _MAX_N_FRACTION) & ~_overlaps(np.full(len(starts), chrom), starts,
                                                          starts + length, all_peaks)
        for b in np.flatnonzero(left):
            take = starts[ok & (bins == b)][:left[b]]
            chosen.extend(take.tolist())
            left[b] -= len(take)
    return np.array(sorted(chosen), dtype=np.int64), int(left.sum())


def _peak_windows(peaks, task_names, genome, sizes, cfg):
    length, half = cfg.seq_len, cfg.seq_len // 2
    chrom = np.concatenate([p[0] for p in peaks])
    start = np.concatenate([p[3] for p in peaks]) - half
    inside = (start >= 0) & (start + length <= np.array([sizes[c] for c in chrom]))
    n_edge = int(np.sum(~inside))
    windows = sorted(set(zip(chrom[inside].tolist(), start[inside].tolist())))
    if not windows:
        raise InputError(f"--seq-len: no {length} bp window around a summit fits on its chromosome")
    all_peaks = tuple(np.concatenate([p[i] for p in peaks]) for i in range(3))
    rng = np.random.default_rng(cfg.seed)
    parts, short = [], 0
    offsets = np.arange(length)
    by_chrom = {}
    for c, s in windows:
        by_chrom.setdefault(c, []).append(s)
    for c in tqdm(sorted(by_chrom), desc="peak windows", unit="chrom", disable=None):
        seq = tokens(genome[c][:])[0]
        pos = np.array(by_chrom[c], dtype=np.int64)
        bins, _ = _gc_bins(seq[pos[:, None] + offsets])
        quota = np.round(cfg.negatives_per_positive * np.bincount(bins, minlength=_GC_BINS)).astype(np.int64)
        neg, missed = _negatives(seq, c, quota, all_peaks, length, rng)
        short += missed
        starts = np.concatenate([pos, neg])
        labels = np.stack([_overlaps(np.full(len(starts), c), starts, starts + length, p) for p in peaks], axis=1)
        labels[len(pos):] = False
        parts.append((c, starts, seq[starts[:, None] + offsets], labels, len(pos)))
    n_pos = sum(p[4] for p in parts)
    n_neg = sum(len(p[1]) for p in parts) - n_pos
    log.info(f"peaks: {n_pos} windows of {length} bp on summits ({n_edge} past a chromosome end "
             f"skipped), {n_neg} GC-matched negatives ({short} short of the target)")
    split = np.concatenate([np.full(len(p[1]), "val" if p[0] in cfg.val_chroms else
                                    "test" if p[0] in cfg.test_chroms else "train") for p in parts])
    coords = [(c, s, s + length) for c, starts, _, _, _ in parts for s in starts.tolist()]
    return SequenceDataset(np.concatenate([p[2] for p in parts]), np.concatenate([p[3] for p in parts]),
                           task_names, fill_split(split, cfg, "peaks"),
                           [f"{c}:{s}-{e}" for c, s, e in coords], coords)


def _open_genome(path):
    import pyfaidx

    if not path.is_file():
        raise InputError(f"{path}: genome FASTA not found")
    try:
        return pyfaidx.Fasta(str(path), as_raw=True)
    except (pyfaidx.FastaIndexingError, pyfaidx.UnsupportedCompressionFormat, OSError,
            ValueError) as err:
        raise InputError(f"{path}: cannot index the genome FASTA: {err}") from None


def _file_key(path):
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def load_peaks(paths, cfg):
    """A SequenceDataset of summit windows from peak files (one task each) on cfg.genome."""
    genome_path = Path(cfg.genome).expanduser()
    task_names = [_task_name(p) for p in paths]
    repeated = {t for t in task_names if task_names.count(t) > 1}
    if repeated:
        raise InputError(f"--data: two peak files give the task name {sorted(repeated)[0]!r}")
    genome = _open_genome(genome_path)
    key = digest({"peaks": [_file_key(p) for p in paths], "genome": _file_key(genome_path),
                   "options": [cfg.seq_len, cfg.negatives_per_positive, cfg.seed, cfg.val_chroms,
                               cfg.test_chroms, cfg.val_fraction, cfg.test_fraction]})
    cache = cfg.cache / f"peaks-{key}.npz"
    if cache.is_file():
        log.info(f"peaks: reusing {cache}")
        return SequenceDataset.load(cache)
    sizes = {name: len(record) for name, record in genome.items()}
    read = [_read_peaks(p, sizes) for p in paths]
    for p, (_, (missing, past_end)) in zip(paths, read):
        if missing or past_end:
            log.info(f"{p}: skipped {missing} intervals on chromosomes missing from the genome, "
                     f"{past_end} past a chromosome end")
    dataset = _peak_windows([r[0] for r in read], task_names, genome, sizes, cfg)
    dataset.source = f"{', '.join(map(str, paths))} on {genome_path}"
    dataset.save(cache)
    return dataset
