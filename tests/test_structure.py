"""The package's architecture, asserted: imports run one way (down the layers of
docs/architecture.md), no import cycles, no module imports another module's private names, no
module over 500 lines, and the project speaks of the software, not of how it was made."""
import ast
import re

import pytest
from helpers import ROOT

PACKAGE = ROOT / "caduceus_lrp"
MAX_LINES = 500

# Layers, bottom first; a module may import from its own layer or below. Entry points (commands,
# `__main__` modules, the scripts) sit on top; the package's `__init__` is the public facade.
LAYERS = [
    ("base", {"errors", "io_utils", "sequence", "cli", "resources", "plotting", "plots"}),
    ("data", {"data"}),
    ("model", {"config", "scan_ref", "scan", "scan_cpu", "scan_triton", "scan_triton_kernels",
               "layers", "model",
               "epi_head", "cnn", "checkpoint"}),
    ("training", {"training"}),
    ("analysis", {"lrp_layers", "lrp_composites", "lrp_diagnostics", "explanation_model",
                  "attribution_metrics", "attribution_plots", "attribute", "motifs", "analysis",
                  "report"}),
    ("pipeline", {"pipeline"}),
    ("commands", {"commands", "__main__", "train_caduceus_finetune", "test_gpu"}),
]


def modules():
    """{dotted name: path} of every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def layer_of(name):
    """Index of a module's layer; entry points (`__main__`) are on top."""
    parts = name.split(".")
    if parts[-1] == "__main__":
        return len(LAYERS) - 1
    for i, (_, members) in enumerate(LAYERS):
        if parts[1] in members:
            return i
    raise AssertionError(f"{name} is in no layer of this test; add it to LAYERS")


def imports(name, path, known):
    """[(imported module, names, line)] of the package's own modules imported by `name`,
    lazy imports inside functions included."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names
                      if a.name.startswith("caduceus_lrp")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("caduceus_lrp"):
                target = node.module
            else:
                continue
            names = [a.name for a in node.names]
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in known]
            if submodules:  # `from . import plots`: the submodule is what is imported
                found += [(m, [], node.lineno) for m in submodules]
            else:
                found.append((target, names, node.lineno))
    return found


@pytest.fixture(scope="module")
def graph():
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}, known


def test_imports_run_down_the_layers_and_never_to_the_facade(graph):
    edges, known = graph
    wrong = []
    for name, found in edges.items():
        if name == "caduceus_lrp":
            continue
        for target, _, line in found:
            if target == "caduceus_lrp":
                wrong.append(f"{name}:{line} imports the package facade")
            elif layer_of(target) > layer_of(name):
                wrong.append(f"{name}:{line} ({LAYERS[layer_of(name)][0]}) imports {target} "
                             f"({LAYERS[layer_of(target)][0]})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles(graph):
    edges, _ = graph
    adjacency = {n: {t for t, _, _ in found if t in edges} for n, found in edges.items()}
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(adjacency[node]):
            if state.get(nxt) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(nxt):]
                                                                   + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(adjacency):
        if node not in state:
            visit(node)


def test_no_module_imports_another_modules_private_names(graph):
    edges, _ = graph
    private = [f"{name}:{line} imports {n} from {target}"
               for name, found in edges.items() for target, names, line in found
               for n in names if n.startswith("_") and target != name]
    assert not private, "\n".join(private)


def test_no_module_over_500_lines(graph):
    _, known = graph
    long = {name: len(path.read_text().splitlines()) for name, path in known.items()}
    assert not {n: k for n, k in long.items() if k > MAX_LINES}


HISTORY = re.compile(r'(?<!scope=")\bsessions?\b|the issue\'s|issue #\d+|\bissue \d+\b',
                     re.IGNORECASE)  # (a pytest fixture's scope="session" is not history)


@pytest.mark.parametrize("where", ["readme.md", "docs", "caduceus_lrp", "examples", "bench",
                                   "TF_discovery", "tests"])
def test_the_project_speaks_of_the_software_not_of_how_it_was_made(where):
    root = ROOT / where
    files = [root] if root.is_file() else sorted(
        p for p in root.rglob("*") if p.suffix in (".py", ".md", ".ipynb", ".sh", ".txt")
        and "fixtures" not in p.parts)
    hits = [f"{p.relative_to(ROOT)}:{n}: {line.strip()[:80]}" for p in files
            for n, line in enumerate(p.read_text().splitlines(), 1)
            if HISTORY.search(line) and p.name != "test_structure.py"]
    assert not hits, "\n".join(hits)
