"""The "why" lines of the headline: one small rule each, speaking only when the numbers show it.

Each rule takes measured figures and returns its sentence, or None when the figures do not show
what it is about (or are missing). :func:`why_lines` applies every rule to a workload's runs.

- :func:`overhead_bound`: the run reached under 1 % of the machine's measured matmul peak.
- :func:`second_thread_idle`: workers were given two or more threads, but the CPU samples show
  about one core busy per worker (between 0.6 and 1.25: a worker that kept less than 0.6 of a
  core busy mostly waited, and says nothing about its threads).
- :func:`gpu_waited`: GPU utilisation p50 under 30 %.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from bench.model import ratios
from bench.model.strategy import DEFAULT_BACKEND
from reports.fmt import ok

PEAK_SHARE_LIMIT = 0.01  # under 1 % of the matmul peak: the run is bound by per-step overhead
IDLE_THREAD_LIMIT = 1.25  # busy cores per worker below this with >= 2 threads: the extra thread idled
BUSY_WORKER_MIN = 0.6  # ... but only when a worker kept at least this much of a core busy (it computed at all)
LOW_GPU_UTIL = 30.0  # GPU utilisation p50 (%) below this: the GPU waited on the host


def overhead_bound(gflops: Any, peak_gflops: Any) -> str | None:
    """Per-step overhead dominates when the run's achieved GFLOP/s is under 1 % of the peak.

    Args:
        gflops: The run's achieved GFLOP/s (analytic FLOPs / wall seconds).
        peak_gflops: The machine's measured fp32 matmul GFLOP/s (``bench calibrate``).
    """
    if not ok(gflops) or not ok(peak_gflops) or float(peak_gflops) <= 0 or float(gflops) <= 0:
        return None
    share = float(gflops) / float(peak_gflops)
    if share >= PEAK_SHARE_LIMIT:
        return None
    return (f"per-step overhead dominates: a faster device will not help; bigger batches or fewer calls will "
            f"({float(gflops):.3g} GFLOP/s is {100 * share:.2g} % of this machine's measured "
            f"{float(peak_gflops):,.1f} GFLOP/s matmul peak)")


def second_thread_idle(processes: Any, threads: Any, busy_cores: Any) -> str | None:
    """Workers had two or more threads each, yet about one core per worker was busy.

    Args:
        processes: Worker processes of the run.
        threads: Threads each worker was given.
        busy_cores: Cores busy during the run (from the per-core CPU samples; see
            :func:`run_busy_cores`).
    """
    if not ok(processes) or not ok(threads) or not ok(busy_cores) or int(processes) < 1 or int(threads) < 2:
        return None
    per_worker = float(busy_cores) / int(processes)
    if per_worker >= IDLE_THREAD_LIMIT or per_worker < BUSY_WORKER_MIN:  # below: the worker mostly waited
        return None
    workers = f"{int(processes)} process{'es' if int(processes) > 1 else ''}"
    return (f"the second thread sat idle: processes, not threads, pay off here "
            f"({workers} × {int(threads)} threads kept {float(busy_cores):.1f} cores busy)")


def gpu_waited(util_p50: Any) -> str | None:
    """The GPU was busy less than 30 % of the time (median of the samples).

    Args:
        util_p50: GPU utilisation p50, in percent.
    """
    if not ok(util_p50) or float(util_p50) >= LOW_GPU_UTIL:
        return None
    return f"the GPU waited on the host (GPU utilisation p50 {float(util_p50):.0f} %)"


def run_busy_cores(run: Any) -> float | None:
    """Cores a run kept busy: the smaller of the per-core CPU samples' busy cores (p50, the
    whole machine) and the process tree's CPU seconds / wall (the workers alone).

    Reads ``busy_cores_p50`` and ``cpu_wall_ratio`` from the run's summary; a file written
    before ``busy_cores_p50`` existed has it taken from its samples.

    Args:
        run: A :class:`reports.load.Run`.
    """
    s = run.summary
    machine = s.busy_cores_p50 if "busy_cores_p50" in s else ratios.busy_cores(run.samples)
    values = [float(v) for v in (machine, s.cpu_wall_ratio) if ok(v)]
    return min(values) if values else None


def why_lines(runs: Sequence[Any], machine: Mapping[str, Any]) -> list[str]:
    """Every rule that the numbers of one workload's runs on one machine show.

    Args:
        runs: The workload's measured :class:`reports.load.Run` objects on one machine.
        machine: That machine's fingerprint (``calibration.matmul_gflops`` for the peak).
    """
    out: list[str] = []
    cal = machine.get("calibration") if isinstance(machine.get("calibration"), Mapping) else {}
    peak = cal.get("matmul_gflops")
    best = max((float(r.summary.gflops) for r in runs if ok(r.summary.gflops)), default=None)
    out.append(overhead_bound(best, peak))
    threaded = [r for r in runs if r.device == "cpu" and r.threads and r.threads >= 2]
    idle = [(r, second_thread_idle(r.processes, r.threads, run_busy_cores(r))) for r in threaded]
    r, line = next(((r, line) for r, line in idle if line), (None, None))
    if line and getattr(r, "backend", DEFAULT_BACKEND) != DEFAULT_BACKEND:  # say which backend's run showed it
        line = f"{line} (on {r.backend})"
    out.append(line)
    gpu = [r for r in runs if r.device != "cpu" and ok(r.summary.gpu_util_p50)]
    if gpu:
        out.append(gpu_waited(min(float(r.summary.gpu_util_p50) for r in gpu)))
    return [line for line in out if line]


__all__ = ["gpu_waited", "overhead_bound", "run_busy_cores", "second_thread_idle", "why_lines",
           "BUSY_WORKER_MIN", "IDLE_THREAD_LIMIT", "LOW_GPU_UTIL", "PEAK_SHARE_LIMIT"]
