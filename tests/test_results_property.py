"""Property tests of the result loader: for any input it loads or raises ResultFileError (one line),
whatever loads can be written back unchanged, and loading never executes code.

The values tried include what issue 17 found the loader let through: integers of hundreds of
digits and numbers near the float maximum where figures belong, null and lists in every numeric and
string field, nesting hundreds of levels deep, very long strings; for xpubench result files and
for pytest-benchmark JSON (reports.load)."""

from __future__ import annotations

import builtins
import json
import math
import pickle
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.model import results
from bench.errors import ResultFileError
from bench.model.results import Result, RunRecord, TrialError, TrialRecord

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _nested(depth: int, leaf=1):
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


huge_ints = st.one_of(st.integers(min_value=2**62, max_value=10**400), st.integers(min_value=-(10**400), max_value=-(2**62)))
long_strings = st.builds(lambda ch, n: ch * n, st.characters(), st.integers(min_value=200, max_value=200_000))
deep = st.builds(_nested, st.integers(min_value=50, max_value=700))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), huge_ints,
    st.floats(allow_nan=False, allow_infinity=False), st.floats(min_value=1e99, max_value=1.79e308),
    st.text(max_size=12), long_strings,
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=25,
)
# what issue 17 found in every field: huge numbers, null, lists, objects, deep nesting, long strings
hostile_values = st.one_of(
    st.just(None), huge_ints, st.just(1.7e308), st.just(-1.7e308), st.just([]), st.lists(scalars, max_size=3),
    st.just({}), st.just({"a": [1]}), deep, long_strings, st.just(True), json_values,
)
# Python values json.loads never returns, but from_dict may be handed: NaN, inf, huge ints
odd_values = st.one_of(hostile_values, st.sampled_from([math.nan, math.inf, -math.inf, 10**400, -(10**400), 10**5000]))


def _valid_doc() -> dict:
    trials = (
        TrialRecord(id="a", config={"id": "a", "nodes": [5, 8]}, worker=1, wall_s=1.5, cpu_s=1.4, samples=900,
                    quality={"rmse": 3.2}, peak_rss_bytes=123),
        TrialRecord(id="b", config={"id": "b"}, error=TrialError(kind="crash", message="killed", signal=9, stderr_tail="x")),
    )
    run = RunRecord(
        workload="lorenz", size="quick", strategy={"device": "cpu", "processes": 2, "threads_per_process": 1},
        trials=trials, samples=({"t": 0.0, "tree_cpu_s": 1.0, "cpu_percent": [1.0], "tree_rss_bytes": 10},),
        workers=({"index": 0},),
        summary={"wall_s": 2.0, "speedup": None, "startup_s": {"n": 1, "median": 3.0}, "failures": {"crash": 1}},
        notes=("n",), options={"epochs": "1"}, data={"source": "generated"},
    )
    machine = {"label": "lab", "cpu": "x", "ram_bytes": 1, "tensorflow": "2.16.1", "xpubench": "0.1.0",
               "gpus": [{"name": "A100", "memory_total_bytes": 1}], "thread_env": {"OMP_NUM_THREADS": "1"},
               "calibration": {"parallel_efficiency": {"1": 1.0, "2": 0.9}, "matmul_gflops": 40.0,
                               "load_avg_1m": 0.2, "measured_at": "t"}}
    return results.to_dict(Result(machine=machine, runs=(run,), command=("bench", "run"), decisions=({"kind": "sweep"},)))


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
@given(st.sampled_from(PATHS), hostile_values)
def test_huge_numbers_nulls_lists_deep_nesting_and_long_strings_in_any_field(path, value):
    """What loads is bounded: no number a float or a 64-bit integer cannot hold, no deep nesting."""
    result = _loads_or_own_error(json.dumps(_set(VALID, path, value)))
    if result is not None:
        _assert_bounded(results.to_dict(result))


def _assert_bounded(doc, depth=0):
    assert depth <= results.MAX_DEPTH
    if isinstance(doc, dict):
        for v in doc.values():
            _assert_bounded(v, depth + 1)
    elif isinstance(doc, list):
        for v in doc:
            _assert_bounded(v, depth + 1)
    elif isinstance(doc, int) and not isinstance(doc, bool):
        assert -(2**63) <= doc < 2**63
    elif isinstance(doc, float):
        assert math.isfinite(doc) and abs(doc) <= results.MAX_MAGNITUDE


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


@pytest.mark.parametrize("text", ["[" * 100000, '{"a":' * 50000, "1" * 5000, "1e999", '{"schema": 1e400}',
                                  json.dumps(_nested(600)), json.dumps({"schema": 1, "runs": [], "machine": _nested(900)})])
def test_pathological_json(text):
    assert _loads_or_own_error(text) is None


def test_the_valid_document_loads():
    assert _loads_or_own_error(json.dumps(VALID)) is not None


# ---------------------------------------------------------------- pytest-benchmark JSON (reports.load)

PB_VALID = {
    "machine_info": {"node": "n", "xpubench": {"label": "pbbox", "cpu": "x", "xpubench": "0.1.0",
                                               "calibration": {"parallel_efficiency": {"1": 1.0}}}},
    "benchmarks": [{
        "name": "test_lorenz[1p]", "group": "lorenz-quick", "fullname": "t.py::test_lorenz[1p]",
        "stats": {"mean": 1.5, "median": 1.5, "min": 1.4, "max": 1.6, "stddev": 0.1, "rounds": 1},
        "extra_info": {"xpubench": {"schema": 1, "workload": "lorenz", "size": "quick",
                                    "strategy": {"device": "cpu", "processes": 1, "threads_per_process": 2},
                                    "summary": {"wall_s": 1.5, "throughput": 600.0}, "quality": {"rmse": 3.0},
                                    "data": {"source": "generated"}, "status": "complete"}},
    }],
    "datetime": "2024-01-01T00:00:00", "version": "4.0.0",
}
PB_PATHS = [p for p in _paths(PB_VALID) if p]


def _pb_loads_or_own_error(doc):
    from reports.load import Source, from_pytest_benchmark

    try:
        src = from_pytest_benchmark(json.loads(json.dumps(doc)), "pb.json")
    except ResultFileError as exc:
        assert str(exc).startswith("pb.json: ") and "\n" not in str(exc)
        return None
    assert isinstance(src, Source)
    for t in src.timings:
        assert math.isfinite(t.mean) and all(v is None or math.isfinite(v) for v in (t.median, t.min, t.max, t.stddev))
    return src


def test_the_valid_pytest_benchmark_document_loads():
    src = _pb_loads_or_own_error(PB_VALID)
    assert src is not None and src.label == "pbbox" and len(src.runs) == 1


@SETTINGS
@given(st.sampled_from(PB_PATHS), hostile_values)
def test_pytest_benchmark_json_with_any_field_replaced_loads_or_raises_the_tools_error(path, value):
    _pb_loads_or_own_error(_set(PB_VALID, path, value))


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
    """Static check of bench/model/results.py: only harmless imports, no eval/exec/compile/__import__ calls."""
    import ast

    from bench import text

    from bench.model import safefile, summary

    imported = set()
    for node in (n for m in (results, safefile, summary, text) for n in ast.walk(ast.parse(Path(m.__file__).read_text()))):
        if isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in ("eval", "exec", "compile", "__import__"), node.func.id
        elif isinstance(node, ast.keyword):
            assert node.arg not in ("object_hook", "object_pairs_hook", "cls"), node.arg
    allowed = {"__future__", "dataclasses", "json", "math", "os", "tempfile", "pathlib", "typing", "bench.errors",
               "importlib.metadata",  # the tool's own version string
               "bench.model.safefile", "bench.model.summary",  # the summary record, read by the loader
               "bench.model.strategy",  # a run's backend (old files: tensorflow), for RunRecord.key
               "bench.text", "errno", "stat", "re", "shlex", "unicodedata"}  # reading; messages
    assert imported <= allowed, imported - allowed
