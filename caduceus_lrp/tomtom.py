"""Tomtom (memelite) of motifs against a MEME database in MEME's columns, and planted-motif recovery.

Shapes: w motif width; matrices are (w, 4) in A, C, G, T order here and (4, w) in memelite. A
query is named as modisco's report names a pattern: `pos_patterns.pattern_0`.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InputError
from .io_utils import atomic_path
from .meme import BASES, read_motifs

__all__ = ["TOMTOM_COLUMNS", "tomtom_table", "read_tomtom", "top_matches", "motif_recovery",
           "recovery_table", "combine_recoveries", "recovery_report"]

TOMTOM_COLUMNS = ["Query_ID", "Target_ID", "Optimal_offset", "p-value", "E-value", "q-value",
                  "Overlap", "Query_consensus", "Target_consensus", "Orientation"]


def _consensus(ppm):
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
                             _consensus(q_ppm), _consensus(t_ppm), "-" if minus else "+"])
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


# ---------------------------------------------------------------------------- recovery

def _matrix(motif_id):
    """JASPAR base ID of a motif ID or name: MA0139.2_CTCF -> MA0139 (any version)."""
    return motif_id.split("_")[0].split(".")[0]


def _natural(name):
    """Sort key that puts pattern_2 before pattern_10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def top_matches(table):
    """{query: its lowest-p row of a Tomtom table, as a dict of MEME's columns}."""
    rows = table.sort_values("p-value", kind="stable").to_dict("records")
    best = {}
    for row in rows:
        best.setdefault(row["Query_ID"], row)
    return best


def motif_recovery(tomtom, planted, decoy_id=None, q=0.05, max_rank=1, families=None):
    """Which planted motifs some pattern recovered, from a Tomtom table (path or DataFrame).

    `planted` maps each task to the JASPAR ID (or list of IDs) planted for it. A pattern
    recovers a motif when the motif is among its `max_rank` best matches (by p-value; 1 = its
    top match) with q-value < q; IDs are compared without version (MA0139.2 = MA0139.1).
    The decoy is judged the same way. Each motif also records `rank`, the best rank at which
    it is a significant match of any pattern (None: none), so that a near miss (a related
    factor ranked first) shows. `unplanted_patterns`: the patterns that recover no planted
    motif (those that recover the decoy included), with their top match.

    families ({JASPAR ID: TF families}, `meme.jaspar_families`) adds, beside the verdict, which
    motifs a related factor stands for: `family_matches` are the top significant matches
    (within `max_rank`) that share a family with the motif (the motif itself included), e.g.
    GATA2 for a planted GATA1; `family_recovered` says there is one.
    """
    table = tomtom if isinstance(tomtom, pd.DataFrame) else read_tomtom(tomtom)
    ranked = table.sort_values(["Query_ID", "p-value"], kind="stable")
    ranked = ranked.assign(rank=ranked.groupby("Query_ID").cumcount() + 1,
                           matrix=ranked["Target_ID"].map(_matrix))
    significant = ranked[ranked["q-value"] < q]
    top = significant[significant["rank"] <= max_rank]
    family_of = {_matrix(k): set(v) for k, v in (families or {}).items()}

    def judge(motif_id):
        rows = significant[significant["matrix"] == _matrix(motif_id)]
        hits = rows[rows["rank"] <= max_rank]
        out = {"motif_id": motif_id, "recovered": not hits.empty,
               "patterns": sorted(set(hits["Query_ID"]), key=_natural),
               "q_value": float(hits["q-value"].min()) if not hits.empty else None,
               "rank": int(rows["rank"].min()) if not rows.empty else None}
        if families is not None:
            own = family_of.get(_matrix(motif_id), set())
            related = top["matrix"].map(lambda m: bool(own & family_of.get(m, set())))
            kin = top[related.astype(bool)]
            out |= {"family": sorted(own), "family_matches": sorted(set(kin["Target_ID"])),
                    "family_recovered": not kin.empty}
        return out

    tasks_of = {}
    for task, ids in planted.items():
        for motif_id in [ids] if isinstance(ids, str) else ids:
            tasks_of.setdefault(motif_id, []).append(task)
    motifs = [judge(motif_id) | {"tasks": tasks} for motif_id, tasks in tasks_of.items()]
    decoy = judge(decoy_id) if decoy_id is not None else None
    recovering = {pattern for m in motifs for pattern in m["patterns"]}
    unplanted = [{"pattern": name, "top_match": r["Target_ID"], "q_value": float(r["q-value"])}
                 for name, r in sorted(top_matches(table).items(), key=lambda kv: _natural(kv[0]))
                 if name not in recovering]
    return {"q_threshold": q, "max_rank": max_rank, "motifs": motifs, "decoy": decoy,
            "unplanted_patterns": unplanted,
            "all_recovered": all(m["recovered"] for m in motifs),
            "decoy_found": bool(decoy and decoy["recovered"])}


def recovery_table(recovery):
    """A motif recovery (`motif_recovery`) as a plain-text table; `rank` is the best rank of the
    motif among any pattern's significant matches; `family` says whether a factor of its family
    is some pattern's top significant match ("-": families not looked up)."""
    def fmt(q):
        return "-" if q is None else f"{q:.2g}"

    def row(m, tasks, found):
        family = "-" if "family_recovered" not in m else "yes" if m["family_recovered"] else "no"
        return (f"{m['motif_id']:<12} {tasks:<22} {found:<9} {fmt(m['q_value']):<8} "
                f"{m['rank'] or '-':<4} {family:<6} {' '.join(m['patterns']) or '-'}")

    lines = [f"{'motif':<12} {'tasks':<22} {'recovered':<9} {'q-value':<8} rank family "
             "patterns"]
    for m in recovery["motifs"]:
        lines.append(row(m, ",".join(m["tasks"]), "yes" if m["recovered"] else "NO"))
    if recovery["decoy"] is not None:
        d = recovery["decoy"]
        lines.append(row(d, "(decoy)", "YES" if d["recovered"] else "no"))
    for u in recovery["unplanted_patterns"]:
        lines.append(f"  unplanted: {u['pattern']} top match {u['top_match']} "
                     f"q={fmt(u['q_value'])}")
    return "\n".join(lines)


def combine_recoveries(stacked, tasks):
    """The verdict over all runs: a planted motif is recovered when it is recovered (a top
    significant match) by some pattern of the stacked run or of any task's own run; a task with
    several planted motifs (a cooperative task) must recover each of them in its own run; the
    decoy is found when any run finds it.

    stacked: `motif_recovery` of the stacked run; tasks: {task: `motif_recovery` of its run}.
    Returns {"motifs": [{motif_id, tasks, recovered, runs}], "multi_motif_tasks": {task: all
    of its motifs recovered in its own run}, "all_recovered", "decoy_found"}. When the
    recoveries have families, each motif also gets `family_runs` and `family_matches` (the
    runs where a factor of its family is a top significant match, and those factors), and
    "multi_motif_tasks_family" says whether a cooperative task found each motif's family.
    """
    runs = {"stacked": stacked, **{f"task {t}": rec for t, rec in tasks.items()}}
    with_families = bool(stacked["motifs"]) and all("family_recovered" in m
                                                    for m in stacked["motifs"])
    motifs = []
    for m in stacked["motifs"]:
        same = [(name, other) for name, rec in runs.items() for other in rec["motifs"]
                if other["motif_id"] == m["motif_id"]]
        found = [name for name, other in same if other["recovered"]]
        motifs.append({"motif_id": m["motif_id"], "tasks": m["tasks"],
                       "recovered": bool(found), "runs": found})
        if with_families:
            motifs[-1] |= {
                "family": m["family"],
                "family_runs": [name for name, other in same if other["family_recovered"]],
                "family_matches": sorted({t for _, other in same for t in other["family_matches"]})}
    several = {t: rec for t, rec in tasks.items() if len(rec["motifs"]) > 1}
    multi = {t: rec["all_recovered"] for t, rec in several.items()}
    out = {"motifs": motifs, "multi_motif_tasks": multi,
           "all_recovered": all(m["recovered"] for m in motifs) and all(multi.values()),
           "decoy_found": any(rec["decoy_found"] for rec in runs.values())}
    if with_families:
        out["multi_motif_tasks_family"] = {
            t: all(m["family_recovered"] for m in rec["motifs"]) for t, rec in several.items()}
    return out


def recovery_report(recovery):
    """recovery.json as text: the stacked run's table, each task's, and the verdict over all
    runs (`combine_recoveries`)."""
    if recovery is None:
        return "no ground truth was given (no recovery.json)"
    parts = ["all tasks stacked:", recovery_table(recovery["stacked"])]
    for task, rec in recovery["tasks"].items():
        parts += [f"task {task}:", recovery_table(rec)]
    parts.append("over all runs (a top significant match of some pattern of any run):")
    for m in recovery["motifs"]:
        where = ", ".join(m["runs"]) or "-"
        line = (f"  {m['motif_id']:<12} {','.join(m['tasks']):<22} "
                f"{'yes' if m['recovered'] else 'NO':<4} {where}")
        if "family_runs" in m:
            line += (f" | family {'/'.join(m['family']) or '?'}: "
                     f"{', '.join(m['family_matches']) or '-'}")
        parts.append(line)
    family = recovery.get("multi_motif_tasks_family", {})
    for task, ok in recovery["multi_motif_tasks"].items():
        by_family = f" (by family: {'yes' if family[task] else 'no'})" if task in family else ""
        parts.append(f"  task {task} (several planted motifs): all found in its own run: "
                     f"{'yes' if ok else 'NO'}{by_family}")
    parts.append(f"all planted motifs recovered: {'yes' if recovery['all_recovered'] else 'NO'}"
                 f"; decoy found: {'YES' if recovery['decoy_found'] else 'no'}")
    return "\n".join(parts)
