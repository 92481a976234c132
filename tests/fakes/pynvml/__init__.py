"""A fake ``pynvml`` (nvidia-ml-py) for tests, placed first on ``sys.path`` only by the tests
that need it (as codecarbon's tests do). It answers the NVML calls xpubench makes from a
per-test configuration, and can raise ``NVMLError`` from one query (optionally on one GPU).

Usage in a test::

    monkeypatch.syspath_prepend(str(FAKES))          # tests/fakes
    monkeypatch.delitem(sys.modules, "pynvml", raising=False)
    import pynvml
    pynvml.configure(gpus=[{"name": "Fake A100", "util": lambda n: 10.0 * n}, {}],
                     fail={"nvmlDeviceGetPowerUsage": pynvml.NVML_ERROR_NOT_SUPPORTED})

A GPU value may be a constant or a callable of the call number (0, 1, 2, … per query and
GPU), to make readings change over time.
"""

from __future__ import annotations

import collections
from types import SimpleNamespace

IS_FAKE = True

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_UNKNOWN = 999
NVML_CLOCK_SM = 1
NVML_TEMPERATURE_GPU = 0

_MESSAGES = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}


class NVMLError(Exception):
    """Like pynvml's: carries the NVML return code in ``value``."""

    def __init__(self, value: int):
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return _MESSAGES.get(self.value, f"NVML error {self.value}")


def gpu(
    name="Fake GPU",
    uuid=None,
    mem_total=16 * 2**30,
    mem_used=2**30,
    util=50.0,
    power_mw=100_000,
    power_limit_mw=250_000,
    sm_clock=1410,
    temperature=60,
    energy_mj=None,
    cc=(8, 0),
    bus_id=None,
) -> dict:
    """One fake GPU's readings (constants or callables of the call number).

    Args:
        energy_mj: The total-energy counter (mJ); None makes that query "Not Supported".
    """
    return dict(name=name, uuid=uuid, mem_total=mem_total, mem_used=mem_used, util=util, power_mw=power_mw,
                power_limit_mw=power_limit_mw, sm_clock=sm_clock, temperature=temperature, energy_mj=energy_mj,
                cc=cc, bus_id=bus_id)


STATE: dict = {}
CALLS: collections.Counter = collections.Counter()


def configure(gpus=None, init_error=None, fail=None, driver="550.54.15", cuda_driver=12040) -> None:
    """Sets what the fake answers (and resets call counters).

    Args:
        gpus: List of GPUs as :func:`gpu` keyword dicts; missing keys take gpu()'s defaults
            (default: one GPU).
        init_error: An NVML return code ``nvmlInit`` fails with (e.g. NVML_ERROR_LIBRARY_NOT_FOUND).
        fail: ``{function name: code}`` or ``{(function name, gpu index): code}``: that query
            raises ``NVMLError(code)``.
        driver: Driver version string.
        cuda_driver: CUDA driver version as NVML encodes it (12040 = 12.4).
    """
    gpus = [gpu()] if gpus is None else [gpu(**g) for g in gpus]
    for i, g in enumerate(gpus):
        if g["uuid"] is None:
            g["uuid"] = f"GPU-fake{i:04d}-0000-0000-0000-000000000000"
        if g.get("bus_id") is None:
            g["bus_id"] = f"00000000:{i + 1:02X}:00.0"
    STATE.clear()
    STATE.update(gpus=gpus, init_error=init_error, fail=dict(fail or {}), driver=driver, cuda_driver=cuda_driver,
                 initialised=False)
    CALLS.clear()


def reset() -> None:
    configure()


reset()


def _value(index: int, key: str, fn: str):
    n = CALLS[(fn, index)]
    CALLS[(fn, index)] += 1
    v = STATE["gpus"][index][key]
    return v(n) if callable(v) else v


def _check(fn: str, handle=None) -> None:
    if not STATE["initialised"] and fn != "nvmlInit":
        raise NVMLError(NVML_ERROR_UNINITIALIZED)
    fail = STATE["fail"]
    index = getattr(handle, "index", None)
    code = fail.get((fn, index), fail.get(fn))
    if code is not None:
        raise NVMLError(code)


def nvmlInit() -> None:
    if STATE["init_error"] is not None:
        raise NVMLError(STATE["init_error"])
    STATE["initialised"] = True


def nvmlShutdown() -> None:
    STATE["initialised"] = False


def nvmlDeviceGetCount() -> int:
    _check("nvmlDeviceGetCount")
    return len(STATE["gpus"])


def nvmlDeviceGetHandleByIndex(index: int):
    _check("nvmlDeviceGetHandleByIndex")
    if not 0 <= index < len(STATE["gpus"]):
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    return SimpleNamespace(index=index)


def nvmlSystemGetDriverVersion() -> str:
    _check("nvmlSystemGetDriverVersion")
    return STATE["driver"]


def nvmlSystemGetCudaDriverVersion() -> int:
    _check("nvmlSystemGetCudaDriverVersion")
    return STATE["cuda_driver"]


def nvmlDeviceGetName(h) -> str:
    _check("nvmlDeviceGetName", h)
    return _value(h.index, "name", "nvmlDeviceGetName")


def nvmlDeviceGetUUID(h) -> str:
    _check("nvmlDeviceGetUUID", h)
    return _value(h.index, "uuid", "nvmlDeviceGetUUID")


def nvmlDeviceGetPciInfo(h):
    _check("nvmlDeviceGetPciInfo", h)
    return SimpleNamespace(busId=_value(h.index, "bus_id", "nvmlDeviceGetPciInfo").encode())


def nvmlDeviceGetCudaComputeCapability(h):
    _check("nvmlDeviceGetCudaComputeCapability", h)
    return tuple(_value(h.index, "cc", "nvmlDeviceGetCudaComputeCapability"))


def nvmlDeviceGetMemoryInfo(h):
    _check("nvmlDeviceGetMemoryInfo", h)
    total = _value(h.index, "mem_total", "nvmlDeviceGetMemoryInfo.total")
    used = _value(h.index, "mem_used", "nvmlDeviceGetMemoryInfo")
    return SimpleNamespace(total=total, used=used, free=total - used)


def nvmlDeviceGetUtilizationRates(h):
    _check("nvmlDeviceGetUtilizationRates", h)
    return SimpleNamespace(gpu=_value(h.index, "util", "nvmlDeviceGetUtilizationRates"), memory=0)


def nvmlDeviceGetPowerUsage(h) -> int:
    _check("nvmlDeviceGetPowerUsage", h)
    return int(_value(h.index, "power_mw", "nvmlDeviceGetPowerUsage"))


def nvmlDeviceGetPowerManagementLimit(h) -> int:
    _check("nvmlDeviceGetPowerManagementLimit", h)
    return int(_value(h.index, "power_limit_mw", "nvmlDeviceGetPowerManagementLimit"))


def nvmlDeviceGetClockInfo(h, clock_type) -> int:
    _check("nvmlDeviceGetClockInfo", h)
    if clock_type != NVML_CLOCK_SM:
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    return int(_value(h.index, "sm_clock", "nvmlDeviceGetClockInfo"))


def nvmlDeviceGetTemperature(h, sensor) -> int:
    _check("nvmlDeviceGetTemperature", h)
    if sensor != NVML_TEMPERATURE_GPU:
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    return int(_value(h.index, "temperature", "nvmlDeviceGetTemperature"))


def nvmlDeviceGetTotalEnergyConsumption(h) -> int:
    _check("nvmlDeviceGetTotalEnergyConsumption", h)
    if STATE["gpus"][h.index]["energy_mj"] is None:
        raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
    return int(_value(h.index, "energy_mj", "nvmlDeviceGetTotalEnergyConsumption"))
