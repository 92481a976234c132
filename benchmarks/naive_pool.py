"""xpubench's process strategy vs the seeds' ``multiprocessing.Pool(os.cpu_count())`` pattern.

Runs the same Lorenz trial list three ways, end to end (process start-up included):

1. serial: one fresh Python process runs every trial in a loop (TensorFlow imported once);
2. seed-style Pool: ``Pool(os.cpu_count())`` per grid, as seed 001 wrote it: no thread capping,
   every pool's workers import TensorFlow again (fork start method; the parent never imports TF,
   which is the only reason this does not hang);
3. xpubench: ``bench.run_sweep`` with N thread-capped, long-lived workers.

Usage: python benchmarks/naive_pool.py [--epochs 20] [--processes N] [--repeat 1]
Not a test: it prints a table; numbers depend on the machine and on what else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The seed's code, kept close to how it was written (TensorFlow imported inside the task).
SEED_STYLE = r'''
import os, sys, time, json
from multiprocessing import Pool
import numpy as np
sys.path.insert(0, {root!r})
from workloads.lorenz import lorenz_series, DEPTHS, WIDTHS

def mean_square(args):
    from keras.models import Sequential
    from keras.layers import Dense, Input
    import keras
    nodes, epochs, seed = args
    keras.utils.set_random_seed(seed)
    xyz = lorenz_series()
    vs, ndt, L = 5000, 99, 900
    model = Sequential([Input(shape=(3,))])
    model.add(Dense(nodes[0], activation="relu"))
    for n in nodes[1:]:
        model.add(Dense(n, activation="relu"))
    model.add(Dense(3, activation="linear"))
    model.compile(loss="mean_squared_error", optimizer="adam")
    model.fit(xyz[:L], xyz[ndt:L + ndt], epochs=epochs, batch_size=100, verbose=0)
    return float(np.sqrt(np.mean((xyz[vs + ndt:vs + L + ndt, :] - model.predict(xyz[vs:vs + L], verbose=0)) ** 2)))

if __name__ == "__main__":
    epochs, mode = {epochs}, {mode!r}
    t0 = time.perf_counter()
    out = []
    for grid in (DEPTHS, WIDTHS):
        args = [(nodes, epochs, i) for i, nodes in enumerate(grid)]
        if mode == "serial":
            out += [mean_square(a) for a in args]
        else:
            with Pool(os.cpu_count()) as p:   # the seeds' pattern
                out += p.map(mean_square, args)
    print(json.dumps({{"wall_s": time.perf_counter() - t0, "rmse": out}}))
'''


def _run_script(mode: str, epochs: int) -> dict:
    code = SEED_STYLE.format(root=str(ROOT), epochs=epochs, mode=mode)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    doc["end_to_end_s"] = time.perf_counter() - t0
    return doc


def _run_xpubench(processes: int, epochs: int) -> dict:
    from bench import run_sweep

    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        result = run_sweep("lorenz", "quick", processes=[processes], out_dir=out, options={"epochs": str(epochs)})
        end = time.perf_counter() - t0
    (run,) = result.runs
    return {
        "end_to_end_s": end,
        "wall_s": run.summary["wall_s"],
        "startup_s": run.summary["startup_s"].get("median"),
        "rmse": [t.quality.get("rmse") for t in run.trials],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--processes", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    rows: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        rows.setdefault("serial loop (1 process)", []).append(_run_script("serial", args.epochs)["end_to_end_s"])
        rows.setdefault(f"seed-style Pool({os.cpu_count()})", []).append(_run_script("pool", args.epochs)["end_to_end_s"])
        rows.setdefault(f"xpubench {args.processes} processes", []).append(
            _run_xpubench(args.processes, args.epochs)["end_to_end_s"]
        )
    serial = statistics.median(rows["serial loop (1 process)"])
    print(f"Lorenz sweep, 8 trials x {args.epochs} epochs, end to end (process start-up included), "
          f"median of {args.repeat}; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    print(f"{'approach':<28} {'wall s':>8} {'speedup':>8} {'efficiency':>10}")
    for name, vals in rows.items():
        wall = statistics.median(vals)
        n = 1 if name.startswith("serial") else args.processes
        print(f"{name:<28} {wall:>8.1f} {serial / wall:>7.2f}x {serial / wall / n:>9.0%}")


if __name__ == "__main__":
    main()
