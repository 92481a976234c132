"""Shared fixtures. Real sweeps are costly (each worker imports TensorFlow), so one quick
Lorenz sweep at 1 and 2 processes is run once per session and shared by the tests that only read it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("XPUBENCH_OFFLINE", "1")

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def lorenz_quick_result(tmp_path_factory):
    """(Result, path) of a real quick Lorenz sweep at 1 and 2 processes (2 epochs per trial)."""
    from bench.runner import run_sweep

    out = tmp_path_factory.mktemp("lorenz-quick")
    result = run_sweep(
        "lorenz", "quick", processes=[1, 2], out_dir=out, label="test-machine",
        options={"epochs": "2"}, sample_interval=0.2,
    )
    (path,) = list(out.glob("*.json"))
    return result, path
