"""Lazy NVML: initialised on first use, only if the ``pynvml`` module (nvidia-ml-py) is present.

Every query returns ``"unavailable"`` when NVML, the GPU or that one query fails; nothing here
raises. Importing this module does not import or initialise NVML. The reason a query failed is
kept in ``Nvml.errors`` (``{"<field>[<gpu index>]": "<NVML message>"}``) for diagnostics.

NVML numbers GPUs in PCI bus order, which is also CUDA's order when ``CUDA_DEVICE_ORDER`` is
``PCI_BUS_ID`` (the device strategies set it for GPU workers so the two agree).
"""

from __future__ import annotations

import threading
from typing import Any, Sequence

UNAVAILABLE = "unavailable"
# Besides pynvml.NVMLError, what a query can raise: AttributeError where an older nvidia-ml-py
# lacks the function, TypeError/ValueError (UnicodeDecodeError included) where its answer is not
# the shape the conversion expects.
_QUERY_ERRORS: tuple[type[BaseException], ...] = (AttributeError, TypeError, ValueError)


class Nvml:
    """A process-wide lazy NVML handle.

    Attributes:
        reason: Why NVML is not usable ("" when it is).
        errors: The last failure of each per-GPU query, keyed ``"<field>[<index>]"`` (and of the
            driver-wide ``driver_version`` and ``cuda_driver_version`` queries).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._tried = False
        self._nv = None
        self._handles: list = []
        self.reason = "not initialised"
        self.errors: dict[str, str] = {}

    def _init(self) -> None:
        with self._lock:
            if self._tried:
                return
            self._tried = True
            try:
                import pynvml  # provided by nvidia-ml-py
            except ImportError as exc:  # not installed (or a broken install): recorded as the reason
                self.reason = f"pynvml not importable ({type(exc).__name__}); pip install nvidia-ml-py"
                return
            try:
                pynvml.nvmlInit()
                count = pynvml.nvmlDeviceGetCount()
                self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            except pynvml.NVMLError as exc:  # no driver/library (NVMLError_LibraryNotFound...): recorded as the reason
                self.reason = f"NVML unavailable ({_one_line(exc)})"
                return
            self._nv = pynvml
            self.reason = "" if self._handles else "NVML found no GPU"

    @property
    def available(self) -> bool:
        """True when NVML initialised and found at least one GPU."""
        self._init()
        return self._nv is not None and bool(self._handles)

    def device_count(self) -> int:
        """GPUs NVML sees (every GPU of the machine: NVML ignores CUDA_VISIBLE_DEVICES)."""
        self._init()
        return len(self._handles)

    def _q(self, fn_name: str, handle, *args, post=lambda v: v, key: str | None = None) -> Any:
        try:
            return post(getattr(self._nv, fn_name)(handle, *args))
        except _QUERY_ERRORS + (self._nv.NVMLError,) as exc:  # recorded in self.errors, the field is "unavailable"
            if key is not None:
                self.errors[key] = f"{fn_name}: {_one_line(exc)}"
            return UNAVAILABLE

    def _indices(self, indices: Sequence[int] | None) -> list[int]:
        if indices is None:
            return list(range(len(self._handles)))
        return [i for i in indices if 0 <= i < len(self._handles)]

    def sample(self, indices: Sequence[int] | None = None) -> list[dict]:
        """One reading per GPU.

        Args:
            indices: NVML indices to read (default: every GPU).

        Returns:
            Per GPU: ``index``, ``util_percent``, ``mem_used_bytes``, ``mem_total_bytes``,
            ``power_w``, ``sm_clock_mhz``, ``temperature_c`` and ``energy_mj`` (the driver's
            total-energy counter, mJ since it loaded; Volta and newer). A field whose query
            failed is ``"unavailable"``.
        """
        if not self.available:
            return []
        nv = self._nv
        out = []
        for i in self._indices(indices):
            h = self._handles[i]
            mem = self._q("nvmlDeviceGetMemoryInfo", h, key=f"memory[{i}]")
            out.append(
                {
                    "index": i,
                    "util_percent": self._q(
                        "nvmlDeviceGetUtilizationRates", h, post=lambda u: float(u.gpu), key=f"util_percent[{i}]"
                    ),
                    "mem_used_bytes": mem.used if mem != UNAVAILABLE else UNAVAILABLE,
                    "mem_total_bytes": mem.total if mem != UNAVAILABLE else UNAVAILABLE,
                    "power_w": self._q(
                        "nvmlDeviceGetPowerUsage", h, post=lambda mw: mw / 1000.0, key=f"power_w[{i}]"
                    ),
                    "sm_clock_mhz": self._q(
                        "nvmlDeviceGetClockInfo", h, getattr(nv, "NVML_CLOCK_SM", 1), post=float,
                        key=f"sm_clock_mhz[{i}]",
                    ),
                    "temperature_c": self._q(
                        "nvmlDeviceGetTemperature", h, getattr(nv, "NVML_TEMPERATURE_GPU", 0), post=float,
                        key=f"temperature_c[{i}]",
                    ),
                    "energy_mj": self._q(
                        "nvmlDeviceGetTotalEnergyConsumption", h, post=float, key=f"energy_mj[{i}]"
                    ),
                }
            )
        return out

    def uuids(self) -> list[str]:
        """Each GPU's UUID (``GPU-…``) in NVML order; ``"unavailable"`` where the query fails."""
        if not self.available:
            return []
        return [self._q("nvmlDeviceGetUUID", h, post=_text) for h in self._handles]

    def describe(self) -> list[dict]:
        """Static facts per GPU for the machine fingerprint.

        Returns:
            Per GPU: ``index``, ``name``, ``uuid``, ``pci_bus_id``, ``memory_total_bytes``,
            ``driver_version``, ``cuda_driver_version`` (the CUDA version the driver supports),
            ``compute_capability``, ``power_limit_w`` and ``energy_counter`` (whether the
            total-energy counter answers).
        """
        if not self.available:
            return []
        nv = self._nv
        driver = cuda_driver = UNAVAILABLE
        try:
            driver = _text(nv.nvmlSystemGetDriverVersion())
        except _QUERY_ERRORS + (nv.NVMLError,) as exc:  # the field stays "unavailable"; why is in self.errors
            self.errors["driver_version"] = f"nvmlSystemGetDriverVersion: {_one_line(exc)}"
        try:
            v = int(nv.nvmlSystemGetCudaDriverVersion())
            cuda_driver = f"{v // 1000}.{(v % 1000) // 10}"
        except _QUERY_ERRORS + (nv.NVMLError,) as exc:  # the field stays "unavailable"; why is in self.errors
            self.errors["cuda_driver_version"] = f"nvmlSystemGetCudaDriverVersion: {_one_line(exc)}"
        out = []
        for i, h in enumerate(self._handles):
            mem = self._q("nvmlDeviceGetMemoryInfo", h)
            out.append(
                {
                    "index": i,
                    "name": self._q("nvmlDeviceGetName", h, post=_text),
                    "uuid": self._q("nvmlDeviceGetUUID", h, post=_text),
                    "pci_bus_id": self._q("nvmlDeviceGetPciInfo", h, post=lambda p: _text(p.busId)),
                    "memory_total_bytes": mem.total if mem != UNAVAILABLE else UNAVAILABLE,
                    "driver_version": driver,
                    "cuda_driver_version": cuda_driver,
                    "compute_capability": self._q(
                        "nvmlDeviceGetCudaComputeCapability", h, post=lambda cc: f"{cc[0]}.{cc[1]}"
                    ),
                    "power_limit_w": self._q("nvmlDeviceGetPowerManagementLimit", h, post=lambda mw: mw / 1000.0),
                    "energy_counter": self._q("nvmlDeviceGetTotalEnergyConsumption", h) != UNAVAILABLE,
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
