"""Ground truth: which motif each task's positives carry, and where (the planted sites), when known.

Two file formats give it (`read_ground_truth`):
- a site table, TSV or CSV with the columns of `SITE_COLUMNS` (the embedded dataset's
  ground_truth.tsv): one row per planted site, start 0-based and end exclusive on the forward
  strand; rows of task "decoy" are a motif planted without a label;
- a motif table, TSV or CSV with the columns `task` and `motif_id` (JASPAR matrix IDs; several
  rows, or IDs separated by commas, for a task with several motifs; task "decoy" for a motif
  that must not be found). Positions are then unknown.
A task named "A+B" (a cooperative task) has its own rows when the file gives them (the embedded
dataset lists the two sites of each composite element under "A+B"), else the motifs and sites
of A and of B.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InputError
from .dataset import read_text_table

__all__ = ["SITE_COLUMNS", "DECOY_TASK", "GroundTruth", "read_ground_truth", "read_sites"]

SITE_COLUMNS = ["id", "task", "motif_id", "motif_name", "start", "end", "strand"]
DECOY_TASK = "decoy"


@dataclass
class GroundTruth:
    """planted: {task: [JASPAR IDs]}; decoy: the ID that must not be found, or None; sites: the
    site table (SITE_COLUMNS) or None when positions are unknown; source: the file."""

    planted: dict[str, list[str]]
    decoy: str | None = None
    sites: pd.DataFrame | None = None
    source: str = ""

    def _parts(self, task: str) -> list[str]:
        """The task itself when the ground truth names it, else the parts of "A+B"."""
        return [task] if task in self.planted else task.split("+")

    def motifs_of(self, task: str) -> list[str]:
        """The motif IDs of a task (for an unnamed task "A+B", those of A and B); [] for an
        unknown task."""
        ids = []
        for part in self._parts(task):
            ids += [m for m in self.planted.get(part, []) if m not in ids]
        return ids

    def for_tasks(self, tasks) -> dict[str, list[str]]:
        """{task: its motif IDs} for the tasks that have some (the motif recovery's input)."""
        return {t: self.motifs_of(t) for t in tasks if self.motifs_of(t)}

    def sites_of(self, ids, task) -> list[list[tuple[int, int, str]]]:
        """Planted sites [(start, end, motif name)] of `task` in each sequence of `ids` (for an
        unnamed task "A+B", those of A and of B); empty lists when positions are unknown."""
        if self.sites is None:
            return [[] for _ in ids]
        rows = self.sites[self.sites["task"].isin(self._parts(task))]
        by_id = {k: list(zip(g["start"], g["end"], g["motif_name"])) for k, g in rows.groupby("id")}
        return [sorted((int(s), int(e), str(n)) for s, e, n in by_id.get(i, [])) for i in ids]


def read_sites(path) -> pd.DataFrame:
    """A site table (SITE_COLUMNS, start and end as int64); InputError naming the file and line
    for other columns, non-integer or empty positions."""
    frame = read_text_table(path)
    if list(frame.columns) != SITE_COLUMNS:
        raise InputError(f"{path}: line 1: expected columns {', '.join(SITE_COLUMNS)}, found "
                         f"{', '.join(map(str, frame.columns))}")
    for column in ("start", "end"):
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy() | (values % 1 != 0).to_numpy())
        if len(bad):
            raise InputError(f"{path}: line {bad[0] + 2}: {column} is not an integer: "
                             f"{frame[column].iloc[bad[0]]!r}")
        frame[column] = values.astype(np.int64)
    bad = np.flatnonzero((frame["end"] <= frame["start"]).to_numpy() | (frame["start"] < 0).to_numpy())
    if len(bad):
        raise InputError(f"{path}: line {bad[0] + 2}: a site needs 0 <= start < end")
    return frame


def read_ground_truth(path) -> GroundTruth:
    """Ground truth from a site table or a motif table (module docstring)."""
    frame = read_text_table(path)
    columns = list(frame.columns)
    if columns == SITE_COLUMNS:
        sites = read_sites(path)
        planted = {}
        for task, motif in zip(sites["task"], sites["motif_id"]):
            planted.setdefault(task, [])
            if motif not in planted[task]:
                planted[task].append(motif)
    elif {"task", "motif_id"} <= set(columns):
        sites, planted = None, {}
        for line, (task, ids) in enumerate(zip(frame["task"], frame["motif_id"]), 2):
            ids = [m.strip() for m in ids.split(",") if m.strip()]
            if not task.strip() or not ids:
                raise InputError(f"{path}: line {line}: needs a task and a JASPAR motif ID")
            planted.setdefault(task.strip(), []).extend(ids)
    else:
        raise InputError(f"{path}: line 1: expected the columns {', '.join(SITE_COLUMNS)} (a "
                         f"site table) or task, motif_id (a motif table); found {', '.join(columns)}")
    decoys = planted.pop(DECOY_TASK, [])
    if len(decoys) > 1:
        raise InputError(f"{path}: more than one decoy motif ({', '.join(decoys)})")
    return GroundTruth(planted, decoys[0] if decoys else None, sites, str(path))
