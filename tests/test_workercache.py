"""bench.engines.workercache: workers reused across strategies and workloads, their start-up
recorded once, RSS restarts recorded, nothing left running afterwards. Real worker processes."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import psutil
import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

import xpubench_testload  # noqa: E402

from bench.engines.devices import get_device  # noqa: E402
from bench.engines.local import WorkerPool  # noqa: E402
from bench.engines.workercache import WorkerCache, cache_key  # noqa: E402
from bench.measure.sampler import Sampler  # noqa: E402
from bench.model import results, workload  # noqa: E402
from bench.model.strategy import Strategy, make_strategies  # noqa: E402
from bench.model.workload import get_workload, trial_seed  # noqa: E402
from bench.sweep.strategy_run import worker_env  # noqa: E402

ONE = Strategy(device="cpu", processes=1, threads_per_process=1, inter_op_threads=1)
TWO = dataclasses.replace(ONE, processes=2)
TESTLOAD = "xpubench_testload:FaultyWorkload"


def env_for(strategy: Strategy):
    device = get_device(strategy.device)
    return lambda i: worker_env(strategy, device, i, strategy.processes)


def lorenz_jobs(n: int) -> list[dict]:
    configs = get_workload("lorenz").trials("quick", {"epochs": "1"})[:n]
    return [{"type": "trial", "workload": "workloads.lorenz:LorenzWorkload", "size": "quick", "config": c,
             "seed": trial_seed("lorenz", c["id"]), "options": {}} for c in configs]


def load_jobs(n: int) -> list[dict]:
    return [{"type": "trial", "workload": TESTLOAD, "size": "quick", "config": {"id": f"t{i}-ok", "kind": "ok", "index": i},
             "seed": i, "options": {"sleep": "0.01"}} for i in range(n)]


def run(pool: WorkerPool, jobs: list[dict]) -> dict:
    got: dict = {}
    pool.run(jobs, lambda job, reply: got.setdefault(job["config"]["id"], reply))
    return got


def worker_processes() -> list[psutil.Process]:
    """This process's live worker children (``python -m bench.engines.worker``)."""
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if "bench.engines.worker" in " ".join(p.cmdline()) and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            continue
    return out


def gone(pids) -> bool:
    return not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)


def test_a_reused_worker_gives_a_fresh_workers_results_and_is_recorded_as_reused():
    t0, t1 = lorenz_jobs(2)
    with WorkerCache() as cache:
        first = WorkerPool(1, env_for(ONE), cache=cache)
        first.start()
        fresh = run(first, [t0, t1])  # t0: the worker's first trial; t1: its second
        first.close()
        (pid,) = cache.idle_pids
        (fact,) = first.worker_facts
        assert fact["reused"] is False and fact["startup_s"] > fact["import_s"] > 0 and fact["pid"] == pid

        # an idle worker held by the cache is not in a pool's figures
        assert worker_processes() and [p.pid for p in worker_processes()] == [pid]
        alone = Sampler(interval=0.05, pids=lambda: [], energy=False, gpu=False)
        tree = Sampler(interval=0.05, energy=False, gpu=False)
        for s in (alone, tree):
            s.start()
            time.sleep(0.06)
            s.stop()
        assert {s["processes"] for s in alone.samples} == {1}  # this process only
        assert max(s["processes"] for s in tree.samples) >= 2  # the whole tree: the idle worker too
        assert max(s["tree_rss_bytes"] for s in tree.samples) > max(s["tree_rss_bytes"] for s in alone.samples) + 100 * 2**20

        second = WorkerPool(2, env_for(TWO), cache=cache)  # same per-worker environment: takes it, starts one more
        second.start()
        assert cache_key(env_for(ONE)(0), "cpu") == cache_key(env_for(TWO)(1), "cpu")
        reused, started = sorted(second.worker_facts, key=lambda f: f["index"])
        assert reused["pid"] == pid and reused["reused"] is True and reused["trials_before"] == 2
        assert "startup_s" not in reused  # its start-up is recorded once, by the run that paid it
        assert started["reused"] is False and started["startup_s"] > 0 and started["pid"] != pid
        again = run(second, [t0, t1])  # slot 0 (the reused worker, idle first) gets t0
        assert again[t0["config"]["id"]].worker == 0 and again[t1["config"]["id"]].worker == 1
        for job in (t0, t1):  # same seed, same trial: the same figures on a reused and on a fresh worker
            key = job["config"]["id"]
            assert fresh[key].ok and again[key].ok
            assert again[key].quality == fresh[key].quality
        second.close()

        third = WorkerPool(1, env_for(ONE), cache=cache)  # strategy A again (A, B, A): nothing new starts
        third.start()
        assert third.worker_facts[0]["reused"] is True and cache.started == 2
        third.close()
        pids = [f["pid"] for f in second.worker_facts]
        assert sorted(cache.idle_pids) == sorted(pids)
    assert gone(pids) and not worker_processes()


def test_a_worker_over_the_rss_limit_is_restarted_and_the_restart_recorded():
    events = []
    with WorkerCache(max_rss_bytes=1) as cache:  # every trial leaves a worker above one byte
        pool = WorkerPool(1, env_for(ONE), cache=cache, on_event=lambda kind, **i: events.append((kind, i)))
        pool.start()
        replies = run(pool, load_jobs(2))
        pool.close()
        assert cache.idle_pids == []  # a worker over the limit is not kept either
    assert all(r.ok for r in replies.values()) and pool.restarts == 2
    facts = pool.worker_facts
    assert len(facts) == 2 and facts[0]["pid"] != facts[1]["pid"]  # the first was replaced by a new process
    assert all(f["startup_s"] > 0 and f["reused"] is False for f in facts)  # the replacement's start-up recorded
    restarts = [f["restarted"] for f in facts]
    assert [r["after_trial"] for r in restarts] == ["t0-ok", "t1-ok"]
    assert all(r["rss_bytes"] > 100 * 2**20 and r["limit_bytes"] == 1 for r in restarts)
    assert [k for k, _ in events].count("worker_restart") == 2
    assert gone(f["pid"] for f in facts)


def test_no_limit_keeps_the_worker_and_a_new_run_gets_no_workload_state():
    with WorkerCache(max_rss_bytes=0) as cache:
        pool = WorkerPool(1, env_for(ONE), cache=cache)
        pool.start()
        first = run(pool, load_jobs(2))
        pool.close()
        assert pool.restarts == 0 and len(cache.idle_pids) == 1 and "restarted" not in pool.worker_facts[0]
        again = WorkerPool(1, env_for(ONE), cache=cache)
        again.start()
        second = run(again, load_jobs(2))
        again.close()
    assert again.worker_facts[0]["reused"] is True and again.worker_facts[0]["pid"] == pool.worker_facts[0]["pid"]
    # within a run a worker keeps its workload's module state; a new run re-imports the workload
    assert [first[k].extra["run_in_this_import"] for k in ("t0-ok", "t1-ok")] == [1, 2]
    assert [second[k].extra["run_in_this_import"] for k in ("t0-ok", "t1-ok")] == [1, 2]


@pytest.fixture
def two_testloads(monkeypatch):
    monkeypatch.setitem(workload._REGISTRY, "xpubench_testload", xpubench_testload.FaultyWorkload)
    monkeypatch.setitem(workload._REGISTRY, "xpubench_testload_b", xpubench_testload.OtherFaultyWorkload)


def _starts(paths) -> tuple[int, int]:
    """(workers started, workers reused) in result files: the TensorFlow imports are the starts."""
    started = reused = 0
    for p in paths:
        for run in results.load(p).runs:
            started += sum(1 for w in run.workers if "startup_s" in w)
            reused += sum(1 for w in run.workers if w.get("reused"))
    return started, reused


def test_a_suite_of_two_workloads_starts_each_worker_environment_once(tmp_path, two_testloads, capsys):
    from bench.cli import main

    code = main(["suite", "--workloads", "xpubench_testload,xpubench_testload_b", "--processes", "1,2",
                 "--no-calibrate", "--opt", "plan=ok,ok,ok,ok", "--opt", "sleep=0.01", "--out", str(tmp_path), "-q"])
    assert code == 0
    paths = sorted(tmp_path.glob("xpubench_testload*.json"))
    assert len(paths) == 2
    started, reused = _starts(paths)
    # before: every (workload, strategy) started its own pool: 2 x (1 + 2) = 6 imports. Now one
    # 1-process worker (2 threads) and two 2-process workers (1 thread): 3 started, 3 reused
    assert (started, reused) == (3, 3)
    for p in paths:
        for run in results.load(p).runs:
            n = run.strategy["processes"]
            assert len(run.workers) == n and all(t.ok for t in run.trials)
            assert all(("startup_s" in w) != bool(w.get("reused")) for w in run.workers)
            facts_started = [w for w in run.workers if "startup_s" in w]
            assert (run.summary.startup_s or {}).get("n", 0) == len(facts_started)
    assert not worker_processes()  # the suite ended every worker it kept


def test_no_worker_is_left_when_a_sweep_fails(tmp_path, two_testloads):
    from bench.sweep.sweep import Sweep

    def explode(kind, **info):
        if kind == "trial_done":
            raise RuntimeError("a progress display that breaks")

    sweep = Sweep("xpubench_testload", "quick", make_strategies(["cpu"], [1], 1), out_dir=tmp_path,
                  options={"plan": "ok,ok", "sleep": "0.01"}, on_event=explode)
    with pytest.raises(RuntimeError, match="breaks"):
        sweep.run()
    assert not worker_processes() and sweep.workers is None


@pytest.mark.parametrize("text", ["abc", "-5", "nan", "inf"])
def test_a_bad_worker_max_rss_is_one_line_naming_it(text):
    from bench.errors import UsageError
    from bench.request import SweepRequest

    with pytest.raises(UsageError, match=f"bad --worker-max-rss '{text}' .*0 for no limit") as info:
        SweepRequest.parse(worker_max_rss=text, names={"worker_max_rss": "--worker-max-rss"})
    assert info.value.field == "worker_max_rss"


def test_worker_max_rss_reaches_the_sweeps_cache():
    from bench.request import SweepRequest

    assert SweepRequest.parse(worker_max_rss="512").sweep_kwargs()["worker_max_rss"] == 512 * 2**20
    assert SweepRequest.parse(worker_max_rss=0).sweep_kwargs()["worker_max_rss"] == 0  # no limit
    assert SweepRequest.parse().sweep_kwargs()["worker_max_rss"] is None  # the default (4096 MB)


def test_a_worker_that_dies_while_idle_is_not_lent():
    import os
    import signal

    with WorkerCache() as cache:
        pool = WorkerPool(1, env_for(ONE), cache=cache)
        pool.start()
        pool.close()
        (pid,) = cache.idle_pids
        os.kill(pid, signal.SIGKILL)
        try:
            psutil.Process(pid).wait(timeout=10)
        except psutil.NoSuchProcess:  # already reaped
            pass
        assert cache.take(env_for(ONE)(0), "cpu") is None  # dropped, not handed to a run as a trial crash
        assert cache.failed and cache.failed[-1]["reason"] == "worker ended while idle" and cache.idle_pids == []


def test_forget_drops_a_file_spec_workload_module_too(tmp_path, monkeypatch):
    """A workload given as FILE.py:Class is imported under its own module name
    (bench.model.workload_spec.module_name); a worker going back to the cache drops that module as
    it drops a package's, so a later run re-imports the file."""
    from bench.engines.worker import TrialRunner
    from bench.model.workload import workload_class
    from bench.model.workload_spec import module_name

    source = tmp_path / "mine.py"
    source.write_text(
        "from bench.model.workload import TrialOutput, Workload\n"
        "class Mine(Workload):\n"
        "    name = 'mine'\n"
        "    def trials(self, size, options=None):\n"
        "        return [{'id': 't0'}]\n"
        "    def run_trial(self, config, ctx):\n"
        "        return TrialOutput(quality={'q': 1.0}, samples=1.0)\n"
    )
    ref = f"{source}:Mine"
    runner = TrialRunner("cpu", get_device("cpu"), backend=object())
    monkeypatch.setattr(runner, "reset", lambda: None)  # no Keras session in this process
    before = runner.workloads[ref] = workload_class(ref)
    runner.workloads[TESTLOAD] = workload_class(TESTLOAD)
    name = module_name(source)
    assert name in sys.modules and "xpubench_testload" in sys.modules and workload_class(ref) is before
    runner.forget()
    assert name not in sys.modules and "xpubench_testload" not in sys.modules and runner.workloads == {}
    # the next load imports the file afresh: a new class, not the one remembered before
    assert workload_class(ref) is not before and workload_class(TESTLOAD).__module__ == "xpubench_testload"


LEAK_PROBE = r"""
import gc, json, sys
from bench.engines import worker
from workloads.lorenz import LorenzWorkload

runner, _ = worker.prepare("cpu")
if sys.argv[1] == "off":
    runner.backend.release_trial_state = lambda: 0
from tensorflow.python.framework import ops

clean = set(ops._gradient_registry._registry)
objects, dropped = [], []
for config in LorenzWorkload().trials("quick", {"epochs": "1"})[:3]:
    runner.run({"type": "trial", "workload": "workloads.lorenz:LorenzWorkload", "size": "quick",
                "config": config, "seed": 0, "options": {}})
    runner.reset()
    objects.append(len(gc.get_objects()))
    dropped.append(sum(1 for k in ops._gradient_registry._registry if k not in clean))
print(json.dumps({"objects": objects, "left": dropped}))
"""


@pytest.mark.parametrize("release", ["on", "off"])
def test_a_worker_keeps_no_traced_train_step_of_an_earlier_trial(release):
    """TensorFlow registers a gradient per traced Keras train step and never drops it (its closure
    holds the whole graph); between trials the worker drops them, so its Python heap stays flat."""
    import json
    import subprocess

    env = {**worker_env(ONE, get_device("cpu"), 0, 1), "XPUBENCH_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", LEAK_PROBE, release], capture_output=True, text=True, env=env,
                          cwd=Path(__file__).resolve().parents[1], timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    growth = got["objects"][-1] - got["objects"][0]
    if release == "on":
        assert got["left"] == [0, 0, 0]
        assert growth < 1_000, got
    else:  # the leak the release mends, measured the same way
        assert got["left"][-1] > got["left"][0] > 0
        assert growth > 10_000, got


def test_a_worker_given_back_is_lent_only_after_it_has_forgotten_its_run():
    """Its clean-up (modules dropped, garbage collected) must not run while the next pool is timed."""
    (job,) = lorenz_jobs(1)
    with WorkerCache() as cache:
        first = WorkerPool(1, env_for(ONE), cache=cache)
        first.start()
        assert run(first, [job])[job["config"]["id"]].ok
        first.close()
        (held,) = cache.held
        assert held.forgetting  # forget sent, its answer not read yet
        cache.settle()
        assert not held.forgetting and held.buffer == b"" and cache.idle_pids == [held.proc.pid]
        cpu = psutil.Process(held.proc.pid).cpu_times()
        time.sleep(0.3)
        after = psutil.Process(held.proc.pid).cpu_times()
        assert after.user + after.system - cpu.user - cpu.system < 0.05  # idle once settled
        second = WorkerPool(1, env_for(ONE), cache=cache)
        second.start()
        again = run(second, [job])[job["config"]["id"]]
        second.close()
        assert again.ok and second.worker_facts[0]["reused"] is True
