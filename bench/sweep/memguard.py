"""Memory guard: will N workers fit in RAM? Checked before a pool of N workers starts.

A worker's peak memory is estimated from what was measured on this machine: an earlier run of
the same workload, size, device and Keras backend in this sweep, a previous result file (same host, RAM and
CPU), or a first trial run alone (a probe, done by the runner). N workers fit when
``N × peak <= available − headroom``. When they do not, the guard lowers N to what fits (with a
warning) or, when not even one worker fits, refuses; ``--force`` overrides both. Every decision
is recorded in the result (``Result.decisions``).

Peak RSS counts shared libraries once per worker, so the estimate errs on the safe side.
``XPUBENCH_AVAILABLE_RAM`` (e.g. ``4G``) pretends that much RAM is free: a what-if for a smaller
machine, and a test hook.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from bench.errors import ResultFileError, UsageError
from bench.model.ratios import number
from bench.model.strategy import DEFAULT_BACKEND, backend_label, backend_of

HEADROOM_FRACTION = 0.10
HEADROOM_MIN_BYTES = 512 * 2**20
ENV_AVAILABLE = "XPUBENCH_AVAILABLE_RAM"
# With nothing measured yet, a worker is assumed to peak at this (TensorFlow alone takes ~0.6 GiB);
# only when N such workers would not fit is one trial run alone first to measure it.
ASSUMED_PEAK_BYTES = 2 * 2**30
SCAN_LIMIT = 40  # newest result files looked at in a directory
SCAN_MAX_BYTES = 64 * 2**20  # bigger files are skipped (reading them costs more than a probe)

_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def fmt_bytes(n: float | None) -> str:
    """``1.5 GiB`` / ``700 MiB``."""
    if n is None:
        return "?"
    if abs(n) >= 2**30:
        return f"{n / 2**30:.1f} GiB"
    return f"{n / 2**20:.0f} MiB"


def parse_bytes(text: str) -> int:
    """``"4G"``, ``"512M"``, ``"1.5GiB"`` or a plain number of bytes.

    Raises:
        UsageError: not a size.
    """
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgtKMGT]?)(?:i?[bB])?\s*", str(text))
    if not m:
        raise UsageError(f"bad memory size {text!r} in {ENV_AVAILABLE} (expected e.g. 4G, 512M or bytes)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


@dataclasses.dataclass(frozen=True)
class Memory:
    """RAM now: what is available, the total, and how much the guard keeps free."""

    available: int
    total: int
    headroom: int
    pretend: bool = False

    @property
    def budget(self) -> int:
        """Bytes workers may use."""
        return max(0, self.available - self.headroom)


def memory_now(environ: Mapping[str, str] | None = None) -> Memory:
    """Available and total RAM (``XPUBENCH_AVAILABLE_RAM`` pretends both), with the headroom kept free."""
    environ = os.environ if environ is None else environ
    override = environ.get(ENV_AVAILABLE)
    if override:
        available = total = parse_bytes(override)
        pretend = True
    else:
        import psutil

        vm = psutil.virtual_memory()
        available, total, pretend = int(vm.available), int(vm.total), False
    headroom = max(HEADROOM_MIN_BYTES, int(HEADROOM_FRACTION * total))
    return Memory(available=available, total=total, headroom=headroom, pretend=pretend)


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A worker's peak memory and where the figure comes from (one line, for people)."""

    peak_bytes: int
    source: str


def run_peak(run) -> int:
    """Peak RSS of one worker in a RunRecord (its summary, else its trials); 0 if unknown."""
    peaks = [t.peak_rss_bytes for t in run.trials if isinstance(t.peak_rss_bytes, int)]
    summary = number(getattr(run.summary, "peak_worker_rss_bytes", None))
    if summary is not None:
        peaks.append(int(summary))
    return max(peaks, default=0)


def same_machine(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Two fingerprints of the same machine: same host name, RAM and CPU."""
    keys = ("hostname", "ram_bytes", "cpu")
    return all(a.get(k) == b.get(k) for k in keys) and a.get("hostname") is not None


def estimate(
    runs: Iterable[tuple[str, Any]], workload: str, size: str, device: str, backend: str = DEFAULT_BACKEND
) -> Estimate | None:
    """The largest worker peak among runs of the same workload, size, device and backend (a
    JAX worker's memory says little about a TensorFlow worker's).

    Args:
        runs: ``(where, RunRecord)`` pairs; ``where`` says where the run is, e.g. ``"in results/x.json"``.
        workload: Workload name.
        size: Workload size.
        device: Device spec of the strategy about to run.
        backend: Its Keras backend (a run recorded without one is tensorflow).
    """
    best: Estimate | None = None
    for where, run in runs:
        if run.workload != workload or run.size != size or run.strategy.get("device") != device:
            continue
        if backend_of(run.strategy) != backend:
            continue
        peak = run_peak(run)
        if peak > 0 and (best is None or peak > best.peak_bytes):
            label = backend_label(backend, f"{run.strategy.get('device')}×{run.strategy.get('processes')}p")
            best = Estimate(peak, f"{run.workload} {run.size} {label} {where}")
    return best


def previous_runs(places: Sequence[str | os.PathLike], machine: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Runs from earlier result files of this machine.

    Args:
        places: Result files and directories (the newest ``SCAN_LIMIT`` ``*.json`` in each).
        machine: This machine's fingerprint; files of other machines are ignored.

    Unreadable or foreign files are skipped silently: this is a hint, not an input.
    """
    from bench.model import results

    files: list[Path] = []
    for place in places:
        p = Path(place)
        if p.is_dir():
            found = []
            for f in p.glob("*.json"):
                try:
                    found.append((f.stat().st_mtime, f))
                except OSError:
                    continue
            files.extend(f for _, f in sorted(found, reverse=True)[:SCAN_LIMIT])
        elif p.is_file():
            files.append(p)
    out = []
    for f in dict.fromkeys(files):
        try:
            if f.stat().st_size > SCAN_MAX_BYTES:
                continue
            result = results.load(f)
        except (OSError, ResultFileError):
            continue
        if same_machine(result.machine, machine):
            out.extend((f"in {f}", run) for run in result.runs)
    return out


@dataclasses.dataclass(frozen=True)
class Decision:
    """What the guard decided for one strategy.

    Args:
        action: ``ok``, ``lowered``, ``refused``, ``forced``, ``unmeasured`` (no figure) or
            ``not_applicable`` (workers are not on this machine).
        requested: Worker processes asked for.
        processes: Worker processes to run (0 when refused).
        message: One line for the console and the result.
        peak_bytes: Estimated peak memory of one worker.
        source: Where the estimate comes from.
        memory: RAM when the decision was made.
    """

    action: str
    requested: int
    processes: int
    message: str
    peak_bytes: int | None = None
    source: str = ""
    memory: Memory | None = None

    @property
    def warn(self) -> bool:
        """Whether the console should show it as a warning."""
        return self.action in ("lowered", "refused", "forced")

    def to_dict(self, strategy: Mapping[str, Any] | None = None) -> dict:
        """The record kept in ``Result.decisions``."""
        out = {
            "kind": "memory_guard",
            "action": self.action,
            "requested_processes": self.requested,
            "processes": self.processes,
            "peak_worker_bytes": self.peak_bytes,
            "estimate_source": self.source,
            "message": self.message,
        }
        if self.memory is not None:
            out.update(
                available_bytes=self.memory.available,
                total_bytes=self.memory.total,
                headroom_bytes=self.memory.headroom,
                pretend=self.memory.pretend,
            )
        if strategy is not None:
            out["strategy"] = dict(strategy)
        return out


def assumed(requested: int, memory: Memory) -> Estimate | None:
    """A generous stand-in estimate when ``requested`` workers of ASSUMED_PEAK_BYTES fit, else None.

    It is recorded as an assumption, never as a measurement; the run then measures the real peak.

    Args:
        requested: Worker processes asked for.
        memory: RAM now.
    """
    if requested * ASSUMED_PEAK_BYTES > memory.budget:
        return None
    return Estimate(ASSUMED_PEAK_BYTES, f"assumed, nothing measured yet: {fmt_bytes(ASSUMED_PEAK_BYTES)} per worker is generous")


def _plural(n: int) -> str:
    return f"{n} worker" + ("" if n == 1 else "s")


def decide(requested: int, est: Estimate | None, memory: Memory, force: bool = False) -> Decision:
    """Decides how many of ``requested`` workers to start.

    Args:
        requested: Worker processes asked for.
        est: Estimated per-worker peak (None: nothing measured yet).
        memory: RAM now (see :func:`memory_now`).
        force: Run ``requested`` workers whatever the estimate says.
    """
    free = f"{fmt_bytes(memory.available)} available (keeping {fmt_bytes(memory.headroom)} free)"
    if est is None:
        return Decision("unmeasured", requested, requested, f"no memory figure for this workload yet; {_plural(requested)} unguarded", memory=memory)
    fit = memory.budget // est.peak_bytes
    need = requested * est.peak_bytes
    base = dict(peak_bytes=est.peak_bytes, source=est.source, memory=memory)
    sizes = f"{_plural(requested)} × {fmt_bytes(est.peak_bytes)} peak ({est.source}) = {fmt_bytes(need)}"
    if fit >= requested:
        return Decision("ok", requested, requested, f"{sizes} fits in {free}", **base)
    if force:
        return Decision("forced", requested, requested, f"--force: running {sizes}, more than fits in {free}", **base)
    if fit >= 1:
        return Decision(
            "lowered", requested, int(fit),
            f"{sizes} would not fit in {free}: running {_plural(int(fit))} instead (--force runs {requested})",
            **base,
        )
    return Decision(
        "refused", requested, 0,
        f"one worker needs about {fmt_bytes(est.peak_bytes)} ({est.source}) but only "
        f"{fmt_bytes(memory.available)} is available and {fmt_bytes(memory.headroom)} of it is kept free; "
        "free some memory or use --force",
        **base,
    )


def preflight(history: Iterable[tuple[str, Any]], workload: str, size: str, strategies: Sequence[Any]) -> None:
    """Refuses, before anything starts, a sweep of which not even one worker fits.

    Args:
        history: ``(where, RunRecord)`` pairs of earlier runs of this machine.
        workload: Workload name.
        size: Workload size.
        strategies: The sweep's strategies (``device``, ``processes``, ``backend``).

    Raises:
        UsageError: ``memory guard: one worker needs about ...``.
    """
    history = list(history)
    memory = memory_now()
    for strategy in strategies:
        est = estimate(history, workload, size, strategy.device, getattr(strategy, "backend", DEFAULT_BACKEND))
        decision = decide(strategy.processes, est, memory)
        if decision.action == "refused":
            raise UsageError(f"memory guard: {decision.message}")
