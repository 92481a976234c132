"""The background sampler: it samples, stops, keeps a drift-free schedule, and costs little."""

import subprocess
import sys
import threading
import time

import pytest

from bench.sampler import Sampler


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


def test_gpu_fields_say_unavailable_without_nvml(monkeypatch):
    import bench.nvml as nv

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
    assert per_second < 0.03, f"sampler used {per_second:.1%} of a core"


def test_bad_interval():
    with pytest.raises(ValueError):
        Sampler(interval=0)
