"""Reliability: failed trials are data, Ctrl-C stops cleanly, resume, atomic writes, memory guard.

Real worker processes where the behaviour lives in processes (a trial that raises, a worker that
is SIGKILLed or exits, a trial over --trial-timeout, SIGINT to ``python -m bench run``, workers
that cannot start); an in-process fake engine where the behaviour lives in the runner (what is on
disk when, resume rules, memory decisions), so those tests take milliseconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

import xpubench_testload  # noqa: E402  (the test workload; workers import it by module path)

from bench.sweep import memguard  # noqa: E402

from bench.model import results  # noqa: E402
from bench.errors import ResultWriteError, UsageError, WorkerStartError  # noqa: E402
from bench.engines.local import WorkerPool  # noqa: E402
from bench.model.reply import TrialReply  # noqa: E402
from bench.sweep.sweep import Sweep, SweepInterrupted  # noqa: E402
from bench.model.strategy import make_strategies  # noqa: E402

WL = xpubench_testload.FaultyWorkload.name
GiB = 2**30


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("XPUBENCH_FAULT", memguard.ENV_AVAILABLE)}
    env.update(COLUMNS="250", TF_CPP_MIN_LOG_LEVEL="3", XPUBENCH_OFFLINE="1", **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(TESTS)])
    return env


def _python_m_bench(args: list[str]) -> list[str]:
    """``python -m bench ARGS`` with the test workload registered first (runpy is what -m uses).

    Ctrl-C is handled as in a terminal's foreground even when these tests run as a background
    job: a shell starts background jobs with SIGINT ignored, Python keeps an inherited SIG_IGN,
    and the SIGINT test then waited for an exit that never came.
    """
    code = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "import runpy, xpubench_testload; xpubench_testload.enable(); "
            "runpy.run_module('bench', run_name='__main__', alter_sys=True)")
    return [sys.executable, "-c", code, *args]


def _bench_with_testload(args: list[str], **env) -> subprocess.CompletedProcess:
    """``python -m bench ARGS`` in a fresh interpreter that has the test workload registered."""
    return subprocess.run(_python_m_bench(args), capture_output=True, text=True, env=_env(**env), timeout=300)


def _gone(pids) -> list[int]:
    """The pids of ``pids`` that still run as xpubench workers (should be none)."""
    alive = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            if p.status() != psutil.STATUS_ZOMBIE and "bench.engines.worker" in " ".join(p.cmdline()):
                alive.append(pid)
        except psutil.NoSuchProcess:
            continue
    return alive


@pytest.fixture(autouse=True)
def _testload_registered(monkeypatch):
    """The test workload is in the registry during these tests only."""
    from bench.model import workload

    monkeypatch.setitem(workload._REGISTRY, WL, xpubench_testload.FaultyWorkload)


def _only_file(d: Path) -> Path:
    files = sorted(d.glob("*.json"))
    assert len(files) == 1, files
    return files[0]


# ---------------------------------------------------------------- failures are data (real workers)


def test_failed_trials_are_records_and_run_exits_nonzero_after_writing(tmp_path):
    """raise / SIGKILL / exit status 3 (worker.py's XPUBENCH_FAULT hook) / over --trial-timeout."""
    out = tmp_path / "out"
    proc = _bench_with_testload(
        ["run", WL, "-p", "2", "--trial-timeout", "5", "--out", str(out), "-q", "--opt", "plan=ok,raise,kill,ok,hang,ok,ok"],
        XPUBENCH_FAULT="exit:t6-ok",
    )
    console = proc.stdout + proc.stderr
    assert proc.returncode == 1, console
    assert "Traceback" not in console
    doc = json.loads(_only_file(out).read_text())
    result = results.load(_only_file(out))
    assert doc["complete"] is True and result.complete
    (run,) = result.runs
    trials = {t.id: t for t in run.trials}
    assert set(trials) == {f"t{i}-{k}" for i, k in enumerate("ok,raise,kill,ok,hang,ok,ok".split(","))}

    raised = trials["t1-raise"].error
    assert raised.kind == "exception" and raised.message == "ValueError: boom from trial t1-raise"
    assert "ValueError" in raised.stderr_tail and raised.exit_code is None and raised.signal is None

    killed = trials["t2-kill"].error
    assert killed.kind in ("crash", "oom") and killed.signal == signal.SIGKILL and killed.exit_code is None
    assert "SIGKILL" in killed.message and "about to be killed" in killed.stderr_tail

    hung = trials["t4-hang"].error
    assert hung.kind == "timeout" and "5 s time limit" in hung.message and hung.signal == signal.SIGKILL
    assert 4.5 < trials["t4-hang"].wall_s < 30

    exited = trials["t6-ok"].error
    assert exited.kind == "crash" and exited.exit_code == 3 and exited.signal is None
    assert exited.message == "worker exited with status 3"

    ok = [t for t in run.trials if t.ok]
    assert sorted(t.id for t in ok) == ["t0-ok", "t3-ok", "t5-ok"]
    assert all(t.quality["score"] == int(t.id[1]) for t in ok)
    # the run summary counts failures, by kind
    assert run.summary["failed"] == 4 and run.summary["trials"] == 7
    assert run.summary["failures"] in (
        {"crash": 2, "exception": 1, "timeout": 1},
        {"crash": 1, "oom": 1, "exception": 1, "timeout": 1},  # if RAM happened to be >90 % full at the SIGKILL
    )
    # dead workers were replaced: more workers said hello than the pool size
    assert len([w for w in run.workers if "pid" in w]) >= 3
    assert _gone(w["pid"] for w in run.workers if "pid" in w) == []
    # nothing was measured yet, but 2 workers of a generous assumed size fit: no probe, and said so
    guard = next(d for d in result.decisions if d["kind"] == "memory_guard")
    assert guard["action"] == "ok" and guard["estimate_source"].startswith("assumed")
    assert "memory_probe" not in [d["kind"] for d in result.decisions]
    # what the user saw
    assert "trial t1-raise failed (exception): ValueError: boom from trial t1-raise" in console
    assert "trial t4-hang failed (timeout): trial over its 5 s time limit; worker killed" in console
    assert "worker exited with status 3" in console
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(run.summary["failures"].items()))
    assert f"4 of 7 trials failed ({kinds}); every trial, with its error, is in {_only_file(out)}" in console


def _dead_on_arrival_env(i: int) -> dict:
    # a worker whose interpreter cannot even start (no standard library)
    return {"PATH": os.environ.get("PATH", ""), "PYTHONHOME": "/nonexistent"}


def test_end_processes_waits_then_sigterm_then_sigkill_and_says_what_ended_each():
    from bench.engines.local import end_processes

    ignore = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(120)"
    plain = "import time; print('ready', flush=True); time.sleep(120)"
    quits = "print('ready', flush=True)"
    children = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
                for code in (quits, plain, ignore)]
    try:
        for child in children:
            assert child.stdout.readline().strip() == "ready"
        procs = [psutil.Process(c.pid) for c in children]
        how = end_processes(procs, wait=0.5, grace=1.0)
        assert how == {children[0].pid: "ended", children[1].pid: "SIGTERM", children[2].pid: "SIGKILL"}
        assert not any(psutil.pid_exists(c.pid) and psutil.Process(c.pid).status() != psutil.STATUS_ZOMBIE
                       for c in children)
    finally:
        for child in children:
            child.kill()
            child.wait()


def test_pool_raises_when_no_worker_can_start(tmp_path):
    pool = WorkerPool(2, env_for=_dead_on_arrival_env, log_dir=tmp_path)
    with pytest.raises(WorkerStartError, match=r"no worker could start \(worker exited with status 1\): .*No module named 'encodings'"):
        pool.start()
    pool.close()
    assert [f["failed_to_start"] for f in pool.worker_facts] == ["worker exited with status 1"] * 2


def test_replacements_that_cannot_start_end_the_run_instead_of_looping(tmp_path):
    """After a crash, replacement workers that die at start-up: the jobs left become 'startup' errors."""
    from bench.engines import childenv

    def env_for(i):
        return childenv.child_env(1, 1, {"CUDA_VISIBLE_DEVICES": ""}) if i == 0 else _dead_on_arrival_env(i)

    cfg = xpubench_testload.FaultyWorkload().trials("quick", {"plan": "kill,ok,ok"})
    jobs = [{"type": "trial", "workload": "xpubench_testload:FaultyWorkload", "size": "quick", "config": c,
             "seed": 1, "options": {}} for c in cfg]
    done = []
    with WorkerPool(1, env_for=env_for, log_dir=tmp_path) as pool:
        t0 = time.monotonic()
        pool.run(jobs, lambda job, reply: done.append((job["config"]["id"], reply)), trial_timeout=60)
    assert time.monotonic() - t0 < 60
    kinds = {i: r.error.kind for i, r in done}
    assert kinds == {"t0-kill": "crash", "t1-ok": "startup", "t2-ok": "startup"}
    assert "3 workers in a row failed to start" in done[1][1].error.message


# ---------------------------------------------------------------- SIGINT and resume (real `python -m bench run`)


def _signal_masks(pid: int) -> dict:
    """SigBlk / SigIgn / SigCgt of every thread of ``pid`` (Linux), for a failure message."""
    out = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out[task.name] = [line.strip() for line in (task / "status").read_text().splitlines()
                              if line.startswith(("Name", "SigBlk", "SigIgn", "SigCgt"))]
        except OSError:
            continue
    return out


def test_sigint_stops_cleanly_and_resume_runs_the_rest(tmp_path):
    out = tmp_path / "res"
    plan = "ok,ok,ok,ok,ok,ok"
    ids = [f"t{i}-ok" for i in range(6)]
    args = ["run", WL, "--opt", f"plan={plan}", "--out", str(out), "-q"]
    # t2 hangs (worker.py's fault hook) so the sweep is surely mid-trial when SIGINT arrives
    env = _env(XPUBENCH_FAULT="hang:t2-ok", PYTHONFAULTHANDLER="1")  # faulthandler: the stacks if it gets stuck
    proc = subprocess.Popen(_python_m_bench(args), cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 150
        worker_pids: list[int] = []
        while time.monotonic() < deadline and not worker_pids:
            time.sleep(0.2)
            assert proc.poll() is None, proc.communicate()
            for f in out.glob("*.json") if out.exists() else []:
                runs = json.loads(f.read_text())["runs"]  # always valid JSON, even mid-sweep
                if runs and len(runs[0]["trials"]) >= 2:
                    worker_pids = [w["pid"] for w in runs[0]["workers"] if "pid" in w]
        assert worker_pids, "the sweep did not finish two trials in time"
        time.sleep(0.5)  # in the hanging trial now
        proc.send_signal(signal.SIGINT)
        try:
            stdout, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # stuck: SIGABRT makes faulthandler print every thread's stack
            masks = _signal_masks(proc.pid)
            proc.send_signal(signal.SIGABRT)
            stdout, stderr = proc.communicate(timeout=30)
            pytest.fail(f"bench run did not end within 60 s of SIGINT; signal masks {masks}; SIGINT here "
                        f"{signal.getsignal(signal.SIGINT)}; its threads:\n{stderr[-6000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    path = _only_file(out)
    assert f"interrupted: 2 of 6 trials finished; they are in {path} (marked incomplete)" in stderr
    resume_line = next(line for line in stderr.splitlines() if line.startswith("resume with: "))
    assert resume_line == f"resume with: bench run {WL} --opt plan={plan} --out {out} -q --resume {path}"
    assert _gone(worker_pids) == []  # workers ended, no orphans
    interrupted = results.load(path)
    assert interrupted.complete is False
    (run,) = interrupted.runs
    assert run.status == "interrupted" and [t.id for t in run.trials] == ids[:2] and all(t.ok for t in run.trials)

    # resume exactly as told (and without the fault): the two finished trials are kept, four run
    cmd = resume_line[len("resume with: bench "):].split()
    proc2 = subprocess.run(_python_m_bench(cmd), cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc2.returncode == 0, proc2.stderr
    assert "resume: 2 of 6 trials of cpu × 1 proc already finished; running 4" in proc2.stdout
    assert _only_file(out) == path  # the same file, continued
    done = results.load(path)
    assert done.complete
    (run2,) = done.runs
    assert sorted(t.id for t in run2.trials) == ids and all(t.ok for t in run2.trials)
    before = {t.id: t for t in run.trials}
    assert [t for t in run2.trials if t.id in before] == list(run.trials)  # kept as measured, not run again
    assert run2.summary["resumed_trials"] == 2 and run2.summary["wall_s"] > run.summary["wall_s"]
    assert len(run2.workers) == 2  # the first segment's worker and the resumed one


# ---------------------------------------------------------------- the runner, with an in-process engine


class FakePool:
    """The engine interface, in-process: trial kinds from the test workload become replies."""

    instances: list["FakePool"] = []
    peak = GiB

    def __init__(self, n, env_for, device="cpu", log_dir=None, on_event=None, **kw):
        self.n, self.device, self.on_event = n, device, on_event
        self.worker_facts: list[dict] = []
        self.closed = False
        self.sent: list[str] = []
        FakePool.instances.append(self)

    def start(self):
        self.worker_facts = [{"index": i, "pid": 0, "startup_s": 0.01, "import_s": 0.01} for i in range(self.n)]

    def run(self, jobs, on_done, trial_timeout=None):
        for i, job in enumerate(jobs):
            self.sent.append(job["config"]["id"])
            kind = job["config"]["kind"]
            if kind == "ok":
                reply = {"type": "result", "wall_s": 0.01, "cpu_s": 0.01, "samples": 100.0,
                         "quality": {"score": 1.0}, "peak_rss_bytes": self.peak}
            elif kind == "raise":
                reply = {"type": "error", "kind": "exception", "message": "ValueError: boom", "stderr_tail": "tb"}
            else:
                reply = {"type": "error", "kind": "crash", "message": "worker killed by SIGKILL", "signal": 9}
            on_done(job, TrialReply.from_message({**reply, "worker": i % self.n}))

    def close(self):
        self.closed = True

    @property
    def pids(self):
        return []


@pytest.fixture
def fake_engine(monkeypatch):
    FakePool.instances = []
    FakePool.peak = GiB
    monkeypatch.setattr("bench.sweep.sweep.get_engine", lambda name: FakePool)
    monkeypatch.delenv(memguard.ENV_AVAILABLE, raising=False)
    return FakePool


def _sweep(tmp_path, plan="ok,ok,ok,ok", processes=(1,), **kw):
    return Sweep(WL, "quick", make_strategies(["cpu"], list(processes), 1), out_dir=tmp_path,
                 options={"plan": plan}, sample_interval=0.05, **kw)


def test_every_finished_trial_is_on_disk_before_the_next_is_sent(tmp_path, fake_engine):
    seen = []

    def on_event(kind, **info):
        if kind == "trial_done":
            doc = json.loads(sweep.path.read_text())
            on_disk = [t["id"] for t in doc["runs"][-1]["trials"]]
            seen.append((info["trial"].id, on_disk, list(FakePool.instances[-1].sent)))

    sweep = _sweep(tmp_path, "ok,raise,ok", on_event=on_event)
    sweep.run()
    for trial_id, on_disk, sent in seen:
        assert on_disk[-1] == trial_id and sent[-1] == trial_id  # written, and nothing newer sent yet
    assert [s[0] for s in seen] == ["t0-ok", "t1-raise", "t2-ok"]


def test_interrupt_writes_what_finished_and_resume_keeps_it(tmp_path, fake_engine):
    def interrupt_after_two(kind, **info):
        if kind == "trial_done" and info["trial"].id == "t1-ok":
            raise KeyboardInterrupt

    sweep = _sweep(tmp_path, on_event=interrupt_after_two)
    with pytest.raises(SweepInterrupted) as info:
        sweep.run()
    assert info.value.finished == 2 and info.value.total == 4
    first = results.load(sweep.path)
    assert first.complete is False and first.runs[0].status == "interrupted"
    assert [t.id for t in first.runs[0].trials] == ["t0-ok", "t1-ok"]
    assert all(p.closed for p in FakePool.instances)

    again = _sweep(tmp_path, resume_from=first, path=sweep.path)
    done = again.run()
    assert FakePool.instances[-1].sent == ["t2-ok", "t3-ok"]  # only the rest ran
    assert done.complete and [t.id for t in done.runs[0].trials] == ["t0-ok", "t1-ok", "t2-ok", "t3-ok"]
    assert done.runs[0].trials[:2] == first.runs[0].trials
    assert results.load(sweep.path) == done


@pytest.mark.parametrize("when", ["memory_guard", "strategy_start", "workers_ready"])
def test_interrupting_a_resume_before_its_first_new_trial_loses_nothing(tmp_path, fake_engine, when):
    def stop_at_two(kind, **info):
        if kind == "trial_done" and info["trial"].id == "t1-ok":
            raise KeyboardInterrupt

    first = _sweep(tmp_path, on_event=stop_at_two)
    with pytest.raises(SweepInterrupted):
        first.run()

    def stop_early(kind, **info):
        if kind == when:
            raise KeyboardInterrupt

    with pytest.raises(SweepInterrupted):
        _sweep(tmp_path, resume_from=results.load(first.path), path=first.path, on_event=stop_early).run()
    again = results.load(first.path)
    assert not again.complete
    assert [t.id for r in again.runs for t in r.trials] == ["t0-ok", "t1-ok"]


def test_resume_reruns_failed_trials_and_keeps_their_old_records(tmp_path, fake_engine):
    first = _sweep(tmp_path, "ok,raise,ok")
    first.run()
    FakePool.instances.clear()
    again = _sweep(tmp_path, "ok,raise,ok", resume_from=results.load(first.path), path=first.path)
    done = again.run()
    assert FakePool.instances[-1].sent == ["t1-raise"]
    rerun = [d for d in done.decisions if d.get("action") == "rerun"]
    assert rerun and rerun[0]["trials"][0]["id"] == "t1-raise"


def test_resume_after_a_workload_version_change_runs_everything_and_keeps_the_old_run(tmp_path, fake_engine, monkeypatch):
    first = _sweep(tmp_path)
    first.run()
    monkeypatch.setattr(xpubench_testload.FaultyWorkload, "version", 2)
    FakePool.instances.clear()
    done = _sweep(tmp_path, resume_from=results.load(first.path), path=first.path).run()
    assert FakePool.instances[-1].sent == ["t0-ok", "t1-ok", "t2-ok", "t3-ok"]
    assert done.runs[0].workload_version == 2
    old = [d for d in done.decisions if d.get("action") == "superseded"]
    assert old and old[0]["run"]["workload_version"] == 1 and len(old[0]["run"]["trials"]) == 4


def test_resume_keeps_runs_of_strategies_not_rerun(tmp_path, fake_engine):
    first = _sweep(tmp_path, processes=(1, 2))
    first.run()
    done = _sweep(tmp_path, processes=(2,), resume_from=results.load(first.path), path=first.path).run()
    assert sorted(r.strategy["processes"] for r in done.runs) == [1, 2]


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(options={"plan": "ok,ok,ok,ok", "sleep": "0.5"}), "was run with workload options plan=ok,ok,ok,ok; this command has plan=ok,ok,ok,ok, sleep=0.5"),
        (dict(workload="lorenz", options={}), "holds xpubench_testload quick results, not lorenz quick"),
        (dict(size="full"), "holds xpubench_testload quick results, not xpubench_testload full"),
        (dict(machine={"hostname": "elsewhere", "cpu": "other"}), "was measured on another machine (elsewhere, other)"),
    ],
)
def test_resume_refuses_a_file_that_does_not_match(tmp_path, fake_engine, change, message):
    first = _sweep(tmp_path)
    first.run()
    old = results.load(first.path)
    if "machine" in change:
        old = old.replace(machine={**old.machine, **change["machine"]})
    before = first.path.read_bytes()
    with pytest.raises(UsageError) as info:
        Sweep(change.get("workload", WL), change.get("size", "quick"), make_strategies(["cpu"], [1], 1),
              out_dir=tmp_path, options=change.get("options", {"plan": "ok,ok,ok,ok"}), resume_from=old, path=first.path)
    assert message in str(info.value)
    assert first.path.read_bytes() == before  # nothing touched
    if "machine" in change:  # --force resumes anyway
        Sweep(WL, "quick", make_strategies(["cpu"], [1], 1), out_dir=tmp_path, options={"plan": "ok,ok,ok,ok"},
              resume_from=old, path=first.path, force=True)


def test_workers_that_cannot_start_make_failed_trials_not_a_crash(tmp_path, fake_engine):
    class NoStart(FakePool):
        def start(self):
            raise WorkerStartError("no worker could start (worker exited with status 1): ImportError: no tensorflow")

    FakePool.instances.clear()
    sweep = _sweep(tmp_path, "ok,ok")
    sweep.pool_class = NoStart
    result = sweep.run()
    (run,) = result.runs
    assert run.status == "failed" and run.summary["failed"] == 2
    assert {t.error.kind for t in run.trials} == {"startup"}
    assert "no tensorflow" in run.trials[0].error.message


def test_write_failure_is_one_clear_error_and_the_file_keeps_the_last_good_copy(tmp_path, fake_engine, monkeypatch):
    calls = {"n": 0}
    real = results.save

    def flaky_save(result, path):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        return real(result, path)

    monkeypatch.setattr(results, "save", flaky_save)
    sweep = _sweep(tmp_path)
    with pytest.raises(ResultWriteError, match="cannot write result file .*No space left on device.*last complete write"):
        sweep.run()
    assert [t.id for t in results.load(sweep.path).runs[0].trials] == ["t0-ok"]
    assert FakePool.instances[-1].closed


# ---------------------------------------------------------------- atomic writes


def test_ctrl_c_in_the_middle_of_a_write_keeps_the_old_file(tmp_path, monkeypatch):
    p = tmp_path / "r.json"
    results.atomic_write_text(p, '{"old": true}')

    def interrupted_fsync(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted_fsync)
    with pytest.raises(KeyboardInterrupt):
        results.atomic_write_text(p, '{"new": true}' * 1000)
    assert p.read_text() == '{"old": true}'
    assert os.listdir(tmp_path) == ["r.json"]


def test_result_files_get_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        p = results.atomic_write_text(tmp_path / "r.json", "{}")
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
    p.chmod(0o640)
    results.atomic_write_text(p, "{}")
    assert p.stat().st_mode & 0o777 == 0o640  # a rewrite keeps the file's mode


# ---------------------------------------------------------------- memory guard


def test_decide_fits_lowers_refuses_and_force():
    mem = memguard.Memory(available=4 * GiB, total=8 * GiB, headroom=GiB)
    est = memguard.Estimate(GiB, "lorenz quick cpu×1p in results/x.json")
    assert memguard.decide(3, est, mem).action == "ok"
    low = memguard.decide(5, est, mem)
    assert (low.action, low.processes) == ("lowered", 3)
    assert "5 workers × 1.0 GiB peak (lorenz quick cpu×1p in results/x.json) = 5.0 GiB would not fit in 4.0 GiB available" in low.message
    assert "running 3 workers instead (--force runs 5)" in low.message
    ref = memguard.decide(2, memguard.Estimate(4 * GiB, "trial t0 run alone first"), mem)
    assert (ref.action, ref.processes) == ("refused", 0)
    assert ref.message == ("one worker needs about 4.0 GiB (trial t0 run alone first) but only 4.0 GiB is available "
                           "and 1.0 GiB of it is kept free; free some memory or use --force")
    assert memguard.decide(5, est, mem, force=True).action == "forced"
    assert memguard.decide(5, None, mem).action == "unmeasured"


def test_memory_size_override_is_validated():
    assert memguard.parse_bytes("1.5G") == int(1.5 * GiB) and memguard.parse_bytes("512MiB") == 512 * 2**20
    with pytest.raises(UsageError, match="bad memory size 'lots'"):
        memguard.memory_now({memguard.ENV_AVAILABLE: "lots"})


def test_guard_lowers_n_from_this_sweeps_first_run_and_records_it(tmp_path, fake_engine, monkeypatch):
    monkeypatch.setenv(memguard.ENV_AVAILABLE, "3G")  # headroom 512 MiB: two 1 GiB workers fit, not three
    events = []
    result = _sweep(tmp_path, processes=(1, 3), on_event=lambda kind, **i: events.append((kind, i))).run()
    assert [p.n for p in FakePool.instances] == [1, 2]
    run3 = result.runs[1]
    assert run3.strategy["processes"] == 2 and run3.strategy["requested_processes"] == 3
    d = [d for d in result.decisions if d["kind"] == "memory_guard"][-1]
    assert d["action"] == "lowered" and d["processes"] == 2 and d["requested_processes"] == 3
    assert d["peak_worker_bytes"] == GiB and d["estimate_source"] == f"{WL} quick cpu×1p earlier in this sweep"
    assert any(k == "memory_guard" and i["decision"].warn for k, i in events)


def test_guard_skips_a_lowered_count_already_in_the_sweep(tmp_path, fake_engine, monkeypatch):
    monkeypatch.setenv(memguard.ENV_AVAILABLE, "3G")
    result = _sweep(tmp_path, processes=(1, 2, 3)).run()
    assert [p.n for p in FakePool.instances] == [1, 2]
    assert result.runs[2].status == "skipped" and "memory guard" in result.runs[2].skipped


def test_guard_assumes_when_nothing_is_known_and_plenty_fits(tmp_path, fake_engine, monkeypatch):
    monkeypatch.setenv(memguard.ENV_AVAILABLE, "64G")
    result = _sweep(tmp_path, processes=(2,)).run()
    assert [p.n for p in FakePool.instances] == [2]  # no probe: 2 × 2 GiB fits in 64 GiB
    guard = next(d for d in result.decisions if d["kind"] == "memory_guard")
    assert guard["action"] == "ok" and guard["estimate_source"].startswith("assumed, nothing measured yet")
    assert not any(d["kind"] == "memory_probe" for d in result.decisions)


def test_guard_probes_one_trial_when_nothing_is_known(tmp_path, fake_engine, monkeypatch):
    monkeypatch.setenv(memguard.ENV_AVAILABLE, "3G")  # 2 workers × 2 GiB assumed would not fit
    result = _sweep(tmp_path, processes=(2,)).run()
    assert [p.n for p in FakePool.instances] == [1, 2]  # probe alone, then the real pool
    probe = next(d for d in result.decisions if d["kind"] == "memory_probe")
    assert probe["trial"] == "t0-ok" and probe["peak_worker_bytes"] == GiB
    guard = next(d for d in result.decisions if d["kind"] == "memory_guard")
    assert guard["action"] == "ok" and guard["estimate_source"] == "trial t0-ok run alone first"
    assert len(result.runs[0].trials) == 4  # the probe is not counted as a trial of the run


def _previous_result(path: Path, peak: int) -> None:
    from bench.measure.machine import fingerprint
    from bench.model.results import Result, RunRecord, TrialRecord

    run = RunRecord(workload=WL, size="quick", strategy={"device": "cpu", "processes": 1},
                    trials=(TrialRecord(id="t0-ok", config={"id": "t0-ok"}, peak_rss_bytes=peak),))
    results.save(Result(machine=fingerprint(), runs=(run,)), path)


def test_guard_refuses_before_anything_starts_and_force_overrides(tmp_path, fake_engine, monkeypatch):
    _previous_result(tmp_path / "earlier.json", 2 * GiB)
    monkeypatch.setenv(memguard.ENV_AVAILABLE, "2G")
    with pytest.raises(UsageError, match=r"memory guard: one worker needs about 2.0 GiB \(xpubench_testload quick cpu×1p in .*earlier.json\)"):
        _sweep(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["earlier.json"] and FakePool.instances == []
    result = _sweep(tmp_path, processes=(2,), force=True).run()
    d = next(d for d in result.decisions if d["kind"] == "memory_guard")
    assert d["action"] == "forced" and FakePool.instances[-1].n == 2


def test_cli_memory_refusal_is_one_line_exit_2_and_leaves_no_file(tmp_path, monkeypatch, capsys):
    from bench.cli import main

    out = tmp_path / "out"
    out.mkdir()
    _previous_result(out / "earlier.json", 3 * GiB)
    monkeypatch.setenv(memguard.ENV_AVAILABLE, "2G")
    code = main(["run", WL, "--out", str(out), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: memory guard: one worker needs about 3.0 GiB")
    assert sorted(p.name for p in out.iterdir()) == ["earlier.json"]
