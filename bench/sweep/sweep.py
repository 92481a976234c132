"""Runs a sweep: a workload's trials under each strategy, sampled, written after every trial.

Data flows one way: workload (trial configs) -> strategy (pool of workers) -> runner (+ sampler)
-> result file. The runner owns timing and the result file; the file on disk is always valid
JSON holding every trial finished so far (each is written, atomically, before the next trial is
sent). Failed trials are records with their error; Ctrl-C ends the workers, writes what finished
(marked incomplete) and raises :class:`SweepInterrupted`. A sweep can resume an earlier result:
trials that finished there with the same configuration and workload version are kept, the rest
run. The memory guard (bench.sweep.memguard) may lower or refuse a process count before its pool starts.

Everything here goes through the engine interface (``start``, ``run``, ``close``,
``worker_facts``), so failures, interrupts and resume work the same for every engine.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as _dt
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from bench.engines import childenv

from bench.sweep import memguard

from bench.model import results
from bench.engines.devices import get_device
from bench.engines.registry import get_engine
from bench.errors import ResultWriteError, UsageError, shown
from bench.measure.calibrate import cached_calibration
from bench.measure.machine import fingerprint
from bench.model.ratios import summarize, tree_cpu_seconds
from bench.model.results import Result, RunRecord, TrialError, TrialRecord
from bench.model.safefile import claim_new
from bench.model.ratios import speedup_over_cpu
from bench.measure.sampler import DEFAULT_INTERVAL_S, Sampler, check_interval, merge_sampler_cost
from bench.model.strategy import Strategy, make_strategies
from bench.model.workload import Workload, get_workload, trial_seed

OOM_USED_FRACTION = 0.90  # system memory this full just before a SIGKILL: call it out-of-memory
IGNORED_OPTIONS = ("offline",)  # options that do not change what a trial measures


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


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@contextlib.contextmanager
def deferred_sigint(reraise: bool = True) -> Iterator[None]:
    """Holds Ctrl-C back while cleaning up (ending workers, the last write).

    Args:
        reraise: Raise KeyboardInterrupt after the block if Ctrl-C came during it (False: the
            caller is stopping anyway).

    Only in the main thread (elsewhere signals cannot be handled and this does nothing).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught and reraise:
        raise KeyboardInterrupt


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


def workload_ref(workload: Workload) -> str:
    """``"module:Class"`` of a workload instance: what a worker imports."""
    cls = type(workload)
    return f"{cls.__module__}:{cls.__qualname__}"


# ---------------------------------------------------------------- records


def _trial_record(job: Mapping, reply: Mapping) -> TrialRecord:
    """The TrialRecord of a job from the engine's reply.

    Args:
        job: The trial message sent (its ``config``, and ``_start_s`` set by the runner).
        reply: The engine's ``result`` or ``error`` message.
    """
    config = job["config"]
    if reply.get("type") == "result":
        return TrialRecord(
            id=config["id"],
            config=config,
            worker=int(reply.get("worker", 0)),
            start_s=float(job.get("_start_s", 0.0)),
            wall_s=float(reply["wall_s"]),
            cpu_s=float(reply["cpu_s"]),
            warmup_s=float(reply.get("warmup_s", 0.0)),
            samples=float(reply.get("samples", 0.0)),
            quality=dict(reply.get("quality", {})),
            extra=dict(reply.get("extra", {})),
            peak_rss_bytes=int(reply.get("peak_rss_bytes", 0)),
        )
    error = TrialError(
        kind=str(reply.get("kind", "crash")),
        message=str(reply.get("message", "trial failed")),
        exit_code=reply.get("exit_code"),
        signal=reply.get("signal"),
        stderr_tail=str(reply.get("stderr_tail", "")),
    )
    return TrialRecord(
        id=config["id"],
        config=config,
        worker=int(reply.get("worker", 0)),
        start_s=float(job.get("_start_s", 0.0)),
        wall_s=float(reply.get("wall_s", 0.0) or 0.0),
        error=error,
    )


def _looks_like_oom(reply: dict, samples: Sequence[Mapping]) -> dict:
    """Relabels a SIGKILL as ``oom`` when system memory was nearly full just before it.

    Args:
        reply: An engine reply; only ``crash`` errors with signal SIGKILL are considered.
        samples: The sampler timeline so far (its last few samples are looked at).
    """
    if reply.get("kind") != "crash" or reply.get("signal") != signal.SIGKILL:
        return reply
    fullest = 0.0
    for s in samples[-6:]:
        used, total = s.get("sys_mem_used_bytes"), s.get("sys_mem_total_bytes")
        if isinstance(used, int) and isinstance(total, int) and total > 0:
            fullest = max(fullest, used / total)
    if fullest < OOM_USED_FRACTION:
        return reply
    return {
        **reply,
        "kind": "oom",
        "message": f"{reply.get('message', 'worker killed')}; system memory was {100 * fullest:.0f} % used just before",
    }


def _same_config(a: Mapping, b: Mapping) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _compared_options(options: Mapping[str, Any]) -> dict:
    return {k: v for k, v in options.items() if k not in IGNORED_OPTIONS}


def _fmt_options(options: Mapping[str, Any]) -> str:
    opts = _compared_options(options)
    return ", ".join(f"{k}={v}" for k, v in sorted(opts.items())) or "none"


def failure_counts(trials: Sequence[TrialRecord]) -> dict[str, int]:
    """Failed trials by error kind, e.g. ``{"exception": 1, "timeout": 1}``.

    Args:
        trials: Trial records.
    """
    return dict(collections.Counter(t.error.kind for t in trials if t.error is not None))


class Sweep:
    """One ``bench run``: a workload under a list of strategies, written to one result file.

    Everything that can be wrong with the input (workload, size, output directory, resume file,
    memory) is checked in the constructor, before anything is created or started.

    Args:
        workload: Registry name of the workload.
        size: ``quick`` or ``full``.
        strategies: Strategies to run, in order (1-process first gives speedups a baseline).
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
    ):
        self.workload = get_workload(workload)
        self.size = size
        self.options = dict(options or {})
        self.configs = self.workload.checked_trials(size, self.options)
        self.strategies = list(strategies)
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
        self.memory_guard = memory_guard and engine == "local"
        out = Path(out_dir if path is None else Path(path).parent)
        check_out_dir(out)
        machine = fingerprint(label, calibration=cached_calibration())
        self.carried: list[RunRecord] = []
        decisions: tuple = ()
        if resume_from is not None:
            self.carried, decisions = self._check_resume(resume_from, machine, path)
        places = list(history) if history is not None else [out] + ([path] if path else [])
        self.history = memguard.previous_runs(places, machine) if self.memory_guard else []
        if resume_from is not None and self.memory_guard:
            self.history += [(f"in {path or 'the resumed file'}", r) for r in resume_from.runs]
        self._preflight_memory()
        prepare_out_dir(out)
        self._out, self._label = out, label
        # a new file's name is claimed when the sweep starts (run()), not here: a suite builds every
        # sweep before it runs any, and an interrupted suite must not leave empty files behind
        self.path: Path | None = Path(path) if path else None
        self.result = Result(
            machine=machine,
            created=resume_from.created if resume_from is not None and resume_from.created else _now(),
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
        }

    @property
    def total_trials(self) -> int:
        return len(self.configs) * len(self.strategies)

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

    def _decide(self, record: Mapping[str, Any]) -> None:
        self.result = self.result.replace(decisions=self.result.decisions + (dict(record),))

    # ------------------------------------------------------------ resume

    def _check_resume(self, old: Result, machine: Mapping, path) -> tuple[list[RunRecord], tuple]:
        """Validates a resume file against this sweep; returns the runs to carry over unchanged.

        Raises:
            UsageError: other workload or size, other machine (unless force), other options.
        """
        where = str(path) if path else "the resumed file"
        mine = (self.workload.name, self.size)
        theirs = sorted({(r.workload, r.size) for r in old.runs} | {
            (d.get("workload"), d.get("size")) for d in old.decisions
            if d.get("kind") == "sweep" and isinstance(d.get("workload"), str) and isinstance(d.get("size"), str)
        })
        if theirs and theirs != [mine]:
            held = ", ".join(f"{w} {s}" for w, s in theirs)
            raise UsageError(
                f"{where} holds {held} results, not {mine[0]} {mine[1]}: resume with the same workload "
                "and --size, or drop --resume"
            )
        if not self.force and old.machine and not memguard.same_machine(old.machine, machine):
            raise UsageError(
                f"{where} was measured on another machine ({old.machine.get('hostname')}, {old.machine.get('cpu')}); "
                "resuming would mix two machines' timings (use --force to resume anyway)"
            )
        keys = {self._key(s) for s in self.strategies}
        ids = {c["id"] for c in self.configs}
        for run in old.runs:
            if run.key not in keys or not run.trials:
                continue
            recorded = run.options  # None in files written before options were recorded
            if recorded is not None and _compared_options(recorded) != _compared_options(self.options):
                raise UsageError(
                    f"{where} was run with workload options {_fmt_options(recorded)}; this command has "
                    f"{_fmt_options(self.options)}: resume with the same --opt/--data/--model"
                )
            if recorded is None and not any(t.id in ids for t in run.trials):
                raise UsageError(
                    f"none of the trials in {where} is a trial of this command (other --opt or --data?): "
                    "resume with the same options"
                )
            source = (run.data or {}).get("source")
            now = self.workload.data_info(self.size, self.options).get("source")
            if source and now and source != now:
                raise UsageError(
                    f"{where} used {source} data but this command would use {now} data: "
                    "resume where the same data is available (see --data/--offline)"
                )
        carried = [r for r in old.runs if r.key not in keys]
        decision = {"kind": "resume", "from": where, "at": _now(), "previous_command": list(old.command)}
        return carried, (decision,)

    def _key(self, strategy: Strategy) -> tuple:
        return (self.workload.name, self.size, strategy.device, strategy.processes, strategy.threads_per_process)

    def _resumed(self, strategy: Strategy) -> tuple[RunRecord | None, dict[str, TrialRecord]]:
        """The earlier run of this strategy and its trials that can be kept (finished, same config and version)."""
        if self.resume_from is None:
            return None, {}
        old = next((r for r in self.resume_from.runs if r.key == self._key(strategy)), None)
        if old is None:
            return None, {}
        if old.workload_version != self.workload.version:
            self._decide({
                "kind": "resume", "action": "superseded", "strategy": strategy.to_dict(),
                "reason": f"workload version {old.workload_version} -> {self.workload.version}: every trial runs again",
                "run": results.as_json(old),
            })
            self.on_event("resume_superseded", strategy=strategy, old=old.workload_version, new=self.workload.version)
            return None, {}
        configs = {c["id"]: c for c in self.configs}
        kept = {t.id: t for t in old.trials if t.ok and t.id in configs and _same_config(t.config, configs[t.id])}
        dropped = [t for t in old.trials if t.id not in kept]
        if dropped:  # failed (or changed) trials run again; their old records stay in the file
            self._decide({
                "kind": "resume", "action": "rerun", "strategy": strategy.to_dict(),
                "trials": [results.as_json(t) for t in dropped],
            })
        return old, kept

    # ------------------------------------------------------------ memory guard

    def _preflight_memory(self) -> None:
        """Refuses, before anything starts, a sweep of which not even one worker fits (unless forced)."""
        if not self.memory_guard or self.force:
            return
        memory = memguard.memory_now()
        for strategy in self.strategies:
            est = memguard.estimate(self.history, self.workload.name, self.size, strategy.device)
            decision = memguard.decide(strategy.processes, est, memory)
            if decision.action == "refused":
                raise UsageError(f"memory guard: {decision.message}")

    def _guard(self, strategy: Strategy, device, n: int, first_job: dict) -> memguard.Decision | None:
        """How many of ``n`` workers to start.

        The estimate comes from an earlier run (this sweep, or a result of this machine); with none,
        from a generous assumption when n workers of that size fit easily; otherwise one trial is
        run alone first to measure it.
        """
        if not self.memory_guard:
            return None
        sweep_runs = [("earlier in this sweep", r) for r in self.runs]
        est = memguard.estimate(sweep_runs + self.history, self.workload.name, self.size, strategy.device)
        memory = memguard.memory_now()
        if est is None and n > 1 and not self.force:
            est = memguard.assumed(n, memory) or self._probe(strategy, device, first_job)
            memory = memguard.memory_now()
        decision = memguard.decide(n, est, memory, force=self.force)
        self._decide(decision.to_dict(strategy.to_dict()))
        self.on_event("memory_guard", decision=decision, strategy=strategy)
        return decision

    def _probe(self, strategy: Strategy, device, job: dict) -> memguard.Estimate | None:
        """Runs one trial in a pool of one worker to measure a worker's peak memory."""
        self.on_event("memory_probe", strategy=strategy, trial=job["config"]["id"])
        replies: list[dict] = []
        pool = self._pool(strategy, device, 1)
        try:
            pool.start()
            pool.run([dict(job)], lambda j, r: replies.append(r), trial_timeout=self.trial_timeout)
        except RuntimeError as exc:  # the probe's worker could not start: the real pool will say why
            replies.append({"type": "error", "kind": "startup", "message": str(exc)})
        finally:
            with deferred_sigint():
                pool.close()
        reply = replies[0] if replies else {}
        peak = reply.get("peak_rss_bytes")
        self._decide({
            "kind": "memory_probe", "strategy": strategy.to_dict(), "trial": job["config"]["id"],
            "outcome": reply.get("type", "none"), "error": reply.get("message") if reply.get("type") != "result" else None,
            "wall_s": reply.get("wall_s"), "peak_worker_bytes": peak,
        })
        if reply.get("type") != "result" or not isinstance(peak, int) or peak <= 0:
            return None
        return memguard.Estimate(peak, f"trial {job['config']['id']} run alone first")

    # ------------------------------------------------------------ running

    def run(self) -> Result:
        """Runs every strategy; returns the final result (also on disk at ``self.path``).

        Raises:
            SweepInterrupted: on Ctrl-C, after ending the workers and writing what finished.
            ResultWriteError: the result file could not be written (the last good copy stays).
        """
        if self.path is None:
            self._claim()
        self.on_event("sweep_start", total=self.total_trials, path=self.path, workload=self.workload.name, size=self.size)
        try:
            self._write()
            for strategy in self.strategies:
                run = self._run_strategy(strategy)
                self.runs.append(run)
                self._consumed.add(self._key(strategy))
                self._current = None
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

    def _base_run(self, strategy: Strategy, **kw) -> RunRecord:
        return RunRecord(
            workload=self.workload.name,
            size=self.size,
            strategy={**strategy.to_dict(), "engine": self.engine},
            workload_version=self.workload.version,
            data=self.workload.data_info(self.size, self.options),
            started_at=_now(),
            options=self.options,
            **kw,
        )

    def _pool(self, strategy: Strategy, device, n: int):
        return self.pool_class(
            n,
            env_for=lambda i: childenv.child_env(
                strategy.threads_per_process, strategy.inter_op_threads, device.child_env(i, strategy.processes)
            ),
            device=strategy.device,
            on_event=self.on_event,
            **self.engine_options,
        )

    def _jobs(self, configs: Sequence[Mapping]) -> list[dict]:
        ref = workload_ref(self.workload)
        return [
            {
                "type": "trial",
                "workload": ref,
                "size": self.size,
                "config": c,
                "seed": trial_seed(self.workload.name, c["id"]),
                "options": self.options,
            }
            for c in configs
        ]

    def _run_strategy(self, strategy: Strategy) -> RunRecord:
        device = get_device(strategy.device)
        reason = device.availability()
        if reason:
            self.on_event("strategy_skipped", strategy=strategy, reason=reason, trials=len(self.configs))
            return self._base_run(strategy, status="skipped", skipped=reason)

        old, kept = self._resumed(strategy)
        todo = [c for c in self.configs if c["id"] not in kept]
        jobs = self._jobs(todo)
        n = min(strategy.processes, len(todo))
        decision = self._guard(strategy, device, n, jobs[0]) if todo else None
        if decision is not None and decision.action == "refused":
            self.on_event("strategy_skipped", strategy=strategy, reason=f"memory guard: {decision.message}", trials=len(todo))
            return self._base_run(strategy, status="skipped", skipped=f"memory guard: {decision.message}",
                                  trials=tuple(kept.values()))
        if decision is not None and decision.action == "lowered":
            n = decision.processes
            if any(s.device == strategy.device and s.processes == n for s in self.strategies):
                reason = f"memory guard: {decision.message}; {n}-process run measured separately"
                self.on_event("strategy_skipped", strategy=strategy, reason=reason, trials=len(todo))
                return self._base_run(strategy, status="skipped", skipped=reason, trials=tuple(kept.values()))
            strategy_run = dataclasses.replace(strategy, processes=n)
        else:
            strategy_run = strategy

        env0 = childenv.child_env(
            strategy.threads_per_process, strategy.inter_op_threads, device.child_env(0, strategy_run.processes)
        )
        run = self._base_run(strategy_run, env=childenv.recorded(env0), trials=tuple(kept.values()))
        if strategy_run is not strategy:
            run = dataclasses.replace(run, strategy={**run.strategy, "requested_processes": strategy.processes})
        self.on_event("strategy_start", strategy=strategy_run, trials=len(self.configs), resumed=len(kept))
        if not todo:
            run = dataclasses.replace(run, status="complete", summary=self._summary(run, 0.0))
            return self._merge_resumed(old, run, 0.0) if old is not None else run

        trials: list[TrialRecord] = list(kept.values())
        sampler = Sampler(interval=self.sample_interval, gpu_indices=device.nvml_indices(strategy_run.processes))
        pool = self._pool(strategy_run, device, n)
        status = "complete"
        t_compute: float | None = None
        t_end: float | None = None
        compute_offset = 0.0
        sampler.start()
        try:
            try:
                pool.start()
            except RuntimeError as exc:  # WorkerStartError (local) or the engine's own
                status = "failed"
                run = dataclasses.replace(run, notes=run.notes + (str(exc),))
                trials.extend(_trial_record(j, {"type": "error", "kind": "startup", "message": str(exc)}) for j in jobs)
                self.on_event("strategy_failed", strategy=strategy_run, reason=str(exc), trials=len(jobs))
            else:
                t_compute = time.perf_counter()
                compute_offset = sampler.clock() - sampler._t0
                self._note_tensorflow(pool.worker_facts)
                self.on_event("workers_ready", strategy=strategy_run, workers=list(pool.worker_facts))

                def on_done(job: dict, reply: dict) -> None:
                    nonlocal t_end
                    t_end = time.perf_counter()
                    if self.engine == "local":
                        reply = _looks_like_oom(reply, sampler.samples)
                    job["_start_s"] = max(0.0, t_end - t_compute - float(reply.get("wall_s", 0.0) or 0.0))
                    record = _trial_record(job, reply)
                    trials.append(record)
                    partial = dataclasses.replace(
                        run, trials=tuple(trials), samples=tuple(sampler.samples), workers=tuple(pool.worker_facts),
                        status="running",
                    )
                    partial = dataclasses.replace(partial, summary={
                        **self._summary(partial, t_end - t_compute, compute_offset), **sampler.cost()})
                    self._current = partial
                    self._consumed.add(self._key(strategy))
                    self._write(current=partial)
                    self.on_event("trial_done", trial=record, strategy=strategy_run)

                pool.run(jobs, on_done, trial_timeout=self.trial_timeout)
        except KeyboardInterrupt:
            status = "interrupted"
        finally:
            try:
                with deferred_sigint():
                    pool.close()
                    sampler.stop()
            except KeyboardInterrupt:  # Ctrl-C while ending the workers: they are ended all the same
                status = "interrupted"
        wall = (t_end - t_compute) if (t_end and t_compute) else 0.0
        run = dataclasses.replace(
            run, trials=tuple(trials), samples=tuple(sampler.samples), workers=tuple(pool.worker_facts), status=status,
        )
        notes = (f"sampler_overhead_cpu_s={sampler.overhead_cpu_s:.4f}",)
        if status == "interrupted":
            done = {t.id for t in trials}
            notes += (f"interrupted: {len(todo) - len(done - set(kept))} of {len(self.configs)} trials not finished",)
        run = dataclasses.replace(run, summary={**self._summary(run, wall, compute_offset), **sampler.cost()},
                                  notes=run.notes + notes)
        if old is not None:
            run = self._merge_resumed(old, run, wall)
        if status == "interrupted":
            self.runs.append(run)
            self._consumed.add(self._key(strategy))
            self._current = None
            raise KeyboardInterrupt
        self.on_event("strategy_done", run=run)
        return run

    def _merge_resumed(self, old: RunRecord, new: RunRecord, new_wall: float) -> RunRecord:
        """Joins a resumed run to the earlier part: times add up, the timelines follow each other."""
        old_wall = old.summary.get("wall_s") if isinstance(old.summary.get("wall_s"), (int, float)) else 0.0
        kept = {t.id for t in old.trials} & {t.id for t in new.trials}
        shift = max((s.get("t", 0.0) for s in old.samples if isinstance(s.get("t"), (int, float))), default=0.0)
        samples = tuple(old.samples) + tuple({**s, "t": round(s.get("t", 0.0) + shift, 4)} for s in new.samples)
        workers = tuple(old.workers) + tuple(new.workers)
        wall = old_wall + new_wall
        merged = dataclasses.replace(new, workers=workers)
        summary = self._summary(merged, wall, old.summary.get("compute_offset_s", 0.0) or 0.0)
        cpu_old = old.summary.get("cpu_s") if isinstance(old.summary.get("cpu_s"), (int, float)) else 0.0
        cpu_new = tree_cpu_seconds(new.samples)
        if cpu_new is None:
            cpu_new = sum(t.cpu_s for t in new.trials if t.id not in kept)
        summary["cpu_s"] = cpu_old + cpu_new
        summary["cpu_wall_ratio"] = summary["cpu_s"] / wall if wall > 0 else None
        summary["per_process_cpu_wall_ratio"] = (
            sum(t.cpu_s for t in new.trials) / int(new.strategy["processes"]) / wall if wall > 0 else None
        )
        for key in ("peak_tree_rss_bytes", "peak_tree_uss_bytes"):
            vals = [v for v in (old.summary.get(key), summary.get(key)) if isinstance(v, (int, float))]
            summary[key] = max(vals, default=None)
        summary["resumed_trials"] = len(kept)
        summary.update(merge_sampler_cost(old.summary, new.summary))
        summary["segments"] = [{"t0": 0.0, "wall_s": old_wall}, {"t0": shift, "wall_s": new_wall}]
        note = f"resumed: {len(kept)} trials kept from an earlier run ({old_wall:.1f} s), {len(new.trials) - len(kept)} run now"
        return dataclasses.replace(merged, samples=samples, summary=summary, notes=tuple(new.notes) + (note,))

    def _note_tensorflow(self, facts: Sequence[Mapping]) -> None:
        """Adds what only a TensorFlow process knows (build, devices) to the machine fingerprint."""
        hello = next((f for f in facts if "tensorflow" in f), None)
        if hello is None or "tensorflow_build" in self.result.machine:
            return
        machine = dict(self.result.machine)
        machine["tensorflow_build"] = hello.get("build", {})
        machine["tensorflow_devices"] = hello.get("visible_devices", [])
        self.result = self.result.replace(machine=machine)

    def _summary(self, run: RunRecord, wall: float, compute_offset: float = 0.0) -> dict:
        samples = [s for s in run.samples if s.get("t", 0) >= compute_offset - 1e-9] or list(run.samples)
        summary = summarize(
            run.trials,
            samples,
            wall,
            int(run.strategy["processes"]),
            run.workers,
            unit=self.workload.throughput_unit,
        )
        summary["compute_offset_s"] = compute_offset
        summary["failures"] = failure_counts(run.trials)
        return summary

    def _finalize(self) -> None:
        """Fills speedup/efficiency now that every strategy's wall time is known."""
        runs = finalize_runs(tuple(self.carried) + tuple(self.runs))
        self.carried, self.runs = runs[: len(self.carried)], runs[len(self.carried):]


def finalize_runs(runs: Sequence[RunRecord]) -> list[RunRecord]:
    """Speedup and efficiency of every run against the 1-process run of the same workload/size/device."""
    base: dict[tuple, float] = {}
    for r in runs:
        if r.strategy.get("processes") == 1 and r.summary.get("wall_s") and r.status == "complete":
            base.setdefault((r.workload, r.size, r.strategy.get("device")), r.summary["wall_s"])
    out = []
    for r in runs:
        summary = dict(r.summary)
        b = base.get((r.workload, r.size, r.strategy.get("device")))
        wall = summary.get("wall_s")
        if b and wall:
            summary["speedup"] = b / wall
            summary["efficiency"] = summary["speedup"] / int(r.strategy["processes"])
            summary["baseline_wall_s"] = b
        out.append(dataclasses.replace(r, summary=summary))
    # device comparison: how much faster than the cpu run with the same trials and processes
    for i, v in enumerate(speedup_over_cpu(out)):
        out[i] = dataclasses.replace(out[i], summary={**out[i].summary, "speedup_vs_cpu": v})
    return out


def run_sweep(
    workload: str,
    size: str = "quick",
    processes: Sequence[int] = (1,),
    devices: Sequence[str] = ("cpu",),
    threads: int | None = None,
    **kwargs,
) -> Result:
    """Convenience front: builds strategies and runs a Sweep. See :class:`Sweep` for kwargs."""
    return Sweep(workload, size, make_strategies(list(devices), list(processes), threads), **kwargs).run()
