"""Planted-motif datasets: real JASPAR 2024 motifs planted in i.i.d. background DNA, with ground truth.

The embedded dataset (the defaults of `SyntheticConfig`) and the benchmark datasets of other
motifs are made here. Each sequence is i.i.d. background at `gc` G+C. Each task's motif is
planted with probability `motif_prob`; the decoy motif (default HNF4A, a nuclear receptor
unrelated to the embedded five) with probability `decoy_prob`, labelling nothing. A planted motif
gets 1..`max_sites` sites, each drawn from its position probability matrix (PPM) raised to
`consensus_bias` and renormalised (1: the PWM itself; larger: closer to the consensus), on a
random strand, at random non-overlapping positions. A task is 1 when its motif was planted.

Each pair (A, B) has a cooperative task "A+B". With `pair_spacing` set (a syntax rule), "A+B" is
1 only for a composite element: A's site, `pair_spacing` bp, then B's site on the same strand,
the element on a random strand (as the erythroid E-box-GATA composite element: TAL1 then GATA1,
about 9 bp apart), planted with probability `pair_prob`; with probability `pair_shuffled_prob`
A and B are planted apart, at random positions and strands, and with probability `pair_near_prob`
as a near miss: A then B at a spacing drawn from 0..2 x `pair_spacing` with each site's strand
drawn, any arrangement but the composite element's own, the whole on a random strand. Both make
A and B positive but not "A+B", so only spacing and orientation tell a composite element from a
near miss; without near misses a model can score "A and B close together" and never learn the
spacing. (Sites planted separately fall into the composite arrangement by chance, rarely: such a
sequence stays 0 for "A+B", 3 of the embedded dataset's 6,000.) Without a spacing, A and B are
planted together anywhere with probability `pair_prob` and "A+B" is 1 when both are present (the
simulation of the DeepLIFT paper).
Glossary: b sequences, l length, w motif width, m motifs.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..io_utils import atomic_path
from ..sequence import BASES
from .ground_truth import DECOY_TASK, SITE_COLUMNS

__all__ = ["TASK_MOTIFS", "DECOY_MOTIF", "COOPERATIVE_TASK", "TASKS", "TABLE_NAME",
           "GROUND_TRUTH_NAME", "SyntheticConfig", "jaspar_ppm", "motif_ppms", "make_synthetic"]

TASK_MOTIFS = {"CTCF": "MA0139.2", "GATA1": "MA0035.5", "TAL1": "MA0091.2", "SPI1": "MA0080.7",
               "CEBPB": "MA0466.4"}  # task -> JASPAR 2024 matrix (TAL1::TCF3, Spi1 in JASPAR)
DECOY_MOTIF = "MA1494.2"  # HNF4A
COOPERATIVE_TASK = "TAL1+GATA1"
TASKS = [*TASK_MOTIFS, COOPERATIVE_TASK]
TABLE_NAME, GROUND_TRUTH_NAME = "synthetic.tsv", "ground_truth.tsv"


@dataclass
class SyntheticConfig:
    """Knobs of a planted-motif dataset (see the module docstring for what each does); the
    defaults make the embedded dataset."""
    n_sequences: int = 6000
    seq_len: int = 200
    gc: float = 0.41
    motifs: dict[str, str] = field(default_factory=lambda: dict(TASK_MOTIFS))
    pairs: list[tuple[str, str]] = field(default_factory=lambda: [("TAL1", "GATA1")])
    decoy: str | None = DECOY_MOTIF
    motif_prob: float = 0.16
    pair_prob: float = 0.15
    pair_spacing: int | None = 9
    pair_shuffled_prob: float = 0.05
    pair_near_prob: float = 0.15
    decoy_prob: float = 0.3
    max_sites: int = 2
    consensus_bias: float = 1.0
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self):
        for name in ("gc", "motif_prob", "pair_prob", "pair_shuffled_prob", "pair_near_prob",
                     "decoy_prob", "val_fraction", "test_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.val_fraction + self.test_fraction > 1.0:
            raise ValueError("val_fraction + test_fraction must be at most 1")
        if self.n_sequences < 1 or self.max_sites < 1 or self.consensus_bias <= 0:
            raise ValueError("n_sequences and max_sites must be positive, consensus_bias > 0")
        self.pairs = [tuple(p) for p in self.pairs]
        for pair in self.pairs:
            if len(pair) != 2 or not set(pair) <= set(self.motifs):
                raise ValueError(f"pair {pair}: needs two of the tasks {', '.join(self.motifs)}")
        if DECOY_TASK in self.motifs:
            raise ValueError(f"{DECOY_TASK!r} is reserved for the decoy motif")
        if self.pair_spacing is not None and self.pair_spacing < 0:
            raise ValueError(f"pair_spacing must be >= 0, got {self.pair_spacing}")

    @property
    def tasks(self) -> list[str]:
        """Label columns: one per motif, then one "A+B" per pair."""
        return [*self.motifs, *("+".join(p) for p in self.pairs)]


@functools.lru_cache(maxsize=None)
def _jaspar_motif(matrix_id: str):
    """(JASPAR name, PPM (w, 4) read-only) of a JASPAR 2024 matrix, read offline by pyjaspar."""
    from pyjaspar import jaspardb

    motif = jaspardb(release="JASPAR2024").fetch_motif_by_id(matrix_id)
    if motif is None:
        raise ValueError(f"{matrix_id}: not a JASPAR 2024 matrix ID")
    counts = np.array([motif.counts[base] for base in BASES], dtype=np.float64).T
    ppm = counts / counts.sum(axis=1, keepdims=True)
    ppm.flags.writeable = False
    return motif.name, ppm


def jaspar_ppm(matrix_id: str) -> np.ndarray:
    """The PPM (w, 4) over A, C, G, T of a JASPAR 2024 matrix ID (a copy)."""
    return _jaspar_motif(matrix_id)[1].copy()


def _planted(cfg: SyntheticConfig):
    """[(task, matrix id, JASPAR name, PPM)] in drawing order: the tasks' motifs, then the decoy."""
    items = [*cfg.motifs.items(), *([(DECOY_TASK, cfg.decoy)] if cfg.decoy else [])]
    return [(task, mid, *_jaspar_motif(mid)) for task, mid in items]


def motif_ppms(cfg: SyntheticConfig | None = None):
    """The planted motifs of a dataset (default: the embedded one) as {JASPAR name: PPM (w, 4)
    over A, C, G, T}, the decoy included."""
    return {name: ppm.copy() for _, _, name, ppm in _planted(cfg or SyntheticConfig())}


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


def _cdf(ppm, bias):
    """Cumulative base probabilities (w, 4) of `ppm` raised to `bias` and renormalised."""
    with np.errstate(divide="ignore"):
        log_p = bias * np.log(ppm)  # ppm ** bias, renormalised in log space
    biased = np.exp(log_p - log_p.max(axis=1, keepdims=True))
    return np.cumsum(biased / biased.sum(axis=1, keepdims=True), axis=1)


def make_synthetic(cfg: SyntheticConfig, out_dir):
    """Write the dataset table and its ground truth into `out_dir`; return their paths.

    Table (TSV): id, sequence, one 0/1 column per task of cfg.tasks, split (train/val/test).
    Ground truth (TSV): `ground_truth.SITE_COLUMNS`, one row per planted site and task it makes
    positive (a composite element's two sites are rows of A, of B and of "A+B"), start 0-based
    and end exclusive on the forward strand, strand "+" or "-". Deterministic for cfg.seed.
    """
    motifs = _planted(cfg)
    widths = [len(ppm) for _, _, _, ppm in motifs]
    columns = list(cfg.motifs)
    pairs = [(columns.index(a), columns.index(b)) for a, b in cfg.pairs]
    syntax = cfg.pair_spacing is not None
    near_max = 2 * cfg.pair_spacing if syntax else 0  # widest near-miss spacing

    def span(p, spacing):  # bp of pair p's A, `spacing` bp, then B
        return widths[pairs[p][0]] + spacing + widths[pairs[p][1]]

    widest = ([cfg.pair_spacing] if syntax else []) + \
        ([near_max] if syntax and cfg.pair_near_prob > 0 else [])  # composite, near miss
    needed = cfg.max_sites * sum(widths) + sum(span(p, s) for p in range(len(pairs))
                                               for s in widest)
    if cfg.seq_len < needed:
        raise ValueError(f"seq_len {cfg.seq_len} cannot hold {cfg.max_sites} sites of every motif "
                         f"and every composite element and near miss ({needed} bp)")
    cdfs = [_cdf(ppm, cfg.consensus_bias) for _, _, _, ppm in motifs]
    rng = np.random.default_rng(cfg.seed)
    b, n_tasks = cfg.n_sequences, len(cfg.motifs)
    background = [(1 - cfg.gc) / 2, cfg.gc / 2, cfg.gc / 2, (1 - cfg.gc) / 2]
    seqs = rng.choice(4, size=(b, cfg.seq_len), p=background).astype(np.uint8)  # (b, l) 0..3
    present = np.zeros((b, len(motifs)), dtype=bool)                             # (b, m)
    present[:, :n_tasks] = rng.random((b, n_tasks)) < cfg.motif_prob
    composite = np.zeros((b, len(pairs)), dtype=bool)                            # (b, pairs)
    near = np.zeros((b, len(pairs)), dtype=bool)                                 # (b, pairs)
    for k, (first, second) in enumerate(pairs):
        together = rng.random(b) < cfg.pair_prob
        if syntax:
            composite[:, k] = together
            together = rng.random(b) < cfg.pair_shuffled_prob
            if cfg.pair_near_prob > 0:  # no draw at 0: datasets without near misses stay as made
                near[:, k] = rng.random(b) < cfg.pair_near_prob
        present[together, first] = present[together, second] = True
    if cfg.decoy:
        present[:, -1] = rng.random(b) < cfg.decoy_prob
    n_sites = rng.integers(1, cfg.max_sites + 1, size=present.shape) * present
    ids = [f"syn{i:05d}" for i in range(b)]
    truth = []

    def draw(k, minus=False):
        site = (rng.random(widths[k])[:, None] > cdfs[k][:, :3]).sum(axis=1)  # (w,) 0..3
        return 3 - site[::-1] if minus else site

    def site_rows(i, k, start, minus, tasks):
        task, matrix_id, name, _ = motifs[k]
        return [(ids[i], t, matrix_id, name, start, start + widths[k], "-" if minus else "+")
                for t in tasks]

    def near_miss():
        """(spacing, A's strand is -, B's strand is -) of a near miss: not the composite's."""
        while True:
            spacing, a_minus, b_minus = rng.integers(0, near_max + 1), *(rng.random(2) < 0.5)
            if spacing != cfg.pair_spacing or a_minus or b_minus:
                return int(spacing), bool(a_minus), bool(b_minus)

    for i in range(b):
        units = [("site", k, None) for k in np.repeat(np.arange(len(motifs)), n_sites[i])]
        units += [("composite", p, (cfg.pair_spacing, False, False))
                  for p in np.flatnonzero(composite[i])]
        units += [("near", p, near_miss()) for p in np.flatnonzero(near[i])]
        starts = _place([widths[u] if kind == "site" else span(u, arrangement[0])
                         for kind, u, arrangement in units], cfg.seq_len, rng)
        for (kind, u, arrangement), start in zip(units, starts):
            minus = rng.random() < 0.5
            if kind == "site":
                seqs[i, start:start + widths[u]] = draw(u, minus)
                truth += site_rows(i, u, start, minus, [motifs[u][0]])
                continue
            (first, second), (spacing, a_minus, b_minus) = pairs[u], arrangement
            unit = seqs[i, start:start + span(u, spacing)].copy()
            unit[:widths[first]] = draw(first, a_minus)
            unit[widths[first] + spacing:] = draw(second, b_minus)
            seqs[i, start:start + len(unit)] = 3 - unit[::-1] if minus else unit
            offset = widths[second] + spacing if minus else 0
            other = 0 if minus else widths[first] + spacing
            pair_task = ["+".join(cfg.pairs[u])] if kind == "composite" else []
            truth += site_rows(i, first, start + offset, minus != a_minus,
                               [motifs[first][0], *pair_task])
            truth += site_rows(i, second, start + other, minus != b_minus,
                               [motifs[second][0], *pair_task])
    split = np.full(b, "train", dtype="<U5")
    order = rng.permutation(b)
    n_test, n_val = round(b * cfg.test_fraction), round(b * cfg.val_fraction)
    split[order[:n_test]], split[order[n_test:n_test + n_val]] = "test", "val"
    letters = np.frombuffer(BASES.encode(), dtype=np.uint8)[seqs]
    table = pd.DataFrame({"id": ids, "sequence": [row.tobytes().decode() for row in letters]})
    paired = composite | near  # (b, pairs)
    for k, task in enumerate(columns):
        table[task] = (present[:, k] | paired[:, [j for j, p in enumerate(pairs)
                                                  if k in p]].any(axis=1)).astype(int)
    for k, (first, second) in enumerate(pairs):
        label = composite[:, k] if syntax else present[:, first] & present[:, second]
        table["+".join(cfg.pairs[k])] = label.astype(int)
    table["split"] = split
    return (_write_tsv(table, out_dir, TABLE_NAME),
            _write_tsv(pd.DataFrame(truth, columns=SITE_COLUMNS), out_dir, GROUND_TRUTH_NAME))


def _write_tsv(frame, out_dir, name):
    path = Path(out_dir) / name
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False)
    return path
