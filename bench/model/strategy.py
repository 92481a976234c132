"""Strategies: which Keras backend, which device, how many worker processes, how many threads each.

A Strategy is a value: backend, device name, number of worker processes and threads per process.
Parsing and validation live here so every entry point rejects bad input the same way. A run's
strategy mapping (``RunRecord.strategy``) without a ``backend`` (every file written before
backends were an axis) is a TensorFlow run: read it with :func:`backend_of`.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Any, Mapping, Sequence

from bench.errors import UsageError

MAX_PROCESSES = 256

#: How work grows with the process count: ``strong`` (the trial list split over the workers) or
#: ``weak`` (every worker runs the whole trial list: N times the work at N processes).
SCALINGS = ("strong", "weak")

#: The Keras backend of a strategy that names none (and of every run recorded before backends).
DEFAULT_BACKEND = "tensorflow"

# The environment variables that carry a strategy's thread caps into a worker (set before it
# imports TensorFlow; bench.engines.childenv.thread_env fills them, the fingerprint records them).
THREAD_VARS = (
    "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS",
    "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
)


def usable_cores() -> int:
    """CPUs this process may run on (its affinity: taskset, cgroup cpusets), not os.cpu_count()."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


@dataclasses.dataclass(frozen=True)
class Strategy:
    """One way of running a sweep.

    Args:
        device: Device strategy name (``cpu``, ``gpu``, ``gpu:K``, ``mirrored``).
        processes: Number of worker processes running trials at once.
        threads_per_process: Intra-op / OMP threads in each worker.
        inter_op_threads: Inter-op threads in each worker.
        backend: The Keras backend the workers run (``tensorflow``, ``jax``, ``torch``).
        scaling: ``strong`` (the trials split over the workers) or ``weak`` (each worker runs
            every trial: N times the work); recorded only when weak.
    """

    device: str = "cpu"
    processes: int = 1
    threads_per_process: int = 1
    inter_op_threads: int = 1
    backend: str = DEFAULT_BACKEND
    scaling: str = "strong"

    def to_dict(self) -> dict:
        """The strategy as a run records it (``backend`` included; ``scaling`` only when weak, so a
        strong run records what it always did)."""
        d = dataclasses.asdict(self)
        if d["scaling"] == "strong":
            del d["scaling"]
        return d

    @property
    def label(self) -> str:
        """``cpu×2p×1t`` (tensorflow, as before backends were an axis), else ``jax:cpu×2p×1t``;
        weak scaling ends in ``weak``."""
        text = f"{self.device}×{self.processes}p×{self.threads_per_process}t" + (" weak" if self.scaling == "weak" else "")
        return backend_label(self.backend, text)


def backend_of(strategy: Mapping[str, Any] | Strategy) -> str:
    """The backend of a recorded strategy mapping (or a Strategy); one without any is tensorflow.

    Args:
        strategy: ``RunRecord.strategy`` (a file's, perhaps from before backends), or a Strategy.
    """
    if isinstance(strategy, Strategy):
        return strategy.backend
    value = strategy.get("backend") if isinstance(strategy, Mapping) else None
    return value if isinstance(value, str) and value else DEFAULT_BACKEND


def scaling_of(strategy: Mapping[str, Any] | Strategy) -> str:
    """The scaling of a recorded strategy mapping (or a Strategy): ``weak`` or ``strong`` (default).

    Args:
        strategy: ``RunRecord.strategy`` or a Strategy.
    """
    if isinstance(strategy, Strategy):
        return strategy.scaling
    value = strategy.get("scaling") if isinstance(strategy, Mapping) else None
    return "weak" if value == "weak" else "strong"


def parse_scalings(text: Any) -> tuple[str, ...]:
    """``strong``, ``weak`` or ``strong,weak`` (a list too) -> the scalings, in the order given.

    Raises:
        UsageError: an unknown name, naming it and the choices.
    """
    parts = list(text) if isinstance(text, (list, tuple)) else str(text if text is not None else "strong").split(",")
    out: list[str] = []
    for part in parts:
        name = str(part).strip()
        if name not in SCALINGS:
            raise UsageError(f"unknown scaling {name!r} (choose from: {', '.join(SCALINGS)})")
        if name not in out:
            out.append(name)
    if not out:
        raise UsageError(f"bad scaling {text!r} (choose from: {', '.join(SCALINGS)})")
    return tuple(out)


def backend_label(backend: str, text: str) -> str:
    """``text`` (a strategy's short name) prefixed with its backend unless that is tensorflow.

    Args:
        backend: The backend name.
        text: E.g. ``cpu×2p``.
    """
    return text if backend == DEFAULT_BACKEND else f"{backend}:{text}"


def default_threads(processes: int, cores: int | None = None) -> int:
    """Threads per worker: usable cores // processes, at least 1."""
    cores = usable_cores() if cores is None else cores
    return max(1, cores // processes)


def parse_count(text: str, what: str = "process count") -> int:
    """Parses one positive integer, or raises UsageError naming the bad value."""
    try:
        value = int(str(text).strip())
    except ValueError:
        raise UsageError(f"bad {what} {text!r} (expected a whole number from 1 to {MAX_PROCESSES})") from None
    if not 1 <= value <= MAX_PROCESSES:
        raise UsageError(f"bad {what} {text!r} (expected a whole number from 1 to {MAX_PROCESSES})")
    return value


def parse_processes(text: str | list | tuple | int) -> list[int]:
    """Parses ``"1,2,4"`` (or ``"1-4"``, or a list) into sorted unique process counts.

    Warns (once per call) when a count exceeds the usable cores: that oversubscribes the CPU.

    Raises:
        UsageError: for 0, negatives, non-numbers or counts above MAX_PROCESSES.
    """
    if isinstance(text, int):
        parts = [str(text)]
    elif isinstance(text, (list, tuple)):
        parts = [str(p) for p in text]
    else:
        parts = [p for p in str(text).split(",")]
    counts: set[int] = set()
    for part in parts:
        part = part.strip()
        if "-" in part[1:]:
            lo, _, hi = part.partition("-")
            a, b = parse_count(lo), parse_count(hi)
            if a > b:
                raise UsageError(f"bad process range {part!r} (expected low-high, e.g. 1-4)")
            counts.update(range(a, b + 1))
        else:
            counts.add(parse_count(part))
    if not counts:
        raise UsageError(f"bad process count {text!r} (expected e.g. 1,2,4)")
    cores = usable_cores()
    over = sorted(c for c in counts if c > cores)
    if over:
        warnings.warn(
            f"process count {over[-1]} is above the {cores} usable cores: workers will share cores",
            stacklevel=2,
        )
    return sorted(counts)


def make_strategies(
    devices: Sequence[str],
    processes: Sequence[int],
    threads: int | None = None,
    backends: Sequence[str] = (DEFAULT_BACKEND,),
    scalings: Sequence[str] = ("strong",),
) -> list[Strategy]:
    """One strategy per (backend, device, scaling, process count), in that order, with thread capping.

    Backends vary slowest and process counts fastest, so each backend's 1-process run (its
    speedup baseline) comes before its other counts. A weak-scaling run at 1 process is the same
    work as the strong one, so with both scalings asked for it is run once (as strong).

    Args:
        devices: Device specs.
        processes: Process counts.
        threads: Threads per worker (None: usable cores // processes).
        backends: Keras backend names (validated by the caller).
        scalings: ``strong`` and/or ``weak``.
    """
    out = []
    scalings = tuple(scalings) or ("strong",)
    for backend in backends or (DEFAULT_BACKEND,):
        for device in devices:
            for scaling in scalings:
                for n in processes:
                    if scaling == "weak" and n == 1 and "strong" in scalings:
                        continue
                    t = threads if threads else default_threads(n)
                    out.append(Strategy(device=device, processes=n, threads_per_process=t,
                                        inter_op_threads=1 if t <= 2 else 2, backend=backend, scaling=scaling))
    return out
