"""Write docs/results.md from the JSON results of the bench scripts and experiments
(bench/results/*.json), so the numbers in the docs are the numbers the scripts measured.

    python bench/render_results.py [--check]

--check exits 1 when docs/results.md differs from what the JSON files give (stale docs).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from results import RESULTS, markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "results.md"
SECTIONS = [  # (heading, result names in order); results not listed go to "Other results"
    ("Speed and memory (bench/)", ["scan", "triton_compile", "long_context", "long_attribution",
                                   "train", "onehot", "pipeline"]),
    ("The default recipe on data it was not tuned on (experiments/)", ["generalization"]),
    ("Attribution methods and LRP composites (experiments/)", ["attribution"]),
    ("Motif syntax on the embedded dataset (experiments/)", ["syntax"]),
    ("Other results", []),
]

HEADER = """# Results

Every table below was written by the script its header names (`bench/` for speed and memory,
`experiments/` for studies), on the machine it names; `python bench/render_results.py`
regenerates this page from their JSON files in `bench/results/`. Ratios compare against the peer
named under each table, measured in the same run; absolute times are context only.
"""


def render() -> str:
    results = {p.stem: json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))}
    listed = {n for _, names in SECTIONS for n in names}
    parts = [HEADER]
    for heading, names in SECTIONS:
        names = names or sorted(set(results) - listed)
        found = [results[n] for n in names if n in results]
        if found:
            parts.append(f"## {heading}\n")
            parts += [markdown(r) for r in found]
    return "\n".join(parts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        return 0 if DOC.is_file() and DOC.read_text() == text else 1
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
