"""Execution engines: where a strategy's worker processes run.

``local`` is :class:`bench.engines.local.WorkerPool` (processes on this machine). ``ray`` runs trials as
Ray tasks (optional: ``pip install 'xpubench[cluster]'``). Every engine has the interface
:class:`bench.engines.dispatch.Engine` describes: ``start()``, ``run(jobs, on_done, trial_timeout)``,
``close()``, ``worker_facts``, ``pids``, ``validate_options(**engine_options)``.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from bench.engines.dispatch import Engine

from bench.errors import UsageError, choices_error

# name -> ("module:Class", module that must be importable, how to install it)
_ENGINES: dict[str, tuple[str, str | None, str]] = {
    "local": ("bench.engines.local:WorkerPool", None, ""),
    "ray": ("bench.engines.ray:RayPool", "ray", "pip install 'xpubench[cluster]'"),
}


def get_engine(name: str) -> Callable[..., "Engine"]:
    """The pool class of an engine.

    Args:
        name: ``local`` or ``ray``.

    Raises:
        UsageError: unknown engine (listing the valid ones) or its package is not installed
            (saying how to install it).
    """
    if name not in _ENGINES:
        raise choices_error("cluster engine", name, _ENGINES)
    target, requires, install = _ENGINES[name]
    if requires and importlib.util.find_spec(requires) is None:
        raise UsageError(f"cluster engine {name!r} needs the '{requires}' package, which is not installed: {install}")
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
