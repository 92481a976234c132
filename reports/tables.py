"""pandas tables behind every report section: one row per run, then the derived views.

Figures come from each run's summary (:class:`bench.model.summary.RunSummary`, computed by
``bench.model.ratios`` from raw trials and samples) and, where a summary lacks a figure (an older
file), from the raw trials themselves. Repeated runs of the same (machine, workload, size,
strategy) are combined by their median; speedup and efficiency of the combined walls use the
formulas of :mod:`bench.model.ratios`.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import pandas as pd

from bench.model import ratios
from bench.model.strategy import DEFAULT_BACKEND
from reports.fmt import ok
from reports.load import Inputs, Run

RUN_COLUMNS = [
    "order", "file", "origin", "label", "workload", "size", "backend", "device", "engine", "processes", "threads",
    "strategy", "status", "skipped", "trials", "ok_trials", "failed", "wall_s", "rec_speedup",
    "cpu_wall_ratio", "per_proc_ratio", "throughput", "unit", "trials_per_hour", "time_per_trial_s",
    "cv", "peak_worker_rss", "peak_tree_rss", "peak_tree_uss", "gpu_util_p50", "gpu_util_p95",
    "quality_key", "quality", "quality_text", "data_source", "nodes", "samples_total", "gflops", "name", "noise",
    "sampler_cpu_share", "speedup_vs_tensorflow",
    "scaling", "repeats", "speedup_low", "speedup_high", "weak_efficiency", "valid",
]


def _f(value: Any) -> float:
    return float(value) if ok(value) else math.nan


def _time_per_trial(run: Run, wall: float, n_ok: int) -> float:
    spread = run.summary.trial_wall_s
    if isinstance(spread, Mapping) and ok(spread.get("median")):
        return float(spread["median"])
    walls = [t.wall_s for t in run.ok_trials if t.wall_s > 0]
    if walls:
        return float(pd.Series(walls).median())
    return wall / n_ok if n_ok and ok(wall) else math.nan


def _nodes(run: Run) -> float:
    recorded = run.summary.extra.get("nodes")  # undeclared: no producer writes it, a file that has it is read
    if ok(recorded):
        return float(recorded)
    nodes = {str(t.extra.get("node")) for t in run.ok_trials if t.extra.get("node") is not None}
    return float(len(nodes)) if nodes else math.nan


def _gflops(run: Run, wall: float) -> float:
    if ok(run.summary.gflops):
        return float(run.summary.gflops)
    flops = [t.extra.get("flops") for t in run.ok_trials]
    if flops and all(ok(f) for f in flops) and ok(wall) and wall > 0:
        return sum(float(f) for f in flops) / wall / 1e9
    return math.nan


def _wall(run: Run) -> float:
    """The run's wall seconds: its summary, else first start to last end of its trials."""
    if ok(run.summary.wall_s) and float(run.summary.wall_s) > 0:
        return float(run.summary.wall_s)
    ends = [t.start_s + t.wall_s for t in run.trials if t.wall_s > 0]
    return max(ends) if ends else math.nan


def quality_text(quality: Mapping[str, float]) -> str:
    """``{"rmse": 3.21}`` → ``rmse 3.21`` (several metrics joined by commas)."""
    return ", ".join(f"{k} {v:.4g}" for k, v in quality.items())


def run_row(run: Run) -> dict:
    """The flat table row of one run."""
    s = run.summary
    wall = _wall(run)
    n_trials = int(s.trials) if ok(s.trials) else len(run.trials)
    n_failed = int(s.failed) if ok(s.failed) else sum(1 for t in run.trials if t.error is not None)
    n_ok = max(0, n_trials - n_failed)
    samples_total = sum(t.samples for t in run.ok_trials)
    throughput = _f(s.throughput)
    if not samples_total and ok(throughput) and ok(wall):
        samples_total = throughput * wall
    if not ok(throughput) and samples_total and ok(wall) and wall > 0:
        throughput = samples_total / wall
    spread = s.trial_wall_s if isinstance(s.trial_wall_s, Mapping) else {}
    qkey = next(iter(run.quality), "")
    return {
        "order": run.order,
        "file": run.file,
        "origin": run.origin,
        "label": run.label,
        "workload": run.workload,
        "size": run.size,
        "backend": run.backend,
        "device": run.device,
        "engine": run.engine,
        "processes": run.processes,
        "threads": run.threads if run.threads is not None else math.nan,
        "strategy": run.strategy,
        "status": run.status,
        "skipped": run.skipped or "",
        "trials": n_trials,
        "ok_trials": n_ok,
        "failed": n_failed,
        "wall_s": wall,
        "rec_speedup": _f(s.speedup),
        "cpu_wall_ratio": _f(s.cpu_wall_ratio),
        "per_proc_ratio": _f(s.per_process_cpu_wall_ratio),
        "throughput": throughput,
        "unit": str(s.throughput_unit or "samples/s"),
        "trials_per_hour": (n_ok / wall * 3600.0) if n_ok and ok(wall) and wall > 0 else math.nan,
        "time_per_trial_s": _time_per_trial(run, wall, n_ok),
        "cv": _f(spread.get("cv")),  # spread across the run's configurations: not noise
        "peak_worker_rss": _f(s.peak_worker_rss_bytes) if ok(s.peak_worker_rss_bytes) else _f(
            max((t.peak_rss_bytes for t in run.trials), default=0) or None
        ),
        "peak_tree_rss": _f(s.peak_tree_rss_bytes),
        "peak_tree_uss": _f(s.peak_tree_uss_bytes),
        "gpu_util_p50": _f(s.gpu_util_p50),
        "gpu_util_p95": _f(s.gpu_util_p95),
        "sampler_cpu_share": _f(s.sampler_cpu_share),  # the sampler's own cost, a fraction of one core
        "speedup_vs_tensorflow": _f(s.speedup_vs_tensorflow),  # as recorded (bench.model.ratios.finalize_runs)
        "quality_key": qkey,
        "quality": _f(run.quality.get(qkey)) if qkey else math.nan,
        "quality_text": quality_text(run.quality),
        "data_source": str(run.data.get("source") or ""),
        "nodes": _nodes(run),
        "samples_total": float(samples_total) if samples_total else math.nan,
        "gflops": _gflops(run, wall),
        "name": run.name,
        # noise between measurements of the same thing, as recorded (old files: none)
        "noise": dict(s.noise) if isinstance(s.noise, Mapping) else None,
        # repeats of the strategy (--repeat K) folded into this row, and the recorded speedup interval
        "scaling": run.scaling,
        "repeats": run.repeats,
        "speedup_low": _interval_end(s, "speedup", "low"),
        "speedup_high": _interval_end(s, "speedup", "high"),
        "weak_efficiency": _f(s.weak_efficiency),
        "valid": not run.invalid,
    }


def _interval_end(s: Any, figure: str, end: str) -> float:
    """One end of a recorded interval over repeats (``summary.repeats[figure][end]``), NaN without one."""
    rep = s.repeats if isinstance(s.repeats, Mapping) else {}
    stats = rep.get(figure)
    return _f(stats.get(end)) if isinstance(stats, Mapping) else math.nan


def runs_frame(inputs: Inputs) -> pd.DataFrame:
    """One row per run of every input, in input order."""
    rows = [run_row(r) for r in inputs.runs]
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def measured(df: pd.DataFrame) -> pd.DataFrame:
    """Runs that finished with a wall time (not skipped, interrupted or failed to start)."""
    return df[(df["status"] == "complete") & (df["wall_s"] > 0) & (df["ok_trials"] > 0)]


# ---------------------------------------------------------------- calibration


def calibration(machine: Mapping[str, Any]) -> tuple[dict[int, float], float | None]:
    """The machine's measured parallel ceiling (efficiency per process count) and matmul GFLOP/s.

    Accepts ``{"parallel_efficiency": {"1": 1.0, "2": 0.8}}`` or a list of
    ``{"processes": n, "efficiency": e}``; anything else gives no ceiling.
    """
    cal = machine.get("calibration")
    if not isinstance(cal, Mapping):
        return {}, None
    raw = cal.get("parallel_efficiency")
    ceiling: dict[int, float] = {}
    if isinstance(raw, Mapping):
        items = raw.items()
    elif isinstance(raw, list):
        items = [(d.get("processes"), d.get("efficiency")) for d in raw if isinstance(d, Mapping)]
    else:
        items = []
    for n, e in items:
        try:
            n = int(n)
        except (TypeError, ValueError):
            continue
        if n >= 1 and ok(e) and float(e) > 0:
            ceiling[n] = float(e)
    gflops = cal.get("matmul_gflops")
    return ceiling, (float(gflops) if ok(gflops) and float(gflops) > 0 else None)


# ---------------------------------------------------------------- scaling (local processes)

SCALING_KEYS = ["label", "workload", "size", "backend", "device"]


def scaling_frame(df: pd.DataFrame, inputs: Inputs) -> pd.DataFrame:
    """Speedup, efficiency and CPU/wall per process count for local runs.

    Repeated runs (several files, or a sweep run again) are combined by median wall. Speedup is
    :func:`bench.model.ratios.speedup` of the 1-process median wall over the N-process median wall
    of the same machine/workload/size/backend/device (with one run per count: the recorded speedup);
    without a 1-process run the recorded speedup is used. Adds the Amdahl serial fraction of each group (``serial_fraction``),
    the machine ceiling at N (``ceiling``) and efficiency against it (``eff_vs_ceiling``).
    """
    m = measured(df)
    m = m[m["engine"] == "local"]
    if "scaling" in m:  # weak-scaling runs (N times the work) have their own table: reports.weak
        m = m[(m["scaling"] != "weak") | (m["processes"] == 1)]
    cols = SCALING_KEYS + [
        "processes", "n", "wall_s", "speedup", "efficiency", "ceiling", "eff_vs_ceiling", "cpu_wall_ratio",
        "per_proc_ratio", "throughput", "unit", "gflops", "gflops_share", "serial_fraction",
        "repeats", "speedup_low", "speedup_high",
    ]
    if m.empty:
        return pd.DataFrame(columns=cols)
    agg = (
        m.groupby(SCALING_KEYS + ["processes"], sort=False)
        .agg(
            n=("wall_s", "size"), wall_s=("wall_s", "median"), rec_speedup=("rec_speedup", "median"),
            cpu_wall_ratio=("cpu_wall_ratio", "median"), per_proc_ratio=("per_proc_ratio", "median"),
            throughput=("throughput", "median"), unit=("unit", "first"), gflops=("gflops", "median"),
            repeats=("repeats", "first"), speedup_low=("speedup_low", "first"), speedup_high=("speedup_high", "first"),
        )
        .reset_index()
    )
    out = []
    for key, g in agg.groupby(SCALING_KEYS, sort=False):
        g = g.sort_values("processes").copy()
        base = g.loc[g["processes"] == 1, "wall_s"]
        if len(base):
            g["speedup"] = [_f(ratios.speedup(float(base.iloc[0]), w)) for w in g["wall_s"]]
        else:
            g["speedup"] = g["rec_speedup"]
        # one row per count whose repeats were recorded together: the recorded median speedup
        # (each repeat paired with the 1-process repeat measured beside it), not a ratio of medians
        paired = (g["n"] == 1) & (g["repeats"] > 1) & g["rec_speedup"].notna()
        g.loc[paired, "speedup"] = g.loc[paired, "rec_speedup"]
        g.loc[~paired, ["speedup_low", "speedup_high"]] = math.nan
        g["efficiency"] = [_efficiency(sp, n) for sp, n in zip(g["speedup"], g["processes"])]
        ceiling, peak = calibration(inputs.machine(key[0]))
        g["ceiling"] = [ceiling.get(int(n), math.nan) for n in g["processes"]]
        g["eff_vs_ceiling"] = g["efficiency"] / g["ceiling"]
        g["gflops_share"] = g["gflops"] / peak if peak else math.nan
        points = {int(n): float(s) for n, s in zip(g["processes"], g["speedup"]) if ok(s)}
        f = ratios.amdahl_fit(points)
        g["serial_fraction"] = f if f is not None else math.nan
        out.append(g)
    return pd.concat(out, ignore_index=True)[cols]


def weak_frame(df: pd.DataFrame, sc: pd.DataFrame) -> pd.DataFrame:
    """Weak scaling beside strong scaling, per process count, from the recorded figures.

    Rows: the weak-scaling runs (every worker ran every trial: N times the work) and the 1-process
    run they are measured against, of each machine/workload/size/backend/device with a weak run;
    columns: per-process CPU/wall, aggregate throughput, the recorded weak efficiency
    (``throughput(N) / (N x throughput(1))``) and the strong-scaling efficiency at the same N
    (from ``sc``, :func:`scaling_frame`), where measured.

    Args:
        df: :func:`runs_frame`.
        sc: :func:`scaling_frame` of the same runs.
    """
    cols = SCALING_KEYS + ["processes", "per_proc_ratio", "cpu_wall_ratio", "throughput", "unit",
                           "weak_efficiency", "strong_efficiency", "repeats", "valid"]
    m = measured(df)
    if m.empty or "scaling" not in m or not (m["scaling"] == "weak").any():
        return pd.DataFrame(columns=cols)
    m = m[m["engine"] == "local"]
    out = []
    for key, g in m.groupby(SCALING_KEYS, sort=False):
        weak = g[(g["scaling"] == "weak") & (g["processes"] > 1)]
        if weak.empty:
            continue
        one = g[g["processes"] == 1].head(1).copy()
        one["weak_efficiency"] = 1.0
        rows = pd.concat([one, weak]).sort_values("processes").copy()
        strong = sc
        for k, v in zip(SCALING_KEYS, key):
            strong = strong[strong[k] == v]
        eff = {int(n): e for n, e in zip(strong["processes"], strong["efficiency"])}
        rows["strong_efficiency"] = [eff.get(int(n), math.nan) for n in rows["processes"]]
        out.append(rows)
    if not out:
        return pd.DataFrame(columns=cols)
    return pd.concat(out, ignore_index=True)[cols]


def _efficiency(speedup: float, processes: int) -> float:
    """:func:`bench.model.ratios.efficiency` of a table cell (NaN without a speedup)."""
    return _f(ratios.efficiency(float(speedup) if ok(speedup) else None, int(processes)))


# ---------------------------------------------------------------- devices


def devices_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Time per trial, throughput, quality and GPU utilisation per device strategy of each workload
    (and backend: devices are compared within one backend).

    Only workloads measured on more than one device strategy, or on any non-CPU device, appear.
    """
    m = measured(df)
    keep = []
    for _, g in m.groupby(["label", "workload", "size", "backend"], sort=False):
        if g["device"].nunique() > 1 or (g["device"] != "cpu").any():
            keep.append(g)
    if not keep:
        return pd.DataFrame(columns=list(df.columns))
    g = pd.concat(keep)
    return (
        g.groupby(["label", "workload", "size", "backend", "device", "processes"], sort=False)
        .agg(
            strategy=("strategy", "first"), time_per_trial_s=("time_per_trial_s", "median"),
            throughput=("throughput", "median"), unit=("unit", "first"), quality_key=("quality_key", "first"),
            quality=("quality", "median"), gpu_util_p50=("gpu_util_p50", "median"),
            gpu_util_p95=("gpu_util_p95", "median"), wall_s=("wall_s", "median"),
        )
        .reset_index()
    )


# ---------------------------------------------------------------- cluster


def cluster_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Ray runs grouped by node count, with speedup over the local 1-process run of the same work.

    The baseline is the local (engine ``local``) 1-process run of the same workload, size,
    backend and device, on the same machine label when there is one, else on any machine.
    """
    m = measured(df)
    ray = m[m["engine"] == "ray"]
    cols = ["label", "workload", "size", "backend", "device", "nodes", "processes", "n", "wall_s", "base_wall_s",
            "base_label", "speedup", "efficiency"]
    if ray.empty:
        return pd.DataFrame(columns=cols)
    local1 = m[(m["engine"] == "local") & (m["processes"] == 1)]
    rows = []
    ray = ray.assign(nodes=ray["nodes"].fillna(1))
    for key, g in ray.groupby(["label", "workload", "size", "backend", "device", "nodes", "processes"], sort=False):
        label, workload, size, backend, device, nodes, procs = key
        cand = local1[(local1["workload"] == workload) & (local1["size"] == size) & (local1["device"] == device)
                      & (local1["backend"] == backend)]
        same = cand[cand["label"] == label]
        cand = same if len(same) else cand
        base = float(cand["wall_s"].median()) if len(cand) else math.nan
        wall = float(g["wall_s"].median())
        sp = _f(ratios.speedup(base, wall)) if ok(base) else math.nan
        rows.append({
            "label": label, "workload": workload, "size": size, "backend": backend, "device": device,
            "nodes": int(nodes),
            "processes": int(procs), "n": len(g), "wall_s": wall, "base_wall_s": base,
            "base_label": str(cand["label"].iloc[0]) if len(cand) else "", "speedup": sp,
            "efficiency": _efficiency(sp, procs),
        })
    return pd.DataFrame(rows, columns=cols).sort_values(["workload", "nodes", "processes"], kind="stable")


# ---------------------------------------------------------------- plain pytest-benchmark timings


def timings_frame(inputs: Inputs) -> pd.DataFrame:
    """Every plain pytest-benchmark entry (those without xpubench figures) with its statistics."""
    rows = [
        {"label": t.label, "file": t.file, "name": t.name, "group": t.group, "fullname": t.fullname,
         "mean": t.mean, "median": t.median, "min": t.min, "max": t.max, "stddev": t.stddev, "rounds": t.rounds}
        for t in inputs.timings if not t.has_xpubench
    ]
    cols = ["label", "file", "name", "group", "fullname", "mean", "median", "min", "max", "stddev", "rounds"]
    return pd.DataFrame(rows, columns=cols)


# ---------------------------------------------------------------- backends

BACKEND_KEYS = ["label", "workload", "size", "device", "engine", "processes", "threads"]


def backends_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The same workload and strategy on each Keras backend, side by side.

    Only (machine, workload, size) groups measured on more than one backend appear. Repeated runs
    of one strategy are combined by their median; ``speedup_vs_tensorflow`` is the median of what
    the runs recorded (:func:`bench.model.ratios.speedup_over_tensorflow`), never recomputed here;
    ``quality`` is the median of the runs' mean quality (:func:`bench.model.ratios.mean_quality`).
    Rows are ordered by strategy, tensorflow first within each.
    """
    cols = BACKEND_KEYS + ["backend", "n", "wall_s", "throughput", "unit", "speedup_vs_tensorflow", "quality_key",
                           "quality", "quality_text", "time_per_trial_s"]
    m = measured(df)
    keep = [g for _, g in m.groupby(["label", "workload", "size"], sort=False) if g["backend"].nunique() > 1]
    if not keep:
        return pd.DataFrame(columns=cols)
    g = pd.concat(keep)
    out = (
        g.groupby(BACKEND_KEYS + ["backend"], sort=False, dropna=False)
        .agg(
            n=("wall_s", "size"), wall_s=("wall_s", "median"), throughput=("throughput", "median"),
            unit=("unit", "first"), speedup_vs_tensorflow=("speedup_vs_tensorflow", "median"),
            quality_key=("quality_key", "first"), quality=("quality", "median"), quality_text=("quality_text", "first"),
            time_per_trial_s=("time_per_trial_s", "median"),
        )
        .reset_index()
    )
    first_seen = {k: i for i, k in enumerate(dict.fromkeys(zip(*(out[c] for c in ["label", "workload", "size"]))))}
    out["_group"] = [first_seen[k] for k in zip(out["label"], out["workload"], out["size"])]
    out["_tf"] = out["backend"] != DEFAULT_BACKEND
    out = out.sort_values(["_group", "device", "engine", "processes", "threads", "_tf"], kind="stable",
                          na_position="first")
    return out[cols].reset_index(drop=True)
