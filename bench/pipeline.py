"""Wall time and peak memory of each step of the default pipeline (`python -m caduceus_lrp`).

    python bench/pipeline.py [--out /tmp/pipeline_bench] [pipeline flags...]

Each step runs as its own process (`python -m caduceus_lrp --steps STEP --force ...`), so its peak
resident memory is its own (from wait4). The peer is the whole run: the table gives each step's
share of the total wall time, against the 10-minute target of the default run.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from results import record

from caduceus_lrp.pipeline import STEPS


def run_step(step: str, out: str, extra: list[str]) -> tuple[float, float, int]:
    """(seconds, peak GB, exit status) of one pipeline step in a fresh process."""
    cmd = [sys.executable, "-m", "caduceus_lrp", "--out", out, "--steps", step, "--force", *extra]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    return seconds, usage.ru_maxrss / 1024 ** 2, os.waitstatus_to_exitcode(status)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="/tmp/pipeline_bench", help="output folder of the run")
    args, extra = parser.parse_known_args()
    rows = []
    for step in STEPS:
        seconds, peak, code = run_step(step, args.out, extra)
        rows.append((step, seconds, peak, code))
        if code != 0:
            print(f"step {step} failed with status {code}; stopping", file=sys.stderr)
            break
    total = sum(r[1] for r in rows)
    table = [[step, round(seconds, 1), round(seconds / total, 2), round(peak, 2)]
             for step, seconds, peak, _ in rows]
    table.append(["total", round(total, 1), 1.0, round(max(r[2] for r in rows), 2)])
    record("pipeline", "Each step of the default pipeline",
           ["step", "wall (s)", "share of total", "peak memory (GB)"], table,
           peer="the whole run (shares of its wall time); the target is 10 minutes",
           notes=f"Flags: {' '.join(extra) or '(defaults)'}; total / 10-minute target "
                 f"{total / 600:.2f}.",
           headline=f"The default pipeline ({', '.join(r[0] for r in rows)}) on the embedded "
                    f"dataset takes {total:.0f} s on this CPU, {total / 600:.2f} of the 10-minute "
                    f"target")


if __name__ == "__main__":
    main()
