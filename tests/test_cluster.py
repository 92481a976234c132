"""The Ray engine (bench.engines.ray): address/env helpers, and a real local Ray (2 CPUs, loopback).

One Ray runtime is started for the whole module (Ray takes ~10 s to start) and shut down at the
end. On it: a quick Lorenz sweep at 1 and 2 workers in which one trial raises, resumed
afterwards; a worker SIGKILLed mid-trial and a trial over its time limit; the results compared
with a local worker's. Its shutdown must leave no process and no directory of it behind, and
(before it starts) a ``bench run --cluster ray`` SIGKILLed mid-sweep must not either.
"""

from __future__ import annotations

import glob
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.engines import childenv

from bench.engines import ray as cluster
from bench.errors import UsageError
from bench.model.reply import Hello

ROOT = Path(__file__).resolve().parent.parent
EPOCHS = {"epochs": "1"}
FAILED = "depth-5-8-8-8-5-e1"  # the trial that raises in the sweep
HUNG = "depth-5-8-5-e1"  # the trial that hangs past its time limit
KILLED = "width-5-2-2-5-2-2-5-e1"  # the trial whose worker is SIGKILLed


# ---------------------------------------------------------------- pure helpers (no Ray)


@pytest.mark.parametrize("address", ["auto", "ray://10.0.0.5:10001", "head.example:6379", "127.0.0.1:6379", " auto "])
def test_good_addresses_pass(address):
    assert cluster.check_address(address) == address.strip()


@pytest.mark.parametrize("address", ["", "ray://", "ray://host", "host:0", "host:70000", "http://h:1", "a b:1"])
def test_bad_addresses_name_the_value_and_the_forms(address):
    with pytest.raises(UsageError) as err:
        cluster.check_address(address)
    assert repr(address) in str(err.value)
    assert "ray://HOST:PORT" in str(err.value)


def test_no_address_means_a_local_ray():
    assert cluster.check_address(None) is None
    assert cluster.RayPool(1, lambda i: {}, address=None).local


def test_bad_address_is_refused_before_anything_starts():
    with pytest.raises(UsageError):
        cluster.RayPool(1, lambda i: {}, address="nowhere")


def test_actor_env_keeps_threads_and_devices_not_the_driver_machine():
    env = childenv.child_env(3, 1, {"CUDA_VISIBLE_DEVICES": ""}, parent={"PATH": "/bin", "HOME": "/root", "XPUBENCH_FAULT": "raise:x"})
    remote = cluster.ray_env_vars(env, local=False)
    assert remote["TF_NUM_INTRAOP_THREADS"] == "3" and remote["OMP_NUM_THREADS"] == "3"
    assert remote["CUDA_VISIBLE_DEVICES"] == "" and remote["XPUBENCH_FAULT"] == "raise:x"
    assert "PATH" not in remote and "HOME" not in remote and "PYTHONPATH" not in remote
    local = cluster.ray_env_vars(env, local=True)
    assert local["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT)
    gpu = cluster.ray_env_vars({**env, "CUDA_VISIBLE_DEVICES": "1"}, local=True, ray_assigns_gpus=True)
    assert "CUDA_VISIBLE_DEVICES" not in gpu


def test_cpus_and_gpus_an_actor_reserves():
    assert cluster.threads_of(childenv.thread_env(4, 2)) == 4
    assert cluster.threads_of({}) == 1
    assert cluster.threads_of({"TF_NUM_INTRAOP_THREADS": "zero", "OMP_NUM_THREADS": "2"}) == 2
    assert cluster.gpus_of({"CUDA_VISIBLE_DEVICES": "0,1"}, "cpu") == 0
    assert cluster.gpus_of({"CUDA_VISIBLE_DEVICES": "0,1"}, "mirrored") == 2
    assert cluster.gpus_of({"CUDA_VISIBLE_DEVICES": "3"}, "gpu:0") == 1
    assert cluster.gpus_of({"CUDA_VISIBLE_DEVICES": ""}, "mirrored:cpu2") == 0


def test_actor_death_messages():
    class ActorDiedError(Exception):
        pass

    kind, message, code = cluster.describe_actor_death(
        ActorDiedError("Worker exit type: SYSTEM_ERROR Worker exit detail: Worker unexpectedly exits with a connection error code 2.")
    )
    assert kind == "crash" and "SIGKILL" in message and code is None

    class OutOfMemoryError(Exception):
        pass

    assert cluster.describe_actor_death(OutOfMemoryError("Task was killed due to the node running low on memory"))[0] == "oom"


def test_importing_the_engine_imports_neither_ray_nor_tensorflow():
    code = (
        "import sys, bench, bench.engines.ray, bench.engines.registry, bench.measure.calibrate;"
        "bad = [m for m in ('ray', 'tensorflow') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_without_ray_the_engine_says_how_to_install(monkeypatch):
    import importlib.util

    from bench.engines import registry as engines

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(UsageError) as err:
        engines.get_engine("ray")
    assert "pip install 'xpubench[cluster]'" in str(err.value)


def test_a_failed_cluster_check_is_not_taken_for_a_real_cluster():
    """Without an address, a node check that fails (here: Ray not started, so Ray's state API
    raises) keeps "this machine" and says why; it used to mean "a real cluster"."""
    pytest.importorskip("ray")
    if cluster.ray_is_up():
        pytest.skip("needs a process not connected to Ray")
    local, why = cluster.RayPool(1, lambda i: {})._single_node_here()
    assert local is True
    assert why.startswith("this machine (not detected: RaySystemError: ") and "ray.init" in why


_IGNORES_SIGTERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(120)"


def test_close_ends_a_worker_ray_could_not_kill_and_records_one_it_cannot_check():
    """A worker on this machine that ray.kill could not end (Ray is gone) is ended by close():
    SIGTERM, then SIGKILL (it ignores SIGTERM), and checked; a worker on another node is
    recorded as not ended, with the reason, and reported as an event."""
    import psutil

    pytest.importorskip("ray")
    if cluster.ray_is_up():
        pytest.skip("needs a process not connected to Ray")
    child = subprocess.Popen([sys.executable, "-c", _IGNORES_SIGTERM], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        events = []
        pool = cluster.RayPool(2, lambda i: {}, on_event=lambda kind, **info: events.append((kind, info)))
        pool.end_wait_s, pool.end_grace_s = 0.2, 1.0
        here = {"index": 0, "pid": child.pid, "node": socket.gethostname()}
        there = {"index": 1, "pid": child.pid, "node": "another-node"}
        for hello in (here, there):
            record = Hello(pid=hello["pid"], node=hello["node"], index=hello["index"])
            slot = cluster._Slot(index=hello["index"], actor=None, env={}, started=0.0, hello=record,
                                 proc=cluster._local_process(record))
            pool.slots.append(slot)
            pool.worker_facts.append(hello)
        assert pool.slots[0].proc is not None and pool.slots[1].proc is None
        for slot in pool.slots:
            pool._kill(slot)  # as the dispatcher does on a timeout: ray.kill cannot work, Ray is not running
        assert here["kill_error"] == there["kill_error"] == "ray.kill failed: RaySystemError: System error: Ray is not running any more"
        assert "not_ended" not in here  # on this machine: close() ends it
        assert there["not_ended"] == there["kill_error"]
        assert events == [("worker_not_ended", {"worker": 1, "reason": there["kill_error"]})]
        t0 = time.monotonic()
        pool.close()
        assert here["ended_by"] == "SIGKILL" and "not_ended" not in here
        assert not _still_running([psutil.Process(child.pid)] if psutil.pid_exists(child.pid) else [])
        assert time.monotonic() - t0 < 10
        assert not cluster.ray_is_up()  # ending workers never starts a Ray
    finally:
        child.kill()
        child.wait()


# ---------------------------------------------------------------- clean-up of a local Ray

RAY_SESSIONS = "/tmp/ray/session_*"  # where Ray puts sessions by default (never used by xpubench)


def _own_dirs() -> set[str]:
    return set(glob.glob(os.path.join(cluster.temp_base(), cluster.TEMP_PREFIX + "*")))


def _still_running(procs) -> list[str]:
    """The processes of ``procs`` (psutil.Process) still running (not zombies, not pid-reused)."""
    import psutil

    alive = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{p.pid} {p.name()}")
        except psutil.NoSuchProcess:
            continue
    return alive


def _wait_gone(procs, within: float) -> list[str]:
    deadline = time.monotonic() + within
    while (alive := _still_running(procs)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


@pytest.mark.slow
def test_sigkilled_ray_run_leaves_no_ray_process_or_directory(tmp_path):
    """SIGKILL of ``bench run --cluster ray`` mid-sweep: every Ray process of it (the dashboard
    and runtime-env agents included) ends within seconds, and its directory is removed."""
    pytest.importorskip("ray")
    import psutil

    dirs, sessions = _own_dirs(), set(glob.glob(RAY_SESSIONS))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "XPUBENCH_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    log = (tmp_path / "stderr").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", "lorenz", "--cluster", "ray", "--opt", "epochs=1",
                             "-q", "--out", str(tmp_path / "out")], env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        parent = psutil.Process(proc.pid)
        deadline = time.monotonic() + 180
        tree: list = []
        while time.monotonic() < deadline and proc.poll() is None:
            tree = parent.children(recursive=True)
            names = []
            for p in tree:
                try:
                    names.append(p.name() + " " + " ".join(p.cmdline()))
                except psutil.Error:
                    pass
            if any("TrialActor" in n for n in names):  # a worker is running a trial
                break
            time.sleep(0.2)
        assert proc.poll() is None, (tmp_path / "stderr").read_text()[-2000:]
        tree = parent.children(recursive=True)
        kinds = " ".join(p.name() for p in tree)
        assert "DashboardAgent" in kinds and "RuntimeEnvAgent" in kinds and "raylet" in kinds, kinds
        new_dirs = _own_dirs() - dirs
        assert len(new_dirs) == 1, new_dirs  # the run's session lives in a directory of its own
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        left = _wait_gone(tree, within=10)
        assert not left, f"Ray processes alive 10 s after the SIGKILL: {left}"
        assert not any(os.path.exists(d) for d in new_dirs)
        assert set(glob.glob(RAY_SESSIONS)) <= sessions
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()


# ---------------------------------------------------------------- a real local Ray


@pytest.fixture(scope="module")
def local_ray():
    """One private local Ray (2 CPUs, loopback, no dashboard) for every test below.

    At the end, its shutdown leaves none of its processes and no directory behind.
    """
    pytest.importorskip("ray")
    before = os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    sessions = set(glob.glob(RAY_SESSIONS))
    with pytest.MonkeyPatch.context() as mp:
        # a private Ray is started even when the environment names another cluster
        mp.setenv("RAY_ADDRESS", "127.0.0.1:9")
        cluster.start_local_ray(num_cpus=2)
    temp_dir = cluster.SESSION.temp_dir
    yield
    import psutil

    from bench.engines import reaper

    watchdog = cluster.SESSION.reaper
    ours = reaper.ray_processes(cluster.SESSION.token, exclude={watchdog.pid})
    tree = [psutil.Process(watchdog.pid)] + [psutil.Process(pid) for pid, _ in ours]  # Ray's processes, workers
    assert len(tree) >= 6
    cluster.shutdown()
    assert not cluster.ray_is_up()
    assert os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == before  # loopback-only mode undone
    left = _wait_gone(tree, within=10)
    assert not left, f"processes alive 10 s after shutdown: {left}"
    assert not os.path.exists(temp_dir) and not cluster.SESSION.owned
    assert set(glob.glob(RAY_SESSIONS)) <= sessions  # nothing under /tmp/ray either


@pytest.mark.slow
def test_local_ray_keeps_its_session_in_its_own_directory_and_is_watched(local_ray):
    import ray

    from bench.engines import reaper

    temp_dir = cluster.SESSION.temp_dir
    assert os.path.basename(temp_dir).startswith(cluster.TEMP_PREFIX)
    session = ray._private.worker._global_node.get_session_dir_path()
    assert session.startswith(temp_dir + os.sep)
    watchdog = cluster.SESSION.reaper
    assert watchdog.poll() is None  # waiting on the pipe only this process holds
    watched = {pid for pid, _ in reaper.ray_processes(cluster.SESSION.token, exclude={watchdog.pid})}
    import psutil

    names = {psutil.Process(pid).name() for pid in watched}
    assert {"gcs_server", "raylet", "ray::DashboardAgent", "ray::RuntimeEnvAgent"} <= names, names
    assert os.getpid() not in watched and reaper.TOKEN_VAR not in os.environ  # only Ray's processes carry it
    # ray.init installs a SIGTERM handler that exits at once; the one that was there is back
    assert signal.getsignal(signal.SIGTERM) is not None
    assert getattr(signal.getsignal(signal.SIGTERM), "__module__", "") != "ray._private.worker"


def _sweep(out: Path, **kwargs):
    from bench.sweep.sweep import Sweep
    from bench.model.strategy import make_strategies

    sweep = Sweep(
        "lorenz", "quick", make_strategies(["cpu"], [1, 2]), out_dir=out, label="ray-test",
        options=EPOCHS, sample_interval=0.5, engine="ray", **kwargs,
    )
    return sweep.run(), sweep.path


@pytest.fixture(scope="module")
def ray_sweep(local_ray, tmp_path_factory):
    """(Result, path) of a quick Lorenz sweep on Ray at 1 and 2 workers; one trial raises."""
    out = tmp_path_factory.mktemp("ray-sweep")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XPUBENCH_FAULT", f"raise:{FAILED}")
        return _sweep(out)


@pytest.mark.slow
def test_local_ray_listens_on_loopback_only_and_has_no_dashboard(local_ray):
    import psutil
    import ray

    listening = []
    for proc in psutil.Process().children(recursive=True):
        try:
            conns = proc.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        listening += [(proc.name(), c.laddr.ip) for c in conns if c.status == psutil.CONN_LISTEN]
    assert listening, "Ray's servers should be children of this process"
    exposed = [(name, ip) for name, ip in listening if ip not in ("127.0.0.1", "::ffff:127.0.0.1", "::1")]
    assert not exposed
    # Ray always runs its API-server process; with include_dashboard=False it serves no UI and
    # loads only the usage-stats module, which RAY_USAGE_STATS_ENABLED=0 keeps silent.
    for proc in psutil.Process().children(recursive=True):
        cmd = " ".join(proc.cmdline())
        if "dashboard/dashboard.py" in cmd:
            assert "--disable-frontend" in cmd and "--modules-to-load=UsageStatsHead" in cmd
    assert os.environ["RAY_USAGE_STATS_ENABLED"] == "0"
    nodes = cluster.cluster_nodes()
    assert [(n["ip"], n["cpus"]) for n in nodes] == [("127.0.0.1", 2.0)]
    assert ray.is_initialized()


@pytest.mark.slow
def test_ray_sweep_results_behave_as_local(ray_sweep):
    from bench.model import results

    result, path = ray_sweep
    assert result.complete
    assert [r.strategy["processes"] for r in result.runs] == [1, 2]
    host = socket.gethostname()
    for run in result.runs:
        assert run.strategy["engine"] == "ray"
        threads = run.strategy["threads_per_process"]
        assert len(run.trials) == 4  # lorenz quick: 4 networks
        failed = [t for t in run.trials if not t.ok]
        assert [t.id for t in failed] == [FAILED]
        assert failed[0].error.kind == "exception"
        assert failed[0].error.message == f"RuntimeError: injected fault in trial {FAILED}"
        assert "_maybe_fault" in failed[0].error.stderr_tail
        assert run.summary["failed"] == 1
        for t in run.trials:
            if t.ok:
                assert t.extra["node"] == host and t.extra["node_ip"] == "127.0.0.1"
                assert 0 < t.quality["rmse"] < 100 and t.wall_s > 0 and t.samples == 900
        started = [w for w in run.workers if "startup_s" in w]
        # a trial that raises is data: its worker goes on; each set its threads before importing TF
        assert len(started) == run.strategy["processes"]
        for w in started:
            assert w["node"] == host and w["tensorflow_preimported"] is False
            assert w["thread_env"]["TF_NUM_INTRAOP_THREADS"] == str(threads)
            assert w["intra_op_threads"] == threads
            assert w["startup_s"] >= w["import_s"] > 0
        assert run.summary["wall_s"] > 0
    two = result.runs[1]
    assert two.summary["speedup"] == pytest.approx(result.runs[0].summary["wall_s"] / two.summary["wall_s"])
    assert two.summary["efficiency"] == pytest.approx(two.summary["speedup"] / 2)
    # same trial, same seed: same RMSE at 1 and 2 workers
    one_q = {t.id: t.quality["rmse"] for t in result.runs[0].trials if t.ok}
    two_q = {t.id: t.quality["rmse"] for t in two.trials if t.ok}
    assert one_q == pytest.approx(two_q, rel=1e-5)
    assert results.load(path).runs[1].trials[0].extra == two.trials[0].extra


@pytest.mark.slow
def test_ray_trials_give_what_a_local_worker_gives(ray_sweep):
    from bench.engines.local import WorkerPool
    from bench.model.workload import trial_seed

    result, _ = ray_sweep
    run = result.runs[0]
    ray_trials = [t for t in run.trials if t.ok][:2]
    jobs = [
        {"type": "trial", "workload": "workloads.lorenz:LorenzWorkload", "size": "quick", "config": t.config,
         "seed": trial_seed("lorenz", t.id), "options": EPOCHS}
        for t in ray_trials
    ]
    threads = run.strategy["threads_per_process"]
    replies = {}
    pool = WorkerPool(1, lambda i: childenv.child_env(threads, 1, {"CUDA_VISIBLE_DEVICES": ""}))
    try:
        pool.start()
        pool.run(jobs, lambda job, reply: replies.__setitem__(job["config"]["id"], reply))
    finally:
        pool.close()
    for t in ray_trials:
        assert replies[t.id].kind == "result"
        assert replies[t.id].quality["rmse"] == pytest.approx(t.quality["rmse"], rel=1e-5)
        assert replies[t.id].samples == t.samples


@pytest.mark.slow
def test_ray_sweep_resumes_only_the_failed_trials(ray_sweep, tmp_path):
    import shutil

    from bench.model import results

    first, path = ray_sweep
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    resumed, out_path = _sweep(tmp_path, resume_from=results.load(copy), path=copy)
    assert out_path == copy
    for before, after in zip(first.runs, resumed.runs):
        assert after.summary["failed"] == 0 and len(after.trials) == 4
        kept = {t.id: t.wall_s for t in before.trials if t.ok}
        again = {t.id: t.wall_s for t in after.trials}
        assert {k: again[k] for k in kept} == kept  # finished trials kept as they were
        assert set(again) - set(kept) == {FAILED}
        # only the one trial left to run, so one more worker started (listed after the first part's)
        started_before = [w for w in before.workers if "startup_s" in w]
        started_after = [w for w in after.workers if "startup_s" in w]
        assert started_after[: len(started_before)] == started_before
        assert len(started_after) == len(started_before) + 1
    assert results.load(copy).complete


@pytest.mark.slow
def test_killed_worker_and_trial_over_its_time_limit(local_ray):
    """Worker 0 hangs in its trial past the limit; worker 1 is SIGKILLed mid-trial and replaced."""
    from bench.model.workload import get_workload, trial_seed

    after = "width-5-16-16-16-16-16-5-e1"  # runs on the replacement of the killed worker
    configs = {c["id"]: c for c in get_workload("lorenz").trials("quick", EPOCHS)}
    jobs = [
        {"type": "trial", "workload": "workloads.lorenz:LorenzWorkload", "size": "quick", "config": configs[i],
         "seed": trial_seed("lorenz", i), "options": EPOCHS}
        for i in (HUNG, KILLED, after)
    ]
    faults = {0: f"hang:{HUNG}", 1: f"kill:{KILLED}"}  # jobs go to idle workers in index order

    def env_for(i):
        parent = {**os.environ, "XPUBENCH_FAULT": faults.get(i, "")}
        return childenv.child_env(1, 1, {"CUDA_VISIBLE_DEVICES": ""}, parent=parent)

    events, replies = [], {}
    pool = cluster.RayPool(2, env_for, on_event=lambda kind, **info: events.append((kind, info)))
    try:
        pool.start()
        assert len(pool.pids) == 2 and pool.nodes == [socket.gethostname()]
        pool.run(jobs, lambda job, reply: replies.__setitem__(job["config"]["id"], reply), trial_timeout=15)
    finally:
        pool.close()
    assert set(replies) == {HUNG, KILLED, after}
    hung = replies[HUNG]
    assert hung.kind == "error" and hung.error.kind == "timeout" and hung.worker == 0
    assert hung.error.message == "trial over its 15 s time limit; worker killed"
    assert 15 <= hung.wall_s < 25
    assert ("worker_died", {"worker": 0, "reason": "over the 15 s trial time limit"}) in events
    killed = replies[KILLED]
    assert killed.kind == "error" and killed.error.kind == "crash" and killed.worker == 1
    assert "SIGKILL" in killed.error.message and killed.wall_s < 15
    assert killed.error.stderr_tail  # the end of the worker's own log, read back from Ray's session directory
    ok = replies[after]
    assert ok.kind == "result" and ok.worker == 2 and ok.extra["node"] == socket.gethostname()
    assert sorted(f["index"] for f in pool.worker_facts) == [0, 1, 2]


@pytest.mark.slow
def test_strategy_bigger_than_the_cluster_is_refused(local_ray):
    from bench.errors import WorkerStartError

    pool = cluster.RayPool(3, lambda i: childenv.child_env(1, 1))
    with pytest.raises(WorkerStartError, match=r"3 workers × 1 CPUs = 3 CPUs.*has 2 CPUs"):
        pool.start()
    pool.close()
