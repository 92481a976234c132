"""Ratios derived from raw trial times and sampler timelines.

speedup = wall(1 process) / wall(N processes) of the same backend; efficiency = speedup / N
(:func:`speedup`, :func:`efficiency`: the one place these are computed; :func:`finalize_runs` records
them in each run's summary, and readers read them from there); speedup vs cpu (same backend and
processes) and speedup vs tensorflow (same device, processes and threads: how much a backend gains);
CPU-time/wall = CPU seconds of the whole process tree / wall seconds (how many cores were busy);
per-process CPU/wall = mean over workers of that worker's CPU seconds / wall (seed 001's figure).
Noise is the spread between measurements of the same thing only (trials with an identical
config; see :func:`trial_noise`), never across different configurations. Busy cores is the
median of the per-core CPU samples summed. GFLOP/s is the trials' analytic FLOPs
(``extra["flops"]``, :mod:`bench.measure.flops`) over the run's wall seconds.
GPU utilisation and memory p50/p95 come from the NVML samples; energy (CPU package from RAPL,
GPU from NVML) is joules over the run's window, per finished trial and per 1,000 samples, or
"unavailable" with the reason (see bench.measure.energy). Amdahl's law (:func:`amdahl_speedup`) and
its fit (:func:`amdahl_fit`) and the mean quality of a run's trials (:func:`mean_quality`) live here too.

Repeats (``--repeat K``: K runs of one strategy, :attr:`RunRecord.group`): :func:`finalize_runs`
pairs each N-process repeat with the 1-process run of the same repeat (measured next to it in the
interleaved order) for its speedup, and records in every repeat's summary ``repeats`` (the
median and bootstrap interval of wall time, throughput, speedup and efficiency over the repeats,
:func:`repeat_summary`, with the method) and ``noise`` over the repeats (the CV of each trial
across them). Weak scaling (``scaling: weak``, N times the work at N processes): ``weak_efficiency``
= throughput(N) / (N x throughput(1)) (:func:`weak_efficiency`); strong speedup is not defined
for it. Each run's ``validity`` comes from bench.model.validity.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Any, Iterable, Mapping, Sequence

from bench.model import stats
from bench.model.energy import energy_summary
from bench.model.results import RunRecord, canonical
from bench.model.strategy import DEFAULT_BACKEND, backend_of, scaling_of
from bench.model.validity import validity


def speedup(baseline_wall: float | None, wall: float | None) -> float | None:
    """How much faster than the baseline: ``baseline_wall / wall`` (None unless both are > 0).

    Args:
        baseline_wall: Wall seconds of the baseline (the 1-process run, the cpu run...).
        wall: Wall seconds of the run compared with it.
    """
    if not baseline_wall or not wall or baseline_wall <= 0 or wall <= 0:
        return None
    return baseline_wall / wall


def efficiency(speedup_value: float | None, processes: int) -> float | None:
    """Parallel efficiency: ``speedup / processes`` (None without a speedup).

    Args:
        speedup_value: The speedup over 1 process.
        processes: Worker processes (or tasks at once).
    """
    if speedup_value is None or processes < 1:
        return None
    return speedup_value / processes


def number(value: Any) -> float | None:
    """A finite real number as float, else None (bool, None, NaN, text and objects are not numbers).

    Args:
        value: Anything read from a file or a record.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value) if math.isfinite(value) else None
    except OverflowError:  # an int too large for a float
        return None


def mean_quality(trials: Iterable) -> dict[str, float]:
    """Mean of each quality metric over the finished trials (values that are not numbers ignored).

    Args:
        trials: TrialRecords (failed ones are left out).
    """
    values: dict[str, list[float]] = {}
    for t in trials:
        if t.error is not None:
            continue
        for k, v in t.quality.items():
            if number(v) is not None:
                values.setdefault(k, []).append(float(v))
    return {k: statistics.fmean(v) for k, v in values.items() if v}


def spread(values: Sequence[float]) -> dict:
    """Median with spread: min, max, IQR, coefficient of variation."""
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return {"n": 0}
    n = len(vals)
    out = {"n": n, "median": statistics.median(vals), "min": vals[0], "max": vals[-1]}
    if n >= 2:
        q = statistics.quantiles(vals, n=4, method="inclusive")
        mean = statistics.fmean(vals)
        out.update(q1=q[0], q3=q[2], mean=mean, cv=(statistics.stdev(vals) / mean) if mean else None)
    return out


def percentile(values: Sequence[float], p: float) -> float | None:
    """Linear-interpolated percentile, ``p`` in [0, 100]."""
    vals = sorted(v for v in values if isinstance(v, (int, float)))
    if not vals:
        return None
    k = (len(vals) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(vals) - 1)
    return vals[lo] + (vals[hi] - vals[lo]) * (k - lo)


def tree_cpu_seconds(samples: Sequence[Mapping]) -> float | None:
    """CPU seconds the process tree used between the first and the last sample."""
    pts = [s.get("tree_cpu_s") for s in samples if isinstance(s.get("tree_cpu_s"), (int, float))]
    if len(pts) < 2:
        return None
    return max(0.0, pts[-1] - pts[0])


def gpu_percentiles(samples: Sequence[Mapping]) -> dict:
    """p50/p95 of GPU utilisation and memory used over all GPUs and samples (empty without GPUs)."""
    util, mem = [], []
    for s in samples:
        gpus = s.get("gpus")
        if not isinstance(gpus, list):
            continue
        for g in gpus:
            if isinstance(g.get("util_percent"), (int, float)):
                util.append(g["util_percent"])
            if isinstance(g.get("mem_used_bytes"), (int, float)):
                mem.append(g["mem_used_bytes"])
    if not util and not mem:
        return {}
    return {
        "gpu_util_p50": percentile(util, 50),
        "gpu_util_p95": percentile(util, 95),
        "gpu_mem_used_p50_bytes": percentile(mem, 50),
        "gpu_mem_used_p95_bytes": percentile(mem, 95),
    }


NOT_REPEATED = "no repeated measurement"


def config_identity(config: Mapping) -> str:
    """The identity of a trial configuration: the whole config dict, canonically serialised.

    Strict on purpose: two trials measure the same thing only when every key matches (id, fold,
    seed and repeat included); trials that differ in any key are different measurements.

    Args:
        config: A trial's config.
    """
    return canonical(config)


def trial_noise(trials: Iterable) -> dict:
    """Timing noise between measurements of the same thing: trials with an identical config.

    A sweep runs each configuration once per strategy, so one run alone normally has nothing
    repeated: then noise is not measured (``{"measured": False, "reason": ...}``), rather than
    a spread across different configurations passed off as noise. Given the trials of repeated
    runs of one strategy together, each configuration measured more than once contributes the
    coefficient of variation of its wall times.

    Args:
        trials: TrialRecords (failed ones are left out).

    Returns:
        ``{"measured": True, "configs": k, "measurements": n, "cv_median", "cv_max", "worst"}``
        (worst: the id of the configuration with the largest CV) or ``{"measured": False, "reason"}``.
    """
    groups: dict[str, list] = {}
    for t in trials:
        if t.error is None and t.wall_s > 0:
            groups.setdefault(config_identity(t.config), []).append(t)
    cvs = []
    for group in groups.values():
        if len(group) >= 2:
            walls = [t.wall_s for t in group]
            mean = statistics.fmean(walls)
            cvs.append((statistics.stdev(walls) / mean, group[0].id, len(group)))
    if not cvs:
        return {"measured": False, "reason": NOT_REPEATED}
    worst = max(cvs)
    noisy = sorted((c for c in cvs if c[0] > stats.NOISY_CV), reverse=True)
    return {
        "measured": True, "configs": len(cvs), "measurements": sum(n for _, _, n in cvs),
        "cv_median": statistics.median(c for c, _, _ in cvs), "cv_max": worst[0], "worst": worst[1],
        "threshold": stats.NOISY_CV, "noisy": [{"id": i, "cv": c} for c, i, _ in noisy],
    }


def busy_cores(samples: Sequence[Mapping]) -> float | None:
    """Median over samples of the machine's busy cores: the sum of per-core CPU % / 100.

    Args:
        samples: Sampler timeline (``cpu_percent``: one value per core).
    """
    per_sample = [
        sum(float(v) for v in s["cpu_percent"] if isinstance(v, (int, float))) / 100.0
        for s in samples if isinstance(s.get("cpu_percent"), list) and s["cpu_percent"]
    ]
    return statistics.median(per_sample) if per_sample else None


def summarize(
    trials: Iterable,
    samples: Sequence[Mapping],
    wall_s: float,
    processes: int,
    workers: Sequence[Mapping] = (),
    baseline_wall_s: float | None = None,
    unit: str = "samples/s",
) -> dict:
    """A run's summary, from its raw trial records and samples.

    Args:
        trials: TrialRecords of the run.
        samples: The sampler timeline of the run.
        wall_s: Wall seconds from first dispatch to last completion (worker start-up excluded).
        processes: Worker processes.
        workers: Worker facts (start-up seconds, pids).
        baseline_wall_s: Wall of the 1-process run of the same workload/size/device/backend, if measured.
        unit: Throughput unit.
    """
    trials = list(trials)
    ok = [t for t in trials if t.error is None]
    total_samples = sum(t.samples for t in ok)
    tree_cpu = tree_cpu_seconds(samples)
    trial_cpu = sum(t.cpu_s for t in trials)
    cpu_for_ratio = tree_cpu if tree_cpu is not None else trial_cpu
    sp = speedup(baseline_wall_s, wall_s) if baseline_wall_s else (1.0 if processes == 1 else None)
    by_worker: dict[int, float] = {}
    for t in trials:
        by_worker[t.worker] = by_worker.get(t.worker, 0.0) + t.cpu_s
    rss = [s.get("tree_rss_bytes") for s in samples if isinstance(s.get("tree_rss_bytes"), int)]
    uss = [s.get("tree_uss_bytes") for s in samples if isinstance(s.get("tree_uss_bytes"), int)]
    startup = [w.get("startup_s") for w in workers if isinstance(w.get("startup_s"), (int, float))]
    peak_worker = max((t.peak_rss_bytes for t in trials), default=0)
    out = {
        "trials": len(trials),
        "failed": len(trials) - len(ok),
        "wall_s": wall_s,
        "trials_per_hour": (len(ok) / wall_s * 3600.0) if wall_s > 0 else None,
        "speedup": sp,
        "efficiency": efficiency(sp, processes),
        "cpu_s": cpu_for_ratio,
        "cpu_wall_ratio": (cpu_for_ratio / wall_s) if wall_s > 0 else None,
        "per_process_cpu_wall_ratio": (statistics.fmean(by_worker.values()) / wall_s) if by_worker and wall_s > 0 else None,
        "throughput": (total_samples / wall_s) if wall_s > 0 else None,
        "throughput_unit": unit,
        "trial_wall_s": spread([t.wall_s for t in ok]),
        "peak_tree_rss_bytes": max(rss, default=None),
        "peak_tree_uss_bytes": max(uss, default=None),
        "peak_worker_rss_bytes": peak_worker or None,
        "startup_s": spread(startup),
    }
    out.update(gpu_percentiles(samples))
    out["energy"] = energy_summary(samples, len(ok), total_samples)
    out["noise"] = trial_noise(ok)
    out["busy_cores_p50"] = busy_cores(samples)
    out["validity"] = validity(samples, wall_s)
    flops = [t.extra.get("flops") for t in ok]
    if ok and all(isinstance(f, (int, float)) and not isinstance(f, bool) for f in flops):
        out["flops"] = float(sum(flops))
        out["gflops"] = out["flops"] / wall_s / 1e9 if wall_s > 0 else None
    return out


def _baseline_walls(runs: Sequence, key, chosen) -> dict[tuple, float]:
    """Wall of the first finished run (``chosen(run)``) for each ``key(run)``: the baselines."""
    base: dict[tuple, float] = {}
    for r in runs:
        wall = r.summary.wall_s
        if chosen(r) and r.status == "complete" and wall and not r.summary.failed:
            base.setdefault(key(r), wall)
    return base


def speedup_over_cpu(runs: Sequence) -> list[float | None]:
    """Per run, how much faster it was than the ``cpu`` run of the same workload, size, process
    count and backend (same trials): wall(cpu) / wall(run). None without such a finished cpu run.

    Args:
        runs: RunRecords (``workload``, ``size``, ``strategy``, ``status``, ``summary``).
    """
    def key(r):
        return (r.workload, r.size, r.strategy.get("processes"), backend_of(r.strategy))

    base = _baseline_walls(runs, key, lambda r: r.strategy.get("device") == "cpu")
    return [speedup(base.get(key(r)), r.summary.wall_s) if r.status == "complete" else None for r in runs]


def speedup_over_tensorflow(runs: Sequence) -> list[float | None]:
    """Per run, how much faster its backend was than tensorflow on the same work: wall of the
    finished tensorflow run with the same workload, size, device, processes and threads over this
    run's wall (a tensorflow run: 1.0 against itself). None without such a run.

    Args:
        runs: RunRecords (``workload``, ``size``, ``strategy``, ``status``, ``summary``).
    """
    def key(r):
        s = r.strategy
        return (r.workload, r.size, s.get("device"), s.get("processes"), s.get("threads_per_process"))

    base = _baseline_walls(runs, key, lambda r: backend_of(r.strategy) == DEFAULT_BACKEND)
    return [speedup(base.get(key(r)), r.summary.wall_s) if r.status == "complete" else None for r in runs]


AMDAHL_MIN_COUNTS = 3


def amdahl_speedup(f: float, n: float) -> float:
    """Amdahl's law: the speedup at ``n`` processes of work with serial fraction ``f``.

    Args:
        f: Serial fraction, 0 to 1.
        n: Processes (> 0).
    """
    return 1.0 / (f + (1.0 - f) / n)


def amdahl_fit(points: Mapping[int, float]) -> float | None:
    """Serial fraction f that best fits speedup(N) = 1 / (f + (1-f)/N) (least squares over N>1).

    A fit needs at least :data:`AMDAHL_MIN_COUNTS` distinct process counts, the 1-process
    baseline every speedup is measured against included (1, 2, 4: two points to fit). With one
    point the curve passes through it exactly and its limit 1/f is an extrapolation from one
    measurement, so None is returned.

    Args:
        points: Speedup by process count (the 1-process entry, if given, is the baseline).
    """
    pairs = [(n, s) for n, s in points.items() if n > 1 and s]
    if len(pairs) + 1 < AMDAHL_MIN_COUNTS:
        return None
    best, best_err = 0.0, float("inf")
    for i in range(1001):
        f = i / 1000
        err = sum((amdahl_speedup(f, n) - s) ** 2 for n, s in pairs)
        if err < best_err:
            best, best_err = f, err
    return best


def weak_efficiency(throughput: float | None, processes: int, baseline_throughput: float | None) -> float | None:
    """Weak-scaling efficiency: ``throughput(N) / (N x throughput(1))`` (1.0: N times the work in
    the same time). None without both throughputs.

    Args:
        throughput: Aggregate throughput of the N-process weak-scaling run (N times the work).
        processes: N.
        baseline_throughput: Throughput of the 1-process run (the same trials once).
    """
    if not throughput or not baseline_throughput or processes < 1 or baseline_throughput <= 0:
        return None
    return throughput / (processes * baseline_throughput)


REPEAT_FIGURES = ("wall_s", "throughput", "speedup", "efficiency", "weak_efficiency")


def repeat_summary(runs: Sequence[RunRecord]) -> dict:
    """What the repeats of one strategy say together: per figure the median and 95 % interval
    (:func:`bench.model.stats.interval`) of the finished repeats, and the method.

    Args:
        runs: The repeats of one strategy (one :attr:`RunRecord.group`), summaries finalized.

    Returns:
        ``{"count", "finished", "method", "wall_s": interval, "throughput": ..., "speedup": ...,
        "efficiency": ..., "weak_efficiency": ...}`` (a figure no repeat recorded is left out).
    """
    done = sorted((r for r in runs if r.status == "complete" and not r.summary.failed), key=lambda r: r.repeat)
    out: dict[str, Any] = {"count": len(runs), "finished": len(done), "method": dict(stats.METHOD)}
    for key in REPEAT_FIGURES:
        values = [number(r.summary.get(key)) for r in done]
        if any(v is not None for v in values):
            out[key] = stats.interval(values)
    return out


def finalize_runs(runs: Sequence[RunRecord]) -> list[RunRecord]:
    """Records speedup, efficiency and baseline wall of every run against the 1-process run of the
    same workload/size/device/backend (and the same repeat, when there is one: measured beside
    it), ``weak_efficiency`` of weak-scaling runs, ``speedup_vs_cpu`` (:func:`speedup_over_cpu`),
    ``speedup_vs_tensorflow`` (:func:`speedup_over_tensorflow`), and over the repeats of each
    strategy ``repeats`` (:func:`repeat_summary`) and ``noise`` (each trial across the repeats).

    Args:
        runs: The sweep's RunRecords.

    Returns:
        The runs, each with its summary holding those figures.
    """
    def key(r):
        return (r.workload, r.size, r.strategy.get("device"), backend_of(r.strategy))

    base: dict[tuple, RunRecord] = {}
    for r in runs:
        if r.strategy.get("processes") == 1 and r.summary.wall_s and r.status == "complete":
            base.setdefault(key(r) + (r.repeat,), r)
            base.setdefault(key(r), r)
    out = []
    for r in runs:
        b = base.get(key(r) + (r.repeat,)) or base.get(key(r))
        n = int(r.strategy["processes"])
        if scaling_of(r.strategy) == "weak" and n > 1:
            bt = number(b.summary.throughput) if b is not None else None
            r = dataclasses.replace(r, summary=r.summary.replace(
                speedup=None, efficiency=None, baseline_throughput=bt,
                weak_efficiency=weak_efficiency(number(r.summary.throughput), n, bt)))
            out.append(r)
            continue
        sp = speedup(b.summary.wall_s if b is not None else None, r.summary.wall_s)
        if sp is not None:
            changes = dict(speedup=sp, efficiency=efficiency(sp, n), baseline_wall_s=b.summary.wall_s)
            if scaling_of(r.strategy) == "weak":  # 1 process: the same work as the strong run
                changes.update(weak_efficiency=1.0 if n == 1 else None, baseline_throughput=b.summary.throughput)
            r = dataclasses.replace(r, summary=r.summary.replace(**changes))
        out.append(r)
    # device comparison: how much faster than the cpu run with the same trials, processes and backend;
    # backend comparison: how much faster than tensorflow with the same device, processes and threads
    vs_cpu, vs_tf = speedup_over_cpu(out), speedup_over_tensorflow(out)
    for i, (c, t) in enumerate(zip(vs_cpu, vs_tf)):
        out[i] = dataclasses.replace(out[i], summary=out[i].summary.replace(speedup_vs_cpu=c, speedup_vs_tensorflow=t))
    # over the repeats of each strategy: medians with intervals, and each trial's noise across them
    groups: dict[tuple, list[int]] = {}
    seen: set[int] = set()
    for i, r in enumerate(out):
        if r.status != "skipped" and id(runs[i]) not in seen:  # a run given twice is one measurement
            groups.setdefault(r.group, []).append(i)
        seen.add(id(runs[i]))
    for members in groups.values():
        runs_of = [out[i] for i in members]
        summary = repeat_summary(runs_of)
        changes: dict[str, Any] = {"repeats": summary}
        if len(runs_of) > 1:
            changes["noise"] = trial_noise([t for r in runs_of if r.status == "complete" for t in r.trials if t.ok])
        for i in members:
            out[i] = dataclasses.replace(out[i], summary=out[i].summary.replace(**changes))
    return out
