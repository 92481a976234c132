"""The worker process: ``python -m bench.engines.worker RESULT_FD DEVICE``.

Its environment (``KERAS_BACKEND``, threads, device visibility) was set by the parent before this
process started, so the framework reads it on import. It imports only its backend's framework
(:mod:`bench.backends`: under jax or torch TensorFlow is never imported). It reads one JSON command per line on stdin and
writes one JSON reply per line to the result pipe: a :class:`bench.model.reply.Hello`, then a
:class:`bench.model.reply.TrialReply` per trial, each as ``record.as_message()`` through
:func:`bench.model.results.message_line` (the parent reads the same record types back with
``from_message``). stdout/stderr go to a log the parent keeps for error reports. It never forks.

The Ray actor (bench.engines.ray) sets itself up and runs trials through the same public API:
:func:`prepare`, :class:`TrialRunner`.
"""

from __future__ import annotations

import gc
import os
import sys
import time
import traceback

from bench.backends import registry
from bench.backends.base import Backend
from bench.model import results
from bench.model.reply import Hello, TrialReply

# The frameworks whose presence in sys.modules a hello reports (a jax worker must not have tensorflow).
FRAMEWORKS = ("tensorflow", "jax", "torch")
# Top-level packages TrialRunner.forget never drops (a workload's own modules are re-imported).
KEEP_MODULES = frozenset(("bench", "keras", "numpy", *FRAMEWORKS))
#: What a worker answers once it has done a ``forget`` (its workload modules dropped, garbage collected).
FORGOTTEN = {"type": "forgotten"}


def _send(out, record: Hello | TrialReply | dict) -> None:
    """Writes one reply line: the record's message (or a plain message such as :data:`FORGOTTEN`)
    through the one JSON path (bench.model.results)."""
    message = record if isinstance(record, dict) else record.as_message()
    out.write(results.message_line(message) + "\n")
    out.flush()


def _load_class(ref: str):
    """The workload class a trial names: ``"module:Class"`` or ``"/path/file.py:Class"`` (imported by
    path, its folder first on ``sys.path``), the spec the parent validated (bench.model.workload_spec)."""
    from bench.model.workload import workload_class

    return workload_class(ref)


def _rss_bytes() -> tuple[int, int]:
    import resource

    import psutil

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return psutil.Process().memory_info().rss, peak


def _maybe_fault(config: dict) -> None:
    """Test hook: XPUBENCH_FAULT=<kind>:<trial id> makes that trial fail that way."""
    fault = os.environ.get("XPUBENCH_FAULT", "")
    kind, _, trial = fault.partition(":")
    if not fault or (trial and trial != config.get("id")):
        return
    if kind == "raise":
        raise RuntimeError(f"injected fault in trial {config.get('id')}")
    if kind == "kill":
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "exit":
        os._exit(3)
    if kind == "hang":
        time.sleep(3600)


def _die_with_parent() -> None:
    """Linux: have the kernel SIGKILL this worker when its parent dies, even by SIGKILL."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
    except (ImportError, OSError, AttributeError, TypeError):  # not Linux (no libc prctl): idle workers still end on stdin EOF
        return
    if os.getppid() == 1:  # the parent died before prctl
        os._exit(1)


def worker_backend() -> Backend:
    """The backend this worker runs: ``KERAS_BACKEND`` as the parent set it (default tensorflow)."""
    return registry.get_backend(os.environ.get("KERAS_BACKEND") or registry.DEFAULT)


def hello_facts(backend: Backend, keras, device_spec: str, device, import_s: float, threads: dict) -> Hello:
    """The :class:`Hello` a worker sends once its framework is imported and its devices are set up.

    Args:
        backend: The worker's backend.
        keras: The imported ``keras`` module.
        device_spec: Device strategy name.
        device: What ``get_device(device_spec).setup(backend)`` returned.
        import_s: Seconds importing the framework (and Keras) took.
        threads: What ``backend.apply_threads()`` reported in use.
    """
    facts = backend.facts()
    return Hello(
        pid=os.getpid(),
        import_s=import_s,
        tensorflow=getattr(sys.modules.get("tensorflow"), "__version__", ""),  # "" where it was not imported
        keras=keras.__version__,
        intra_op_threads=int(threads.get("intra_op_threads") or 0),
        inter_op_threads=int(threads.get("inter_op_threads") or 0),
        visible_devices=tuple(facts["visible_devices"]),
        physical_devices=tuple(facts["physical_devices"]),
        device=device_spec,
        replicas=device.replicas,
        device_info=device.info,
        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        build=facts["build"],
        backend=backend.name,
        backend_version=facts["version"],
        threads_applied=threads,
        frameworks_loaded=tuple(m for m in FRAMEWORKS if m in sys.modules),
    )


class TrialRunner:
    """Runs ``trial`` messages in this process (its framework imported, devices set up).

    Shared by the local worker and the Ray actor, so a trial runs the same way on either; build
    one with :func:`prepare`.

    Args:
        device_spec: Device strategy name.
        device: What ``get_device(device_spec).setup(backend)`` returned (scope, replicas).
        backend: The worker's backend (default: ``KERAS_BACKEND``'s).
    """

    def __init__(self, device_spec: str, device, backend: Backend | None = None):
        self.device_spec = device_spec
        self.device = device
        self.backend = backend or worker_backend()
        self.workloads: dict[str, object] = {}
        self._dirty = False  # a trial ran since the last reset

    def reset(self) -> None:
        """Clears what a trial left behind, so the next one starts as in a fresh worker: the Keras
        session (global state, layer names, TensorFlow's graph and kernel caches), what the backend
        keeps of the trial's traced functions (:meth:`Backend.release_trial_state`) and garbage (cheap:
        the framework's objects were frozen by :func:`prepare`). A distribution the device set-up
        installed (``keras.distribution``) is put back.

        The local worker calls this after sending a trial's reply (it overlaps the parent's
        result write); :meth:`run` calls it first when a trial ran since (the Ray actor).
        """
        if not self._dirty:
            return
        self._dirty = False
        import keras

        dist = keras.distribution.distribution()
        keras.backend.clear_session(free_memory=False)
        if dist is not None:
            keras.distribution.set_distribution(dist)
        self.backend.release_trial_state()
        gc.collect()

    def forget(self) -> None:
        """Forgets the workloads loaded so far, their modules included (re-imported by the next
        trial), so a worker taken by a new run holds none of the last run's workload state: data
        sets and trained models a workload caches per process would make its first trials there
        faster than on a fresh worker. The framework and xpubench stay imported."""
        from bench.model.workload_spec import unload

        unload(list(self.workloads), keep=KEEP_MODULES)
        self.workloads.clear()
        self._dirty = True
        self.reset()

    def run(self, msg: dict) -> TrialReply:
        """Runs one trial; returns its ``result`` reply, or an ``error`` reply if it raised.

        Args:
            msg: ``{"type": "trial", "workload": "module:Class", "size", "config", "seed", "options"}``.
        """
        import keras

        from bench.model.workload import TrialContext

        config = msg["config"]
        self.reset()
        self._dirty = True
        try:
            ref = msg["workload"]
            if ref not in self.workloads:
                self.workloads[ref] = _load_class(ref)()
            workload = self.workloads[ref]
            ctx = TrialContext(
                size=msg["size"],
                seed=msg["seed"],
                options=msg.get("options", {}),
                device=self.device_spec,
                scope=self.device.scope,
                replicas=self.device.replicas,
                backend=self.backend.name,
                compiler=self.backend.compiler,
                compile_predict=self.backend.compile_predict,
            )
            keras.utils.set_random_seed(msg["seed"])
            _maybe_fault(config)
            c0, w0 = time.process_time(), time.perf_counter()
            output = workload.run_trial(config, ctx)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            rss, peak = _rss_bytes()
            return TrialReply(
                kind="result",
                id=config["id"],
                wall_s=wall,
                cpu_s=cpu,
                warmup_s=float(output.warmup_s),
                samples=float(output.samples),
                quality={k: float(v) for k, v in output.quality.items()},  # NaN/inf become None in the message
                extra=dict(output.extra),
                rss_bytes=rss,
                peak_rss_bytes=peak,
            )
        except Exception as exc:  # noqa: BLE001 - any error of workload code is data: recorded as this
            # trial's error reply (kind oom/exception, message, traceback tail; the full traceback goes to
            # the worker log) and the worker goes on with the next trial
            tb = traceback.format_exc()
            print(tb, file=sys.stderr, flush=True)
            oom = isinstance(exc, MemoryError) or "ResourceExhausted" in type(exc).__name__
            return TrialReply.failure(
                "oom" if oom else "exception",
                f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:500],
                stderr_tail="\n".join(tb.strip().splitlines()[-8:]),
                id=config.get("id"),
            )


def prepare(device_spec: str) -> tuple[TrialRunner, Hello]:
    """Sets this process up as a worker: imports its framework (timed), caps its threads, sets up the devices.

    Used by the local worker (:func:`main`) and the Ray actor alike. The environment
    (``KERAS_BACKEND``, threads, device visibility) must be set before this is called. A strategy
    that cannot get its devices raises here, before any hello, so a ``gpu`` run never silently
    measures the CPU.

    Args:
        device_spec: Device strategy name (``cpu``, ``gpu:0``, ``mirrored``, ``data_parallel``...).

    Returns:
        The trial runner and the worker's hello.
    """
    backend = worker_backend()
    t0 = time.perf_counter()
    backend.import_framework()  # imported here, after the environment was set; Keras with it
    import keras

    import_s = time.perf_counter() - t0
    threads = backend.apply_threads()

    from bench.engines.devices import get_device

    # Devices are configured before any op runs (logical CPU devices, GPU memory growth, the
    # distribution). Trials are timed in full, so GPU work is timed up to the copy of its results
    # back to host (workloads return host values).
    device = get_device(device_spec).setup(backend)
    # Everything imported so far (the framework's ~1e6 objects) moves to the permanent generation:
    # the garbage collections a trial triggers (and reset()'s) then skip it: 0.3-0.5 s -> ~0.03 s each.
    gc.freeze()
    backend.mark_clean()  # what a trial adds to the framework's global state is dropped again (TrialRunner.reset)
    return TrialRunner(device_spec, device, backend), hello_facts(backend, keras, device_spec, device, import_s, threads)


def main(argv: list[str] | None = None) -> int:
    """The worker's loop: hello, then one reply per ``trial`` line on stdin until ``quit`` or EOF.

    Args:
        argv: ``[RESULT_FD, DEVICE]`` (default: ``sys.argv[1:]``).
    """
    argv = sys.argv[1:] if argv is None else argv
    _die_with_parent()
    out = os.fdopen(int(argv[0]), "w", buffering=1, encoding="utf-8")
    device_spec = argv[1] if len(argv) > 1 else "cpu"
    runner, hello = prepare(device_spec)
    _send(out, hello)
    for line in sys.stdin:
        if not line.strip():
            continue
        msg = results.read_message(line)
        if msg.get("type") == "quit":
            break
        if msg.get("type") == "forget":  # back in the cache (bench.engines.workercache): the next run starts clean
            runner.forget()
            _send(out, FORGOTTEN)  # done: the cache lends it only after this
            continue
        _send(out, runner.run(msg))
        runner.reset()  # while the parent writes the result: the next trial starts clean
    return 0


if __name__ == "__main__":
    sys.exit(main())
