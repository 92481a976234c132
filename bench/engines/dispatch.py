"""The scheduling loop every engine shares: one job per idle worker, replacements, time limits.

An engine (local processes in bench/engines/local.py, Ray actors in bench/engines/ray.py) subclasses
:class:`Dispatcher` and supplies how to start, feed, poll and end one worker. The loop itself —
which worker gets the next job, when a dead worker is replaced, when a trial is over its limit,
when to give up on workers that cannot start — is written once, here.
"""

from __future__ import annotations

import collections
import dataclasses
import signal
import time
from typing import Any, Callable, Sequence

MAX_START_FAILURES = 3  # workers in a row that end before saying hello: give up on the jobs left


@dataclasses.dataclass(kw_only=True)
class Slot:
    """One worker as the dispatch loop sees it; engines subclass it with their handles."""

    index: int
    env: dict
    started: float
    hello: dict | None = None
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
    """Base of the worker pools. Subclasses set ``n``, ``on_event``, ``worker_facts`` and
    ``_start_failures`` and implement the hooks below; slots have ``index``, ``state``
    (``starting``/``idle``/``busy``/``dead``), ``hello``, ``job``, ``job_started``, ``deadline``."""

    n: int
    on_event: Callable[..., None]
    worker_facts: list[dict]
    _start_failures: int

    # ------------------------------------------------------------ hooks

    @property
    def _slots(self) -> Sequence[Any]:
        """Every worker slot started so far (dead ones included)."""
        raise NotImplementedError

    def _spawn(self) -> Any:
        """Starts one worker; returns its slot (state ``starting``)."""
        raise NotImplementedError

    def _send(self, slot: Any, job: dict, trial_timeout: float | None) -> None:
        """Gives ``job`` to an idle worker and sets ``slot.job``, ``job_started``, ``deadline``."""
        raise NotImplementedError

    def _poll(self, timeout: float, on_done) -> None:
        """Waits up to ``timeout`` s for hellos, replies and deaths; calls ``on_done`` per ended job."""
        raise NotImplementedError

    def _kill(self, slot: Any) -> None:
        """Ends a worker now and marks it dead."""
        raise NotImplementedError

    def _start_deadline(self, slot: Any) -> float:
        """When a starting worker that has not said hello counts as failed."""
        raise NotImplementedError

    def _start_failed(self, slot: Any, reason: str) -> None:
        """Records a worker that could not start (counts towards MAX_START_FAILURES)."""
        raise NotImplementedError

    def _tail(self, slot: Any) -> str:
        """The last lines the worker wrote, for an error record."""
        return ""

    def _error_extra(self, slot: Any) -> dict:
        """Engine-specific fields added to the error replies the pool makes (e.g. the node)."""
        return {}

    # ------------------------------------------------------------ the loop

    def run(
        self,
        jobs: list[dict],
        on_done: Callable[[dict, dict[str, Any]], None],
        trial_timeout: float | None = None,
    ) -> None:
        """Runs every job; calls ``on_done(job, reply)`` once per job as it ends.

        ``reply`` is the worker's ``result`` message, or an ``error`` message (``kind``,
        ``message``, ``exit_code``, ``signal``, ``stderr_tail``, ``wall_s``, ``worker``), from the
        worker for an exception or made by the pool for a crash, a timeout or a startup failure.
        The next job is sent only after ``on_done`` returned, so what it writes is on disk first.

        Args:
            jobs: Trial messages (see bench.engines.worker).
            on_done: Called once per job, in the order jobs end.
            trial_timeout: Seconds a trial may run before its worker is killed (None: no limit).
        """
        pending = collections.deque(jobs)
        while pending or any(s.job is not None for s in self._slots):
            for s in self._slots:
                if s.state == "idle" and pending:
                    self._send(s, pending.popleft(), trial_timeout)
            live = [s for s in self._slots if s.state != "dead"]
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
            for s in self._slots:
                if s.job is not None and now > s.deadline:
                    self._timeout(s, now, trial_timeout, on_done)

    def _check_startup_deadlines(self) -> None:
        now = time.perf_counter()
        for s in self._slots:
            if s.state == "starting" and now > self._start_deadline(s):
                self._kill(s)
                self._start_failed(s, f"no hello within {self.startup_timeout:g} s")

    def _timeout(self, slot: Any, now: float, trial_timeout: float | None, on_done) -> None:
        job = slot.job
        self._kill(slot)
        slot.job = None
        self.on_event("worker_died", worker=slot.index, reason=f"over the {trial_timeout:g} s trial time limit")
        on_done(
            job,
            {
                "type": "error",
                "kind": "timeout",
                "message": f"trial over its {trial_timeout:g} s time limit; worker killed",
                "exit_code": None,
                "signal": int(signal.SIGKILL),
                "stderr_tail": self._tail(slot),
                "wall_s": now - slot.job_started,
                "worker": slot.index,
                **self._error_extra(slot),
            },
        )

    def _give_up(self, pending: collections.deque, on_done) -> None:
        """No worker can be started: every job left becomes a ``startup`` error."""
        last = next((f for f in reversed(self.worker_facts) if "failed_to_start" in f), {})
        message = f"not run: {MAX_START_FAILURES} workers in a row failed to start ({last.get('failed_to_start', '?')})"
        while pending:
            on_done(
                pending.popleft(),
                {
                    "type": "error",
                    "kind": "startup",
                    "message": message,
                    "stderr_tail": last.get("stderr_tail", ""),
                    "wall_s": 0.0,
                    "worker": last.get("index", 0),
                },
            )

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()
        return False
