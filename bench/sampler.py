"""A background sampler of the process tree, the machine and (when present) GPUs.

A daemon thread wakes on a drift-free schedule (it sleeps until the next due time, not for a
fixed interval), reads psutil, NVML and the CPU energy counters, and appends one plain dict per
sample. ``stop()`` sets an Event, joins the thread and takes one final sample. Usable as a
context manager.

Energy: ``cpu_energy_j`` is the CPU package energy (RAPL) since the sampler started, or
``"unavailable: <reason>"``; GPU energy is read from each GPU's ``energy_mj`` counter and
``power_w`` in ``gpus`` (see bench.energy for the run summary).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable, Sequence

import psutil

from bench.energy import CpuEnergyMeter, Rapl, POWERCAP_ROOT
from bench.nvml import nvml

DEFAULT_INTERVAL_S = 0.5


class Sampler:
    """Samples per-core CPU %, process-tree CPU time and memory, system memory and GPUs.

    Args:
        interval: Seconds between samples (default 0.5: about 1 % of one core).
        root_pid: The tree's root (default: this process); every descendant is included.
        gpu: Also sample NVML (lazily initialised; "unavailable" fields without a GPU).
        uss_every: Read USS (costlier: /proc/PID/smaps_rollup) every this many samples.
        clock: Monotonic clock (for tests).
        gpu_indices: NVML indices of the GPUs to sample (default: every GPU), e.g. only the
            GPUs a device strategy gives its workers.
        energy: Also read CPU package energy (RAPL) into ``cpu_energy_j``.
        rapl_root: The powercap directory RAPL is read from (tests give a fake tree).
    """

    def __init__(
        self,
        interval: float = DEFAULT_INTERVAL_S,
        root_pid: int | None = None,
        gpu: bool = True,
        uss_every: int = 4,
        clock: Callable[[], float] = time.perf_counter,
        gpu_indices: Sequence[int] | None = None,
        energy: bool = True,
        rapl_root: str | os.PathLike = POWERCAP_ROOT,
    ):
        if not interval > 0:
            raise ValueError(f"sampler interval must be > 0, got {interval!r}")
        self.interval = float(interval)
        self.root = psutil.Process(root_pid or os.getpid())
        self.gpu = gpu
        self.uss_every = max(1, int(uss_every))
        self.clock = clock
        self.samples: list[dict] = []
        self.peak_rss_by_pid: dict[int, int] = {}
        self._cpu_by_pid: dict[int, float] = {}
        self._procs: dict[int, psutil.Process] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self._n = 0
        self._self_cpu0 = 0.0
        self.overhead_cpu_s = 0.0
        self.gpu_indices = None if gpu_indices is None else [int(i) for i in gpu_indices]
        self.energy = energy
        self.rapl_root = rapl_root
        self._cpu_energy: CpuEnergyMeter | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "Sampler":
        self._t0 = self.clock()
        psutil.cpu_percent(percpu=True)  # primes the per-core counters
        if self.energy and self._cpu_energy is None:
            self._cpu_energy = CpuEnergyMeter(Rapl(self.rapl_root))
        self._thread = threading.Thread(target=self._loop, name="xpubench-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[dict]:
        """Stops the thread, takes one final sample, returns every sample."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self._take()
        return self.samples

    def __enter__(self) -> "Sampler":
        return self.start()

    def __exit__(self, *exc) -> bool:
        self.stop()
        return False

    def _loop(self) -> None:
        self._take()
        due = self.clock()
        while True:
            due += self.interval
            now = self.clock()
            if due < now:  # fell behind (a slow read): skip missed slots, keep the phase
                due += ((now - due) // self.interval + 1) * self.interval
            if self._stop.wait(due - now):
                return
            self._take()

    # ------------------------------------------------------------ one sample

    def _tree(self) -> list[psutil.Process]:
        try:
            procs = [self.root] + self.root.children(recursive=True)
        except psutil.Error:
            return []
        # keep Process objects so cpu_times deltas stay per-process
        out = []
        for p in procs:
            out.append(self._procs.setdefault(p.pid, p))
        return out

    def _take(self) -> None:
        c0 = time.thread_time()
        self._n += 1
        want_uss = self._n % self.uss_every == 1 or self.uss_every == 1
        rss = uss = 0
        uss_ok = want_uss
        procs = self._tree()
        for p in procs:
            try:
                with p.oneshot():
                    t = p.cpu_times()
                    self._cpu_by_pid[p.pid] = t.user + t.system
                    mem = p.memory_info()
                    rss += mem.rss
                    if mem.rss > self.peak_rss_by_pid.get(p.pid, 0):
                        self.peak_rss_by_pid[p.pid] = mem.rss
                    if want_uss:
                        try:
                            uss += p.memory_full_info().uss
                        except (psutil.AccessDenied, AttributeError):
                            uss_ok = False
            except psutil.NoSuchProcess:
                continue  # its last CPU time stays counted in _cpu_by_pid
            except psutil.AccessDenied:
                continue
        vm = psutil.virtual_memory()
        sample = {
            "t": round(self.clock() - self._t0, 4),
            "cpu_percent": psutil.cpu_percent(percpu=True),
            "tree_cpu_s": round(sum(self._cpu_by_pid.values()), 4),
            "tree_rss_bytes": rss,
            "tree_uss_bytes": uss if uss_ok else None,
            "processes": len(procs),
            "sys_mem_used_bytes": vm.total - vm.available,
            "sys_mem_total_bytes": vm.total,
        }
        if self._cpu_energy is not None:
            sample["cpu_energy_j"] = self._cpu_energy.read()
        if self.gpu:
            nv = nvml()
            sample["gpus"] = nv.sample(self.gpu_indices) if nv.available else "unavailable"
        self.samples.append(sample)
        self.overhead_cpu_s += time.thread_time() - c0
