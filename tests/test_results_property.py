"""Property tests of the result loader: for any input it loads or raises ResultFileError (one line),
whatever loads can be written back unchanged, and loading never executes code."""

from __future__ import annotations

import builtins
import json
import math
import pickle
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import results
from bench.errors import ResultFileError
from bench.results import Result, RunRecord, TrialError, TrialRecord

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=25,
)
# Python values json.loads never returns, but from_dict may be handed: NaN, inf, huge ints
odd_values = st.one_of(json_values, st.sampled_from([math.nan, math.inf, -math.inf, 10**400, -(10**400)]))


def _valid_doc() -> dict:
    trials = (
        TrialRecord(id="a", config={"id": "a", "nodes": [5, 8]}, worker=1, wall_s=1.5, cpu_s=1.4, samples=900,
                    quality={"rmse": 3.2}, peak_rss_bytes=123),
        TrialRecord(id="b", config={"id": "b"}, error=TrialError(kind="crash", message="killed", signal=9, stderr_tail="x")),
    )
    run = RunRecord(
        workload="lorenz", size="quick", strategy={"device": "cpu", "processes": 2, "threads_per_process": 1},
        trials=trials, samples=({"t": 0.0, "tree_cpu_s": 1.0, "cpu_percent": [1.0]},), workers=({"index": 0},),
        summary={"wall_s": 2.0, "speedup": None, "startup_s": {"n": 1, "median": 3.0}, "failures": {"crash": 1}},
        notes=("n",), options={"epochs": "1"},
    )
    return results.to_dict(Result(machine={"label": "lab", "cpu": "x", "ram_bytes": 1}, runs=(run,),
                                  command=("bench", "run"), decisions=({"kind": "sweep"},)))


def _paths(doc, prefix=()):
    """Every (path to a value) in a JSON document."""
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


VALID = _valid_doc()
PATHS = [p for p in _paths(VALID) if p]


def _set(doc, path, value):
    doc = json.loads(json.dumps(doc))
    obj = doc
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value
    return doc


def _delete(doc, path):
    doc = json.loads(json.dumps(doc))
    obj = doc
    for key in path[:-1]:
        obj = obj[key]
    del obj[path[-1]]
    return doc


def _loads_or_own_error(text: str):
    """The property: a Result (that survives a save/load round trip) or one-line ResultFileError."""
    try:
        result = results.loads(text, "f.json")
    except ResultFileError as exc:
        assert str(exc).startswith("f.json: ") and "\n" not in str(exc)
        return None
    assert isinstance(result, Result)
    again = results.loads(results.dumps(result), "g.json")  # whatever loads can be written back
    assert results.to_dict(again) == results.to_dict(result)
    return result


@SETTINGS
@given(json_values)
def test_any_json_value_loads_or_raises_the_tools_error(value):
    _loads_or_own_error(json.dumps(value))


@SETTINGS
@given(st.sampled_from(PATHS), odd_values)
def test_a_valid_file_with_any_field_replaced_loads_or_raises_the_tools_error(path, value):
    doc = _set(VALID, path, value)
    try:
        text = json.dumps(doc, allow_nan=True)
    except (ValueError, OverflowError):
        return
    _loads_or_own_error(text)
    try:  # and the document itself, as Python values (NaN, inf, 10**400 included)
        results.from_dict(doc, "f.json")
    except ResultFileError as exc:
        assert "\n" not in str(exc)


@SETTINGS
@given(st.sampled_from(PATHS))
def test_a_valid_file_with_any_field_removed_loads_or_raises_the_tools_error(path):
    _loads_or_own_error(json.dumps(_delete(VALID, path)))


@SETTINGS
@given(st.text(max_size=200))
def test_any_text_loads_or_raises_the_tools_error(text):
    _loads_or_own_error(text)


@SETTINGS
@given(st.integers(min_value=0, max_value=len(json.dumps(VALID)) - 1))
def test_any_truncation_raises_the_tools_error(cut):
    assert _loads_or_own_error(json.dumps(VALID)[:cut]) is None


@pytest.mark.parametrize("text", ["[" * 100000, '{"a":' * 50000, "1" * 5000, "1e999", '{"schema": 1e400}'])
def test_pathological_json(text):
    assert _loads_or_own_error(text) is None


def test_the_valid_document_loads():
    assert _loads_or_own_error(json.dumps(VALID)) is not None


# ---------------------------------------------------------------- loading never executes code

PAYLOADS = [
    {"__reduce__": ["os.system", ["touch /tmp/xpubench-pwned"]]},
    {"py/object": "os.system", "py/reduce": [{"py/function": "os.system"}, ["id"]]},
    "!!python/object/apply:os.system ['id']",
    "__import__('os').system('id')",
    {"$type": "System.Diagnostics.Process", "__class__": "subprocess.Popen"},
    pickle.dumps(["x"]).hex(),
]


def _forbidden(*args, **kwargs):
    raise AssertionError("the loader tried to run code")


class _NoCodeRuns:
    """Within the block, eval/exec/compile/__import__ and unpickling raise (only the loader runs inside)."""

    def __enter__(self):
        self.saved = [(builtins, n, getattr(builtins, n)) for n in ("eval", "exec", "compile", "__import__")]
        self.saved += [(pickle, n, getattr(pickle, n)) for n in ("loads", "load", "Unpickler")]
        for mod, name, _ in self.saved:
            setattr(mod, name, _forbidden)
        return self

    def __exit__(self, *exc):
        for mod, name, value in self.saved:
            setattr(mod, name, value)
        return False


@pytest.mark.parametrize("payload", PAYLOADS)
def test_loading_never_executes_code(tmp_path, payload):
    docs = [payload, _set(VALID, ("machine",), {"label": "x", "extra": payload}),
            _set(VALID, ("runs", 0, "trials", 0, "config"), {"id": "a", "x": payload}),
            _set(VALID, ("runs", 0, "trials", 0, "extra"), {"x": payload})]
    loaded_any = False
    for i, doc in enumerate(docs):
        p = tmp_path / f"r{i}.json"
        p.write_text(json.dumps(doc))
        try:
            with _NoCodeRuns():
                loaded = results.load(p)
        except ResultFileError:
            continue
        loaded_any = True
        assert json.dumps(results.to_dict(loaded))  # payloads stay plain data
    assert loaded_any
    assert not Path("/tmp/xpubench-pwned").exists()


def test_the_loader_has_no_code_executing_calls():
    """Static check of bench/results.py: only harmless imports, no eval/exec/compile/__import__ calls."""
    import ast

    tree = ast.parse(Path(results.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in ("eval", "exec", "compile", "__import__"), node.func.id
        elif isinstance(node, ast.keyword):
            assert node.arg not in ("object_hook", "object_pairs_hook", "cls"), node.arg
    allowed = {"__future__", "dataclasses", "json", "math", "os", "tempfile", "pathlib", "typing", "bench.errors",
               "importlib.metadata"}  # the last: the tool's own version string
    assert imported <= allowed, imported - allowed
