"""Write docs/results.md, and the headline block of readme.md, from the JSON results of the bench
scripts and experiments (bench/results/*.json), so the numbers in the docs are the numbers the
scripts measured.

    python bench/render_results.py [--check]

--check exits 1 when either file differs from what the JSON files give (stale docs).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from results import RESULTS, markdown

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "results.md"
README = ROOT / "readme.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
SECTIONS = [  # (heading, result names in order); results not listed go to "Other results"
    ("Speed and memory (bench/)", ["scan", "triton_compile", "long_context", "long_attribution",
                                   "train", "onehot", "pipeline"]),
    ("The default recipe on data it was not tuned on (experiments/)", ["generalization",
                                                                     "generalization-holdout",
                                                                     "generalization-retry",
                                                                     "stalls",
                                                                     "generalization-lse",
                                                                     "generalization-epochs5",
                                                                     "default-training-time"]),
    ("Attribution methods and LRP composites (experiments/)", ["attribution", "attribution-tasks",
                                                              "attribution-epochs5",
                                                              "attribution-epochs5-tasks"]),
    ("Motif syntax on the embedded dataset (experiments/)", ["syntax", "syntax-epochs20",
                                                            "syntax_cnn", "syntax-cnn-default",
                                                            "instance-rounds"]),
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


def readme_with_headlines() -> str:
    """readme.md with the block between its result markers replaced by each result's headline
    (in the order of SECTIONS), each naming its table in docs/results.md."""
    results = {p.stem: json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))}
    order = [n for _, names in SECTIONS for n in names] + sorted(results)
    lines = [f"- {results[n]['headline']} ([table](docs/results.md))"
             for n in dict.fromkeys(order) if n in results and results[n].get("headline")]
    text = README.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return head + START + "\n" + "\n".join(lines) + "\n" + END + tail


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args(argv)
    outputs = {DOC: render(), README: readme_with_headlines()}
    if args.check:
        return 0 if all(p.is_file() and p.read_text() == t for p, t in outputs.items()) else 1
    for path, text in outputs.items():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
