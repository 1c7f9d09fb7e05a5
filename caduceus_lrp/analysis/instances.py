"""Motif instances: where in each sequence the model uses a discovered pattern, and how well
those calls find the planted sites.

Glossary: N sequences, L length, w width, k nearest database motifs. Seqlets are called on each
sequence's contribution track (one-hot x hypothetical, summed over bases: (N, L)) by
tangermeme's `recursive_seqlets`. Each seqlet is annotated twice:
- `pattern`: its nearest discovered pattern by Tomtom (memelite) of the seqlet's bases (widened
  by `flank`) against JASPAR and the patterns' trimmed PPMs in one database, so that both are
  scored against the same background (p below `max_p`);
- `match`: the JASPAR motif of the best FIMO hit (memelite.fimo, p below `FIMO_P`) that overlaps
  the seqlet; FIMO's p-values weigh a hit by its motif's length and information, so a long
  motif is not taken for a short look-alike (Tomtom of a short seqlet is). Among hits within a
  factor `TIE` of the best p, the seqlet's pattern's own JASPAR match is preferred (similar
  motifs of one family tie often). Without a hit, the seqlet's Tomtom JASPAR match, else its
  pattern's own match (`match_source` says which).
A seqlet with no pattern and no match is dropped. `strand` is that of the match (else of the
pattern). `round` is 1 for a site the model uses in the sequence as it is, 2 or more for one it
uses once the sites called before are replaced by N (`call_instances`). (tangermeme's
`annotate_seqlets` is the Tomtom step alone, without strands.) The table is BED-like: id, start
(0-based), end (exclusive) first, its header line starting with '#' so that bedtools skips it.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import GroundTruth
from ..errors import InputError
from ..io_utils import atomic_path
from ..motifs import load_attributions
from ..motifs.meme import jaspar_families, jaspar_meme, read_motifs
from .sources import Discovered

__all__ = ["INSTANCE_COLUMNS", "RECOVERY_COLUMNS", "call_instances", "attribution_inputs",
           "write_instances", "read_instances", "instance_recovery"]

INSTANCE_COLUMNS = ["id", "start", "end", "strand", "pattern", "match", "score", "task",
                    "p_value", "match_source", "seqlet_p", "round"]
RECOVERY_COLUMNS = ["task", "motif_id", "motif", "n_sites", "recall", "recall_single",
                    "n_instances", "precision"]
N_NEAREST = 25  # database motifs kept per seqlet by Tomtom, best first
FIMO_P = 1e-3  # FIMO hits considered for a seqlet's match
TIE = 10.0  # hits within this factor of the best p count as ties, won by the pattern's match


def call_instances(ohe, hyp, ids, task: str, patterns: Discovered | None = None, db=None,
                   threshold: float = 0.05, flank: int = 3, max_p: float = 0.05,
                   min_len: int = 4, max_len: int = 25, attribute=None,
                   rounds: int = 1) -> pd.DataFrame:
    """Instances (INSTANCE_COLUMNS) in sequences `ids` of one task's attributions: one-hot and
    hypothetical (N, L, 4). `db`: {JASPAR name: PPM (w, 4)} (default: JASPAR 2024 CORE
    vertebrates); `score` is the seqlet's summed contribution, `p_value` the p-value of its
    match, `seqlet_p` its p-value from recursive_seqlets.

    Rounds (`attribute`: one-hot (M, L, 4) -> hypothetical (M, L, 4) of this task, made as `hyp`
    was): round 1 calls seqlets on `hyp`. Each later round replaces every seqlet called so far by
    N in the sequences where the last round called any, attributes those again, and calls
    seqlets outside the replaced spans, judged against the same null as round 1 (round 1's
    contributions join the null and yield no seqlets). A max-pooling head reads the strongest
    site of a motif and gives a second one little relevance while the first is there; such a
    site is called in round 2, with the contribution it carries once the stronger one is gone.
    Stops early when a round finds nothing."""
    ohe, hyp = np.asarray(ohe, dtype=np.float32), np.asarray(hyp, dtype=np.float32)
    if ohe.shape != hyp.shape or ohe.ndim != 3 or ohe.shape[-1] != 4 or len(ids) != len(ohe):
        raise InputError(f"instances of {task}: one-hot {ohe.shape}, attributions {hyp.shape} "
                         f"and {len(ids)} ids do not agree")
    if rounds < 1 or (rounds > 1 and attribute is None):
        raise ValueError("rounds: at least 1, and more than 1 needs `attribute`")
    db = dict(db if db is not None else read_motifs(jaspar_meme()))
    if not len(ohe):
        return pd.DataFrame(columns=INSTANCE_COLUMNS)
    first = (ohe * hyp).sum(axis=2)                                               # (N, L)
    seqlets = _seqlets(first, None, threshold, min_len, max_len)
    tables = [_annotate(ohe, seqlets, ids, task, patterns, db, flank, max_p, 1)]
    masked = np.zeros(first.shape, dtype=bool)                                    # (N, L)
    for number in range(2, rounds + 1):
        for row, start, end in seqlets[["example_idx", "start", "end"]].to_numpy():
            masked[row, start:end] = True
        rows = np.unique(seqlets["example_idx"].to_numpy())  # sequences the last round changed
        if not len(rows):
            break
        x = ohe[rows].copy()
        x[masked[rows]] = 0                                                       # N
        track = (ohe[rows] * np.asarray(attribute(x), dtype=np.float32)).sum(axis=2)
        track[masked[rows]] = 0
        found = _seqlets(track, first, threshold, min_len, max_len)
        clear = [not masked[rows[r], s:e].any()
                 for r, s, e in found[["example_idx", "start", "end"]].to_numpy()]
        found = found[np.array(clear, dtype=bool)].copy()
        if not len(found):
            break
        found["example_idx"] = rows[found["example_idx"].to_numpy()]
        tables.append(_annotate(ohe, found, ids, task, patterns, db, flank, max_p, number))
        seqlets = found
    table = pd.concat([t for t in tables if len(t)] or [tables[0]], ignore_index=True)
    return table.sort_values(["id", "start", "task"], kind="stable").reset_index(drop=True)


def _seqlets(track, reference, threshold, min_len, max_len) -> pd.DataFrame:
    """tangermeme's recursive seqlets of contributions `track` (M, L); with `reference` (N, L),
    its spans join the null distribution but yield no seqlets."""
    from tangermeme.seqlet import recursive_seqlets

    n = 0 if reference is None else len(reference)
    joined = track if reference is None else np.concatenate([reference, track])
    found = recursive_seqlets(joined, threshold=threshold, min_seqlet_len=min_len,
                              max_seqlet_len=max_len)
    found = found[found["example_idx"] >= n].copy()
    found["example_idx"] -= n
    return found.reset_index(drop=True)


def _annotate(ohe, seqlets, ids, task, patterns, db, flank, max_p, number) -> pd.DataFrame:
    """Seqlets (recursive_seqlets' table, rows of `ohe`) as instances of round `number`."""
    if not len(seqlets):
        return pd.DataFrame(columns=INSTANCE_COLUMNS)
    rows = seqlets["example_idx"].to_numpy()
    starts, ends = seqlets["start"].to_numpy(), seqlets["end"].to_numpy()
    near = _tomtom_nearest(ohe, rows, starts, ends, db, patterns, flank, max_p)
    preferred = [patterns.matches.get(pattern[0], "") if pattern else "" for pattern, _ in near]
    fimo = _fimo_best(ohe, rows, starts, ends, db, preferred)
    out = []
    for q, (pattern, tomtom_match) in enumerate(near):
        found = fimo[q] or tomtom_match or (
            (patterns.matches.get(pattern[0], ""), pattern[1], pattern[2], "pattern")
            if pattern and patterns.matches.get(pattern[0]) else None)
        if pattern is None and found is None:
            continue
        match, p_value, strand, source = found or ("", pattern[1], pattern[2], "")
        out.append([ids[rows[q]], int(starts[q]), int(ends[q]), strand,
                    pattern[0] if pattern else "", match,
                    float(seqlets["attribution"].iloc[q]), task, float(p_value), source,
                    float(seqlets["p-value"].iloc[q]), number])
    return pd.DataFrame(out, columns=INSTANCE_COLUMNS)


def _tomtom_nearest(ohe, rows, starts, ends, db, patterns, flank, max_p):
    """Per seqlet: (its nearest pattern (name, p, strand) or None, its nearest JASPAR motif
    (name, p, strand, "tomtom") or None), by Tomtom of its bases widened by `flank`."""
    from memelite import tomtom

    names = list(db)
    pattern_names = list(patterns.patterns) if patterns is not None else []
    targets = [db[n].T for n in names] + [patterns.motif(n).ppm.T for n in pattern_names]
    length = ohe.shape[1]
    lo, hi = np.clip(starts - flank, 0, length), np.clip(ends + flank, 0, length)
    queries = [ohe[i, s:e].T.astype(np.float64) for i, s, e in zip(rows, lo, hi)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few patterns among the targets
        p, _, _, _, strands, idx = tomtom(queries, targets,
                                          n_nearest=min(N_NEAREST, len(targets)))
    idx = idx.astype(int)
    out = []
    for q in range(len(queries)):
        best = {"pattern": None, "jaspar": None}
        for j in range(idx.shape[1]):
            if p[q, j] >= max_p:
                break
            is_pattern = idx[q, j] >= len(names)
            kind = "pattern" if is_pattern else "jaspar"
            if best[kind] is None:
                name = pattern_names[idx[q, j] - len(names)] if is_pattern else names[idx[q, j]]
                best[kind] = (name, p[q, j], "-" if strands[q, j] == 1 else "+")
        jaspar = best["jaspar"] + ("tomtom",) if best["jaspar"] else None
        out.append((best["pattern"], jaspar))
    return out


def _fimo_best(ohe, rows, starts, ends, db, preferred):
    """Per seqlet: (JASPAR name, p, strand, "fimo") of the lowest-p FIMO hit (p < FIMO_P) of
    any database motif that overlaps it (the `preferred` name of the seqlet when its hit is
    within a factor TIE of the lowest p), or None."""
    from memelite import fimo

    seqs = np.unique(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hits = fimo({n: m.T for n, m in db.items()},
                    ohe[seqs].transpose(0, 2, 1).astype(np.float64), threshold=FIMO_P, dim=1)
    per_seq = {}
    for k, frame in zip(seqs, hits):
        per_seq[k] = (frame["start"].to_numpy(), frame["end"].to_numpy(),
                      frame["p-value"].to_numpy(), frame["motif_name"].to_numpy(),
                      frame["strand"].to_numpy())
    out = []
    for k, s, e, favourite in zip(rows, starts, ends, preferred):
        h_start, h_end, p, name, strand = per_seq[k]
        over = np.flatnonzero((h_start < e) & (s < h_end))
        if not len(over):
            out.append(None)
            continue
        j = over[np.argmin(p[over])]
        ties = over[(p[over] <= TIE * p[j]) & (name[over] == favourite)]
        j = ties[np.argmin(p[ties])] if len(ties) else j
        out.append((str(name[j]), float(p[j]), str(strand[j]), "fimo"))
    return out


def attribution_inputs(attributions_dir, dataset, split: str = "all") -> dict:
    """{task: (ids, one-hot, hypothetical)} from the attribute step's files: each task's
    positives of `split` of `dataset`, in the order they were written."""
    found = load_attributions(attributions_dir)
    pool = dataset.subset(split)
    onehot = pool.one_hot()
    out = {}
    for task, (ohe, hyp) in found.items():
        rows = pool.positives(task)
        if len(rows) != len(ohe) or not np.array_equal(onehot[rows], ohe):
            raise InputError(f"{Path(attributions_dir) / task}: its {len(ohe)} sequences are "
                             f"not the {len(rows)} {split} positives of {task} of this dataset "
                             "(rerun the attribute step, or give the split it used)")
        out[task] = ([pool.ids[r] for r in rows], ohe, hyp)
    return out


def write_instances(table: pd.DataFrame, path) -> Path:
    """Write instances as a BED-like TSV whose header line starts with '#' (bedtools skips it)."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write("#" + "\t".join(INSTANCE_COLUMNS) + "\n")
        table[INSTANCE_COLUMNS].to_csv(f, sep="\t", index=False, header=False,
                                       float_format="%.6g")
    return Path(path)


def read_instances(path) -> pd.DataFrame:
    """An instances file written by `write_instances` (its '#id' column read as id)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such instances file")
    table = pd.read_csv(path, sep="\t", dtype={"#id": str, "pattern": str, "match": str},
                        keep_default_na=False)
    return table.rename(columns={"#id": "id"})


def _overlaps(a_start, a_end, b_start, b_end):
    """(a, b): whether interval i of a overlaps interval j of b (half-open)."""
    return (a_start[:, None] < b_end[None, :]) & (b_start[None, :] < a_end[:, None])


def instance_recovery(instances: pd.DataFrame, truth: GroundTruth, analysed: dict,
                      families=None) -> pd.DataFrame:
    """Recall and precision of the instances against the planted sites, per task and motif
    (RECOVERY_COLUMNS). `analysed`: {task: ids whose attributions were searched}. A site is
    found when an instance of its task overlaps it and matches its motif or a factor of the
    motif's JASPAR family; an instance of the task that matches the motif (or family) is right
    when it overlaps a site of that motif. `recall_single`: the recall over sites alone in their
    sequence (no other site of the motif there; a max-pooling head may use one site of several).
    The decoy's rows (task 'decoy:<task>') count the decoy sites in the task's sequences that
    instances overlap, and the instances matched to the decoy's family."""
    if truth is None or truth.sites is None:
        raise InputError("instance recovery: needs ground truth with site positions")
    sites = truth.sites
    ids_all = {m for m in instances["match"] if m} | set(sites["motif_id"])
    families = dict(families or {})
    missing = [m for m in ids_all if m not in families]
    families.update(jaspar_families(missing) if missing else {})
    rows = []
    for task, ids in analysed.items():
        ids = set(ids)
        mine = instances[(instances["task"] == task) & instances["id"].isin(ids)]
        planted = sites[sites["id"].isin(ids) & (sites["task"] == task)]
        for (motif_id, name), group in planted.groupby(["motif_id", "motif_name"]):
            same = [_same(m, motif_id, families) for m in mine["match"]]
            hits = mine[np.array(same, dtype=bool)]
            found, right = _found(group, hits)
            single = ~group["id"].duplicated(keep=False).to_numpy()
            rows.append([task, motif_id, name, len(group), found.mean(),
                         found[single].mean() if single.any() else np.nan, len(hits),
                         right.mean() if len(hits) else np.nan])
        decoys = sites[sites["id"].isin(ids) & (sites["task"] == "decoy")]
        if truth.decoy and len(decoys):
            found, _ = _found(decoys, mine)  # decoy sites under any instance of the task
            n_hits = sum(_same(m, truth.decoy, families) for m in mine["match"])
            rows.append([f"decoy:{task}", truth.decoy, str(decoys["motif_name"].iloc[0]),
                         len(decoys), found.mean(), np.nan, n_hits, np.nan])
    return pd.DataFrame(rows, columns=RECOVERY_COLUMNS)


def _found(sites: pd.DataFrame, hits: pd.DataFrame):
    """(sites (s,) overlapped by a hit of their sequence, hits (h,) overlapping a site)."""
    site_found = np.zeros(len(sites), dtype=bool)
    hit_right = np.zeros(len(hits), dtype=bool)
    site_ids, hit_ids = sites["id"].to_numpy(), hits["id"].to_numpy()
    for seq in set(site_ids) & set(hit_ids):
        a, b = site_ids == seq, hit_ids == seq
        o = _overlaps(sites["start"].to_numpy()[a], sites["end"].to_numpy()[a],
                      hits["start"].to_numpy()[b], hits["end"].to_numpy()[b])
        site_found[a] = o.any(axis=1)
        hit_right[b] = o.any(axis=0)
    return site_found, hit_right


def _same(match: str, motif_id: str, families: dict) -> bool:
    """Whether a database match (MA0139.2_CTCF) is `motif_id` or shares a JASPAR family."""
    if not match:
        return False
    if match.split("_")[0] == motif_id:
        return True
    mine, theirs = set(families.get(match, ())), set(families.get(motif_id, ()))
    return bool(mine & theirs)
