"""The Backend interface: what differs between Keras backends, in one place per backend.

The parent side (no framework import): the pip distribution and extra, the installed version
(``importlib.metadata``), the thread and device variables a worker starts with, and which device
strategies the backend can run. The worker side (imports the framework, after ``KERAS_BACKEND``
is set): thread caps as applied, versions and build facts, the devices the framework sees, device
set-up, the multi-device scope and the compiled predict call.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
from importlib import metadata
from typing import Any, Callable, ClassVar

# The multi-device strategy of each backend that has one: device name -> backend name.
MULTI_DEVICE = {"mirrored": "tensorflow", "data_parallel": "jax"}
# Device strategies every backend runs.
COMMON_DEVICES = ("cpu", "gpu")
# Thread variables the BLAS/OpenMP libraries under every backend read.
BLAS_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def merge_flags(existing: str, extra: str) -> str:
    """A flag list (``--a=1 --b``) with ``extra``'s flags added; a flag both name takes ``extra``'s value.

    Args:
        existing: The flags already set (the user's ``XLA_FLAGS``), "" for none.
        extra: The flags to add.

    Returns:
        The flags, space-separated: the existing ones in their order, then the new ones.
    """
    def name(flag: str) -> str:
        return flag.split("=", 1)[0]

    added = extra.split()
    names = {name(f) for f in added}
    kept = [f for f in existing.split() if name(f) not in names]
    return " ".join(kept + added)


def flag_value(flags: str, flag: str) -> str | None:
    """The value of ``--flag=value`` in a flag list (the last one wins, as in XLA), None when absent.

    Args:
        flags: Space-separated flags.
        flag: The flag's name, with its dashes (``--xla_force_host_platform_device_count``).
    """
    value = None
    for f in flags.split():
        key, sep, v = f.partition("=")
        if key == flag:
            value = v if sep else "true"
    return value


class Unavailable(RuntimeError):
    """A backend facility (a compiled call, a device set-up) that cannot run here; the message says why."""


@dataclasses.dataclass(frozen=True)
class Scope:
    """A multi-device set-up inside a worker: what models are built in, and how many replicas.

    Args:
        scope: Factory of the context models are built in.
        replicas: Model replicas kept in sync (global batch = per-replica batch x replicas).
        info: JSON facts for the worker's hello (devices, strategy class, replicas).
    """

    scope: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    replicas: int = 1
    info: dict = dataclasses.field(default_factory=dict)


class Backend:
    """One Keras backend. Subclasses set the class attributes and implement the worker-side methods.

    Class attributes:
        name: ``KERAS_BACKEND`` value and registry name (``tensorflow``, ``jax``, ``torch``).
        label: The framework's name in messages (``TensorFlow``, ``JAX``, ``PyTorch``).
        module: The framework's import name (checked with ``find_spec``, never imported here).
        dist: The pip distribution whose version is recorded.
        extra: The xpubench extra that installs it (``""``: a core dependency).
        compiler: What the compiled predict call is, for labels (``tf.function``, ``jax.jit``...).
        gpu_hint: What to install when NVML sees a GPU this framework cannot use.
        non_nvidia_gpu_packages: GPU plug-ins NVML knows nothing about: with one installed, the
            framework itself is asked whether it sees a GPU.
        env_vars: Variables this backend's worker environment sets (recorded in results).
        flag_vars: Variables holding a list of ``--flag=value`` (``XLA_FLAGS``): merged flag by flag with
            what the user set, never replaced whole (:meth:`merge_env`).
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    module: ClassVar[str] = ""
    dist: ClassVar[str] = ""
    extra: ClassVar[str] = ""
    compiler: ClassVar[str] = ""
    gpu_hint: ClassVar[str] = ""
    non_nvidia_gpu_packages: ClassVar[tuple[str, ...]] = ()
    env_vars: ClassVar[tuple[str, ...]] = ()
    flag_vars: ClassVar[tuple[str, ...]] = ()

    # ------------------------------------------------------------ parent side: no framework import

    def installed(self) -> bool:
        """True when the framework can be imported (``importlib.util.find_spec``; nothing is imported)."""
        try:
            return importlib.util.find_spec(self.module) is not None
        except (ImportError, ValueError):  # a broken or half-installed package: not usable
            return False

    def version(self) -> str | None:
        """The installed distribution's version (``importlib.metadata``), None when it is not installed."""
        try:
            return metadata.version(self.dist)
        except metadata.PackageNotFoundError:
            return None

    def install_hint(self) -> str:
        """The pip command that installs this backend."""
        return f"pip install 'xpubench[{self.extra}]'" if self.extra else f"pip install {self.dist}"

    def supports(self, device_name: str) -> str | None:
        """Whether this backend can run a device strategy at all (not whether this machine has the device).

        Args:
            device_name: A device spec (``cpu``, ``gpu:1``, ``mirrored:cpu2``, ``data_parallel``...).

        Returns:
            None when it can; else the reason, one line, e.g.
            ``mirrored runs on tensorflow only (jax: use data_parallel)``.
        """
        base = str(device_name).split(":", 1)[0]
        owner = MULTI_DEVICE.get(base)
        if owner is None or owner == self.name:
            return None
        mine = [d for d, b in MULTI_DEVICE.items() if b == self.name]
        instead = f"{self.name}: use {mine[0]}" if mine else f"{self.name} has no multi-device strategy here"
        return f"{base} runs on {owner} only ({instead})"

    def thread_env(self, intra: int, inter: int, parent: dict[str, str] | None = None) -> dict[str, str]:
        """Thread caps for one worker, set before the framework is imported.

        Args:
            intra: Intra-op (and OMP/BLAS) threads.
            inter: Inter-op threads.
            parent: The worker's environment so far (a backend may extend a variable the user set,
                e.g. ``XLA_FLAGS``).
        """
        return {var: str(intra) for var in BLAS_THREAD_VARS}

    def device_env(self, kind: str, parent: dict[str, str] | None = None,
                   logical_cpus: int | None = None) -> dict[str, str]:
        """Device variables this backend adds for a kind of device, set before import.

        Args:
            kind: ``cpu`` (GPUs hidden) or ``gpu`` (GPUs given).
            parent: The worker's environment so far.
            logical_cpus: With ``cpu``: the CPU split into this many logical devices (a multi-device
                strategy without GPUs).
        """
        return {}

    def merge_env(self, env: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
        """``env`` updated with ``extra``; a ``flag_vars`` variable gets ``extra``'s flags merged into its own.

        Args:
            env: The environment so far (changed in place and returned).
            extra: Variables to set.
        """
        for key, value in extra.items():
            env[key] = merge_flags(env.get(key, ""), value) if key in self.flag_vars else value
        return env

    # ------------------------------------------------------------ worker side: imports the framework

    def import_framework(self) -> Any:
        """Imports the framework and Keras (``KERAS_BACKEND`` already set); returns the framework module."""
        raise NotImplementedError

    def apply_threads(self, env: dict[str, str] | None = None) -> dict[str, Any]:
        """Applies the thread caps the environment carries; returns what the framework reports in use.

        Args:
            env: The worker's environment (default: ``os.environ``).

        Returns:
            ``{"intra_op_threads": int, "inter_op_threads": int, ...}`` (what the framework says, or
            the value set where it cannot say, with ``"source"`` naming which).
        """
        raise NotImplementedError

    def facts(self) -> dict[str, Any]:
        """Version, build facts (CUDA/cuDNN where the framework says) and devices the framework sees.

        Returns:
            ``{"version", "build": {...}, "visible_devices": [...], "physical_devices": [...]}``.
        """
        raise NotImplementedError

    def gpus(self) -> list[str]:
        """Names of the GPUs the framework sees in this process (imports it)."""
        raise NotImplementedError

    def mark_clean(self) -> None:
        """In the worker, once the framework is imported: remembers its global state as clean, for
        :meth:`release_trial_state` to go back to."""

    def release_trial_state(self) -> int:
        """In the worker, between trials: drops what the framework keeps globally of a finished
        trial's traced functions (beyond the Keras session), so a worker that ran many trials is as
        lean as a fresh one. Returns how many entries it dropped (0: nothing to do here)."""
        return 0

    def setup_cpu(self) -> dict:
        """In the worker, before any op: makes sure no GPU is used; returns facts for the hello."""
        raise NotImplementedError

    def setup_gpu(self) -> dict:
        """In the worker: checks a GPU is there and prepares it; returns facts.

        Raises:
            RuntimeError: no GPU visible to the framework (a ``gpu`` run never measures the CPU).
        """
        raise NotImplementedError

    def multi_device(self, logical_cpus: int | None) -> Scope:
        """In the worker: this backend's multi-device strategy over the visible GPUs or N logical CPUs.

        Args:
            logical_cpus: The CPU split into this many logical devices (None: over the visible GPUs).

        Raises:
            Unavailable: this backend has no multi-device strategy.
        """
        raise Unavailable(f"{self.name} has no multi-device strategy here")

    def compile_predict(self, model, x) -> Callable:
        """A compiled forward pass of ``model`` for inputs shaped like ``x`` (any batch size).

        Args:
            model: A built Keras model.
            x: An example input batch (NumPy).

        Returns:
            ``fn(batch) -> numpy array`` of predictions (``training=False``), on the host.

        Raises:
            Unavailable: the backend's compiler does not work on this machine (the reason says why).
        """
        raise NotImplementedError

    def gpu_probe_code(self) -> str:
        """Python source a fresh process runs to say which GPUs this framework sees.

        It prints one JSON line ``{"gpus": [names], "build": "what it was built with"}``.
        """
        raise NotImplementedError
