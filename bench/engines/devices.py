"""Device strategies: where a worker's framework runs (CPU, one GPU, several devices).

A device strategy decides a worker's device environment *before* its framework is imported
(``child_env``), says whether it can run on this machine for a Keras backend (``availability``),
and, inside the worker after import, sets devices up and gives the scope models are built in
(``setup``). What differs between backends (device variables, GPU probes, the multi-device scope)
is asked of the backend (:class:`bench.backends.base.Backend`); nothing here branches on its name.

Strategies (``--device``):

- ``cpu``: every GPU hidden (``CUDA_VISIBLE_DEVICES`` empty), so a CPU figure is a CPU figure.
- ``gpu`` / ``gpu:K``: one GPU per worker. ``gpu`` deals the visible GPUs out round-robin
  (worker i gets GPU i mod G); ``gpu:K`` puts every worker on visible GPU K. Workers get their
  backend's variables so several can share a GPU (tensorflow ``TF_FORCE_GPU_ALLOW_GROWTH=true``,
  jax ``XLA_PYTHON_CLIENT_PREALLOCATE=false``), and ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so GPU
  numbers mean what NVML / nvidia-smi say.
- ``mirrored`` (tensorflow only): one model over several devices with
  ``tf.distribute.MirroredStrategy`` (global batch = per-replica batch x replicas). Over every
  visible GPU (split between workers when there are several); with no GPU visible, over the CPU
  split into ``XPUBENCH_MIRRORED_CPUS`` (default 2) logical devices, so multi-device code runs for
  real. ``mirrored:cpuN`` always splits the CPU into N logical devices (GPUs hidden).
- ``data_parallel`` (jax only): the same over ``keras.distribution.DataParallel``; logical CPU
  devices come from ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (``data_parallel:cpuN``).
- ``all`` (in a device list): every strategy; those this machine cannot run are skipped with
  the reason recorded.

Nothing here imports a framework in the parent: GPU visibility comes from NVML and, where NVML
cannot tell (or to confirm the backend's framework can use the GPUs NVML sees), a short probe
subprocess of that backend.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import re
import subprocess
import sys
from importlib import metadata
from typing import Callable, ClassVar, Sequence

from bench.backends import registry
from bench.backends.base import Backend
from bench.errors import UsageError, choices_error

MIRRORED_CPUS_VAR = "XPUBENCH_MIRRORED_CPUS"
GPU_PROBE_VAR = "XPUBENCH_GPU_PROBE"
DEFAULT_MIRRORED_CPUS = 2
MAX_LOGICAL_CPUS = 64
PROBE_TIMEOUT_S = 180.0


@dataclasses.dataclass(frozen=True)
class WorkerDevice:
    """What ``setup`` returns inside a worker.

    Args:
        scope: Factory of the context models are built in (a distribution strategy's scope).
        replicas: Model replicas kept in sync (global batch = per-replica batch x replicas).
        info: JSON facts for the worker's hello (devices used, kind, strategy class).
    """

    scope: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    replicas: int = 1
    info: dict = dataclasses.field(default_factory=dict)


class DeviceStrategy:
    """Base class. Subclasses set ``name`` and override what differs."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self, spec: str):
        self.spec = spec

    def availability(self, backend: str = registry.DEFAULT) -> str | None:
        """None when this strategy can run here with ``backend``, else the reason it cannot (one line).

        Args:
            backend: The Keras backend that will run it (known and installed).
        """
        chosen = registry.get_backend(backend)
        return chosen.supports(self.spec) or self._availability(chosen)

    def _availability(self, backend: Backend) -> str | None:
        return None

    def child_env(self, worker_index: int, n_workers: int, backend: str = registry.DEFAULT) -> dict[str, str]:
        """Environment variables set in worker ``worker_index`` before its framework is imported.

        Args:
            worker_index: The worker's index (0-based; replacements continue the count).
            n_workers: Workers in the pool.
            backend: The Keras backend the workers run.
        """
        return {}

    def nvml_indices(self, n_workers: int, backend: str = registry.DEFAULT) -> list[int] | None:
        """NVML indices of the GPUs this strategy's workers use (None: unknown / every GPU).

        Args:
            n_workers: Workers in the pool.
            backend: The Keras backend the workers run (whose GPUs they are).
        """
        return None

    def setup(self, backend: str | Backend | None = None) -> WorkerDevice:
        """Runs in the worker right after its framework is imported, before any op.

        Args:
            backend: The backend (or its name; default: the worker's ``KERAS_BACKEND``).

        Raises:
            RuntimeError: the backend cannot run this strategy, or its devices are not there.
        """
        chosen = _worker_backend(backend)
        reason = chosen.supports(self.spec)
        if reason:
            raise RuntimeError(reason)
        return self._setup(chosen)

    def _setup(self, backend: Backend) -> WorkerDevice:
        return WorkerDevice()


def _worker_backend(backend: str | Backend | None) -> Backend:
    if isinstance(backend, Backend):
        return backend
    return registry.get_backend(backend or os.environ.get("KERAS_BACKEND") or registry.DEFAULT)


# ---------------------------------------------------------------- pure assignment logic


def parse_cuda_visible(value: str | None, count: int, uuids: Sequence[str] = ()) -> list[tuple[str, int | None]]:
    """Which GPUs a ``CUDA_VISIBLE_DEVICES`` value leaves visible, as CUDA reads it.

    CUDA takes a comma-separated list of indices or UUIDs (``GPU-…``, ``MIG-…``, unique prefixes
    allowed) and stops at the first entry that names no device; ``-1`` or an empty value hides
    every GPU.

    Args:
        value: The variable's value, or None when it is not set (every GPU visible).
        count: GPUs on the machine (NVML's count, PCI bus order).
        uuids: Their UUIDs in the same order, to resolve UUID entries ("" / unknown allowed).

    Returns:
        ``[(id for a worker's CUDA_VISIBLE_DEVICES, NVML index or None if unknown)]`` in order.
    """
    if value is None:
        return [(str(i), i) for i in range(count)]
    out: list[tuple[str, int | None]] = []
    seen: set = set()
    for raw in value.split(","):
        entry = raw.strip()
        if re.fullmatch(r"\d+", entry):
            index = int(entry)
            if index >= count:
                break
            key: tuple[str, int | None] = (str(index), index)
        elif entry.startswith(("GPU-", "MIG-")):
            matches = [i for i, u in enumerate(uuids) if isinstance(u, str) and u.startswith(entry)]
            if uuids and len(matches) != 1 and entry.startswith("GPU-"):
                break
            key = (entry, matches[0] if len(matches) == 1 else None)
        else:
            break  # -1, empty or junk: CUDA stops here
        if key[0] in seen:
            break  # CUDA rejects a repeated device
        seen.add(key[0])
        out.append(key)
    return out


def gpu_for_worker(worker_index: int, n_workers: int, gpus: Sequence[str], pinned: int | None = None) -> str:
    """The ``CUDA_VISIBLE_DEVICES`` value of one worker under the ``gpu`` strategy.

    Round-robin: worker i gets visible GPU i mod G, so N workers on G GPUs share them as evenly
    as possible (a worker started later to replace one that died continues the rotation).
    With ``pinned`` every worker gets that one visible GPU.

    Args:
        worker_index: The worker's index (0-based).
        n_workers: Workers in the pool.
        gpus: Ids of the visible GPUs (from :func:`parse_cuda_visible`).
        pinned: A position in ``gpus`` (``gpu:K``), or None for round-robin.

    Raises:
        ValueError: no GPU, a negative index, or ``pinned`` out of range.
    """
    if not gpus:
        raise ValueError("no GPU to assign")
    if worker_index < 0 or n_workers < 1:
        raise ValueError(f"bad worker index {worker_index} of {n_workers}")
    if pinned is not None:
        if not 0 <= pinned < len(gpus):
            raise ValueError(f"GPU {pinned} is not visible ({len(gpus)} visible)")
        return gpus[pinned]
    return gpus[worker_index % len(gpus)]


def assign_gpus(n_workers: int, gpus: Sequence[str], pinned: int | None = None) -> list[str]:
    """``CUDA_VISIBLE_DEVICES`` of each of ``n_workers`` workers (see :func:`gpu_for_worker`)."""
    return [gpu_for_worker(i, n_workers, gpus, pinned) for i in range(n_workers)]


def partition_gpus(worker_index: int, n_workers: int, gpus: Sequence[str]) -> list[str]:
    """The GPUs one worker mirrors its model over under ``mirrored``.

    With at least as many GPUs as workers, each worker gets its own contiguous block (block
    sizes differ by at most one, no GPU shared); with fewer GPUs than workers, each worker gets
    one GPU round-robin (shared).

    Args:
        worker_index: The worker's index (replacement workers wrap around: index mod n).
        n_workers: Workers in the pool.
        gpus: Ids of the visible GPUs.

    Raises:
        ValueError: no GPU, or a bad index.
    """
    if not gpus:
        raise ValueError("no GPU to assign")
    if worker_index < 0 or n_workers < 1:
        raise ValueError(f"bad worker index {worker_index} of {n_workers}")
    g = len(gpus)
    if n_workers > g:
        return [gpus[worker_index % g]]
    i = worker_index % n_workers
    base, extra = divmod(g, n_workers)
    start = i * base + min(i, extra)
    return list(gpus[start : start + base + (1 if i < extra else 0)])


# ---------------------------------------------------------------- what the parent can see


@dataclasses.dataclass(frozen=True)
class GpuInventory:
    """The GPUs workers could use, as the parent sees them without importing TensorFlow.

    Args:
        ids: Values usable in a worker's ``CUDA_VISIBLE_DEVICES``, in visible order.
        nvml_indices: NVML index of each id (None when unknown, e.g. found by the probe only).
        source: ``nvml``, ``nvml+probe``, ``probe`` or ``none``.
        reason: Why there is no GPU ("" when there is).
    """

    ids: tuple[str, ...] = ()
    nvml_indices: tuple[int | None, ...] = ()
    source: str = "none"
    reason: str = ""


def _probe_gpus(backend: str) -> tuple[list[str] | None, str]:
    """Asks a fresh process of ``backend``'s framework which GPUs it sees (a few seconds: one import).

    Args:
        backend: The backend's name.

    Returns:
        (GPU device names, "") or (None, why the probe failed), or ([], what the framework was built with).
    """
    from bench.engines.childenv import child_env
    from bench.model.results import read_message

    chosen = registry.get_backend(backend)
    env = child_env(1, 1, backend=backend)
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    try:
        proc = subprocess.run(
            [sys.executable, "-c", chosen.gpu_probe_code()], env=env, capture_output=True, text=True,
            timeout=PROBE_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{chosen.label} probe failed ({type(exc).__name__})"
    line = (proc.stdout.strip().splitlines() or [""])[-1]
    try:
        facts = read_message(line)
    except ValueError:
        tail = " ".join(proc.stderr.strip().splitlines()[-1:])[:200]
        return None, f"{chosen.label} probe failed (exit {proc.returncode}: {tail})"
    if facts["gpus"]:
        return list(facts["gpus"]), ""
    return [], f"{chosen.label} ({facts['build']}) lists no GPU device"


def _probe_wanted(nvml_sees_gpus: bool, backend: str = registry.DEFAULT) -> bool:
    setting = os.environ.get(GPU_PROBE_VAR, "").strip().lower()
    if setting in ("0", "no", "false", "off"):
        return False
    if setting in ("1", "yes", "true", "on"):
        return True
    if nvml_sees_gpus:
        return True  # confirm the framework can use them (pip `tensorflow` needs `[and-cuda]`, jax a CUDA plugin)
    if sys.platform == "darwin":
        return True
    for package in registry.get_backend(backend).non_nvidia_gpu_packages:
        try:
            metadata.version(package)
            return True
        except metadata.PackageNotFoundError:
            continue
    return False


@functools.lru_cache(maxsize=12)
def _inventory(cuda_visible: str | None, backend: str = registry.DEFAULT) -> GpuInventory:
    from bench.measure.nvml import nvml

    if cuda_visible is not None and not parse_cuda_visible(cuda_visible, 1 << 16, ()):
        return GpuInventory(reason=f"CUDA_VISIBLE_DEVICES={cuda_visible!r} hides every GPU")
    nv = nvml()
    if nv.available:
        count = nv.device_count()
        visible = parse_cuda_visible(cuda_visible, count, nv.uuids())
        if not visible:
            return GpuInventory(
                reason=f"CUDA_VISIBLE_DEVICES={cuda_visible!r} names none of the {count} GPU(s) NVML sees"
            )
        source = "nvml"
        if _probe_wanted(True, backend):
            names, why = _probe_gpus(backend)
            if names is not None and not names:
                return GpuInventory(reason=f"NVML sees {count} GPU(s) but {why}; {registry.get_backend(backend).gpu_hint}")
            source = "nvml+probe" if names else "nvml"
        return GpuInventory(
            ids=tuple(v[0] for v in visible), nvml_indices=tuple(v[1] for v in visible), source=source
        )
    if _probe_wanted(False, backend):
        names, why = _probe_gpus(backend)
        if names:
            return GpuInventory(ids=tuple(str(i) for i in range(len(names))),
                                nvml_indices=(None,) * len(names), source="probe")
        return GpuInventory(reason=f"{why}; {nv.reason}")
    label = registry.get_backend(backend).label
    return GpuInventory(reason=f"{nv.reason}; set {GPU_PROBE_VAR}=1 to ask {label} directly")


def gpu_inventory(backend: str = registry.DEFAULT) -> GpuInventory:
    """The GPUs visible to ``backend``'s workers started from this process (cached per CUDA_VISIBLE_DEVICES).

    Args:
        backend: The Keras backend whose framework is asked (after NVML) whether it can use them.
    """
    return _inventory(os.environ.get("CUDA_VISIBLE_DEVICES"), backend)


def reset_for_tests() -> None:
    """Forgets the cached GPU inventory (after a test installs a fake NVML or probe)."""
    _inventory.cache_clear()


def no_gpu_reason(inventory: GpuInventory, backend: str = registry.DEFAULT) -> str:
    """``no GPU visible to TensorFlow (why)``, naming ``backend``'s framework."""
    return f"no GPU visible to {registry.get_backend(backend).label} ({inventory.reason})"


# ---------------------------------------------------------------- strategies


class CpuDevice(DeviceStrategy):
    """Hides every GPU, so a CPU figure is a CPU figure even on a GPU machine."""

    name = "cpu"
    description = "CPU only (CUDA_VISIBLE_DEVICES empty)"

    def __init__(self, spec: str):
        super().__init__(spec)
        if spec != "cpu":
            raise UsageError(f"bad device {spec!r} (cpu takes no option)")

    def child_env(self, worker_index: int, n_workers: int, backend: str = registry.DEFAULT) -> dict[str, str]:
        return {"CUDA_VISIBLE_DEVICES": "", **registry.get_backend(backend).device_env("cpu")}

    def nvml_indices(self, n_workers: int, backend: str = registry.DEFAULT) -> list[int] | None:
        return []

    def _setup(self, backend: Backend) -> WorkerDevice:
        return WorkerDevice(info=backend.setup_cpu())


class GpuDevice(DeviceStrategy):
    """One GPU per worker: round-robin over the visible GPUs (``gpu``) or pinned (``gpu:K``)."""

    name = "gpu"
    description = "one GPU per worker, round-robin (gpu:K pins visible GPU K)"

    def __init__(self, spec: str):
        super().__init__(spec)
        _, sep, opt = spec.partition(":")
        self.pinned: int | None = None
        if sep:
            if not re.fullmatch(r"\d+", opt):
                raise UsageError(f"bad device {spec!r} (expected gpu or gpu:K, K a visible GPU's index)")
            self.pinned = int(opt)

    def _availability(self, backend: Backend) -> str | None:
        inv = gpu_inventory(backend.name)
        if not inv.ids:
            return no_gpu_reason(inv, backend.name)
        if self.pinned is not None and self.pinned >= len(inv.ids):
            return f"no GPU {self.pinned} visible to {backend.label} ({len(inv.ids)} visible: 0..{len(inv.ids) - 1})"
        return None

    def assignment(self, n_workers: int, backend: str = registry.DEFAULT) -> list[str]:
        """``CUDA_VISIBLE_DEVICES`` of each worker (see :func:`assign_gpus`)."""
        return assign_gpus(n_workers, gpu_inventory(backend).ids, self.pinned)

    def child_env(self, worker_index: int, n_workers: int, backend: str = registry.DEFAULT) -> dict[str, str]:
        inv = gpu_inventory(backend)
        if not inv.ids:
            raise UsageError(no_gpu_reason(inv, backend))
        env = {
            "CUDA_VISIBLE_DEVICES": gpu_for_worker(worker_index, n_workers, inv.ids, self.pinned),
            **registry.get_backend(backend).device_env("gpu"),
        }
        if inv.source.startswith("nvml"):
            env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        return env

    def nvml_indices(self, n_workers: int, backend: str = registry.DEFAULT) -> list[int] | None:
        inv = gpu_inventory(backend)
        if not inv.ids or None in inv.nvml_indices:
            return None
        by_id = dict(zip(inv.ids, inv.nvml_indices))
        return sorted({by_id[g] for g in assign_gpus(max(1, n_workers), inv.ids, self.pinned)})

    def _setup(self, backend: Backend) -> WorkerDevice:
        return WorkerDevice(info=backend.setup_gpu())


class MirroredDevice(DeviceStrategy):
    """``tf.distribute.MirroredStrategy`` over the visible GPUs, or over logical CPU devices."""

    name = "mirrored"
    description = (f"MirroredStrategy over all visible GPUs (no GPU: the CPU split into "
                   f"${MIRRORED_CPUS_VAR} or {DEFAULT_MIRRORED_CPUS} logical devices; mirrored:cpuN)")

    def __init__(self, spec: str):
        super().__init__(spec)
        _, sep, opt = spec.partition(":")
        self.cpus: int | None = None
        if sep:
            m = re.fullmatch(r"cpu(\d+)", opt)
            if not m or not 1 <= int(m.group(1)) <= MAX_LOGICAL_CPUS:
                raise UsageError(
                    f"bad device {spec!r} (expected {self.name} or {self.name}:cpuN, N from 1 to {MAX_LOGICAL_CPUS})"
                )
            self.cpus = int(m.group(1))

    def _fallback_cpus(self) -> int:
        text = os.environ.get(MIRRORED_CPUS_VAR, "").strip() or str(DEFAULT_MIRRORED_CPUS)
        if not re.fullmatch(r"\d+", text) or not 1 <= int(text) <= MAX_LOGICAL_CPUS:
            raise UsageError(f"bad {MIRRORED_CPUS_VAR}={text!r} (expected a whole number from 1 to {MAX_LOGICAL_CPUS})")
        return int(text)

    def plan(self, backend: str = registry.DEFAULT) -> tuple[str, int | GpuInventory]:
        """``("cpu", N logical devices)`` or ``("gpu", inventory)``: what the workers will mirror over."""
        if self.cpus is not None:
            return "cpu", self.cpus
        inv = gpu_inventory(backend)
        if inv.ids:
            return "gpu", inv
        return "cpu", self._fallback_cpus()

    def _availability(self, backend: Backend) -> str | None:
        try:
            self.plan(backend.name)
        except UsageError as exc:
            return str(exc)
        return None

    def child_env(self, worker_index: int, n_workers: int, backend: str = registry.DEFAULT) -> dict[str, str]:
        kind, what = self.plan(backend)
        chosen = registry.get_backend(backend)
        if kind == "cpu":
            return {"CUDA_VISIBLE_DEVICES": "", MIRRORED_CPUS_VAR: str(what),
                    **chosen.device_env("cpu", logical_cpus=int(what))}
        env = {
            "CUDA_VISIBLE_DEVICES": ",".join(partition_gpus(worker_index, n_workers, what.ids)),
            **chosen.device_env("gpu"),
        }
        if what.source.startswith("nvml"):
            env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        return env

    def nvml_indices(self, n_workers: int, backend: str = registry.DEFAULT) -> list[int] | None:
        kind, what = self.plan(backend)
        if kind == "cpu":
            return []
        if None in what.nvml_indices:
            return None
        by_id = dict(zip(what.ids, what.nvml_indices))
        used = {g for i in range(max(1, n_workers)) for g in partition_gpus(i, n_workers, what.ids)}
        return sorted(by_id[g] for g in used)

    def _setup(self, backend: Backend) -> WorkerDevice:
        n_cpu = os.environ.get(MIRRORED_CPUS_VAR, "").strip()
        scope = backend.multi_device(int(n_cpu) if n_cpu else None)
        return WorkerDevice(scope=scope.scope, replicas=scope.replicas, info=scope.info)


class DataParallelDevice(MirroredDevice):
    """``keras.distribution.DataParallel`` (jax) over the visible GPUs, or over logical CPU devices."""

    name = "data_parallel"
    description = (f"keras.distribution.DataParallel (jax) over all visible GPUs (no GPU: the CPU split into "
                   f"${MIRRORED_CPUS_VAR} or {DEFAULT_MIRRORED_CPUS} logical devices; data_parallel:cpuN)")


_DEVICES: dict[str, type[DeviceStrategy]] = {"cpu": CpuDevice, "gpu": GpuDevice, "mirrored": MirroredDevice,
                                             "data_parallel": DataParallelDevice}


def device_names() -> list[str]:
    return sorted(_DEVICES)


def get_device(spec: str) -> DeviceStrategy:
    """``"cpu"``, ``"gpu"``, ``"gpu:1"``, ``"mirrored:cpu2"``... -> a DeviceStrategy.

    Raises:
        UsageError: unknown name (listing the valid ones) or a malformed option.
    """
    base = spec.split(":", 1)[0]
    if base not in _DEVICES:
        raise choices_error("device", spec, _DEVICES)
    return _DEVICES[base](spec)


def parse_devices(text: str, backend: str = registry.DEFAULT) -> list[str]:
    """``"cpu,mirrored"`` -> validated device specs.

    A named strategy this machine cannot run is an error (``--device gpu`` without a visible
    GPU: ``no GPU visible to TensorFlow (...)``; ``--device mirrored`` under jax: ``mirrored runs on
    tensorflow only (jax: use data_parallel)``); ``all`` expands to every registered strategy and
    leaves the unavailable ones to be skipped (with the reason) by the runner.

    Args:
        text: Comma-separated device specs.
        backend: The Keras backend the named strategies must run on.

    Raises:
        UsageError: empty list, unknown or malformed name, or a named strategy unavailable here.
    """
    specs = [p.strip() for p in str(text).split(",") if p.strip()]
    if not specs:
        raise UsageError(f"bad device list {text!r} (choose from: {', '.join(device_names() + ['all'])})")
    out: list[str] = []
    for spec in specs:
        if spec == "all":
            out.extend(n for n in device_names() if n not in out)
            continue
        reason = get_device(spec).availability(backend)
        if reason:
            raise UsageError(reason)
        if spec not in out:
            out.append(spec)
    return out
