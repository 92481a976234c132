"""Lazy NVML: initialised on first use, only if the ``pynvml`` module (nvidia-ml-py) is present.

Every query returns ``"unavailable"`` when NVML, the GPU or that one query fails; nothing here
raises. Importing this module does not import or initialise NVML.
"""

from __future__ import annotations

import threading
from typing import Any

UNAVAILABLE = "unavailable"


class Nvml:
    """A process-wide lazy NVML handle."""

    def __init__(self):
        self._lock = threading.Lock()
        self._tried = False
        self._nv = None
        self._handles: list = []
        self.reason = "not initialised"

    def _init(self) -> None:
        with self._lock:
            if self._tried:
                return
            self._tried = True
            try:
                import pynvml  # provided by nvidia-ml-py
            except Exception as exc:  # ImportError or a broken install
                self.reason = f"pynvml not importable ({type(exc).__name__}); pip install nvidia-ml-py"
                return
            try:
                pynvml.nvmlInit()
                count = pynvml.nvmlDeviceGetCount()
                self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            except Exception as exc:
                self.reason = f"NVML unavailable ({_one_line(exc)})"
                return
            self._nv = pynvml
            self.reason = "" if self._handles else "NVML found no GPU"

    @property
    def available(self) -> bool:
        self._init()
        return self._nv is not None and bool(self._handles)

    def device_count(self) -> int:
        self._init()
        return len(self._handles)

    def _q(self, fn_name: str, handle, *args, post=lambda v: v) -> Any:
        try:
            return post(getattr(self._nv, fn_name)(handle, *args))
        except Exception:
            return UNAVAILABLE

    def sample(self) -> list[dict]:
        """One reading per GPU: utilisation %, memory, power (W), SM clock (MHz), temperature (C)."""
        if not self.available:
            return []
        nv = self._nv
        out = []
        for i, h in enumerate(self._handles):
            mem = self._q("nvmlDeviceGetMemoryInfo", h)
            out.append(
                {
                    "index": i,
                    "util_percent": self._q("nvmlDeviceGetUtilizationRates", h, post=lambda u: float(u.gpu)),
                    "mem_used_bytes": mem.used if mem != UNAVAILABLE else UNAVAILABLE,
                    "mem_total_bytes": mem.total if mem != UNAVAILABLE else UNAVAILABLE,
                    "power_w": self._q("nvmlDeviceGetPowerUsage", h, post=lambda mw: mw / 1000.0),
                    "sm_clock_mhz": self._q(
                        "nvmlDeviceGetClockInfo", h, getattr(nv, "NVML_CLOCK_SM", 1), post=float
                    ),
                    "temperature_c": self._q(
                        "nvmlDeviceGetTemperature", h, getattr(nv, "NVML_TEMPERATURE_GPU", 0), post=float
                    ),
                    "energy_mj": self._q("nvmlDeviceGetTotalEnergyConsumption", h, post=float),
                }
            )
        return out

    def describe(self) -> list[dict]:
        """Static facts per GPU for the machine fingerprint."""
        if not self.available:
            return []
        nv = self._nv
        driver = UNAVAILABLE
        try:
            driver = _text(nv.nvmlSystemGetDriverVersion())
        except Exception:
            pass
        out = []
        for i, h in enumerate(self._handles):
            mem = self._q("nvmlDeviceGetMemoryInfo", h)
            out.append(
                {
                    "index": i,
                    "name": self._q("nvmlDeviceGetName", h, post=_text),
                    "memory_total_bytes": mem.total if mem != UNAVAILABLE else UNAVAILABLE,
                    "driver_version": driver,
                    "power_limit_w": self._q("nvmlDeviceGetPowerManagementLimit", h, post=lambda mw: mw / 1000.0),
                }
            )
        return out


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


_NVML: Nvml | None = None


def nvml() -> Nvml:
    """The process-wide lazy NVML handle (not initialised until first queried)."""
    global _NVML
    if _NVML is None:
        _NVML = Nvml()
    return _NVML


def reset_for_tests() -> None:
    """Forgets the handle so a test can install a fake ``pynvml``."""
    global _NVML
    _NVML = None
