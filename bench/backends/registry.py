"""The backends by name: ``tensorflow`` (the default), ``jax``, ``torch``.

Naming a backend never imports its framework: ``installed_backends`` asks ``find_spec``, versions
come from ``importlib.metadata``. A backend's module is imported lazily, on first use.
"""

from __future__ import annotations

import importlib

from bench.backends.base import Backend
from bench.errors import UsageError

DEFAULT = "tensorflow"
# name -> "module:Class", in registry order (the order runs and tables use)
_BACKENDS = {
    "tensorflow": "bench.backends.tensorflow:TensorFlowBackend",
    "jax": "bench.backends.jax:JaxBackend",
    "torch": "bench.backends.torch:TorchBackend",
}
_loaded: dict[str, Backend] = {}


def backend_names() -> list[str]:
    """Every known backend, in registry order: ``["tensorflow", "jax", "torch"]``."""
    return list(_BACKENDS)


def _load(name: str) -> Backend:
    if name not in _loaded:
        module, _, attr = _BACKENDS[name].partition(":")
        _loaded[name] = getattr(importlib.import_module(module), attr)()
    return _loaded[name]


def default_backend() -> str:
    """The backend a sweep runs when none is named: tensorflow, or where TensorFlow is not
    installed (a GPU box with only jax or torch) the first installed backend; tensorflow when none is
    (so the error a run gets names the package to install)."""
    if _load(DEFAULT).installed():
        return DEFAULT
    return next(iter(installed_backends()), DEFAULT)


def env_vars(name: str) -> tuple[str, ...]:
    """The variables backend ``name``'s worker environment sets (() for an unknown name); no install check.

    Args:
        name: A backend name (e.g. a worker environment's ``KERAS_BACKEND``).
    """
    return _load(name).env_vars if name in _BACKENDS else ()


def installed_backends() -> list[str]:
    """The known backends whose framework is importable here (``find_spec``; nothing is imported)."""
    return [name for name in _BACKENDS if _load(name).installed()]


def get_backend(name: str) -> Backend:
    """The backend called ``name``, checked installed.

    Args:
        name: ``tensorflow``, ``jax`` or ``torch``.

    Raises:
        UsageError: ``unknown backend 'x' (choose from: tensorflow, jax, torch)``, or
            ``backend 'jax' is not installed (pip install 'xpubench[jax]')``.
    """
    key = str(name).strip()
    if key not in _BACKENDS:
        raise UsageError(f"unknown backend {str(name)!r} (choose from: {', '.join(_BACKENDS)})")
    backend = _load(key)
    if not backend.installed():
        raise UsageError(f"backend {key!r} is not installed ({backend.install_hint()})")
    return backend


def parse_backends(text) -> list[str]:
    """``"tensorflow,jax"`` (or a list) -> validated backend names, in the order given, each once.

    ``all`` expands to every installed backend.

    Raises:
        UsageError: empty list, an unknown name, or a named backend that is not installed.
    """
    parts = [str(p) for p in text] if isinstance(text, (list, tuple)) else str(text).split(",")
    names = [p.strip() for p in parts if p.strip()]
    if not names:
        raise UsageError(f"bad backend list {str(text)!r} (choose from: {', '.join(backend_names() + ['all'])})")
    out: list[str] = []
    for name in names:
        for one in installed_backends() if name == "all" else [get_backend(name).name]:
            if one not in out:
                out.append(one)
    if not out:  # "all" with no framework installed
        raise UsageError(f"no backend is installed (pip install {_load(DEFAULT).dist})")
    return out
