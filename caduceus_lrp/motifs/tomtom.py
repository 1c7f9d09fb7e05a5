"""Tomtom (memelite) of motifs against a MEME database in MEME's columns, and planted-motif recovery.

Shapes: w motif width; matrices are (w, 4) in A, C, G, T order here and (4, w) in memelite. A
query is named as modisco's report names a pattern: `pos_patterns.pattern_0`.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io_utils import atomic_path
from ..sequence import BASES
from .meme import read_motifs

__all__ = ["TOMTOM_COLUMNS", "consensus", "tomtom_table", "read_tomtom", "top_matches"]

TOMTOM_COLUMNS = ["Query_ID", "Target_ID", "Optimal_offset", "p-value", "E-value", "q-value",
                  "Overlap", "Query_consensus", "Target_consensus", "Orientation"]


def consensus(ppm):
    """The most frequent base of each position of a PPM (w, 4), as a string."""
    return "".join(BASES[i] for i in ppm.argmax(axis=1))


def _bh(p):
    """Benjamini-Hochberg q-values of p-values (..., m) along the last axis."""
    m = p.shape[-1]
    order = np.argsort(p, axis=-1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=-1) * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[..., ::-1], axis=-1)[..., ::-1]
    q = np.empty_like(p)
    np.put_along_axis(q, order, np.minimum(ranked, 1.0), axis=-1)
    return q


def tomtom_table(query_meme, db_meme, out_tsv=None, n_nearest=5):
    """Tomtom (memelite) of each query motif against every motif of `db_meme`; keeps the
    `n_nearest` best matches per query in MEME Tomtom's columns and returns the DataFrame.

    `query_meme` is one MEME file or a list of them. E-value = p x number of targets;
    q-value = Benjamini-Hochberg over all of a query's targets (so memelite is asked for
    the complete p-value matrix, not its n_nearest). Optimal_offset is the position in the
    target where the query starts (negative: the query overhangs on the left);
    Orientation '-' means the target was reverse-complemented, and Target_consensus is
    given in that aligned orientation. Rows are sorted by query, then p-value.
    """
    from memelite import tomtom

    paths = [query_meme] if isinstance(query_meme, (str, os.PathLike)) else list(query_meme)
    queries = {}
    for path in paths:
        queries.update(read_motifs(path))
    targets = read_motifs(db_meme)
    if not targets:
        raise InputError(f"{db_meme}: no motif in the database")
    rows = []
    if queries:
        t_names, t_ppms = list(targets), list(targets.values())
        p, _, offsets, overlaps, strands = tomtom(
            [q.T for q in queries.values()], [t.T for t in t_ppms])  # each (nQ, nT)
        q_values = _bh(p)
        best = np.argsort(p, axis=1, kind="stable")[:, :n_nearest]
        for i, (q_name, q_ppm) in enumerate(queries.items()):
            for j in best[i]:
                minus = strands[i, j] == 1
                t_ppm = t_ppms[j][::-1, ::-1] if minus else t_ppms[j]
                rows.append([q_name, t_names[j], int(offsets[i, j]), p[i, j],
                             p[i, j] * len(t_ppms), q_values[i, j], int(overlaps[i, j]),
                             consensus(q_ppm), consensus(t_ppm), "-" if minus else "+"])
    table = pd.DataFrame(rows, columns=TOMTOM_COLUMNS)
    if out_tsv is not None:
        with atomic_path(out_tsv) as tmp:
            table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    return table


def read_tomtom(tsv):
    """A Tomtom TSV (MEME's columns) as a DataFrame."""
    tsv = Path(tsv)
    if not tsv.is_file():
        raise InputError(f"{tsv}: no such Tomtom table")
    table = pd.read_csv(tsv, sep="\t", comment="#")
    missing = [c for c in TOMTOM_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"{tsv}: line 1: missing Tomtom columns {missing}")
    return table


def top_matches(table):
    """{query: its lowest-p row of a Tomtom table, as a dict of MEME's columns}."""
    rows = table.sort_values("p-value", kind="stable").to_dict("records")
    best = {}
    for row in rows:
        best.setdefault(row["Query_ID"], row)
    return best
