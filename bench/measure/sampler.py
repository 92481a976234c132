"""A background sampler of the process tree, the machine and (when present) GPUs.

A daemon thread wakes on a drift-free schedule (it sleeps until the next due time, not for a
fixed interval), reads psutil, NVML and the CPU energy counters, and appends one plain dict per
sample. ``stop()`` sets an Event, joins the thread and takes one final sample. Usable as a
context manager.

Energy: ``cpu_energy_j`` is the CPU package energy (RAPL) since the sampler started, or
``"unavailable: <reason>"``; GPU energy is read from each GPU's ``energy_mj`` counter and
``power_w`` in ``gpus`` (see bench.measure.energy for the run summary).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable, Sequence

import psutil

from bench.measure.energy import CpuEnergyMeter, Rapl, POWERCAP_ROOT
from bench.measure.nvml import nvml

DEFAULT_INTERVAL_S = 0.5
#: The share of one core USS reads may take (see :class:`Sampler`): a TensorFlow worker's
#: /proc/PID/smaps_rollup costs the kernel ~14 ms (it walks the page tables of ~1 GB of mappings),
#: so on a machine whose cores all run trials every 2 s it took 2 % of a core from them.
USS_BUDGET = 0.005
# Below this the sampler costs a large share of a core and slows the trials it measures
# (at 1e-9 s it burnt a full core and made trials 2x slower).
MIN_INTERVAL_S = 0.05


def check_interval(value: float, what: str = "--sample-interval") -> float:
    """Refuses a sampler interval below the floor :data:`MIN_INTERVAL_S` (or not a positive number).

    Args:
        value: Seconds between samples, as given.
        what: How the caller names the setting in the message (option or argument name).

    Returns:
        The interval as a float.

    Raises:
        UsageError: ``--sample-interval 1e-09 is below the floor 0.05 s ...``.
    """
    from bench.errors import UsageError

    try:
        v = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"bad {what} {value!r} (expected a number of seconds, at least {MIN_INTERVAL_S:g})") from None
    if not v == v or v == float("inf") or v <= 0:
        raise UsageError(f"bad {what} {value!r} (expected a number of seconds, at least {MIN_INTERVAL_S:g})")
    if v < MIN_INTERVAL_S:
        raise UsageError(
            f"{what} {v:g} is below the floor {MIN_INTERVAL_S:g} s (sampling that often costs a large share "
            f"of a core and slows the trials it measures; give at least {MIN_INTERVAL_S:g}, default {DEFAULT_INTERVAL_S:g})"
        )
    return v


class Sampler:
    """Samples per-core CPU %, process-tree CPU time and memory, system memory and GPUs.

    Its own cost is measured: :attr:`overhead_cpu_s` is the CPU time of the sampler thread (read
    with ``time.thread_time()`` inside it, waits and wake-ups included) plus what ``start()`` and
    the final sample in ``stop()`` cost the caller's thread; :meth:`cost` gives the summary fields.
    The sampler runs in this process, so that CPU time is part of the tree's ``tree_cpu_s``.

    Args:
        interval: Seconds between samples (default 0.5: about 1 % of one core), at least
            :data:`MIN_INTERVAL_S`.
        root_pid: The tree's root (default: this process); every descendant is included.
        gpu: Also sample NVML (lazily initialised; "unavailable" fields without a GPU).
        uss_every: Read USS (costlier: /proc/PID/smaps_rollup) at most every this many samples.
        uss_budget: ...and no more often than keeps those reads under this share of one core:
            after a read that took ``d`` s of CPU the next comes ``d / uss_budget`` s later at the
            earliest (reading 2 TensorFlow workers and this process takes ~40 ms: one read in about
            8 s at the default 0.005). Samples in between have ``tree_uss_bytes`` None;
            ``peak_tree_uss_bytes`` is the peak of the samples that read it. 1.0: reads may take a
            whole core (every ``uss_every`` samples unless one read outlasts the interval).
        clock: Monotonic clock (for tests).
        gpu_indices: NVML indices of the GPUs to sample (default: every GPU), e.g. only the
            GPUs a device strategy gives its workers.
        energy: Also read CPU package energy (RAPL) into ``cpu_energy_j``.
        rapl_root: The powercap directory RAPL is read from (tests give a fake tree).
        pids: ``pids() -> process ids``: watch only these processes (and their descendants)
            besides the root, not every descendant of the root (a pool's workers, not the idle
            workers a cache holds). A process that already ran before :meth:`start` counts its
            CPU time from when it is first seen (a reused worker's earlier trials are not this
            run's).
    """

    def __init__(
        self,
        interval: float = DEFAULT_INTERVAL_S,
        root_pid: int | None = None,
        gpu: bool = True,
        uss_every: int = 4,
        uss_budget: float = USS_BUDGET,
        clock: Callable[[], float] = time.perf_counter,
        gpu_indices: Sequence[int] | None = None,
        energy: bool = True,
        rapl_root: str | os.PathLike = POWERCAP_ROOT,
        pids: Callable[[], Sequence[int]] | None = None,
    ):
        if not interval >= MIN_INTERVAL_S:
            raise ValueError(f"sampler interval must be at least {MIN_INTERVAL_S} s, got {interval!r}")
        self.interval = float(interval)
        self.root = psutil.Process(root_pid or os.getpid())
        self.gpu = gpu
        self.uss_every = max(1, int(uss_every))
        if not uss_budget > 0:
            raise ValueError(f"uss_budget must be a positive share of a core, got {uss_budget!r}")
        self.uss_budget = float(uss_budget)
        self._uss_due = float("-inf")  # clock reading before which no USS read is taken
        self.clock = clock
        self.samples: list[dict] = []
        self.peak_rss_by_pid: dict[int, int] = {}
        self._cpu_by_pid: dict[int, float] = {}
        self._procs: dict[int, psutil.Process] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self._n = 0
        self._thread_cpu_s = 0.0  # CPU time of the sampler thread so far
        self._caller_cpu_s = 0.0  # CPU time start() and the final sample took on the caller's thread
        self._t_end: float | None = None
        self._started = False
        self.gpu_indices = None if gpu_indices is None else [int(i) for i in gpu_indices]
        self.energy = energy
        self.rapl_root = rapl_root
        self._cpu_energy: CpuEnergyMeter | None = None
        self.pids = pids
        self._cpu_base: dict[int, float] = {}  # CPU seconds of a process that ran before start(), when first seen
        self._start_unix = 0.0

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "Sampler":
        c0 = time.thread_time()
        self._t0 = self.clock()
        self._start_unix = time.time()
        self._t_end = None
        self._started = True
        psutil.cpu_percent(percpu=True)  # primes the per-core counters
        if self.energy and self._cpu_energy is None:
            self._cpu_energy = CpuEnergyMeter(Rapl(self.rapl_root))
        self._caller_cpu_s += time.thread_time() - c0
        self._thread = threading.Thread(target=self._loop, name="xpubench-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[dict]:
        """Stops the thread, takes one final sample, returns every sample."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            c0 = time.thread_time()
            self._take()
            self._caller_cpu_s += time.thread_time() - c0
            self._t_end = self.clock()
        return self.samples

    @property
    def t0(self) -> float:
        """The clock reading when :meth:`start` ran (0.0 before): every sample's ``t`` counts from it."""
        return self._t0

    @property
    def overhead_cpu_s(self) -> float:
        """CPU seconds the sampler itself used so far (its thread, plus start and the final sample)."""
        return self._thread_cpu_s + self._caller_cpu_s

    def cost(self) -> dict:
        """The sampler's own cost, as run-summary fields.

        Returns:
            ``sampler_cpu_s`` (CPU seconds it used), ``sampler_wall_s`` (seconds it ran),
            ``sampler_cpu_share`` (``sampler_cpu_s / sampler_wall_s``: the fraction of one core it
            kept busy; None before it ran), ``sampler_samples`` (samples taken) and
            ``sampler_interval_s``.
        """
        end = self._t_end if self._t_end is not None else self.clock()
        wall = max(0.0, end - self._t0) if self._started else 0.0
        cpu = self.overhead_cpu_s
        return {
            "sampler_cpu_s": round(cpu, 6),
            "sampler_wall_s": round(wall, 6),
            "sampler_cpu_share": round(cpu / wall, 6) if wall > 0 else None,
            "sampler_samples": len(self.samples),
            "sampler_interval_s": self.interval,
        }

    def __enter__(self) -> "Sampler":
        return self.start()

    def __exit__(self, *exc) -> bool:
        self.stop()
        return False

    def _loop(self) -> None:
        c0 = time.thread_time()  # this thread's own CPU clock
        try:
            self._take()
            due = self.clock()
            while True:
                self._thread_cpu_s = time.thread_time() - c0
                due += self.interval
                now = self.clock()
                if due < now:  # fell behind (a slow read): skip missed slots, keep the phase
                    due += ((now - due) // self.interval + 1) * self.interval
                if self._stop.wait(due - now):
                    return
                self._take()
        finally:
            self._thread_cpu_s = time.thread_time() - c0

    # ------------------------------------------------------------ one sample

    def _tree(self) -> list[psutil.Process]:
        """The processes sampled now: the root and its descendants, or (with ``pids``) the root and
        the watched processes with their descendants, from one scan of the process table (not one
        scan per watched process)."""
        try:
            parents = _ppid_map()
            roots = [self.root.pid] if self.pids is None else [self.root.pid, *self.pids()]
        except psutil.Error:
            return []
        kids: dict[int, list[int]] = {}
        for pid, ppid in parents.items():
            kids.setdefault(ppid, []).append(pid)
        out: list[psutil.Process] = []
        seen: set[int] = set()
        todo = list(roots)
        while todo:
            pid = todo.pop()
            if pid in seen or (pid != self.root.pid and pid not in parents):  # ended meanwhile: its last CPU time stays counted
                continue
            seen.add(pid)
            p = self._procs.get(pid)
            if p is None:
                try:
                    p = psutil.Process(pid)
                except psutil.Error:
                    continue
                self._procs[pid] = p  # kept, so cpu_times deltas stay per-process
            out.append(p)
            if pid != self.root.pid or self.pids is None:  # with pids, the root's other children are not watched
                todo.extend(kids.get(pid, ()))
        return out

    def _take(self) -> None:
        self._n += 1
        now = self.clock()
        want_uss = (self._n % self.uss_every == 1 or self.uss_every == 1) and now >= self._uss_due
        uss_cpu = 0.0
        rss = uss = 0
        uss_ok = want_uss
        procs = self._tree()
        for p in procs:
            try:
                with p.oneshot():
                    t = p.cpu_times()
                    if p.pid not in self._cpu_by_pid and p.pid != self.root.pid and p.create_time() < self._start_unix - 0.5:
                        self._cpu_base[p.pid] = t.user + t.system  # ran before: its earlier CPU is not this run's
                    self._cpu_by_pid[p.pid] = t.user + t.system - self._cpu_base.get(p.pid, 0.0)
                    mem = p.memory_info()
                    rss += mem.rss
                    if mem.rss > self.peak_rss_by_pid.get(p.pid, 0):
                        self.peak_rss_by_pid[p.pid] = mem.rss
                    if want_uss:
                        c0 = time.thread_time()
                        try:
                            uss += p.memory_full_info().uss
                        except (psutil.AccessDenied, AttributeError):
                            uss_ok = False
                        uss_cpu += time.thread_time() - c0
            except psutil.NoSuchProcess:
                continue  # its last CPU time stays counted in _cpu_by_pid
            except psutil.AccessDenied:
                continue
        if want_uss:  # the next read waits until this one's cost is within the budget
            self._uss_due = now + uss_cpu / self.uss_budget
        vm = psutil.virtual_memory()
        sample = make_sample(
            t=self.clock() - self._t0,
            cpu_percent=psutil.cpu_percent(percpu=True),
            tree_cpu_s=sum(self._cpu_by_pid.values()),
            tree_rss_bytes=rss,
            tree_uss_bytes=uss if uss_ok else None,
            processes=len(procs),
            sys_mem_used_bytes=vm.total - vm.available,
            sys_mem_total_bytes=vm.total,
            cpu_mhz=_cpu_mhz(),
            swap_used_bytes=_swap_used(),
        )
        if self._cpu_energy is not None:
            sample["cpu_energy_j"] = self._cpu_energy.read()
        if self.gpu:
            nv = nvml()
            sample["gpus"] = nv.sample(self.gpu_indices) if nv.available else "unavailable"
        self.samples.append(sample)


def _ppid_map() -> dict[int, int]:
    """``{pid: parent pid}`` of every process, from one scan of the process table.

    psutil's own map (what ``Process.children`` reads) where this psutil has it; else the public,
    slower way.
    """
    ppid_map = getattr(getattr(psutil, "_psplatform", None), "ppid_map", None)
    if callable(ppid_map):
        try:
            return dict(ppid_map())
        except (OSError, psutil.Error):  # fall back to the public way
            pass
    out = {}
    for p in psutil.process_iter(["ppid"]):
        ppid = p.info.get("ppid")
        if ppid is not None:
            out[p.pid] = ppid
    return out


def _cpu_mhz() -> float | None:
    """The current CPU frequency in MHz (psutil.cpu_freq), or None where the machine does not say."""
    try:
        freq = psutil.cpu_freq()
    except (OSError, RuntimeError, NotImplementedError, AttributeError):
        return None
    current = getattr(freq, "current", None)
    return round(float(current), 1) if isinstance(current, (int, float)) and current > 0 else None


def _swap_used() -> int | None:
    """Swap in use, in bytes (None where psutil cannot read it)."""
    try:
        return int(psutil.swap_memory().used)
    except (OSError, RuntimeError, AttributeError):
        return None


def make_sample(
    t: float,
    cpu_percent: Sequence[float],
    tree_cpu_s: float,
    tree_rss_bytes: int = 0,
    tree_uss_bytes: int | None = None,
    processes: int = 1,
    sys_mem_used_bytes: int = 0,
    sys_mem_total_bytes: int = 0,
    cpu_mhz: float | None = None,
    swap_used_bytes: int | None = None,
) -> dict:
    """One sample of the timeline, as the sampler records it (the one place its shape is made;
    tests build synthetic timelines with it too).

    Args:
        t: Seconds since the sampler started.
        cpu_percent: Per-core busy % of the whole machine since the previous sample.
        tree_cpu_s: CPU seconds the benchmark's process tree used so far.
        tree_rss_bytes: RSS of the tree.
        tree_uss_bytes: USS of the tree (None when not read this time).
        processes: Processes in the tree.
        sys_mem_used_bytes: System memory in use (total - available).
        sys_mem_total_bytes: System memory.
        cpu_mhz: Current CPU frequency (None: not readable here).
        swap_used_bytes: Swap in use (None: not readable).
    """
    return {
        "t": round(float(t), 4),
        "cpu_percent": list(cpu_percent),
        "tree_cpu_s": round(float(tree_cpu_s), 4),
        "tree_rss_bytes": tree_rss_bytes,
        "tree_uss_bytes": tree_uss_bytes,
        "processes": processes,
        "sys_mem_used_bytes": sys_mem_used_bytes,
        "sys_mem_total_bytes": sys_mem_total_bytes,
        "cpu_mhz": cpu_mhz,
        "swap_used_bytes": swap_used_bytes,
    }


SAMPLER_COST_KEYS = ("sampler_cpu_s", "sampler_wall_s", "sampler_cpu_share", "sampler_samples", "sampler_interval_s")


def merge_sampler_cost(old: dict, new: dict) -> dict:
    """The sampler-cost summary fields of a resumed run: the earlier part's and this part's added up.

    Args:
        old: The earlier run's summary (a file written before these fields existed has none).
        new: This part's summary (from :meth:`Sampler.cost`; absent when nothing ran now).

    Returns:
        The ``sampler_*`` fields that at least one part recorded.
    """

    def num(d: dict, key: str) -> float | None:
        v = d.get(key)
        return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    out: dict = {}
    for key in ("sampler_cpu_s", "sampler_wall_s", "sampler_samples"):
        parts = [v for v in (num(old, key), num(new, key)) if v is not None]
        if parts:
            out[key] = sum(parts)
    if "sampler_cpu_s" in out and out.get("sampler_wall_s"):
        out["sampler_cpu_share"] = round(out["sampler_cpu_s"] / out["sampler_wall_s"], 6)
    interval = num(new, "sampler_interval_s") or num(old, "sampler_interval_s")
    if interval is not None:
        out["sampler_interval_s"] = interval
    return out
