"""The Ray engine: a strategy's workers are Ray actors, on one machine or across a cluster.

``bench run lorenz --cluster ray`` starts a private local Ray (bound to 127.0.0.1, no dashboard,
as many CPUs as this process may use); ``--address auto`` or ``--address ray://HOST:PORT``
connects to a running cluster instead. Ray is optional: ``pip install 'xpubench[cluster]'``.

Design: one long-lived actor per worker slot, not one Ray task per trial. Each actor reserves
``num_cpus`` = threads per worker, starts in a fresh Ray worker process whose environment
(thread caps, device visibility) is set through ``runtime_env`` *before* it imports
TensorFlow (and set again in ``__init__``, checked, and recorded), imports TensorFlow once, and
then runs trials one at a time as actor method calls (each call is a Ray task on that actor).
Why actors rather than stateless tasks:

- the ~3 s TensorFlow import is paid once per worker and reported apart as start-up, exactly as
  in the local :class:`bench.engines.local.WorkerPool`, so local and Ray figures are comparable;
- a trial over its time limit is ended by killing *its* actor (the process), and a worker that
  dies is seen as that actor's death: both become the same ``error`` replies WorkerPool makes,
  and a replacement actor is started while trials remain;
- a fresh actor process never inherits a TensorFlow another trial configured differently.

Every reply records the node the trial ran on (``extra["node"]``, ``extra["node_ip"]``), and
every worker's hello the node it started on, so reports can group runs by node count.

The private local Ray lives as long as the process (every strategy of a sweep uses it; it is
stopped at exit or by :func:`shutdown`). It keeps its session directory under a temporary
directory of its own (``ray.init(_temp_dir=...)``, never ``/tmp/ray``), removed at shutdown, and a
watchdog (:mod:`bench.engines.reaper`) ends its processes, the dashboard and runtime-env agents
included, and removes that directory as soon as this process ends, even by SIGKILL. Ray's own
SIGTERM handler (installed by ``ray.init``) is replaced by the one that was there before, so
SIGTERM still ends a sweep as Ctrl-C does. Ray's own token authentication stays on. On a remote
cluster, this checkout's ``bench`` and ``workloads`` packages are shipped with the job
(``runtime_env.py_modules``); the nodes need Python, TensorFlow and xpubench's dependencies.
The driver's sampler sees only this machine's processes: on a remote cluster the trials' own
CPU times (``cpu_s``) are the CPU figures to trust.

Importing this module imports neither Ray nor TensorFlow.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.engines import reaper
from bench.engines.dispatch import Dispatcher, OnDone, Slot
from bench.engines.local import end_processes, stderr_tail
from bench.errors import UsageError, WorkerStartError
from bench.model.reply import Hello, TrialReply

LOG = logging.getLogger("bench")
LOOPBACK = "127.0.0.1"
INSTALL_HINT = "pip install 'xpubench[cluster]'"
# Object store of the private local Ray: replies are small JSON, so keep /dev/shm free.
LOCAL_OBJECT_STORE_BYTES = 96 * 1024 * 1024
# Consecutive replacement workers that may fail to start before the remaining trials fail.

# Worker variables that travel to Ray workers. The driver machine's PATH, HOME, PYTHONPATH...
# mean nothing on another node, so only what xpubench decides (threads, devices, TF/Keras
# settings, test hooks) is passed; PYTHONPATH only to a local Ray on this machine.
_PASS_PREFIXES = ("TF_", "KERAS_", "OMP_", "MKL_", "OPENBLAS_", "XLA_", "XPUBENCH_", "LC_")
_PASS_NAMES = (
    "PYTHONHASHSEED", "PYTHONUNBUFFERED", "LANG", "LANGUAGE",
    "CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "NVIDIA_VISIBLE_DEVICES",
)
_ADDRESS_RE = re.compile(r"^(ray://)?(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")

TEMP_PREFIX = "xpubench-ray-"


@dataclasses.dataclass
class RaySession:
    """What this process holds of Ray: the local Ray this module started and what it changed.

    There is one, :data:`SESSION`; :func:`start_local_ray` fills it and :func:`shutdown` empties it.

    Args:
        started: A Ray started by this module runs in this process.
        restore: What :func:`start_local_ray` changed (``env``, ``constant``), put back by :func:`shutdown`.
        atexit_registered: :func:`shutdown` is registered to run at exit.
        temp_dir: The directory the local Ray's session lives in.
        token: The value of ``XPUBENCH_RAY_SESSION`` in its processes' environment.
        reaper: The watchdog process (bench.engines.reaper).
        fd: The pipe that keeps the watchdog waiting (closing it ends the session).
        remote_actor: ``ray.remote(TrialActor)``, made once.
    """

    started: bool = False
    restore: dict[str, Any] | None = None
    atexit_registered: bool = False
    temp_dir: str | None = None
    token: str | None = None
    reaper: subprocess.Popen | None = None
    fd: int | None = None
    remote_actor: Any = None

    @property
    def owned(self) -> bool:
        """True while a local Ray's directory, token or watchdog is held."""
        return any(v is not None for v in (self.temp_dir, self.token, self.reaper, self.fd))


SESSION = RaySession()


def _ray():
    """Imports Ray, or says how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError(f"cluster engine 'ray' needs the 'ray' package, which is not installed: {INSTALL_HINT}") from None
    return ray


# ---------------------------------------------------------------- pure helpers


def check_address(address: str | None) -> str | None:
    """Validates a Ray address from the command line.

    Args:
        address: ``None`` (start a private local Ray), ``auto`` (the cluster this machine
            belongs to), ``ray://HOST:PORT`` (Ray Client) or ``HOST:PORT`` (a head node's GCS).

    Returns:
        The address, stripped (None stays None).

    Raises:
        UsageError: anything else, naming the value and the accepted forms.
    """
    if address is None:
        return None
    text = str(address).strip()
    if text == "auto":
        return text
    m = _ADDRESS_RE.match(text)
    if not m or not 0 < int(m.group(3)) < 65536:
        raise UsageError(f"bad Ray address {address!r} (expected auto, ray://HOST:PORT or HOST:PORT)")
    return text


def threads_of(env: dict) -> int:
    """Threads per worker in a worker environment: the CPUs its actor reserves (at least 1)."""
    for key in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"):
        try:
            return max(1, int(env[key]))
        except (KeyError, TypeError, ValueError):
            continue
    return 1


def gpus_of(env: dict, device: str) -> int:
    """GPUs one actor must reserve: those its device environment makes visible (0 for ``cpu``)."""
    if device.split(":", 1)[0] == "cpu":
        return 0
    visible = str(env.get("CUDA_VISIBLE_DEVICES", "")).strip()
    if not visible or visible == "-1":
        return 0
    return len([v for v in visible.split(",") if v.strip()])


def ray_env_vars(env: dict, local: bool, ray_assigns_gpus: bool = False) -> dict[str, str]:
    """The part of a worker environment a Ray actor is started with (``runtime_env.env_vars``).

    Args:
        env: The full worker environment from ``env_for(index)`` (bench.engines.childenv.child_env).
        local: The Ray runs on this machine, so this checkout's import path is passed too.
        ray_assigns_gpus: Ray picks the actor's GPUs, so the driver's CUDA_VISIBLE_DEVICES
            (indices on *this* machine) is left out.
    """
    out = {
        k: str(v)
        for k, v in env.items()
        if k.startswith(_PASS_PREFIXES) or k in _PASS_NAMES
    }
    if ray_assigns_gpus:
        out.pop("CUDA_VISIBLE_DEVICES", None)
    if local and env.get("PYTHONPATH"):
        out["PYTHONPATH"] = env["PYTHONPATH"]
    return out


def _code_modules() -> list[str]:
    """This checkout's packages, shipped to a remote cluster with ``runtime_env.py_modules``."""
    import importlib.util

    spec = importlib.util.find_spec("workloads")  # located, not imported: the harness never imports workloads
    assert spec is not None and spec.origin is not None, "the workloads package is part of this checkout"
    return [str(Path(__file__).resolve().parents[1]), str(Path(spec.origin).resolve().parent)]


def _first_line(text: str, limit: int = 300) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return (lines[0] if lines else "")[:limit]


def describe_actor_death(exc: BaseException) -> tuple[str, str, int | None]:
    """(kind, message, exit_code) for a Ray error that ended an actor mid-trial.

    Ray does not pass the worker's exit status or signal on; it says what it knows in its
    error text, from which the exit code and the likely cause are taken.
    """
    text = " ".join(str(exc).split())
    name = type(exc).__name__
    if name == "OutOfMemoryError" or "OutOfMemory" in name or "memory monitor" in text.lower():
        return "oom", f"worker ended by Ray's memory monitor (node out of memory): {text[:300]}", None
    exit_code = None
    m = re.search(r"exit(?:ed)? (?:with )?code (-?\d+)", text, re.IGNORECASE)
    if m:
        exit_code = int(m.group(1))
    if exit_code not in (None, 0, 1):
        return "crash", f"worker exited with status {exit_code}", exit_code
    if "SIGKILL" in text or "connection error" in text.lower() or "unexpectedly" in text.lower():
        return "crash", (
            "worker died unexpectedly (killed by a signal such as SIGKILL, which the kernel's "
            "out-of-memory killer sends when RAM runs out, or crashed)"
        ), exit_code
    return "crash", f"worker ended: {name}: {text[:300]}", exit_code


# ---------------------------------------------------------------- Ray runtime


def ray_is_up() -> bool:
    """True when this process is connected to a Ray (imports Ray only if it already is)."""
    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())


def start_local_ray(num_cpus: int | None = None) -> None:
    """Starts a private Ray on this machine: loopback only, no dashboard, no usage reporting.

    Every Ray server (GCS, raylet, workers, agents) listens on 127.0.0.1 only, so nothing is
    reachable from the network; the object store is kept small (replies are tiny JSON). Its
    session directory is under a new temporary directory (``xpubench-ray-*``), and a watchdog
    (:mod:`bench.engines.reaper`) ends its processes and removes that directory when this process ends,
    however it ends; :func:`shutdown` does both at once.

    Args:
        num_cpus: CPUs Ray may hand out (default: the CPUs this process may use).

    Raises:
        UsageError: Ray is not installed.
        WorkerStartError: Ray could not start.
    """
    from bench.model.strategy import usable_cores

    ray = _ray()
    import ray._private.ray_constants as ray_constants

    if SESSION.restore is None:
        SESSION.restore = {
            "env": os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"), "constant": ray_constants.ENABLE_RAY_CLUSTER,
        }
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray resolves 127.0.0.1 to the machine's routable address unless cluster mode is off; off,
    # it binds every server to loopback (the mode Ray uses on laptops). The variable reaches
    # Ray's own processes; the constant is what this (already imported) Ray reads.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    if not SESSION.atexit_registered:
        atexit.register(shutdown)
        SESSION.atexit_registered = True
    _own_session()
    sigterm = _sigterm_handler()
    os.environ[reaper.TOKEN_VAR] = SESSION.token  # inherited by this Ray's processes only
    try:
        ray.init(
            address="local",  # a new Ray, even if RAY_ADDRESS or `ray start` points to another one
            num_cpus=num_cpus or usable_cores(),
            include_dashboard=False,
            _node_ip_address=LOOPBACK,
            _temp_dir=SESSION.temp_dir,
            object_store_memory=LOCAL_OBJECT_STORE_BYTES,
            log_to_driver=False,
            configure_logging=True,
            logging_level=logging.ERROR,
            namespace="xpubench",
        )
    except Exception as exc:  # noqa: BLE001 - stays broad: Ray's start-up code (ray._private.node, services) raises
        # bare Exception besides RuntimeError, ConnectionError, ValueError, TimeoutError and RayError. Not swallowed:
        # re-raised as the WorkerStartError the sweep records as the strategy's note
        _end_session()
        raise WorkerStartError(f"could not start a local Ray: {_first_line(exc)}") from exc
    finally:
        os.environ.pop(reaper.TOKEN_VAR, None)
        _restore_sigterm(sigterm)
    SESSION.started = True
    _watch_ray_processes()


def temp_base() -> str:
    """Where the local Ray's own directory is made: where Ray itself would put ``ray/`` (RAY_TMPDIR,
    else TMPDIR, else ``/tmp`` on Linux and macOS: short enough for Ray's socket paths)."""
    if os.environ.get("RAY_TMPDIR"):
        return os.environ["RAY_TMPDIR"]
    if sys.platform.startswith("linux") and os.environ.get("TMPDIR"):
        return os.environ["TMPDIR"]
    if sys.platform.startswith(("linux", "darwin")) and os.path.isdir("/tmp"):
        return "/tmp"
    return tempfile.gettempdir()


def _own_session() -> None:
    """Makes the temporary directory and starts the watchdog of the local Ray about to start."""
    _end_session()  # a session left by an earlier start that failed
    temp_dir = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=temp_base())
    token = f"{os.getpid()}-{secrets.token_hex(8)}"
    SESSION.temp_dir, SESSION.token = temp_dir, token
    started = reaper.start(token, temp_dir)
    if started is not None:
        SESSION.reaper, SESSION.fd = started


def _watch_ray_processes() -> None:
    """Tells the watchdog which processes are this local Ray's (called after start and per pool)."""
    if SESSION.fd is None:
        return
    proc = SESSION.reaper
    reaper.watch(SESSION.fd, reaper.ray_processes(SESSION.token, exclude={proc.pid} if proc else set()))


def _end_session(timeout: float = 10.0) -> None:
    """Ends the watchdog (which ends any process of the session still alive) and removes the directory."""
    fd, proc, temp_dir = SESSION.fd, SESSION.reaper, SESSION.temp_dir
    SESSION.fd = SESSION.reaper = SESSION.temp_dir = SESSION.token = None
    if fd is not None:
        try:
            os.close(fd)  # end of its input: it ends what is left, removes the directory, exits
        except OSError:
            pass
    if proc is not None:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:  # the watchdog is stuck: end it (Ray's own processes die with their starter)
            proc.kill()
    if temp_dir:
        shutil.rmtree(temp_dir, ignore_errors=True)


def _sigterm_handler():
    """The SIGTERM handler now (ray.init replaces it with its own), or None off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.getsignal(signal.SIGTERM)


def _restore_sigterm(handler) -> None:
    if handler is not None and threading.current_thread() is threading.main_thread():
        try:
            signal.signal(signal.SIGTERM, handler)
        except (ValueError, TypeError):  # not a handler Python can reinstall (set from C): Ray's stays
            pass


def connect(address: str | None = None) -> bool:
    """Connects this process to Ray unless it already is; returns True if it started a local one.

    Args:
        address: None for a private local Ray (see :func:`start_local_ray`), else a cluster
            address (see :func:`check_address`).

    Raises:
        UsageError: bad address, Ray missing, or no cluster answers at the address.
    """
    address = check_address(address)
    if ray_is_up():
        return False
    if address is None:
        start_local_ray()
        return True
    ray = _ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    sigterm = _sigterm_handler()
    try:
        # This checkout's packages go with the job (a job-level runtime_env; each actor's own
        # runtime_env, its thread variables, is merged into it), so nodes run the same code.
        ray.init(address=address, log_to_driver=False, configure_logging=True, logging_level=logging.ERROR,
                 namespace="xpubench", runtime_env={"py_modules": _code_modules()})
    except Exception as exc:  # noqa: BLE001 - stays broad: connecting runs Ray's start-up code, which raises bare
        # Exception besides ConnectionError, RuntimeError, PermissionError and RayError, and Ray Client adds grpc's
        # errors. Not swallowed: the one-line UsageError names the address and the cause
        hint = ""
        if address != "auto" and not os.environ.get("RAY_AUTH_MODE"):
            hint = (" (a cluster with token authentication, Ray's default, needs RAY_AUTH_MODE=token and its "
                    "token in RAY_AUTH_TOKEN or ~/.ray/auth_token when given an explicit address)")
        raise UsageError(f"cannot connect to the Ray cluster at {address!r}: {_first_line(exc)}{hint}") from None
    finally:
        _restore_sigterm(sigterm)
    return False


def shutdown() -> None:
    """Stops the local Ray this module started (a cluster connected to is only disconnected).

    The local Ray's processes still alive after ``ray.shutdown()`` are ended and its temporary
    directory removed; nothing of a cluster connected to is touched.
    """
    if ray_is_up():
        sys.modules["ray"].shutdown()
    SESSION.started = False
    _end_session()
    restore, SESSION.restore = SESSION.restore, None
    if restore is not None:  # cluster mode back as it was, for a later connection to a real cluster
        import ray._private.ray_constants as ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = restore["constant"]
        if restore["env"] is None:
            os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
        else:
            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = restore["env"]


def cluster_nodes() -> list[dict]:
    """Alive nodes of the connected Ray: ``[{"node_id", "ip", "cpus", "gpus"}]``."""
    ray = _ray()
    out = []
    for node in ray.nodes():
        if not node.get("Alive", node.get("alive", False)):
            continue
        res = node.get("Resources", {})
        out.append(
            {
                "node_id": node.get("NodeID", ""),
                "ip": node.get("NodeManagerAddress", ""),
                "cpus": res.get("CPU", 0.0),
                "gpus": res.get("GPU", 0.0),
            }
        )
    return out


# ---------------------------------------------------------------- the actor


class TrialActor:
    """One worker: a Ray actor that imports TensorFlow once and runs trials one at a time.

    It is set up through the local worker's own public API (:func:`bench.engines.worker.prepare`,
    :class:`bench.engines.worker.TrialRunner`), so a trial runs the same way on either engine, and
    it answers with the same messages (:class:`bench.model.reply.Hello`,
    :class:`bench.model.reply.TrialReply`).

    Args:
        index: The worker's index in its pool (replacements get new indices).
        env: Variables to set before TensorFlow is imported (already set by Ray's runtime_env
            when the process started; set again here in case Ray reused a process).
        device_spec: Device strategy (``cpu``, ``gpu``, ``mirrored``...).
    """

    def __init__(self, index: int, env: dict, device_spec: str):
        preimported = "tensorflow" in sys.modules
        os.environ.update(env)
        from bench.engines import worker
        from bench.model.strategy import THREAD_VARS

        self.runner, hello = worker.prepare(device_spec)
        self.node = socket.gethostname()
        import ray

        node_error = None
        try:
            node_id = ray.get_runtime_context().get_node_id()
            node_ip = ray.util.get_node_ip_address()
        except (AttributeError, RuntimeError, OSError, ray.exceptions.RayError) as exc:  # pragma: no cover
            # facts only (old Ray without the call, no runtime context): left empty, why is in the hello
            node_id, node_ip = "", ""
            node_error = f"{type(exc).__name__}: {_first_line(exc)}"
        self.node_ip = node_ip
        try:
            log_path = os.readlink("/proc/self/fd/2")
        except OSError:
            log_path = ""
        self._hello = dataclasses.replace(
            hello,
            index=index,
            thread_env={k: os.environ.get(k) for k in THREAD_VARS},
            tensorflow_preimported=preimported,
            node=self.node,
            node_ip=node_ip,
            node_id=node_id,
            log_path=log_path if log_path.startswith("/") else "",
            node_error=node_error,
        )

    def hello(self) -> dict:
        """The worker's hello message (its first reply, as in the local worker protocol)."""
        return self._hello.as_message()

    def run(self, msg: dict) -> dict:
        """Runs one trial message (the local worker protocol's ``trial``); returns the reply message.

        Args:
            msg: The trial message.
        """
        reply = self.runner.run(msg)
        if reply.ok:
            reply = dataclasses.replace(reply, extra={**reply.extra, "node": self.node, "node_ip": self.node_ip})
        # plain JSON values (NaN/inf as None), exactly the message a local worker would send
        return dataclasses.replace(reply, node=self.node).as_message()


def _local_process(hello: Hello):
    """The ``psutil.Process`` of a worker that said hello from this machine, else None."""
    if hello.node != socket.gethostname() or not hello.pid:
        return None
    import psutil

    try:
        return psutil.Process(int(hello.pid))
    except (psutil.Error, ValueError, TypeError):  # already gone (or a malformed pid): nothing to check at close
        return None


def _actor_start_errors() -> tuple[type[BaseException], ...]:
    """What creating an actor raises when Ray refuses it (ray.actor, its option and runtime_env checks,
    a lost connection, Ray Client's grpc calls)."""
    ray = _ray()
    errors: tuple[type[BaseException], ...] = (
        ray.exceptions.RayError, ConnectionError, RuntimeError, TypeError, ValueError, AttributeError,
    )
    try:
        import grpc
    except ImportError:  # Ray without grpc (a stripped build): its own errors only
        return errors
    return errors + (grpc.RpcError,)


def _remote_actor():
    if SESSION.remote_actor is None:
        SESSION.remote_actor = _ray().remote(TrialActor)
    return SESSION.remote_actor


# ---------------------------------------------------------------- the pool


@dataclasses.dataclass(kw_only=True)
class _Slot(Slot):
    actor: Any
    hello_ref: Any = None
    job_ref: Any = None
    proc: Any = None  # psutil.Process of the actor's worker when it runs on this machine (checked at close)


class RayPool(Dispatcher):
    """N Ray actors under one strategy, with :class:`bench.engines.local.WorkerPool`'s interface.

    Args:
        n: Number of workers (actors) running trials at once.
        env_for: ``env_for(index) -> dict``: the full environment of worker ``index``; its
            thread and device variables go to the actor (see :func:`ray_env_vars`) and its
            thread count is the actor's ``num_cpus``.
        device: Device spec passed to each worker (``cpu``, ``gpu``, ``mirrored``...).
        log_dir: Unused (Ray keeps worker logs in its session directory on each node); kept
            for interface parity with WorkerPool.
        on_event: ``on_event(kind, **info)`` for progress (``worker_ready``, ``worker_died``).
        address: None for a private local Ray started on first use, else ``auto``,
            ``ray://HOST:PORT`` or ``HOST:PORT``.
        startup_timeout: Seconds a worker may take to be scheduled, import TensorFlow and say
            hello (on a busy cluster this includes waiting for free CPUs).

    Raises:
        UsageError: a malformed address.
    """

    end_wait_s = 5.0  # close(): seconds ended workers get to exit before SIGTERM
    end_grace_s = 2.0  # and again after SIGTERM before SIGKILL, and after SIGKILL before "not ended"

    @staticmethod
    def validate_options(address: str | None = None, **_: Any) -> None:
        """Rejects a malformed ``--address`` before the runner creates anything.

        Args:
            address: The cluster address given on the command line, if any.
        """
        check_address(address)

    worker_label = "Ray worker"
    slots: list[_Slot]

    def __init__(self, *args: Any, address: str | None = None, **kwargs: Any):  # + Dispatcher's (see Args)
        super().__init__(*args, **kwargs)
        self.address = check_address(address)
        self.local = self.address is None
        self.placement = ""  # where the workers run, and how that was decided (recorded in each hello)

    # ------------------------------------------------------------ lifecycle

    def _single_node_here(self) -> tuple[bool, str]:
        """Whether the connected Ray is one node, this machine (its workers see this checkout), and why.

        A check that fails (an old Ray without a call, a lost connection, an odd node table) is
        *not* taken for a real cluster: the Ray this process is on without an address stays
        "this machine", and the reason says the check failed (it is recorded in every hello).
        """
        ray = _ray()
        try:
            nodes = cluster_nodes()
            here = ray.util.get_node_ip_address()
        except (ray.exceptions.RayError, ConnectionError, AttributeError, KeyError, TypeError) as exc:
            return True, f"this machine (not detected: {type(exc).__name__}: {_first_line(exc)})"
        if len(nodes) == 1 and nodes[0]["ip"] == here:
            return True, "this machine (one node, this machine's address)"
        ips = ", ".join(str(n["ip"]) for n in nodes)
        return False, f"a cluster ({len(nodes)} node(s) at {ips}; this machine is {here})"

    def _spawn(self) -> _Slot:
        index = self._take_index()
        env = self.env_for(index)
        gpus = gpus_of(env, self.device)
        env_vars = ray_env_vars(env, local=self.local, ray_assigns_gpus=gpus > 0)
        actor = _remote_actor().options(
            num_cpus=threads_of(env),
            num_gpus=gpus,
            max_restarts=0,
            max_task_retries=0,
            runtime_env={"env_vars": env_vars},
        ).remote(index, env_vars, self.device)
        slot = _Slot(index=index, actor=actor, env=env, started=time.perf_counter())
        slot.hello_ref = actor.hello.remote()
        self.slots.append(slot)
        return slot

    def _check_capacity(self) -> None:
        ray = _ray()
        cpus = threads_of(self.env_for(0))
        need = self.n * cpus
        have = float(ray.cluster_resources().get("CPU", 0.0))
        if need > have:
            where = "this machine's local Ray" if self.local else f"the Ray cluster at {self.address}"
            raise WorkerStartError(
                f"{self.n} workers × {cpus} CPUs = {need} CPUs, but {where} has {have:g} CPUs "
                f"(use fewer processes or threads, or a bigger cluster)"
            )

    def start(self) -> None:
        """Connects to Ray (starting a local one if needed), starts n actors and waits for all.

        Raises:
            UsageError: Ray missing or no cluster at the address.
            WorkerStartError: the cluster is too small for the strategy, or no worker started.
        """
        connect(self.address)
        # Local: this checkout's import path goes to the workers (a cluster gets the code shipped).
        if self.address is None:
            self.local, self.placement = self._single_node_here()
        else:
            self.local, self.placement = False, f"the cluster at {self.address} (code shipped with the job)"
        self._check_capacity()
        try:
            for _ in range(self.n):
                self._spawn()
        except _actor_start_errors() as exc:  # Ray refused the actor (bad options or runtime_env, lost connection,
            # grpc errors in Ray Client): re-raised as the WorkerStartError recorded as the strategy's note
            raise WorkerStartError(f"Ray could not start a worker: {type(exc).__name__}: {_first_line(exc)}") from exc
        while any(s.state == "starting" for s in self.slots):
            self._poll(0.5, on_done=None)
        if SESSION.started:
            _watch_ray_processes()  # the workers too (they also carry the session's token)
        if not any(s.state == "idle" for s in self.slots):
            fact = self.worker_facts[-1] if self.worker_facts else {}
            raise WorkerStartError(f"no Ray worker could start ({fact.get('failed_to_start', 'unknown reason')})")

    def close(self) -> None:
        """Ends every actor (on a private local Ray, until their CPUs are free again). Safe to call twice.

        A local Ray started by xpubench keeps running for the next strategy of the sweep; it
        stops when the process exits (or on :func:`shutdown`).
        """
        if self._closed:
            return
        self._closed = True
        if not ray_is_up():  # Ray was shut down (it ends its workers): still check none on this machine lives
            self._check_ended()
            return
        ray = sys.modules["ray"]
        ended = []
        for s in self.slots:
            if not s.dead:
                self._kill(s)
                ended.append(s)
        self._check_ended()
        if ended and SESSION.started:
            # On the private local Ray every CPU is ours: wait (briefly) until the ended actors'
            # CPUs are free, so the next strategy's start-up time is its own.
            deadline = time.perf_counter() + 5.0
            try:
                total = ray.cluster_resources().get("CPU", 0.0)
                while ray.available_resources().get("CPU", 0.0) < total and time.perf_counter() < deadline:
                    time.sleep(0.05)
            except (ray.exceptions.RayError, ConnectionError) as exc:
                # only a courtesy to the next strategy's timing (the processes were checked above): logged
                LOG.warning("xpubench: could not wait for Ray's CPUs to be free: %s", _first_line(exc))

    def _check_ended(self) -> None:
        """Checks every worker on this machine has ended: SIGTERM, then SIGKILL, where Ray did not end it.

        A worker left alive would steal CPU from the next strategy's timing, so one that still runs is
        recorded (``not_ended`` in its worker fact, a ``worker_not_ended`` event, a warning), and one
        that needed a signal has ``ended_by`` in its fact.
        """
        slots = {s.proc.pid: s for s in self.slots if s.proc is not None}
        if not slots:
            return
        for pid, how in end_processes([s.proc for s in slots.values()], self.end_wait_s, self.end_grace_s).items():
            s = slots[pid]
            if how.startswith("alive"):
                self._not_ended(s, f"pid {pid} {how}")
            elif how != "ended":
                self._fact(s)["ended_by"] = how
            s.proc = None

    def _kill(self, s: _Slot) -> None:
        if s.dead:
            return
        s.dead = True
        s.job_ref = None  # a killed actor's reply never comes
        ray = _ray()
        try:
            if not ray_is_up():  # ray.kill would start a new default Ray (auto-init) rather than fail
                raise ray.exceptions.RaySystemError("Ray is not running any more")
            ray.kill(s.actor, no_restart=True)
        except (ray.exceptions.RayError, ConnectionError, ValueError) as exc:  # not connected, a stale handle
            reason = f"ray.kill failed: {type(exc).__name__}: {_first_line(exc)}"
            self._fact(s)["kill_error"] = reason
            if s.proc is None:  # on another node (or never said hello): nothing this machine can check
                self._not_ended(s, reason)
            # on this machine: SIGTERM, then SIGKILL, and checked, by close() (_check_ended)

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers (on their nodes)."""
        return [int(s.hello.pid) for s in self.slots if not s.dead and s.hello]

    # ------------------------------------------------------------ Dispatcher hooks

    def _start_deadline(self, s: _Slot) -> float:
        return s.started + self.startup_timeout

    def _node(self, s: _Slot) -> str | None:
        return s.hello.node if s.hello else None

    def _hello_extra(self) -> dict:
        return {"placement": self.placement}

    @property
    def nodes(self) -> list[str]:
        """Distinct nodes the workers started on, in order."""
        return list(dict.fromkeys(f["node"] for f in self.worker_facts if f.get("node")))

    def _tail(self, s: _Slot) -> str:
        """The end of a worker's log when it is on this machine (Ray keeps it on its node)."""
        if s.hello is None or not s.hello.log_path:
            return ""
        if s.hello.node != socket.gethostname():
            return f"(log on node {s.hello.node}: {s.hello.log_path})"
        return stderr_tail(Path(s.hello.log_path))

    # ------------------------------------------------------------ running

    def _deliver(self, s: _Slot, job: dict) -> None:
        s.job_ref = s.actor.run.remote(job)

    def _poll(self, timeout: float, on_done: OnDone | None) -> None:
        ray = _ray()
        waiting: dict[Any, tuple[_Slot, str]] = {}
        for s in self.slots:
            if s.state == "starting":
                waiting[s.hello_ref] = (s, "hello")
            elif s.job_ref is not None:
                waiting[s.job_ref] = (s, "job")
        if not waiting:
            time.sleep(timeout)
            return
        refs = list(waiting)
        ready, rest = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready and rest:  # whatever else finished meanwhile, without waiting
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        for ref in ready:
            s, what = waiting[ref]
            if what == "hello":
                self._on_hello(s, ref)
            else:
                self._on_reply(s, ref, on_done)

    def _on_hello(self, s: _Slot, ref) -> None:
        ray = _ray()
        try:
            hello = Hello.from_message(ray.get(ref))
        except (ray.exceptions.RayError, ConnectionError) as exc:  # the actor died starting (RayActorError,
            # RuntimeEnvSetupError, unschedulable...): recorded as its failed_to_start fact
            self._kill(s)
            self._start_failed(s, _first_line(getattr(exc, "cause", None) or exc) or type(exc).__name__)
            return
        except (TypeError, ValueError) as exc:  # not a hello of the protocol: the worker cannot be trusted
            self._kill(s)
            self._start_failed(s, f"bad hello: {_first_line(exc)}")
            return
        s.proc = _local_process(self._ready(s, hello))

    def _on_reply(self, s: _Slot, ref, on_done: OnDone | None) -> None:
        ray = _ray()
        s.job_ref = None
        try:
            reply = TrialReply.from_message(ray.get(ref))
        except ray.exceptions.RayTaskError as exc:  # the method itself raised: the actor lives
            cause = getattr(exc, "cause", None) or exc
            reply = TrialReply.failure(
                "exception",
                f"{type(cause).__name__}: {_first_line(cause)}"[:500],
                stderr_tail="\n".join(str(exc).strip().splitlines()[-8:]),
            )
        except (ray.exceptions.RayError, ConnectionError) as exc:  # the actor (its process) is gone (RayActorError,
            # ActorDiedError, OutOfMemoryError...): recorded as this trial's crash/oom error reply
            self._kill(s)
            kind, message, exit_code = describe_actor_death(exc)
            reply = TrialReply.failure(kind, message, exit_code=exit_code, stderr_tail=self._tail(s))
            self.on_event("worker_died", worker=s.index, reason=message)
        except (KeyError, TypeError, ValueError) as exc:  # not a reply of the protocol: the worker cannot be trusted
            self._kill(s)
            reply = TrialReply.failure("protocol", f"worker sent a reply that is not of the protocol: {_first_line(exc)}",
                                       stderr_tail=self._tail(s))
            self.on_event("worker_died", worker=s.index, reason="sent a reply that is not of the protocol")
        self._finish(s, reply, on_done)
