"""Variant effects: single-base substitutions in dataset sequences (a table) or in a genome (a
VCF), each task's logit change ref -> alt, and the attribution difference around the variant.

Glossary: n variants, L length, t tasks, f flank. Logit changes come from
`tangermeme.variant_effect.substitution_effect` through the adapter (one sequence per
variant). The attribution difference is computed for each variant's most affected task (the
largest |logit change|) with `explanation_model.explain` on the reference and alternative
sequences: `attribution_delta` sums alt - ref contributions over the `flank` bases on each side
of the variant; `Variants.tracks` keeps both contribution windows (n, 2f + 1, 4) for figures.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data import SequenceDataset
from ..data.dataset import open_text, read_text_table
from ..errors import InputError
from ..explanation_model import explain
from ..sequence import BASES, one_hot
from .adapter import TangermemeModel, device_of, to_ncl
from .marginalize import task_names

__all__ = ["VARIANT_COLUMNS", "Variants", "read_variant_table", "read_vcf", "read_variants",
           "variant_effects"]

VARIANT_COLUMNS = ["id", "position", "ref", "alt", "task", "ref_logit", "alt_logit", "delta",
                   "attribution_delta", "chrom", "pos"]


@dataclass
class Variants:
    """Variants on their sequences: ids (n), position (n,) 0-based in the sequence, ref and alt
    bases (n), the reference sequences (n, L, 4); chrom and pos (1-based) for VCF input."""

    ids: list[str]
    position: np.ndarray
    ref: list[str]
    alt: list[str]
    x_ref: np.ndarray
    chrom: list[str] | None = None
    pos: list[int] | None = None
    tracks: dict = field(default_factory=dict)  # filled by variant_effects

    def __len__(self):
        return len(self.ids)

    def x_alt(self) -> np.ndarray:
        x = self.x_ref.copy()
        rows = np.arange(len(self))
        x[rows, self.position] = 0
        x[rows, self.position, [BASES.index(b) for b in self.alt]] = 1
        return x


def _base(value, path, line, what):
    base = str(value).strip().upper()
    if base not in BASES:
        raise InputError(f"{path}: line {line}: {what} must be one base of A, C, G, T (a single-"
                         f"base substitution), got {value!r}")
    return base


def read_variant_table(path, dataset: SequenceDataset) -> Variants:
    """A table (TSV/CSV) with columns id (or sequence_id), position (0-based), ref, alt of
    dataset sequences; InputError naming the line for an unknown id, a position outside the
    sequence or a ref that is not the sequence's base."""
    frame = read_text_table(path)
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    if "id" not in frame and "sequence_id" in frame:
        frame = frame.rename(columns={"sequence_id": "id"})
    missing = [c for c in ("id", "position", "ref", "alt") if c not in frame]
    if missing:
        raise InputError(f"{path}: line 1: missing column(s) {', '.join(missing)} (expected id, "
                         "position, ref, alt)")
    if not len(frame):
        raise InputError(f"{path}: no variants below the header")
    index = {i: k for k, i in enumerate(dataset.ids)}
    onehot = dataset.one_hot()
    rows, positions, refs, alts = [], [], [], []
    for line, r in enumerate(frame.to_dict("records"), 2):
        if r["id"] not in index:
            raise InputError(f"{path}: line {line}: sequence {r['id']!r} is not in the dataset")
        try:
            p = int(r["position"])
        except ValueError:
            raise InputError(f"{path}: line {line}: position is not an integer: "
                             f"{r['position']!r}") from None
        if not 0 <= p < dataset.seq_len:
            raise InputError(f"{path}: line {line}: position {p} is outside the "
                             f"{dataset.seq_len}-bp sequence (positions are 0-based)")
        ref, alt = _base(r["ref"], path, line, "ref"), _base(r["alt"], path, line, "alt")
        row = onehot[index[r["id"]], p]
        seen = BASES[int(row.argmax())] if row.any() else "N"
        if seen != ref:
            raise InputError(f"{path}: line {line}: ref {ref} is not the base of {r['id']} at "
                             f"position {p} ({seen})")
        if alt == ref:
            raise InputError(f"{path}: line {line}: alt equals ref ({ref})")
        rows.append(index[r["id"]])
        positions.append(p)
        refs.append(ref)
        alts.append(alt)
    return Variants([dataset.ids[i] for i in rows], np.array(positions), refs, alts,
                    onehot[rows].copy())


def read_vcf(path, genome, seq_len: int) -> Variants:
    """Single-base substitutions of a VCF (CHROM, 1-based POS, ID, REF, ALT; several ALTs give
    one variant each), each in the `seq_len`-bp window of the genome FASTA (pyfaidx) centred on
    it (shifted to stay inside the chromosome)."""
    import pyfaidx

    if genome is None:
        raise InputError("--genome: a VCF needs the genome FASTA its positions refer to")
    try:
        fasta = pyfaidx.Fasta(str(genome), as_raw=True, sequence_always_upper=True)
    except (OSError, pyfaidx.FastaIndexingError, ValueError) as err:
        raise InputError(f"{genome}: cannot read the genome FASTA ({err})") from None
    ids, positions, refs, alts, chroms, poss, windows = [], [], [], [], [], [], []
    try:
        handle = open_text(path)
    except OSError as err:
        raise InputError(f"{path}: cannot read the VCF ({err.strerror})") from None
    with handle:
        for line, text in enumerate(handle, 1):
            if text.startswith("#") or not text.strip():
                continue
            fields = text.rstrip("\n").split("\t")
            if len(fields) < 5:
                raise InputError(f"{path}: line {line}: a VCF record needs CHROM, POS, ID, REF "
                                 "and ALT (tab-separated)")
            chrom, pos, name, ref = fields[0], fields[1], fields[2], fields[3]
            if chrom not in fasta:
                raise InputError(f"{path}: line {line}: chromosome {chrom!r} is not in {genome}")
            try:
                pos = int(pos)
            except ValueError:
                raise InputError(f"{path}: line {line}: POS is not an integer: {pos!r}") from None
            size = len(fasta[chrom])
            if not 1 <= pos <= size:
                raise InputError(f"{path}: line {line}: POS {pos} is outside {chrom} "
                                 f"(1..{size})")
            if size < seq_len:
                raise InputError(f"{path}: line {line}: {chrom} is shorter than {seq_len} bp")
            ref = _base(ref, path, line, "REF")
            seen = fasta[chrom][pos - 1:pos]
            if seen != ref:
                raise InputError(f"{path}: line {line}: REF {ref} is not the genome's base at "
                                 f"{chrom}:{pos} ({seen})")
            start = min(max(0, pos - 1 - seq_len // 2), size - seq_len)
            for alt in fields[4].split(","):
                alt = _base(alt, path, line, "ALT")
                ids.append(name if name not in (".", "") else f"{chrom}:{pos}{ref}>{alt}")
                positions.append(pos - 1 - start)
                refs.append(ref)
                alts.append(alt)
                chroms.append(chrom)
                poss.append(pos)
                windows.append(fasta[chrom][start:start + seq_len])
    if not ids:
        raise InputError(f"{path}: no variant records")
    return Variants(ids, np.array(positions), refs, alts, one_hot(windows), chroms, poss)


def read_variants(path, dataset: SequenceDataset | None = None, genome=None,
                  seq_len: int | None = None) -> Variants:
    """A VCF (.vcf, .vcf.gz: against `genome`) or a variant table (against `dataset`)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    if path.name.lower().removesuffix(".gz").endswith(".vcf"):
        return read_vcf(path, genome, seq_len or dataset.seq_len)
    if dataset is None:
        raise InputError(f"{path}: a variant table needs the dataset its ids refer to")
    return read_variant_table(path, dataset)


def variant_effects(model, variants: Variants, method: str = "lrp", flank: int = 10,
                    batch_size: int = 128, device=None) -> pd.DataFrame:
    """One row per variant and task (VARIANT_COLUMNS): the logits of ref and alt and their
    difference; `attribution_delta` on each variant's most affected task (NaN elsewhere, and
    everywhere with method 'none'). Fills `variants.tracks`: {"task": (n,) task index,
    "ref", "alt": contribution windows (n, 2 flank + 1, 4), zero beyond the sequence}."""
    from tangermeme.variant_effect import substitution_effect

    n = len(variants)
    if not n:
        raise InputError("variants: none given")
    subs = torch.tensor(np.stack([np.arange(n), variants.position,
                                  [BASES.index(b) for b in variants.alt]], axis=1))
    wrapped = TangermemeModel(model)
    result = substitution_effect(wrapped, to_ncl(variants.x_ref), subs, batch_size=batch_size,
                                 device=device_of(device))
    before = result.y_before.double().numpy()  # (n, t)
    after = result.y_after.double().numpy()
    delta = after - before
    top = np.abs(delta).argmax(axis=1)  # (n,)
    attribution = np.full(n, np.nan)
    width = 2 * flank + 1
    tracks = {"task": top, "ref": np.zeros((n, width, 4), np.float32),
              "alt": np.zeros((n, width, 4), np.float32)}
    if method != "none":
        x_alt = variants.x_alt()
        for k in np.unique(top):
            rows = np.flatnonzero(top == k)
            for key, x in (("ref", variants.x_ref), ("alt", x_alt)):
                observed = explain(model, x[rows], target=int(k), method=method,
                                   batch_size=batch_size, device=device).observed
                tracks[key][rows] = _windows(observed, variants.position[rows], flank)
        attribution = (tracks["alt"] - tracks["ref"]).sum(axis=(1, 2))
    variants.tracks = tracks
    names = task_names(model) or [f"task{k}" for k in range(delta.shape[1])]
    rows = []
    for i in range(n):
        for k, task in enumerate(names):
            rows.append([variants.ids[i], int(variants.position[i]), variants.ref[i],
                         variants.alt[i], task, before[i, k], after[i, k], delta[i, k],
                         attribution[i] if k == top[i] else np.nan,
                         variants.chrom[i] if variants.chrom else "",
                         variants.pos[i] if variants.pos else ""])
    return pd.DataFrame(rows, columns=VARIANT_COLUMNS)


def _windows(observed, positions, flank):
    """(n, 2 flank + 1, 4) windows of observed (n, L, 4) centred on positions, zero outside."""
    padded = np.pad(observed, ((0, 0), (flank, flank), (0, 0)))
    take = positions[:, None] + np.arange(2 * flank + 1)  # indices into padded
    return padded[np.arange(len(observed))[:, None], take]

