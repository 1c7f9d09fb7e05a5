"""What the analyses insert and where: motifs named by the user (discovered patterns, JASPAR
matrices, sequences, task names) and the background sequences they go into.

Glossary: N sequences, L length, w motif width. A `Motif` is inserted as its `sequence`
(A, C, G, T; N keeps the background base there, as in `tangermeme.ersatz.substitute`): a
pattern's or a matrix's consensus, the most frequent base of each position. Patterns are those
of the stacked TF-MoDISco run (`motifs.load_results`), each with its best significant JASPAR
match from that run's Tomtom table.
"""
from __future__ import annotations

import functools
import re
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..data import GroundTruth, SequenceDataset
from ..errors import InputError
from ..motifs import load_results
from ..motifs.tomtom import consensus
from ..sequence import BASES, flip_lc, reverse_complement
from .config import BACKGROUNDS

__all__ = ["Motif", "Discovered", "discovered", "jaspar_motif", "resolve_motif",
           "default_motifs", "composite", "backgrounds", "safe_name"]

_JASPAR_ID = re.compile(r"^MA\d{4}\.\d+$")
_SEQUENCE = re.compile(r"^[ACGTN]+$", re.IGNORECASE)


@dataclass(eq=False)
class Motif:
    """A motif to insert: its name (tables, plots, file names), its source ("pattern",
    "jaspar", "sequence", "composite"), the inserted `sequence`, its JASPAR match or ID
    (`match`, '' when none) and its PPM (w, 4) when known."""

    name: str
    source: str
    sequence: str
    match: str = ""
    ppm: np.ndarray | None = field(default=None, repr=False)

    @property
    def width(self) -> int:
        return len(self.sequence)

    def reverse_complement(self) -> Motif:
        """The motif on the other strand (its PPM flipped on both axes)."""
        return Motif(self.name, self.source, reverse_complement(self.sequence),
                     self.match, None if self.ppm is None else self.ppm[::-1, ::-1].copy())


@dataclass
class Discovered:
    """The stacked run's patterns: {name: Pattern} and {name: best significant JASPAR match
    (e.g. MA0139.2_CTCF) or ''}; `trim` is the threshold of their trimmed PPMs."""

    patterns: dict
    matches: dict
    trim: float = 0.3

    def motif(self, name: str) -> Motif:
        ppm = self.patterns[name].trimmed_ppm(self.trim)
        return Motif(name, "pattern", consensus(ppm), self.matches.get(name, ""), ppm)


def discovered(modisco_dir, window: int = 200, trim: float = 0.3,
               q_threshold: float = 0.05) -> Discovered:
    """The patterns and matches that the motifs step wrote to `modisco_dir`."""
    results = load_results(modisco_dir, window)
    table = results.tomtom.sort_values("p-value", kind="stable")
    matches = {}
    for row in table.to_dict("records"):
        if row["q-value"] < q_threshold:
            matches.setdefault(row["Query_ID"], row["Target_ID"])
    return Discovered({p.name: p for p in results.patterns},
                      {p.name: matches.get(p.name, "") for p in results.patterns}, trim)


@functools.cache
def _jaspar(matrix_id: str):
    """(name, PPM (w, 4)) of a JASPAR 2024 matrix ID, read offline by pyjaspar; None when the
    release does not hold it."""
    from pyjaspar import jaspardb

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        motif = jaspardb(release="JASPAR2024").fetch_motif_by_id(matrix_id)
    if motif is None:
        return None
    counts = np.array([motif.counts[b] for b in BASES], dtype=np.float64).T
    return motif.name, counts / counts.sum(axis=1, keepdims=True)


def jaspar_motif(matrix_id: str) -> Motif:
    """A JASPAR matrix as a Motif named after its TF (e.g. TAL1::TCF3); InputError when unknown."""
    found = _jaspar(matrix_id.split("_")[0])
    if found is None:
        raise InputError(f"motif {matrix_id!r}: not a JASPAR 2024 matrix ID")
    name, ppm = found
    return Motif(name, "jaspar", consensus(ppm), matrix_id.split("_")[0], ppm.copy())


def _tf_name(match: str) -> str:
    """The TF of a database ID such as MA0080.7_Spi1 (lower case), '' for none."""
    return match.split("_", 1)[1].lower() if "_" in match else ""


def resolve_motif(spec: str, patterns: Discovered | None = None,
                  truth: GroundTruth | None = None) -> Motif:
    """A Motif from what a user writes: a pattern name, a JASPAR ID, a sequence of A, C, G, T, N,
    a task (or 'decoy') of the ground truth (its JASPAR motif), or the TF name of a pattern's
    JASPAR match (that pattern). Anything else raises InputError listing the choices."""
    spec = spec.strip()
    if patterns is not None and spec in patterns.patterns:
        return patterns.motif(spec)
    if _JASPAR_ID.match(spec.split("_")[0]):
        return jaspar_motif(spec)
    if _SEQUENCE.match(spec):
        return Motif(spec.upper(), "sequence", spec.upper())
    if truth is not None:
        if spec == "decoy" and truth.decoy:
            return jaspar_motif(truth.decoy)
        ids = truth.planted.get(spec, [])
        if ids:
            return jaspar_motif(ids[0])
    if patterns is not None:
        named = [n for n, m in patterns.matches.items() if _tf_name(m) == spec.lower()]
        if named:
            return patterns.motif(named[0])
    choices = (list(patterns.patterns) if patterns else []) + \
        (list(truth.planted) if truth is not None else [])
    raise InputError(f"motif {spec!r}: not a pattern, JASPAR ID (MA0139.2), sequence (ACGTN) "
                     + (f"or one of {', '.join(choices)}" if choices else "or task name"))


def default_motifs(patterns: Discovered | None, truth: GroundTruth | None) -> list[Motif]:
    """The positive patterns of the stacked run, then the ground truth's planted motifs (one per
    JASPAR ID) and its decoy."""
    motifs = [patterns.motif(n) for n in (patterns.patterns if patterns else [])
              if n.startswith("pos_patterns.")]
    if truth is not None:
        ids = [m for t in truth.planted for m in truth.planted[t]]
        ids += [truth.decoy] if truth.decoy else []
        motifs += [jaspar_motif(m) for m in dict.fromkeys(ids)]
    return motifs


def composite(a: Motif, b: Motif, spacing: int, orientation: str = "++") -> Motif:
    """A and B as one element: A, `spacing` background bases (N), then B, each on the strand
    that `orientation` (A's then B's: "+" or "-") gives."""
    first = a if orientation[0] == "+" else a.reverse_complement()
    second = b if orientation[1] == "+" else b.reverse_complement()
    label = f"{a.name}+{b.name} ({orientation}, {spacing} bp)"
    return Motif(label, "composite", first.sequence + "N" * spacing + second.sequence,
                 f"{a.match}+{b.match}")


def backgrounds(dataset: SequenceDataset, kind: str = "shuffle", n: int = 128, seed: int = 0,
                both_strands: bool = True) -> np.ndarray:
    """Background sequences (n or 2n, L, 4): `n` test sequences drawn at random (all sequences
    when there is no test split), dinucleotide-shuffled by tangermeme ("shuffle"), or `n` test
    sequences negative for every task ("negatives"); with `both_strands`, followed by the reverse
    complements of them all (the set is then closed under reverse complement)."""
    from tangermeme.ersatz import dinucleotide_shuffle

    from .adapter import to_ncl, to_nlc

    if kind not in BACKGROUNDS:
        raise InputError(f"--marginalize-background: unknown background {kind!r}; choose "
                         f"{' or '.join(BACKGROUNDS)}")
    pool = dataset.subset("test") if (dataset.split == "test").any() else dataset
    rows = np.arange(len(pool))
    if kind == "negatives":
        rows = np.flatnonzero((pool.labels <= 0).all(axis=1))
        if not len(rows):
            raise InputError("--marginalize-background negatives: no test sequence is negative "
                             "for every task; use shuffle")
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(rows, size=min(n, len(rows)), replace=False))
    x = pool.one_hot()[rows]  # (n, L, 4)
    if kind == "shuffle":
        shuffled = dinucleotide_shuffle(to_ncl(x), n=1, random_state=seed, allow_N=True)
        x = to_nlc(shuffled[:, 0])
    return np.concatenate([x, flip_lc(x)]) if both_strands else x


def safe_name(name: str) -> str:
    """A name for file names: runs of anything but letters, digits, '.', '-' become '_'."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", name).strip("_")
