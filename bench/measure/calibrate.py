"""``bench calibrate``: this machine's ceiling for running independent work in parallel.

Two short measurements (under 10 s together), no TensorFlow:

- **Parallel efficiency ceiling**: the same fixed, single-threaded numpy kernel (a small fp32
  matmul + ReLU, cache-resident) runs in 1, 2, ... N fresh processes started at the same
  instant; efficiency(N) = time of one process alone / time until the slowest of N finishes.
  Perfect hardware gives 1.0 at every N; SMT siblings, shared caches, memory bandwidth, turbo
  that drops as more cores wake, and other tenants of a cloud host pull it down. A sweep of
  independent trials cannot do better than this on this machine, so reports show a run's
  efficiency both against ideal N× and against this ceiling.
- **fp32 matmul GFLOP/s**: a 1024×1024 numpy matmul on all usable cores (and on one), the peak a
  workload's achieved GFLOP/s is compared with.

The result is printed as a table, written as JSON where ``--out`` says, and cached per machine
(``~/.cache/xpubench/calibration-<hostname>.json``), from where the runner and the pytest plugin
read it with :func:`cached_calibration` and hand it to :func:`bench.measure.machine.fingerprint`, so every
result carries it as ``machine["calibration"]`` (bench.measure.machine does not import this module).

Processes are fresh interpreters (``subprocess``), never forks, as everywhere in xpubench.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Callable, Mapping

from bench.errors import UsageError

SCHEMA = 1
KERNEL_N = 160  # side of the kernel's matrices: 3 × 100 KiB fp32, fits in L2
TARGET_ROUND_S = 0.25  # one process's kernel time per round
REPEATS = (2, 5)  # rounds per process count (fewest, most); the best is kept (the ceiling)
MATMUL_N = 1024
MATMUL_S = 0.5  # seconds of matmul per thread setting
BUDGET_S = 8.0  # stop adding process counts past this (the whole command stays under 10 s)
CHILD_START_TIMEOUT_S = 60.0


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def cache_path(hostname: str | None = None) -> Path:
    """Where this machine's calibration is cached (``$XDG_CACHE_HOME`` or ``~/.cache``)."""
    host = hostname or socket.gethostname()
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in host) or "host"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "xpubench" / f"calibration-{safe}.json"


def process_counts(max_processes: int) -> list[int]:
    """The process counts measured: every count up to 8, then powers of two and the maximum."""
    if max_processes <= 8:
        return list(range(1, max_processes + 1))
    counts = {1, 2, 4, 6, 8, max_processes}
    p = 16
    while p < max_processes:
        counts.add(p)
        p *= 2
    return sorted(counts)


# ---------------------------------------------------------------- the cache (read side)


def _valid(doc: Any) -> bool:
    if not isinstance(doc, dict):
        return False
    eff = doc.get("parallel_efficiency")
    if not isinstance(eff, dict) or not eff:
        return False
    for k, v in eff.items():
        if not (isinstance(k, str) and k.isdigit() and int(k) >= 1):
            return False
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 2:
            return False
    g = doc.get("matmul_gflops")
    if isinstance(g, bool) or not isinstance(g, (int, float)) or not 0 < g < 1e9:
        return False
    return isinstance(doc.get("measured_at"), str)


def summary(doc: dict) -> dict:
    """The part of a calibration a result carries as ``machine["calibration"]``."""
    keys = ("parallel_efficiency", "matmul_gflops", "matmul_gflops_all_cores", "matmul_gflops_1thread", "measured_at",
            "usable_cores", "load_avg_1m")
    out = {k: doc[k] for k in keys if k in doc}
    for k in ("matmul_gflops_all_cores", "matmul_gflops_1thread", "usable_cores", "load_avg_1m"):
        v = out.get(k)  # a malformed cached figure is dropped, so every result file stays loadable
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not abs(v) < 1e15):
            del out[k]
    return out


def cached_calibration(path: str | os.PathLike | None = None) -> dict | None:
    """This machine's cached calibration, or None (never measured, unreadable or malformed).

    Reading never raises and never executes anything from the file (plain JSON, checked).

    Args:
        path: The cache file (default: :func:`cache_path`).

    Returns:
        ``{"parallel_efficiency": {"1": 1.0, "2": ...}, "matmul_gflops": ...,
        "matmul_gflops_1thread": ..., "measured_at": ..., "usable_cores": ..., "load_avg_1m": ...}``
    """
    p = Path(path) if path is not None else cache_path()
    from bench.errors import UsageError as _Unreadable
    from bench.model.safefile import read_regular

    try:
        doc = json.loads(read_regular(p, 1_000_000, "calibration file").decode("utf-8"))  # never a FIFO/device
    except (_Unreadable, ValueError, UnicodeDecodeError, RecursionError):
        return None
    return summary(doc) if _valid(doc) else None


def ceiling_for(calibration: dict | None, processes: int) -> float | None:
    """The measured efficiency ceiling at ``processes`` (interpolated between measured counts)."""
    if not calibration or not isinstance(calibration.get("parallel_efficiency"), dict):
        return None
    pts = sorted((int(k), float(v)) for k, v in calibration["parallel_efficiency"].items())
    if not pts:
        return None
    if processes <= pts[0][0]:
        return pts[0][1]
    for (n0, e0), (n1, e1) in zip(pts, pts[1:]):
        if n0 <= processes <= n1:
            return e0 + (e1 - e0) * (processes - n0) / (n1 - n0)
    return None  # beyond what was measured


# ---------------------------------------------------------------- achieved GFLOP/s (optional, for workloads)


# dense_train_flops lives in bench.measure.flops (with the other layer counts); importable from here too.
from bench.measure.flops import dense_train_flops  # noqa: E402,F401


def peak_share(flops: float, wall_s: float, calibration: dict | None) -> float | None:
    """Achieved GFLOP/s as a share of the machine's measured fp32 matmul peak (None if unknown)."""
    peak = (calibration or {}).get("matmul_gflops")
    if not isinstance(peak, (int, float)) or peak <= 0 or not wall_s or wall_s <= 0:
        return None
    return flops / wall_s / 1e9 / peak


# ---------------------------------------------------------------- the child processes


def _child() -> None:
    """A measuring process: JSON commands on stdin, JSON replies on stdout (one line each)."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((KERNEL_N, KERNEL_N), dtype=np.float32)
    b = rng.standard_normal((KERNEL_N, KERNEL_N), dtype=np.float32) / np.float32(KERNEL_N)

    def kernel(reps: int) -> float:
        x = a
        for _ in range(reps):
            x = np.maximum(x @ b, 0.0) + a
        return float(x[0, 0])

    kernel(20)  # warm up caches and the BLAS

    def reply(msg: dict) -> None:
        sys.stdout.write(json.dumps(msg) + "\n")
        sys.stdout.flush()

    reply({"type": "ready", "numpy": np.__version__, "blas": _blas_name(np)})
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd.get("op")
        if op == "quit":
            break
        if op == "size":
            reps, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < 0.05:
                kernel(10)
                reps += 10
            reply({"per_rep_s": (time.perf_counter() - t0) / reps})
        elif op == "kernel":
            while time.monotonic() < cmd["start_at"]:
                pass  # spin: every process starts the kernel at the same instant
            t0 = time.monotonic()
            kernel(int(cmd["reps"]))
            t1 = time.monotonic()
            reply({"start": t0, "end": t1})
        elif op == "matmul":
            n = int(cmd["n"])
            x = rng.standard_normal((n, n), dtype=np.float32)
            y = rng.standard_normal((n, n), dtype=np.float32)
            x @ y  # warm-up: BLAS thread pool, page faults
            best, t_end = math.inf, time.perf_counter() + float(cmd["seconds"])
            calls = 0
            while calls < 2 or time.perf_counter() < t_end:
                t0 = time.perf_counter()
                x @ y
                best = min(best, time.perf_counter() - t0)
                calls += 1
            reply({"gflops": 2.0 * n**3 / best / 1e9, "calls": calls})


def _blas_name(np) -> str:
    try:
        cfg = np.show_config(mode="dicts")  # numpy >= 1.25
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except (TypeError, AttributeError, KeyError):  # pragma: no cover - numpy < 1.25 has no mode="dicts"
        return "unknown"


class _Child:
    def __init__(self, env: Mapping[str, str]):
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from bench.measure.calibrate import _child; _child()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=dict(env),
            text=True,
            bufsize=1,
        )
        self.ready: dict | None = None

    def send(self, msg: dict) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()

    def recv(self) -> dict:
        stdout: IO[str] = self.proc.stdout  # type: ignore[assignment]
        line = stdout.readline()
        if not line:
            self.proc.wait(timeout=10)
            self.log.seek(0)
            tail = self.log.read().decode("utf-8", "replace").strip().splitlines()[-3:]
            raise RuntimeError(f"calibration process ended (status {self.proc.returncode}): {' | '.join(tail)}")
        return json.loads(line)

    def close(self) -> None:
        try:
            self.send({"op": "quit"})
            self.proc.wait(timeout=5)
        except (OSError, ValueError, subprocess.TimeoutExpired):  # a dead pipe, a closed stream, no exit in 5 s
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# ---------------------------------------------------------------- measuring


def calibrate(
    env_for: Callable[[int], Mapping[str, str]],
    max_processes: int | None = None,
    budget_s: float = BUDGET_S,
    repeats: tuple[int, int] = REPEATS,
) -> dict:
    """Measures this machine; returns the calibration document (also what ``--out`` holds).

    Args:
        env_for: A measuring process's environment for a thread count (the front door hands in
            the worker environment, :func:`bench.engines.childenv.child_env`, so calibration runs
            under the same thread caps as the workers it calibrates).
        max_processes: Largest process count (default: usable cores).
        budget_s: Process counts past this many seconds are skipped (recorded as such).
        repeats: Fewest and most rounds per process count (the best round is kept); as many
            as the time budget allows.

    Raises:
        RuntimeError: a measuring process died.
    """
    from bench.measure.machine import cpu_brand
    from bench.model.strategy import usable_cores

    t_start = time.perf_counter()
    cores = usable_cores()
    max_n = max_processes or cores
    counts = process_counts(max_n)
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    kernels = [_Child(env_for(1)) for _ in range(max_n)]
    wide = _Child(env_for(cores))
    children = kernels + [wide]
    try:
        for c in children:
            c.ready = c.recv()
        kernels[0].send({"op": "size"})
        per_rep = kernels[0].recv()["per_rep_s"]
        reps = max(1, round(TARGET_ROUND_S / per_rep))
        walls: dict[str, list[float]] = {}
        skipped: list[int] = []
        round_s = reps * per_rep * 1.5 + 0.05  # a round's cost, with room for a busy machine
        matmul_reserve = 2.0 * MATMUL_S
        left = budget_s - (time.perf_counter() - t_start) - matmul_reserve
        rounds = max(repeats[0], min(repeats[1], int(left / (len(counts) * round_s))))
        for n in counts:
            spent = time.perf_counter() - t_start
            # leave room for this count's rounds and the matmul after them
            if n > 1 and spent + repeats[0] * round_s + matmul_reserve > budget_s:
                skipped.append(n)
                continue
            for _ in range(rounds):
                start_at = time.monotonic() + 0.05
                for c in kernels[:n]:
                    c.send({"op": "kernel", "reps": reps, "start_at": start_at})
                ends = [c.recv() for c in kernels[:n]]
                walls.setdefault(str(n), []).append(max(e["end"] for e in ends) - start_at)
        best = {k: min(v) for k, v in walls.items()}
        t1 = best["1"]
        efficiency = {k: round(t1 / v, 4) for k, v in best.items()}
        wide.send({"op": "matmul", "n": MATMUL_N, "seconds": MATMUL_S})
        gflops_all = wide.recv()["gflops"]
        kernels[0].send({"op": "matmul", "n": MATMUL_N, "seconds": MATMUL_S / 2})
        gflops_1 = kernels[0].recv()["gflops"]
    finally:
        for c in children:
            c.close()
    ready = kernels[0].ready or {}
    return {
        "schema": SCHEMA,
        "tool": "xpubench",
        "kind": "calibration",
        "hostname": socket.gethostname(),
        "cpu": cpu_brand(),
        "usable_cores": cores,
        "logical_cores": os.cpu_count(),
        "measured_at": _now(),
        "elapsed_s": round(time.perf_counter() - t_start, 3),
        "load_avg_1m": load1,
        "parallel_efficiency": efficiency,
        # the peak: all cores' figure, unless one thread did better (a busy machine)
        "matmul_gflops": round(max(gflops_all, gflops_1), 2),
        "matmul_gflops_all_cores": round(gflops_all, 2),
        "matmul_gflops_1thread": round(gflops_1, 2),
        "kernel": {
            "description": f"{KERNEL_N}x{KERNEL_N} fp32 matmul + ReLU, 1 BLAS thread per process",
            "reps": reps,
            "rounds": rounds,
            "per_rep_s": per_rep,
            "wall_s": {k: [round(x, 5) for x in v] for k, v in walls.items()},
            "skipped_counts": skipped,
        },
        "matmul": {"n": MATMUL_N, "dtype": "float32", "threads": cores, "numpy": ready.get("numpy"),
                   "blas": ready.get("blas")},
    }


# ---------------------------------------------------------------- command line


def format_table(doc: dict) -> str:
    """The calibration as the text ``bench calibrate`` prints."""
    lines = [
        f"calibration of {doc['hostname']}: {doc['usable_cores']} usable cores "
        f"({doc['logical_cores']} logical), {doc.get('cpu') or 'unknown CPU'}",
        f"{'processes':>9}  {'slowest kernel':>14}  {'speedup':>7}  {'parallel efficiency':>19}",
    ]
    walls = doc["kernel"]["wall_s"]
    for k, eff in sorted(doc["parallel_efficiency"].items(), key=lambda kv: int(kv[0])):
        n = int(k)
        lines.append(f"{n:>9}  {min(walls[k]):>12.3f} s  {eff * n:>7.2f}  {eff * 100:>17.1f} %")
    if doc["kernel"].get("skipped_counts"):
        lines.append(f"(not measured, over the time budget: {', '.join(map(str, doc['kernel']['skipped_counts']))})")
    m = doc["matmul"]
    lines.append(
        f"fp32 matmul {m['n']}x{m['n']} (numpy {m.get('numpy')}, {m.get('blas')}): "
        f"{doc['matmul_gflops_all_cores']:.1f} GFLOP/s on {m['threads']} threads, "
        f"{doc['matmul_gflops_1thread']:.1f} GFLOP/s on 1 (peak recorded: {doc['matmul_gflops']:.1f})"
    )
    load = doc.get("load_avg_1m")
    if isinstance(load, (int, float)):
        busy = load > 0.25 * doc["usable_cores"]
        lines.append(
            f"load average at start: {load:.2f}"
            + (" - other work was running: the ceiling measured is lower than an idle machine's" if busy else "")
        )
    lines.append(f"measured in {doc['elapsed_s']:.1f} s")
    return "\n".join(lines)


def _out_path(out: str | None) -> Path | None:
    """Validates ``--out`` before measuring: a file path in a writable directory, or a directory."""
    if out is None:
        return None
    path = Path(out)
    if path.is_dir():
        path = path / cache_path().name
    parent = path.parent
    if not parent.is_dir():
        raise UsageError(f"output directory {str(parent)!r} does not exist (for --out {out!r})")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"output directory {str(parent)!r} is not writable (for --out {out!r})")
    from bench.model.safefile import check_target

    check_target(path)  # a device, FIFO or socket is refused before measuring (never replaced)
    return path


def write(doc: dict, path: str | os.PathLike) -> Path:
    """Writes a calibration document atomically."""
    from bench.model.results import atomic_write_text

    return atomic_write_text(path, json.dumps(doc, indent=1) + "\n")


def write_cache(doc: dict) -> Path:
    """Writes a calibration document where :func:`cached_calibration` reads it (this machine's cache).

    Args:
        doc: What :func:`calibrate` returned.

    Returns:
        The cache file (:func:`cache_path`).

    Raises:
        OSError: the cache directory cannot be made or the file cannot be written.
    """
    cache = cache_path()
    cache.parent.mkdir(parents=True, exist_ok=True)
    write(doc, cache)
    return cache


def main(args, env_for: Callable[[int], Mapping[str, str]]) -> int:
    """``bench calibrate [--max-processes N] [--out FILE]``: measure, print, cache, write.

    Args:
        args: Parsed arguments with ``max_processes`` (text or None) and ``out`` (path or None).
        env_for: A measuring process's environment for a thread count (see :func:`calibrate`).

    Returns:
        The exit status (0).

    Raises:
        UsageError: a bad process count or an unusable ``--out``.
    """
    from bench.model.strategy import parse_count, usable_cores

    max_n = None
    if getattr(args, "max_processes", None) is not None:
        max_n = parse_count(args.max_processes, "process count")
        if max_n > usable_cores():
            print(
                f"warning: {max_n} processes is above the {usable_cores()} usable cores: "
                "the larger counts measure oversubscription",
                file=sys.stderr,
            )
    out = _out_path(getattr(args, "out", None))
    print("measuring (about 5 s)...", file=sys.stderr, flush=True)
    try:
        doc = calibrate(env_for, max_n)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_table(doc))
    cache = cache_path()
    try:
        write_cache(doc)
        print(f"cached: {cache} (results on this machine carry it as machine.calibration)")
    except OSError as exc:
        print(f"warning: could not cache the calibration in {cache} ({exc.strerror})", file=sys.stderr)
    if out is not None:
        write(doc, out)
        from bench.text import printable

        print(f"wrote: {printable(out)}")
    return 0
