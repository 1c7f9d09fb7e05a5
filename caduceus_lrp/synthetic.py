"""The embedded dataset: real JASPAR 2024 motifs planted in human-like background DNA, with ground truth.

Each sequence is i.i.d. background at `gc` G+C. Each of five motifs is planted with probability
`motif_prob`; GATA1 and TAL1::TCF3 are also planted together with probability `pair_prob`; a decoy
motif (HNF4A, a nuclear receptor unrelated to the five) with probability `decoy_prob`. A planted
motif gets 1..`max_sites` sites, each drawn from its position probability matrix (PPM) raised to
`consensus_bias` and renormalised (1: the PWM itself; larger: closer to the consensus), on a random
strand, at random non-overlapping positions. Labels: a task is 1 when its motif was planted; the
cooperative task GATA1+TAL1 is 1 when both were (the simulation of the DeepLIFT paper); the decoy
labels nothing. Glossary: b sequences, l length, w motif width.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InputError
from .io_utils import atomic_path

__all__ = ["TASK_MOTIFS", "DECOY_MOTIF", "COOPERATIVE_TASK", "TASKS", "TABLE_NAME",
           "GROUND_TRUTH_NAME", "GROUND_TRUTH_COLUMNS", "SyntheticConfig", "motif_ppms",
           "make_synthetic", "load_ground_truth"]

TASK_MOTIFS = {"CTCF": "MA0139.2", "GATA1": "MA0035.5", "TAL1": "MA0091.2", "SPI1": "MA0080.7",
               "CEBPB": "MA0466.4"}  # task -> JASPAR 2024 matrix (TAL1::TCF3, Spi1 in JASPAR)
DECOY_MOTIF = "MA1494.2"  # HNF4A; its ground-truth task is "decoy"
COOPERATIVE_TASK = "GATA1+TAL1"
TASKS = [*TASK_MOTIFS, COOPERATIVE_TASK]
TABLE_NAME, GROUND_TRUTH_NAME = "synthetic.tsv", "ground_truth.tsv"
GROUND_TRUTH_COLUMNS = ["id", "task", "motif_id", "motif_name", "start", "end", "strand"]
_PLANTED = [*TASK_MOTIFS.items(), ("decoy", DECOY_MOTIF)]  # (task, matrix id), in drawing order


@dataclass
class SyntheticConfig:
    """Knobs of the embedded dataset (see the module docstring for what each does)."""
    n_sequences: int = 6000
    seq_len: int = 200
    gc: float = 0.41
    motif_prob: float = 0.16
    pair_prob: float = 0.06
    decoy_prob: float = 0.3
    max_sites: int = 2
    consensus_bias: float = 1.0
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self):
        for name in ("gc", "motif_prob", "pair_prob", "decoy_prob", "val_fraction", "test_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.val_fraction + self.test_fraction > 1.0:
            raise ValueError("val_fraction + test_fraction must be at most 1")
        if self.n_sequences < 1 or self.max_sites < 1 or self.consensus_bias <= 0:
            raise ValueError("n_sequences and max_sites must be positive, consensus_bias > 0")


@functools.lru_cache(maxsize=1)
def _jaspar():
    """[(task, matrix id, JASPAR name, PPM (w, 4) read-only)] of the six planted motifs."""
    from pyjaspar import jaspardb

    db = jaspardb(release="JASPAR2024")
    out = []
    for task, matrix_id in _PLANTED:
        motif = db.fetch_motif_by_id(matrix_id)
        counts = np.array([motif.counts[base] for base in "ACGT"], dtype=np.float64).T
        ppm = counts / counts.sum(axis=1, keepdims=True)
        ppm.flags.writeable = False
        out.append((task, matrix_id, motif.name, ppm))
    return out


def motif_ppms():
    """The planted motifs as {JASPAR name: PPM (w, 4) over A, C, G, T}, the decoy (HNF4A) included."""
    return {name: ppm.copy() for _, _, name, ppm in _jaspar()}


def _place(widths, length, rng):
    """Random non-overlapping starts for sites of these widths, uniform over arrangements."""
    order = rng.permutation(len(widths))
    gaps = np.sort(rng.integers(0, length - sum(widths) + 1, size=len(widths)))
    starts = np.empty(len(widths), dtype=np.int64)
    offset = 0
    for gap, i in zip(gaps, order):
        starts[i] = gap + offset
        offset += widths[i]
    return starts


def make_synthetic(cfg, out_dir):
    """Write the dataset table and its ground truth into `out_dir`; return their paths.

    Table (TSV): id, sequence, one 0/1 column per task of TASKS, split (train/val/test).
    Ground truth (TSV): GROUND_TRUTH_COLUMNS, one row per planted site, start 0-based and end
    exclusive on the forward strand, strand "+" or "-". Deterministic for cfg.seed.
    """
    motifs = _jaspar()
    widths = [len(ppm) for _, _, _, ppm in motifs]
    if cfg.seq_len < cfg.max_sites * sum(widths):
        raise ValueError(f"seq_len {cfg.seq_len} cannot hold {cfg.max_sites} sites of every motif "
                         f"({cfg.max_sites * sum(widths)} bp)")
    cdfs = []
    for _, _, _, ppm in motifs:
        with np.errstate(divide="ignore"):
            log_p = cfg.consensus_bias * np.log(ppm)  # ppm ** bias, renormalised in log space
        biased = np.exp(log_p - log_p.max(axis=1, keepdims=True))
        cdfs.append(np.cumsum(biased / biased.sum(axis=1, keepdims=True), axis=1))
    rng = np.random.default_rng(cfg.seed)
    b, n_tasks = cfg.n_sequences, len(TASK_MOTIFS)
    background = [(1 - cfg.gc) / 2, cfg.gc / 2, cfg.gc / 2, (1 - cfg.gc) / 2]
    seqs = rng.choice(4, size=(b, cfg.seq_len), p=background).astype(np.uint8)  # (b, l) 0..3
    present = np.zeros((b, len(motifs)), dtype=bool)
    present[:, :n_tasks] = rng.random((b, n_tasks)) < cfg.motif_prob
    pair = rng.random(b) < cfg.pair_prob
    gata, tal = list(TASK_MOTIFS).index("GATA1"), list(TASK_MOTIFS).index("TAL1")
    present[pair, gata] = present[pair, tal] = True
    present[:, -1] = rng.random(b) < cfg.decoy_prob
    n_sites = rng.integers(1, cfg.max_sites + 1, size=present.shape) * present
    ids = [f"syn{i:05d}" for i in range(b)]
    truth = []
    for i in range(b):
        kinds = np.repeat(np.arange(len(motifs)), n_sites[i])
        starts = _place([widths[k] for k in kinds], cfg.seq_len, rng)
        for k, start in zip(kinds, starts):
            site = (rng.random(widths[k])[:, None] > cdfs[k][:, :3]).sum(axis=1)  # (w,) 0..3
            minus = rng.random() < 0.5
            seqs[i, start:start + widths[k]] = 3 - site[::-1] if minus else site
            task, matrix_id, name, _ = motifs[k]
            truth.append((ids[i], task, matrix_id, name, start, start + widths[k], "-" if minus else "+"))
    split = np.full(b, "train", dtype="<U5")
    order = rng.permutation(b)
    n_test, n_val = round(b * cfg.test_fraction), round(b * cfg.val_fraction)
    split[order[:n_test]], split[order[n_test:n_test + n_val]] = "test", "val"
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)[seqs]
    table = pd.DataFrame({"id": ids, "sequence": [row.tobytes().decode() for row in letters]})
    for k, task in enumerate(TASK_MOTIFS):
        table[task] = present[:, k].astype(int)
    table[COOPERATIVE_TASK] = (present[:, gata] & present[:, tal]).astype(int)
    table["split"] = split
    return (_write_tsv(table, out_dir, TABLE_NAME),
            _write_tsv(pd.DataFrame(truth, columns=GROUND_TRUTH_COLUMNS), out_dir, GROUND_TRUTH_NAME))


def _write_tsv(frame, out_dir, name):
    path = Path(out_dir) / name
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False)
    return path


def load_ground_truth(path):
    """Read a ground-truth TSV written by make_synthetic into a DataFrame (start, end as int)."""
    try:
        frame = pd.read_csv(path, sep="\t", dtype={"start": np.int64, "end": np.int64})
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: empty file") from None
    except ValueError as err:
        raise InputError(f"{path}: {err}") from None
    if list(frame.columns) != GROUND_TRUTH_COLUMNS:
        raise InputError(f"{path}: line 1: expected columns {', '.join(GROUND_TRUTH_COLUMNS)}, "
                         f"found {', '.join(map(str, frame.columns))}")
    return frame
