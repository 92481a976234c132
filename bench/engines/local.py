"""A pool of long-lived worker processes that run trials one at a time each.

Workers are started with ``subprocess`` (fork+exec: a fresh interpreter, like multiprocessing's
``spawn``), so no process that has imported TensorFlow is ever forked. Each worker gets its own
environment (threads, devices) before it imports TensorFlow, stays alive for the whole sweep, and
answers over a private pipe in JSON lines. A worker that dies or overruns its time limit becomes
a failed trial; a replacement is started while trials remain.

Whatever happens to a worker, every job gets exactly one ``on_done`` call with a
:class:`bench.model.reply.TrialReply`: the worker's ``result`` or ``error`` reply, or an ``error``
the pool makes: ``crash`` (killed by a signal or
exited), ``timeout`` (over the trial time limit; the pool killed it), ``protocol`` (a reply that
is not JSON) or ``startup`` (no worker could be started to run it).
"""

from __future__ import annotations

import dataclasses
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

from bench.engines.dispatch import Dispatcher, OnDone, Slot
from bench.errors import WorkerStartError
from bench.model import results
from bench.model.reply import Hello, TrialReply

QUIT_GRACE_S = 0.1  # idle workers have sent every result: TensorFlow's ~1.5 s teardown is not worth waiting for
KILL_WAIT_S = 30.0  # a SIGKILLed process that has not ended by then is stuck in the kernel (I/O, a driver)


@dataclasses.dataclass(kw_only=True)
class _Worker(Slot):
    proc: subprocess.Popen
    fd: int
    log_path: Path
    start_deadline: float = float("inf")
    buffer: bytes = b""
    device: str = "cpu"
    leases: int = 0  # pools (strategy runs) this process has served, this one included
    trials_done: int = 0  # trials it has run, in every pool
    prestarted: bool = False  # started ahead of its first pool (bench.engines.workercache)
    forgetting: bool = False  # sent ``forget`` by the cache, its ``forgotten`` not read yet
    forget_deadline: float = float("inf")  # when a worker still forgetting is dropped


def spawn_worker(env: dict, device: str, log_path: Path, index: int = 0, startup_timeout: float = 600.0) -> _Worker:
    """Starts one worker process (``python -m bench.engines.worker FD DEVICE``); it has not said hello yet.

    Args:
        env: Its full environment (bench.engines.childenv.child_env).
        device: Device strategy name passed to it.
        log_path: Where its stdout and stderr go.
        index: Its index in the pool that starts it.
        startup_timeout: Seconds it may take to say hello.
    """
    r, w = os.pipe()
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.engines.worker", str(w), device],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                pass_fds=(w,),
                start_new_session=True,  # Ctrl-C reaches the parent only; it ends the workers
                close_fds=True,
            )
    except BaseException:  # clean-up only: the error goes on to the caller
        os.close(r)
        raise
    finally:
        os.close(w)
    os.set_blocking(r, False)
    now = time.perf_counter()
    return _Worker(index=index, proc=proc, fd=r, log_path=log_path, env=env, started=now,
                   start_deadline=now + startup_timeout, device=device)


def read_pipe(w: _Worker) -> bytes | None:
    """What a worker's result pipe holds now: bytes, ``b""`` at its end (the worker died), or None
    when nothing is ready yet (the pipe is non-blocking).

    Args:
        w: The worker.
    """
    try:
        return os.read(w.fd, 65536)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def quit_workers(workers: list, grace: float = 0.1) -> None:
    """Asks idle workers to quit (``quit`` on stdin, then EOF) and waits up to ``grace`` s in all.

    Args:
        workers: Idle workers (said hello, no job).
        grace: Seconds they get; the caller kills the ones still alive.
    """
    for w in workers:
        try:
            w.proc.stdin.write(results.message_line({"type": "quit"}).encode() + b"\n")
            w.proc.stdin.flush()
            w.proc.stdin.close()
        except (OSError, ValueError):  # it died meanwhile: the caller kills and checks it
            pass
    deadline = time.perf_counter() + grace
    for w in workers:
        try:
            w.proc.wait(timeout=max(0.0, deadline - time.perf_counter()))
        except subprocess.TimeoutExpired:  # did not quit in time: the caller kills it
            pass


def kill_worker(w: _Worker, on_stuck: Any = None) -> None:
    """Ends a worker (its whole process group) with SIGKILL, waits for it, closes its pipes; marks it dead.

    SIGKILL at once, not SIGTERM first: a worker is ended only when it overran its limit, sent
    garbage, or did not quit when asked, and TensorFlow has nothing to save.

    Args:
        w: The worker.
        on_stuck: ``on_stuck(w, reason)`` when it is still alive :data:`KILL_WAIT_S` after SIGKILL.
    """
    if w.proc.poll() is None:
        try:
            os.killpg(w.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):  # the group is gone or not ours: the process itself
            w.proc.kill()
        try:
            w.proc.wait(timeout=KILL_WAIT_S)
        except subprocess.TimeoutExpired:  # pragma: no cover - a process SIGKILL cannot end
            if on_stuck is not None:
                on_stuck(w, f"pid {w.proc.pid} still alive {KILL_WAIT_S:g} s after SIGKILL")
    if not w.dead:
        w.dead = True
        try:
            os.close(w.fd)
        except OSError:  # already closed: nothing to release
            pass
        try:
            w.proc.stdin.close()
        except (OSError, ValueError):  # flushing to a dead worker's pipe (BrokenPipeError): it is gone anyway
            pass


def stderr_tail(path: Path, lines: int = 12, limit: int = 2000) -> str:
    """The last lines a worker wrote (its log), trimmed for a result file.

    Args:
        path: The worker's log (its stdout and stderr).
        lines: At most this many lines.
        limit: At most this many characters.
    """
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16384))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])[-limit:]


def end_processes(procs: list, wait: float = 5.0, grace: float = 2.0) -> dict[int, str]:
    """Makes sure processes have ended: waits for them, then SIGTERM, then SIGKILL, and checks.

    Args:
        procs: ``psutil.Process`` objects (each remembers its process's start time, so a pid
            reused by another process is never signalled).
        wait: Seconds they get to end on their own (they were already asked to).
        grace: Seconds after SIGTERM, and again after SIGKILL, before they count as not ended.

    Returns:
        ``{pid: how}`` for every process: ``ended`` (on its own), ``SIGTERM``, ``SIGKILL`` (what
        ended it), or ``alive: <why>`` for one still running (not ours to signal, or stuck).
    """
    import psutil

    how: dict[int, str] = {}
    _, alive = psutil.wait_procs(procs, timeout=wait)
    alive = [p for p in alive if not _zombie(p)]  # ended, not yet reaped by its parent (Ray's raylet)
    for sig_name, send in (("SIGTERM", "terminate"), ("SIGKILL", "kill")):
        for proc in alive:
            try:
                getattr(proc, send)()
            except psutil.NoSuchProcess:  # it ended meanwhile: counted as ended below
                pass
            except psutil.AccessDenied:
                how[proc.pid] = f"alive: not allowed to send it {sig_name}"
            else:
                how[proc.pid] = sig_name
        _, alive = psutil.wait_procs([p for p in alive if not how.get(p.pid, "").startswith("alive")], timeout=grace)
        alive = [p for p in alive if not _zombie(p)]
        if not alive:
            break
    for proc in alive:
        how[proc.pid] = "alive: still running after SIGKILL"
    return {proc.pid: how.get(proc.pid, "ended") for proc in procs}


def _zombie(proc) -> bool:
    import psutil

    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:  # reaped meanwhile: ended
        return True
    except psutil.AccessDenied:  # cannot tell: counted as alive
        return False


def describe_exit(returncode: int | None) -> tuple[str, int | None, int | None]:
    """(message, exit_code, signal) for a worker that ended.

    Args:
        returncode: ``Popen.returncode`` (negative: killed by that signal).
    """
    if returncode is None:
        return "worker ended", None, None
    if returncode < 0:
        sig = -returncode
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        hint = " (the kernel's out-of-memory killer sends this when RAM runs out)" if sig == signal.SIGKILL else ""
        return f"worker killed by {name}{hint}", None, sig
    return f"worker exited with status {returncode}", returncode, None


class WorkerPool(Dispatcher):
    """N workers under one strategy.

    Args:
        n: Number of worker processes.
        env_for: ``env_for(index) -> dict``: the full environment of worker ``index``.
        device: Device spec passed to each worker (``cpu``, ``gpu:0``, ``mirrored``...).
        log_dir: Where worker logs go (default: a temporary directory, removed by ``close``).
        on_event: ``on_event(kind, **info)`` for progress (``worker_ready``, ``worker_died``,
            ``worker_restart``).
        startup_timeout: Seconds a worker may take to import TensorFlow and say hello.
        cache: A :class:`bench.engines.workercache.WorkerCache`: workers are taken from it (one
            whose environment and device match) before new ones are started, and idle ones are
            given back to it by :meth:`close` instead of ended (None: every worker is this pool's).
        max_rss_bytes: A worker whose RSS after a trial is above this is ended and, while trials
            remain, replaced; recorded as ``restarted`` in its worker fact (None: the cache's
            limit, or none; 0: no limit).
    """

    uses_cache: ClassVar[bool] = True  # the sweep hands it a WorkerCache (bench.engines.workercache)
    slots: list[_Worker]
    log_dir: Path
    sel: selectors.BaseSelector

    def __init__(self, *args: Any, cache: Any = None, max_rss_bytes: int | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)  # the arguments of Dispatcher (see the class's Args)
        self.cache = cache
        if max_rss_bytes is None and cache is not None:
            max_rss_bytes = cache.max_rss_bytes
        self.max_rss_bytes = int(max_rss_bytes or 0)
        self.restarts = 0
        if cache is not None and not self.log_dir:
            self.log_dir = cache.log_dir  # a reused worker's log outlives this pool
        self._tmp = None if self.log_dir else tempfile.TemporaryDirectory(prefix="xpubench-logs-")
        self.log_dir = Path(self.log_dir or self._tmp.name)
        self.sel = selectors.DefaultSelector()

    # ------------------------------------------------------------ lifecycle

    def _spawn(self) -> _Worker:
        index = self._take_index()
        env = self.env_for(index)
        worker = self.cache.take(env, self.device) if self.cache is not None else None
        if worker is not None:
            return self._adopt(worker, index)
        if self.cache is not None:
            worker = self.cache.spawn(env, self.device, index, self.startup_timeout)
        else:
            worker = spawn_worker(env, self.device, self.log_dir / f"worker-{index}.log", index, self.startup_timeout)
        worker.leases = 1
        self.sel.register(worker.fd, selectors.EVENT_READ, worker)
        self.slots.append(worker)
        return worker

    def _adopt(self, w: _Worker, index: int) -> _Worker:
        """Takes a worker from the cache as worker ``index`` of this pool.

        A worker that said hello before is recorded at once: in its first pool with its
        ``startup_s`` (it was started ahead, while the parent did other work), in a later one as
        ``reused`` (no ``startup_s``: a start-up is recorded once, in the run that paid it). A
        worker still starting says hello to this pool (its ``startup_s`` counts from its start).
        """
        w.index = index
        w.leases += 1
        self.sel.register(w.fd, selectors.EVENT_READ, w)
        self.slots.append(w)
        if w.hello is None:
            return w
        w.hello = dataclasses.replace(w.hello, index=index)
        fact = w.hello.as_message()
        if w.leases == 1:
            fact.update(reused=False, prestarted=True)
        else:
            fact.pop("startup_s", None)
            fact.update(reused=True, trials_before=w.trials_done)
        self.worker_facts.append(fact)
        self.on_event("worker_ready", worker=index, startup_s=w.hello.startup_s if w.leases == 1 else 0.0,
                      reused=w.leases > 1)
        return w

    def _ready(self, slot: Any, hello: Hello) -> Hello:
        hello = super()._ready(slot, hello)
        if self.cache is not None:
            self.worker_facts[-1].update(reused=False, **({"prestarted": True} if slot.prestarted else {}))
        return hello

    def start(self) -> None:
        """Starts n workers at once and waits until they have imported TensorFlow.

        Workers that die or miss the startup time limit are recorded in ``worker_facts``
        (``failed_to_start``); the pool goes on with the others.

        Raises:
            WorkerStartError: no worker could start (the message has the last one's stderr tail).
        """
        for _ in range(self.n):
            self._spawn()
        while any(w.state == "starting" for w in self.slots):
            self._poll(0.5, on_done=None)
            self._check_startup_deadlines()
        if self.cache is not None:  # workers started ahead for later strategies: imported before anything is timed
            self.cache.settle()
        if not any(w.state != "dead" for w in self.slots):
            w = self.slots[-1]
            fact = next((f for f in reversed(self.worker_facts) if f.get("index") == w.index), {})
            reason = fact.get("failed_to_start") or describe_exit(w.proc.returncode)[0]
            raise WorkerStartError(f"no worker could start ({reason}): {stderr_tail(w.log_path, 4)}")

    def close(self) -> None:
        """Gives idle workers back to the cache (if any), asks the other idle ones to quit, kills
        the rest and any that do not quit in time. Safe to call twice."""
        if self._closed:
            return
        idle = [w for w in self.slots if not w.dead and w.job is None and w.hello is not None]
        if self.cache is not None:
            for w in idle:
                self._forget(w)
            kept = [w for w in idle if self.cache.give_back(w)]
            idle = [w for w in idle if w not in kept]
            self.slots = [w for w in self.slots if w not in kept]
        quit_workers(idle, QUIT_GRACE_S)
        for w in self.slots:
            self._kill(w)
        self._closed = True
        self.sel.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def _forget(self, w: _Worker) -> None:
        """Stops watching a worker's pipe (it dies, or goes back to the cache)."""
        try:
            self.sel.unregister(w.fd)
        except (KeyError, ValueError):  # never registered, or the selector is closed: nothing to forget
            pass

    def _kill(self, w: _Worker) -> None:
        """Ends a worker (:func:`kill_worker`) and forgets its pipe. A worker still alive
        :data:`KILL_WAIT_S` after SIGKILL is recorded (``not_ended`` in its worker fact, a
        ``worker_not_ended`` event, a warning), since it would steal CPU from the next timing."""
        if not w.dead:
            self._forget(w)
        kill_worker(w, on_stuck=self._not_ended)

    def _retire(self, w: _Worker, reply: TrialReply) -> None:
        """Ends a worker whose RSS after a trial is over the limit; recorded in its fact (``restarted``).

        The dispatch loop starts a replacement while trials remain (a new process, whose start-up
        is recorded as any other's).
        """
        self.restarts += 1
        self._fact(w)["restarted"] = {
            "reason": "rss over the worker memory limit (--worker-max-rss)", "rss_bytes": int(reply.rss_bytes or 0),
            "limit_bytes": self.max_rss_bytes, "after_trial": reply.id, "trials_done": w.trials_done,
        }
        self.on_event("worker_restart", worker=w.index, rss_bytes=int(reply.rss_bytes or 0),
                      limit_bytes=self.max_rss_bytes)
        quit_workers([w], QUIT_GRACE_S)
        self._kill(w)

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        return [w.proc.pid for w in self.slots if not w.dead]

    # ------------------------------------------------------------ Dispatcher hooks

    def _start_deadline(self, w: _Worker) -> float:
        return w.start_deadline

    def _tail(self, w: _Worker) -> str:
        return stderr_tail(w.log_path)

    def _deliver(self, w: _Worker, job: dict) -> None:
        try:
            w.proc.stdin.write((results.message_line(job) + "\n").encode())
            w.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # the death is seen as EOF on its pipe

    # ------------------------------------------------------------ replies

    def _poll(self, timeout: float, on_done: OnDone | None) -> None:
        for key, _ in self.sel.select(timeout):
            w: _Worker = key.data
            if w.dead:
                continue
            chunk = read_pipe(w)
            if chunk is None:
                continue
            if not chunk:
                self._on_eof(w, on_done)
                continue
            w.buffer += chunk
            while b"\n" in w.buffer and not w.dead:
                line, w.buffer = w.buffer.split(b"\n", 1)
                if not line.strip():
                    continue
                try:
                    msg = results.read_message(line)
                    record = Hello.from_message(msg) if msg.get("type") == "hello" else TrialReply.from_message(msg)
                except (KeyError, TypeError, ValueError):  # not JSON, not an object, not a reply of the protocol
                    self._on_garbage(w, line, on_done)
                    break
                if isinstance(record, Hello):
                    self._ready(w, record)
                    continue
                w.trials_done += 1
                self._finish(w, record, on_done)
                if self.max_rss_bytes and (record.rss_bytes or 0) > self.max_rss_bytes and not w.dead:
                    self._retire(w, record)

    def _on_garbage(self, w: _Worker, line: bytes, on_done: OnDone | None) -> None:
        """A reply that is not a JSON object of the protocol: the worker cannot be trusted any more."""
        self._kill(w)
        text = line[:120].decode("utf-8", "replace")
        self.on_event("worker_died", worker=w.index, reason="sent a reply that is not JSON")
        if w.hello is None:  # it never had a job
            self._start_failed(w, f"bad hello {text!r}")
            return
        self._finish(w, TrialReply.failure(
            "protocol", f"worker sent a reply that is not a JSON object: {text!r}", stderr_tail=stderr_tail(w.log_path),
        ), on_done)

    def _on_eof(self, w: _Worker, on_done: OnDone | None) -> None:
        try:
            w.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # its pipe closed but it lives on: _kill ends it
            pass
        returncode = w.proc.poll()
        self._kill(w)
        message, exit_code, sig = describe_exit(returncode)
        if w.hello is None:  # it never had a job
            self._start_failed(w, message)
            return
        self.on_event("worker_died", worker=w.index, reason=message)
        self._finish(w, TrialReply.failure(
            "crash", message, exit_code=exit_code, signal=sig, stderr_tail=stderr_tail(w.log_path),
        ), on_done)
