"""The background sampler: it samples, stops, keeps a drift-free schedule, and costs little."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bench.measure.sampler import Sampler


def test_samples_stop_and_final_sample():
    s = Sampler(interval=0.05, gpu=False)
    with s:
        time.sleep(0.3)
    n = len(s.samples)
    assert n >= 4
    assert not any(t.name == "xpubench-sampler" for t in threading.enumerate())
    time.sleep(0.15)
    assert len(s.samples) == n  # nothing after stop
    last = s.samples[-1]
    assert set(last) >= {"t", "cpu_percent", "tree_cpu_s", "tree_rss_bytes", "sys_mem_used_bytes"}
    assert len(last["cpu_percent"]) >= 1 and last["tree_rss_bytes"] > 0
    ts = [x["t"] for x in s.samples]
    assert ts == sorted(ts)


def test_schedule_is_drift_free():
    s = Sampler(interval=0.05, gpu=False)
    with s:
        time.sleep(1.0)
    ts = [x["t"] - s.samples[0]["t"] for x in s.samples[:-1]]  # the last one is the stop sample
    # each sample lands on the grid k * interval from the first, whatever each read cost:
    # a late sample does not push the later ones back (a sleep(interval) loop would drift)
    offsets = sorted(abs(t - round(t / 0.05) * 0.05) for t in ts)
    assert offsets[len(offsets) // 2] < 0.015, offsets
    assert round(ts[-1] / 0.05) >= len(ts) - 1


def test_tree_includes_children_cpu_time_and_memory():
    # busy until it has used 0.8 s of CPU (not wall: the machine may be loaded)
    child = subprocess.Popen([sys.executable, "-c", "import time\nwhile time.process_time() < 0.8: pass"])
    try:
        s = Sampler(interval=0.1, gpu=False)
        with s:
            child.wait()
        # the busy child's ~1 s of CPU is counted even though it exited before the last sample
        assert s.samples[-1]["tree_cpu_s"] - s.samples[0]["tree_cpu_s"] > 0.6
        assert max(x["processes"] for x in s.samples) >= 2
        assert child.pid in s.peak_rss_by_pid
    finally:
        child.kill()


def _sleeper(*extra: str) -> subprocess.Popen:
    """A child that starts ``extra`` (a grandchild) if given, says ready, then sleeps."""
    code = (
        "import subprocess, sys, time\n"
        + ("g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n" if extra else "")
        + "print('ready', flush=True)\ntime.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child.stdout.readline()
    return child


def test_watched_processes_and_their_descendants_come_from_one_scan_per_sample(monkeypatch):
    import psutil

    import bench.measure.sampler as sm

    watched, other = _sleeper("grandchild"), _sleeper()
    try:
        time.sleep(0.2)  # the grandchild exists by now (started before 'ready')
        grandchild = psutil.Process(watched.pid).children()[0].pid
        scans = []
        real = sm._ppid_map
        monkeypatch.setattr(sm, "_ppid_map", lambda: scans.append(1) or real())
        s = Sampler(interval=0.05, gpu=False, energy=False, pids=lambda: [watched.pid])
        with s:
            time.sleep(0.3)
        pids = set(s.peak_rss_by_pid)
        # the root, the watched worker and its child; not the root's other child (an idle cached worker)
        assert {os.getpid(), watched.pid, grandchild} <= pids and other.pid not in pids
        assert {x["processes"] for x in s.samples} == {3}
        assert len(scans) == len(s.samples)  # one process-table scan a sample, however many are watched
        # without pids: every descendant of the root
        s = Sampler(interval=0.05, gpu=False, energy=False)
        with s:
            time.sleep(0.1)
        assert {watched.pid, grandchild, other.pid} <= set(s.peak_rss_by_pid)
    finally:
        for c in (watched, other):
            for p in psutil.Process(c.pid).children(recursive=True):
                p.kill()
            c.kill()
            c.wait()


def test_uss_reads_keep_to_their_share_of_a_core():
    child = _sleeper()
    try:
        every = Sampler(interval=0.05, gpu=False, energy=False, uss_every=1, uss_budget=1.0,
                        pids=lambda: [child.pid])
        with every:
            time.sleep(0.6)
        assert all(isinstance(x["tree_uss_bytes"], int) and x["tree_uss_bytes"] > 0 for x in every.samples)
        # a budget of 0.1 % of a core: a read costing ~1 ms here (this process and the child) allows
        # about one a second
        budget = Sampler(interval=0.05, gpu=False, energy=False, uss_every=1, uss_budget=0.001,
                         pids=lambda: [child.pid])
        with budget:
            time.sleep(1.2)
        read = [x["t"] for x in budget.samples if x["tree_uss_bytes"] is not None]
        assert budget.samples[0]["tree_uss_bytes"] is not None  # the first sample reads it
        assert 1 <= len(read) <= len(budget.samples) // 3, (len(read), len(budget.samples))
        assert all(b - a >= 0.1 for a, b in zip(read, read[1:])), read  # a read of >= 0.1 ms waits >= 0.1 s
        with pytest.raises(ValueError, match="uss_budget"):
            Sampler(uss_budget=0)
    finally:
        child.kill()
        child.wait()


def test_gpu_fields_say_unavailable_without_nvml(monkeypatch):
    import bench.measure.nvml as nv

    nv.reset_for_tests()
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    try:
        s = Sampler(interval=0.05)
        with s:
            time.sleep(0.1)
        assert s.samples[-1]["gpus"] == "unavailable"
    finally:
        nv.reset_for_tests()


def test_cost_is_small_at_default_interval():
    s = Sampler(gpu=False)  # default 0.5 s
    with s:
        time.sleep(2.1)
    per_second = s.overhead_cpu_s / 2.1
    # measured 1.1-3.6 % on this 2-core VM (the 2 s window includes the first sample, which primes
    # psutil's per-process CPU baselines); the bound is generous, not a target
    assert per_second < 0.05, f"sampler used {per_second:.1%} of a core"


def test_bad_interval():
    for bad in (0, 1e-9, 0.049):
        with pytest.raises(ValueError, match="at least 0.05"):
            Sampler(interval=bad)


def test_own_cpu_cost_is_measured_positive_and_small():
    s = Sampler(interval=0.05, gpu=False)
    with s:
        time.sleep(1.0)
    cost = s.cost()
    assert cost["sampler_samples"] == len(s.samples) >= 15
    assert cost["sampler_interval_s"] == 0.05
    assert 0.9 < cost["sampler_wall_s"] < 5.0
    # the thread's own CPU clock: above zero (it did work), far below a core at the floor interval
    assert 0 < cost["sampler_cpu_s"] < 0.5 * cost["sampler_wall_s"]
    assert cost["sampler_cpu_share"] == pytest.approx(cost["sampler_cpu_s"] / cost["sampler_wall_s"], rel=1e-3)
    assert s.overhead_cpu_s == pytest.approx(cost["sampler_cpu_s"], abs=1e-5)
    # and it is a measurement, not an estimate: a 20x denser schedule costs clearly more per second
    sparse = Sampler(interval=1.0, gpu=False)
    with sparse:
        time.sleep(1.0)
    assert sparse.cost()["sampler_cpu_share"] < cost["sampler_cpu_share"]


def test_sampler_cost_of_a_resumed_run_adds_both_parts():
    from bench.measure.sampler import merge_sampler_cost

    old = {"sampler_cpu_s": 0.2, "sampler_wall_s": 10.0, "sampler_samples": 20, "sampler_interval_s": 0.5}
    new = {"sampler_cpu_s": 0.1, "sampler_wall_s": 10.0, "sampler_samples": 21, "sampler_interval_s": 0.25}
    merged = merge_sampler_cost(old, new)
    assert merged == {"sampler_cpu_s": pytest.approx(0.3), "sampler_wall_s": 20.0, "sampler_samples": 41,
                      "sampler_cpu_share": pytest.approx(0.015), "sampler_interval_s": 0.25}
    assert merge_sampler_cost({}, {}) == {}  # a file from before these fields: nothing invented
    assert merge_sampler_cost({"sampler_cpu_s": "x"}, new)["sampler_cpu_s"] == 0.1


def _bench(*args):
    import os

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "XPUBENCH_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("value, shown", [("1e-9", "1e-09"), ("0.01", "0.01"), ("0.0499", "0.0499")])
def test_cli_refuses_an_interval_below_the_floor(tmp_path, value, shown):
    proc = _bench("run", "lorenz", "--sample-interval", value, "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: --sample-interval {shown} is below the floor 0.05 s (")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()  # refused before anything was created


def test_sweep_and_plugin_refuse_an_interval_below_the_floor(tmp_path):
    from bench.errors import UsageError
    from bench.sweep.sweep import Sweep
    from bench.model.strategy import make_strategies

    with pytest.raises(UsageError, match=r"sample_interval 0.001 is below the floor 0.05 s"):
        Sweep("lorenz", "quick", make_strategies(["cpu"], [1], 1), out_dir=tmp_path / "o", sample_interval=0.001)
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def testload_run(tmp_path_factory):
    """A real quick sweep (2 short trials, one real worker) of the test workload, and its file."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import xpubench_testload
    from bench.model import workload
    from bench.sweep.sweep import run_sweep

    out = tmp_path_factory.mktemp("sampler-cost")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(workload._REGISTRY, xpubench_testload.FaultyWorkload.name, xpubench_testload.FaultyWorkload)
        result = run_sweep("xpubench_testload", "quick", processes=[1], threads=1, out_dir=out,
                           options={"plan": "ok,ok,ok", "sleep": "0.3"}, sample_interval=0.05)
    (path,) = out.glob("*.json")
    return result, path


def test_every_result_records_the_sampler_cost(testload_run):
    from bench.model import results

    result, path = testload_run
    s = result.runs[0].summary
    assert s["sampler_interval_s"] == 0.05
    assert s["sampler_samples"] == len(result.runs[0].samples) >= 5
    assert 0 < s["sampler_cpu_s"] < 0.5 * s["sampler_wall_s"]
    assert s["sampler_wall_s"] >= s["wall_s"]  # it samples start-up too
    assert 0 < s["sampler_cpu_share"] < 0.5
    loaded = results.load(path).runs[0].summary
    assert {k: loaded[k] for k in s if k.startswith("sampler_")} == {k: s[k] for k in s if k.startswith("sampler_")}


def test_files_without_the_sampler_cost_still_load_and_bad_values_are_refused(testload_run, tmp_path):
    import json

    from bench.model import results
    from bench.errors import ResultFileError

    _, path = testload_run
    doc = json.loads(path.read_text())
    for key in [k for k in doc["runs"][0]["summary"] if k.startswith("sampler_")]:
        del doc["runs"][0]["summary"][key]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc))
    assert "sampler_cpu_s" not in results.load(old).runs[0].summary
    doc["runs"][0]["summary"]["sampler_cpu_s"] = "a lot"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(ResultFileError, match="sampler_cpu_s"):
        results.load(bad)


def test_the_report_shows_the_recorded_sampler_cost(testload_run, tmp_path):
    from reports import write_report

    result, path = testload_run
    share = result.runs[0].summary["sampler_cpu_share"]
    html = write_report([str(path)], tmp_path / "r.html").read_text()
    runs = html[html.index('id="runs"'):]
    assert "sampler CPU (of a core)" in runs
    assert f"{100 * share:.1f} %" in runs  # the recorded figure, not a recomputed one
