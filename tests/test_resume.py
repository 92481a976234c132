"""bench.sweep.resume: the pure resume plan (what to carry, keep, run again) and joining a resumed run."""

from __future__ import annotations

import pytest

from bench.errors import UsageError
from bench.model.results import Result, RunRecord, TrialError, TrialRecord
from bench.model.strategy import Strategy
from bench.sweep.resume import NOTHING_KEPT, merge_resumed, plan_resume, strategy_key

MACHINE = {"hostname": "box", "ram_bytes": 8 << 30, "cpu": "cpu-x"}
ONE = Strategy(device="cpu", processes=1, threads_per_process=2, inter_op_threads=1)
TWO = Strategy(device="cpu", processes=2, threads_per_process=1, inter_op_threads=1)
CONFIGS = [{"id": "t0", "x": 0}, {"id": "t1", "x": 1}, {"id": "t2", "x": 2}]


def _trial(i: int, ok: bool = True, **config) -> TrialRecord:
    error = None if ok else TrialError(kind="exception", message="boom")
    return TrialRecord(id=f"t{i}", config={"id": f"t{i}", "x": i, **config}, wall_s=1.0, cpu_s=1.0, error=error)


def _run(strategy: Strategy, trials, version: int = 1, options: dict | None = {}, source="synthetic", **kw) -> RunRecord:
    return RunRecord(workload="wl", size="quick", strategy={**strategy.to_dict(), "engine": "local"},
                     trials=tuple(trials), workload_version=version, options=options, data={"source": source}, **kw)


def _plan(old: Result, **kw):
    args = dict(workload="wl", size="quick", version=1, strategies=[ONE], configs=CONFIGS, options={},
                data_source="synthetic", machine=MACHINE, where="old.json")
    args.update(kw)
    return plan_resume(old, **args)


def test_strategy_key_is_the_run_key():
    assert strategy_key("wl", "quick", ONE) == _run(ONE, []).key
    assert strategy_key("wl", "quick", ONE) != strategy_key("wl", "quick", TWO)


def test_finished_trials_are_kept_failed_and_changed_ones_run_again():
    old_run = _run(ONE, [_trial(0), _trial(1, ok=False), _trial(2, x=99)])
    old = Result(machine=MACHINE, runs=(old_run, _run(TWO, [_trial(0)])))
    plan = _plan(old)
    assert plan.carried == (old.runs[1],)  # the 2-process run is not asked for: carried unchanged
    mine = plan.of(strategy_key("wl", "quick", ONE))
    assert mine.old is old_run and list(mine.kept) == ["t0"] and mine.superseded is None
    (rerun,) = mine.decisions
    assert rerun["action"] == "rerun" and [t["id"] for t in rerun["trials"]] == ["t1", "t2"]
    assert rerun["trials"][0]["error"]["message"] == "boom"  # the old records stay in the file
    assert plan.of(strategy_key("wl", "quick", TWO)) is NOTHING_KEPT
    assert _plan(old) == plan  # pure: the same answer every time, nothing changed


def test_a_workload_version_change_supersedes_the_old_run():
    old = Result(machine=MACHINE, runs=(_run(ONE, [_trial(0)], version=1),))
    mine = _plan(old, version=2).of(strategy_key("wl", "quick", ONE))
    assert mine.old is None and not mine.kept and mine.superseded == (1, 2)
    (decision,) = mine.decisions
    assert decision["action"] == "superseded" and decision["run"]["workload_version"] == 1
    assert decision["reason"] == "workload version 1 -> 2: every trial runs again"


def test_offline_is_not_an_option_that_changes_a_trial():
    old = Result(machine=MACHINE, runs=(_run(ONE, [_trial(0)], options={"offline": "1"}),))
    assert list(_plan(old).of(strategy_key("wl", "quick", ONE)).kept) == ["t0"]


@pytest.mark.parametrize(
    "old_kw, plan_kw, message",
    [
        ({}, dict(workload="other"), "old.json holds wl quick results, not other quick"),
        ({}, dict(size="full"), "old.json holds wl quick results, not wl full"),
        ({"options": {"epochs": "2"}}, {}, "old.json was run with workload options epochs=2; this command has none"),
        ({"options": None, "trials": [_trial(7)]}, {}, "none of the trials in old.json is a trial of this command"),
        ({"source": "real"}, {}, "old.json used real data but this command would use synthetic data"),
    ],
)
def test_a_file_that_does_not_match_is_refused(old_kw, plan_kw, message):
    old_kw = dict(old_kw)
    trials = old_kw.pop("trials", [_trial(0)])
    old = Result(machine=MACHINE, runs=(_run(ONE, trials, **old_kw),))
    with pytest.raises(UsageError) as err:
        _plan(old, **plan_kw)
    assert message in str(err.value)


def test_another_machine_is_refused_unless_forced():
    old = Result(machine={**MACHINE, "hostname": "elsewhere"}, runs=(_run(ONE, [_trial(0)]),))
    with pytest.raises(UsageError, match=r"old.json was measured on another machine \(elsewhere, cpu-x\)"):
        _plan(old)
    assert list(_plan(old, force=True).of(strategy_key("wl", "quick", ONE)).kept) == ["t0"]


def test_an_empty_file_of_this_sweep_resumes_from_its_identity():
    sweep = {"kind": "sweep", "workload": "wl", "size": "quick"}
    assert _plan(Result(machine=MACHINE, decisions=(sweep,))).carried == ()
    with pytest.raises(UsageError, match="holds wl quick results, not wl full"):
        _plan(Result(machine=MACHINE, decisions=(sweep,)), size="full")


def test_merge_adds_times_and_follows_the_timelines():
    old = _run(ONE, [_trial(0)], samples=({"t": 0.0}, {"t": 4.0}), workers=({"index": 0},),
               summary={"wall_s": 4.0, "cpu_s": 3.0, "compute_offset_s": 0.5})
    new = _run(ONE, [_trial(0), _trial(1)], samples=({"t": 0.0}, {"t": 2.0}), workers=({"index": 1},))
    seen = []

    def summarize(run, wall, offset):
        seen.append((len(run.workers), wall, offset))
        return {"wall_s": wall}

    merged = merge_resumed(old, new, 2.0, summarize)
    assert seen == [(2, 6.0, 0.5)]
    assert [s["t"] for s in merged.samples] == [0.0, 4.0, 4.0, 6.0]
    assert merged.summary["resumed_trials"] == 1 and merged.summary["wall_s"] == 6.0
    assert merged.summary["cpu_s"] == 3.0 + 1.0  # the one trial run now (no tree CPU in these samples)
    assert merged.summary["segments"] == [{"t0": 0.0, "wall_s": 4.0}, {"t0": 4.0, "wall_s": 2.0}]
    assert merged.notes[-1] == "resumed: 1 trials kept from an earlier run (4.0 s), 1 run now"
