"""The quick suite from the command to the written report: wall time and TensorFlow imports (issue 16).

    python benchmarks/suite_wall.py                      # bench suite into a temporary directory, timed
    python benchmarks/suite_wall.py --fresh-calibration  # ... with an empty calibration cache (a new user's first run)
    python benchmarks/suite_wall.py --count DIR [DIR...] # only count worker starts in existing result files
    python benchmarks/suite_wall.py --repeat 3           # three runs and their median

The suite runs as a user runs it (``python -m bench suite --out DIR``) in a fresh interpreter; the
wall time is the child's, from its start to its exit (the report written). Then every result file
is read through ``bench.model.results.load`` and its runs' worker facts counted: a fact with
``startup_s`` is a worker started for that run (one TensorFlow import), a fact with ``reused``
true is a worker taken from an earlier run. Files written before workers were reused have only
started workers (every (workload, strategy) started its own pool).

This is a script, not a timed test: on a busy machine the numbers move; run it on an idle one. On a
VM the host's other guests slow it too: each run prints the CPU time the host stole meanwhile
(``steal`` in ``/proc/stat``), and a run that lost more than 1 s is marked as not an idle machine's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def count_starts(dirs: list[str]) -> dict:
    """Workers started and reused, per workload and in all, in the result files of ``dirs``.

    Args:
        dirs: Directories holding ``*.json`` result files (a report's other files are skipped).
    """
    from bench.model import results

    rows, started, reused = [], 0, 0
    for d in dirs:
        for path in sorted(Path(d).glob("*.json")):
            try:
                res = results.load(path)
            except Exception:  # noqa: BLE001 - not a result file (calibration, pytest-benchmark): skipped
                continue
            for run in res.runs:
                s = sum(1 for w in run.workers if isinstance(w.get("startup_s"), (int, float)))
                r = sum(1 for w in run.workers if w.get("reused"))
                restarts = sum(1 for w in run.workers if w.get("restarted"))
                started, reused = started + s, reused + r
                rows.append((run.workload, run.strategy.get("processes"), run.summary.wall_s, s, r, restarts))
    return {"runs": rows, "started": started, "reused": reused}


def print_counts(counts: dict, title: str) -> None:
    print(f"\n{title}")
    print(f"{'workload':<18} {'procs':>5} {'compute s':>9} {'started':>7} {'reused':>6} {'restarts':>8}")
    for workload, procs, wall, s, r, restarts in counts["runs"]:
        print(f"{workload:<18} {procs:>5} {wall or 0:>9.1f} {s:>7} {r:>6} {restarts:>8}")
    print(f"TensorFlow imports (workers started): {counts['started']}; workers reused: {counts['reused']}; "
          f"compute in all {sum(w or 0 for _, _, w, _, _, _ in counts['runs']):.1f} s")


def steal_s() -> float | None:
    """CPU seconds the hypervisor gave to other guests so far, all cores together (``steal`` of
    ``/proc/stat``); None where the kernel does not say (not Linux)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def run_once(args, tmp: str, index: int) -> tuple[int, float]:
    """One timed ``bench suite`` in a fresh interpreter; prints its line and worker counts.

    Returns:
        (exit status, wall seconds).
    """
    base = Path(args.keep) if args.keep else Path(tmp)
    out = str(base if args.keep and args.repeat == 1 else base / f"results{index}")
    env = dict(os.environ)
    if args.fresh_calibration:
        env["XDG_CACHE_HOME"] = str(Path(tmp) / f"cache{index}")
    cmd = [sys.executable, "-m", "bench", "suite", "--out", out, "-q", *args.suite_args]
    load, steal0 = os.getloadavg()[0], steal_s()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
        return proc.returncode, wall
    steal1 = steal_s()
    stolen = "" if steal0 is None or steal1 is None else f"; CPU stolen by the VM's host {steal1 - steal0:.1f} s"
    print(f"bench suite: {wall:.1f} s from the command to the written report (exit {proc.returncode}; "
          f"{'fresh calibration included' if args.fresh_calibration else 'cached calibration'}; "
          f"load average before {load:.2f}, after {os.getloadavg()[0]:.2f}{stolen})")
    if steal0 is not None and steal1 is not None and steal1 - steal0 > 1.0:
        print("  the host ran other guests' work during this run: not an idle machine's time")
    print_counts(count_starts([out]), "this suite")
    return proc.returncode, wall


def main(argv: list[str] | None = None) -> int:
    """Runs (or only counts) the quick suite.

    Args:
        argv: Command-line arguments (default: sys.argv[1:]).
    """
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", nargs="+", default=None, metavar="DIR", help="only count worker starts in these result directories")
    p.add_argument("--fresh-calibration", action="store_true",
                   help="run with an empty calibration cache (the suite calibrates first, as on a new machine)")
    p.add_argument("--keep", default=None, metavar="DIR", help="write the results here (default: a temporary directory)")
    p.add_argument("--repeat", type=int, default=1, metavar="N", help="run the suite N times and print the median")
    p.add_argument("suite_args", nargs="*", help="extra arguments for bench suite (after --)")
    args = p.parse_args(argv)
    if args.count:
        print_counts(count_starts(args.count), f"result files in {', '.join(args.count)}")
        return 0
    if args.repeat < 1:
        p.error(f"--repeat must be at least 1, got {args.repeat}")
    walls = []
    with tempfile.TemporaryDirectory(prefix="xpubench-suite-") as tmp:
        for i in range(args.repeat):
            code, wall = run_once(args, tmp, i)
            if code not in (0, 1):
                return code
            walls.append(wall)
    if len(walls) > 1:
        print(f"\n{len(walls)} runs: {', '.join(f'{w:.1f}' for w in walls)} s; median {statistics.median(walls):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
