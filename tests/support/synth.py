"""Synthetic result records for tests and render-time measurements.

They are built with the same records and summary function (:func:`bench.model.ratios.summarize`) as
real sweeps, so the report reads them exactly as it reads measured results. Their machine label
defaults to ``synthetic`` so they are never mistaken for measurements.
"""

from __future__ import annotations

import random
from typing import Any, Mapping, Sequence

from bench.model.ratios import summarize
from bench.model.results import Result, RunRecord, TrialError, TrialRecord

GIB = 2**30


def make_run(
    workload: str = "lorenz",
    processes: int = 1,
    trial_walls: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
    wall_s: float | None = None,
    baseline_wall_s: float | None = None,
    device: str = "cpu",
    size: str = "quick",
    engine: str = "local",
    cores: int = 2,
    samples_per_trial: float = 900.0,
    quality: Mapping[str, float] | None = None,
    peak_worker_bytes: int = 600 * 2**20,
    configs: Sequence[Mapping[str, Any]] | None = None,
    extras: Sequence[Mapping[str, Any]] | None = None,
    failed: int = 0,
    gpu_util: Sequence[float] | None = None,
    status: str = "complete",
    skipped: str | None = None,
    data: Mapping[str, Any] | None = None,
    timeline_points: int = 12,
    seed: int = 0,
) -> RunRecord:
    """A RunRecord with trials, a sampler timeline and a summary computed by bench.model.ratios.

    Args:
        workload: Workload name.
        processes: Worker processes.
        trial_walls: Wall seconds of each finished trial.
        wall_s: The run's wall seconds (default: sum of trial walls / processes).
        baseline_wall_s: Wall of the 1-process run, for speedup and efficiency.
        device: Device strategy.
        size: Workload size.
        engine: ``local`` or ``ray``.
        cores: Cores in the per-core CPU timeline.
        samples_per_trial: Work done per trial (throughput unit × seconds).
        quality: Quality metrics of every trial (default rmse 1.0).
        peak_worker_bytes: Peak RSS of each trial's worker.
        configs: Trial configs (default ``{"id": "t<i>"}``).
        extras: Trial ``extra`` dicts (e.g. ``{"node": "n1"}`` or ``{"rows_per_s": 16}``).
        failed: How many more trials failed (crash records appended).
        gpu_util: GPU utilisation % per sample (adds NVML-like GPU samples).
        status: Run status; ``skipped`` gives no trials.
        skipped: Why it was skipped.
        data: What data was used (default generated).
        timeline_points: Sampler samples in the timeline.
        seed: Seed for the timeline's noise.
    """
    strategy = {"device": device, "processes": processes, "threads_per_process": max(1, cores // processes),
                "inter_op_threads": 1, "engine": engine}
    data = dict(data if data is not None else {"source": "generated", "name": "synthetic test data"})
    if status == "skipped":
        return RunRecord(workload=workload, size=size, strategy=strategy, status="skipped", skipped=skipped, data=data)
    rng = random.Random(seed)
    quality = dict(quality or {"rmse": 1.0})
    configs = list(configs or [{"id": f"t{i}"} for i in range(len(trial_walls) + failed)])
    extras = list(extras or [{} for _ in configs])
    wall = wall_s if wall_s is not None else sum(trial_walls) / processes
    trials = []
    for i, w in enumerate(trial_walls):
        trials.append(TrialRecord(
            id=str(configs[i]["id"]), config=dict(configs[i]), worker=i % processes, start_s=0.0, wall_s=w,
            cpu_s=0.95 * w, samples=samples_per_trial, quality=quality, extra=dict(extras[i]),
            peak_rss_bytes=peak_worker_bytes,
        ))
    for j in range(failed):
        i = len(trial_walls) + j
        trials.append(TrialRecord(id=str(configs[i]["id"]), config=dict(configs[i]), worker=0,
                                  error=TrialError(kind="crash", message="worker killed by SIGKILL", signal=9)))
    samples = []
    busy = min(processes, cores)
    for k in range(timeline_points):
        t = wall * k / max(1, timeline_points - 1)
        s = {
            "t": round(t, 4),
            "cpu_percent": [min(100.0, 90.0 + rng.random() * 10) if c < busy else rng.random() * 8 for c in range(cores)],
            "tree_cpu_s": round(0.95 * busy * t, 4),
            "tree_rss_bytes": int(processes * peak_worker_bytes * (0.6 + 0.4 * k / timeline_points)),
            "tree_uss_bytes": int(processes * peak_worker_bytes * 0.5) if k % 4 == 0 else None,
            "processes": processes + 1,
            "sys_mem_used_bytes": 3 * GIB + processes * peak_worker_bytes,
            "sys_mem_total_bytes": 16 * GIB,
        }
        if gpu_util is not None:
            s["gpus"] = [{"util_percent": gpu_util[k % len(gpu_util)], "mem_used_bytes": GIB}]
        samples.append(s)
    run = RunRecord(workload=workload, size=size, strategy=strategy, trials=tuple(trials), samples=tuple(samples),
                    data=data, status=status)
    summary = summarize(run.trials, samples, wall, processes, baseline_wall_s=baseline_wall_s)
    return RunRecord(workload=workload, size=size, strategy=strategy, trials=tuple(trials), samples=tuple(samples),
                     summary=summary, data=data, status=status)


def make_result(
    runs: Sequence[RunRecord],
    label: str = "synthetic",
    ram_bytes: int = 16 * GIB,
    cores: int = 2,
    calibration: Mapping[str, Any] | None = None,
    complete: bool = True,
    **machine: Any,
) -> Result:
    """A Result with a fingerprint-shaped machine record.

    Args:
        runs: Its runs.
        label: Machine label.
        ram_bytes: Machine RAM.
        cores: Physical, logical and usable cores.
        calibration: ``machine["calibration"]`` (parallel ceiling, matmul GFLOP/s).
        complete: Whether the sweep finished.
        **machine: More fingerprint fields.
    """
    m = {"label": label, "hostname": "synthetic-host", "cpu": "Synthetic CPU @ 2.0GHz", "physical_cores": cores,
         "logical_cores": cores, "usable_cores": cores, "ram_bytes": ram_bytes, "os": "Linux 6.1",
         "python": "3.11.7", "tensorflow": "2.21.0", "keras": "3.11.0", "gpus": [], "gpu_status": "no NVML",
         "thread_env": {}}
    if calibration is not None:
        m["calibration"] = dict(calibration)
    m.update(machine)
    return Result(machine=m, runs=tuple(runs), created="2025-01-01T00:00:00+00:00", complete=complete,
                  tool={"name": "xpubench", "version": "0.1.0"})


def scaling_runs(workload: str = "lorenz", walls: Mapping[int, float] | None = None, n_trials: int = 4,
                 **kw: Any) -> list[RunRecord]:
    """Runs of one workload at several process counts with the given wall seconds per count.

    Args:
        workload: Workload name.
        walls: Process count → run wall seconds (default ``{1: 8.0, 2: 5.0}``).
        n_trials: Trials per run.
        **kw: Passed to :func:`make_run`.
    """
    walls = dict(walls or {1: 8.0, 2: 5.0})
    base = walls.get(1)
    return [
        make_run(workload, processes=n, trial_walls=[walls[1] / n_trials if base else w / n_trials] * n_trials,
                 wall_s=w, baseline_wall_s=base, **kw)
        for n, w in sorted(walls.items())
    ]
