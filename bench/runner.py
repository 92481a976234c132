"""Runs a sweep: a workload's trials under each strategy, sampled, written after every trial.

Data flows one way: workload (trial configs) -> strategy (pool of workers) -> runner (+ sampler)
-> result file. The runner owns timing and the result file; the file on disk is always valid
JSON holding every trial finished so far.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from bench import childenv, results
from bench.devices import get_device
from bench.engines import get_engine
from bench.errors import UsageError
from bench.machine import fingerprint
from bench.ratios import summarize
from bench.results import Result, RunRecord, TrialError, TrialRecord
from bench.sampler import DEFAULT_INTERVAL_S, Sampler
from bench.strategy import Strategy, make_strategies
from bench.workload import Workload, get_workload, trial_seed


class SweepInterrupted(Exception):
    """Ctrl-C during a sweep; the partial result is on disk at ``path``."""

    def __init__(self, path: Path):
        super().__init__(str(path))
        self.path = path


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def prepare_out_dir(out: str | os.PathLike) -> Path:
    """Creates the output directory, or raises UsageError if it cannot hold result files."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"output path {str(path)!r} is a file, not a directory (give a directory with --out)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create output directory {str(path)!r} ({exc.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"output directory {str(path)!r} is not writable")
    return path


def result_path(out_dir: Path, workload: str, size: str, label: str | None = None) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    stem = f"{workload}-{size}-{stamp}" + (f"-{label}" if label else "")
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)
    path = out_dir / f"{stem}.json"
    n = 1
    while path.exists():
        n += 1
        path = out_dir / f"{stem}-{n}.json"
    return path


def workload_ref(workload: Workload) -> str:
    cls = type(workload)
    return f"{cls.__module__}:{cls.__qualname__}"


def _trial_record(job: Mapping, reply: Mapping) -> TrialRecord:
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
        wall_s=float(reply.get("wall_s", 0.0)),
        error=error,
    )


class Sweep:
    """One ``bench run``: a workload under a list of strategies, written to one result file.

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
        path: Write here instead of a new file in ``out_dir``.
        command: The command line, recorded.
        engine: Execution engine name (``local`` processes, ``ray`` tasks); see bench.engines.
        engine_options: Engine keyword arguments (e.g. ``{"address": "auto"}`` for Ray).
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
    ):
        self.workload = get_workload(workload)
        self.size = size
        self.options = dict(options or {})
        self.configs = self.workload.checked_trials(size, self.options)
        self.strategies = list(strategies)
        self.trial_timeout = trial_timeout
        self.sample_interval = sample_interval
        self.on_event = on_event or (lambda kind, **info: None)
        self.resume_from = resume_from
        self.engine = engine
        self.pool_class = get_engine(engine)
        self.engine_options = dict(engine_options or {})
        out = prepare_out_dir(out_dir if path is None else Path(path).parent)
        self.path = Path(path) if path else result_path(out, self.workload.name, size, label)
        machine = fingerprint(label)
        self.result = Result(
            machine=machine,
            created=_now(),
            complete=False,
            command=tuple(command if command is not None else sys.argv),
        )
        self.runs: list[RunRecord] = []

    # ------------------------------------------------------------ file

    def _write(self, current: RunRecord | None = None, complete: bool = False) -> None:
        runs = tuple(self.runs) + ((current,) if current is not None else ())
        self.result = self.result.replace(runs=runs, complete=complete)
        results.save(self.result, self.path)

    # ------------------------------------------------------------ resume

    def _finished_before(self, strategy: Strategy) -> dict[str, TrialRecord]:
        """Trials of an earlier result with the same workload version and strategy that finished."""
        if self.resume_from is None:
            return {}
        key = (self.workload.name, self.size, strategy.device, strategy.processes, strategy.threads_per_process)
        kept: dict[str, TrialRecord] = {}
        for run in self.resume_from.runs:
            if run.key == key and run.workload_version == self.workload.version:
                for t in run.trials:
                    if t.ok:
                        kept[t.id] = t
        return kept

    # ------------------------------------------------------------ running

    def run(self) -> Result:
        """Runs every strategy; returns the final result (also on disk at ``self.path``).

        Raises:
            SweepInterrupted: on Ctrl-C, after ending the workers and writing what finished.
        """
        total = len(self.configs) * len(self.strategies)
        self.on_event("sweep_start", total=total, path=self.path, workload=self.workload.name, size=self.size)
        self._write()
        for strategy in self.strategies:
            self.runs.append(self._run_strategy(strategy))
            self._write()
        self._finalize()
        self._write(complete=True)
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
            **kw,
        )

    def _run_strategy(self, strategy: Strategy) -> RunRecord:
        device = get_device(strategy.device)
        reason = device.availability()
        if reason:
            self.on_event("strategy_skipped", strategy=strategy, reason=reason, trials=len(self.configs))
            return self._base_run(strategy, status="skipped", skipped=reason)

        kept = self._finished_before(strategy)
        todo = [c for c in self.configs if c["id"] not in kept]
        env0 = childenv.child_env(
            strategy.threads_per_process, strategy.inter_op_threads, device.child_env(0, strategy.processes)
        )
        run = self._base_run(strategy, env=childenv.recorded(env0), trials=tuple(kept.values()))
        self.on_event("strategy_start", strategy=strategy, trials=len(self.configs), resumed=len(kept))
        if not todo:
            return dataclasses.replace(run, status="complete", summary=self._summary(run, 0.0))

        ref = workload_ref(self.workload)
        jobs = [
            {
                "type": "trial",
                "workload": ref,
                "size": self.size,
                "config": c,
                "seed": trial_seed(self.workload.name, c["id"]),
                "options": self.options,
            }
            for c in todo
        ]
        trials: list[TrialRecord] = list(kept.values())
        sampler = Sampler(interval=self.sample_interval)
        n = min(strategy.processes, len(todo))
        pool = self.pool_class(
            n,
            env_for=lambda i: childenv.child_env(
                strategy.threads_per_process, strategy.inter_op_threads, device.child_env(i, strategy.processes)
            ),
            device=strategy.device,
            on_event=self.on_event,
            **self.engine_options,
        )
        status = "complete"
        t_compute = None
        t_end = None
        sampler.start()
        try:
            pool.start()
            t_compute = time.perf_counter()
            compute_offset = sampler.clock() - sampler._t0
            self._note_tensorflow(pool.worker_facts)
            self.on_event("workers_ready", strategy=strategy, workers=list(pool.worker_facts))

            def on_done(job: dict, reply: dict) -> None:
                nonlocal t_end
                t_end = time.perf_counter()
                job["_start_s"] = max(0.0, t_end - t_compute - float(reply.get("wall_s", 0.0)))
                record = _trial_record(job, reply)
                trials.append(record)
                partial = dataclasses.replace(
                    run, trials=tuple(trials), samples=tuple(sampler.samples), workers=tuple(pool.worker_facts),
                    status="running",
                )
                self._write(current=partial)
                self.on_event("trial_done", trial=record, strategy=strategy)

            pool.run(jobs, on_done, trial_timeout=self.trial_timeout)
        except KeyboardInterrupt:
            status = "interrupted"
        except RuntimeError as exc:  # workers could not start
            status = "failed"
            run = dataclasses.replace(run, notes=run.notes + (str(exc),))
        finally:
            pool.close()
            sampler.stop()
        wall = (t_end - t_compute) if (t_end and t_compute) else 0.0
        samples = tuple(sampler.samples)
        run = dataclasses.replace(
            run,
            trials=tuple(trials),
            samples=samples,
            workers=tuple(pool.worker_facts),
            status=status,
            summary={},
        )
        run = dataclasses.replace(
            run,
            summary=self._summary(run, wall, compute_offset if t_compute else 0.0),
            notes=run.notes + (f"sampler_overhead_cpu_s={sampler.overhead_cpu_s:.4f}",),
        )
        if status == "interrupted":
            self.runs.append(run)
            self._write(complete=False)
            raise SweepInterrupted(self.path)
        self.on_event("strategy_done", run=run)
        return run

    def _note_tensorflow(self, facts: Sequence[Mapping]) -> None:
        """Adds what only a TensorFlow process knows (build, devices) to the machine fingerprint."""
        hello = next((f for f in facts if "tensorflow" in f), None)
        if hello is None or "tensorflow_build" in self.result.machine:
            return
        machine = dict(self.result.machine)
        machine["tensorflow_build"] = hello.get("build", {})
        machine["tensorflow_devices"] = hello.get("visible_devices", [])
        self.result = self.result.replace(machine=machine)

    def _summary(self, run: RunRecord, wall: float, compute_offset: float = 0.0, baseline: float | None = None) -> dict:
        samples = [s for s in run.samples if s.get("t", 0) >= compute_offset - 1e-9] or list(run.samples)
        summary = summarize(
            run.trials,
            samples,
            wall,
            int(run.strategy["processes"]),
            run.workers,
            baseline_wall_s=baseline,
            unit=self.workload.throughput_unit,
        )
        summary["compute_offset_s"] = compute_offset
        return summary

    def _finalize(self) -> None:
        """Fills speedup/efficiency now that every strategy's wall time is known."""
        self.runs = finalize_runs(self.runs)


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
