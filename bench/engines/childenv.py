"""The environment a worker process starts with: a whitelist plus backend, thread and device settings.

As in pyperf, workers do not inherit the parent's whole environment: only variables on the
whitelist pass, then xpubench sets the Keras backend (``KERAS_BACKEND``), the backend's thread caps
(:meth:`bench.backends.base.Backend.thread_env`) and device visibility. Everything here is set
before the worker imports its framework, and the values are recorded in the result.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Mapping

from bench.backends import registry
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

# Variables xpubench decides (thread caps: bench.model.strategy.THREAD_VARS and the backend's own
# Backend.env_vars); recorded in the result as "env".
DEVICE_VARS = ("CUDA_VISIBLE_DEVICES", "TF_FORCE_GPU_ALLOW_GROWTH", "CUDA_DEVICE_ORDER", "XPUBENCH_MIRRORED_CPUS")


def thread_env(intra: int, inter: int, backend: str = registry.DEFAULT) -> dict[str, str]:
    """Thread caps for one worker of a backend (TensorFlow: TF intra/inter-op, OMP, MKL, OpenBLAS).

    Args:
        intra: Intra-op (and OMP/BLAS) threads.
        inter: Inter-op threads.
        backend: The Keras backend the worker runs.
    """
    return registry.get_backend(backend).thread_env(intra, inter)


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
    backend: str = registry.DEFAULT,
) -> dict[str, str]:
    """The full environment for one worker.

    Args:
        intra: Intra-op (and OMP/BLAS) threads.
        inter: Inter-op threads.
        device_env: Device visibility from the device strategy (``DeviceStrategy.child_env(i, n, backend)``).
        parent: The environment to filter (default: os.environ).
        backend: The Keras backend (``KERAS_BACKEND``); its thread variables are set, and flag
            lists such as ``XLA_FLAGS`` are merged with the user's, flag by flag.

    Raises:
        UsageError: an unknown backend, or one that is not installed.
    """
    chosen = registry.get_backend(backend)
    parent = os.environ if parent is None else parent
    env = {k: v for k, v in parent.items() if k in WHITELIST or k.startswith(_PREFIXES)}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = _python_path()
    env["PYTHONHASHSEED"] = "0"
    env["PYTHONUNBUFFERED"] = "1"
    env["KERAS_BACKEND"] = chosen.name
    chosen.merge_env(env, chosen.thread_env(intra, inter, env))
    chosen.merge_env(env, dict(device_env or {}))
    return env


def recorded(env: Mapping[str, str]) -> dict[str, str]:
    """The subset of a worker environment that results record (its backend's own variables included)."""
    backend_vars = registry.env_vars(env.get("KERAS_BACKEND", registry.DEFAULT))
    keys = THREAD_VARS + DEVICE_VARS + ("TF_ENABLE_ONEDNN_OPTS", "KERAS_BACKEND") + backend_vars
    return {k: env[k] for k in dict.fromkeys(keys) if k in env}
