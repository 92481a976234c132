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
    from bench.sweep.sweep import run_sweep

    out = tmp_path_factory.mktemp("lorenz-quick")
    result = run_sweep(
        "lorenz", "quick", processes=[1, 2], out_dir=out, label="test-machine",
        options={"epochs": "2"}, sample_interval=0.2,
    )
    (path,) = list(out.glob("*.json"))
    return result, path


# ---------------------------------------------------------------- real quick sweeps of every training workload
# (issue 11: the per-configuration tables, headline and "why" tests read what these real runs record)


@pytest.fixture(scope="session")
def calibration_cache(tmp_path_factory):
    """An XDG cache directory holding a real ``bench calibrate`` of this machine (up to 2 processes).

    Sweeps run with ``XDG_CACHE_HOME`` pointing here carry it as ``machine["calibration"]``, as
    results do on a machine where the user ran ``bench calibrate``.
    """
    from bench.cli import _calibration_env
    from bench.measure import calibrate

    cache = tmp_path_factory.mktemp("xdg-cache")
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(cache)
    try:
        path = calibrate.cache_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        calibrate.write(calibrate.calibrate(_calibration_env, 2), path)
    finally:
        if old is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = old
    return cache


def _calibrated_sweep(tmp_path_factory, cache, workload, processes, options):
    from bench.sweep.sweep import run_sweep

    out = tmp_path_factory.mktemp(f"{workload}-quick")
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(cache)
    try:
        result = run_sweep(workload, "quick", processes=processes, out_dir=out, label="test-machine",
                           options=options, sample_interval=0.2)
    finally:
        if old is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = old
    (path,) = list(out.glob("*.json"))
    return result, path


@pytest.fixture(scope="session")
def calibrated_sweep(tmp_path_factory, calibration_cache):
    """``sweep(workload, processes, options) -> (Result, path)``: a real quick sweep on the calibrated machine."""
    return lambda workload, processes, options: _calibrated_sweep(
        tmp_path_factory, calibration_cache, workload, processes, options)


@pytest.fixture(scope="session")
def pose_quick_result(tmp_path_factory, calibration_cache):
    """(Result, path) of a real quick pose_classifier sweep at 1 and 2 processes, calibrated machine:
    tasks multi and squat (3 configurations), 2 folds, 1 epoch."""
    return _calibrated_sweep(tmp_path_factory, calibration_cache, "pose_classifier", [1, 2],
                             {"epochs": "1", "folds": "2", "tasks": "multi,squat"})


@pytest.fixture(scope="session")
def lstm_quick_result(tmp_path_factory, calibration_cache):
    """(Result, path) of a real quick lstm_sequence sweep at 1 process (3 sizes x 2 folds, 1 epoch)."""
    return _calibrated_sweep(tmp_path_factory, calibration_cache, "lstm_sequence", [1],
                             {"epochs": "1", "folds": "2", "samples": "160", "stacks": "3"})


@pytest.fixture(scope="session")
def imdb_quick_result(tmp_path_factory, calibration_cache):
    """(Result, path) of a real quick imdb_cnn_lstm sweep at 1 process (2 repeats x 2 epochs, small)."""
    return _calibrated_sweep(tmp_path_factory, calibration_cache, "imdb_cnn_lstm", [1],
                             {"epochs": "2", "train": "512", "test": "256", "repeats": "2"})
