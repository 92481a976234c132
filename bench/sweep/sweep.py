"""Runs a sweep: a workload's trials under each strategy, sampled, written after every trial.

Data flows one way: workload (trial configs) -> strategy (pool of workers) -> sweep (+ sampler)
-> result file. The sweep owns the result file; the file on disk is always valid JSON holding
every trial finished so far (each is written, atomically, before the next trial is sent). Failed
trials are records with their error; Ctrl-C ends the workers, writes what finished (marked
incomplete) and raises :class:`SweepInterrupted`. A sweep can resume an earlier result
(bench.sweep.resume): trials that finished there with the same configuration and workload version
are kept, the rest run. One strategy is run by bench.sweep.strategy_run (memory guard -> pool ->
sampler -> records); this module loops over the strategies and writes the file.
"""

from __future__ import annotations

import datetime as _dt
import os
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from bench.backends.registry import get_backend
from bench.engines.registry import get_engine
from bench.errors import ResultWriteError, UsageError, shown
from bench.measure.calibrate import cached_calibration
from bench.measure.machine import fingerprint
from bench.measure.sampler import DEFAULT_INTERVAL_S, check_interval
from bench.model import results
from bench.model.ratios import finalize_runs
from bench.model.results import Result, RunRecord
from bench.model.safefile import claim_new
from bench.model.strategy import Strategy, make_strategies
from bench.model.workload import get_workload, source_files
from bench.sweep import memguard
from bench.sweep.repeats import run_order, trial_configs
from bench.sweep.resume import ResumePlan, plan_resume, strategy_key
from bench.sweep.strategy_run import (  # noqa: F401 - deferred_sigint, failure_counts, workload_ref: public here too
    StrategyInterrupted,
    StrategyRun,
    SweepSetup,
    deferred_sigint,
    failure_counts,
    now_iso,
    prestart_workers,
    workload_ref,
)

__all__ = [
    "Sweep", "SweepInterrupted", "run_sweep", "check_out_dir", "prepare_out_dir", "result_path", "name_part",
    "failure_counts", "deferred_sigint", "workload_ref", "NAME_LABEL_BYTES",
]


class SweepInterrupted(Exception):
    """Ctrl-C (or SIGTERM) during a sweep; the partial result is on disk at ``path``.

    Args:
        path: The result file, valid JSON with ``complete: false``.
        finished: Trials finished (and kept) so far.
        total: Trials the sweep has in all.
    """

    def __init__(self, path: Path, finished: int = 0, total: int = 0):
        super().__init__(str(path))
        self.path = path
        self.finished = finished
        self.total = total


# ---------------------------------------------------------------- output paths


def check_out_dir(out: str | os.PathLike) -> Path:
    """Checks that ``out`` is, or can become, a writable directory, without creating anything.

    Args:
        out: The ``--out`` directory (it may not exist yet).

    Raises:
        UsageError: naming the path and what is wrong with it.
    """
    path = Path(out)
    try:
        exists = path.exists()
        probe = path
        while not probe.exists():
            if probe.parent == probe:
                break
            probe = probe.parent
    except OSError as exc:  # a name too long, a loop of links...
        raise UsageError(f"cannot use output directory {shown(path)} ({exc.strerror or exc})") from None
    if exists and not path.is_dir():
        raise UsageError(f"output path {shown(path)} is a file, not a directory (give a directory with --out)")
    if probe.exists() and not probe.is_dir():
        raise UsageError(f"cannot create output directory {shown(path)}: {shown(probe)} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        if probe == path:
            raise UsageError(f"output directory {shown(path)} is not writable")
        raise UsageError(f"cannot create output directory {shown(path)}: {shown(probe)} is not writable")
    return path


def prepare_out_dir(out: str | os.PathLike) -> Path:
    """Creates the output directory, or raises UsageError if it cannot hold result files.

    Args:
        out: The ``--out`` directory.
    """
    path = check_out_dir(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create output directory {shown(path)} ({exc.strerror or exc})") from None
    if not os.access(path, os.W_OK | os.X_OK):  # pragma: no cover - checked above
        raise UsageError(f"output directory {shown(path)} is not writable")
    return path


NAME_LABEL_BYTES = 64  # of a label in a result file's name (UTF-8); the whole label stays in the file


def name_part(text: str, limit: int = NAME_LABEL_BYTES) -> str:
    """``text`` made safe for a file name: letters, digits, ``-_.`` kept, anything else ``_``.

    No ``/``, no control character, no leading ``.``; at most ``limit`` UTF-8 bytes. A text that
    had to be cut ends in ``~`` and 8 hex digits of its SHA-256, so two long labels that differ
    only after the cut still get different names.

    Args:
        text: A label (or any text) to put into a file name.
        limit: The most UTF-8 bytes returned (at least 16).
    """
    import hashlib

    safe = "".join(c if (c.isalnum() and c.isprintable()) or c in "-_." else "_" for c in str(text)).lstrip(".")
    if len(safe.encode("utf-8")) <= limit:
        return safe
    digest = hashlib.sha256(str(text).encode("utf-8", "surrogatepass")).hexdigest()[:8]
    room, kept = limit - 9, []
    for c in safe:
        room -= len(c.encode("utf-8"))
        if room < 0:
            break
        kept.append(c)
    return "".join(kept) + "~" + digest


def result_path(out_dir: Path, workload: str, size: str, label: str | None = None) -> Path:
    """Claims a new result file in ``out_dir``: ``WORKLOAD-SIZE-STAMP[-LABEL].json`` (else ``...-2.json``...).

    The name is claimed atomically (:func:`bench.model.safefile.claim_new`: an empty file created with
    ``O_CREAT | O_EXCL``), so sweeps started at the same second into one directory with the same
    label each get their own file; nothing existing is ever replaced. The label part of the name
    is :func:`name_part` of the label (bounded and sanitised); the full label is in the file.

    Args:
        out_dir: The output directory (it exists).
        workload: Workload name.
        size: Workload size.
        label: Machine label, if given.

    Returns:
        The claimed (empty) file; write the result over it with :func:`bench.model.results.save`.

    Raises:
        FileWriteError: the directory does not accept a new file.
    """
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    stem = f"{name_part(workload, 40)}-{name_part(size, 16)}-{stamp}" + (f"-{name_part(label)}" if label else "")
    return claim_new(out_dir, stem, ".json")


def _is_empty(path: Path) -> bool:
    try:
        return os.stat(path).st_size == 0
    except OSError:
        return False



class Sweep:
    """One ``bench run``: a workload under a list of strategies, written to one result file.

    Everything that can be wrong with the input (workload, size, output directory, resume file,
    memory) is checked in the constructor, before anything is created or started.

    Args:
        workload: Registry name of the workload.
        size: ``quick`` or ``full``.
        strategies: Strategies to run, in order (1-process first gives speedups a baseline); each
            names its Keras backend (unknown or not installed: UsageError, nothing written).
        out_dir: Directory for the result file.
        label: Machine label recorded in the fingerprint.
        options: Workload options (``data``, ``offline``, ``model``...).
        trial_timeout: Seconds a trial may take before its worker is ended.
        sample_interval: Sampler interval in seconds.
        on_event: ``on_event(kind, **info)`` for progress display.
        resume_from: A previous (possibly interrupted) result whose finished trials are kept.
        path: Write here instead of a new file in ``out_dir`` (the resumed file).
        command: The command line, recorded.
        engine: Execution engine name (``local`` processes, ``ray`` tasks); see bench.engines.registry.
        engine_options: Engine keyword arguments (e.g. ``{"address": "auto"}`` for Ray).
        force: Run what the memory guard would lower or refuse; resume a file of another machine.
        memory_guard: Check memory before starting workers (local engine only).
        history: Result files/directories to take worker memory figures from (default:
            ``out_dir`` and the resumed file).
        workers: A :class:`bench.engines.workercache.WorkerCache` the caller owns (a suite's,
            shared by its sweeps); None: the local engine makes one for this sweep and ends its
            workers when the sweep ends.
        worker_max_rss: RSS limit in bytes of a worker after a trial, for the cache this sweep
            makes (None: its default; 0: none).
        repeats: Measure every strategy this many times, interleaved (1p, 2p, 1p, 2p...; see
            bench.sweep.repeats); each repeat is its own run.

    Raises:
        UsageError: bad workload/size/output directory, a resume file that does not match, or
            (without ``force``) not enough memory for even one worker.
    """

    def __init__(
        self,
        workload: str,
        size: str,
        strategies: Sequence[Strategy],
        out_dir: str | os.PathLike = "results",
        label: str | None = None,
        options: Mapping[str, Any] | None = None,
        trial_timeout: float | None = None,
        sample_interval: float = DEFAULT_INTERVAL_S,
        on_event: Callable[..., None] | None = None,
        resume_from: Result | None = None,
        path: str | os.PathLike | None = None,
        command: Sequence[str] | None = None,
        engine: str = "local",
        engine_options: Mapping[str, Any] | None = None,
        force: bool = False,
        memory_guard: bool = True,
        history: Sequence[str | os.PathLike] | None = None,
        workers: Any = None,
        worker_max_rss: int | None = None,
        repeats: int = 1,
    ):
        self.workload = get_workload(workload)
        self.size = size
        self.options = dict(options or {})
        self.configs = self.workload.checked_trials(size, self.options)
        self.files = source_files(self.workload, self.options)  # spec / model files by role, with SHA-256
        self.strategies = list(strategies)
        self.repeats = max(1, int(repeats))
        for backend in dict.fromkeys(s.backend for s in self.strategies):  # unknown / not installed: nothing written
            get_backend(backend)
        self.trial_timeout = trial_timeout
        self.sample_interval = check_interval(sample_interval, "sample_interval")
        self.on_event = on_event or (lambda kind, **info: None)
        self.resume_from = resume_from
        self.engine = engine
        self.pool_class = get_engine(engine)
        self.engine_options = dict(engine_options or {})
        validate = getattr(self.pool_class, "validate_options", None)
        if callable(validate):  # optional engine hook: reject bad engine options before any file exists
            validate(**self.engine_options)
        self.force = force
        self.workers, self.worker_max_rss = workers, worker_max_rss
        self.memory_guard = memory_guard and engine == "local"
        out = Path(out_dir if path is None else Path(path).parent)
        check_out_dir(out)
        machine = fingerprint(label, calibration=cached_calibration())
        self.plan = ResumePlan()
        decisions: tuple = ()
        if resume_from is not None:
            where = str(path) if path else "the resumed file"
            self.plan = plan_resume(
                resume_from, workload=self.workload.name, size=size, version=self.workload.version,
                strategies=self.strategies, configs=self.configs, options=self.options,
                data_source=self.workload.data_info(size, self.options).get("source"), machine=machine,
                force=force, where=where, files=self.files, repeats=self.repeats,
            )
            decisions = ({"kind": "resume", "from": where, "at": now_iso(), "previous_command": list(resume_from.command),
                          **({"files": self.files} if self.files else {})},)
        self.carried: list[RunRecord] = list(self.plan.carried)
        places = list(history) if history is not None else [out] + ([path] if path else [])
        self.history = memguard.previous_runs(places, machine) if self.memory_guard else []
        if resume_from is not None and self.memory_guard:
            self.history += [(f"in {path or 'the resumed file'}", r) for r in resume_from.runs]
        if self.memory_guard and not force:  # not even one worker fits: refused before anything starts
            memguard.preflight(self.history, self.workload.name, size, self.strategies)
        prepare_out_dir(out)
        self._out, self._label = out, label
        # a new file's name is claimed when the sweep starts (run()), not here: a suite builds every
        # sweep before it runs any, and an interrupted suite must not leave empty files behind
        self.path: Path | None = Path(path) if path else None
        self.result = Result(
            machine=machine,
            created=resume_from.created if resume_from is not None and resume_from.created else now_iso(),
            complete=False,
            command=tuple(command if command is not None else sys.argv),
            decisions=tuple(resume_from.decisions) + decisions if resume_from is not None else (self._identity(),),
        )
        self._claimed: Path | None = None  # the new file claimed, until a result is in it
        self.runs: list[RunRecord] = []
        self._current: RunRecord | None = None  # the run in progress, as last written
        self._consumed: set[tuple] = set()  # keys of resumed runs whose replacement is in self.runs/_current

    def _identity(self) -> dict:
        """The first decision of a new file: what this sweep is (so even an empty file can be resumed)."""
        return {
            "kind": "sweep", "workload": self.workload.name, "size": self.size,
            "workload_version": self.workload.version, "options": dict(self.options),
            "strategies": [s.to_dict() for s in self.strategies], "engine": self.engine,
            **({"spec": self.workload.spec} if getattr(self.workload, "spec", None) else {}),
            **({"files": self.files} if self.files else {}),
            "repeats": self.repeats,
        }

    @property
    def total_trials(self) -> int:
        """Trials the sweep has in all (configs × strategies × repeats; weak scaling: N copies)."""
        return sum(len(trial_configs(self.configs, s)) for s in self.strategies) * self.repeats

    # ------------------------------------------------------------ file

    def _write(self, current: RunRecord | None = None, complete: bool = False) -> None:
        """Writes the whole result: carried-over runs, finished runs, the current one, then earlier runs
        of a resumed file that nothing has replaced yet (so an interrupt never drops them)."""
        if self.path is None:
            self._claim()
        pending = ()
        if self.resume_from is not None:
            carried = {r.key for r in self.carried}
            pending = tuple(r for r in self.resume_from.runs if r.key not in carried and r.key not in self._consumed)
        runs = tuple(self.carried) + tuple(self.runs) + ((current,) if current is not None else ()) + pending
        self.result = self.result.replace(runs=runs, complete=complete)
        try:
            results.save(self.result, self.path)
        except OSError as exc:  # FileWriteError included (a full disk, not a regular file any more)
            if self._claimed is not None and self._claimed == self.path and _is_empty(self.path):
                self._unclaim()
                raise ResultWriteError(
                    f"cannot write result file {shown(self.path)} ({exc.strerror or exc}); nothing was written"
                ) from None
            raise ResultWriteError(
                f"cannot write result file {shown(self.path)} ({exc.strerror or exc}); "
                "it still holds the last complete write"
            ) from None
        self._claimed = None  # it holds a result now: never removed

    def _claim(self) -> None:
        """Claims this sweep's new result file (see :func:`result_path`)."""
        try:
            self.path = self._claimed = result_path(self._out, self.workload.name, self.size, self._label)
        except OSError as exc:
            raise ResultWriteError(f"cannot create a result file in {shown(self._out)} ({exc.strerror or exc})") from None

    def _unclaim(self) -> None:
        """Removes the claimed file while it is still empty (nothing was ever written to it)."""
        try:
            os.unlink(self._claimed)
        except OSError:
            pass
        self._claimed = None

    # ------------------------------------------------------------ what a strategy run reports (Recorder)

    def decide(self, record: Mapping[str, Any]) -> None:
        """Adds a decision to the result (written with the next write).

        Args:
            record: The decision (``kind`` and its fields).
        """
        self.result = self.result.replace(decisions=self.result.decisions + (dict(record),))

    def progress(self, key: tuple, run: RunRecord) -> None:
        """Writes the run in progress (it replaces the resumed run with ``key``).

        Args:
            key: The run key of the strategy as requested.
            run: The run so far (status ``running``).
        """
        self._current = run
        self._consumed.add(key)
        self._write(current=run)

    def workers_ready(self, facts: Sequence[Mapping[str, Any]]) -> None:
        """Adds what only a TensorFlow process knows (build, devices) to the machine fingerprint.

        Args:
            facts: The pool's worker facts (hellos).
        """
        hello = next((f for f in facts if "tensorflow" in f), None)
        if hello is None or "tensorflow_build" in self.result.machine:
            return
        machine = dict(self.result.machine)
        machine["tensorflow_build"] = hello.get("build", {})
        machine["tensorflow_devices"] = hello.get("visible_devices", [])
        self.result = self.result.replace(machine=machine)

    def finished_runs(self) -> Sequence[RunRecord]:
        """The runs this sweep finished so far."""
        return list(self.runs)

    # ------------------------------------------------------------ running

    def _setup(self) -> SweepSetup:
        """What every strategy run shares, as the sweep is now (a test may swap ``pool_class``)."""
        return SweepSetup(
            workload=self.workload, size=self.size, options=self.options, configs=tuple(self.configs),
            strategies=tuple(self.strategies), trial_timeout=self.trial_timeout,
            sample_interval=self.sample_interval, engine=self.engine, pool_class=self.pool_class,
            engine_options=self.engine_options, force=self.force, memory_guard=self.memory_guard,
            history=tuple(self.history), on_event=self.on_event, cache=self.workers,
        )

    def run(self) -> Result:
        """Runs every strategy; returns the final result (also on disk at ``self.path``).

        Raises:
            SweepInterrupted: on Ctrl-C, after ending the workers and writing what finished.
            ResultWriteError: the result file could not be written (the last good copy stays).
        """
        own = self._own_cache()
        try:
            return self._run()
        finally:
            if own is not None:  # this sweep's workers end with it (errors and Ctrl-C included)
                with deferred_sigint(reraise=False):
                    own.close()
                self.workers = None

    def _own_cache(self):
        """The worker cache this sweep makes for the local engine when the caller gave none (or None)."""
        if self.workers is not None or not getattr(self.pool_class, "uses_cache", False):
            return None  # a suite's cache, or an engine (Ray, a test's) that does not take one
        from bench.engines.workercache import MiB, WorkerCache, DEFAULT_MAX_RSS_MB

        limit = DEFAULT_MAX_RSS_MB * MiB if self.worker_max_rss is None else self.worker_max_rss
        self.workers = WorkerCache(max_rss_bytes=limit)
        return self.workers

    def _run(self) -> Result:
        # the header is written as soon as the file is claimed: a reader never finds the claimed file
        # empty while workers start and the console sets up (the first trial is seconds away)
        self._write()
        if self.strategies:  # the first pool's workers import while the sweep is set up
            first = self.strategies[0]
            prestart_workers(self.workers, first, len(self.configs) - len(self.plan.of(
                strategy_key(self.workload.name, self.size, first)).kept))
        self.on_event("sweep_start", total=self.total_trials, path=self.path, workload=self.workload.name, size=self.size)
        setup = self._setup()
        try:
            for strategy, repeat in run_order(self.strategies, self.repeats):  # interleaved: 1p, 2p, 1p, 2p...
                key = strategy_key(self.workload.name, self.size, strategy, repeat)
                try:
                    run = StrategyRun(setup, strategy, self.plan.of(key), recorder=self, repeat=repeat).run()
                except StrategyInterrupted as stop:
                    self._ran(key, stop.run)
                    raise
                self._ran(key, run)
                self._write()
            self._finalize()
            self._write(complete=True)
        except KeyboardInterrupt:
            with deferred_sigint(reraise=False):
                self._write(current=self._current, complete=False)
            finished = sum(1 for r in self.runs for t in r.trials if t.ok)
            raise SweepInterrupted(self.path, finished, self.total_trials) from None
        self.on_event("sweep_done", result=self.result, path=self.path)
        return self.result

    def _ran(self, key: tuple, run: RunRecord) -> None:
        """Keeps a strategy's run (finished or interrupted): it replaces the resumed run with ``key``."""
        self.runs.append(run)
        self._consumed.add(key)
        self._current = None

    def _finalize(self) -> None:
        """Fills speedup/efficiency now that every strategy's wall time is known."""
        runs = finalize_runs(tuple(self.carried) + tuple(self.runs))
        self.carried, self.runs = runs[: len(self.carried)], runs[len(self.carried):]


def run_sweep(
    workload: str,
    size: str = "quick",
    processes: Sequence[int] = (1,),
    devices: Sequence[str] = ("cpu",),
    threads: int | None = None,
    backends: Sequence[str] = ("tensorflow",),
    scalings: Sequence[str] = ("strong",),
    **kwargs,
) -> Result:
    """Convenience front: builds strategies and runs a Sweep. See :class:`Sweep` for kwargs.

    Args:
        workload: Registry name.
        size: ``quick`` or ``full``.
        processes: Process counts.
        devices: Device specs.
        threads: Threads per worker (None: usable cores // processes).
        backends: Keras backends.
        scalings: ``strong`` and/or ``weak`` (every worker runs every trial).
        **kwargs: :class:`Sweep`'s other arguments.
    """
    strategies = make_strategies(list(devices), list(processes), threads, list(backends), list(scalings))
    return Sweep(workload, size, strategies, **kwargs).run()
