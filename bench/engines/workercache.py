"""Worker processes kept alive between strategy runs: start-up paid once per worker environment.

A worker's start-up (a fresh interpreter importing TensorFlow: 2.6-4.8 s, ~25 s of a quick suite
when every strategy started its own) depends only on its environment (thread caps, device
variables, ``KERAS_BACKEND``, everything :func:`bench.engines.childenv.child_env` sets) and its
device strategy. A :class:`WorkerCache` holds idle workers by that key; a local pool
(:class:`bench.engines.local.WorkerPool` with ``cache=``) takes matching ones before it starts new
processes, and gives its idle workers back when it closes. So the workloads of a suite share
their 1-process worker and their 2-process workers, a 2-process strategy with the same
per-worker environment as the 1-process one takes that worker and starts one more, and a sweep
that runs strategies A, B, A, B starts each pool once.

A reused worker carries no state into the next trial that changes its timing or results: the
worker clears the Keras session, drops what the backend keeps of the trial's traced functions and
collects garbage after every trial (:meth:`bench.engines.worker.TrialRunner.reset`), a worker given
back drops its workload modules before it is lent again, every trial is seeded as before, and a worker
whose RSS after a trial is over :attr:`WorkerCache.max_rss_bytes` is ended and replaced (its
worker fact says ``restarted``). Start-up is recorded once, in the run whose pool started (or
first took) the worker; later runs record it as ``reused``.

:meth:`WorkerCache.prestart` starts workers ahead, while the parent fingerprints the machine,
loads data and writes the run header; a pool's ``start`` waits for every worker the cache is
still starting (:meth:`settle`) so no import runs while trials are timed. The sampler watches only
the pool's workers (their pids), never the idle ones held here.

The owner (a suite, or a single sweep) closes the cache at the end, on errors and on Ctrl-C:
every held worker is ended (idle ones are asked to quit first). Workers also die with their
parent (``PR_SET_PDEATHSIG``), so none is left behind even if the parent is killed.
"""

from __future__ import annotations

import dataclasses
import os
import selectors
import signal
import tempfile
import time
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from bench.engines.dispatch import STARTUP_TIMEOUT_S
from bench.engines.local import _Worker, kill_worker, quit_workers, read_pipe, spawn_worker
from bench.engines.worker import FORGOTTEN
from bench.model import results
from bench.model.reply import Hello

MiB = 2**20
#: Default RSS limit of a worker after a trial (``--worker-max-rss``): a TensorFlow worker starts at
#: ~0.6-1 GiB, and no longer grows with every model trained (TrialRunner.reset). 0 turns the limit off.
DEFAULT_MAX_RSS_MB = 4096
#: Seconds a worker given back may take to drop its last run's workload state (``forgotten``).
FORGET_TIMEOUT_S = 60.0


def cache_key(env: Mapping[str, str], device: str) -> tuple:
    """What makes two workers interchangeable: their whole environment and their device strategy.

    Args:
        env: The worker's environment.
        device: Its device strategy name.
    """
    return (str(device), tuple(sorted((str(k), str(v)) for k, v in env.items())))


class WorkerCache:
    """Idle (and prestarted) local workers, by environment and device; the owner closes it.

    Args:
        max_rss_bytes: A worker whose RSS after a trial is above this is restarted (0: never).
        startup_timeout: Seconds a prestarted worker may take to say hello.
        max_idle: At most this many idle workers are kept (the oldest idle one is ended first).
    """

    def __init__(self, max_rss_bytes: int = DEFAULT_MAX_RSS_MB * MiB, startup_timeout: float = STARTUP_TIMEOUT_S,
                 max_idle: int = 16):
        self.max_rss_bytes = int(max_rss_bytes or 0)
        self.startup_timeout = startup_timeout
        self.max_idle = max_idle
        self._tmp = tempfile.TemporaryDirectory(prefix="xpubench-workers-")
        self.log_dir = Path(self._tmp.name)
        self.held: list[_Worker] = []  # not in any pool: idle (said hello) or still starting (prestarted)
        self.started = 0  # processes this cache started, in all
        self.failed: list[dict] = []  # prestarted workers that never said hello (a pool then starts its own)
        self._sel = selectors.DefaultSelector()
        self._closed = False

    # ------------------------------------------------------------ starting

    def spawn(self, env: dict, device: str, index: int = 0, startup_timeout: float | None = None) -> _Worker:
        """Starts a worker for a pool (its log in this cache's directory, so it outlives the pool).

        Args:
            env: Its environment.
            device: Its device strategy.
            index: Its index in the pool.
            startup_timeout: Seconds it may take to say hello (default: the cache's).
        """
        self.started += 1
        log_path = self.log_dir / f"worker-{self.started}.log"
        return spawn_worker(env, device, log_path, index, startup_timeout or self.startup_timeout)

    def prestart(self, wanted: Iterable[tuple[Mapping[str, str], str]]) -> int:
        """Starts the workers a coming strategy needs, unless matching ones are held already.

        Args:
            wanted: ``(env, device)`` of each worker (one entry per worker: two equal entries
                want two workers).

        Returns:
            How many were started.
        """
        if self._closed:
            return 0
        have: dict[tuple, int] = {}
        for w in self.held:
            k = cache_key(w.env, w.device)
            have[k] = have.get(k, 0) + 1
        n = 0
        for env, device in wanted:
            k = cache_key(env, device)
            if have.get(k, 0) > 0:
                have[k] -= 1
                continue
            w = self.spawn(dict(env), device)
            w.prestarted = True
            self._hold(w)
            n += 1
        return n

    # ------------------------------------------------------------ lending

    def take(self, env: Mapping[str, str], device: str) -> _Worker | None:
        """A held worker with this environment and device (an idle one first), removed from the
        cache, or None.

        Args:
            env: The environment wanted.
            device: The device strategy wanted.
        """
        self.poll(0.0)  # deaths and hellos so far
        ended = [w for w in self.held if w.proc.poll() is not None]  # died while idle (its EOF not read yet)
        if ended:
            self._drop(ended, "worker ended while idle")
        k = cache_key(env, device)
        matches = [w for w in self.held if not w.dead and cache_key(w.env, w.device) == k]
        if not matches:
            return None
        w = min(matches, key=lambda w: w.hello is None)  # an idle one before one still starting
        if w.forgetting:  # its next line is ``forgotten``, not a pool's reply: read it here first
            self.settle()
            if w not in self.held:  # it died or never finished forgetting: dropped
                return self.take(env, device)
        self._release(w)
        return w

    def give_back(self, w: _Worker) -> bool:
        """Keeps an idle worker for a later pool; False when it is not kept (the pool ends it).

        Not kept: the cache is closed, the worker is dead, busy, never said hello, has something
        unread on its pipe, or is over the RSS limit (checked by the pool after every trial). A kept
        worker is sent ``forget``: it drops its workload modules (re-imported by the next trial) and
        clears the Keras session, then answers ``forgotten``; until then it is not lent, and
        :meth:`settle` (which every pool's start calls) waits for it, so its clean-up never runs
        while the next strategy's trials are timed.
        """
        if self._closed or w.dead or w.job is not None or w.hello is None or w.buffer.strip():
            return False
        if w.proc.poll() is not None:
            return False
        try:  # the next run gets none of this run's workload state (data, models): dropped while it idles
            w.proc.stdin.write(results.message_line({"type": "forget"}).encode() + b"\n")
            w.proc.stdin.flush()
        except (OSError, ValueError):  # it died meanwhile: not kept
            return False
        w.forgetting = True
        w.forget_deadline = time.perf_counter() + FORGET_TIMEOUT_S
        self._hold(w)
        idle = [x for x in self.held if x.hello is not None]
        while len(idle) > self.max_idle:
            oldest = idle.pop(0)
            self._end([oldest])
        return True

    # ------------------------------------------------------------ watching what is held

    def settle(self, timeout: float | None = None) -> None:
        """Waits until no held worker is busy: none still starting (each says hello, dies, or runs
        out of time) and none still forgetting its last run (each says ``forgotten``, dies, or is
        dropped after :data:`FORGET_TIMEOUT_S`), so nothing a held worker does runs while a pool's
        trials are timed.

        Args:
            timeout: Seconds to wait at most for starting workers (default: the start-up timeout).
        """
        end = time.perf_counter() + (self.startup_timeout if timeout is None else timeout)
        while any(w.hello is None or w.forgetting for w in self.held):
            self.poll(0.5)
            now = time.perf_counter()
            late = [w for w in self.held if w.hello is None and now > min(end, w.start_deadline)]
            if late:
                self._drop(late, f"no hello within {self.startup_timeout:g} s")
            stuck = [w for w in self.held if w.forgetting and now > w.forget_deadline]
            if stuck:
                self._drop(stuck, f"no forgotten within {FORGET_TIMEOUT_S:g} s")

    def poll(self, timeout: float = 0.0) -> None:
        """Reads what held workers sent: a prestarted worker's hello (its ``startup_s`` measured
        here), a given-back worker's ``forgotten``, or the end of its pipe (it died: dropped)."""
        if not self.held:
            return
        for key, _ in self._sel.select(timeout):
            w: _Worker = key.data
            chunk = read_pipe(w)
            if chunk is None:
                continue
            if not chunk:
                self._drop([w], "worker ended while idle")
                continue
            w.buffer += chunk
            while b"\n" in w.buffer:
                line, w.buffer = w.buffer.split(b"\n", 1)
                if not line.strip():
                    continue
                try:
                    msg = results.read_message(line)
                    if w.forgetting and msg == FORGOTTEN:
                        w.forgetting = False
                        continue
                    hello = Hello.from_message(msg)
                except (KeyError, TypeError, ValueError):  # anything but a hello or forgotten from a held worker
                    self._drop([w], f"unexpected message {line[:80]!r}")
                    break
                w.hello = dataclasses.replace(hello, startup_s=time.perf_counter() - w.started)

    @property
    def idle_pids(self) -> list[int]:
        """Process ids of the workers held here (not in any pool)."""
        return [w.proc.pid for w in self.held if not w.dead]

    def counts(self) -> dict[str, int]:
        """``started`` (processes started by this cache), ``held`` (idle or starting now)."""
        return {"started": self.started, "held": len(self.held)}

    # ------------------------------------------------------------ ending

    def evict(self, keep: Sequence[tuple] = ()) -> int:
        """Ends held workers (to free their memory), except those whose key is in ``keep``.

        Args:
            keep: :func:`cache_key` values to keep.

        Returns:
            How many were ended.
        """
        gone = [w for w in self.held if cache_key(w.env, w.device) not in set(keep)]
        self._end(gone)
        return len(gone)

    def close(self) -> None:
        """Ends every held worker (idle ones are asked to quit first); safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._end(list(self.held))
        self._sel.close()
        self._tmp.cleanup()

    def __enter__(self) -> "WorkerCache":
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    # ------------------------------------------------------------ pieces

    def _hold(self, w: _Worker) -> None:
        self.held.append(w)
        self._sel.register(w.fd, selectors.EVENT_READ, w)

    def _release(self, w: _Worker) -> None:
        self.held.remove(w)
        try:
            self._sel.unregister(w.fd)
        except (KeyError, ValueError):  # not registered: nothing to forget
            pass

    def _end(self, workers: list[_Worker]) -> None:
        """Ends workers all at once: ``quit`` to the idle ones, then SIGKILL to every one (an idle
        worker has nothing to save), then each is waited for (a TensorFlow process takes ~0.1 s to
        die; waiting one after the other would add that up)."""
        for w in workers:
            self._release(w)
        quit_workers([w for w in workers if w.hello is not None and not w.dead], 0.0)
        for w in workers:
            if w.proc.poll() is None:
                try:
                    os.killpg(w.proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):  # gone, or not our group: kill_worker tries the process
                    pass
        for w in workers:
            kill_worker(w)

    def _drop(self, workers: list[_Worker], reason: str) -> None:
        for w in workers:
            self.failed.append({"pid": w.proc.pid, "reason": reason, "prestarted": w.prestarted})
        self._end(workers)
