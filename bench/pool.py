"""A pool of long-lived worker processes that run trials one at a time each.

Workers are started with ``subprocess`` (fork+exec: a fresh interpreter, like multiprocessing's
``spawn``), so no process that has imported TensorFlow is ever forked. Each worker gets its own
environment (threads, devices) before it imports TensorFlow, stays alive for the whole sweep, and
answers over a private pipe in JSON lines. A worker that dies or overruns its time limit becomes
a failed trial; a replacement is started while trials remain.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

STARTUP_TIMEOUT_S = 600.0


@dataclasses.dataclass
class _Worker:
    index: int
    proc: subprocess.Popen
    fd: int
    log_path: Path
    env: dict
    started: float
    hello: dict | None = None
    job: dict | None = None
    job_started: float = 0.0
    deadline: float = float("inf")
    buffer: bytes = b""
    dead: bool = False

    @property
    def state(self) -> str:
        if self.dead:
            return "dead"
        if self.hello is None:
            return "starting"
        return "busy" if self.job is not None else "idle"


def stderr_tail(path: Path, lines: int = 12, limit: int = 2000) -> str:
    """The last lines a worker wrote (its log), trimmed for a result file."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16384))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])[-limit:]


def describe_exit(returncode: int | None) -> tuple[str, int | None, int | None]:
    """(message, exit_code, signal) for a worker that ended."""
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


class WorkerPool:
    """N workers under one strategy.

    Args:
        n: Number of worker processes.
        env_for: ``env_for(index) -> dict``: the full environment of worker ``index``.
        device: Device spec passed to each worker (``cpu``, ``gpu:0``, ``mirrored``...).
        log_dir: Where worker logs go (default: a temporary directory).
        on_event: ``on_event(kind, **info)`` for progress (``worker_ready``, ``worker_died``).
    """

    def __init__(
        self,
        n: int,
        env_for: Callable[[int], dict],
        device: str = "cpu",
        log_dir: str | os.PathLike | None = None,
        on_event: Callable[..., None] | None = None,
    ):
        self.n = n
        self.env_for = env_for
        self.device = device
        self._tmp = None if log_dir else tempfile.TemporaryDirectory(prefix="xpubench-logs-")
        self.log_dir = Path(log_dir or self._tmp.name)
        self.on_event = on_event or (lambda kind, **info: None)
        self.sel = selectors.DefaultSelector()
        self.workers: list[_Worker] = []
        self.worker_facts: list[dict] = []
        self._next_index = 0

    # ------------------------------------------------------------ lifecycle

    def _spawn(self) -> _Worker:
        index = self._next_index
        self._next_index += 1
        env = self.env_for(index)
        r, w = os.pipe()
        log_path = self.log_dir / f"worker-{index}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.worker", str(w), self.device],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                pass_fds=(w,),
                start_new_session=True,  # Ctrl-C reaches the parent only; it ends the workers
                close_fds=True,
            )
        os.close(w)
        os.set_blocking(r, False)
        worker = _Worker(index=index, proc=proc, fd=r, log_path=log_path, env=env, started=time.perf_counter())
        self.sel.register(r, selectors.EVENT_READ, worker)
        self.workers.append(worker)
        return worker

    def start(self) -> None:
        """Starts n workers at once and waits until all have imported TensorFlow."""
        for _ in range(self.n):
            self._spawn()
        deadline = time.perf_counter() + STARTUP_TIMEOUT_S
        while any(w.state == "starting" for w in self.workers):
            if time.perf_counter() > deadline:
                raise RuntimeError("workers did not start within %.0f s" % STARTUP_TIMEOUT_S)
            self._poll(0.5, on_done=None)
        alive = [w for w in self.workers if not w.dead]
        if not alive:
            w = self.workers[-1]
            msg, _, _ = describe_exit(w.proc.returncode)
            raise RuntimeError(f"no worker could start ({msg}): {stderr_tail(w.log_path, 4)}")

    def close(self) -> None:
        """Asks idle workers to quit; kills the rest. Safe to call twice."""
        for w in self.workers:
            if w.dead:
                continue
            try:
                if w.job is None and w.hello is not None:
                    w.proc.stdin.write(b'{"type": "quit"}\n')
                    w.proc.stdin.flush()
                    w.proc.stdin.close()
                    w.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                pass
            self._kill(w)
        self.sel.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def _kill(self, w: _Worker) -> None:
        if w.proc.poll() is None:
            try:
                os.killpg(w.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                w.proc.kill()
            w.proc.wait()
        if not w.dead:
            w.dead = True
            try:
                self.sel.unregister(w.fd)
            except (KeyError, ValueError):
                pass
            os.close(w.fd)
            for stream in (w.proc.stdin,):
                try:
                    stream.close()
                except Exception:
                    pass

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self.workers if not w.dead]

    # ------------------------------------------------------------ running

    def run(
        self,
        jobs: list[dict],
        on_done: Callable[[dict, dict[str, Any]], None],
        trial_timeout: float | None = None,
    ) -> None:
        """Runs every job; calls ``on_done(job, reply)`` once per job as it ends, in the parent.

        ``reply`` is the worker's ``result`` message, or an ``error`` message the pool made for a
        crash or a timeout (``kind``, ``message``, ``exit_code``, ``signal``, ``stderr_tail``).
        """
        pending = collections.deque(jobs)
        while pending or any(w.job is not None for w in self.workers):
            for w in self.workers:
                if w.state == "idle" and pending:
                    self._send(w, pending.popleft(), trial_timeout)
            live = [w for w in self.workers if not w.dead]
            while pending and len(live) < min(self.n, len(pending) + sum(w.job is not None for w in live)):
                live.append(self._spawn())  # replaces a worker that died
            now = time.perf_counter()
            next_deadline = min((w.deadline for w in live), default=float("inf"))
            self._poll(max(0.0, min(0.5, next_deadline - now)), on_done)
            now = time.perf_counter()
            for w in self.workers:
                if w.job is not None and now > w.deadline:
                    job = w.job
                    self._kill(w)
                    w.job = None
                    on_done(
                        job,
                        {
                            "type": "error",
                            "kind": "timeout",
                            "message": f"trial over its {trial_timeout:g} s limit; worker ended",
                            "stderr_tail": stderr_tail(w.log_path),
                            "wall_s": now - w.job_started,
                            "worker": w.index,
                        },
                    )
                    self.on_event("worker_died", worker=w.index, reason="timeout")

    def _send(self, w: _Worker, job: dict, trial_timeout: float | None) -> None:
        w.job = job
        w.job_started = time.perf_counter()
        w.deadline = w.job_started + trial_timeout if trial_timeout else float("inf")
        try:
            w.proc.stdin.write((json.dumps(job) + "\n").encode())
            w.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the death is seen as EOF on its pipe

    def _poll(self, timeout: float, on_done) -> None:
        for key, _ in self.sel.select(timeout):
            w: _Worker = key.data
            try:
                chunk = os.read(w.fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                self._on_eof(w, on_done)
                continue
            w.buffer += chunk
            while b"\n" in w.buffer:
                line, w.buffer = w.buffer.split(b"\n", 1)
                if line.strip():
                    self._on_message(w, json.loads(line), on_done)

    def _on_message(self, w: _Worker, msg: dict, on_done) -> None:
        if msg.get("type") == "hello":
            msg["startup_s"] = time.perf_counter() - w.started
            msg["index"] = w.index
            w.hello = msg
            self.worker_facts.append(msg)
            self.on_event("worker_ready", worker=w.index, startup_s=msg["startup_s"])
            return
        job, w.job, w.deadline = w.job, None, float("inf")
        if job is None or on_done is None:
            return
        msg["worker"] = w.index
        on_done(job, msg)

    def _on_eof(self, w: _Worker, on_done) -> None:
        job = w.job
        try:
            w.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        returncode = w.proc.poll()
        self._kill(w)
        w.job = None
        message, exit_code, sig = describe_exit(returncode)
        self.on_event("worker_died", worker=w.index, reason=message)
        if job is not None and on_done is not None:
            on_done(
                job,
                {
                    "type": "error",
                    "kind": "crash",
                    "message": message,
                    "exit_code": exit_code,
                    "signal": sig,
                    "stderr_tail": stderr_tail(w.log_path),
                    "wall_s": time.perf_counter() - w.job_started,
                    "worker": w.index,
                },
            )
        elif w.hello is None:
            self.worker_facts.append(
                {"index": w.index, "failed_to_start": message, "stderr_tail": stderr_tail(w.log_path)}
            )
