"""bench.model.validity: each rule on timelines built with the real sampler's sample type, and the
busy-machine rule on a real quick run beside a real busy-loop process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from bench.measure.sampler import Sampler, make_sample
from bench.model import validity as v

GIB = 1 << 30


def timeline(seconds=10, dt=0.5, cores=2, busy_pct=(60.0, 40.0), tree_cores=1.0, mhz=None, used=4 * GIB,
             total=16 * GIB, swap=None):
    """A sampler timeline of ``seconds``: each sample's per-core busy %, the tree's CPU growing at
    ``tree_cores``; ``mhz``/``used``/``swap`` may be callables of the sample index."""
    out = []
    for i in range(int(seconds / dt) + 1):
        pick = lambda x: x(i) if callable(x) else x  # noqa: E731
        out.append(make_sample(
            t=i * dt, cpu_percent=list(busy_pct)[:cores], tree_cpu_s=i * dt * tree_cores,
            sys_mem_used_bytes=pick(used), sys_mem_total_bytes=total, cpu_mhz=pick(mhz), swap_used_bytes=pick(swap),
        ))
    return out


def test_synthetic_samples_have_the_real_samplers_shape():
    with Sampler(interval=0.05, gpu=False, energy=False) as s:
        time.sleep(0.12)
    real = s.samples[-1]
    assert set(make_sample(t=0, cpu_percent=[0.0], tree_cpu_s=0.0)) == set(real)
    assert "cpu_mhz" in real and "swap_used_bytes" in real
    assert real["cpu_mhz"] is None or real["cpu_mhz"] > 0


def test_quiet_timeline_is_valid():
    verdict = v.validity(timeline(busy_pct=(60.0, 50.0), tree_cores=1.0, mhz=2600.0, swap=0), wall_s=10.0)
    assert verdict["valid"] and verdict["reasons"] == []
    assert verdict["other_cores"] == pytest.approx(0.1)
    assert set(verdict["rules"]) == {"busy_machine", "too_short", "throttled", "memory_pressure"}


def test_busy_machine_rule_names_the_figure():
    # the machine had 1.9 cores busy, the benchmark's tree used 1.0: another process used 0.9
    verdict = v.validity(timeline(busy_pct=(100.0, 90.0), tree_cores=1.0, mhz=2600.0), wall_s=10.0)
    assert not verdict["valid"]
    assert verdict["other_cores"] == pytest.approx(0.9)
    assert verdict["reasons"] == ["busy machine: another process used 0.9 cores on average (limit 0.5)"]
    # just under the limit: valid
    assert v.busy_machine(timeline(busy_pct=(80.0, 65.0), tree_cores=1.0))[0] is None


def test_too_short_rule():
    verdict = v.validity(timeline(seconds=1, busy_pct=(50.0, 0.0), tree_cores=0.5, mhz=2600.0), wall_s=0.4)
    assert not verdict["valid"]
    assert verdict["reasons"] == ["too short: steady-state time 0.40 s is under the 1 s minimum"]
    assert v.too_short(v.MIN_STEADY_S) is None and v.too_short(None) is None


def test_throttled_rule_and_unreadable_frequency():
    falling = timeline(busy_pct=(50.0, 50.0), mhz=lambda i: 3000.0 if i < 10 else 2500.0)
    verdict = v.validity(falling, wall_s=10.0)
    assert not verdict["valid"]
    assert verdict["reasons"] == ["throttled: CPU frequency fell from 3000 to 2500 MHz (17% drop)"]
    steady = timeline(busy_pct=(50.0, 50.0), mhz=lambda i: 3000.0 if i % 2 else 2800.0)  # 6.7 %: allowed
    assert v.throttled(steady) == (None, None)
    unreadable = v.validity(timeline(busy_pct=(50.0, 50.0), mhz=None), wall_s=10.0)
    assert unreadable["valid"] and "frequency not readable" in unreadable["notes"]


def test_memory_pressure_rules():
    low = timeline(busy_pct=(50.0, 50.0), mhz=2600.0, used=lambda i: 15 * GIB if i > 5 else 8 * GIB)
    verdict = v.validity(low, wall_s=10.0)
    assert not verdict["valid"]
    assert verdict["reasons"] == ["memory pressure: available RAM fell to 6% of the total"]
    swapping = timeline(busy_pct=(50.0, 50.0), mhz=2600.0, swap=lambda i: (1 << 20) * 10 * i)
    assert v.memory_pressure(swapping) == "memory pressure: swap use grew by 200 MiB during the run"
    old_swap = timeline(busy_pct=(50.0, 50.0), mhz=2600.0, swap=2 * GIB)  # swapped long before: no pressure now
    assert v.memory_pressure(old_swap) is None


def test_several_rules_at_once():
    bad = timeline(seconds=0.5, dt=0.25, busy_pct=(100.0, 100.0), tree_cores=0.5, mhz=lambda i: 3000.0 - 500 * i)
    verdict = v.validity(bad, wall_s=0.5)
    kinds = [r.split(":")[0] for r in verdict["reasons"]]
    assert kinds == ["busy machine", "too short", "throttled"] and not verdict["valid"]


def _busy_loop_outside_the_tree() -> int:
    """Starts ``while True: pass`` in a process that is not a descendant of this one (its parent
    shell exits at once), so the sampler counts it as *another* process; returns its pid."""
    out = subprocess.run(
        ["sh", "-c", f"{sys.executable} -c 'while True: pass' >/dev/null 2>&1 & echo $!"],
        capture_output=True, text=True, check=True,
    )
    return int(out.stdout.strip())


def test_busy_machine_detected_on_a_real_run_beside_a_busy_loop(tmp_path):
    from bench.model.results import load
    from bench.sweep.sweep import run_sweep

    pid = _busy_loop_outside_the_tree()
    try:
        time.sleep(0.5)
        result = run_sweep("lorenz", "quick", processes=[1], out_dir=tmp_path, label="busy",
                           options={"epochs": "1"}, sample_interval=0.2)
    finally:
        os.kill(pid, signal.SIGKILL)
    run = load(next(tmp_path.glob("*.json"))).runs[0]  # as written to disk
    assert run.status == "complete"
    verdict = run.summary.validity
    assert verdict["valid"] is False
    busy = [r for r in verdict["reasons"] if r.startswith("busy machine")]
    assert busy and "another process used" in busy[0]
    assert verdict["other_cores"] > v.BUSY_OTHER_CORES
    assert result.runs[0].summary.validity == verdict
