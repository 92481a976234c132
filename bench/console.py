"""Console output for ``bench run``: a rich progress bar while trials run, a table per strategy.

Every string that came from a result file or the command line (labels, paths, trial ids, error
messages, reasons, quality keys) reaches the terminal through :func:`cell` (a table cell),
:func:`line` (a sentence) or :func:`value` (a value inside a markup line): control characters
escaped and length bounded by :func:`bench.text.printable`, markup escaped.
"""

from __future__ import annotations

from typing import Sequence

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from bench.model.ratios import mean_quality
from bench.model.results import Result, RunRecord
from bench.model.strategy import DEFAULT_BACKEND, backend_label
from bench.model.summary import RunSummary
from bench.text import printable
from reports import fmt

LINE_CHARS = 2000  # the longest line :func:`line` prints


def cell(v: object) -> Text:
    """A table cell: plain text (never markup), control characters escaped, length bounded.

    Args:
        v: The cell's value.
    """
    return Text(printable(v))


def line(v: object) -> Text:
    """A whole plain-text line (a sentence built from values): control characters escaped, bounded
    to :data:`LINE_CHARS` (a sentence may be longer than a cell; a huge value in it is not).

    Args:
        v: The line.
    """
    return Text(printable(v, LINE_CHARS))


def value(v: object) -> str:
    """A value to put inside a rich markup line: control characters escaped, bounded, markup escaped.

    Args:
        v: The value (a label, path, trial id, message...).
    """
    return escape(printable(v))


def strategy_text(strategy, processes: bool = True) -> str:
    """A strategy in a progress line: ``cpu × 2 proc``, with its backend when not tensorflow
    (``cpu × 2 proc (jax)``); values escaped by the caller.

    Args:
        strategy: A :class:`bench.model.strategy.Strategy`.
        processes: Include the process count.
    """
    text = f"{strategy.device} × {strategy.processes} proc" if processes else str(strategy.device)
    backend = getattr(strategy, "backend", DEFAULT_BACKEND)
    return text if backend == DEFAULT_BACKEND else f"{text} ({backend})"


def _fmt(v, spec: str = ".2f", unit: str = "") -> str:
    if v is None:
        return "–"
    return f"{v:{spec}}{unit}"


def _startup(run, s) -> str:
    """Median start-up of the workers started for this run; ``+N reused`` for workers an earlier run
    started (their start-up is in that run's row), ``reused`` when every worker was."""
    median = (s.startup_s or {}).get("median")
    reused = sum(1 for w in run.workers if isinstance(w, dict) and w.get("reused"))
    if not reused:
        return _fmt(median, ".1f")
    return "reused" if median is None else f"{median:.1f} +{reused} reused"


def _mib(v) -> str:
    return fmt.nbytes(v, "MiB") if v else "–"


def _trial_spread(s: RunSummary) -> str:
    t = s.trial_wall_s or {}
    if not t.get("n"):
        return "–"
    return f"{t['median']:.2f} [{t['min']:.2f}–{t['max']:.2f}]"


def _energy(s: RunSummary) -> str | None:
    e = s.energy or {}
    parts = [f"{k} {v['per_trial_j']:.1f} J" for k, v in e.items() if isinstance(v, dict) and isinstance(v.get("per_trial_j"), (int, float))]
    return ", ".join(parts) or None


def _quality(r: RunRecord) -> str:
    """The first two quality metrics, each the mean over the finished trials (:func:`bench.model.ratios.mean_quality`)."""
    return ", ".join(f"{k} {v:.4g}" for k, v in list(mean_quality(r.trials).items())[:2]) or "–"


# (header, getter of (run, its summary), shown only when some run has a value)
_COLUMNS = [
    ("backend", lambda r, s: r.backend, False),
    ("device", lambda r, s: str(r.strategy.get("device")), False),
    ("procs", lambda r, s: str(r.strategy.get("processes")), False),
    ("threads", lambda r, s: str(r.strategy.get("threads_per_process")), False),
    ("wall s", lambda r, s: _fmt(s.wall_s), False),
    ("trial s median (min–max)", lambda r, s: _trial_spread(s), False),
    ("trials/h", lambda r, s: _fmt(s.trials_per_hour, ",.0f"), False),
    ("speedup", lambda r, s: fmt.times(s.speedup), False),
    ("efficiency", lambda r, s: fmt.pct(s.efficiency), False),
    ("CPU/wall", lambda r, s: _fmt(s.cpu_wall_ratio), False),
    ("throughput", lambda r, s: f"{_fmt(s.throughput, ',.0f')} {s.throughput_unit or ''}", False),
    ("peak RSS (tree)", lambda r, s: _mib(s.peak_tree_rss_bytes), False),
    ("peak/worker", lambda r, s: _mib(s.peak_worker_rss_bytes), False),
    ("start-up s", lambda r, s: _startup(r, s), False),
    ("vs cpu", lambda r, s: None if s.speedup_vs_cpu is None or r.strategy.get("device") == "cpu"
     else fmt.times(s.speedup_vs_cpu), True),
    ("vs tensorflow", lambda r, s: None if s.speedup_vs_tensorflow is None or r.backend == DEFAULT_BACKEND
     else fmt.times(s.speedup_vs_tensorflow), True),
    ("GPU util p50/p95", lambda r, s: None if s.gpu_util_p50 is None
     else f"{s.gpu_util_p50:.0f} / {s.gpu_util_p95 or 0:.0f} %", True),
    ("energy/trial", lambda r, s: _energy(s), True),
    ("quality", lambda r, s: _quality(r), False),
    ("failed", lambda r, s: str(s.failed if s.failed is not None else 0), False),
    ("repeat", lambda r, s: None if (s.repeats or {}).get("count", 1) <= 1 else str(r.repeat + 1), True),
    ("weak eff.", lambda r, s: None if s.weak_efficiency is None else fmt.pct(s.weak_efficiency), True),
]


def runs_table(runs: Sequence[RunRecord], title: str = "") -> Table:
    """One row per strategy: wall, trial spread, trials/hour, speedup, efficiency, CPU/wall,
    throughput, peak memory, start-up, quality; device, GPU and energy columns when measured.

    The backend column (and "vs tensorflow", the recorded ``speedup_vs_tensorflow``) appears when
    some run is not a tensorflow run: a sweep of tensorflow alone prints the table it always did.
    """
    done = [r for r in runs if r.status != "skipped"]
    backends = any(r.backend != DEFAULT_BACKEND for r in runs)
    columns = [c for c in _COLUMNS if (c[0] != "backend" or backends)
               and (not c[2] or any(c[1](r, r.summary) is not None for r in done))]
    table = Table(title=cell(title) if title else None, show_lines=False)
    for header, _, _ in columns:
        table.add_column(header, justify="left" if header in ("backend", "device", "quality") else "right",
                         no_wrap=True)
    for r in runs:
        if r.status == "skipped":
            row = ([r.backend] if backends else []) + [
                str(r.strategy.get("device")), str(r.strategy.get("processes")), "", f"skipped: {r.skipped}"]
            table.add_row(*map(cell, row), *[""] * (len(columns) - len(row)))
            continue
        table.add_row(*[cell(get(r, r.summary) or "–") for _, get, _ in columns])  # values are text, not markup
    return table


def predict_modes_output(runs: Sequence[RunRecord]) -> list:
    """predict_modes: a table of every (mode, batch) per strategy, then shard and chain lines.

    Reads what the trials declare (:mod:`reports.predict`); empty for runs of other workloads.

    Args:
        runs: The sweep's runs.

    Returns:
        Renderables to print (a rich Table, then Text lines); strings from results are plain text.
    """
    from reports import predict as pr

    done = [r for r in runs if r.status != "skipped" and pr.is_predict_run(r)]  # declared fields: predict_modes, model
    if not done:
        return []
    multi = len(done) > 1
    table = Table(title=Text(f"{done[0].workload}: rows/s per mode"), show_lines=False)
    headers = (["strategy"] if multi else []) + ["mode", "batch", "rows/s", "ms per row", "× per-row model.predict",
                                                 "rows in timed table"]
    for h in headers:
        table.add_column(h, justify="left" if h == "mode" else "right", no_wrap=True)
    out: list = [table]
    for r in done:
        where = backend_label(r.backend, f"{r.strategy.get('device')}×{r.strategy.get('processes')}p")
        for m in pr.mode_rows(r):
            ratio = pr.times(m["ratio"]) + (" (baseline)" if m["baseline"] else "")
            cells = ([where] if multi else []) + [
                m["mode"], _fmt(m["batch"], "d"), _fmt(m["rows_per_s"], ",.0f"), _fmt(m["ms_per_row"], ".3g"), ratio,
                _fmt(m["rows_timed"], ",.0f")]
            table.add_row(*map(cell, cells))
        if not pr.baseline_declared(r):
            out.append(cell(f"{where}: the trials do not declare a per-row "
                            "model.predict baseline (older result): no ratios"))
        shards = pr.shard_text(r)
        if shards:
            out.append(cell(f"{where}: {shards}"))
        agreement = pr.agreement_text(pr.mode_rows(r))
        if agreement:
            out.append(cell(f"{where}: {agreement}"))
    found = pr.chains(done)
    for c in found:
        where = f" ({c['device']})" if len(found) > 1 else ""  # jax:cpu... when backends or devices differ
        out.append(cell(f"seed 000's chain, measured{where}: {c['text']}"))
    return out


def repeats_output(runs: Sequence[RunRecord]) -> list:
    """Per strategy, its figures over the repeats as recorded (``summary.repeats``): medians with
    95 % intervals (``1.66x [1.58-1.74]``), or "single measurement" (the table only when some
    strategy was measured more than once, or with weak scaling); then INVALID runs in red with
    their reasons, and noisy trials (CV across repeats over 10 %) by name.

    Args:
        runs: A sweep's runs (every repeat).

    Returns:
        Renderables to print (a rich Table and lines; values escaped).
    """
    from reports import repeats as view

    done = [r for r in runs if r.status != "skipped"]
    if not done:
        return []
    firsts: dict[tuple, RunRecord] = {}
    members: dict[tuple, list[RunRecord]] = {}
    for r in done:
        firsts.setdefault(r.group, r)
        members.setdefault(r.group, []).append(r)
    weak = any(r.summary.weak_efficiency is not None for r in done)
    repeated = any(len(g) > 1 for g in members.values())
    table = Table(title=cell("over repeats: median [95 % interval]"), show_lines=False)
    headers = ["strategy", "repeats", "wall s", "throughput", "speedup", "efficiency"] + (["weak eff."] if weak else []) + ["valid"]
    for h in headers:
        table.add_column(h, justify="left" if h in ("strategy", "valid") else "right", no_wrap=True)
    # one measurement each: the strategy table above already holds every figure (the headline says
    # "single measurement"); only INVALID runs and noise warnings follow
    out: list = [table] if repeated or weak else []
    for key, first in firsts.items():
        group = members[key]
        texts = view.row(first.summary)
        bad = view.invalid_lines(group)
        strategy = backend_label(first.backend, _label(first))
        valid = Text("INVALID", style="bold red") if bad else Text("yes" if any(view.validity_of(r) for r in group) else "–")
        row = [cell(strategy), cell(str(len(group))), cell(texts["wall_s"]), cell(texts["throughput"]),
               cell(texts["speedup"]), cell(texts["efficiency"])] + ([cell(texts["weak_efficiency"])] if weak else []) + [valid]
        table.add_row(*row)
    method = view.method_text(done)
    if method and repeated:
        out.append(line(f"intervals: {method}"))
    for key, first in firsts.items():
        group = members[key]
        name = backend_label(first.backend, _label(first))
        for text in view.invalid_lines(group, lambda r: f"{name} repeat {r.repeat + 1}" if len(group) > 1 else name):
            out.append(Text.assemble(("INVALID ", "bold red"), (printable(text, LINE_CHARS), "red")))
        warning = view.noise_warning(first.summary, name)
        if warning:
            out.append(Text.assemble(("warning: ", "yellow"), printable(warning, LINE_CHARS)))
    return out


def _label(r: RunRecord) -> str:
    s = r.strategy
    text = f"{s.get('device')}×{s.get('processes')}p×{s.get('threads_per_process')}t"
    return text + (" weak" if s.get("scaling") == "weak" else "")


def _inputs(results: Sequence[tuple[Result, object]]):
    """The report's view (:class:`reports.load.Inputs`) of results just written, for shared sentences."""
    from reports.load import Inputs, from_result

    sources, order = [], 0
    for result, path in results:
        sources.append(from_result(result, str(path), order))
        order += len(result.runs)
    return Inputs(sources=tuple(sources))


def config_tables_output(result: Result, path: object = "", inputs=None) -> list:
    """The per-configuration tables of a sweep (:mod:`reports.configs`), compact, best marked.

    Args:
        result: The sweep's result.
        path: Where it was written.
        inputs: The report's view of it (:func:`_inputs`), when the caller already built it.

    Returns:
        Renderables to print: per table a rich Table, then its best line(s); all plain text.
    """
    from reports.configs import config_tables

    out: list = []
    for t in config_tables((inputs or _inputs([(result, path)])).runs):
        table = Table(title=cell(t.title), show_lines=False)
        for i, h in enumerate(t.columns):
            table.add_column(cell(h), justify="right" if i in t.numeric else "left", no_wrap=True)
        for row in t.rows:
            table.add_row(*map(cell, row))
        out.append(table)
        out.extend(line(b[:1].upper() + b[1:]) for b in t.best)
    return out


def headline_output(results: Sequence[tuple[Result, object]], inputs=None) -> list:
    """The headline block (:mod:`reports.headline`): the same sentences as the report's top.

    Args:
        results: ``(result, path)`` of each sweep (one for ``bench run``, every one for ``bench suite``).
        inputs: The report's view of them (:func:`_inputs`), when the caller already built it.

    Returns:
        Renderables to print (plain text lines).
    """
    from reports.headline import headlines

    blocks = headlines(inputs or _inputs(results))
    if not blocks:
        return []
    out: list = [Text("Is it worth it?", style="bold")]
    for h in blocks:
        out.extend(line(text) for text in h.text())
    return out


def print_headline(console: Console, results: Sequence[tuple[Result, object]], inputs=None) -> None:
    """Prints the headline block of ``results`` (the end of ``bench run`` and ``bench suite``).

    Args:
        console: Where to print.
        results: ``(result, path)`` of each sweep.
        inputs: The report's view of them (:func:`_inputs`), when the caller already built it.
    """
    for renderable in headline_output(results, inputs):
        console.print(renderable, highlight=False)


class ConsoleReporter:
    """Receives runner events and shows progress; ``quiet`` shows only the final table.

    ``headline=False`` leaves the headline block out of each sweep's output (``bench suite``
    prints one block for every workload at its end).
    """

    def __init__(self, console: Console | None = None, quiet: bool = False, headline: bool = True):
        if console is None:
            import sys

            # a terminal keeps its width; piped to a file, the table is not squeezed into 80 columns
            console = Console(width=None if sys.stdout.isatty() else 240)
        self.console = console
        self.quiet = quiet
        self.headline = headline
        self.progress: Progress | None = None
        self.task = None

    def __call__(self, kind: str, **info) -> None:
        handler = getattr(self, f"on_{kind}", None)
        if handler:
            handler(**info)

    def on_sweep_start(self, total, path, workload, size, **_):
        if not self.quiet:
            self.console.print(f"[bold]{value(workload)}[/] ({value(size)}): {total} trials → {value(path)}")
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
        self._advance(resumed, f"{value(strategy_text(strategy))}: starting workers")

    def on_workers_ready(self, strategy, workers, **_):
        self._advance(0, value(strategy_text(strategy)))

    def on_strategy_skipped(self, strategy, reason, trials, **_):
        self._advance(trials)
        self.console.print(f"[yellow]skipped[/] {value(strategy_text(strategy, processes=False))}: {value(reason)}")

    def on_trial_done(self, trial, strategy, **_):
        self._advance(1)
        if trial.error is not None:
            self.console.print(f"[red]trial {value(trial.id)} failed[/] ({value(trial.error.kind)}): {value(trial.error.message)}")

    def on_worker_died(self, worker, reason, **_):
        self.console.print(f"[yellow]worker {value(worker)} ended[/]: {value(reason)}")

    def on_worker_restart(self, worker, rss_bytes, limit_bytes, **_):
        self.console.print(f"worker {value(worker)} restarted: {rss_bytes / 2**20:,.0f} MB after its trial, over the "
                           f"--worker-max-rss limit of {limit_bytes / 2**20:,.0f} MB")

    def on_worker_not_ended(self, worker, reason, **_):
        self.console.print(f"[red]worker {value(worker)} could not be ended[/] (it may take CPU from later timings): "
                           f"{value(reason)}")

    def stop(self):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def on_sweep_done(self, result: Result, path, **_):
        self.stop()
        self.console.print(runs_table(result.runs, title=f"{result.runs[0].workload if result.runs else ''}"))
        for renderable in repeats_output(result.runs):
            self.console.print(renderable, highlight=False)
        for renderable in predict_modes_output(result.runs):
            self.console.print(renderable, highlight=False)
        inputs = _inputs([(result, path)])  # the report's view, built once for the tables and the headline
        for renderable in config_tables_output(result, path, inputs):
            self.console.print(renderable, highlight=False)
        data = {r.data.get("source") for r in result.runs if r.data}
        declared = sorted({str(r.data.get("name") or r.data.get("label")) for r in result.runs
                           if r.data and r.data.get("source") == "synthetic" and r.data.get("label")})
        if declared:  # the workload says what its synthetic data is (the model workload: the model's shape)
            self.console.print("[bold yellow]data: synthetic[/] (" + value("; ".join(declared)) + ")")
        elif "synthetic" in data:
            self.console.print("[bold yellow]data: synthetic[/] (real data not cached; see README)")
        self.console.print(f"result: {value(path)}", highlight=False)
        if self.headline:
            print_headline(self.console, [(result, path)], inputs)
