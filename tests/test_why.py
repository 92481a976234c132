"""reports.why: each rule fed numbers says its sentence, and stays silent when the numbers do not
show it; then the rules applied to real quick runs agree with the figures those runs recorded."""

from __future__ import annotations

import dataclasses

import pytest

from bench.model import ratios
from reports import load_inputs
from reports.why import (
    BUSY_WORKER_MIN, IDLE_THREAD_LIMIT, PEAK_SHARE_LIMIT, gpu_waited, overhead_bound, run_busy_cores, second_thread_idle, why_lines,
)


# ---------------------------------------------------------------- (a) overhead-bound


def test_overhead_bound_speaks_under_one_percent_of_the_peak():
    line = overhead_bound(0.5, 350.0)
    assert line == ("per-step overhead dominates: a faster device will not help; bigger batches or fewer calls "
                    "will (0.5 GFLOP/s is 0.14 % of this machine's measured 350.0 GFLOP/s matmul peak)")


@pytest.mark.parametrize("gflops, peak", [(3.5, 350.0), (40.0, 350.0), (None, 350.0), (0.5, None), (0.5, 0.0)])
def test_overhead_bound_is_silent_at_one_percent_or_more_or_without_numbers(gflops, peak):
    assert overhead_bound(gflops, peak) is None


# ---------------------------------------------------------------- (b) the second thread idle


def test_second_thread_idle_speaks_when_one_core_per_worker_was_busy():
    assert second_thread_idle(1, 2, 0.9) == ("the second thread sat idle: processes, not threads, pay off here "
                                             "(1 process × 2 threads kept 0.9 cores busy)")
    assert second_thread_idle(2, 4, 2.2) == ("the second thread sat idle: processes, not threads, pay off here "
                                             "(2 processes × 4 threads kept 2.2 cores busy)")


@pytest.mark.parametrize("processes, threads, busy", [(1, 2, 1.8), (1, 1, 0.9), (2, 2, 3.1), (1, 2, None), (1, 2, 0.0), (2, 2, 0.9)])
def test_second_thread_idle_is_silent_when_threads_were_used_or_only_one_was_given_or_the_worker_waited(processes, threads, busy):
    assert second_thread_idle(processes, threads, busy) is None


# ---------------------------------------------------------------- (c) the GPU waited


def test_gpu_waited_speaks_under_thirty_percent():
    assert gpu_waited(12.0) == "the GPU waited on the host (GPU utilisation p50 12 %)"


@pytest.mark.parametrize("util", [30.0, 85.0, None])
def test_gpu_waited_is_silent_from_thirty_percent_or_without_a_gpu(util):
    assert gpu_waited(util) is None


# ---------------------------------------------------------------- on real runs


def test_busy_cores_from_the_per_core_samples_of_a_real_run(pose_quick_result):
    result, path = pose_quick_result
    run = load_inputs([str(path)]).runs[0]
    s = run.summary
    assert s["busy_cores_p50"] == pytest.approx(ratios.busy_cores(
        [x for x in run.samples if x["t"] >= s["compute_offset_s"] - 1e-9]))
    assert run_busy_cores(run) == pytest.approx(min(s["busy_cores_p50"], s["cpu_wall_ratio"]))
    # a file written before busy_cores_p50 existed: taken from its samples
    old = dataclasses.replace(run, summary={k: v for k, v in s.items() if k != "busy_cores_p50"})
    assert run_busy_cores(old) == pytest.approx(min(ratios.busy_cores(run.samples), s["cpu_wall_ratio"]))


def test_rules_on_real_runs_follow_their_recorded_figures(pose_quick_result, imdb_quick_result):
    for result, path in (pose_quick_result, imdb_quick_result):
        inputs = load_inputs([str(path)])
        runs = [r for r in inputs.runs if r.status == "complete"]
        machine = inputs.machine(runs[0].label)
        peak = machine["calibration"]["matmul_gflops"]
        lines = why_lines(runs, machine)
        best = max(r.summary["gflops"] for r in runs)
        overhead = [x for x in lines if x.startswith("per-step overhead dominates")]
        assert bool(overhead) == (best / peak < PEAK_SHARE_LIMIT), (best, peak, lines)
        threaded = [r for r in runs if r.threads >= 2]
        idle = any(BUSY_WORKER_MIN <= run_busy_cores(r) / r.processes < IDLE_THREAD_LIMIT for r in threaded)
        assert any(x.startswith("the second thread sat idle") for x in lines) == idle, lines
        assert not any("GPU" in x for x in lines)  # no GPU run: rule (c) has nothing to say
    # the small pose networks reach a tiny share of a matmul peak: the overhead rule speaks for them
    inputs = load_inputs([str(pose_quick_result[1])])
    assert any(x.startswith("per-step overhead dominates") for x in why_lines(inputs.runs, inputs.machine("test-machine")))
