"""The ``bench`` command line: list, run, suite, report, compare, calibrate.

Every bad input raises UsageError, printed once as ``error: ...`` with exit status 2, before
anything is created or started. ``bench run`` exits 1 when any trial failed (after writing
everything), 130 when interrupted (Ctrl-C or SIGTERM; it prints the command that resumes), 74 when
the result file cannot be written.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Mapping, Sequence

from bench.errors import UsageError
from bench.text import printable, shell_join
from bench.model.workload import SIZES

EXIT_INTERRUPTED = 130
EXIT_TRIALS_FAILED = 1
EXIT_INTERNAL = 70

#: How ``bench`` names the request's values in its messages (see bench.request.SweepRequest.parse).
NAMES = {"processes": "--processes", "sample_interval": "--sample-interval", "engine": "--cluster",
         "address": "--address", "worker_max_rss": "--worker-max-rss", "repeat": "--repeat", "scaling": "--scaling"}


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing usage and exiting."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", default="quick", help=f"workload size: {' or '.join(SIZES)} (default quick)")
    p.add_argument("--processes", "-p", default="1", help="worker process counts, e.g. 1,2,4 or 1-4 (default 1)")
    p.add_argument("--device", "-d", default="cpu", help="device strategies, e.g. cpu,gpu,mirrored or all (default cpu)")
    p.add_argument("--backend", "-b", default="tensorflow",
                   help="Keras backends, e.g. tensorflow,jax,torch or all (= every installed one; default tensorflow)")
    p.add_argument("--threads", default=None, help="threads per worker (default: usable cores // processes)")
    p.add_argument("--out", "-o", default="results", help="directory for result files (default results/)")
    p.add_argument("--label", default=None, help="machine label recorded in the result (default: hostname)")
    p.add_argument("--trial-timeout", default=None, help="seconds before a trial is ended")
    p.add_argument("--sample-interval", default=None,
                   help="sampler interval (s), at least 0.05 (default 0.5)")
    p.add_argument("--data", default=None, help="path to a dataset file (e.g. imdb.npz) where the workload reads one; "
                        "workload 'model': x.npy,y.npy or an .npz with x (and y)")
    p.add_argument("--offline", action="store_true", help="never try to download data; use cached or synthetic")
    p.add_argument("--model", default=None, help="predict_modes: which workload's model to use")
    p.add_argument("--model-file", default=None, metavar="FILE",
                   help="workload 'model': your saved Keras model (.keras, .h5)")
    p.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE", help="extra workload option")
    p.add_argument("--resume", default=None, metavar="FILE", help="continue an interrupted result file")
    p.add_argument("--force", action="store_true", help="run even when the memory guard says it will not fit")
    p.add_argument("--worker-max-rss", default=None, metavar="MB",
                   help="restart a worker whose memory after a trial is above this (default 4096; 0: never)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--repeat", default=None, metavar="K",
                   help="measure every strategy K times, interleaved (1p, 2p, 1p, 2p...): medians with 95 %% intervals")
    p.add_argument("--scaling", default=None,
                   help="strong (split the trials over the workers; default), weak (every worker runs every trial) or strong,weak")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bench", description="xpubench: measure Keras work (TensorFlow, JAX or PyTorch backend) "
                                                "on 1..N processes, CPU or GPUs.")
    parser.add_argument("--version", action="store_true", help="print the version")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    sub.add_parser("list", help="workloads and strategies, one line each")

    run = sub.add_parser("run", help="run one workload under strategies; write a result file")
    run.add_argument("workload", help="workload name (see 'bench list'), or your own class: FILE.py:Class "
                                      "or package.module:Class")
    run.add_argument("--cluster", default=None, help="run trials on a cluster engine (ray)")
    run.add_argument("--address", default=None, help="cluster address (ray: auto or ray://host:port)")
    _add_run_options(run)

    suite = sub.add_parser("suite", help="the quick suite: every workload at 1..N processes, then an HTML report")
    suite.add_argument("--workloads", default="all", help="comma-separated workload names or all")
    _add_run_options(suite)
    suite.set_defaults(processes=None)
    suite.add_argument("--report", default=None, help="report path (default OUT/report.html)")
    suite.add_argument("--no-calibrate", action="store_true",
                       help="do not measure this machine's ceiling first when it has no cached calibration")

    rep = sub.add_parser("report", help="HTML (+PNG) report from result files")
    rep.add_argument("files", nargs="+", help="xpubench or pytest-benchmark JSON files")
    rep.add_argument("-o", "--output", default="report.html", help="HTML file to write (default report.html)")
    rep.add_argument("--png-dir", default=None, help="also write every chart as PNG here")
    rep.add_argument("--keep-going", action="store_true", help="skip unreadable files instead of stopping")

    cmp_ = sub.add_parser("compare", help="compare two machines' results (terminal table + HTML)")
    cmp_.add_argument("files", nargs="+", help="two or more result files (xpubench or pytest-benchmark JSON)")
    cmp_.add_argument("-o", "--output", default=None, help="HTML file to write")
    cmp_.add_argument("--price", action="append", default=[], metavar="LABEL=PER_HOUR", help="price per hour of a machine")
    cmp_.add_argument("--keep-going", action="store_true", help="skip unreadable files instead of stopping")
    cmp_.add_argument("--fail-if-slower", default=None, metavar="PCT",
                      help="exit 1 when a strategy of B is significantly slower than A by more than PCT %% "
                           "(Mann-Whitney U on the repeats, p < 0.05)")

    cal = sub.add_parser("calibrate", help="measure this machine's parallel ceiling and matmul GFLOP/s (<10 s)")
    cal.add_argument("--max-processes", default=None, help="largest process count to try (default usable cores)")
    cal.add_argument("--out", "-o", default=None, help="write the calibration JSON here")
    return parser


def cmd_list(args) -> int:
    from bench.backends.registry import backend_names, get_backend, installed_backends
    from bench.engines.devices import get_device, device_names
    from bench.model.strategy import usable_cores
    from bench.model.workload import iter_workloads

    print("workloads:")
    for w in iter_workloads():
        print(f"  {w.name:<16} {w.description}")
    print("backends:")
    installed = installed_backends()
    for name in backend_names():
        try:
            version = get_backend(name).version() or "installed"
        except UsageError as exc:  # not installed: the pip command that installs it
            version = f"[{printable(exc, None)}]"
        print(f"  {name:<16} {version}")
    print("devices:")
    for name in device_names():
        d = get_device(name)
        reasons = {b: d.availability(backend=b) for b in installed}  # asked of each installed backend
        runs_on = [b for b, reason in reasons.items() if not reason]
        if not runs_on:
            reason = next(iter(reasons.values()), None) or "no backend installed"
            note = f"  [unavailable: {reason}]"
        else:
            note = "" if runs_on == installed else f"  [{', '.join(runs_on)} only]"
        print(f"  {name:<16} {d.description}{note}")
    print(f"processes:\n  1..N worker processes (this machine: {usable_cores()} usable cores), e.g. --processes 1,2,4")
    print("clusters:\n  ray              Ray actors, one per worker (--cluster ray; pip install 'xpubench[cluster]')")
    return 0


def _request(args, workload: str | None = None, resume: str | None = None):
    """The SweepRequest of ``bench run``/``bench suite``'s options, every value checked; warnings shown.

    Args:
        args: The parsed command line (``args.argv`` is what main() was given).
        workload: The workload name (None for a suite's shared options).
        resume: ``bench run --resume FILE``.

    Raises:
        UsageError: one line naming the bad value.
    """
    from bench.request import SweepRequest

    request = SweepRequest.parse(
        workload=workload, size=args.size, processes=args.processes, devices=args.device, backends=args.backend,
        threads=args.threads,
        options=args.opt, data=args.data, offline=args.offline, model=args.model, model_file=args.model_file,
        engine=getattr(args, "cluster", None), address=getattr(args, "address", None), label=args.label,
        sample_interval=args.sample_interval, trial_timeout=args.trial_timeout, out_dir=args.out, resume=resume,
        force=args.force, command=["bench", *args.argv], names=NAMES, worker_max_rss=args.worker_max_rss,
        repeat=getattr(args, "repeat", None), scaling=getattr(args, "scaling", None),
    )
    for note in request.notes:
        print(f"warning: {printable(note, None)}", file=sys.stderr)
    return request


def _where(strategy, processes: bool = True) -> str:
    """A strategy in a progress sentence (:func:`bench.console.strategy_text`)."""
    from bench.console import strategy_text

    return strategy_text(strategy, processes)


class _Reporter:
    """The console reporter plus the reliability events it does not know (memory guard, resume, failures).

    Args:
        inner: A ConsoleReporter; events it handles are passed on.
    """

    def __init__(self, inner):
        self.inner = inner

    def say(self, text: str, style: str | None = None) -> None:
        self.inner.console.print(printable(text, None), markup=False, highlight=False, soft_wrap=True, style=style)

    def __call__(self, kind: str, **info) -> None:
        handler = getattr(self, f"on_{kind}", None)
        if handler:
            handler(**info)
        self.inner(kind, **info)

    def stop(self) -> None:
        self.inner.stop()

    def on_memory_probe(self, strategy, trial, **_):
        self.say(f"memory guard: no memory figure for {_where(strategy, False)} workers yet; "
                 f"measuring trial {trial} alone first")

    def on_memory_guard(self, decision, strategy, **_):
        if decision.warn:
            self.say(f"warning: memory guard: {decision.message}", style="yellow")

    def on_strategy_start(self, strategy, trials, resumed=0, **_):
        if resumed:
            self.say(f"resume: {resumed} of {trials} trials of {_where(strategy)} "
                     f"already finished; running {trials - resumed}")

    def on_resume_superseded(self, strategy, old, new, **_):
        self.say(f"warning: resume: workload version {old} -> {new}: every {_where(strategy)} "
                 "trial runs again (the old records stay in the file)", style="yellow")

    def on_strategy_failed(self, strategy, reason, trials=0, **_):
        self.say(f"failed: {_where(strategy)}: {reason}; {trials} trials recorded as not run", style="red")
        progress = getattr(self.inner, "progress", None)
        if progress is not None:
            progress.update(self.inner.task, advance=trials)


def _resume_command(prog: str, argv: Sequence[str], resume: str) -> str:
    """The command line to continue: the same arguments with ``--resume FILE`` (replacing any)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--resume":
            skip = True
            continue
        if a.startswith("--resume="):
            continue
        out.append(a)
    return shell_join([prog, *out, "--resume", resume])


def _failure_line(result, path) -> str | None:
    from bench.sweep.sweep import failure_counts

    trials = [t for r in result.runs for t in r.trials]
    kinds = failure_counts(trials)
    if not kinds:
        return None
    detail = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
    return f"{sum(kinds.values())} of {len(trials)} trials failed ({detail}); every trial, with its error, is in {path}"


def _run_one(sweep, reporter) -> tuple[int, object, object]:
    """Runs one workload's sweep. Returns (exit status, result path, the Result saved there).

    Raises:
        SweepInterrupted: after saying how many trials finished and where they are.
    """
    from bench.sweep.sweep import SweepInterrupted

    try:
        result = sweep.run()
    except SweepInterrupted as exc:
        reporter.stop()
        print(f"interrupted: {exc.finished} of {exc.total} trials finished; they are in {printable(exc.path)} (marked incomplete)",
              file=sys.stderr)
        raise
    except BaseException:  # any other end (an error, Ctrl-C before the sweep's handler): the progress
        reporter.stop()  # display is stopped before the error line; re-raised, never swallowed
        raise
    line = _failure_line(result, sweep.path)
    if line:
        print(printable(line, None), file=sys.stderr)
    failed = any(t.error is not None for r in result.runs for t in r.trials)
    return (EXIT_TRIALS_FAILED if failed else 0), sweep.path, result


def _terminate_as_interrupt(signum, frame):
    raise KeyboardInterrupt


class _SigtermAsInterrupt:
    """Within the block, SIGTERM ends a sweep the way Ctrl-C does (workers ended, file written)."""

    def __enter__(self):
        self.previous = None
        try:
            self.previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
        except ValueError:  # not the main thread
            pass
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        return False


def cmd_run(args) -> int:
    from bench.console import ConsoleReporter
    from bench.sweep.sweep import SweepInterrupted

    request = _request(args, args.workload, resume=args.resume)
    reporter = _Reporter(ConsoleReporter(quiet=args.quiet))
    resumes = {args.workload: args.resume} if args.resume else {}
    with _SigtermAsInterrupt(), _suite_workers(request, [args.workload], resumes) as workers:
        sweep = request.sweep(on_event=reporter, workers=workers)  # fingerprint, checks: the workers import meanwhile
        try:
            code, _, _ = _run_one(sweep, reporter)
        except SweepInterrupted as exc:
            print(f"resume with: {_resume_command('bench', args.argv, str(exc.path))}", file=sys.stderr)
            return EXIT_INTERRUPTED
    return code


def _suite_resume(text: str | None, names: Sequence[str]) -> dict[str, tuple[str, object]]:
    """``--resume a.json,b.json`` for a suite: workload name -> (file, Result)."""
    from bench.model import results

    out: dict[str, tuple[str, object]] = {}
    for f in [x.strip() for x in (text or "").split(",") if x.strip()]:
        res = results.load(f)
        found = {r.workload for r in res.runs} | {
            d.get("workload") for d in res.decisions if d.get("kind") == "sweep" and isinstance(d.get("workload"), str)
        }
        found.discard(None)
        if len(found) != 1:
            raise UsageError(f"{f}: cannot tell which workload it holds (found: {', '.join(sorted(found)) or 'none'})")
        (name,) = found
        if name not in names:
            raise UsageError(f"{f} holds workload {name!r}, which this suite does not run (choose from: {', '.join(names)})")
        if name in out:
            raise UsageError(f"two files to resume for workload {name!r}: {out[name][0]} and {f}")
        out[name] = (f, res)
    return out


def cmd_suite(args) -> int:
    from bench.console import ConsoleReporter
    from bench.model.workload import suite_names, workload_names

    names = suite_names() if args.workloads == "all" else [n.strip() for n in args.workloads.split(",") if n.strip()]
    if not names:
        raise UsageError(f"bad workload list {args.workloads!r} (choose from: {', '.join(workload_names())} or all)")
    shared = _request(args)  # the options every workload's sweep shares, the output directory included
    for name in names:  # each workload known and its options accepted before anything is calibrated or run
        shared.for_workload(name)
    report = Path(args.report) if args.report else Path(args.out) / "report.html"
    _check_output_file(report, "--report")
    resumes = _suite_resume(args.resume, names)
    if not args.no_calibrate:
        _calibrate_once(quiet=args.quiet)
    reporter = _Reporter(ConsoleReporter(quiet=args.quiet, headline=False))  # one headline at the end
    with _SigtermAsInterrupt(), _suite_workers(shared, names, resumes) as workers:
        done, worst = _run_suite(args, shared, names, resumes, reporter, workers)
    if done is None:
        return EXIT_INTERRUPTED
    from reports import write_report

    write_report([str(p) for _, p in done], str(report))
    from bench.console import print_headline

    print_headline(reporter.inner.console, done)
    print(f"report: {printable(report)}")
    return worst


def _suite_workers(shared, names: Sequence[str], resumes: Mapping):
    """The worker cache of a suite or a ``bench run`` (local engine): workers shared by every
    workload's sweep. The workers of every strategy are started now (those that surely fit in
    memory), so their imports overlap each other and building the sweeps (fingerprint, checks,
    data) and writing the run header; the first pool waits for all of them before it times
    anything. Ended when the command ends, on errors and interrupts included (a context manager; a
    null one for other engines)."""
    import contextlib

    if shared.engine != "local":
        return contextlib.nullcontext(None)
    from bench.engines.workercache import DEFAULT_MAX_RSS_MB, MiB, WorkerCache
    from bench.sweep.strategy_run import prestart_workers

    limit = DEFAULT_MAX_RSS_MB * MiB if shared.worker_max_rss is None else shared.worker_max_rss
    cache = WorkerCache(max_rss_bytes=limit)
    try:
        first = next((n for n in names if n not in resumes), None)
        if first is not None:  # every strategy's workers: their imports overlap each other and the parent's work
            from bench.model.workload import get_workload

            trials = len(get_workload(first).checked_trials(shared.size, dict(shared.options)))
            for strategy in shared.strategies():
                prestart_workers(cache, strategy, trials)
    except BaseException:
        cache.close()
        raise
    return cache


def _run_suite(args, shared, names, resumes, reporter, workers) -> tuple[list | None, int]:
    """Runs the suite's sweeps in order. Returns ((Result, path) of each workload, worst exit
    status), or (None, _) when interrupted (the resume command printed)."""
    from bench.sweep.sweep import SweepInterrupted

    plan = []  # (name, (Result, file) when already complete else None, Sweep or None): every sweep is checked before any runs
    for name in names:
        file, res = resumes.get(name, (None, None))
        if res is not None and res.complete:
            plan.append((name, (res, file), None))
        else:
            plan.append((name, None, shared.for_workload(name, file, res).sweep(on_event=reporter, workers=workers)))
    done, worst = [], 0  # (Result, path) of each workload, in order: the headline needs no reload
    for name, finished, sweep in plan:
        if sweep is None:
            print(f"{name}: already complete in {printable(finished[1])}")
            done.append(finished)
            continue
        try:
            code, path, result = _run_one(sweep, reporter)
        except SweepInterrupted as exc:
            files = ",".join(str(p) for _, p in done + [(None, exc.path)])
            print(f"resume with: {_resume_command('bench', args.argv, files)}", file=sys.stderr)
            return None, EXIT_INTERRUPTED
        worst = max(worst, code)
        done.append((result, path))
    return done, worst


SUITE_CALIBRATION_S = 4.5  # the suite's first-run calibration: fewer rounds than bench calibrate's 8 s budget


def _calibrate_once(quiet: bool = False) -> None:
    """Measures and caches this machine's calibration (parallel ceiling, matmul peak) when none is
    cached, so the suite's headline can give efficiency against the machine's ceiling and say when
    a model is overhead-bound. A failed calibration is a warning: the suite runs without it."""
    from bench.measure import calibrate

    if calibrate.cached_calibration() is not None:
        return
    if not quiet:
        print(f"calibrating this machine once (about {SUITE_CALIBRATION_S:g} s; cached for later runs; "
              "bench calibrate measures longer; --no-calibrate skips it)", file=sys.stderr, flush=True)
    try:
        calibrate.write_cache(calibrate.calibrate(_calibration_env, budget_s=SUITE_CALIBRATION_S))
    except (RuntimeError, OSError) as exc:  # the suite's figures do not depend on it: say so and go on
        print(f"warning: calibration skipped ({printable(exc)})", file=sys.stderr)


def _check_output_file(path: str | os.PathLike, what: str = "--output") -> None:
    """Raises UsageError when a report cannot be written at ``path``: a directory, something else
    that is not a regular file (a device such as /dev/null, a FIFO, a socket: never replaced, see
    :func:`bench.model.safefile.check_target`), or no writable parent."""
    from bench.errors import shown
    from bench.model.safefile import check_target

    p = Path(path)
    try:
        if p.is_dir():
            raise UsageError(f"{what} {shown(p)} is a directory (give a file name, e.g. {shown(p / 'report.html')})")
        check_target(p)
        probe = p.parent
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
        if not probe.is_dir():
            raise UsageError(f"{what} {shown(p)}: {shown(probe)} is a file, not a directory")
    except OSError as exc:
        if isinstance(exc, UsageError):
            raise
        raise UsageError(f"{what} {shown(p)}: cannot use ({exc.strerror or exc})") from None
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {shown(p)}: directory {shown(probe)} is not writable")


def cmd_report(args) -> int:
    from reports import write_report

    _check_output_file(args.output)
    write_report(args.files, args.output, png_dir=args.png_dir, keep_going=args.keep_going)
    print(f"report: {printable(args.output)}")
    return 0


def cmd_compare(args) -> int:
    from reports import compare

    if args.output:
        _check_output_file(args.output)
    if args.fail_if_slower is not None:  # a bad value is one error line before anything is read
        from reports.significance import parse_percent

        parse_percent(args.fail_if_slower)
    return compare(args.files, output=args.output, prices=args.price, keep_going=args.keep_going,
                   fail_if_slower=args.fail_if_slower)


def _calibration_env(threads: int) -> dict[str, str]:
    """A calibration process's environment: the worker environment for ``threads`` threads."""
    from bench.backends.registry import default_backend
    from bench.engines.childenv import child_env

    return child_env(threads, 1, backend=default_backend())


def cmd_calibrate(args) -> int:
    from bench.measure.calibrate import main as calibrate_main

    return calibrate_main(args, _calibration_env)


COMMANDS = {
    "list": cmd_list,
    "run": cmd_run,
    "suite": cmd_suite,
    "report": cmd_report,
    "compare": cmd_compare,
    "calibrate": cmd_calibrate,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``bench`` and ``python -m bench``: returns the exit status.

    Bad input prints one line, ``error: ...``, and returns 2. Any other failure also prints one
    line (``XPUBENCH_DEBUG=1`` shows the traceback) and returns 70. Never a traceback by default.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    shown, warnings.showwarning = warnings.showwarning, _show_warning
    try:
        args = parser.parse_args(argv)
        args.argv = tuple(argv)  # what the commands record and print to resume
        if args.version:
            from bench.model.results import _version

            print(f"xpubench {_version()}")
            return 0
        if not args.command:
            parser.print_help()
            return 2
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"error: {printable(exc, None)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `bench list | head`
        return 0
    except OSError as exc:
        if os.environ.get("XPUBENCH_DEBUG"):
            raise
        from bench.errors import shown as _quoted  # not `shown`: main's saved showwarning has that name

        name = f" {_quoted(exc.filename)}" if exc.filename else ""
        print(f"error: cannot use{name} ({printable(exc.strerror or exc)})", file=sys.stderr)
        return 2
    except Exception as exc:  # broad on purpose: whatever is left is a bug, shown as one line, not a traceback
        if os.environ.get("XPUBENCH_DEBUG"):
            raise
        text = printable(" ".join(str(exc).split()), 300)
        print(f"error: internal error: {type(exc).__name__}: {text} (run with XPUBENCH_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        warnings.showwarning = shown


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Prints a Python warning (a library's, e.g. matplotlib's) with its control characters escaped."""
    from bench.text import printable_lines

    text = printable_lines(warnings.formatwarning(message, category, filename, lineno, line))
    try:
        (file or sys.stderr).write(text)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
