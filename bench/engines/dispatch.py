"""The scheduling loop and bookkeeping every engine shares: one job per idle worker, replacements,
time limits, hellos, failures.

An engine (local processes in bench/engines/local.py, Ray actors in bench/engines/ray.py) subclasses
:class:`Dispatcher` and supplies how to start, feed, poll and end one worker. The loop itself —
which worker gets the next job, when a dead worker is replaced, when a trial is over its limit,
when to give up on workers that cannot start — and the bookkeeping around it (a worker's hello,
a worker that could not start, the reply handed to ``on_done``, a worker that could not be ended)
are written once, here. :class:`Engine` is the interface the sweep uses.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import signal
import time
from typing import Any, Callable, ClassVar, Mapping, Protocol

from bench.model.reply import Hello, TrialReply

MAX_START_FAILURES = 3  # workers in a row that end before saying hello: give up on the jobs left
STARTUP_TIMEOUT_S = 600.0  # default seconds a worker may take to import TensorFlow and say hello
LOG = logging.getLogger("bench")

OnDone = Callable[[dict, TrialReply], None]


class Engine(Protocol):
    """What the sweep needs of an engine's pool class (bench.engines.registry names them).

    A pool is built as ``cls(n, env_for, device="cpu", log_dir=None, on_event=None, **engine_options)``
    (:class:`Dispatcher`'s arguments plus the engine's own options).
    Every job given to :meth:`run` gets exactly one ``on_done(job, reply)``; error kinds are
    ``exception``, ``crash``, ``timeout``, ``oom``, ``startup`` and ``protocol``.
    """

    worker_facts: list[dict]

    @staticmethod
    def validate_options(**engine_options: Any) -> None:
        """Rejects bad engine options (a UsageError) before the sweep creates anything."""

    def start(self) -> None:
        """Starts the workers and waits for their hellos (WorkerStartError: none could start)."""

    def run(self, jobs: list[dict], on_done: OnDone, trial_timeout: float | None = None) -> None:
        """Runs every job, calling ``on_done(job, reply)`` once per job as it ends."""

    def close(self) -> None:
        """Ends every worker; safe to call twice."""

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers."""


@dataclasses.dataclass(kw_only=True)
class Slot:
    """One worker as the dispatch loop sees it; engines subclass it with their handles."""

    index: int
    env: dict
    started: float
    hello: Hello | None = None
    job: dict | None = None
    job_started: float = 0.0
    deadline: float = float("inf")
    dead: bool = False

    @property
    def state(self) -> str:
        """``dead``, ``starting`` (no hello yet), ``busy`` or ``idle``."""
        if self.dead:
            return "dead"
        if self.hello is None:
            return "starting"
        return "busy" if self.job is not None else "idle"


class Dispatcher:
    """Base of the worker pools: the shared state, the dispatch loop and its bookkeeping.

    Subclasses implement the hooks below (``_spawn``, ``_deliver``, ``_poll``, ``_kill``,
    ``_start_deadline``, and optionally ``_tail``, ``_node``, ``_hello_extra``) and ``start``,
    ``close``, ``pids``.

    Args:
        n: Number of workers running trials at once.
        env_for: ``env_for(index) -> dict``: the full environment of worker ``index``.
        device: Device spec passed to each worker (``cpu``, ``gpu:0``, ``mirrored``...).
        log_dir: Where worker logs go (each engine says what it does with it).
        on_event: ``on_event(kind, **info)`` for progress (``worker_ready``, ``worker_died``,
            ``worker_not_ended``).
        startup_timeout: Seconds a worker may take to say hello.
    """

    worker_label: ClassVar[str] = "worker"  # how log lines name a worker of this engine

    n: int
    env_for: Callable[[int], dict]
    device: str
    log_dir: Any
    on_event: Callable[..., None]
    startup_timeout: float
    slots: list[Any]  # every worker slot started so far (dead ones included), a Slot subclass
    worker_facts: list[dict]  # hellos (with startup_s, index) and failed starts, as recorded in results
    _next_index: int
    _start_failures: int  # consecutive workers that ended before saying hello
    _closed: bool

    def __init__(
        self,
        n: int,
        env_for: Callable[[int], dict],
        device: str = "cpu",
        log_dir: Any = None,
        on_event: Callable[..., None] | None = None,
        startup_timeout: float = STARTUP_TIMEOUT_S,
    ):
        self.n = n
        self.env_for = env_for
        self.device = device
        self.log_dir = log_dir
        self.on_event = on_event or (lambda kind, **info: None)
        self.startup_timeout = startup_timeout
        self.slots = []
        self.worker_facts = []
        self._next_index = 0
        self._start_failures = 0
        self._closed = False

    @staticmethod
    def validate_options(**engine_options: Any) -> None:
        """Engine options need no check before the pool is built (engines override this).

        Args:
            engine_options: The engine's keyword arguments.
        """

    # ------------------------------------------------------------ hooks

    def _spawn(self) -> Any:
        """Starts one worker; returns its slot (state ``starting``), appended to ``slots``."""
        raise NotImplementedError

    def _deliver(self, slot: Any, job: dict) -> None:
        """Hands ``job`` to the worker (``slot.job`` and its times are already set)."""
        raise NotImplementedError

    def _poll(self, timeout: float, on_done: OnDone | None) -> None:
        """Waits up to ``timeout`` s for hellos, replies and deaths; calls ``on_done`` per ended job."""
        raise NotImplementedError

    def _kill(self, slot: Any) -> None:
        """Ends a worker now and marks it dead."""
        raise NotImplementedError

    def _start_deadline(self, slot: Any) -> float:
        """When a starting worker that has not said hello counts as failed."""
        raise NotImplementedError

    def _tail(self, slot: Any) -> str:
        """The last lines the worker wrote, for an error record."""
        return ""

    def _node(self, slot: Any) -> str | None:
        """The node a worker runs on, put into its replies (None: this machine, not recorded)."""
        return None

    def _hello_extra(self) -> Mapping[str, Any]:
        """Fields the pool adds to every hello besides ``startup_s`` and ``index`` (Ray: ``placement``)."""
        return {}

    # ------------------------------------------------------------ shared bookkeeping

    def _take_index(self) -> int:
        """The index of the next worker to start (replacements get new indices)."""
        index = self._next_index
        self._next_index += 1
        return index

    def _send(self, slot: Any, job: dict, trial_timeout: float | None) -> None:
        """Gives ``job`` to an idle worker: sets ``slot.job``, ``job_started`` and ``deadline``, then delivers it."""
        slot.job = job
        slot.job_started = time.perf_counter()
        slot.deadline = slot.job_started + trial_timeout if trial_timeout else float("inf")
        self._deliver(slot, job)

    def _ready(self, slot: Any, hello: Hello) -> Hello:
        """Records a worker's hello: ``startup_s`` and ``index`` added, kept in ``worker_facts``.

        Args:
            slot: The worker that said hello.
            hello: What it said.

        Returns:
            The hello as recorded (also ``slot.hello``).
        """
        hello = dataclasses.replace(
            hello, startup_s=time.perf_counter() - slot.started, index=slot.index, **self._hello_extra()
        )
        slot.hello = hello
        self._start_failures = 0
        self.worker_facts.append(hello.as_message())
        self.on_event("worker_ready", worker=slot.index, startup_s=hello.startup_s)
        return hello

    def _start_failed(self, slot: Any, reason: str) -> None:
        """Records a worker that could not start (counts towards MAX_START_FAILURES)."""
        self._start_failures += 1
        self.worker_facts.append({"index": slot.index, "failed_to_start": reason, "stderr_tail": self._tail(slot)})
        self.on_event("worker_died", worker=slot.index, reason=f"failed to start: {reason}")

    def _finish(self, slot: Any, reply: TrialReply, on_done: OnDone | None) -> None:
        """Ends the worker's job with ``reply`` (stamped with the worker, its node, an error's wall time)."""
        job, slot.job, slot.deadline = slot.job, None, float("inf")
        if job is None or on_done is None:
            return
        on_done(job, reply.stamped(slot.index, time.perf_counter() - slot.job_started, node=self._node(slot)))

    def _fact(self, slot: Any) -> dict:
        """The worker's fact (its hello) in ``worker_facts``, kept in the result file; made if missing."""
        fact = next((f for f in reversed(self.worker_facts) if f.get("index") == slot.index), None)
        if fact is None:
            fact = {"index": slot.index}
            self.worker_facts.append(fact)
        return fact

    def _not_ended(self, slot: Any, reason: str) -> None:
        """Records a worker that could not be ended (``not_ended`` in its fact, an event, a warning)."""
        self._fact(slot)["not_ended"] = reason
        LOG.warning("xpubench: %s %s could not be ended: %s", self.worker_label, slot.index, reason)
        self.on_event("worker_not_ended", worker=slot.index, reason=reason)

    # ------------------------------------------------------------ the loop

    def run(self, jobs: list[dict], on_done: OnDone, trial_timeout: float | None = None) -> None:
        """Runs every job; calls ``on_done(job, reply)`` once per job as it ends.

        ``reply`` is a :class:`bench.model.reply.TrialReply`: the worker's ``result``, or an
        ``error`` from the worker for an exception or made by the pool for a crash, a timeout or a
        startup failure (``wall_s`` and ``worker`` always set). The next job is sent only after
        ``on_done`` returned, so what it writes is on disk first.

        Args:
            jobs: Trial messages (see bench.engines.worker).
            on_done: Called once per job, in the order jobs end.
            trial_timeout: Seconds a trial may run before its worker is killed (None: no limit).
        """
        pending = collections.deque(jobs)
        while pending or any(s.job is not None for s in self.slots):
            for s in self.slots:
                if s.state == "idle" and pending:
                    self._send(s, pending.popleft(), trial_timeout)
            live = [s for s in self.slots if s.state != "dead"]
            busy = sum(s.job is not None for s in live)
            if self._start_failures < MAX_START_FAILURES:
                while pending and len(live) < min(self.n, len(pending) + busy):
                    live.append(self._spawn())  # replaces a worker that died
            elif pending and not live:  # replacements keep dying at start-up: stop trying
                self._give_up(pending, on_done)
                return
            now = time.perf_counter()
            deadlines = [s.deadline for s in live] + [self._start_deadline(s) for s in live if s.hello is None]
            self._poll(max(0.0, min([0.5] + [d - now for d in deadlines])), on_done)
            self._check_startup_deadlines()
            now = time.perf_counter()
            for s in self.slots:
                if s.job is not None and now > s.deadline:
                    self._timeout(s, now, trial_timeout, on_done)

    def _check_startup_deadlines(self) -> None:
        now = time.perf_counter()
        for s in self.slots:
            if s.state == "starting" and now > self._start_deadline(s):
                self._kill(s)
                self._start_failed(s, f"no hello within {self.startup_timeout:g} s")

    def _timeout(self, slot: Any, now: float, trial_timeout: float | None, on_done: OnDone) -> None:
        self._kill(slot)
        self.on_event("worker_died", worker=slot.index, reason=f"over the {trial_timeout:g} s trial time limit")
        self._finish(slot, TrialReply.failure(
            "timeout",
            f"trial over its {trial_timeout:g} s time limit; worker killed",
            signal=int(signal.SIGKILL),
            stderr_tail=self._tail(slot),
            wall_s=now - slot.job_started,
        ), on_done)

    def _give_up(self, pending: collections.deque, on_done: OnDone) -> None:
        """No worker can be started: every job left becomes a ``startup`` error."""
        last = next((f for f in reversed(self.worker_facts) if "failed_to_start" in f), {})
        message = f"not run: {MAX_START_FAILURES} workers in a row failed to start ({last.get('failed_to_start', '?')})"
        while pending:
            on_done(pending.popleft(), TrialReply.failure(
                "startup", message, stderr_tail=last.get("stderr_tail", ""), wall_s=0.0, worker=last.get("index", 0),
            ))

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def start(self) -> None:
        """Starts the workers (each engine's own)."""
        raise NotImplementedError

    def close(self) -> None:
        """Ends the workers (each engine's own)."""
        raise NotImplementedError
