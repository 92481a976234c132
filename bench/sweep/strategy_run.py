"""One strategy of a sweep: memory guard -> pool -> sampler -> records.

:class:`StrategyRun` runs a workload's trials under one strategy and returns its RunRecord. What
the sweep around it owns (the result file, the decisions, what was written) it reaches through a
:class:`Recorder`, so every finished trial is on disk before the next one is sent. Everything goes
through the engine interface (bench.engines.dispatch.Engine), so failures, interrupts and resume
work the same for every engine. A reply becomes a TrialRecord in one place, :func:`trial_record`.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as _dt
import signal
import threading
import time
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

from bench.engines import childenv
from bench.engines.devices import get_device
from bench.engines.workercache import cache_key
from bench.measure.sampler import Sampler
from bench.model.ratios import summarize
from bench.model.reply import TrialReply
from bench.model.results import RunRecord, TrialError, TrialRecord
from bench.model.strategy import Strategy
from bench.model.workload import Workload, trial_seed
from bench.sweep import memguard
from bench.sweep.repeats import original_id, trial_configs
from bench.sweep.resume import StrategyResume, merge_resumed, strategy_key

OOM_USED_FRACTION = 0.90  # system memory this full just before a SIGKILL: call it out-of-memory


def now_iso() -> str:
    """Now, UTC, to the second (``started_at`` of a run, ``at`` of a decision)."""
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


def workload_ref(workload: Workload) -> str:
    """``"module:Class"`` of a workload instance, or the spec it was made from (``/path/file.py:Class``):
    what a worker imports."""
    spec = getattr(workload, "spec", None)
    if spec:
        return spec
    cls = type(workload)
    return f"{cls.__module__}:{cls.__qualname__}"


def failure_counts(trials: Sequence[TrialRecord]) -> dict[str, int]:
    """Failed trials by error kind, e.g. ``{"exception": 1, "timeout": 1}``.

    Args:
        trials: Trial records.
    """
    return dict(collections.Counter(t.error.kind for t in trials if t.error is not None))


def trial_record(job: Mapping, reply: TrialReply, start_s: float = 0.0) -> TrialRecord:
    """The TrialRecord of a job from the engine's reply (the one place a reply becomes a record).

    Args:
        job: The trial message sent (its ``config``).
        reply: The engine's ``result`` or ``error`` reply.
        start_s: When the trial started, in seconds since the run's compute phase began.
    """
    config = job["config"]
    common = dict(id=config["id"], config=config, worker=int(reply.worker), start_s=float(start_s),
                  wall_s=float(reply.wall_s or 0.0))
    if not reply.ok:
        return TrialRecord(**common, error=reply.error or TrialError(kind="crash", message="trial failed"))
    return TrialRecord(
        **common, cpu_s=float(reply.cpu_s), warmup_s=float(reply.warmup_s), samples=float(reply.samples),
        quality=dict(reply.quality), extra=dict(reply.extra), peak_rss_bytes=int(reply.peak_rss_bytes),
    )


def looks_like_oom(reply: TrialReply, samples: Sequence[Mapping]) -> TrialReply:
    """Relabels a SIGKILL as ``oom`` when system memory was nearly full just before it.

    Args:
        reply: An engine reply; only ``crash`` errors with signal SIGKILL are considered.
        samples: The sampler timeline so far (its last few samples are looked at).
    """
    error = reply.error
    if error is None or error.kind != "crash" or error.signal != signal.SIGKILL:
        return reply
    fullest = 0.0
    for s in samples[-6:]:
        used, total = s.get("sys_mem_used_bytes"), s.get("sys_mem_total_bytes")
        if isinstance(used, int) and isinstance(total, int) and total > 0:
            fullest = max(fullest, used / total)
    if fullest < OOM_USED_FRACTION:
        return reply
    message = f"{error.message}; system memory was {100 * fullest:.0f} % used just before"
    return dataclasses.replace(reply, error=dataclasses.replace(error, kind="oom", message=message))


def unavailable_reason(strategy: Strategy, device) -> str | None:
    """Why ``strategy`` cannot run here (None: it can): ``device.availability(backend)``, which says
    when its backend cannot run that device at all (``Backend.supports``: ``mirrored runs on
    tensorflow only (jax: use data_parallel)``) or this machine cannot run it for that backend.

    Args:
        strategy: The strategy (its ``backend`` and ``device``).
        device: Its device strategy (bench.engines.devices).
    """
    return device.availability(backend=strategy.backend)


def worker_env(strategy: Strategy, device, index: int, n_workers: int) -> dict[str, str]:
    """The environment of worker ``index`` of ``n_workers`` running ``strategy``: thread caps,
    ``KERAS_BACKEND`` and the backend's thread variables, the device's variables for that backend.

    Args:
        strategy: The strategy (threads, inter-op threads, backend).
        device: Its device strategy.
        index: The worker's index.
        n_workers: Workers in the pool.
    """
    return childenv.child_env(
        strategy.threads_per_process, strategy.inter_op_threads,
        device.child_env(index, n_workers, backend=strategy.backend), backend=strategy.backend,
    )


def prestart_workers(cache: Any, strategy: Strategy, trials: int) -> int:
    """Starts, in ``cache``, the workers ``strategy`` will take, so their import overlaps what the
    parent does before the pool starts (fingerprint, data, the run header). Only workers that
    surely fit in memory: one, or all when ``memguard.assumed`` says they fit easily.

    Args:
        cache: The :class:`bench.engines.workercache.WorkerCache` (None: nothing to do).
        strategy: The strategy about to run.
        trials: Trials it will run (no more workers than trials).

    Returns:
        Workers started.
    """
    if cache is None or trials < 1:
        return 0
    device = get_device(strategy.device)
    if unavailable_reason(strategy, device):
        return 0
    n = min(strategy.processes, trials)
    if n > 1 and memguard.assumed(n, memguard.memory_now()) is None:
        n = 1
    return cache.prestart([(worker_env(strategy, device, i, strategy.processes), strategy.device) for i in range(n)])


@dataclasses.dataclass(frozen=True)
class SweepSetup:
    """What every strategy of one sweep shares (see :class:`bench.sweep.sweep.Sweep` for the meaning).

    Args:
        workload: The workload instance.
        size: ``quick`` or ``full``.
        options: Workload options.
        configs: The trial configs, in order.
        strategies: Every strategy of the sweep (a lowered count already among them is not run twice).
        trial_timeout: Seconds a trial may take.
        sample_interval: Sampler interval in seconds.
        engine: Engine name.
        pool_class: The engine's pool class (bench.engines.dispatch.Engine).
        engine_options: Its keyword arguments.
        force: Run what the memory guard would lower or refuse.
        memory_guard: Check memory before starting workers.
        history: ``(where, RunRecord)`` pairs of earlier runs of this machine (memory estimates).
        on_event: ``on_event(kind, **info)`` for progress display.
        cache: The local engine's :class:`bench.engines.workercache.WorkerCache` (None: every pool
            starts and ends its own workers).
    """

    workload: Workload
    size: str
    options: Mapping[str, Any]
    configs: tuple[Mapping[str, Any], ...]
    strategies: tuple[Strategy, ...]
    trial_timeout: float | None
    sample_interval: float
    engine: str
    pool_class: Callable[..., Any]
    engine_options: Mapping[str, Any]
    force: bool
    memory_guard: bool
    history: tuple[tuple[str, RunRecord], ...]
    on_event: Callable[..., None]
    cache: Any = None


class Recorder(Protocol):
    """What a strategy run needs of the sweep around it (bench.sweep.sweep.Sweep is one)."""

    def decide(self, record: Mapping[str, Any]) -> None:
        """Adds a decision (memory guard, probe, resume) to the result."""

    def progress(self, key: tuple, run: RunRecord) -> None:
        """A trial ended: ``run`` (status ``running``) replaces the resumed run with ``key`` and is written."""

    def workers_ready(self, facts: Sequence[Mapping[str, Any]]) -> None:
        """The workers said hello (their facts go into the machine fingerprint)."""

    def finished_runs(self) -> Sequence[RunRecord]:
        """The runs this sweep finished so far (memory estimates)."""


class StrategyInterrupted(KeyboardInterrupt):
    """Ctrl-C during a strategy: ``run`` holds what finished (status ``interrupted``).

    Args:
        run: The interrupted run, ready to be written.
    """

    def __init__(self, run: RunRecord):
        super().__init__()
        self.run = run


def run_summary(run: RunRecord, wall: float, unit: str, compute_offset: float = 0.0) -> dict:
    """The summary of a run: its trials and the samples from its compute phase on.

    Args:
        run: The run (trials, samples, workers, strategy).
        wall: Seconds from the first trial sent to the last one ended.
        unit: The workload's throughput unit.
        compute_offset: When the compute phase began on the sampler's clock (start-up before it).
    """
    samples = [s for s in run.samples if s.get("t", 0) >= compute_offset - 1e-9] or list(run.samples)
    summary = dict(summarize(run.trials, samples, wall, int(run.strategy["processes"]), run.workers, unit=unit))
    summary["compute_offset_s"] = compute_offset
    summary["failures"] = failure_counts(run.trials)
    return summary


@dataclasses.dataclass
class _Timing:
    """The clock of a run's compute phase (perf_counter seconds), kept while its trials end."""

    compute_start: float | None = None  # the pool was ready
    last_end: float | None = None  # the last trial ended
    offset: float = 0.0  # compute_start on the sampler's clock

    @property
    def wall(self) -> float:
        """Seconds from the first trial sent to the last one ended (0 when none ran)."""
        return (self.last_end - self.compute_start) if (self.last_end and self.compute_start) else 0.0


class StrategyRun:
    """Runs one strategy: availability, resume, memory guard, pool + sampler, records.

    Args:
        setup: What the sweep's strategies share.
        strategy: The strategy as requested.
        resume: What resume keeps of its earlier run.
        recorder: The sweep (decisions, writes after every trial).
        repeat: Which repeat of the strategy this run is (``--repeat K``: 0 to K-1).
    """

    def __init__(self, setup: SweepSetup, strategy: Strategy, resume: StrategyResume, recorder: Recorder,
                 repeat: int = 0):
        self.setup = setup
        self.strategy = strategy
        self.resume = resume
        self.recorder = recorder
        self.repeat = repeat
        self.configs = trial_configs(setup.configs, strategy)  # weak scaling: N copies of each trial
        self.key = strategy_key(setup.workload.name, setup.size, strategy, repeat)
        self.trials: list[TrialRecord] = []
        self.timing = _Timing()
        self._run: RunRecord | None = None  # the run being measured, without its trials yet
        self._measured = strategy  # the strategy as run (the memory guard may have lowered its processes)
        self._sampler: Sampler | None = None
        self._pool: Any = None

    # ------------------------------------------------------------ the steps

    def run(self) -> RunRecord:
        """Runs the strategy; returns its RunRecord (``complete``, ``failed`` or ``skipped``).

        Raises:
            StrategyInterrupted: on Ctrl-C, with the run as it is (its workers ended).
        """
        s, strategy, on_event = self.setup, self.strategy, self.setup.on_event
        device = get_device(strategy.device)
        reason = unavailable_reason(strategy, device)
        if reason:
            on_event("strategy_skipped", strategy=strategy, reason=reason, trials=len(self.configs))
            return self._base_run(strategy, status="skipped", skipped=reason)
        for record in self.resume.decisions:
            self.recorder.decide(record)
        if self.resume.superseded is not None:
            on_event("resume_superseded", strategy=strategy, old=self.resume.superseded[0], new=self.resume.superseded[1])
        kept = self.resume.kept
        todo = [c for c in self.configs if c["id"] not in kept]
        jobs = self._jobs(todo)
        n = min(strategy.processes, len(todo))
        decision = self._guard(device, n, jobs[0]) if todo else None
        if decision is not None and decision.action == "refused":
            on_event("strategy_skipped", strategy=strategy, reason=f"memory guard: {decision.message}", trials=len(todo))
            return self._base_run(strategy, status="skipped", skipped=f"memory guard: {decision.message}",
                                  trials=tuple(kept.values()))
        measured = strategy
        if decision is not None and decision.action == "lowered":
            n = decision.processes
            if any(o.device == strategy.device and o.processes == n and o.backend == strategy.backend
                   for o in s.strategies):
                reason = f"memory guard: {decision.message}; {n}-process run measured separately"
                on_event("strategy_skipped", strategy=strategy, reason=reason, trials=len(todo))
                return self._base_run(strategy, status="skipped", skipped=reason, trials=tuple(kept.values()))
            measured = dataclasses.replace(strategy, processes=n)

        env0 = worker_env(strategy, device, 0, measured.processes)
        run = self._base_run(measured, env=childenv.recorded(env0), trials=tuple(kept.values()))
        if measured is not strategy:
            run = dataclasses.replace(run, strategy={**run.strategy, "requested_processes": strategy.processes})
        on_event("strategy_start", strategy=measured, trials=len(self.configs), resumed=len(kept), repeat=self.repeat)
        if not todo:
            run = dataclasses.replace(run, status="complete", summary=self._summary(run, 0.0))
            return self._joined(run, 0.0)
        run = self._measure(run, measured, device, n, jobs)
        on_event("strategy_done", run=run)
        return run

    def _measure(self, run: RunRecord, strategy: Strategy, device, n: int, jobs: list[dict]) -> RunRecord:
        """Starts the pool and the sampler, runs the jobs, and ends both whatever happens."""
        self.trials = list(self.resume.kept.values())
        self._run, self._measured = run, strategy
        self._sampler = sampler = Sampler(interval=self.setup.sample_interval,
                                          gpu_indices=device.nvml_indices(strategy.processes, backend=strategy.backend),
                                          pids=self._pool_pids if self.setup.cache is not None else None)
        self._pool = pool = self._new_pool(strategy, device, n)
        status = "complete"
        sampler.start()
        try:
            try:
                pool.start()
            except RuntimeError as exc:  # WorkerStartError (local) or the engine's own
                status = "failed"
                self._run = run = dataclasses.replace(run, notes=run.notes + (str(exc),))
                self.trials.extend(trial_record(j, TrialReply.failure("startup", str(exc))) for j in jobs)
                self.setup.on_event("strategy_failed", strategy=strategy, reason=str(exc), trials=len(jobs))
            else:
                self.timing.compute_start = time.perf_counter()
                self.timing.offset = sampler.clock() - sampler.t0
                self.recorder.workers_ready(pool.worker_facts)
                self.setup.on_event("workers_ready", strategy=strategy, workers=list(pool.worker_facts))
                pool.run(jobs, self._trial_done, trial_timeout=self.setup.trial_timeout)
        except KeyboardInterrupt:
            status = "interrupted"
        finally:
            try:
                with deferred_sigint():
                    pool.close()
                    sampler.stop()
            except KeyboardInterrupt:  # Ctrl-C while ending the workers: they are ended all the same
                status = "interrupted"
        return self._finished(run, status, len(jobs))

    def _pool_pids(self) -> list[int]:
        """The pool's live workers: what the sampler watches (not the idle workers of the cache)."""
        return list(self._pool.pids) if self._pool is not None else []

    def _trial_done(self, job: dict, reply: TrialReply) -> None:
        """``on_done`` of the pool: the trial's record, the run so far written before the next trial is sent."""
        t = self.timing
        t.last_end = time.perf_counter()
        if self.setup.engine == "local":
            reply = looks_like_oom(reply, self._sampler.samples)
        start_s = max(0.0, t.last_end - t.compute_start - float(reply.wall_s or 0.0))
        record = trial_record(job, reply, start_s)
        self.trials.append(record)
        partial = dataclasses.replace(
            self._run, trials=tuple(self.trials), samples=tuple(self._sampler.samples),
            workers=tuple(self._pool.worker_facts), status="running",
        )
        partial = dataclasses.replace(partial, summary={
            **self._summary(partial, t.last_end - t.compute_start, t.offset), **self._sampler.cost()})
        self.recorder.progress(self.key, partial)
        self.setup.on_event("trial_done", trial=record, strategy=self._measured)

    def _finished(self, run: RunRecord, status: str, n_jobs: int) -> RunRecord:
        """The run as measured: trials, samples, workers, summary, notes; joined to a resumed part."""
        sampler, wall = self._sampler, self.timing.wall
        run = dataclasses.replace(run, trials=tuple(self.trials), samples=tuple(sampler.samples),
                                  workers=tuple(self._pool.worker_facts), status=status)
        notes = (f"sampler_overhead_cpu_s={sampler.overhead_cpu_s:.4f}",)
        if status == "interrupted":
            done = {t.id for t in self.trials}
            notes += (f"interrupted: {n_jobs - len(done - set(self.resume.kept))} of {len(self.configs)} "
                      "trials not finished",)
        run = dataclasses.replace(run, summary={**self._summary(run, wall, self.timing.offset), **sampler.cost()},
                                  notes=run.notes + notes)
        run = self._joined(run, wall)
        if status == "interrupted":
            raise StrategyInterrupted(run)
        return run

    def _joined(self, run: RunRecord, wall: float) -> RunRecord:
        """``run`` joined to the earlier part of a resumed run (unchanged when there is none)."""
        if self.resume.old is None:
            return run
        return merge_resumed(self.resume.old, run, wall, self._summary)

    # ------------------------------------------------------------ memory guard

    def _guard(self, device, n: int, first_job: dict) -> memguard.Decision | None:
        """How many of ``n`` workers to start.

        The estimate comes from an earlier run (this sweep, or a result of this machine); with none,
        from a generous assumption when n workers of that size fit easily; otherwise one trial is
        run alone first to measure it.
        """
        s = self.setup
        if not s.memory_guard:
            return None
        sweep_runs = [("earlier in this sweep", r) for r in self.recorder.finished_runs()]
        est = memguard.estimate(sweep_runs + list(s.history), s.workload.name, s.size, self.strategy.device,
                                self.strategy.backend)
        memory = memguard.memory_now()
        tight = (n * est.peak_bytes > memory.budget) if est is not None else (n > 1 and memguard.assumed(n, memory) is None)
        if s.cache is not None and s.cache.held and tight:
            s.cache.evict(keep=[cache_key(worker_env(self.strategy, device, i, self.strategy.processes), self.strategy.device)
                                for i in range(n)])
            memory = memguard.memory_now()  # idle workers of other environments ended: their memory is free
        if est is None and n > 1 and not s.force:
            est = memguard.assumed(n, memory) or self._probe(device, first_job)
            memory = memguard.memory_now()
        decision = memguard.decide(n, est, memory, force=s.force)
        self.recorder.decide(decision.to_dict(self.strategy.to_dict()))
        s.on_event("memory_guard", decision=decision, strategy=self.strategy)
        return decision

    def _probe(self, device, job: dict) -> memguard.Estimate | None:
        """Runs one trial in a pool of one worker to measure a worker's peak memory."""
        trial = job["config"]["id"]
        self.setup.on_event("memory_probe", strategy=self.strategy, trial=trial)
        replies: list[TrialReply] = []
        pool = self._new_pool(self.strategy, device, 1)
        try:
            pool.start()
            pool.run([dict(job)], lambda j, r: replies.append(r), trial_timeout=self.setup.trial_timeout)
        except RuntimeError as exc:  # the probe's worker could not start: the real pool will say why
            replies.append(TrialReply.failure("startup", str(exc)))
        finally:
            with deferred_sigint():
                pool.close()
        reply = replies[0] if replies else None
        peak = reply.peak_rss_bytes if reply is not None and reply.ok else None
        self.recorder.decide({
            "kind": "memory_probe", "strategy": self.strategy.to_dict(), "trial": trial,
            "outcome": reply.kind if reply is not None else "none",
            "error": reply.error.message if reply is not None and reply.error is not None else None,
            "wall_s": reply.wall_s if reply is not None else None, "peak_worker_bytes": peak,
        })
        if reply is None or not reply.ok or not isinstance(peak, int) or peak <= 0:
            return None
        return memguard.Estimate(peak, f"trial {trial} run alone first")

    # ------------------------------------------------------------ pieces

    def _base_run(self, strategy: Strategy, **kw) -> RunRecord:
        s = self.setup
        return RunRecord(
            workload=s.workload.name, size=s.size, strategy={**strategy.to_dict(), "engine": s.engine},
            workload_version=s.workload.version, data=s.workload.data_info(s.size, s.options),
            started_at=now_iso(), options=s.options, repeat=self.repeat, **kw,
        )

    def _new_pool(self, strategy: Strategy, device, n: int):
        s = self.setup
        return s.pool_class(
            n,
            env_for=lambda i: worker_env(strategy, device, i, strategy.processes),
            device=strategy.device,
            on_event=s.on_event,
            **s.engine_options,
            **({"cache": s.cache} if s.cache is not None else {}),
        )

    def _jobs(self, configs: Sequence[Mapping]) -> list[dict]:
        s = self.setup
        ref = workload_ref(s.workload)
        return [
            {"type": "trial", "workload": ref, "size": s.size, "config": c,
             "seed": trial_seed(s.workload.name, original_id(c["id"])), "options": s.options}
            for c in configs
        ]

    def _summary(self, run: RunRecord, wall: float, compute_offset: float = 0.0) -> dict:
        return run_summary(run, wall, self.setup.workload.throughput_unit, compute_offset)
