"""Planted-motif recovery from Tomtom tables: which known motifs the patterns of each run found,
and the verdict over all runs (docs/motifs.md, "Recovery").

A pattern recovers a motif when the motif is among its `max_rank` best matches (by p-value; 1 =
its top match) with q-value < q; JASPAR versions are not told apart (MA0139.2 = MA0139.1).
"""
from __future__ import annotations

import re

import pandas as pd

from .tomtom import read_tomtom, top_matches

__all__ = ["matrix_id", "motif_recovery", "recovery_table", "combine_recoveries",
           "recovery_report"]


def matrix_id(motif_id):
    """JASPAR base ID of a motif ID or name: MA0139.2_CTCF -> MA0139 (any version)."""
    return motif_id.split("_")[0].split(".")[0]


def _natural(name):
    """Sort key that puts pattern_2 before pattern_10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


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
                           matrix=ranked["Target_ID"].map(matrix_id))
    significant = ranked[ranked["q-value"] < q]
    top = significant[significant["rank"] <= max_rank]
    family_of = {matrix_id(k): set(v) for k, v in (families or {}).items()}

    def judge(motif_id):
        rows = significant[significant["matrix"] == matrix_id(motif_id)]
        hits = rows[rows["rank"] <= max_rank]
        out = {"motif_id": motif_id, "recovered": not hits.empty,
               "patterns": sorted(set(hits["Query_ID"]), key=_natural),
               "q_value": float(hits["q-value"].min()) if not hits.empty else None,
               "rank": int(rows["rank"].min()) if not rows.empty else None}
        if families is not None:
            own = family_of.get(matrix_id(motif_id), set())
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
        agree = (f"  ({m['replicates_agreeing']}/{m['replicates']} replicates agree)"
                 if m.get("replicates") else "")
        return (f"{m['motif_id']:<12} {tasks:<22} {found:<9} {fmt(m['q_value']):<8} "
                f"{m['rank'] or '-':<4} {family:<6} {' '.join(m['patterns']) or '-'}{agree}")

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
