"""Typed worker replies: what a worker says when it starts (:class:`Hello`) and per trial (:class:`TrialReply`).

The worker builds these records and sends ``record.as_message()`` (over its result pipe through
:func:`bench.model.results.message_line`, or as a Ray actor's return value); the pool reads the
message back with ``from_message`` into the very same record type. Errors the pool makes itself (a
crash, a timeout, a reply that is not JSON, a worker that could not start) are
:meth:`TrialReply.failure` records too, so every job ends in one :class:`TrialReply`.

Message forms (the worker protocol; unknown keys are ignored, optional ones may be missing):

- ``{"type": "hello", "pid", "import_s", "tensorflow", "keras", "intra_op_threads",
  "inter_op_threads", "visible_devices", "physical_devices", "device", "replicas", "device_info",
  "cuda_visible_devices", "build", "backend", "backend_version", "threads_applied", "frameworks_loaded",
  ...}``, plus on a Ray actor ``thread_env``,
  ``tensorflow_preimported``, ``node``, ``node_ip``, ``node_id``, ``log_path``, ``node_error``, and
  what the pool adds: ``startup_s``, ``index``, ``placement``.
- ``{"type": "result", "id", "wall_s", "cpu_s", "warmup_s", "samples", "quality", "extra",
  "rss_bytes", "peak_rss_bytes", "worker"}``.
- ``{"type": "error", "id", "kind", "message", "exit_code", "signal", "stderr_tail", "wall_s",
  "worker"}``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from bench.model.results import TrialError, plain

# Hello fields only a Ray actor (or the pool) sets: left out of the message while None.
_OPTIONAL_HELLO = (
    "backend", "backend_version", "threads_applied", "frameworks_loaded", "thread_env", "tensorflow_preimported", "node", "node_ip", "node_id", "log_path", "node_error",
    "startup_s", "index", "placement",
)


def _message_type(msg: Mapping[str, Any], *expected: str) -> str:
    kind = msg.get("type") if isinstance(msg, Mapping) else None
    if kind not in expected:
        raise ValueError(f"expected a {' or '.join(expected)} message, not {str(kind)[:40]!r}")
    return kind


@dataclasses.dataclass(frozen=True)
class Hello:
    """What a worker reports once its framework is imported and its devices are set up.

    Args:
        pid: The worker's process id (on its node).
        import_s: Seconds importing the framework (and Keras) took.
        tensorflow: TensorFlow's version ("" in a worker that did not import it: jax, torch).
        keras: Keras's version.
        intra_op_threads: Intra-op threads, as the backend reports them (``threads_applied``).
        inter_op_threads: Inter-op threads (0 where the backend has no such pool: jax).
        visible_devices: Logical devices the framework sees.
        physical_devices: ``TYPE:name`` of the physical devices the framework sees.
        device: The device strategy name.
        replicas: Replicas of the device strategy.
        device_info: What the device strategy's set-up reports.
        cuda_visible_devices: ``CUDA_VISIBLE_DEVICES`` in the worker (None: not set).
        build: What the framework was built with (CUDA/cuDNN versions...).
        backend: The Keras backend (None in hellos from before backends: tensorflow).
        backend_version: The backend framework's version.
        threads_applied: The thread caps as the backend applied and reports them (and where from).
        frameworks_loaded: Which of tensorflow, jax, torch were imported in the worker.
        thread_env: Ray only: the thread variables in the actor's environment.
        tensorflow_preimported: Ray only: TensorFlow was already imported when the actor started.
        node: Ray only: the host name of the node.
        node_ip: Ray only: the node's address.
        node_id: Ray only: Ray's id of the node.
        log_path: Ray only: the worker's log on its node.
        node_error: Ray only: why the node facts are missing.
        startup_s: Set by the pool: seconds from start to this hello.
        index: Set by the pool: the worker's index.
        placement: Set by the Ray pool: where its workers run, and how that was decided.
    """

    pid: int
    import_s: float = 0.0
    tensorflow: str = ""
    keras: str = ""
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    visible_devices: tuple[str, ...] = ()
    physical_devices: tuple[str, ...] = ()
    device: str = ""
    replicas: int = 1
    device_info: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    cuda_visible_devices: str | None = None
    build: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    backend: str | None = None
    backend_version: str | None = None
    threads_applied: Mapping[str, Any] | None = None
    frameworks_loaded: tuple[str, ...] | None = None
    thread_env: Mapping[str, Any] | None = None
    tensorflow_preimported: bool | None = None
    node: str | None = None
    node_ip: str | None = None
    node_id: str | None = None
    log_path: str | None = None
    node_error: str | None = None
    startup_s: float | None = None
    index: int | None = None
    placement: str | None = None

    def as_message(self) -> dict:
        """The ``hello`` message (plain JSON values; the fields still None of a Ray actor or the pool left out)."""
        msg: dict[str, Any] = {"type": "hello"}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.name in _OPTIONAL_HELLO:
                continue
            msg[f.name] = value
        return plain(msg)

    @classmethod
    def from_message(cls, msg: Mapping[str, Any]) -> "Hello":
        """The record of a ``hello`` message (missing optional keys get their defaults, unknown keys are ignored).

        Args:
            msg: A message read from a worker.

        Raises:
            ValueError: not a ``hello``, or no ``pid``.
        """
        _message_type(msg, "hello")
        if "pid" not in msg:
            raise ValueError("a hello message has a pid")
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in msg.items() if k in names}
        for key in ("visible_devices", "physical_devices"):
            if key in values:
                values[key] = tuple(values[key] or ())
        if values.get("frameworks_loaded") is not None:
            values["frameworks_loaded"] = tuple(values["frameworks_loaded"])
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class TrialReply:
    """One trial's outcome, as the worker (or the pool, for a worker that failed) reports it.

    Args:
        kind: ``result`` (the trial ran) or ``error`` (see ``error``).
        id: The trial's id (the worker echoes it; None where the pool made the reply).
        wall_s: Seconds the trial took (for an error: until it was seen to fail; None until known).
        cpu_s: CPU seconds of the worker during the trial.
        warmup_s: Seconds the workload counts as warm-up.
        samples: Samples the trial processed.
        quality: Quality metrics (NaN/inf already None).
        extra: Workload-declared fields.
        rss_bytes: The worker's resident memory after the trial.
        peak_rss_bytes: The worker's peak resident memory so far.
        error: Why the trial failed (``kind == "error"`` only).
        worker: Index of the worker that ran it (set by the pool).
        node: The node it ran on (Ray only).
    """

    kind: str
    id: str | None = None
    wall_s: float | None = None
    cpu_s: float = 0.0
    warmup_s: float = 0.0
    samples: float = 0.0
    quality: Mapping[str, float | None] = dataclasses.field(default_factory=dict)
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    rss_bytes: int = 0
    peak_rss_bytes: int = 0
    error: TrialError | None = None
    worker: int = 0
    node: str | None = None

    @property
    def ok(self) -> bool:
        """True for a ``result``."""
        return self.kind == "result"

    @classmethod
    def failure(
        cls,
        kind: str,
        message: str,
        exit_code: int | None = None,
        signal: int | None = None,
        stderr_tail: str = "",
        *,
        wall_s: float | None = None,
        worker: int = 0,
        id: str | None = None,
        node: str | None = None,
    ) -> "TrialReply":
        """The ``error`` reply of a trial that did not finish: the one constructor of every failure.

        Args:
            kind: ``exception``, ``oom``, ``crash``, ``timeout``, ``startup`` or ``protocol``.
            message: One line saying what happened.
            exit_code: The worker's exit status, if it exited.
            signal: The signal that ended it, if one did.
            stderr_tail: The last lines the worker wrote.
            wall_s: Seconds until the failure was seen (None: the pool fills it in).
            worker: Index of the worker.
            id: The trial's id, when the worker made the reply.
            node: The node (Ray only).
        """
        error = TrialError(kind=kind, message=message, exit_code=exit_code, signal=signal, stderr_tail=stderr_tail)
        return cls(kind="error", id=id, wall_s=wall_s, error=error, worker=worker, node=node)

    def stamped(self, worker: int, elapsed: float, node: str | None = None) -> "TrialReply":
        """This reply as the pool hands it on: the worker's index set, an error's missing ``wall_s`` and a
        missing ``node`` filled in.

        Args:
            worker: Index of the worker that ran the trial.
            elapsed: Seconds since the trial was sent (an error's ``wall_s`` if it has none).
            node: The worker's node (Ray only).
        """
        wall = self.wall_s if self.wall_s is not None or self.ok else elapsed
        return dataclasses.replace(self, worker=worker, wall_s=wall, node=self.node if self.node is not None else node)

    def as_message(self) -> dict:
        """The ``result`` or ``error`` message (plain JSON values)."""
        if self.ok:
            msg: dict[str, Any] = {
                "type": "result", "id": self.id, "wall_s": self.wall_s, "cpu_s": self.cpu_s,
                "warmup_s": self.warmup_s, "samples": self.samples, "quality": self.quality, "extra": self.extra,
                "rss_bytes": self.rss_bytes, "peak_rss_bytes": self.peak_rss_bytes,
            }
        else:
            error = self.error or TrialError(kind="crash", message="trial failed")
            msg = {"type": "error", "id": self.id, **dataclasses.asdict(error)}
            if self.wall_s is not None:
                msg["wall_s"] = self.wall_s
        msg["worker"] = self.worker
        if self.node is not None:
            msg["node"] = self.node
        return plain(msg)

    @classmethod
    def from_message(cls, msg: Mapping[str, Any]) -> "TrialReply":
        """The record of a ``result`` or ``error`` message (missing optional keys get their defaults).

        Args:
            msg: A message read from a worker.

        Raises:
            ValueError: not a ``result``/``error`` message, or a ``result`` without ``wall_s``/``cpu_s``
                (KeyError) or with a field of the wrong type (TypeError, ValueError).
        """
        kind = _message_type(msg, "result", "error")
        common = {"id": msg.get("id"), "worker": int(msg.get("worker", 0) or 0), "node": msg.get("node")}
        if kind == "error":
            wall = msg.get("wall_s")
            return cls.failure(
                str(msg.get("kind", "crash")),
                str(msg.get("message", "trial failed")),
                exit_code=msg.get("exit_code"),
                signal=msg.get("signal"),
                stderr_tail=str(msg.get("stderr_tail", "") or ""),
                wall_s=None if wall is None else float(wall),
                **common,
            )
        return cls(
            kind="result",
            wall_s=float(msg["wall_s"]),
            cpu_s=float(msg["cpu_s"]),
            warmup_s=float(msg.get("warmup_s", 0.0) or 0.0),
            samples=float(msg.get("samples", 0.0) or 0.0),
            quality=dict(msg.get("quality") or {}),
            extra=dict(msg.get("extra") or {}),
            rss_bytes=int(msg.get("rss_bytes", 0) or 0),
            peak_rss_bytes=int(msg.get("peak_rss_bytes", 0) or 0),
            **common,
        )
