"""predict_modes figures, read from what each trial declares in its record (``extra``).

The workload (``workloads.predict_modes``) declares per trial: ``mode``, ``mode_label``,
``batch``, ``task`` (``predict`` or ``score``), ``per_row``, ``baseline`` (True only for per-row
``model.predict``), ``scoring_baseline`` (True only for the per-row scoring loop),
``rows_per_s``, ``ms_per_row``, ``rows_timed`` (rows in the timed table), ``rows_predicted``
(over all passes), ``passes``; scoring trials their ``metric`` and ``metric_value``; shard
trials ``shard``, ``shards``, ``timed_start_unix`` and ``pass_ends_s``. Nothing here guesses a
meaning from a mode's name: a result whose trials do not declare ``baseline`` (written before it
was declared) shows its modes without ratios and says so.

Works on ``bench.model.results.RunRecord`` (console) and ``reports.load.Run`` (report) alike; pandas
is imported only by :func:`predict_frame`.

Seed 000's chain, all measured: per-row scoring loop -> the whole table scored in shards by one
process (batched ``model.evaluate``) -> the same shards scored at once by N processes
(:func:`chain`). The whole-table rate at N processes is measured over the seconds in which the
most shards were being scored at the same time (:func:`whole_table`), never multiplied.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Iterable, Mapping, Sequence

from bench.model.strategy import DEFAULT_BACKEND, backend_label
from reports import fmt
from reports.fmt import num, ok

WORKLOAD = "predict_modes"
FRAME_COLUMNS = [
    "label", "size", "device", "processes", "strategy", "model", "mode", "batch", "mode_label", "task", "per_row",
    "baseline", "rows_per_s", "ms_per_row", "rows_timed", "rows_predicted", "passes", "runs", "ratio",
    "baseline_declared",
]


# ---------------------------------------------------------------- reading one run


def _processes(run: Any) -> int:
    procs = getattr(run, "processes", None)
    if procs is None:  # a RunRecord
        procs = (getattr(run, "strategy", None) or {}).get("processes")
    return int(procs) if ok(procs) else 1


def _device(run: Any) -> str:
    """The run's device, prefixed with its backend unless tensorflow (``cpu``, ``jax:cpu``)."""
    device = getattr(run, "device", None)  # reports.load.Run
    if not isinstance(device, str):
        strategy = getattr(run, "strategy", None)  # a RunRecord
        device = str(strategy.get("device") or "") if isinstance(strategy, Mapping) else ""
    backend = getattr(run, "backend", DEFAULT_BACKEND)  # Run field or RunRecord property
    return backend_label(backend if isinstance(backend, str) else DEFAULT_BACKEND, device)


def _label(run: Any) -> str:
    return str(getattr(run, "label", "") or "")


def _ok_trials(run: Any) -> list:
    return [t for t in getattr(run, "trials", ()) if t.error is None]


def _is_shard(extra: Mapping[str, Any]) -> bool:
    return ok(extra.get("shards")) and ok(extra.get("shard"))


def is_predict_run(run: Any) -> bool:
    """Whether a run's trials declare predict_modes figures (``mode`` and ``rows_per_s``)."""
    return any(t.extra.get("mode") is not None and ok(t.extra.get("rows_per_s")) for t in _ok_trials(run))


def baseline_declared(run: Any) -> bool:
    """Whether the run's trials declare which mode is the baseline (results from before did not)."""
    return any("baseline" in t.extra for t in _ok_trials(run))


def _label_of(extra: Mapping[str, Any]) -> str:
    if extra.get("mode_label"):
        return str(extra["mode_label"])
    batch = extra.get("batch")  # older results: the declared mode and batch, as they are
    return str(extra["mode"]) + (f" (batch {int(batch)})" if ok(batch) else "")


def mode_rows(run: Any) -> list[dict]:
    """One row per (mode, batch) of a run, shard trials apart, fastest first.

    Args:
        run: A ``RunRecord`` or ``reports.load.Run``.

    Returns:
        Dicts with ``mode``, ``batch``, ``mode_label``, ``task``, ``per_row``, ``baseline``
        (None when undeclared), ``rows_per_s``, ``ms_per_row``, ``rows_timed``, ``rows_predicted``,
        ``passes``, ``metric``, ``metric_value`` and ``ratio`` (rows/s over the declared
        baseline's; None without one). Trials of the same (mode, batch) are combined by median.
    """
    groups: dict[tuple, list] = {}
    for t in _ok_trials(run):
        e = t.extra
        if e.get("mode") is None or not ok(e.get("rows_per_s")) or _is_shard(e):
            continue
        groups.setdefault((str(e["mode"]), int(e["batch"]) if ok(e.get("batch")) else None), []).append(t)
    rows = []
    for (mode, batch), trials in groups.items():
        extras = [t.extra for t in trials]
        e = extras[0]

        def med(key, fallback=None):
            vals = [float(x[key]) for x in extras if ok(x.get(key))]
            if not vals and fallback is not None:
                vals = [float(fallback(t)) for t in trials if ok(fallback(t))]
            return statistics.median(vals) if vals else None

        rows.append({
            "mode": mode, "batch": batch, "mode_label": _label_of(e), "task": e.get("task"),
            "per_row": e.get("per_row"), "baseline": bool(e["baseline"]) if "baseline" in e else None,
            "scoring_baseline": bool(e.get("scoring_baseline")),
            "rows_per_s": med("rows_per_s"), "ms_per_row": med("ms_per_row"), "rows_timed": med("rows_timed"),
            # results from before rows_predicted was declared: the trial's samples (rows predicted)
            "rows_predicted": med("rows_predicted", lambda t: t.samples or None), "passes": med("passes"),
            "metric": e.get("metric"), "metric_value": med("metric_value"), "metric_rows": med("metric_rows"),
            "metric_loop_rows": med("metric_loop_rows"), "loop_rows": med("loop_rows"), "trials": len(trials),
        })
    base = [r["rows_per_s"] for r in rows if r["baseline"]]
    for r in rows:
        r["ratio"] = r["rows_per_s"] / base[0] if base else None
    return sorted(rows, key=lambda r: -r["rows_per_s"])


# ---------------------------------------------------------------- the whole table from shards


def _cumulative(extra: Mapping[str, Any]) -> tuple[float, list[float], float] | None:
    """A shard's (start, pass end times, rows per pass) in unix seconds, or None if not declared."""
    start, ends, rows = extra.get("timed_start_unix"), extra.get("pass_ends_s"), extra.get("rows_timed")
    if not ok(start) or not isinstance(ends, (list, tuple)) or not ends or not ok(rows):
        return None
    if not all(ok(e) for e in ends):
        return None
    return float(start), [float(start) + float(e) for e in ends], float(rows)


def _rows_done(shard: tuple[float, list[float], float], t: float) -> float:
    """Rows a shard had scored by unix time ``t`` (linear within a pass)."""
    start, ends, rows = shard
    done, prev = 0.0, start
    for end in ends:
        if t >= end:
            done += rows
        elif t > prev:
            done += rows * (t - prev) / (end - prev)
            break
        else:
            break
        prev = end
    return done


def whole_table(trials: Iterable[Any]) -> dict | None:
    """Rows/s of the whole table from its shard trials, measured while the most shards ran at once.

    Each shard trial declares when its timed passes ran. The figure is the rows all shards scored
    during the seconds in which the largest number of them were being scored at the same time,
    over those seconds: one process scores shards one after another (so that is all their timed
    seconds); N processes score N shards at once. Nothing is multiplied.

    Args:
        trials: A run's trial records (others than shard trials are ignored).

    Returns:
        None unless every shard of a table finished; else ``shards``, ``concurrency`` (shards
        scored at once), ``rows_per_s``, ``rows``, ``window_s``, ``table_rows``, ``batch``,
        ``mode_label``, ``metric`` and ``metric_value`` (over the whole table, row-weighted).
    """
    shards: dict[int, Any] = {}
    n = None
    for t in trials:
        e = t.extra
        if t.error is not None or not _is_shard(e):
            continue
        n = int(e["shards"]) if n is None else n
        if int(e["shards"]) == n:
            shards[int(e["shard"])] = t
    if n is None or sorted(shards) != list(range(n)):
        return None
    timed = [_cumulative(t.extra) for t in shards.values()]
    if any(s is None for s in timed):
        return None
    points = sorted({p for s in timed for p in (s[0], s[1][-1])})
    depth = [(a, b, sum(1 for s in timed if s[0] <= a and s[1][-1] >= b)) for a, b in zip(points, points[1:]) if b > a]
    top = max((d for _, _, d in depth), default=0)
    if top == 0:
        return None
    window = [(a, b) for a, b, d in depth if d == top]
    seconds = sum(b - a for a, b in window)
    rows = sum(_rows_done(s, b) - _rows_done(s, a) for a, b in window for s in timed)
    extras = [shards[k].extra for k in range(n)]
    weights = [float(e.get("metric_rows") or e["rows_timed"]) for e in extras]
    values = [e.get("metric_value") for e in extras]
    metric_value = (sum(w * float(v) for w, v in zip(weights, values)) / sum(weights)
                    if all(ok(v) for v in values) and sum(weights) > 0 else None)
    first = extras[0]
    return {
        "shards": n, "concurrency": top, "rows_per_s": rows / seconds if seconds > 0 else None, "rows": rows,
        "window_s": seconds, "table_rows": first.get("table_rows"), "batch": first.get("batch"),
        "mode_label": str(first.get("mode_label") or first.get("mode")), "metric": first.get("metric"),
        "metric_value": metric_value, "model": first.get("model"),
    }


# ---------------------------------------------------------------- the chain across process counts


def _group_key(run: Any) -> tuple:
    models = {str(t.extra.get("model")) for t in _ok_trials(run) if t.extra.get("model") is not None}
    return (_label(run), str(getattr(run, "size", "")), _device(run), ",".join(sorted(models)))


def chains(runs: Sequence[Any]) -> list[dict]:
    """Seed 000's chain per (machine, size, device, model) found in ``runs``; see :func:`chain`."""
    groups: dict[tuple, list] = {}
    for r in runs:
        if is_predict_run(r):  # the declared fields, whatever the workload (predict_modes, model)
            groups.setdefault(_group_key(r), []).append(r)
    out = []
    for key, group in groups.items():
        c = _chain(group)
        if c is not None:
            out.append({**c, "label": key[0], "size": key[1], "device": key[2], "model": key[3]})
    return out


def chain(runs: Sequence[Any]) -> dict | None:
    """Seed 000's chain from measured rates: per-row loop -> batched -> N processes = total.

    Needs a 1-process run with the per-row scoring loop (``scoring_baseline``) and all shard
    trials, and a run at more processes with all shard trials, of the same machine, size,
    device and model (the first such group in ``runs`` is used; :func:`chains` gives all).

    - loop: the per-row scoring loop's rows/s (1 process);
    - batched: rows/s of the whole table scored in shards by that one process;
    - parallel: rows/s of the whole table at N processes (the most processes measured).

    Args:
        runs: ``RunRecord`` or ``reports.load.Run`` objects (others than predict_modes are ignored).

    Returns:
        None when not measurable; else the three rates, ``batched_factor`` (batched / loop),
        ``parallel_factor`` (parallel / batched), ``total_factor`` (parallel / loop, itself a
        ratio of two measured rates), ``processes``, ``shards``, ``concurrency``, the labels of
        the loop and batched modes, and ``text`` (one line).
    """
    found = chains(runs)
    return found[0] if found else None


def _chain(runs: list) -> dict | None:
    one = [r for r in runs if _processes(r) == 1]
    loop = batched = None
    for r in one:
        rows = [m for m in mode_rows(r) if m["scoring_baseline"]]
        whole = whole_table(r.trials)
        if rows and whole and ok(whole["rows_per_s"]):
            loop, batched = rows[0], whole
            break
    if loop is None:
        return None
    best = None
    for r in runs:
        n = _processes(r)
        if n <= 1:
            continue
        whole = whole_table(r.trials)
        if whole and ok(whole["rows_per_s"]) and (best is None or n > best[0]):
            best = (n, whole)
    if best is None:
        return None
    n, parallel = best
    out = {
        "loop_rows_per_s": loop["rows_per_s"], "batched_rows_per_s": batched["rows_per_s"],
        "parallel_rows_per_s": parallel["rows_per_s"], "processes": n, "shards": parallel["shards"],
        "concurrency": parallel["concurrency"], "loop_label": loop["mode_label"], "batched_label": batched["mode_label"],
        "batched_factor": batched["rows_per_s"] / loop["rows_per_s"],
        "parallel_factor": parallel["rows_per_s"] / batched["rows_per_s"],
        "total_factor": parallel["rows_per_s"] / loop["rows_per_s"],
    }
    out["text"] = chain_text(out)
    return out


def times(value: Any) -> str:
    """A measured factor to three significant figures (:func:`reports.fmt.times`): ``1.76×``,
    ``21.4×``, ``4,010×``, ``162,000×``.

    Args:
        value: The factor.
    """
    return fmt.times(value, figures=3)


def chain_text(c: Mapping[str, Any]) -> str:
    """One line: ``per-row scoring loop 21 rows/s -> batched model.evaluate, 2 shards in 1 process: ...``."""
    return (f"per-row scoring loop {num(c['loop_rows_per_s'])} rows/s -> batched model.evaluate, {c['shards']} shards "
            f"in 1 process: {num(c['batched_rows_per_s'])} rows/s ({times(c['batched_factor'])}) -> {c['processes']} "
            f"processes at once: {num(c['parallel_rows_per_s'])} rows/s ({times(c['parallel_factor'])}) "
            f"= {times(c['total_factor'])} in total")


# ---------------------------------------------------------------- sentences


def agreement_text(rows: Sequence[Mapping[str, Any]]) -> str | None:
    """The metric of the per-row scoring loop and of ``model.evaluate`` on the same rows, or None."""
    loop = next((r for r in rows if r["scoring_baseline"] and ok(r["metric_value"])), None)
    ev = next((r for r in rows if r["mode"] == "evaluate" and ok(r["metric_loop_rows"])), None)
    if loop is None or ev is None:
        return None
    return (f"{loop['metric']} on the same {int(loop['metric_rows'])} rows: per-row scoring loop "
            f"{loop['metric_value']:.6g}, model.evaluate {ev['metric_loop_rows']:.6g} (checked equal in each trial; "
            f"model.evaluate on the whole table: {ev['metric_value']:.6g})")


def headline_lines(run: Any) -> list[str]:
    """Short sentences answering "is it worth it?" for one predict_modes run, from measured numbers.

    Args:
        run: A ``RunRecord`` or ``reports.load.Run``.

    Returns:
        E.g. ``["batched predict_on_batch (batch 4096): 157,000× per-row model.predict", ...]`` (each mode
        named by its declared ``mode_label``: under jax the compiled call reads ``jax.jit (batch 4096)``);
        ``[]`` when the run has no such figures (or no declared baseline to compare with).
    """
    if not is_predict_run(run):
        return []
    rows = mode_rows(run)
    out = []
    fast = [r for r in rows if r["task"] == "predict" and r["per_row"] is False and ok(r["ratio"])]
    if fast:
        best = max(fast, key=lambda r: r["rows_per_s"])
        out.append(f"batched {best['mode_label']}: {times(best['ratio'])} per-row model.predict")
    loop = next((r for r in rows if r["scoring_baseline"]), None)
    ev = [r for r in rows if r["task"] == "score" and r["per_row"] is False]
    if loop and ev:
        best = max(ev, key=lambda r: r["rows_per_s"])
        out.append(f"batched {best['mode_label']}: {times(best['rows_per_s'] / loop['rows_per_s'])} "
                   f"the per-row scoring loop")
    shards = shard_text(run)
    if shards:
        out.append(shards)
    return out


def shard_text(run: Any) -> str | None:
    """``2 shards, 2 at once on 2 processes: 150,000 rows/s of the whole table``, or None.

    Args:
        run: A ``RunRecord`` or ``reports.load.Run``.
    """
    whole = whole_table(run.trials)
    if not whole or not ok(whole["rows_per_s"]):
        return None
    n = _processes(run)
    return (f"{whole['shards']} shards, {whole['concurrency']} at once on {n} process{'es' if n > 1 else ''}: "
            f"{num(whole['rows_per_s'])} rows/s of the whole table")


# ---------------------------------------------------------------- the report's frame


def predict_frame(inputs: Any):
    """Rows/s per (machine, size, strategy, model, mode, batch), median over repeated runs.

    Args:
        inputs: ``reports.load.Inputs``.

    Returns:
        A pandas DataFrame with ``FRAME_COLUMNS``; ``ratio`` is rows/s over the declared
        baseline's in the same (machine, size, strategy, model), NaN without one.
    """
    import pandas as pd

    rows = []
    for run in inputs.runs:
        if not is_predict_run(run) or run.status != "complete":
            continue
        declared = baseline_declared(run)
        for r in mode_rows(run):
            rows.append({
                "label": run.label, "size": run.size, "device": _device(run), "processes": run.processes,
                "strategy": run.strategy, "model": ",".join(sorted({str(t.extra.get("model")) for t in run.ok_trials})),
                "mode": r["mode"], "batch": float(r["batch"]) if ok(r["batch"]) else math.nan,
                "mode_label": r["mode_label"], "task": r["task"] or "", "per_row": r["per_row"],
                "baseline": bool(r["baseline"]), "rows_per_s": r["rows_per_s"],
                "ms_per_row": _nan(r["ms_per_row"]), "rows_timed": _nan(r["rows_timed"]),
                "rows_predicted": _nan(r["rows_predicted"]), "passes": _nan(r["passes"]), "runs": 1,
                "baseline_declared": declared,
            })
    if not rows:
        return pd.DataFrame(columns=FRAME_COLUMNS)
    df = pd.DataFrame(rows)
    keys = ["label", "size", "device", "processes", "strategy", "model"]
    agg = (
        df.groupby(keys + ["mode", "batch"], sort=False, dropna=False)
        .agg(mode_label=("mode_label", "first"), task=("task", "first"), per_row=("per_row", "first"),
             baseline=("baseline", "any"), rows_per_s=("rows_per_s", "median"), ms_per_row=("ms_per_row", "median"),
             rows_timed=("rows_timed", "median"), rows_predicted=("rows_predicted", "median"),
             passes=("passes", "median"), runs=("runs", "sum"), baseline_declared=("baseline_declared", "all"))
        .reset_index()
    )
    out = []
    for _, g in agg.groupby(keys, sort=False, dropna=False):
        g = g.copy()
        base = g.loc[g["baseline"], "rows_per_s"]
        g["ratio"] = g["rows_per_s"] / float(base.iloc[0]) if len(base) else math.nan
        out.append(g.sort_values("rows_per_s", ascending=False))
    return pd.concat(out, ignore_index=True)[FRAME_COLUMNS]


def _nan(value: Any) -> float:
    return float(value) if ok(value) else math.nan


__all__ = [
    "agreement_text", "baseline_declared", "chain", "chain_text", "chains", "headline_lines", "is_predict_run",
    "mode_rows", "predict_frame", "shard_text", "times", "whole_table",
]
