"""Results of the bench scripts and experiments: printed as a Markdown table and kept as JSON in
bench/results/<name>.json, from which `python bench/render_results.py` writes docs/results.md.

Every result names its command, the machine and the peer its ratios are taken against, so that
the docs quote numbers that a script wrote, not numbers copied by hand.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

__all__ = ["RESULTS", "machine", "record", "best_time"]


def best_time(fn, repeats: int):
    """(best wall seconds of `repeats` calls of fn, the last call's result)."""
    seconds, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        seconds = min(seconds, time.perf_counter() - start)
    return seconds, out


def machine() -> dict:
    """The CPU model, cores, load average, Python and library versions of this run."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "load_average": round(os.getloadavg()[0], 1),
            "python": platform.python_version()}
    for name in ("torch", "numba", "triton", "transformers"):
        module = sys.modules.get(name)
        if module is not None:
            info[name] = getattr(module, "__version__", "?")
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


def record(name: str, title: str, columns: list[str], rows: list[list], peer: str = "",
           notes: str = "", headline: str = "", extra: dict | None = None) -> Path:
    """Print the result as a Markdown table and write bench/results/<name>.json (atomically).
    `headline`: one sentence for the readme's results section (computed from the rows)."""
    payload = {"name": name, "title": title, "headline": headline,
               "command": " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).as_posix(),
                                                            *sys.argv[1:]]),
               "date": datetime.date.today().isoformat(), "machine": machine(), "peer": peer,
               "columns": columns, "rows": rows, "notes": notes, "extra": extra or {}}
    print(markdown(payload))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    tmp.replace(path)
    return path


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return "–" if value is None else str(value)


def markdown(payload: dict) -> str:
    """A result as Markdown: its title, command, machine, peer, table and notes."""
    m = payload["machine"]
    where = f"{m.get('gpu') or m['cpu']}, {m['cores']} cores, load {m['load_average']}"
    lines = [f"### {payload['title']}", "",
             f"`{payload['command']}` ({payload['date']}; {where}; torch {m.get('torch', '?')})",
             ""]
    if payload["peer"]:
        lines += [f"Peer: {payload['peer']}", ""]
    lines += ["| " + " | ".join(payload["columns"]) + " |",
              "|" + "|".join("---" if i == 0 else "---:" for i in range(len(payload["columns"])))
              + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in payload["rows"]]
    if payload["notes"]:
        lines += ["", payload["notes"]]
    return "\n".join(lines) + "\n"
