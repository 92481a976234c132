"""Result schema v1: round trip, validation, newer-schema refusal, atomic writes."""

import json
import os

import pytest

from bench.model import results
from bench.errors import ResultFileError
from bench.model.results import SCHEMA, Result, RunRecord, TrialError, TrialRecord


def _result(**kw):
    trials = (
        TrialRecord(id="a", config={"id": "a", "nodes": [5, 8]}, wall_s=1.5, cpu_s=1.4, samples=900, quality={"rmse": 3.2}),
        TrialRecord(id="b", config={"id": "b"}, error=TrialError(kind="crash", message="worker killed by SIGKILL", signal=9)),
    )
    run = RunRecord(
        workload="lorenz", size="quick", strategy={"device": "cpu", "processes": 2, "threads_per_process": 1},
        trials=trials, samples=({"t": 0.0, "tree_cpu_s": 1.0}, {"t": 0.5, "tree_cpu_s": 1.9}),
        summary={"wall_s": 2.0, "speedup": float("nan")},
    )
    return Result(machine={"label": "lab", "cpu": "x"}, runs=(run,), **kw)


def test_round_trip_preserves_records(tmp_path):
    path = results.save(_result(), tmp_path / "r.json")
    loaded = results.load(path)
    assert loaded.schema == SCHEMA == 2
    assert loaded.machine["label"] == "lab"
    (run,) = loaded.runs
    assert run.trials[0].quality == {"rmse": 3.2} and run.trials[0].config["nodes"] == [5, 8]
    assert run.trials[1].error == TrialError(kind="crash", message="worker killed by SIGKILL", signal=9)
    assert not run.trials[1].ok and run.trials[0].ok
    assert run.summary["speedup"] is None  # NaN is not JSON: stored as null
    assert results.to_dict(loaded) == results.to_dict(results.load(results.save(loaded, tmp_path / "s.json")))


def test_file_starts_with_schema_and_tool(tmp_path):
    path = results.save(_result(), tmp_path / "r.json")
    doc = json.loads(path.read_text())
    assert list(doc)[0] == "schema" and doc["schema"] == 2
    assert doc["tool"]["name"] == "xpubench"


def test_newer_schema_is_refused_clearly(tmp_path):
    doc = results.to_dict(_result())
    doc["schema"] = SCHEMA + 1
    p = tmp_path / "new.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(ResultFileError, match=r"new.json: schema: file has schema 3, newer than this xpubench reads \(2\)"):
        results.load(p)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty file"),
        ('{"schema": 1, "runs": [', "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"benchmarks": []}', "not an xpubench result file"),
        ('{"schema": "1", "runs": [], "machine": {}}', "expected a positive integer"),
        ('{"schema": 1, "runs": {}, "machine": {}}', "field 'runs' should be a list"),
        ('{"schema": 1, "runs": [], "machine": {}, "tool": {"name": "asv"}}', "written by 'asv'"),
        ('{"schema": 1, "runs": [{"workload": 3}], "machine": {}}', "runs[0]: missing field 'strategy'"),
    ],
)
def test_bad_files_raise_one_line_naming_the_file(tmp_path, text, message):
    p = tmp_path / "bad.json"
    p.write_text(text)
    with pytest.raises(ResultFileError) as info:
        results.load(p)
    assert message in str(info.value)
    assert str(p) in str(info.value) and "\n" not in str(info.value)


def test_wrong_field_types_are_named(tmp_path):
    doc = results.to_dict(_result())
    doc["runs"][0]["trials"][0]["wall_s"] = "fast"
    p = tmp_path / "t.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(ResultFileError, match=r"runs\[0\].trials\[0\]: field 'wall_s' should be a number, not str"):
        results.load(p)


def test_missing_and_directory_paths(tmp_path):
    with pytest.raises(ResultFileError, match="no such file"):
        results.load(tmp_path / "nope.json")
    with pytest.raises(ResultFileError, match="is a directory"):
        results.load(tmp_path)


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    p = tmp_path / "a.json"
    results.atomic_write_text(p, "old")
    results.atomic_write_text(p, "new content")
    assert p.read_text() == "new content"
    assert os.listdir(tmp_path) == ["a.json"]


def test_atomic_write_failure_keeps_old_content(tmp_path, monkeypatch):
    p = tmp_path / "a.json"
    results.atomic_write_text(p, "old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        results.atomic_write_text(p, "new")
    assert p.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.json"]


def test_records_are_immutable():
    r = _result()
    with pytest.raises(Exception):
        r.runs[0].trials[0].wall_s = 3  # type: ignore[misc]
