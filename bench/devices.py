"""Device strategies: where a worker's TensorFlow runs (CPU, one GPU, several devices).

A device strategy decides a worker's device environment *before* TensorFlow is imported
(``child_env``), says whether it can run on this machine (``availability``), and, inside the
worker after import, sets devices up and gives the scope models are built in (``setup``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Callable, ClassVar

from bench.errors import UsageError, choices_error


@dataclasses.dataclass(frozen=True)
class WorkerDevice:
    """What ``setup`` returns inside a worker."""

    scope: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    replicas: int = 1
    info: dict = dataclasses.field(default_factory=dict)


class DeviceStrategy:
    """Base class. Subclasses set ``name`` and override what differs."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self, spec: str):
        self.spec = spec

    def availability(self) -> str | None:
        """None when this strategy can run here, else the reason it cannot (one line)."""
        return None

    def child_env(self, worker_index: int, n_workers: int) -> dict[str, str]:
        """Environment variables set in worker ``worker_index`` before TensorFlow is imported."""
        return {}

    def setup(self) -> WorkerDevice:
        """Runs in the worker right after ``import tensorflow``, before any op."""
        return WorkerDevice()


class CpuDevice(DeviceStrategy):
    """Hides every GPU, so a CPU figure is a CPU figure even on a GPU machine."""

    name = "cpu"
    description = "CPU only (CUDA_VISIBLE_DEVICES empty)"

    def child_env(self, worker_index: int, n_workers: int) -> dict[str, str]:
        return {"CUDA_VISIBLE_DEVICES": ""}


_DEVICES: dict[str, type[DeviceStrategy]] = {"cpu": CpuDevice}


def register_device(cls: type[DeviceStrategy]) -> type[DeviceStrategy]:
    """Class decorator adding a device strategy to the registry."""
    _DEVICES[cls.name] = cls
    return cls


def device_names() -> list[str]:
    return sorted(_DEVICES)


def get_device(spec: str) -> DeviceStrategy:
    """``"cpu"``, ``"gpu"``, ``"gpu:1"``... -> a DeviceStrategy.

    Raises:
        UsageError: unknown name, listing the valid ones.
    """
    base = spec.split(":", 1)[0]
    if base not in _DEVICES:
        raise choices_error("device", spec, _DEVICES)
    return _DEVICES[base](spec)


def parse_devices(text: str) -> list[str]:
    """``"cpu,mirrored"`` -> validated device specs (``all`` expands to every registered one)."""
    specs = [p.strip() for p in str(text).split(",") if p.strip()]
    if not specs:
        raise UsageError(f"bad device list {text!r} (choose from: {', '.join(device_names() + ['all'])})")
    out: list[str] = []
    for spec in specs:
        if spec == "all":
            out.extend(n for n in device_names() if n not in out)
            continue
        get_device(spec)
        if spec not in out:
            out.append(spec)
    return out
