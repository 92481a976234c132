"""The machine fingerprint recorded in every result (and in pytest-benchmark's machine_info).

Nothing here imports TensorFlow: versions come from package metadata, and the facts only
TensorFlow knows (CUDA/cuDNN it was built with, devices it sees) are reported by workers (the
runner adds them as ``tensorflow_build`` and ``tensorflow_devices``). GPU facts (name, memory,
driver, power limit) come from NVML; ``energy`` says which energy readings this machine allows
this user (RAPL for the CPU package, NVML for GPUs) and why not where it does not.

The calibration (``bench calibrate``'s cached figures) is handed in by the caller (the runner, the
pytest plugin), which reads it with :func:`bench.measure.calibrate.cached_calibration`: this module does not
import bench.measure.calibrate (which imports :func:`cpu_brand` from here), so the two form no cycle.
"""

from __future__ import annotations

import functools
import os
import platform
import socket
import sys
from importlib import metadata

import psutil

from bench.measure import energy
from bench.measure.nvml import nvml
from bench.model.strategy import THREAD_VARS, usable_cores


def _pkg_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def cpu_brand() -> str:
    """The CPU's model name (/proc/cpuinfo first: py-cpuinfo can take a second)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        import cpuinfo

        return cpuinfo.get_cpu_info().get("brand_raw", "") or platform.processor()
    except Exception:  # noqa: BLE001  # pragma: no cover - py-cpuinfo probes CPUID and /proc in ways that raise
        # anything on an unusual platform (it is best-effort by design); the brand is a label, so fall back
        return platform.processor() or "unknown"


def fingerprint(label: str | None = None, calibration: dict | None = None) -> dict:
    """Facts about this machine that make two results comparable (or not).

    Args:
        label: A user's name for the machine (``laptop``, ``g5.xlarge``); default: hostname.
        calibration: This machine's calibration as :func:`bench.measure.calibrate.cached_calibration`
            returns it (parallel-efficiency ceiling per process count, fp32 matmul GFLOP/s, when
            measured), recorded as ``calibration``; None when it was never measured here.
    """
    vm = psutil.virtual_memory()
    freq = None
    try:
        f = psutil.cpu_freq()
        freq = round(f.max or f.current, 1) if f else None
    except (OSError, NotImplementedError, AttributeError):  # no cpufreq in this VM/container: recorded as None
        pass
    nv = nvml()
    return {
        "label": label or socket.gethostname(),
        "hostname": socket.gethostname(),
        "cpu": cpu_brand(),
        "cpu_mhz_max": freq,
        "physical_cores": psutil.cpu_count(logical=False),
        "logical_cores": psutil.cpu_count(logical=True),
        "usable_cores": usable_cores(),
        "os_cpu_count": os.cpu_count(),
        "ram_bytes": vm.total,
        "os": f"{platform.system()} {platform.release()}",
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "executable": sys.executable,
        "tensorflow": _pkg_version("tensorflow") or _pkg_version("tensorflow-cpu"),
        "keras": _pkg_version("keras"),
        "numpy": _pkg_version("numpy"),
        "xpubench": _pkg_version("xpubench"),
        "gpus": nv.describe() if nv.available else [],
        "gpu_status": "" if nv.available else nv.reason,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "energy": energy.sources(),
        "thread_env": {k: os.environ[k] for k in THREAD_VARS if k in os.environ},
        "calibration": calibration,
    }

