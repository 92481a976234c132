"""matplotlib charts (Agg, no pyplot state) rendered to PNG bytes.

Every chart is a :class:`Chart` holding its PNG; the HTML embeds it as a base64 data URI and
``--png-dir`` writes it to a file. Text from result files is passed through :func:`_t` so a ``$``
in a label is shown literally instead of starting matplotlib math text.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import re
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from bench.model import ratios
from bench.model.strategy import backend_label
from reports.fmt import ok

DPI = 80
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]


@dataclasses.dataclass(frozen=True)
class Chart:
    """A rendered chart.

    Args:
        name: File-name stem (``speedup-lorenz``), unique within a report.
        title: What it shows, one line (also the image's alt text).
        png: The PNG bytes.
    """

    name: str
    title: str
    png: bytes

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels, from the PNG header."""
        return int.from_bytes(self.png[16:20], "big"), int.from_bytes(self.png[20:24], "big")

    @property
    def data_uri(self) -> str:
        """The PNG as a ``data:`` URI for an ``<img src>``."""
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def slug(text: str) -> str:
    """A file-name-safe stem: ``Lorenz / cpu×2p`` → ``lorenz-cpu-2p``."""
    s = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return s[:60] or "chart"


def _t(text, limit: int = 60) -> str:
    """Text from a result file made safe for matplotlib (no math text, control characters escaped) and short enough."""
    from bench.text import printable

    return printable(text, limit).replace("$", r"\$")


def _figure(width: float, height: float, ncols: int = 1, nrows: int = 1, **kw):
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # zlib level 1: half the encoding time of the default for ~10 % larger files
    fig.savefig(buf, format="png", dpi=DPI, pil_kwargs={"compress_level": 1})
    return buf.getvalue()


def _chart(name: str, title: str, fig: Figure, margins: dict | None = None) -> Chart:
    """Titles and renders a figure: fixed ``margins`` (fast) or, without them, tight layout."""
    fig.suptitle(_t(title, 110), fontsize=11)
    if margins:
        fig.subplots_adjust(**margins)
    else:
        fig.tight_layout()
    return Chart(name=name, title=title, png=_png(fig))


def _int_x(ax) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


# ---------------------------------------------------------------- scaling


def _group_name(key: Sequence, multi_label: bool) -> str:
    label, _workload, size, backend, device = key
    parts = ([str(label)] if multi_label else []) + [backend_label(str(backend), str(device)), str(size)]
    return " / ".join(parts)


def speedup_chart(workload: str, scaling: pd.DataFrame) -> Chart:
    """Speedup vs processes (ideal line, fitted Amdahl curve, machine ceiling) and efficiency."""
    fig, axes = _figure(10, 4, ncols=2)
    ax, ax2 = axes[0]
    multi = scaling["label"].nunique() > 1
    n_max = int(scaling["processes"].max())
    xs = np.linspace(1, max(n_max, 2), 100)
    ax.plot(xs, xs, color="#999", ls=":", lw=1, label="ideal N×")
    ax2.axhline(1.0, color="#999", ls=":", lw=1, label="ideal")
    groups = [(k, g) for k, g in scaling.groupby(["label", "workload", "size", "backend", "device"], sort=False)
              if g["processes"].nunique() > 1]
    for i, (key, g) in enumerate(groups):
        c = COLORS[i % len(COLORS)]
        name = _group_name(key, multi)
        g = g.sort_values("processes")
        f = g["serial_fraction"].iloc[0]
        ax.plot(g["processes"], g["speedup"], "o-", color=c, label=_t(name))
        if ok(f) and n_max > 1:
            ax.plot(xs, [ratios.amdahl_speedup(f, x) for x in xs], "--", color=c, lw=1, alpha=0.8,
                    label=_t(f"Amdahl fit, serial fraction {f:.2f}"))
        ax2.plot(g["processes"], g["efficiency"], "o-", color=c, label=_t(name) + " vs ideal")
        if g["ceiling"].notna().any():
            cg = g[g["ceiling"].notna()]
            ax.plot(cg["processes"], cg["processes"] * cg["ceiling"], "s:", color=c, alpha=0.6, ms=4,
                    label=_t("machine ceiling (calibration)"))
            ax2.plot(cg["processes"], cg["eff_vs_ceiling"], "s--", color=c, alpha=0.8, ms=4,
                     label=_t(name) + " vs ceiling")
    ax.set_xlabel("worker processes")
    ax.set_ylabel("speedup over 1 process")
    ax.set_title("Speedup", fontsize=10)
    ax2.set_xlabel("worker processes")
    ax2.set_ylabel("parallel efficiency")
    ax2.set_title("Efficiency = speedup / N", fontsize=10)
    ax2.set_ylim(bottom=0)
    ax2.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))
    for a, loc in ((ax, "upper left"), (ax2, "lower left")):
        _int_x(a)
        a.grid(alpha=0.3)
        a.legend(fontsize=7, loc=loc)
    return _chart(f"speedup-{slug(workload)}", f"{workload}: speedup and parallel efficiency vs processes", fig,
                  dict(left=0.07, right=0.98, bottom=0.13, top=0.85, wspace=0.22))


def cpu_wall_chart(workload: str, scaling: pd.DataFrame) -> Chart:
    """CPU-time/wall ratio of the process tree (and per process) vs processes."""
    fig, axes = _figure(6, 4)
    ax = axes[0][0]
    multi = scaling["label"].nunique() > 1
    n_max = int(scaling["processes"].max())
    ax.plot([1, max(n_max, 2)], [1, max(n_max, 2)], color="#999", ls=":", lw=1, label="N cores busy")
    groups = [(k, g) for k, g in scaling.groupby(["label", "workload", "size", "backend", "device"], sort=False)
              if g["processes"].nunique() > 1]
    for i, (key, g) in enumerate(groups):
        c = COLORS[i % len(COLORS)]
        g = g.sort_values("processes")
        ax.plot(g["processes"], g["cpu_wall_ratio"], "o-", color=c, label=_t(_group_name(key, multi) + ": whole tree"))
        if g["per_proc_ratio"].notna().any():
            ax.plot(g["processes"], g["per_proc_ratio"], "^--", color=c, alpha=0.7,
                    label=_t(_group_name(key, multi) + ": mean per process"))
    ax.set_xlabel("worker processes")
    ax.set_ylabel("CPU seconds / wall seconds")
    ax.set_ylim(bottom=0)
    _int_x(ax)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    return _chart(f"cpu-wall-{slug(workload)}", f"{workload}: CPU-time / wall-time vs processes", fig,
                  dict(left=0.11, right=0.97, bottom=0.13, top=0.88))


def weak_strong_chart(workload: str, weak: pd.DataFrame) -> Chart:
    """Weak and strong scaling efficiency vs processes (left) and per-process CPU/wall of the
    weak runs (right: seed 001's plot, CPU time / wall time per process as N copies run at once).

    Args:
        workload: Workload name.
        weak: Rows of :func:`reports.tables.weak_frame` for the workload.
    """
    fig, axes = _figure(10, 4, ncols=2)
    ax, ax2 = axes[0]
    multi = weak["label"].nunique() > 1
    ax.axhline(1.0, color="#999", ls=":", lw=1, label="ideal")
    for i, (key, g) in enumerate(weak.groupby(["label", "workload", "size", "backend", "device"], sort=False)):
        c = COLORS[i % len(COLORS)]
        g = g.sort_values("processes")
        name = _group_name(key, multi)
        ax.plot(g["processes"], g["weak_efficiency"], "o-", color=c, label=_t(name + ": weak"))
        if g["strong_efficiency"].notna().any():
            ax.plot(g["processes"], g["strong_efficiency"], "s--", color=c, alpha=0.8, label=_t(name + ": strong"))
        ax2.plot(g["processes"], g["per_proc_ratio"], "^-", color=c, label=_t(name + ": per process (weak)"))
    ax.set_xlabel("worker processes")
    ax.set_ylabel("efficiency")
    ax.set_title("Weak: throughput(N) / (N × throughput(1)); strong: speedup / N", fontsize=9)
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax2.set_xlabel("processes running the whole trial list at once")
    ax2.set_ylabel("CPU seconds / wall seconds per process")
    ax2.set_title("Per-process CPU / wall (seed 001)", fontsize=10)
    ax2.set_ylim(bottom=0)
    for a in (ax, ax2):
        _int_x(a)
        a.grid(alpha=0.3)
        a.legend(fontsize=7, loc="lower left")
    return _chart(f"weak-strong-{slug(workload)}", f"{workload}: weak and strong scaling efficiency vs processes", fig,
                  dict(left=0.07, right=0.98, bottom=0.13, top=0.85, wspace=0.22))


# ---------------------------------------------------------------- timelines


def timeline_chart(name: str, title: str, samples: Sequence[Mapping], compute_offset: float | None = None) -> Chart:
    """Per-core CPU % (top) and memory (bottom: tree RSS, tree USS, system used) over a run.

    Args:
        name: Chart file-name stem.
        title: Chart title.
        samples: The run's sampler timeline (``t``, ``cpu_percent``, ``tree_rss_bytes``...).
        compute_offset: Seconds at which worker start-up ended (a dashed line), if known.
    """
    t = np.array([float(s.get("t", 0.0)) for s in samples])
    cores = [s.get("cpu_percent") for s in samples]
    width = max((len(c) for c in cores if isinstance(c, list)), default=0)
    cpu = np.full((len(samples), width), np.nan)
    for i, c in enumerate(cores):
        if isinstance(c, list):
            cpu[i, : len(c)] = [float(v) if ok(v) else np.nan for v in c]
    fig, axes = _figure(10, 5, nrows=2, sharex=True)
    ax, ax2 = axes[0][0], axes[1][0]
    if width and width <= 16:
        for k in range(width):
            ax.plot(t, cpu[:, k], lw=1, color=COLORS[k % len(COLORS)], label=f"core {k}")
        ax.set_ylim(0, 128)
        ax.set_yticks([0, 25, 50, 75, 100])
        ax.set_ylabel("CPU % per core")
        ax.legend(fontsize=7, ncol=min(width, 8), loc="upper right", frameon=False)
    elif width:
        extent = (t[0], t[-1] if len(t) > 1 else t[0] + 1, width - 0.5, -0.5)
        im = ax.imshow(cpu.T, aspect="auto", extent=extent, vmin=0, vmax=100, cmap="viridis", interpolation="nearest")
        ax.set_ylabel("core")
        fig.colorbar(im, ax=ax, label="CPU %")
    else:
        ax.text(0.5, 0.5, "no per-core CPU samples", ha="center", transform=ax.transAxes)

    peak = max((float(s[k]) for s in samples for k in ("tree_rss_bytes", "sys_mem_used_bytes") if ok(s.get(k))),
               default=0.0)
    unit, scale = ("GiB", 2**30) if peak > 2 * 2**30 else ("MiB", 2**20)

    def series(key):
        return np.array([float(s[key]) / scale if ok(s.get(key)) else np.nan for s in samples])

    totals = series("sys_mem_total_bytes")
    of_total = f" (of {np.nanmax(totals):.1f} {unit} RAM)" if np.isfinite(totals).any() else ""
    for key, lbl, c in (
        ("tree_rss_bytes", "RSS of process tree", COLORS[0]),
        ("tree_uss_bytes", "USS of process tree", COLORS[2]),
        ("sys_mem_used_bytes", "system memory used" + of_total, COLORS[1]),
    ):
        y = series(key)
        if np.isfinite(y).any():
            m = np.isfinite(y)
            ax2.plot(t[m], y[m], lw=1.2, color=c, label=lbl, marker="." if m.sum() < 30 else None)
    ax2.set_ylabel(f"memory ({unit})")
    ax2.set_ylim(bottom=0)
    ax2.set_xlabel("seconds since the run started")
    ax2.legend(fontsize=7, loc="upper left")
    for a in (ax, ax2):
        a.grid(alpha=0.3)
        if ok(compute_offset) and compute_offset > 0:
            a.axvline(compute_offset, color="#555", ls="--", lw=1)
    if ok(compute_offset) and compute_offset > 0:
        ax.text(compute_offset, 104 if width and width <= 16 else 0, " workers ready", fontsize=7, va="bottom")
    return _chart(name, title, fig, dict(left=0.08, right=0.97 if width <= 16 else 1.0, bottom=0.1, top=0.9, hspace=0.12))


# ---------------------------------------------------------------- devices


def devices_chart(name: str, title: str, rows: pd.DataFrame) -> Chart:
    """Time per trial per device strategy (quality written on each bar), GPU utilisation beside.

    Args:
        name: Chart file-name stem.
        title: Chart title.
        rows: Rows of :func:`reports.tables.devices_frame` for one machine and workload.
    """
    has_gpu = rows["gpu_util_p50"].notna().any()
    fig, axes = _figure(10 if has_gpu else 7, 0.5 * len(rows) + 2, ncols=2 if has_gpu else 1)
    ax = axes[0][0]
    y = np.arange(len(rows))
    labels = [_t(f"{r.label}: {r.strategy}" if rows["label"].nunique() > 1 else r.strategy) for r in rows.itertuples()]
    ax.barh(y, rows["time_per_trial_s"], color=COLORS[0])
    for i, r in enumerate(rows.itertuples()):
        if ok(r.quality):
            ax.text(r.time_per_trial_s, i, _t(f"  {r.quality_key} {r.quality:.4g}"), va="center", fontsize=8)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel("seconds per trial (median)")
    ax.set_xlim(right=float(np.nanmax(rows["time_per_trial_s"])) * 1.45 if rows["time_per_trial_s"].notna().any() else 1)
    ax.grid(axis="x", alpha=0.3)
    if has_gpu:
        ax2 = axes[0][1]
        ax2.barh(y - 0.2, rows["gpu_util_p50"], height=0.4, color=COLORS[2], label="p50")
        ax2.barh(y + 0.2, rows["gpu_util_p95"], height=0.4, color=COLORS[4], label="p95")
        ax2.set_yticks(y, labels, fontsize=8)
        ax2.set_xlim(0, 100)
        ax2.set_xlabel("GPU utilisation %")
        ax2.legend(fontsize=8)
        ax2.grid(axis="x", alpha=0.3)
    return _chart(name, title, fig)


# ---------------------------------------------------------------- predict_modes


def predict_chart(rows: pd.DataFrame) -> Chart:
    """Rows/s per predict mode on a log scale, with the ratio to per-row ``model.predict``.

    Args:
        rows: :func:`reports.predict.predict_frame` rows (``label``, ``strategy``, ``mode_label``,
            ``rows_per_s``, ``ratio``, ``baseline``), fastest first; drawn with the fastest at the top.
    """
    from reports.predict import times

    rows = rows.iloc[::-1]
    fig, axes = _figure(11, 0.42 * len(rows) + 1.8)
    ax = axes[0][0]
    y = np.arange(len(rows))
    multi = rows["label"].nunique() > 1
    colors = [COLORS[1] if b else COLORS[0] for b in rows["baseline"]]
    ax.barh(y, rows["rows_per_s"], color=colors)
    for i, r in enumerate(rows.itertuples()):
        text = f"  {r.rows_per_s:,.0f} rows/s" + (f"  ({times(r.ratio)})" if ok(r.ratio) else "")
        ax.text(r.rows_per_s, i, text, va="center", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(right=float(rows["rows_per_s"].max()) * 3000)
    ax.set_yticks(y, [_t(f"{r.label}: {r.mode_label}" if multi else r.mode_label) for r in rows.itertuples()], fontsize=8)
    ax.set_xlabel("rows per second (log scale); (×) = over per-row model.predict, the red bar")
    ax.grid(axis="x", alpha=0.3, which="both")
    strategies = ", ".join(dict.fromkeys(_t(s) for s in rows["strategy"])) if "strategy" in rows else ""
    return _chart("predict-modes", "predict_modes: rows/s per way of predicting" + (f" ({strategies})" if strategies else ""),
                  fig)


# ---------------------------------------------------------------- time to accuracy


def time_to_accuracy_chart(name: str, title: str, curves: Sequence[tuple[str, Sequence[tuple[float, float]]]]) -> Chart:
    """Accuracy reached vs training seconds, one line per trial (a point per epoch).

    Args:
        name: Chart file-name stem.
        title: Chart title.
        curves: ``(trial name, [(training seconds so far, accuracy), ...])`` per trial.
    """
    fig, axes = _figure(7, 4)
    ax = axes[0][0]
    for i, (label, points) in enumerate(curves):
        xs = [float(x) for x, _ in points]
        ys = [float(y) for _, y in points]
        ax.plot(xs, ys, "o-", color=COLORS[i % len(COLORS)], label=_t(label))
        for k, (x, y) in enumerate(zip(xs, ys)):
            ax.annotate(f"epoch {k + 1}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    right = max((float(x) for _, points in curves for x, _ in points), default=1.0)
    ax.set_xlabel("training seconds so far (held-out scoring excluded)")
    ax.set_ylabel("held-out accuracy after the epoch")
    ax.set_xlim(0, right * 1.18)  # room for the last epoch's label
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return _chart(name, title, fig, dict(left=0.1, right=0.97, bottom=0.13, top=0.88))


# ---------------------------------------------------------------- machines, cluster, timings


def machines_chart(name: str, title: str, table: pd.DataFrame, labels: Sequence[str]) -> Chart:
    """Wall seconds per strategy, one bar per machine, side by side.

    Args:
        name: Chart file-name stem.
        title: Chart title.
        table: Rows of :func:`reports.comparison.machines_table` for one workload.
        labels: Machine labels, in the order of the bars.
    """
    fig, axes = _figure(max(6, 0.9 * len(table) + 3), 4)
    ax = axes[0][0]
    x = np.arange(len(table))
    w = 0.8 / max(1, len(labels))
    for i, label in enumerate(labels):
        ax.bar(x + (i - (len(labels) - 1) / 2) * w, table[f"wall:{label}"], width=w, color=COLORS[i % len(COLORS)],
               label=_t(label))
    ax.set_xticks(x, [_t(s, 34) for s in table["strategy"]], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("wall seconds (lower is better)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _chart(name, title, fig)


def cluster_chart(workload: str, rows: pd.DataFrame) -> Chart:
    """Ray runs: speedup over the local 1-process baseline vs processes, one line per node count."""
    fig, axes = _figure(6, 4)
    ax = axes[0][0]
    n_max = int(rows["processes"].max())
    ax.plot([1, max(2, n_max)], [1, max(2, n_max)], color="#999", ls=":", lw=1, label="ideal N×")
    for i, (nodes, g) in enumerate(rows.groupby("nodes", sort=True)):
        g = g.sort_values("processes")
        ax.plot(g["processes"], g["speedup"], "o-", color=COLORS[i % len(COLORS)], label=f"{nodes} node(s)")
    ax.set_xlabel("Ray tasks at once")
    ax.set_ylabel("speedup over local 1 process")
    _int_x(ax)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return _chart(f"cluster-{slug(workload)}", f"{workload}: Ray cluster speedup by node count", fig,
                  dict(left=0.11, right=0.97, bottom=0.13, top=0.88))


def timings_chart(rows: pd.DataFrame, limit: int = 40) -> Chart:
    """pytest-benchmark mean time per round (± stddev) of plain benchmarks, slowest first."""
    rows = rows.sort_values("mean", ascending=False).head(limit).iloc[::-1]
    fig, axes = _figure(9, 0.35 * len(rows) + 1.8)
    ax = axes[0][0]
    y = np.arange(len(rows))
    multi = rows["label"].nunique() > 1
    err = rows["stddev"].fillna(0).to_numpy(dtype=float)
    ax.barh(y, rows["mean"], xerr=err, color=COLORS[0], ecolor="#444")
    ax.set_yticks(y, [_t(f"{r.label}: {r.name}" if multi else r.name) for r in rows.itertuples()], fontsize=8)
    ax.set_xlabel("seconds per round (mean ± stddev)")
    if float(rows["mean"].max()) / max(float(rows["mean"].min()), 1e-12) > 100:
        ax.set_xscale("log")
    ax.grid(axis="x", alpha=0.3)
    return _chart("pytest-benchmark-timings", "pytest-benchmark timings (no xpubench data)", fig)


__all__ = [
    "Chart", "cluster_chart", "cpu_wall_chart", "devices_chart", "machines_chart", "predict_chart",
    "speedup_chart", "time_to_accuracy_chart", "timeline_chart", "timings_chart", "slug",
]
