"""How inner pytest sessions (pytester) load the xpubench plugin."""

from __future__ import annotations

import importlib.metadata
import os


def entry_point_active() -> bool:
    """True when the installed package's pytest11 entry point loads the plugin by itself."""
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return False
    eps = importlib.metadata.entry_points(group="pytest11")
    return any(ep.name == "xpubench" and ep.value == "bench.pytest.plugin" for ep in eps)


# Inner sessions load the plugin through its entry point (pip install -e .); from a bare checkout, explicitly.
PLUGIN = [] if entry_point_active() else ["-p", "bench.pytest.plugin"]
