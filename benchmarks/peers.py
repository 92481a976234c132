"""The Lorenz sweep the ways people run it today, side by side with xpubench (issue 8).

    python benchmarks/peers.py                      # every approach, 8 trials x 20 epochs
    python benchmarks/peers.py --epochs 5 --only serial,joblib,xpubench
    python benchmarks/peers.py --repeat 5 --json peers.json   # 5 repeats: best, medians, paired ratios

The same Lorenz trial list (seed 001's depth and width grids; ``--trials`` cycles through it),
the same seeds, on this machine, one approach after the other:

==================  =========================================================================
serial              a plain loop in one process (TensorFlow's default threads): the baseline
pool-seed           ``multiprocessing.Pool(os.cpu_count()).map`` the way seed 001 wrote it: no
                    thread caps, every worker imports TensorFlow on its first trial
joblib              ``joblib.Parallel(n_jobs=N, backend="loky")``, threads capped to cores // N
ray                 Ray tasks with ``num_cpus`` = cores // N and the same thread caps
xpubench            ``bench run`` with N local worker processes (the local strategy)
xpubench-ray        ``bench run --cluster ray`` with N workers on the same local Ray
xpubench-1p         ``bench run`` with 1 worker using every core: per-trial overhead against the
                    serial loop's bare training call
==================  =========================================================================

Every approach runs in a fresh interpreter (no TensorFlow or Ray state carried over; no
process that imported TensorFlow is ever forked). Wall time runs from the moment the approach
starts (before any TensorFlow import or worker start) until the last result is in the
approach's hands, so worker start-up counts everywhere. Ray's own start-up (~10 s for a local
Ray) is left out of both Ray rows and printed apart: a Ray user has a cluster running already.

This is a script, not a timed test: on a busy machine the numbers move; run it on an idle one.
With ``--repeat N`` every approach runs N times, the repeats interleaved and every other one in
reverse order; the table shows each approach's best pass, and below it xpubench's ratio to each
hand-written approach within each repeat, with its median (on a shared VM single passes of the
same approach ranged 13-18 s; the paired ratio moves far less).
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.model.workload import TrialContext, register, trial_seed  # noqa: E402  (no TensorFlow)
from workloads.lorenz import LorenzWorkload  # noqa: E402

APPROACHES = ("serial", "pool-seed", "joblib", "ray", "xpubench", "xpubench-ray", "xpubench-1p")
GROUPS = (("serial",), ("pool-seed",), ("joblib",), ("xpubench-1p",), ("xpubench",), ("ray", "xpubench-ray"))
NAME = "lorenz-peers"
TOL = 1e-4  # RMSE agreement with the serial loop (same seed, same trial)


class PeersLorenz(LorenzWorkload):
    """The Lorenz workload with a chosen number of trials (cycling through the seed's grid)."""

    name = NAME
    description = "Lorenz MLP sweep, trial count chosen by benchmarks/peers.py"
    options = tuple(getattr(LorenzWorkload, "options", ())) + ("trials",)

    def trials(self, size, options=None):
        options = dict(options or {})
        n = int(options.get("trials", 8))
        base = super().trials("full", options)  # the seed's 8 networks, at the epochs asked for
        out = []
        for i in range(n):
            c = dict(base[i % len(base)])
            if i >= len(base):
                c["id"] = f"{c['id']}-r{i // len(base)}"
            out.append(c)
        return out


def trial_list(epochs: int, trials: int) -> list[tuple[dict, int]]:
    """(config, seed) of every trial, as every approach runs them."""
    configs = PeersLorenz().trials("quick", {"epochs": epochs, "trials": trials})
    return [(c, trial_seed(NAME, c["id"])) for c in configs]


def bare_trial(item: tuple[dict, int]) -> dict:
    """The bare training call: seed, build, train, score one configuration in this process."""
    import keras

    config, seed = item
    keras.utils.set_random_seed(seed)
    t0 = time.perf_counter()
    out = LorenzWorkload().run_trial(config, TrialContext(size="quick", seed=seed))
    return {"id": config["id"], "rmse": float(out.quality["rmse"]), "wall_s": time.perf_counter() - t0, "pid": os.getpid()}


def thread_caps(workers: int, cores: int) -> dict[str, str]:
    """The thread variables xpubench gives each of ``workers`` workers (cores // workers)."""
    from bench.engines.childenv import thread_env

    t = max(1, cores // workers)
    return thread_env(t, 1 if t <= 2 else 2)


# ---------------------------------------------------------------- approaches (each in a child)


def run_serial(items, workers, cores) -> dict:
    t0 = time.perf_counter()
    rows = [bare_trial(item) for item in items]
    return {"wall_s": time.perf_counter() - t0, "trials": rows, "workers": 1, "threads": "TF default"}


def run_pool_seed(items, workers, cores) -> dict:
    from multiprocessing import Pool

    n = os.cpu_count()
    t0 = time.perf_counter()
    with Pool(n) as p:  # seed 001: Pool(NCPU), fork, no thread caps
        rows = p.map(bare_trial, items)
    return {"wall_s": time.perf_counter() - t0, "trials": rows, "workers": n, "threads": "TF default"}


def run_joblib(items, workers, cores) -> dict:
    os.environ.update(thread_caps(workers, cores))  # loky workers inherit it before importing TF
    from joblib import Parallel, delayed

    t0 = time.perf_counter()
    rows = Parallel(n_jobs=workers, backend="loky")(delayed(bare_trial)(item) for item in items)
    return {"wall_s": time.perf_counter() - t0, "trials": rows, "workers": workers,
            "threads": thread_caps(workers, cores)["TF_NUM_INTRAOP_THREADS"]}


def run_ray(items, workers, cores) -> dict:
    import ray

    caps = thread_caps(workers, cores)
    pythonpath = os.pathsep.join([str(HERE), str(ROOT)] + [p for p in sys.path if p])
    task = ray.remote(bare_trial).options(
        num_cpus=int(caps["TF_NUM_INTRAOP_THREADS"]),
        runtime_env={"env_vars": {**caps, "PYTHONPATH": pythonpath, "TF_CPP_MIN_LOG_LEVEL": "2"}},
    )
    t0 = time.perf_counter()
    rows = ray.get([task.remote(item) for item in items])
    return {"wall_s": time.perf_counter() - t0, "trials": rows, "workers": workers, "threads": caps["TF_NUM_INTRAOP_THREADS"]}


def _xpubench(items, workers, cores, engine: str, out_dir: str, threads: int | None = None) -> dict:
    import peers  # this file as a module, so workers can import peers:PeersLorenz

    from bench.sweep.sweep import Sweep
    from bench.model.strategy import make_strategies

    register(peers.PeersLorenz)
    epochs = items[0][0]["epochs"]
    t0 = time.perf_counter()
    sweep = Sweep(
        NAME, "quick", make_strategies(["cpu"], [workers], threads), out_dir=out_dir, label="peers",
        options={"epochs": str(epochs), "trials": str(len(items))}, engine=engine,
    )
    built = time.perf_counter()
    result = sweep.run()
    wall = time.perf_counter() - t0
    run = result.runs[-1]
    rows = [{"id": t.id, "rmse": t.quality.get("rmse"), "wall_s": t.wall_s, "error": t.error and t.error.message}
            for t in run.trials]
    started = [w["startup_s"] for w in run.workers if "startup_s" in w]
    setup_s = built - t0
    probes = [d for d in result.decisions if isinstance(d, dict) and d.get("kind") == "memory_probe"] \
        if hasattr(result, "decisions") else []
    return {
        "wall_s": wall,
        "trials": rows,
        "workers": workers,
        "threads": run.strategy["threads_per_process"],
        "compute_wall_s": run.summary.get("wall_s"),
        "setup_s": setup_s,  # the Sweep built: fingerprint, resume and memory checks
        "startup_s": statistics.mean(started) if started else None,
        "slowest_startup_s": max(started) if started else None,
        "memory_probe": bool(probes),
        "result": str(sweep.path),
    }


def run_xpubench(items, workers, cores, out_dir) -> dict:
    return _xpubench(items, workers, cores, "local", out_dir)


def run_xpubench_1p(items, workers, cores, out_dir) -> dict:
    return _xpubench(items, 1, cores, "local", out_dir, threads=cores)


def run_xpubench_ray(items, workers, cores, out_dir) -> dict:
    return _xpubench(items, workers, cores, "ray", out_dir)


def child(names: list[str], epochs: int, trials: int, workers: int, out_dir: str) -> list[dict]:
    """Runs one group of approaches in this (fresh) process; Ray groups share one local Ray."""
    from bench.model.strategy import usable_cores

    cores = usable_cores()
    items = trial_list(epochs, trials)
    out = []
    ray_start_s = None
    if any(n in ("ray", "xpubench-ray") for n in names):
        from bench.engines import ray as cluster

        t0 = time.perf_counter()
        cluster.start_local_ray(num_cpus=cores)
        ray_start_s = time.perf_counter() - t0
    for name in names:
        fn = {
            "serial": run_serial, "pool-seed": run_pool_seed, "joblib": run_joblib, "ray": run_ray,
        }.get(name)
        if fn is not None:
            row = fn(items, workers, cores)
        else:
            fn = {"xpubench": run_xpubench, "xpubench-ray": run_xpubench_ray, "xpubench-1p": run_xpubench_1p}[name]
            row = fn(items, workers, cores, out_dir)
        row["approach"] = name
        if ray_start_s is not None and name in ("ray", "xpubench-ray"):
            row["ray_start_s"] = ray_start_s
        out.append(row)
    return out


# ---------------------------------------------------------------- driver


def run_group(names, args, out_dir) -> list[dict]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", ",".join(names), "--epochs", str(args.epochs),
           "--trials", str(args.trials), "--workers", str(args.workers), "--out-dir", out_dir]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)])}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith("PEERS-JSON "):
            return json.loads(line[len("PEERS-JSON "):])
    tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
    return [{"approach": n, "failed": f"exit {proc.returncode}: {tail}"} for n in names]


def summarize(rows: list[dict], cores: int, calibration: dict | None) -> list[dict]:
    from bench.measure.calibrate import ceiling_for

    by = {r["approach"]: r for r in rows if "failed" not in r}
    serial = by.get("serial")
    base = {t["id"]: t["rmse"] for t in serial["trials"]} if serial else {}
    for r in rows:
        if "failed" in r:
            continue
        n = r["workers"]
        if serial:
            r["speedup"] = serial["wall_s"] / r["wall_s"]
            r["efficiency"] = r["speedup"] / n
            ceiling = ceiling_for(calibration, n)
            r["of_ceiling"] = r["efficiency"] / ceiling if ceiling else None
            diffs = [abs(t["rmse"] - base[t["id"]]) for t in r["trials"] if t.get("rmse") is not None and t["id"] in base]
            r["rmse_max_diff"] = max(diffs) if diffs else None
        r["failed_trials"] = sum(1 for t in r["trials"] if t.get("rmse") is None)
    return rows


def repeat_lines(x: dict, hand: list[dict]) -> list[str]:
    """What the repeats say beyond the best pass: per hand-written approach, the median of the
    ratios xpubench / it within each repeat (the two ran within a minute of each other, so a busy
    spell of the machine slows both: pairing cancels much of the noise between repeats), in how many repeats
    xpubench was faster, and the medians of the passes.

    Args:
        x: The xpubench row (``walls_by_repeat``: ``{repeat: wall}``, ``all_walls_s``).
        hand: The hand-written approaches' rows, alike.
    """
    out = []
    mx = statistics.median(x["all_walls_s"])
    for r in hand:
        paired = [x["walls_by_repeat"][k] / w for k, w in r["walls_by_repeat"].items() if k in x["walls_by_repeat"]]
        if not paired:
            continue
        ratio = statistics.median(paired)
        faster = sum(1 for p in paired if p <= 1)
        mr = statistics.median(r["all_walls_s"])
        out.append(
            f"xpubench / {r['approach']} within each repeat: {' '.join(f'{p:.2f}' for p in paired)} -> median "
            f"{ratio:.3f} ({(ratio - 1) * 100:+.1f} %; at or below it in {faster} of {len(paired)}: "
            f"{'met' if ratio <= 1 else 'not met'}); medians of the passes: {mx:.2f} s vs {mr:.2f} s"
        )
    return out


def print_table(rows: list[dict], args, cores: int, calibration: dict | None) -> None:
    load = os.getloadavg()[0]
    print(f"\nLorenz sweep: {args.trials} trials x {args.epochs} epochs, {args.workers} workers, "
          f"{cores} usable cores (os.cpu_count() = {os.cpu_count()}); load average now {load:.2f}")
    head = f"{'approach':<13} {'workers x threads':>17} {'wall s':>8} {'speedup':>8} {'efficiency':>10} " \
           f"{'of ceiling':>10} {'start-up s':>10} {'RMSE = serial':>13}"
    print(head)
    print("-" * len(head))
    for r in rows:
        if "failed" in r:
            print(f"{r['approach']:<13} FAILED: {r['failed'].splitlines()[-1] if r['failed'] else ''}")
            continue
        wt = f"{r['workers']} x {r['threads']}"
        ceil = f"{r['of_ceiling'] * 100:.0f} %" if r.get("of_ceiling") else "-"
        start = f"{r['startup_s']:.1f}" if r.get("startup_s") else "-"
        same = "-" if r.get("rmse_max_diff") is None else ("yes" if r["rmse_max_diff"] <= TOL else f"no ({r['rmse_max_diff']:.2g})")
        if r.get("failed_trials"):
            same += f", {r['failed_trials']} failed"
        print(f"{r['approach']:<13} {wt:>17} {r['wall_s']:>8.1f} {r.get('speedup', 0):>8.2f} "
              f"{r.get('efficiency', 0) * 100:>9.0f} % {ceil:>10} {start:>10} {same:>13}")
    by = {r["approach"]: r for r in rows if "failed" not in r}
    if any("ray_start_s" in r for r in rows):
        print(f"(Ray start-up, left out of both Ray rows: {next(r['ray_start_s'] for r in rows if 'ray_start_s' in r):.1f} s)")
    hand = [by[a] for a in ("pool-seed", "joblib", "ray") if a in by]
    if "xpubench" in by and hand:
        best = min(hand, key=lambda r: r["wall_s"])
        x = by["xpubench"]
        gap = x["wall_s"] / best["wall_s"] - 1
        reps = f"best of {args.repeat} runs each" if args.repeat > 1 else "one run each: use --repeat for the best of several"
        print(f"xpubench local vs the fastest hand-written alternative ({best['approach']}): "
              f"{x['wall_s'] - best['wall_s']:+.2f} s = {gap * 100:+.1f} % wall ({reps}; "
              f"goal: at or below it: {'met' if gap <= 0 else 'not met'})")
        for r in hand:
            if r is not best:
                print(f"xpubench local vs {r['approach']}: {x['wall_s'] / r['wall_s'] * 100 - 100:+.1f} % wall")
        if args.repeat > 1:
            for line in repeat_lines(x, hand):
                print(line)
        if x.get("memory_probe"):
            print("note: xpubench ran its memory-guard probe (one trial alone first): no earlier result to estimate from")
    if "serial" in by:
        bare = statistics.mean(t["wall_s"] for t in by["serial"]["trials"])
        print(f"bare training call (serial loop): {bare:.3f} s per trial on average")
        if "xpubench-1p" in by and by["xpubench-1p"].get("compute_wall_s"):
            one = by["xpubench-1p"]
            ok = [t for t in one["trials"] if t.get("rmse") is not None]
            worker_trial = statistics.mean(t["wall_s"] for t in ok)
            dispatch = (one["compute_wall_s"] - sum(t["wall_s"] for t in one["trials"])) / len(one["trials"])
            fixed = one["wall_s"] - one["compute_wall_s"] - (one.get("startup_s") or 0.0)
            print(
                f"xpubench overhead, 1 worker x {one['threads']} threads: the trial as timed in the worker "
                f"{worker_trial:.3f} s ({100 * (worker_trial / bare - 1):+.1f} % vs bare); between trials "
                f"(dispatch, reply, result file rewritten and fsynced) {dispatch * 1000:.0f} ms per trial "
                f"({100 * dispatch / bare:.1f} %); per run: worker start-up {one.get('startup_s') or 0:.1f} s "
                f"(TensorFlow import) + {fixed:.1f} s fixed (fingerprint, sampler, workers ended, final writes)"
            )
        for name in ("xpubench", "xpubench-ray"):
            if name in by and by[name].get("compute_wall_s"):
                r = by[name]
                busy = sum(t["wall_s"] for t in r["trials"])
                idle = (r["compute_wall_s"] * r["workers"] - busy) / len(r["trials"])
                fixed = r["wall_s"] - r["compute_wall_s"]
                rest = fixed - (r.get("slowest_startup_s") or 0) - (r.get("setup_s") or 0)
                print(f"{name}: start-up + bookkeeping {fixed:.1f} s = slowest worker start {r.get('slowest_startup_s') or 0:.1f} s "
                      f"+ sweep set-up {r.get('setup_s') or 0:.2f} s + the rest {rest:.2f} s (header and final writes, "
                      f"sampler, workers ended); worker time not spent in trials {idle:.3f} s per trial "
                      "(dispatch, result writes, tail imbalance)")
    from bench.measure.calibrate import dense_train_flops, peak_share

    flops = sum(dense_train_flops([3, *c["nodes"], 3], c["epochs"] * 900) for c, _ in trial_list(args.epochs, args.trials))
    fastest = min((r for r in rows if "failed" not in r), key=lambda r: r["wall_s"], default=None)
    if fastest is not None:
        share = peak_share(flops, fastest["wall_s"], calibration)
        print(f"work: {flops / 1e9:.3f} GFLOP of training in all; the fastest approach ({fastest['approach']}) achieved "
              f"{flops / fastest['wall_s'] / 1e9:.4f} GFLOP/s"
              + (f" = {share * 100:.3f} % of the measured fp32 matmul peak" if share is not None else ""))
    if calibration:
        print(f"ceiling: bench calibrate of {calibration.get('measured_at')}: parallel efficiency "
              f"{calibration.get('parallel_efficiency')}")
    else:
        print("ceiling: run 'bench calibrate' first to see efficiency against this machine's measured ceiling")


def main(argv=None) -> int:
    """Runs the comparison (or, with ``--child``, one group of approaches in this process).

    Args:
        argv: Command-line arguments (default: sys.argv[1:]).
    """
    from bench.model.strategy import usable_cores

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=20, help="epochs per trial (seed: 999; default 20)")
    p.add_argument("--trials", type=int, default=8, help="trials (cycling through the seed's 8; default 8)")
    p.add_argument("--workers", type=int, default=usable_cores(), help="parallel workers (default: usable cores)")
    p.add_argument("--only", default=",".join(APPROACHES), help="comma-separated approaches (default: all)")
    p.add_argument("--repeat", type=int, default=1,
                   help="run everything this many times, interleaved; the best wall is kept (other work only slows runs)")
    p.add_argument("--json", default=None, help="also write every measurement here")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out-dir", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.epochs < 1 or args.trials < 1 or args.workers < 1 or args.repeat < 1:
        p.error("--epochs, --trials, --workers and --repeat must be at least 1")

    if args.child:
        rows = child(args.child.split(","), args.epochs, args.trials, args.workers, args.out_dir)
        print("PEERS-JSON " + json.dumps(rows))
        return 0

    only = [a.strip() for a in args.only.split(",") if a.strip()]
    bad = [a for a in only if a not in APPROACHES]
    if bad:
        p.error(f"unknown approach {bad[0]!r} (choose from: {', '.join(APPROACHES)})")
    if "serial" not in only:
        only.insert(0, "serial")  # the baseline of every ratio
    cores = usable_cores()
    from bench.measure.calibrate import cached_calibration

    calibration = cached_calibration()
    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="xpubench-peers-") as out_dir:
        for rep in range(args.repeat):
            # every other repeat runs the groups in reverse order (ABBA), so a machine that slows down
            # or speeds up over the runs does not favour whichever approach runs later in each repeat
            for group in (GROUPS if rep % 2 == 0 else GROUPS[::-1]):
                names = [n for n in group if n in only]
                if not names:
                    continue
                t0 = time.perf_counter()
                print(f"[{rep + 1}/{args.repeat}] {', '.join(names)} ...", file=sys.stderr, flush=True)
                for row in run_group(names, args, out_dir):
                    row["repeat"] = rep
                    runs.setdefault(row["approach"], []).append(row)
                print(f"    {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    rows = []
    for name in only:
        got = [r for r in runs.get(name, []) if "failed" not in r]
        if not got:
            rows.append(next(iter(runs.get(name, [])), {"approach": name, "failed": "not run"}))
            continue
        best = min(got, key=lambda r: r["wall_s"])
        best["all_walls_s"] = [r["wall_s"] for r in got]
        best["walls_by_repeat"] = {str(r["repeat"]): r["wall_s"] for r in got}
        failed = [r["failed"] for r in runs.get(name, []) if "failed" in r]
        if failed:
            print(f"warning: {name}: {len(failed)} of {len(runs[name])} runs failed; last lines: {failed[-1][-300:]}",
                  file=sys.stderr)
        rows.append(best)
    rows = summarize(rows, cores, calibration)
    print_table(rows, args, cores, calibration)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "cores": cores, "calibration": calibration,
                                               "load_avg": os.getloadavg(), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
