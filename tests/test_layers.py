"""The import graph of bench/: no cycle among its modules (module-level and function-level imports).

The graph is read from the source (``ast``), so an import inside a function counts as much as one
at the top of a module: either one can close a cycle at run time.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def import_graph(package: Path) -> dict[str, set[str]]:
    """Which modules of a flat package each of its modules imports, anywhere in its source.

    Args:
        package: The package's directory (its ``*.py`` files are the modules).

    Returns:
        ``{"pkg.mod": {"pkg.other", ...}}``; ``pkg`` itself stands for the ``__init__``.
    """
    name = package.name
    mods = {name if p.stem == "__init__" else f"{name}.{p.stem}": p for p in package.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # ``from . import x`` / ``from .x import y`` inside the package
                    base = ".".join([name] + ([base] if base else []))
                # ``from pkg import mod`` imports the submodule; any other name is an attribute of
                # ``base`` itself (the package's __init__ when base is the package)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            else:
                continue
            deps |= {t for t in targets if t in mods and t != mod}
        graph[mod] = deps
    return graph


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
    assert len(graph) > 20 and "bench.machine" in graph and "bench.calibrate" in graph
    assert "bench.machine" in graph["bench.calibrate"]  # calibrate reads cpu_brand from machine ...
    assert "bench.calibrate" not in graph["bench.machine"]  # ... and the fingerprint is handed the calibration
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
