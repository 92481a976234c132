"""Builds the report: header (machines, versions, data, warnings), sections of charts and tables.

The flow is one way: :class:`reports.load.Inputs` → pandas tables (:mod:`reports.tables`) →
charts (:mod:`reports.charts`) and formatted cells → HTML (:mod:`reports.html`).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from typing import Any, Mapping, Sequence

import pandas as pd

from bench.model import ratios
from bench.model.results import _version
from bench.model.strategy import DEFAULT_BACKEND, backend_label
from reports import charts as ch
from reports import fmt
from reports.comparison import machines_table, table_cells, timing_cells, timings_table
from reports.configs import ConfigTable, config_tables
from reports.headline import NOISE_LIMIT, amdahl_sentence, headlines, noise_between
from reports.html import Section, Table, render
from reports.load import PYTEST_BENCHMARK, Inputs, Run
from reports.recommend import HEADROOM, recommend
from reports.tables import (
    backends_frame, calibration, cluster_frame, devices_frame, runs_frame, scaling_frame, timings_frame, weak_frame,
)
from reports import repeats as rp
from reports import predict as pr

MAX_TIMELINES = 12
CV_LIMIT = NOISE_LIMIT  # noise between measurements of the same thing above this is "unstable"


@dataclasses.dataclass
class Report:
    """A rendered report: the HTML text and every chart in it."""

    html: str
    charts: list[ch.Chart]


class _Charts:
    """Collects charts, giving each a unique file name."""

    def __init__(self, png_names: bool):
        self.charts: list[ch.Chart] = []
        self.png_names = png_names
        self._names: set[str] = set()

    def add(self, chart: ch.Chart) -> dict:
        """Keeps a chart (renamed if its name is taken) and returns its template dict."""
        name, n = chart.name, 1
        while name in self._names:
            n += 1
            name = f"{chart.name}-{n}"
        self._names.add(name)
        chart = dataclasses.replace(chart, name=name)
        self.charts.append(chart)
        w, h = chart.size
        return {"title": chart.title, "uri": chart.data_uri, "width": w, "height": h,
                "file": f"{name}.png" if self.png_names else ""}


# ---------------------------------------------------------------- header


def _gpus(machine: Mapping[str, Any]) -> str:
    gpus = machine.get("gpus")
    if isinstance(gpus, list) and gpus:
        names = []
        for g in gpus:
            if isinstance(g, Mapping):
                mem = g.get("memory_total_bytes") or g.get("mem_total_bytes")
                names.append(str(g.get("name", "GPU")) + (f" ({fmt.nbytes(mem)})" if fmt.ok(mem) else ""))
            else:
                names.append(str(g))
        return ", ".join(names)
    status = machine.get("gpu_status")
    return f"none ({status})" if status else "none"


def _calibration_text(machine: Mapping[str, Any]) -> str:
    ceiling, gflops = calibration(machine)
    parts = [f"{n}p {fmt.pct(e)}" for n, e in sorted(ceiling.items())]
    text = ("parallel ceiling " + ", ".join(parts)) if parts else ""
    if gflops:
        text += ("; " if text else "") + f"matmul {gflops:,.1f} GFLOP/s"
    cal = machine.get("calibration") if isinstance(machine.get("calibration"), Mapping) else {}
    if text and fmt.ok(cal.get("load_avg_1m")):
        text += f" (load average {float(cal['load_avg_1m']):.1f} while measured)"
    return text or fmt.DASH


def backends_text(machine: Mapping[str, Any]) -> str:
    """The fingerprint's installed Keras backends (``backends``): ``jax 0.10.2; torch 2.13.0+cpu``,
    with CUDA/cuDNN where the build says; a dash for a fingerprint written before backends.

    Args:
        machine: A machine fingerprint.
    """
    backends = machine.get("backends")
    if not isinstance(backends, Mapping):
        return fmt.DASH
    parts = []
    for name, info in backends.items():
        info = info if isinstance(info, Mapping) else {}
        build = info.get("build") if isinstance(info.get("build"), Mapping) else {}
        built = [f"{label} {build[key]}" for key, label in (("cuda", "CUDA"), ("cudnn", "cuDNN"), ("rocm", "ROCm"))
                 if isinstance(build.get(key), (str, int, float)) and not isinstance(build.get(key), bool)]
        parts.append(f"{name} {fmt.plain(info.get('version'))}" + (f" ({', '.join(built)})" if built else ""))
    return "; ".join(parts) or fmt.DASH


def machines_table_html(inputs: Inputs) -> Table:
    """One row per machine label: the fingerprint facts that make results comparable."""
    rows = []
    for label in inputs.labels:
        m = inputs.machine(label)
        versions = sorted({s.tool_version for s in inputs.sources if s.label == label})
        cores = "/".join(fmt.plain(m.get(k)) for k in ("physical_cores", "logical_cores", "usable_cores"))
        threads = m.get("thread_env") if isinstance(m.get("thread_env"), Mapping) else {}
        rows.append([
            label, fmt.plain(m.get("cpu")), cores, fmt.nbytes(m.get("ram_bytes")), fmt.plain(m.get("os")),
            fmt.plain(m.get("python")), fmt.plain(m.get("tensorflow")), fmt.plain(m.get("keras")), backends_text(m),
            ", ".join(versions), _gpus(m), ", ".join(f"{k}={v}" for k, v in threads.items()) or fmt.DASH,
            _calibration_text(m),
        ])
    return Table(
        columns=["machine", "CPU", "cores phys/logical/usable", "RAM", "OS", "Python", "TensorFlow", "Keras",
                 "Keras backends", "xpubench", "GPUs", "thread env", "calibration"],
        rows=rows, caption="Machine fingerprints",
    )


def inputs_table(inputs: Inputs) -> Table:
    """One row per input file: format, machine, runs, when written, complete or not."""
    rows = [
        [s.path, s.kind + ("" if s.runs or s.kind != PYTEST_BENCHMARK else " (no xpubench data)"), s.label,
         str(len(s.runs)), str(len(s.timings)) if s.kind == PYTEST_BENCHMARK else fmt.DASH, s.created or fmt.DASH,
         "complete" if s.complete else "INCOMPLETE"]
        for s in inputs.sources
    ]
    return Table(columns=["file", "format", "machine", "runs", "benchmarks", "written", "status"], rows=rows,
                 caption="Input files", numeric=(3, 4))


def data_used(runs: Sequence[Run]) -> list[dict]:
    """Which data each workload used, saying "synthetic" plainly."""
    seen: dict[tuple, dict] = {}
    for r in runs:
        if r.status == "skipped":
            continue
        source = str(r.data.get("source") or "")
        name = str(r.data.get("name") or r.data.get("path") or "")
        key = (r.workload, source, name)
        if key in seen:
            continue
        if source == "synthetic":
            text = "synthetic data (a generated stand-in, not the real dataset)"
        elif source == "real":
            text = "real data"
        elif source:
            text = f"{source} data"
        else:
            text = "not recorded"
        if name:
            text += f": {name}"
        if r.data.get("reason"):
            text += f" ({r.data['reason']})"
        seen[key] = {"workload": r.workload, "text": text, "synthetic": source == "synthetic"}
    return list(seen.values())


def warnings_for(inputs: Inputs, df: pd.DataFrame) -> list[str]:
    """Unreadable files, incomplete results, skipped strategies, failed trials, unstable timings."""
    out = list(inputs.skipped)
    for s in inputs.sources:
        if not s.complete:
            out.append(f"{s.path}: the sweep did not finish (result marked incomplete); figures cover finished trials only")
        if s.kind == PYTEST_BENCHMARK and not s.runs:
            out.append(f"{s.path}: pytest-benchmark JSON without xpubench data: showing its timing statistics only")
    for r in inputs.runs:
        where = f"{r.workload} ({r.size}) {r.strategy} on {r.label}"
        if r.status == "skipped":
            out.append(f"{where} skipped: {r.skipped or 'no reason recorded'}")
        elif r.status != "complete":
            out.append(f"{where}: run {r.status}")
        failed = [t for t in r.trials if t.error is not None]
        n_failed = len(failed)
        if not r.trials and fmt.ok(r.summary.failed):
            n_failed = int(r.summary.failed)  # pytest-benchmark inputs carry counts only
        if n_failed:
            kinds = sorted({t.error.kind for t in failed})
            first = f" (first: {failed[0].error.message})" if failed else ""
            total = len(r.trials) or int(r.summary.trials or 0)
            out.append(f"{where}: {n_failed} of {total} trials failed"
                       + (f" [{', '.join(kinds)}]" if kinds else "") + first)
        if r.data.get("source") == "synthetic":
            out.append(f"{where} used synthetic data, not the real dataset")
    groups: dict[tuple, list[Run]] = {}
    for r in inputs.runs:
        if r.status == "complete" and r.ok_trials:
            groups.setdefault((r.label, r.workload, r.size), []).append(r)
    for (label, workload, size), runs in groups.items():
        noise = noise_between(runs)
        if noise.get("measured") and noise["cv"] > CV_LIMIT:
            out.append(f"{workload} ({size}) on {label}: unstable timings, {noise['what']} (> {fmt.pct(CV_LIMIT)})")
    for t in inputs.timings:
        if not t.has_xpubench and fmt.ok(t.stddev) and t.mean > 0 and t.stddev / t.mean > CV_LIMIT:
            out.append(f"{t.name} on {t.label}: unstable pytest-benchmark timing, CV {fmt.pct(t.stddev / t.mean)} "
                       f"(> {fmt.pct(CV_LIMIT)})")
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------- sections


def recommendations_section(df: pd.DataFrame, inputs: Inputs) -> Section | None:
    """The recommendation table (:mod:`reports.recommend`); None without measured runs."""
    recs = recommend(df, inputs)
    if not recs:
        return None
    multi = len(inputs.labels) > 1
    rows = [
        ([r.label] if multi else []) + [
            f"{r.workload} ({r.size})", r.fastest, fmt.num(r.trials_per_hour), str(r.processes),
            fmt.plain(r.memory_max_processes), r.reason,
        ]
        for r in recs
    ]
    cols = (["machine"] if multi else []) + ["workload", "fastest measured", "trials/hour", "use processes",
                                             "fit in RAM", "why"]
    off = 1 if multi else 0
    return Section(
        id="recommendations", title="Recommendations",
        tables=[Table(columns=cols, rows=rows, numeric=(2 + off, 3 + off, 4 + off))],
        notes=[f"'fit in RAM': largest process count whose measured per-worker peak memory fits in the "
               f"machine's RAM with {fmt.pct(HEADROOM)} headroom."],
    )


def config_table_html(t: ConfigTable) -> Table:
    """A per-configuration table (:mod:`reports.configs`) as a report table; its best named under it."""
    note = " ".join([(" ".join(b[:1].upper() + b[1:] + "." for b in t.best)), t.note]).strip()
    return Table(columns=list(t.columns), rows=[list(r) for r in t.rows], caption=t.title, numeric=t.numeric, note=note)


def config_sections(inputs: Inputs, charts: _Charts) -> list[Section]:
    """One section per workload with per-configuration tables (networks, cross-validation,
    epochs), the best marked; the time-to-accuracy chart where epochs were scored."""
    by_workload: dict[str, Section] = {}
    for t in config_tables(inputs.runs):
        sec = by_workload.get(t.workload)
        if sec is None:
            what = {"networks": "per network", "cv": "per configuration", "epochs": "per epoch"}[t.kind]
            sec = by_workload[t.workload] = Section(id=f"configs-{ch.slug(t.workload)}",
                                                    title=f"{t.workload}: {what}")
        if t.curves:
            sec.charts.append(charts.add(ch.time_to_accuracy_chart(
                f"time-to-accuracy-{ch.slug(t.workload + '-' + t.label + '-' + t.strategy)}",
                f"{t.workload} ({t.size}) on {t.label}, {t.strategy}: accuracy vs training seconds", t.curves)))
        sec.tables.append(config_table_html(t))
    return list(by_workload.values())


def headline_blocks(inputs: Inputs, df: pd.DataFrame, sc: pd.DataFrame) -> list[dict]:
    """The headline blocks (:mod:`reports.headline`) for the template.

    Args:
        inputs: The loaded inputs.
        df: The report's runs frame (:func:`reports.tables.runs_frame`).
        sc: The report's scaling frame (:func:`reports.tables.scaling_frame`).
    """
    return [{"title": h.title, "lines": list(h.lines), "why": list(h.why)} for h in headlines(inputs, df, sc)]


def scaling_sections(sc: pd.DataFrame, charts: _Charts) -> list[Section]:
    """A section per workload (speedup, efficiency, Amdahl fit, ceiling) and one of CPU/wall charts.

    Args:
        sc: The report's scaling frame (:func:`reports.tables.scaling_frame`).
        charts: Where the charts go.
    """
    if sc.empty:
        return []
    speed, cpu = [], []
    has_gflops = sc["gflops"].notna().any()
    for workload, g in sc.groupby("workload", sort=False):
        groups = ["label", "size", "backend", "device"]
        multi_n = any(gg["processes"].nunique() > 1 for _, gg in g.groupby(groups, sort=False))
        intro, notes = [], []
        for key, gg in g.groupby(groups, sort=False):
            f = gg["serial_fraction"].iloc[0]
            counts = sorted({int(n) for n in gg["processes"]} | ({1} if gg["speedup"].notna().any() else set()))
            where = f"{key[0]} / {backend_label(key[2], key[3])} / {key[1]}"
            if fmt.ok(f):
                intro.append(f"{where}: {amdahl_sentence(f, len(counts))}.")
            elif len(counts) > 1:
                intro.append(f"{where}: no Amdahl fit: it needs at least "
                             f"{ratios.AMDAHL_MIN_COUNTS} distinct process counts and "
                             f"{', '.join(map(str, counts))} were measured (one point would fit any curve); run "
                             "with more counts, e.g. --processes 1,2,4, to estimate the serial fraction.")
            if gg["ceiling"].isna().all():
                notes.append(f"{key[0]}: this machine's parallel ceiling was not measured, so efficiency vs "
                             "ceiling is not shown: run bench calibrate (under 10 s) before the sweep.")
        cols = ["machine", "size", "device", "processes", "runs", "wall", "speedup", "efficiency",
                "machine ceiling", "efficiency vs ceiling"]
        cols += ["CPU/wall (tree)", "CPU/wall per process", "throughput"]
        if has_gflops:
            cols += ["GFLOP/s", "share of peak"]
        rows = []
        for r in g.itertuples():
            cells = [r.label, r.size, backend_label(r.backend, r.device), str(r.processes), str(r.n),
                     fmt.seconds(r.wall_s), fmt.times(r.speedup), fmt.pct(r.efficiency)]
            cells += [fmt.pct(r.ceiling), fmt.pct(r.eff_vs_ceiling)] if fmt.ok(r.ceiling) else ["not measured"] * 2
            cells += [fmt.num(r.cpu_wall_ratio), fmt.num(r.per_proc_ratio), f"{fmt.num(r.throughput)} {r.unit}"]
            if has_gflops:
                cells += [fmt.num(r.gflops), fmt.pct(r.gflops_share)]
            rows.append(cells)
        table = Table(columns=cols, rows=rows, numeric=tuple(range(3, len(cols))))
        sec = Section(id=f"scaling-{ch.slug(workload)}", title=f"Scaling: {workload}", intro=intro, tables=[table],
                      notes=list(dict.fromkeys(notes)))
        if multi_n:
            sec.charts.append(charts.add(ch.speedup_chart(workload, g)))
        else:
            sec.notes.append("Only one process count was measured: run with --processes 1,2,... to see scaling.")
        speed.append(sec)
        if multi_n and g["cpu_wall_ratio"].notna().any():
            cpu.append(charts.add(ch.cpu_wall_chart(workload, g)))
    out = speed
    if cpu:
        out.append(Section(
            id="cpu-wall", title="CPU time / wall time", charts=cpu,
            intro=["How many cores the process tree kept busy: N for N fully busy single-threaded workers. "
                   "Below the N line, workers waited (start-up, I/O, Python, synchronisation)."],
        ))
    return out


def timeline_section(inputs: Inputs, charts: _Charts) -> Section | None:
    """Per-core CPU and memory timelines: the latest run of each machine × workload × strategy, capped."""
    latest: dict[tuple, Run] = {}
    for r in inputs.runs:
        if r.samples and r.status in ("complete", "interrupted"):
            latest[(r.label, r.workload, r.size, r.backend, r.device, r.engine, r.processes)] = r
    if not latest:
        return None
    chosen = sorted(latest.values(), key=lambda r: r.order)
    sec = Section(id="timelines", title="Timelines: per-core CPU and memory",
                  intro=["Sampled in the parent during each run (the whole process tree). The dashed line marks "
                         "the end of worker start-up."])
    for r in chosen[:MAX_TIMELINES]:
        title = f"{r.workload} ({r.size}) {r.strategy} on {r.label}"
        off = r.summary.compute_offset_s
        sec.charts.append(charts.add(ch.timeline_chart(f"timeline-{ch.slug(title)}", title, r.samples,
                                                       off if fmt.ok(off) else None)))
    if len(chosen) > MAX_TIMELINES:
        sec.notes.append(f"Timelines shown for {MAX_TIMELINES} of {len(chosen)} distinct runs (latest of each "
                         "machine × workload × strategy); report fewer files to see the others.")
    return sec


def devices_section(df: pd.DataFrame, charts: _Charts) -> Section | None:
    """Device strategies side by side; None when every run was on the CPU strategy alone."""
    dv = devices_frame(df)
    if dv.empty:
        return None
    sec = Section(id="devices", title="Device comparison",
                  intro=["Time per trial on each device strategy, with the quality reached beside it so a faster "
                         "strategy is seen to do the same work; GPU utilisation where it was measured."])
    for (label, workload, size), g in dv.groupby(["label", "workload", "size"], sort=False):
        title = f"{workload} ({size}) on {label}: time per trial by device strategy"
        sec.charts.append(charts.add(ch.devices_chart(f"devices-{ch.slug(workload + '-' + label)}", title, g)))
        rows = [[r.strategy, fmt.seconds(r.time_per_trial_s), f"{fmt.num(r.throughput)} {r.unit}",
                 f"{r.quality_key} {fmt.num(r.quality, 4)}" if r.quality_key else fmt.DASH,
                 fmt.pct(r.gpu_util_p50, 1), fmt.pct(r.gpu_util_p95, 1)] for r in g.itertuples()]
        sec.tables.append(Table(caption=title, columns=["strategy", "time/trial", "throughput", "quality",
                                                        "GPU util p50", "GPU util p95"], rows=rows, numeric=(1, 2, 4, 5)))
    return sec


def backends_section(df: pd.DataFrame) -> Section | None:
    """The same workload and strategy on each Keras backend, side by side (:func:`reports.tables.backends_frame`):
    wall, throughput, the recorded speedup over tensorflow, and the mean quality beside it. None
    unless some workload was measured on more than one backend on one machine.

    Args:
        df: The report's runs frame.
    """
    bf = backends_frame(df)
    if bf.empty:
        return None
    sec = Section(id="backends", title="Backends",
                  intro=["The same workload and strategy on each Keras backend. 'vs tensorflow' is the recorded "
                         "speedup: the wall of the tensorflow run with the same device, processes and threads over "
                         "this run's wall (> 1×: faster than tensorflow). Quality is the mean over each run's "
                         "finished trials, beside the timing, so a faster backend is seen to learn the same thing: "
                         "the same seed gives each backend its own initial weights and random streams, so small "
                         "differences are expected."])
    for (label, workload, size), g in bf.groupby(["label", "workload", "size"], sort=False):
        rows = []
        for r in g.itertuples():
            strategy = f"{r.device}×{int(r.processes)}p" + (f"×{int(r.threads)}t" if fmt.ok(r.threads) else "")
            strategy += f" {r.engine}" if r.engine != "local" else ""
            vs = fmt.times(r.speedup_vs_tensorflow) if fmt.ok(r.speedup_vs_tensorflow) else fmt.DASH
            if r.backend == DEFAULT_BACKEND and fmt.ok(r.speedup_vs_tensorflow):
                vs += " (baseline)"
            rows.append([strategy, r.backend, str(r.n), fmt.seconds(r.wall_s),
                         f"{fmt.num(r.throughput)} {r.unit}" if fmt.ok(r.throughput) else fmt.DASH, vs,
                         r.quality_text or fmt.DASH])
        sec.tables.append(Table(caption=f"{workload} ({size}) on {label}: backends side by side",
                                columns=["strategy", "backend", "runs", "wall", "throughput", "vs tensorflow",
                                         "quality (mean)"], rows=rows, numeric=(2, 3, 4, 5)))
        if g.groupby(BACKEND_STRATEGY, sort=False, dropna=False)["backend"].nunique().max() < 2:
            sec.notes.append(f"{workload} ({size}) on {label}: no strategy was measured on two backends, so no "
                             "speedup over tensorflow: run the same --device and --processes with --backend "
                             "tensorflow,jax.")
    return sec


BACKEND_STRATEGY = ["device", "engine", "processes", "threads"]


def predict_section(inputs: Inputs, charts: _Charts) -> Section | None:
    """predict_modes: every (mode, batch) per machine × size × strategy, shards, seed 000's chain.

    Reads only what the trials declare (:mod:`reports.predict`); None without such runs.
    """
    pf = pr.predict_frame(inputs)
    if pf.empty:
        return None
    complete = [r for r in inputs.runs if pr.is_predict_run(r) and r.status == "complete"]
    sec = Section(id="predict-modes", title="predict_modes: rows per second",
                  intro=["Each row is one (mode, batch) as the trial declared it. Per-row modes are timed on the "
                         "first rows of the table only ('rows in timed table'); fast modes repeat whole passes "
                         "('rows predicted (all passes)'). × per-row model.predict is rows/s over the rows/s of the "
                         "trial that declares itself the per-row model.predict baseline. At more than one process "
                         "the other workers ran other trials at the same time, so those rates include that contention."])
    for c in pr.chains(complete):
        sec.intro.append(f"Seed 000's chain on {c['label']} ({c['size']}, {c['device']}), every step measured: "
                         f"{c['text']}.")
    keys = ["label", "size", "device", "model"]
    lowest = pf[pf["processes"] == pf.groupby(keys, sort=False, dropna=False)["processes"].transform("min")]
    chart = charts.add(ch.predict_chart(lowest))
    sec.charts.append(chart)
    numeric = (1, 2, 3, 4, 5, 6, 7)
    for (label, size, strategy, model), g in pf.groupby(["label", "size", "strategy", "model"], sort=False, dropna=False):
        rows = [[r.mode_label, fmt.plain(int(r.batch)) if fmt.ok(r.batch) else fmt.DASH, fmt.num(r.rows_per_s),
                 fmt.num(r.ms_per_row), pr.times(r.ratio) + (" (baseline)" if r.baseline else ""),
                 fmt.num(r.rows_timed), fmt.num(r.rows_predicted), fmt.num(r.passes)] for r in g.itertuples()]
        caption = f"{label}: {model} model, {size}, {strategy}" + (f" ({int(g['runs'].max())} runs, median)"
                                                                    if g["runs"].max() > 1 else "")
        sec.tables.append(Table(caption=caption, rows=rows, numeric=numeric,
                                columns=["mode", "batch", "rows/s", "ms per row", "× per-row model.predict",
                                         "rows in timed table", "rows predicted (all passes)", "passes"]))
        if not g["baseline_declared"].all():
            sec.notes.append(f"{label} {size} {strategy}: these trials do not declare which mode is the per-row "
                             "model.predict baseline (a result from an older xpubench), so no ratios are shown.")
        elif not g["baseline"].any():
            sec.notes.append(f"{label} {size} {strategy}: no per-row model.predict trial ran, so no ratios are shown.")
    shard_rows = []
    for r in complete:
        whole = pr.whole_table(r.trials)
        if whole is None:
            continue
        metric = (f"{whole['metric']} {whole['metric_value']:.6g}" if whole["metric"] and fmt.ok(whole["metric_value"])
                  else fmt.DASH)
        shard_rows.append([r.label, r.size, r.strategy, str(whole["shards"]), str(whole["concurrency"]),
                           fmt.seconds(whole["window_s"]), fmt.num(whole["rows_per_s"]), metric])
    for r in complete:
        agreement = pr.agreement_text(pr.mode_rows(r))
        if agreement:
            sec.notes.append(f"{r.label} {r.size} {r.strategy}: {agreement}.")
    if shard_rows:
        sec.tables.append(Table(
            caption="The whole table scored in shards (one trial per shard, batched model.evaluate)",
            columns=["machine", "size", "strategy", "shards", "scored at once", "seconds measured",
                     "rows/s of the whole table", "metric (whole table)"],
            rows=shard_rows, numeric=(3, 4, 5, 6),
            note="Rows/s of the whole table: rows all shards scored during the seconds in which the most shards "
                 "were being scored at the same time, over those seconds (measured, not multiplied).",
        ))
    return sec


def machines_section(df: pd.DataFrame, inputs: Inputs, prices: Mapping[str, float], charts: _Charts) -> Section | None:
    """Machine A vs the others (speedups, costs); None with a single machine label."""
    labels = inputs.labels
    if len(labels) < 2:
        return None
    ref = labels[0]
    sec = Section(id="machine-comparison", title="Machine comparison",
                  intro=[f"Machine A is {ref}. A column 'X vs {ref}' gives machine X's speedup over A "
                         "(> 1×: X is faster). Time/trial is wall time divided by finished trials."])
    mt = machines_table(df, labels, prices)
    if len(mt):
        for workload, g in mt.groupby("workload", sort=False):
            sec.charts.append(charts.add(ch.machines_chart(
                f"machines-{ch.slug(workload)}", f"{workload}: wall time per strategy on each machine", g, labels)))
        cols, rows = table_cells(mt, labels, prices)
        sec.tables.append(Table(columns=cols, rows=rows, numeric=tuple(range(2, len(cols)))))
    tt = timings_table(inputs, labels, prices)
    if len(tt):
        cols, rows = timing_cells(tt, labels, prices)
        sec.tables.append(Table(caption="pytest-benchmark timings", columns=cols, rows=rows,
                                numeric=tuple(range(1, len(cols)))))
    if not sec.tables:
        sec.notes.append(f"No workload × strategy was measured both on {ref} and on another machine.")
    if prices:
        sec.notes.append("Prices per hour: " + ", ".join(f"{k} {fmt.money(v)}" for k, v in prices.items()) + ".")
    else:
        sec.notes.append("Give prices with bench compare --price LABEL=PER_HOUR to see cost per trial and per 1,000 samples.")
    tfs = {label: inputs.machine(label).get("tensorflow") for label in labels}
    if len(set(tfs.values())) > 1:
        sec.notes.append("TensorFlow versions differ: " + ", ".join(f"{k} {v}" for k, v in tfs.items()) + ".")
    return sec


def cluster_section(df: pd.DataFrame, charts: _Charts) -> Section | None:
    """Ray runs by node count against the local 1-process run; None without Ray runs."""
    cf = cluster_frame(df)
    if cf.empty:
        return None
    sec = Section(id="cluster", title="Cluster runs (Ray)",
                  intro=["Ray runs grouped by the number of nodes their trials ran on, against the local "
                         "1-process run of the same workload."])
    for workload, g in cf.groupby("workload", sort=False):
        if g["speedup"].notna().any():
            sec.charts.append(charts.add(ch.cluster_chart(workload, g)))
    rows = [[r.workload, r.label, str(r.nodes), str(r.processes), str(r.n), fmt.seconds(r.wall_s),
             fmt.seconds(r.base_wall_s) + (f" ({r.base_label})" if r.base_label else ""), fmt.times(r.speedup),
             fmt.pct(r.efficiency)] for r in cf.itertuples()]
    sec.tables.append(Table(columns=["workload", "head machine", "nodes", "tasks at once", "runs", "wall",
                                     "local 1-process wall", "speedup", "efficiency"], rows=rows,
                            numeric=(2, 3, 4, 5, 6, 7, 8)))
    if cf["speedup"].isna().any():
        sec.notes.append("Some cluster runs have no local 1-process run of the same workload to compare with.")
    return sec


def timings_section(inputs: Inputs, charts: _Charts) -> Section | None:
    """Plain pytest-benchmark statistics; None when every entry carries xpubench figures."""
    tf = timings_frame(inputs)
    if tf.empty:
        return None
    multi = tf["label"].nunique() > 1
    rows = [([r.label] if multi else []) + [r.name, r.group or fmt.DASH, fmt.seconds(r.mean), fmt.seconds(r.median),
             fmt.seconds(r.stddev), fmt.seconds(r.min), fmt.seconds(r.max), fmt.plain(r.rounds)]
            for r in tf.itertuples()]
    off = 1 if multi else 0
    return Section(
        id="timings", title="pytest-benchmark timings",
        intro=["Benchmarks without xpubench figures: pytest-benchmark's own statistics per round."],
        charts=[charts.add(ch.timings_chart(tf))],
        tables=[Table(columns=(["machine"] if multi else []) + ["benchmark", "group", "mean", "median", "stddev",
                                                                "min", "max", "rounds"],
                      rows=rows, numeric=tuple(range(2 + off, 8 + off)))],
    )


def invalid_runs(inputs: Inputs) -> list[str]:
    """Every INVALID run (each repeat), with its recorded reasons: the report's top."""
    out = []
    for r in inputs.runs:
        where = f"{r.workload} ({r.size}) {r.strategy} on {r.label}"
        out.extend(f"{where}, {line}" if line.startswith("repeat") else f"{where}: {line}" for line in r.invalid)
    return out


def repeats_section(inputs: Inputs) -> Section | None:
    """Per strategy: the median and 95 % interval over its repeats of wall time, throughput,
    speedup and efficiency (as recorded), whether every repeat was valid, and its noisy trials."""
    runs = [r for r in inputs.runs if r.status != "skipped" and isinstance(r.summary.repeats, Mapping)]
    if not runs:
        return None
    weak = any(fmt.ok(r.summary.weak_efficiency) for r in runs)
    cols = ["machine", "workload", "strategy", "repeats", "wall", "throughput", "speedup", "efficiency"]
    cols += ["weak efficiency"] if weak else []
    cols += ["valid", "noisy trials"]
    rows = []
    for r in runs:
        texts = rp.row(r.summary)
        noise = rp.noise_warning(r.summary, r.strategy)
        cells = [r.label, f"{r.workload} ({r.size})", r.strategy, str(r.repeats), texts["wall_s"],
                 texts["throughput"], texts["speedup"], texts["efficiency"]]
        cells += [texts["weak_efficiency"]] if weak else []
        cells += ["INVALID" if r.invalid else ("yes" if rp.validity_of(r) else fmt.DASH), noise or fmt.DASH]
        rows.append(cells)
    method = rp.method_text(runs)
    sec = Section(id="repeats", title="Repeats: medians with 95 % intervals", tables=[Table(columns=cols, rows=rows)])
    sec.intro.append("Each strategy measured --repeat K times, interleaved with the others; a single measurement "
                     "gets no interval.")
    if method:
        sec.notes.append(f"Intervals: {method}.")
    return sec


def weak_section(df: pd.DataFrame, sc: pd.DataFrame, charts: _Charts) -> Section | None:
    """Weak scaling (every worker runs every trial) beside strong scaling, with its chart."""
    wk = weak_frame(df, sc)
    if wk.empty:
        return None
    sec = Section(id="weak-scaling", title="Weak scaling")
    sec.intro.append("With --scaling weak, N processes each run the whole trial list (N times the work). Weak "
                     "efficiency = throughput(N) / (N × throughput(1)): 100 % means N times the work in the same "
                     "time. Strong efficiency (the trials split over N processes) is shown beside it where measured.")
    rows = []
    for r in wk.itertuples():
        rows.append([r.label, f"{r.workload} ({r.size})", backend_label(r.backend, r.device), str(r.processes),
                     fmt.num(r.per_proc_ratio), fmt.num(r.cpu_wall_ratio), f"{fmt.num(r.throughput)} {r.unit}",
                     fmt.pct(r.weak_efficiency), fmt.pct(r.strong_efficiency)])
    sec.tables.append(Table(columns=["machine", "workload", "device", "processes", "CPU/wall per process",
                                     "CPU/wall (tree)", "aggregate throughput", "weak efficiency",
                                     "strong efficiency"], rows=rows, numeric=tuple(range(3, 9))))
    for workload, g in wk.groupby("workload", sort=False):
        sec.charts.append(charts.add(ch.weak_strong_chart(workload, g)))
    return sec


def noise_cell(noise) -> str:
    """A run's recorded noise (``summary["noise"]``): ``CV up to 3 % (2 configs repeated)`` or ``not measured``."""
    if isinstance(noise, dict) and noise.get("measured") and fmt.ok(noise.get("cv_max")):
        n = noise.get("configs")
        return f"CV up to {fmt.pct(noise['cv_max'])} ({int(n) if fmt.ok(n) else '?'} configs repeated)"
    return "not measured"


def runs_table(df: pd.DataFrame) -> Table:
    """Every run with its headline figures."""
    rows = []
    for r in df.itertuples():
        gpu = (f"{fmt.pct(r.gpu_util_p50, 1)} / {fmt.pct(r.gpu_util_p95, 1)}" if fmt.ok(r.gpu_util_p50) else fmt.DASH)
        rows.append([
            r.label, f"{r.workload} ({r.size})", r.strategy, r.status + (f": {r.skipped}" if r.skipped else ""),
            f"{r.ok_trials}/{r.trials}", fmt.seconds(r.wall_s), fmt.seconds(r.time_per_trial_s), noise_cell(r.noise),
            f"{fmt.num(r.throughput)} {r.unit}" if fmt.ok(r.throughput) else fmt.DASH, fmt.times(r.rec_speedup),
            fmt.num(r.cpu_wall_ratio),
            f"{100 * r.sampler_cpu_share:.1f} %" if fmt.ok(r.sampler_cpu_share) else fmt.DASH,
            fmt.nbytes(r.peak_worker_rss), fmt.nbytes(r.peak_tree_rss), fmt.nbytes(r.peak_tree_uss), gpu, r.quality_text or fmt.DASH, r.data_source or fmt.DASH, r.file,
        ])
    return Table(
        columns=["machine", "workload", "strategy", "status", "ok/trials", "wall", "time/trial", "noise",
                 "throughput", "speedup", "CPU/wall", "sampler CPU (of a core)", "peak worker RSS", "peak tree RSS",
                 "peak tree USS", "GPU p50/p95", "quality", "data", "file"],
        rows=rows, numeric=tuple(range(4, 16)),
    )


# ---------------------------------------------------------------- front


def build(inputs: Inputs, prices: Mapping[str, float] | None = None, title: str | None = None,
          comparison_first: bool = False, png_names: bool = False) -> Report:
    """Builds the whole report from loaded inputs.

    Args:
        inputs: Loaded result files.
        prices: Price per hour by machine label (machine comparison costs).
        title: Page title (default: "xpubench report").
        comparison_first: Put the machine comparison first (``bench compare``).
        png_names: Name each chart's PNG file under its figure (when ``--png-dir`` is given).
    """
    prices = dict(prices or {})
    df = runs_frame(inputs)
    sc = scaling_frame(df, inputs)  # once: the scaling sections and the headline read it
    warnings = warnings_for(inputs, df)
    charts = _Charts(png_names)
    comparison = machines_section(df, inputs, prices, charts) if comparison_first else None
    sections = [comparison, recommendations_section(df, inputs)]
    if not comparison_first:
        sections.append(machines_section(df, inputs, prices, charts))
    sections += config_sections(inputs, charts)
    sections += scaling_sections(sc, charts)
    sections += [repeats_section(inputs), weak_section(df, sc, charts)]
    sections += [
        timeline_section(inputs, charts), devices_section(df, charts), backends_section(df),
        predict_section(inputs, charts),
        cluster_section(df, charts), timings_section(inputs, charts),
    ]
    context = {
        "title": title or "xpubench report",
        "version": _version(),
        "generated": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machines": machines_table_html(inputs),
        "inputs": inputs_table(inputs),
        "skipped_files": list(inputs.skipped),
        "data_used": data_used(inputs.runs),
        "warnings": warnings,
        "invalid": invalid_runs(inputs),
        "warning_notes": ["Noise is measured only between measurements of the same thing (repeated runs of a "
                          "strategy, or trials of an identical configuration), never across different "
                          "configurations."],
        "headline": headline_blocks(inputs, df, sc),
        "sections": [s for s in sections if s is not None],
        "runs": runs_table(df),
    }
    return Report(html=render(context), charts=charts.charts)


__all__ = ["Report", "build", "MAX_TIMELINES", "CV_LIMIT"]
