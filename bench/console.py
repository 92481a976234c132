"""Console output for ``bench run``: a rich progress bar while trials run, a table per strategy."""

from __future__ import annotations

from typing import Sequence

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from bench.results import Result, RunRecord


def _fmt(v, spec: str = ".2f", unit: str = "") -> str:
    if v is None:
        return "–"
    return f"{v:{spec}}{unit}"


def _mib(v) -> str:
    return "–" if not v else f"{v / 2**20:,.0f} MiB"


def _pct(v) -> str:
    return _fmt(None if v is None else 100 * v, ".0f", " %")


def _trial_spread(s: dict) -> str:
    t = s.get("trial_wall_s") or {}
    if not t.get("n"):
        return "–"
    return f"{t['median']:.2f} [{t['min']:.2f}–{t['max']:.2f}]"


def _energy(s: dict) -> str | None:
    e = s.get("energy") or {}
    parts = [f"{k} {v['per_trial_j']:.1f} J" for k, v in e.items() if isinstance(v, dict) and isinstance(v.get("per_trial_j"), (int, float))]
    return ", ".join(parts) or None


# (header, getter, shown only when some run has a value)
_COLUMNS = [
        ("device", lambda r, s: str(r.strategy.get("device")), False),
    ("procs", lambda r, s: str(r.strategy.get("processes")), False),
    ("threads", lambda r, s: str(r.strategy.get("threads_per_process")), False),
    ("wall s", lambda r, s: _fmt(s.get("wall_s")), False),
    ("trial s median (min–max)", lambda r, s: _trial_spread(s), False),
    ("trials/h", lambda r, s: _fmt(s.get("trials_per_hour"), ",.0f"), False),
    ("speedup", lambda r, s: _fmt(s.get("speedup"), ".2f", "×"), False),
    ("efficiency", lambda r, s: _pct(s.get("efficiency")), False),
    ("CPU/wall", lambda r, s: _fmt(s.get("cpu_wall_ratio")), False),
    ("throughput", lambda r, s: f"{_fmt(s.get('throughput'), ',.0f')} {s.get('throughput_unit', '')}", False),
    ("peak RSS (tree)", lambda r, s: _mib(s.get("peak_tree_rss_bytes")), False),
    ("peak/worker", lambda r, s: _mib(s.get("peak_worker_rss_bytes")), False),
    ("start-up s", lambda r, s: _fmt((s.get("startup_s") or {}).get("median"), ".1f"), False),
    ("vs cpu", lambda r, s: None if s.get("speedup_vs_cpu") is None or r.strategy.get("device") == "cpu"
     else _fmt(s.get("speedup_vs_cpu"), ".2f", "×"), True),
    ("GPU util p50/p95", lambda r, s: None if s.get("gpu_util_p50") is None
     else f"{s['gpu_util_p50']:.0f} / {s.get('gpu_util_p95') or 0:.0f} %", True),
    ("energy/trial", lambda r, s: _energy(s), True),
    ("quality", lambda r, s: _quality(r), False),
    ("failed", lambda r, s: str(s.get("failed", 0)), False),
]


def runs_table(runs: Sequence[RunRecord], title: str = "") -> Table:
    """One row per strategy: wall, trial spread, trials/hour, speedup, efficiency, CPU/wall,
    throughput, peak memory, start-up, quality; device, GPU and energy columns when measured."""
    done = [r for r in runs if r.status != "skipped"]
    columns = [c for c in _COLUMNS if not c[2] or any(c[1](r, r.summary) is not None for r in done)]
    table = Table(title=Text(title) if title else None, show_lines=False)
    for header, _, _ in columns:
        table.add_column(header, justify="left" if header in ("device", "quality") else "right", no_wrap=True)
    for r in runs:
        if r.status == "skipped":
            row = [str(r.strategy.get("device")), str(r.strategy.get("processes")), "", f"skipped: {r.skipped}"]
            table.add_row(*map(Text, row), *[""] * (len(columns) - len(row)))
            continue
        table.add_row(*[Text(get(r, r.summary) or "–") for _, get, _ in columns])  # values are text, not markup
    return table


def _quality(r: RunRecord) -> str:
    vals: dict[str, list[float]] = {}
    for t in r.trials:
        for k, v in t.quality.items():
            if isinstance(v, (int, float)):
                vals.setdefault(k, []).append(v)
    return ", ".join(f"{k} {sum(v) / len(v):.4g}" for k, v in list(vals.items())[:2]) or "–"


class ConsoleReporter:
    """Receives runner events and shows progress; ``quiet`` shows only the final table."""

    def __init__(self, console: Console | None = None, quiet: bool = False):
        if console is None:
            import sys

            # a terminal keeps its width; piped to a file, the table is not squeezed into 80 columns
            console = Console(width=None if sys.stdout.isatty() else 240)
        self.console = console
        self.quiet = quiet
        self.progress: Progress | None = None
        self.task = None

    def __call__(self, kind: str, **info) -> None:
        handler = getattr(self, f"on_{kind}", None)
        if handler:
            handler(**info)

    def on_sweep_start(self, total, path, workload, size, **_):
        if not self.quiet:
            self.console.print(f"[bold]{escape(workload)}[/] ({escape(size)}): {total} trials → {escape(str(path))}")
            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=self.console, transient=False,
            )
            self.progress.start()
            self.task = self.progress.add_task("starting", total=total)

    def _advance(self, n=1, description=None):
        if self.progress is not None:
            kw = {"description": description} if description else {}
            self.progress.update(self.task, advance=n, **kw)

    def on_strategy_start(self, strategy, trials, resumed=0, **_):
        self._advance(resumed, f"{strategy.device} × {strategy.processes} proc: starting workers")

    def on_workers_ready(self, strategy, workers, **_):
        self._advance(0, f"{strategy.device} × {strategy.processes} proc")

    def on_strategy_skipped(self, strategy, reason, trials, **_):
        self._advance(trials)
        self.console.print(f"[yellow]skipped[/] {escape(strategy.device)}: {escape(str(reason))}")

    def on_trial_done(self, trial, strategy, **_):
        self._advance(1)
        if trial.error is not None:
            self.console.print(f"[red]trial {escape(trial.id)} failed[/] ({escape(trial.error.kind)}): {escape(trial.error.message)}")

    def on_worker_died(self, worker, reason, **_):
        self.console.print(f"[yellow]worker {worker} ended[/]: {escape(str(reason))}")

    def stop(self):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def on_sweep_done(self, result: Result, path, **_):
        self.stop()
        self.console.print(runs_table(result.runs, title=f"{result.runs[0].workload if result.runs else ''}"))
        data = {r.data.get("source") for r in result.runs if r.data}
        if "synthetic" in data:
            self.console.print("[bold yellow]data: synthetic[/] (real data not cached; see README)")
        self.console.print(f"result: {escape(str(path))}", highlight=False)
