"""Installs the fake ``pynvml`` (tests/fakes/pynvml) for one test.

Only tests that ask for it get it: ``tests/fakes`` goes first on ``sys.path`` through
``monkeypatch`` (undone after the test), any imported ``pynvml`` is dropped from
``sys.modules``, and the lazy NVML handle and the cached GPU inventory are forgotten before and
after, so no other test sees the fake.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

FAKES = Path(__file__).resolve().parent


def forget() -> None:
    """Drops xpubench's cached NVML handle and GPU inventory."""
    from bench.engines import devices
    from bench.measure import nvml

    nvml.reset_for_tests()
    devices.reset_for_tests()


def install(monkeypatch: pytest.MonkeyPatch, **config):
    """Puts the fake first on the path, configures it and returns the fake module.

    Args:
        monkeypatch: The test's monkeypatch (undoes the path and sys.modules changes).
        **config: Passed to ``pynvml.configure`` (gpus, init_error, fail, driver, cuda_driver).
    """
    monkeypatch.syspath_prepend(str(FAKES))
    monkeypatch.delitem(sys.modules, "pynvml", raising=False)
    import pynvml

    assert getattr(pynvml, "IS_FAKE", False), pynvml.__file__
    pynvml.configure(**config)
    forget()
    return pynvml
