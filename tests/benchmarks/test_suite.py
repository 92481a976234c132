"""The xpubench benchmark suite: every registered workload × every strategy, via pytest-benchmark.

    pytest tests/benchmarks --benchmark-only --benchmark-json=out.json \
        [--xpu-size quick|full] [--xpu-processes 1,2,4] [--xpu-device cpu,gpu] [--xpu-label laptop]

Workloads come from the registry at collection time, so new ones join automatically; strategies
come from ``--xpu-device`` × ``--xpu-processes`` (the ``xpu_device`` / ``xpu_processes`` arguments
are parametrised by the xpubench plugin). Each benchmark is one sweep of the workload's trials;
its figures (throughput, speedup against the 1-process run, efficiency, CPU/wall, peak memory,
quality, data used) are in the JSON's ``extra_info``.
"""

from __future__ import annotations

import math

import pytest

from bench.model.workload import suite_names

WORKLOADS = suite_names()  # the model workload needs a model file: not in the suite


@pytest.mark.parametrize("workload", WORKLOADS)
def test_benchmark_workload(xpu, workload, xpu_device, xpu_processes):
    run = xpu(workload, processes=xpu_processes, device=xpu_device)
    summary = run.summary
    assert run.status == "complete"
    assert summary["failed"] == 0
    assert summary["trials"] == len(run.trials) > 0
    assert summary["wall_s"] > 0 and summary["throughput"] > 0
    assert run.strategy["processes"] == xpu_processes and run.strategy["device"] == xpu_device
    for trial in run.trials:
        assert trial.quality, f"{trial.id}: no quality metric"
        assert all(v is None or math.isfinite(v) for v in trial.quality.values()), trial.quality
