"""The import graph of bench/, reports/ and workloads/: no cycle, and no import against the layers.

The graph is read from the source (``ast``), so an import inside a function counts as much as one
at the top of a module: either one can close a cycle at run time.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"

# The layers, top to bottom. A module may import its own layer and the layers below it, never one
# above: front doors -> sweep -> engines -> measure -> backends -> model -> base (bench.backends: one
# module per Keras backend, importing the model and base only). reports/ reads results and
# imports the model (and base) only; workloads/ are plug-ins run inside a worker and import the
# model, measure (FLOP counts) and base only.
LAYERS = {"front": 6, "sweep": 4, "engines": 3, "measure": 2, "backends": 1, "model": 0, "base": -1}
BASE = {"bench.errors", "bench.text"}
REPORTS_MAY_IMPORT = {"model", "base", "reports"}
WORKLOADS_MAY_IMPORT = {"model", "measure", "base", "workloads"}


def layer(mod: str) -> str:
    """The layer a module of this project belongs to (``bench.x.y`` by its sub-package)."""
    top, _, rest = mod.partition(".")
    if top in ("reports", "workloads"):
        return top
    if mod in BASE:
        return "base"
    sub = rest.partition(".")[0]
    return sub if sub in LAYERS and sub not in ("front", "base") else "front"


def import_graph(*packages: Path, root: Path | None = None) -> dict[str, set[str]]:
    """Which modules of the packages (sub-packages included) each of their modules imports, anywhere in its source.

    Args:
        *packages: The packages' directories (their ``**/*.py`` files are the modules).
        root: The directory the dotted names start from (default: the first package's parent).

    Returns:
        ``{"pkg.mod": {"pkg.other", ...}}``; ``pkg`` (or ``pkg.sub``) stands for an ``__init__``.
    """
    root = root or packages[0].parent
    mods: dict[str, Path] = {}
    for package in packages:
        for p in sorted(package.rglob("*.py")):
            parts = list(p.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(parts)] = p
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        pkg = mod if path.stem == "__init__" else mod.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # ``from . import x`` / ``from .x import y`` inside the package
                    up = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                # ``from pkg import mod`` imports the submodule; any other name is an attribute of
                # ``base`` itself (the package's __init__ when base is the package)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            else:
                continue
            deps |= {t for t in targets if t in mods and t != mod}
        graph[mod] = deps
    return graph


def project_graph() -> dict[str, set[str]]:
    """bench/, reports/ and workloads/ as one graph (imports between them count)."""
    return import_graph(ROOT / "bench", ROOT / "reports", ROOT / "workloads", root=ROOT)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import that goes against the layers, as ``"a (layer) -> b (layer)"``."""
    bad = []
    for mod, deps in sorted(graph.items()):
        here = layer(mod)
        for dep in sorted(deps):
            there = layer(dep)
            if here == "reports":
                ok = there in REPORTS_MAY_IMPORT
            elif here == "workloads":
                ok = there in WORKLOADS_MAY_IMPORT
            elif there == "reports":
                ok = here == "front"  # the console and the CLI render reports
            elif there == "workloads":
                ok = False  # workloads are found by name (the registry), never imported by the harness
            else:
                ok = LAYERS[there] <= LAYERS[here]
            if not ok:
                bad.append(f"{mod} ({here}) -> {dep} ({there})")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle reachable by a depth-first walk, each as ``[a, b, ..., a]``."""
    found: list[list[str]] = []

    def walk(node: str, path: list[str], seen: set[str]) -> None:
        for dep in sorted(graph[node]):
            if dep in path:
                found.append(path[path.index(dep):] + [dep])
            elif dep not in seen:
                seen.add(dep)
                walk(dep, path + [dep], seen)

    for start in sorted(graph):
        walk(start, [start], {start})
    return found


def test_no_import_cycle_among_bench_modules():
    graph = import_graph(BENCH)
    assert len(graph) > 30 and "bench.measure.machine" in graph and "bench.measure.calibrate" in graph
    assert "bench.measure.machine" in graph["bench.measure.calibrate"]  # calibrate reads cpu_brand from machine ...
    assert "bench.measure.calibrate" not in graph["bench.measure.machine"]  # ... and the fingerprint is handed the calibration
    found = cycles(graph)
    assert found == [], "import cycles: " + "; ".join(" -> ".join(c) for c in found)


@pytest.mark.parametrize("where", ["module", "function", "relative"])
def test_the_walk_finds_a_cycle_wherever_the_import_is(tmp_path, where):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from pkg.a import f\n")
    (pkg / "a.py").write_text("from pkg import b\n\ndef f():\n    return b.g()\n")
    back = {
        "module": "from pkg.a import f\n\ndef g():\n    return 1\n",
        "function": "def g():\n    from pkg.a import f\n    return f\n",
        "relative": "def g():\n    from . import a\n    return a\n",
    }[where]
    (pkg / "b.py").write_text(back)
    graph = import_graph(pkg)
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}}
    assert ["pkg.a", "pkg.b", "pkg.a"] in cycles(graph)
    (pkg / "b.py").write_text("def g():\n    return 1\n")
    assert cycles(import_graph(pkg)) == []


def test_imports_follow_the_layers():
    graph = project_graph()
    assert {"bench.cli", "bench.sweep.sweep", "bench.engines.local", "bench.measure.sampler", "bench.model.results",
            "reports.report", "workloads.lorenz", "bench.backends.registry", "bench.backends.jax"} <= set(graph)
    assert graph["bench.sweep.sweep"] & {"bench.engines.registry", "bench.model.results"}  # the graph sees real edges
    assert "bench.backends.registry" in graph["bench.engines.childenv"]  # engines ask the backends
    backends_import = {layer(d) for m, deps in graph.items() if layer(m) == "backends" for d in deps}
    assert backends_import <= {"backends", "model", "base"}, backends_import
    bad = upward_imports(graph)
    assert bad == [], "imports against the layers:\n" + "\n".join(bad)


def test_the_layer_check_catches_an_upward_import():
    graph = {"bench.model.results": {"bench.sweep.sweep"}, "reports.load": {"bench.engines.local", "bench.model.results"},
             "bench.sweep.sweep": {"reports.report", "bench.model.results"}, "bench.cli": {"reports.report"},
             "bench.backends.jax": {"bench.measure.flops", "bench.model.results"},
             "bench.model.workload": {"bench.backends.registry"}, "bench.measure.machine": {"bench.backends.registry"}}
    assert upward_imports(graph) == [
        "bench.backends.jax (backends) -> bench.measure.flops (measure)",
        "bench.model.results (model) -> bench.sweep.sweep (sweep)",
        "bench.model.workload (model) -> bench.backends.registry (backends)",
        "bench.sweep.sweep (sweep) -> reports.report (reports)",
        "reports.load (reports) -> bench.engines.local (engines)",
    ]


# Modules that may call the json module, and why. Records (worker replies, trial records, run
# summaries, result files) go to and from JSON only in bench/model/results.py.
JSON_ALLOWED = {
    "bench.model.results": "the one JSON path",
    "bench.measure.calibrate": "calibration's own measuring-process protocol and its cache document (not a record)",
}


def json_calls(package: Path) -> dict[str, list[str]]:
    """``{module: ["json.dumps", ...]}`` for every call of a ``json.*`` function in the package's source."""
    found: dict[str, list[str]] = {}
    for p in sorted(package.rglob("*.py")):
        parts = list(p.relative_to(package.parent).with_suffix("").parts)
        mod = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        tree = ast.parse(p.read_text(encoding="utf-8"), str(p))
        calls = [
            f"json.{n.func.attr}"
            for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and isinstance(n.func.value, ast.Name) and n.func.value.id == "json"
        ]
        calls += [f"from json import {a.name}" for n in ast.walk(tree)
                  if isinstance(n, ast.ImportFrom) and n.module == "json" for a in n.names]
        if calls:
            found[mod] = calls
    return found


def test_only_results_turns_records_to_and_from_json():
    found = json_calls(BENCH)
    assert "bench.model.results" in found and "json.dumps" in found["bench.model.results"]
    assert set(found) == set(JSON_ALLOWED), f"json used outside the one path: {sorted(set(found) - set(JSON_ALLOWED))}"


def test_the_json_scan_sees_calls_and_imports(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("import json\n\ndef f(x):\n    return json.dumps(x)\n")
    (pkg / "b.py").write_text("from json import loads\n")
    (pkg / "c.py").write_text("code = 'import json; print(json.dumps(1))'\n")  # a child's source text is not a call here
    assert json_calls(pkg) == {"pkg.a": ["json.dumps"], "pkg.b": ["from json import loads"]}
