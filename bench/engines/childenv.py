"""The environment a worker process starts with: a whitelist plus thread and device settings.

As in pyperf, workers do not inherit the parent's whole environment: only variables on the
whitelist pass, then xpubench sets thread counts and device visibility. Everything here is
set before the worker imports TensorFlow, and the values are recorded in the result.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Mapping

from bench.model.strategy import THREAD_VARS

# Passed through from the parent when set.
WHITELIST = (
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP",
    "VIRTUAL_ENV", "CONDA_PREFIX", "LD_LIBRARY_PATH", "SYSTEMROOT",
    "KERAS_HOME", "KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS",
    "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "XLA_FLAGS", "CUDA_HOME", "CUDA_PATH",
    "NVIDIA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER",
    "XPUBENCH_OFFLINE", "XPUBENCH_FAULT", "XPUBENCH_MIRRORED_CPUS", "NO_PROXY", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
    "http_proxy", "https_proxy", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE",
)
_PREFIXES = ("LC_",)

# Variables xpubench decides (thread caps: bench.model.strategy.THREAD_VARS); recorded in the result as "env".
DEVICE_VARS = ("CUDA_VISIBLE_DEVICES", "TF_FORCE_GPU_ALLOW_GROWTH", "CUDA_DEVICE_ORDER", "XPUBENCH_MIRRORED_CPUS")


def thread_env(intra: int, inter: int) -> dict[str, str]:
    """Thread caps for one worker."""
    return {
        "TF_NUM_INTRAOP_THREADS": str(intra),
        "TF_NUM_INTEROP_THREADS": str(inter),
        "OMP_NUM_THREADS": str(intra),
        "MKL_NUM_THREADS": str(intra),
        "OPENBLAS_NUM_THREADS": str(intra),
    }


def _python_path() -> str:
    """The parent's import path, with this checkout's root first, so workers find the same code."""
    root = str(Path(__file__).resolve().parents[2])  # bench/engines/childenv.py -> the checkout
    entries = [root] + [p for p in sys.path if p and os.path.isdir(p)]
    return os.pathsep.join(dict.fromkeys(entries))


def child_env(
    intra: int,
    inter: int,
    device_env: Mapping[str, str] | None = None,
    parent: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The full environment for one worker.

    Args:
        intra: Intra-op (and OMP/BLAS) threads.
        inter: Inter-op threads.
        device_env: Device visibility from the device strategy (e.g. CUDA_VISIBLE_DEVICES).
        parent: The environment to filter (default: os.environ).
    """
    parent = os.environ if parent is None else parent
    env = {k: v for k, v in parent.items() if k in WHITELIST or k.startswith(_PREFIXES)}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = _python_path()
    env["PYTHONHASHSEED"] = "0"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(thread_env(intra, inter))
    env.update(device_env or {})
    return env


def recorded(env: Mapping[str, str]) -> dict[str, str]:
    """The subset of a worker environment that results record."""
    keys = THREAD_VARS + DEVICE_VARS + ("TF_ENABLE_ONEDNN_OPTS", "KERAS_BACKEND")
    return {k: env[k] for k in keys if k in env}
