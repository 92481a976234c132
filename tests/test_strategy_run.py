"""bench.sweep.strategy_run.StrategyRun: one strategy, with an in-process engine and a recording sweep."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

import xpubench_testload  # noqa: E402

from bench.errors import WorkerStartError  # noqa: E402
from bench.model.reply import TrialReply  # noqa: E402
from bench.model.results import RunRecord  # noqa: E402
from bench.model.strategy import Strategy  # noqa: E402
from bench.sweep import strategy_run  # noqa: E402
from bench.sweep.resume import NOTHING_KEPT, StrategyResume, strategy_key  # noqa: E402
from bench.sweep.strategy_run import StrategyInterrupted, StrategyRun, SweepSetup  # noqa: E402

STRATEGY = Strategy(device="cpu", processes=2, threads_per_process=1, inter_op_threads=1)
JOB_KEYS = {"type", "workload", "size", "config", "seed", "options"}


class Pool:
    """The engine interface in-process: ``ok`` trials succeed, others raise."""

    instances: list["Pool"] = []
    fail_start = False

    def __init__(self, n, env_for, device="cpu", log_dir=None, on_event=None, **kw):
        self.n, self.sent, self.closed, self.worker_facts = n, [], False, []
        Pool.instances.append(self)

    def start(self):
        if Pool.fail_start:
            raise WorkerStartError("no worker could start (worker exited with status 1)")
        self.worker_facts = [{"type": "hello", "index": i, "pid": 0, "startup_s": 0.01, "tensorflow": "x"}
                             for i in range(self.n)]

    def run(self, jobs, on_done, trial_timeout=None):
        for i, job in enumerate(jobs):
            self.sent.append(dict(job))
            if job["config"]["kind"] == "ok":
                reply = TrialReply(kind="result", wall_s=0.01, cpu_s=0.01, samples=100.0, quality={"score": 1.0})
            else:
                reply = TrialReply.failure("exception", "ValueError: boom", wall_s=0.01)
            on_done(job, reply.stamped(i % self.n, 0.01))

    def close(self):
        self.closed = True

    @property
    def pids(self):
        return []


class Sweep:
    """A Recorder that keeps what it is told."""

    def __init__(self, on_progress=None):
        self.decisions, self.written, self.facts = [], [], []
        self.on_progress = on_progress

    def decide(self, record):
        self.decisions.append(dict(record))

    def progress(self, key, run):
        self.written.append((key, run))
        if self.on_progress:
            self.on_progress(run)

    def workers_ready(self, facts):
        self.facts.append(list(facts))

    def finished_runs(self):
        return []


@pytest.fixture(autouse=True)
def _fresh():
    Pool.instances, Pool.fail_start = [], False


def _setup(plan="ok,raise,ok", on_event=None) -> SweepSetup:
    workload = xpubench_testload.FaultyWorkload()
    return SweepSetup(
        workload=workload, size="quick", options={"plan": plan}, configs=tuple(workload.trials("quick", {"plan": plan})),
        strategies=(STRATEGY,), trial_timeout=None, sample_interval=0.05, engine="local", pool_class=Pool,
        engine_options={}, force=False, memory_guard=False, history=(), on_event=on_event or (lambda kind, **i: None),
    )


def test_every_trial_is_recorded_and_written_before_the_next_and_jobs_stay_as_sent():
    sweep = Sweep()
    run = StrategyRun(_setup(), STRATEGY, NOTHING_KEPT, sweep).run()
    assert run.status == "complete" and [t.id for t in run.trials] == ["t0-ok", "t1-raise", "t2-ok"]
    assert run.trials[1].error.kind == "exception" and run.summary["failures"] == {"exception": 1}
    assert [len(r.trials) for _, r in sweep.written] == [1, 2, 3]
    assert all(r.status == "running" for _, r in sweep.written)
    assert {k for k, _ in sweep.written} == {strategy_key("xpubench_testload", "quick", STRATEGY)}
    assert all(set(job) == JOB_KEYS for job in Pool.instances[-1].sent)  # no bookkeeping written into a job
    assert all(t.start_s >= 0.0 for t in run.trials) and [t.worker for t in run.trials] == [0, 1, 0]
    assert sweep.facts and Pool.instances[-1].closed
    assert run.summary["compute_offset_s"] >= 0.0 and run.summary["sampler_samples"] >= 1


def test_workers_that_cannot_start_make_startup_records():
    Pool.fail_start = True
    run = StrategyRun(_setup(), STRATEGY, NOTHING_KEPT, Sweep()).run()
    assert run.status == "failed" and {t.error.kind for t in run.trials} == {"startup"}
    assert "no worker could start" in run.notes[0] and Pool.instances[-1].closed


def test_ctrl_c_ends_the_pool_and_hands_the_run_back():
    def stop(run):
        raise KeyboardInterrupt

    with pytest.raises(StrategyInterrupted) as info:
        StrategyRun(_setup(), STRATEGY, NOTHING_KEPT, Sweep(on_progress=stop)).run()
    run = info.value.run
    assert run.status == "interrupted" and [t.id for t in run.trials] == ["t0-ok"]
    assert "interrupted: 2 of 3 trials not finished" in run.notes and Pool.instances[-1].closed


def test_an_unavailable_device_is_skipped(monkeypatch):
    class Nowhere:
        def availability(self, backend="tensorflow"):
            return "no such device here"

    monkeypatch.setattr(strategy_run, "get_device", lambda spec: Nowhere())
    events = []
    run = StrategyRun(_setup(on_event=lambda kind, **i: events.append(kind)), STRATEGY, NOTHING_KEPT, Sweep()).run()
    assert run.status == "skipped" and run.skipped == "no such device here" and not Pool.instances
    assert events == ["strategy_skipped"]


def test_a_resumed_run_sends_only_what_is_left_and_joins_the_earlier_part():
    first = StrategyRun(_setup("ok,ok,ok"), STRATEGY, NOTHING_KEPT, Sweep()).run()
    kept = {t.id: t for t in first.trials[:2]}
    old = RunRecord(**{**first.__dict__, "trials": tuple(kept.values())})
    decision = {"kind": "resume", "action": "rerun", "trials": []}
    sweep = Sweep()
    run = StrategyRun(_setup("ok,ok,ok"), STRATEGY, StrategyResume(old=old, kept=kept, decisions=(decision,)), sweep).run()
    assert [j["config"]["id"] for j in Pool.instances[-1].sent] == ["t2-ok"]
    assert Pool.instances[-1].n == 1  # never more workers than trials left
    assert run.trials[:2] == first.trials[:2] and run.summary["resumed_trials"] == 2
    assert sweep.decisions == [decision]
    assert len(run.workers) == len(old.workers) + 1
