"""Console output for ``bench run``: a rich progress bar while trials run, a table per strategy."""

from __future__ import annotations

from typing import Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from bench.results import Result, RunRecord


def _fmt(v, spec: str = ".2f", unit: str = "") -> str:
    if v is None:
        return "–"
    return f"{v:{spec}}{unit}"


def _mib(v) -> str:
    return "–" if not v else f"{v / 2**20:,.0f} MiB"


def runs_table(runs: Sequence[RunRecord], title: str = "") -> Table:
    """One row per strategy: wall, trials/hour, speedup, efficiency, CPU/wall, peak memory, quality."""
    table = Table(title=title or None, show_lines=False)
    for col in ("workload", "device", "procs", "threads", "wall s", "trials/h", "speedup", "efficiency",
                "CPU/wall", "throughput", "peak RSS (tree)", "peak/worker", "start-up s", "quality", "failed"):
        table.add_column(col, justify="left" if col in ("workload", "device", "quality") else "right")
    for r in runs:
        s = r.summary
        st = r.strategy
        if r.status == "skipped":
            table.add_row(r.workload, str(st.get("device")), str(st.get("processes")), "", f"skipped: {r.skipped}",
                          *[""] * 10)
            continue
        q = _quality(r)
        table.add_row(
            r.workload,
            str(st.get("device")),
            str(st.get("processes")),
            str(st.get("threads_per_process")),
            _fmt(s.get("wall_s")),
            _fmt(s.get("trials_per_hour"), ",.0f"),
            _fmt(s.get("speedup"), ".2f", "×"),
            _fmt(None if s.get("efficiency") is None else 100 * s["efficiency"], ".0f", " %"),
            _fmt(s.get("cpu_wall_ratio")),
            f"{_fmt(s.get('throughput'), ',.0f')} {s.get('throughput_unit', '')}",
            _mib(s.get("peak_tree_rss_bytes")),
            _mib(s.get("peak_worker_rss_bytes")),
            _fmt((s.get("startup_s") or {}).get("median"), ".1f"),
            q,
            str(s.get("failed", 0)),
        )
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
            import shutil

            # wide enough for the summary table even when output is piped to a file
            console = Console(width=max(shutil.get_terminal_size((160, 24)).columns, 150))
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
            self.console.print(f"[bold]{workload}[/] ({size}): {total} trials → {path}")
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
        self.console.print(f"[yellow]skipped[/] {strategy.device}: {reason}")

    def on_trial_done(self, trial, strategy, **_):
        self._advance(1)
        if trial.error is not None:
            self.console.print(f"[red]trial {trial.id} failed[/] ({trial.error.kind}): {trial.error.message}")

    def on_worker_died(self, worker, reason, **_):
        self.console.print(f"[yellow]worker {worker} ended[/]: {reason}; a new one takes its place")

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
        self.console.print(f"result: {path}")
