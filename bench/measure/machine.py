"""The machine fingerprint recorded in every result (and in pytest-benchmark's machine_info).

Nothing here imports TensorFlow, JAX or PyTorch: versions come from package metadata, and the
facts only a running framework knows (devices it sees, the build it loaded) are reported by
workers (the runner adds them as ``tensorflow_build`` and ``tensorflow_devices``). What each
installed Keras backend was built with, where its installed files say so without an import
(TensorFlow's ``build_info.py``, PyTorch's ``version.py`` and the wheel's version suffix, JAX's
CUDA/ROCm plugin packages), is recorded under ``backends`` (:func:`backend_builds`). GPU facts
(name, memory, driver, power limit) come from NVML; ``energy`` says which energy readings this machine allows
this user (RAPL for the CPU package, NVML for GPUs) and why not where it does not.

The calibration (``bench calibrate``'s cached figures) is handed in by the caller (the runner, the
pytest plugin), which reads it with :func:`bench.measure.calibrate.cached_calibration`: this module does not
import bench.measure.calibrate (which imports :func:`cpu_brand` from here), so the two form no cycle.
"""

from __future__ import annotations

import ast
import functools
import os
import platform
import re
import socket
import sys
from importlib import metadata
from typing import Any

import psutil

from bench.measure import energy
from bench.measure.nvml import nvml
from bench.model.strategy import THREAD_VARS, usable_cores


def _pkg_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


# The distributions each Keras backend may be installed as, first found wins.
_BACKEND_DISTS = {"tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tf-nightly"),
                  "jax": ("jax",), "torch": ("torch",)}
_JAX_PLUGIN = re.compile(r"^jax-(cuda|rocm)(\d+)-(plugin|pjrt)$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _literals(path, names: tuple[str, ...]) -> dict[str, Any]:
    """Module-level ``NAME = <literal>`` assignments of a Python file, read with ``ast`` (never run).

    ``NAME = collections.OrderedDict([...])`` gives the dict of its literal argument (TensorFlow's
    ``build_info.py``). A missing or unreadable file, or a value that is no literal, is left out.
    """
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(1 << 20))
    except (OSError, SyntaxError, ValueError):  # not installed as files, or not Python: nothing said
        return {}
    out: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        elif isinstance(node, ast.AnnAssign) and node.value is not None:  # cuda: Optional[str] = '12.1'
            target = node.target
        else:
            continue
        if not isinstance(target, ast.Name) or target.id not in names:
            continue
        value, mapping = node.value, False
        if isinstance(value, ast.Call) and len(value.args) == 1 and not value.keywords:  # OrderedDict([...])
            value, mapping = value.args[0], True
        try:
            literal = ast.literal_eval(value)
            out[target.id] = dict(literal) if mapping else literal
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):  # not a literal: not said
            continue
    return out


def _tensorflow_build(dist: metadata.Distribution) -> dict[str, Any]:
    info = _literals(dist.locate_file("tensorflow/python/platform/build_info.py"), ("build_info",)).get("build_info")
    if not isinstance(info, dict):
        return {"source": "not said (no tensorflow/python/platform/build_info.py)"}
    return {
        "cuda": info.get("cuda_version") or None,
        "cudnn": info.get("cudnn_version") or None,
        "is_cuda_build": info.get("is_cuda_build"),
        "is_rocm_build": info.get("is_rocm_build"),
        "cuda_compute_capabilities": info.get("cuda_compute_capabilities"),
        "source": "tensorflow/python/platform/build_info.py",
    }


def _pinned(requires: list[str] | None, prefix: str) -> str | None:
    """The ``==`` version a distribution pins for a requirement whose name starts with ``prefix``."""
    for req in requires or ():
        m = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*==\s*([^;,\s]+)", req)
        if m and _norm(m.group(1)).startswith(prefix) and "extra ==" not in req:
            return m.group(2)
    return None


def _torch_build(dist: metadata.Distribution, version: str) -> dict[str, Any]:
    facts = _literals(dist.locate_file("torch/version.py"), ("cuda", "hip", "rocm"))
    local = version.split("+", 1)[1] if "+" in version else None
    return {
        "variant": local,  # the wheel's suffix: cpu, cu121, rocm6.0 (None: PyPI's default build)
        "cuda": facts.get("cuda"),
        "rocm": facts.get("rocm"),
        "hip": facts.get("hip"),
        "cudnn": _pinned(dist.requires, "nvidia-cudnn"),  # the cuDNN wheel the CUDA build depends on
        "source": "torch/version.py" if "cuda" in facts else "not said (torch/version.py gives no cuda)",
    }


def _jax_build(installed: dict[str, str]) -> dict[str, Any]:
    plugins = {name: v for name, v in sorted(installed.items()) if _JAX_PLUGIN.match(name)}
    cuda = sorted({m.group(2) for m in map(_JAX_PLUGIN.match, plugins) if m and m.group(1) == "cuda"})
    rocm = sorted({m.group(2) for m in map(_JAX_PLUGIN.match, plugins) if m and m.group(1) == "rocm"})
    major = cuda[-1] if cuda else None
    return {
        "jaxlib": installed.get("jaxlib"),
        "plugins": plugins,  # e.g. jax-cuda12-plugin, jax-cuda12-pjrt: none = a CPU-only jax
        "cuda": major,  # the CUDA major version the plugin is built for
        "rocm": rocm[-1] if rocm else None,
        "cudnn": installed.get(f"nvidia-cudnn-cu{major}") if major else None,
        "source": "installed plugin packages",
    }


def backend_builds() -> dict[str, dict[str, Any]]:
    """Each installed Keras backend's version and what it was built with, without importing it.

    Returns:
        ``{"tensorflow": {"version", "dist", "build"}, "jax": {...}, "torch": {...}}``, only the
        installed ones. ``build`` holds ``cuda`` / ``cudnn`` (None: not a CUDA build, or not said)
        and ``source`` (which installed file or packages said it); tensorflow adds ``is_cuda_build``,
        ``is_rocm_build`` and ``cuda_compute_capabilities`` from its ``build_info.py``; torch adds
        ``variant`` (the version suffix: ``cpu``, ``cu121``), ``rocm`` and ``hip`` from ``torch/version.py``;
        jax adds ``jaxlib`` and ``plugins`` (the ``jax-cuda12-plugin``-style packages installed).
    """
    dists: dict[str, tuple[metadata.Distribution, str]] = {}
    for dist in metadata.distributions():  # one pass over the installed metadata (tens of ms)
        meta = dist.metadata
        if meta and meta["Name"] and meta["Version"]:
            dists.setdefault(_norm(meta["Name"]), (dist, meta["Version"]))
    out: dict[str, dict[str, Any]] = {}
    for backend, names in _BACKEND_DISTS.items():
        name = next((n for n in names if n in dists), None)
        if name is None:
            continue
        dist, version = dists[name]
        if backend == "tensorflow":
            build = _tensorflow_build(dist)
        elif backend == "torch":
            build = _torch_build(dist, version)
        else:
            build = _jax_build({n: v for n, (_, v) in dists.items()})
        out[backend] = {"version": version, "dist": name, "build": build}
    return out


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
        "backends": backend_builds(),
        "numpy": _pkg_version("numpy"),
        "xpubench": _pkg_version("xpubench"),
        "gpus": nv.describe() if nv.available else [],
        "gpu_status": "" if nv.available else nv.reason,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "energy": energy.sources(),
        "thread_env": {k: os.environ[k] for k in THREAD_VARS if k in os.environ},
        "calibration": calibration,
    }

