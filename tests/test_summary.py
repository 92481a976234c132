"""RunSummary: every summary key declared once, every result file's summary read back exactly.

Every file under tests/data/ loads; each run's summary round-trips to the JSON object the file
holds (same keys, same order, same values), and each key reads the same as an attribute.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from bench.errors import ResultFileError
from bench.model import ratios, results, summary
from bench.model.results import RunRecord
from bench.model.summary import FIELDS, RunSummary
from support import synth

DATA = Path(__file__).resolve().parent / "data"
FILES = sorted(DATA.rglob("*.json"))


def test_there_are_files_to_read():
    assert len(FILES) >= 5


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_every_file_loads_and_each_summary_round_trips(path):
    raw = json.loads(path.read_text(encoding="utf-8"))
    result = results.load(path)
    assert len(result.runs) == len(raw["runs"]) > 0
    for run, doc in zip(result.runs, raw["runs"]):
        s = run.summary
        assert isinstance(s, RunSummary)
        assert s.as_dict() == doc["summary"] and list(s.as_dict()) == list(doc["summary"])
        assert dict(s) == doc["summary"] and {**s} == doc["summary"] and s == doc["summary"]
        for key, value in doc["summary"].items():
            assert s[key] == value and s.get(key) == value and key in s, key
            if key in FIELDS:
                assert getattr(s, key) == value, key
            else:
                assert s.extra[key] == value, key
    # written again, the file holds the same document
    assert results.to_dict(results.loads(results.dumps(result))) == raw


def test_today_files_hold_only_declared_keys():
    for path in FILES:
        for run in results.load(path).runs:
            assert not run.summary.extra, (path.name, dict(run.summary.extra))


def test_a_missing_key_reads_none_and_stays_missing():
    doc = {"trials": 2, "wall_s": 3.0, "speedup": None}  # an old file: no noise, no sampler cost
    s = RunSummary.from_dict(doc)
    assert s.noise is None and s.sampler_cpu_s is None and "noise" not in s and s.get("noise", "x") == "x"
    assert s.speedup is None and "speedup" in s  # recorded as null: kept as null
    assert s.as_dict() == doc and len(s) == 3
    with pytest.raises(KeyError):
        s["noise"]


def test_unknown_keys_are_kept_in_extra_and_written_back():
    doc = {"wall_s": 1.0, "from_the_future": {"a": 1}, "trials": 1}
    s = RunSummary.from_dict(doc)
    assert s.extra == {"from_the_future": {"a": 1}} and s["from_the_future"] == {"a": 1}
    assert list(s.as_dict()) == ["wall_s", "from_the_future", "trials"]
    run = RunRecord(workload="w", size="quick", strategy={"device": "cpu", "processes": 1}, summary=s)
    doc_out = results.to_dict(results.Result(machine={"label": "m"}, runs=(run,)))
    assert doc_out["runs"][0]["summary"] == doc
    loaded = results.from_dict(json.loads(json.dumps(doc_out)))
    assert loaded.runs[0].summary == doc and loaded.runs[0].summary.extra == {"from_the_future": {"a": 1}}


def test_a_record_given_a_dict_holds_a_run_summary():
    run = RunRecord(workload="w", size="quick", strategy={"device": "cpu", "processes": 1},
                    summary={"wall_s": 2.0, "failed": 0})
    assert isinstance(run.summary, RunSummary) and run.summary.wall_s == 2.0 and run.summary["failed"] == 0
    again = dataclasses.replace(run, summary={**run.summary, "compute_offset_s": 0.5})
    assert again.summary.compute_offset_s == 0.5 and list(again.summary) == ["wall_s", "failed", "compute_offset_s"]
    assert RunRecord(workload="w", size="q", strategy={"device": "cpu", "processes": 1}).summary == {}


def test_replace_adds_and_sets_keys_in_order():
    s = RunSummary.from_dict({"wall_s": 2.0, "speedup": None})
    t = s.replace(speedup=1.5, baseline_wall_s=3.0)
    assert list(t) == ["wall_s", "speedup", "baseline_wall_s"] and t.speedup == 1.5 and s.speedup is None
    assert dataclasses.replace(s, gflops=1.0).gflops == 1.0 and "gflops" in dataclasses.replace(s, gflops=1.0)


def test_every_key_the_producers_write_is_declared():
    runs = synth.scaling_runs(walls={1: 4.0, 2: 2.5}, extras=[{"flops": 1e9}] * 4, gpu_util=[50.0])
    produced = set()
    for run in ratios.finalize_runs(runs):
        produced |= set(run.summary)
        assert not run.summary.extra
    # the sweep adds these (bench/sweep/sweep.py, bench.measure.sampler.Sampler.cost, a resumed run's merge)
    produced |= {"compute_offset_s", "failures", "resumed_trials", "segments", "sampler_cpu_s", "sampler_wall_s",
                 "sampler_cpu_share", "sampler_samples", "sampler_interval_s"}
    produced |= {"weak_efficiency", "baseline_throughput"}  # finalize_runs writes these for weak-scaling runs only
    assert produced == set(FIELDS)


def test_finalize_records_speedup_efficiency_and_baseline():
    one, two = ratios.finalize_runs(synth.scaling_runs(walls={1: 8.0, 2: 5.0}))
    assert two.summary.baseline_wall_s == 8.0 and two.summary.speedup == ratios.speedup(8.0, 5.0)
    assert two.summary.efficiency == ratios.efficiency(8.0 / 5.0, 2) and one.summary.speedup == 1.0
    assert two.summary.speedup_vs_cpu == 1.0 and "speedup_vs_cpu" in two.summary


@pytest.mark.parametrize("key, value, message", [
    ("wall_s", "long", "field 'wall_s' should be a number"),
    ("gflops", True, "field 'gflops' should be a number"),
    ("throughput_unit", 3, "field 'throughput_unit' should be a string"),
    ("trial_wall_s", {"median": "x"}, "summary.trial_wall_s: field 'median' should be a number"),
    ("failures", {"crash": []}, "summary.failures: field 'crash' should be a number"),
])
def test_the_kinds_are_checked_when_a_file_is_read(key, value, message):
    c = results.checker("f.json")
    with pytest.raises(ResultFileError, match=message):
        RunSummary.from_dict({"wall_s": 1.0, key: value}, c, "runs[0].summary")
    summary.check({"noise": "free-form", "segments": {}, "unknown": "x"}, c, "s")  # free-form: not checked


def test_kinds_cover_every_field():
    assert set(summary.KINDS) == set(FIELDS) and set(summary.KINDS.values()) <= {
        summary.NUMBER, summary.TEXT, summary.NUMBERS, summary.OBJECT, summary.LIST}
    assert "extra" not in FIELDS and "keys_held" not in FIELDS
