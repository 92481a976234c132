"""Recommendations: fastest strategy, process count that fits in RAM, and a one-sentence reason."""

from __future__ import annotations

import math

import pytest

from bench.model import results
from reports import build_report, fmt, load_inputs
from support import synth
from reports.recommend import HEADROOM, memory_max_processes, recommend
from reports.tables import runs_frame

GIB = 2**30


def recs(tmp_path, *result_objs):
    files = [str(results.save(r, tmp_path / f"{i}.json")) for i, r in enumerate(result_objs)]
    inputs = load_inputs(files)
    return {(r.label, r.workload): r for r in recommend(runs_frame(inputs), inputs)}


def one_sentence(text: str) -> bool:
    return text.endswith(".") and ". " not in text and not text[0].islower()


@pytest.mark.parametrize("peak, ram, expected", [
    (GIB, 4 * GIB, math.floor(4 * (1 - HEADROOM))),
    (600 * 2**20, 16 * GIB, math.floor(16 * GIB * (1 - HEADROOM) / (600 * 2**20))),
    (8 * GIB, 4 * GIB, 0),
    (None, 4 * GIB, None),
    (GIB, None, None),
])
def test_memory_max_processes(peak, ram, expected):
    assert memory_max_processes(peak, ram) == expected


def test_fastest_process_count_with_memory_room(tmp_path):
    walls = {1: 8.0, 2: 4.6, 4: 3.0}
    res = synth.make_result(synth.scaling_runs(walls=walls, cores=4, peak_worker_bytes=600 * 2**20), label="big",
                            ram_bytes=16 * GIB, cores=4)
    r = recs(tmp_path, res)[("big", "lorenz")]
    fit = memory_max_processes(600 * 2**20, 16 * GIB)
    assert r.fastest.startswith("cpu×4p") and r.processes == 4 and r.memory_max_processes == fit
    assert r.trials_per_hour == pytest.approx(4 / 3.0 * 3600)
    assert f"{walls[1] / walls[4]:.2f}× the 1-process run" in r.reason
    assert f"allows up to {fit} processes" in r.reason and fmt.nbytes(600 * 2**20) in r.reason
    assert one_sentence(r.reason), r.reason


def test_memory_lowers_the_process_count(tmp_path):
    res = synth.make_result(synth.scaling_runs(walls={1: 8.0, 4: 2.5}, cores=4, peak_worker_bytes=GIB),
                            label="small", ram_bytes=3 * GIB, cores=4)
    r = recs(tmp_path, res)[("small", "lorenz")]
    fit = memory_max_processes(GIB, 3 * GIB)
    assert fit == 2
    assert r.fastest.startswith("cpu×4p") and r.processes == fit
    assert f"fits only {fit} workers" in r.reason and f"so use {fit}" in r.reason
    assert one_sentence(r.reason), r.reason


def test_one_process_fastest_explains_busy_cores(tmp_path):
    res = synth.make_result(synth.scaling_runs(walls={1: 5.0, 2: 6.0}, cores=1), label="one", cores=1)
    r = recs(tmp_path, res)[("one", "lorenz")]
    assert r.fastest.startswith("cpu×1p") and r.processes == 1
    assert f"2 processes reached only {5.0 / 6.0:.2f}×" in r.reason
    assert "usable cores busy" in r.reason
    assert one_sentence(r.reason), r.reason


def test_starved_gpu_is_named(tmp_path):
    cpu = synth.make_run(trial_walls=[2.0] * 4, wall_s=8.0)
    gpu = synth.make_run(device="gpu", trial_walls=[3.0] * 4, wall_s=12.0, gpu_util=[9.0] * 5)
    r = recs(tmp_path, synth.make_result([cpu, gpu], label="rented"))[("rented", "lorenz")]
    assert r.fastest.startswith("cpu×1p")
    assert "GPU utilisation p50 was 9 %: batch too small to feed the GPU" in r.reason
    assert one_sentence(r.reason), r.reason


def test_single_strategy_and_unknown_memory(tmp_path):
    run = synth.make_run(peak_worker_bytes=0)
    r = recs(tmp_path, synth.make_result([run], label="solo"))[("solo", "lorenz")]
    assert r.reason.startswith("Only cpu×1p×2t was measured") and "memory limit is unknown" in r.reason
    assert r.memory_max_processes is None and r.processes == 1
    assert one_sentence(r.reason), r.reason


def test_one_recommendation_per_machine_and_workload_in_the_report(tmp_path):
    a = synth.make_result(synth.scaling_runs("lorenz") + synth.scaling_runs("pose_classifier"), label="a")
    b = synth.make_result(synth.scaling_runs("lorenz", walls={1: 3.0, 2: 2.9}), label="b")
    r = recs(tmp_path, a, b)
    assert set(r) == {("a", "lorenz"), ("a", "pose_classifier"), ("b", "lorenz")}
    html = build_report(load_inputs([str(tmp_path / "0.json"), str(tmp_path / "1.json")])).html
    for rec in r.values():
        assert rec.reason in html


def test_efficiency_in_the_reason_stands_beside_the_measured_ceiling(tmp_path):
    cal = {"parallel_efficiency": {"1": 1.0, "2": 0.9}, "matmul_gflops": 40.0}
    res = synth.make_result(synth.scaling_runs(walls={1: 8.0, 2: 4.6}), label="cal", calibration=cal)
    r = recs(tmp_path, res)[("cal", "lorenz")]
    assert f"(efficiency {fmt.pct(8.0 / 4.6 / 2)}; this machine's ceiling 90 %)" in r.reason
    assert one_sentence(r.reason), r.reason
