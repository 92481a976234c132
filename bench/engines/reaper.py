"""Ends the processes of a private local Ray, and removes its directory, when its starter ends.

Ray ties its core processes (GCS, raylet, monitor, log monitor, API server) to the process that
called ``ray.init`` with a parent-death signal, but the raylet's own children, the dashboard agent
and the runtime-env agent, outlive a SIGKILLed starter by about a minute (they notice the raylet
is gone, then wait on a GCS that is gone too), and the session directory stays. Ray 2.x has no
option to start no dashboard agent (its raylet refuses an empty agent command).

So :func:`start` launches this file as a tiny watchdog: a fresh interpreter (``python -I``, the
standard library only, nothing of xpubench or Ray imported) in its own session, whose stdin is the
read end of a pipe only the starter holds. The starter writes ``PID START_TICKS`` lines for the
Ray processes it sees (:func:`ray_processes`). When the pipe closes, because the starter shut Ray
down or died (even by SIGKILL: the kernel closes its descriptors), the watchdog

1. SIGKILLs every listed process that is still the same process (same start time, so a reused
   pid is left alone), and every process whose environment carries the session's token
   (``XPUBENCH_RAY_SESSION``, set only while ``ray.init`` starts Ray, so only that Ray's processes
   and the workers its raylet starts inherit it); twice, a moment apart;
2. removes the session's temporary directory (``ray.init(_temp_dir=...)``);
3. exits.

It never touches a Ray it did not start: a cluster connected to has no token and no list.
Linux only (``/proc``); elsewhere :func:`start` returns None and only the directory is removed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

TOKEN_VAR = "XPUBENCH_RAY_SESSION"


def start_ticks(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (``/proc/PID/stat`` field 22).

    Args:
        pid: A process id.

    Returns:
        The start time, or None when there is no such process (or no ``/proc``).
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return int(stat[stat.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def has_token(pid: int, token: str) -> bool:
    """True when process ``pid``'s environment holds ``XPUBENCH_RAY_SESSION=token``.

    Args:
        pid: A process id.
        token: The session's token.
    """
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read()
    except OSError:
        return False
    return f"{TOKEN_VAR}={token}".encode() in env.split(b"\0")


def ray_processes(token: str, exclude: set[int]) -> list[tuple[int, int]]:
    """``(pid, start_ticks)`` of this process's descendants that belong to the Ray it started.

    A descendant belongs when its environment holds the token, or its parent's does (the agents
    rewrite their own environment area when they set their process title).

    Args:
        token: The session's token.
        exclude: Pids never listed (the watchdog itself).
    """
    import psutil

    try:
        procs = [p for p in psutil.Process().children(recursive=True) if p.pid not in exclude]
    except psutil.Error:
        return []
    tagged = {p.pid for p in procs if has_token(p.pid, token)}
    out = []
    for p in procs:
        try:
            mine = p.pid in tagged or p.ppid() in tagged
        except psutil.Error:
            continue
        ticks = start_ticks(p.pid)
        if mine and ticks is not None:
            out.append((p.pid, ticks))
    return out


def start(token: str, temp_dir: str) -> tuple[subprocess.Popen, int] | None:
    """Starts the watchdog for one local Ray session.

    Args:
        token: The session's token (also put in ``XPUBENCH_RAY_SESSION`` while Ray starts).
        temp_dir: The session's temporary directory, removed at the end.

    Returns:
        ``(process, fd)``: write ``PID START_TICKS`` lines to ``fd``; close it to end the session.
        None where there is no ``/proc`` to find processes in.
    """
    if not sys.platform.startswith("linux") or not os.path.isdir("/proc/self"):
        return None
    r, w = os.pipe()  # not inheritable: only this process holds the write end
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", os.path.abspath(__file__), token, temp_dir],
            stdin=r, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C to the terminal's process group does not end it early
            close_fds=True,
        )
    except OSError:
        os.close(w)
        return None
    finally:
        os.close(r)
    return proc, w


def watch(fd: int, processes: list[tuple[int, int]]) -> None:
    """Hands the watchdog more processes to end (best effort: a closed pipe is ignored).

    Args:
        fd: The write end from :func:`start`.
        processes: ``(pid, start_ticks)`` pairs.
    """
    data = "".join(f"{pid} {ticks}\n" for pid, ticks in processes).encode()
    try:
        os.write(fd, data)
    except OSError:  # the watchdog already ended (pipe closed): it has done its clean-up; nothing to hand over
        pass


def _kill(pid: int) -> bool:
    try:
        os.kill(pid, signal.SIGKILL)
        return True
    except OSError:
        return False


def _end(token: str, known: dict[int, int], keep: set[int]) -> list[int]:
    killed = []
    for pid, ticks in known.items():
        if pid not in keep and start_ticks(pid) == ticks and _kill(pid):
            killed.append(pid)
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        pids = []
    for pid in pids:
        if pid not in keep and pid not in known and has_token(pid, token) and _kill(pid):
            killed.append(pid)
    return killed


def main(argv: list[str]) -> int:
    """The watchdog: ``python -I reaper.py TOKEN TEMP_DIR`` with the pipe as stdin."""
    token, temp_dir = argv[1], argv[2]
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # finish the clean-up it exists for
    keep = {os.getpid(), os.getppid()}
    known: dict[int, int] = {}
    for line in sys.stdin.buffer:  # until the starter closes the pipe or dies
        try:
            pid, ticks = (int(x) for x in line.split())
        except ValueError:
            continue
        known[pid] = ticks
    for _ in range(2):
        _end(token, known, keep)
        time.sleep(0.2)
    for _ in range(10):
        shutil.rmtree(temp_dir, ignore_errors=True)
        if not os.path.exists(temp_dir):
            break
        time.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
