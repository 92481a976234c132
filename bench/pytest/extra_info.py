"""``benchmark.extra_info`` of one xpubench run (the pytest-benchmark JSON contract, docs/architecture.md).

Built from what the run record declares: its summary and data as :func:`bench.model.results.plain`
gives them (the one JSON path), its strategy, and the mean quality (:func:`bench.model.ratios.mean_quality`,
the function the reports use). Nothing is serialised or recomputed a second way here.
"""

from __future__ import annotations

from typing import Sequence

#: Version of the ``extra_info["xpubench"]`` layout.
EXTRA_INFO_SCHEMA = 1
#: Keys of ``extra_info["xpubench"]["strategy"]``.
STRATEGY_KEYS = ("device", "processes", "threads_per_process", "engine", "backend")
#: Flat headline keys copied from ``extra_info["xpubench"]`` for readers of pytest-benchmark's JSON.
FLAT_KEYS = ("throughput", "unit", "speedup", "efficiency", "cpu_wall_ratio", "peak_rss_bytes", "quality", "data")
#: Summary figures copied flat when the run recorded them (GPUs were sampled).
GPU_KEYS = ("gpu_util_p50", "gpu_util_p95")


def extra_info(run, rounds_wall_s: Sequence[float] = ()) -> dict:
    """``benchmark.extra_info`` for one run, per the pytest-benchmark JSON contract.

    Args:
        run: The RunRecord (summary already holding speedup/efficiency when a baseline was known).
        rounds_wall_s: xpubench wall seconds of every measured round (the run is their median).

    Returns:
        ``{"xpubench": {...contract...}, <flat headline copies>, "wall_s", "startup_s",
        "rounds_wall_s", "gpu_util_p50"/"gpu_util_p95" when GPUs were sampled}``.
    """
    from bench.model.ratios import mean_quality
    from bench.model.results import plain

    s = run.summary
    summary = plain(s)
    strategy = {k: run.strategy.get(k) for k in STRATEGY_KEYS}
    if strategy["engine"] is None:
        strategy["engine"] = "local"
    strategy["backend"] = run.backend  # a run recorded without one is a tensorflow run
    quality = plain(mean_quality(run.trials))
    data = plain(run.data)
    xb = {
        "workload": run.workload,
        "size": run.size,
        "strategy": strategy,
        "summary": summary,
        "quality": quality,
        "data": data,
        "schema": EXTRA_INFO_SCHEMA,
    }
    startup = s.startup_s
    flat = {
        "throughput": s.throughput,
        "unit": s.throughput_unit,
        "speedup": s.speedup,
        "efficiency": s.efficiency,
        "cpu_wall_ratio": s.cpu_wall_ratio,
        "peak_rss_bytes": s.peak_tree_rss_bytes or s.peak_worker_rss_bytes,
        "quality": dict(quality),
        "data": dict(data),
        "wall_s": s.wall_s,
        "startup_s": startup.get("median") if isinstance(startup, dict) else None,
        "rounds_wall_s": plain(list(rounds_wall_s)),
    }
    flat.update({key: summary[key] for key in GPU_KEYS if summary.get(key) is not None})
    return {"xpubench": xb, **flat}
