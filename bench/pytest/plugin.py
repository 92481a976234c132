"""pytest plugin: xpubench workloads as pytest-benchmark benchmarks (pytest11 entry point ``xpubench``).

Users who benchmark with pytest-benchmark run ``pytest ... --benchmark-json=laptop.json`` on one
machine and the same on another; this plugin makes those files carry xpubench's figures so that
``bench compare laptop.json cloud.json`` can explain the difference.

What it adds to every pytest session (nothing heavy: this module imports no TensorFlow, no NVML,
no pytest-benchmark; all of that happens lazily when a benchmark runs or JSON is written):

- Options ``--xpu-size``, ``--xpu-processes``, ``--xpu-device``, ``--xpu-backend``, ``--xpu-label``, ``--xpu-option``,
  ``--xpu-rounds``, ``--xpu-warmup-rounds``, ``--xpu-sample-interval``, ``--xpu-out``, checked by
  :meth:`bench.request.SweepRequest.parse` as ``bench run`` checks its options; bad values stop
  the session at start with one line (``ERROR: --xpu-size: unknown size 'x' (choose from: quick, full)``).
- The ``xpu`` fixture (bench/pytest/fixture.py): ``xpu("lorenz", processes=2)`` runs one workload
  under one strategy inside ``benchmark.pedantic`` (explicit rounds and warm-up rounds) and writes
  ``benchmark.extra_info`` (bench/pytest/extra_info.py) following the contract in docs/architecture.md.
- Tests that take the arguments ``xpu_processes`` and/or ``xpu_device`` are parametrised from
  ``--xpu-processes`` / ``--xpu-device`` (ids ``cpu-1p``, ``cpu-2p``...). Tests that use the ``xpu``
  fixture (or take ``xpu_backend``) are parametrised over ``--xpu-backend`` (ids ``jax-cpu-1p``...)
  unless it is tensorflow alone, the default: then ids and names stay as they always were.
- The ``requires_gpu`` marker: such tests are skipped, with the reason, where no GPU is visible.
- ``pytest_benchmark_update_machine_info``: ``machine_info["xpubench"]`` is the machine
  fingerprint (label, CPU, usable cores, RAM, GPUs with driver, TensorFlow/Keras versions, CUDA
  build, thread environment).

Timing semantics: one pytest-benchmark round is one sweep of the workload's trials under the
strategy, *including* worker start-up (each worker imports TensorFlow). xpubench's own
``wall_s`` / throughput / speedup in ``extra_info`` exclude start-up, which is reported apart
(``startup_s``), exactly as ``bench run`` does.
"""

from __future__ import annotations

import os
from typing import Sequence

import pytest

from bench.model.strategy import DEFAULT_BACKEND
from bench.pytest.extra_info import EXTRA_INFO_SCHEMA, FLAT_KEYS, STRATEGY_KEYS, extra_info
from bench.pytest.fixture import SESSION, Session, XpuBenchmark, XpuSettings, session, xpu, xpu_backend

__all__ = [
    "EXTRA_INFO_SCHEMA", "FLAT_KEYS", "STRATEGY_KEYS", "OPTIONS", "Session", "XpuBenchmark", "XpuSettings",
    "extra_info", "gpu_unavailable_reason", "parse_settings", "session", "xpu", "xpu_backend",
]

MAX_ROUNDS = 1000
MAX_LABEL = 80
#: The option that gives each SweepRequest field (bench.request): errors are prefixed with it.
OPTIONS = {
    "size": "--xpu-size", "processes": "--xpu-processes", "devices": "--xpu-device", "backends": "--xpu-backend",
    "options": "--xpu-option",
    "sample_interval": "--xpu-sample-interval", "out_dir": "--xpu-out", "repeat": "--xpu-repeat",
}


# ---------------------------------------------------------------- settings


def _count(option: str, text: str, lowest: int) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        value = None
    if value is None or not lowest <= value <= MAX_ROUNDS:
        raise pytest.UsageError(f"{option}: bad value {text!r} (expected a whole number from {lowest} to {MAX_ROUNDS})")
    return value


def _label(text: str | None) -> str | None:
    if text is None:
        return None
    label = str(text).strip()
    if not label:
        raise pytest.UsageError("--xpu-label: empty label (give this machine a name, e.g. --xpu-label laptop)")
    if len(label) > MAX_LABEL or any(not c.isprintable() for c in label):
        raise pytest.UsageError(
            f"--xpu-label: bad label {label[:MAX_LABEL]!r} (expected at most {MAX_LABEL} printable characters)"
        )
    return label


def option_error(exc: Exception) -> pytest.UsageError:
    """A SweepRequest error as the session's one line: prefixed with the option that gave the value
    (unless the message starts with it already).

    Args:
        exc: The UsageError (its ``field`` names the request field).
    """
    option = OPTIONS.get(getattr(exc, "field", None) or "", "--xpu")
    text = str(exc)
    return pytest.UsageError(text if text.startswith(option) else f"{option}: {text}")


def parse_settings(
    size: str | None = "quick",
    processes: str | None = None,
    devices: str | None = "cpu",
    label: str | None = None,
    options: Sequence[str] | None = None,
    rounds: str | int | None = 1,
    warmup_rounds: str | int | None = 0,
    out_dir: str | None = None,
    sample_interval: str | float | None = None,
    backends: str | None = None,
    repeat: str | int | None = None,
) -> tuple[XpuSettings, list[str]]:
    """Validates the ``--xpu-*`` option values (the sweep's through SweepRequest.parse).

    Args:
        size: ``--xpu-size``.
        processes: ``--xpu-processes`` (``1,2,4`` or ``1-4``); None: ``1`` plus the usable cores.
        devices: ``--xpu-device`` (``cpu,gpu``... or ``all``). Unknown names are errors; a known
            device this machine cannot run is not (its benchmarks are skipped with the reason).
        label: ``--xpu-label``.
        options: ``--xpu-option`` values (``key=value``).
        rounds: ``--xpu-rounds``.
        warmup_rounds: ``--xpu-warmup-rounds``.
        out_dir: ``--xpu-out`` (created now).
        sample_interval: ``--xpu-sample-interval`` (seconds; None: the sampler's default).
        backends: ``--xpu-backend`` (``jax,tensorflow``... or ``all`` = the installed ones; None:
            tensorflow). Unknown or not installed: an error. A device a backend cannot run is
            not: that benchmark is skipped with the reason.
        repeat: ``--xpu-repeat``: each round's sweep measures its strategy this many times
            (medians with 95 % intervals in the run's ``summary.repeats``; None: 1).

    Returns:
        The settings, and warning lines (e.g. a process count above the usable cores).

    Raises:
        pytest.UsageError: one line naming the option and the bad value.
    """
    from bench.errors import UsageError
    from bench.request import SweepRequest

    label = _label(label)
    rounds = _count("--xpu-rounds", rounds if rounds is not None else 1, 1)
    warmup_rounds = _count("--xpu-warmup-rounds", warmup_rounds if warmup_rounds is not None else 0, 0)
    try:  # last: it creates --xpu-out once every value is good
        request = SweepRequest.parse(
            size=size, processes=processes, devices=devices, backends=backends, options=options, label=label,
            sample_interval=sample_interval, out_dir=out_dir, create_out_dir=True, require_available=False,
            names={"processes": OPTIONS["processes"], "sample_interval": OPTIONS["sample_interval"]},
            repeat=repeat,
        )
    except UsageError as exc:
        raise option_error(exc) from None
    return XpuSettings(request=request, rounds=rounds, warmup_rounds=warmup_rounds), list(request.notes)


# ---------------------------------------------------------------- hooks


def pytest_addoption(parser: pytest.Parser) -> None:
    """Registers the ``--xpu-*`` options.

    Args:
        parser: pytest's option parser.
    """
    group = parser.getgroup("xpubench", "xpubench: Keras/TensorFlow workloads as benchmarks")
    group.addoption("--xpu-size", default="quick", help="workload size: quick or full (default quick)")
    group.addoption(
        "--xpu-processes", default=None, metavar="COUNTS",
        help="worker process counts to parametrise over, e.g. 1,2,4 or 1-4 (default: 1 and the usable cores)",
    )
    group.addoption("--xpu-device", default="cpu", metavar="DEVICES", help="device strategies, e.g. cpu,gpu (default cpu)")
    group.addoption(
        "--xpu-backend", default=None, metavar="BACKENDS",
        help="Keras backends to parametrise over, e.g. jax,tensorflow or all (= installed; default tensorflow)",
    )
    group.addoption("--xpu-label", default=None, help="name of this machine in the results, e.g. laptop (default hostname)")
    group.addoption(
        "--xpu-option", action="append", default=[], metavar="KEY=VALUE", help="workload option, e.g. epochs=2 (repeatable)"
    )
    group.addoption("--xpu-rounds", default="1", metavar="N", help="measured sweeps per benchmark (default 1)")
    group.addoption("--xpu-warmup-rounds", default="0", metavar="N", help="discarded sweeps before measuring (default 0)")
    group.addoption(
        "--xpu-sample-interval", default=None, metavar="SECONDS",
        help="sampler interval (s), at least 0.05 (default 0.5)",
    )
    group.addoption("--xpu-repeat", default=None, metavar="K",
                    help="measure each benchmark's strategy K times per round (medians with 95 %% intervals; default 1)")
    group.addoption("--xpu-out", default=None, metavar="DIR", help="keep xpubench result files here (default: a temporary directory)")


def pytest_configure(config: pytest.Config) -> None:
    """Validates the options (failing the session at start) and registers the marker.

    Args:
        config: The pytest config.
    """
    config.addinivalue_line("markers", "requires_gpu: needs a GPU visible to TensorFlow (skipped where none is)")
    settings, notes = parse_settings(
        size=config.getoption("xpu_size", "quick"),
        processes=config.getoption("xpu_processes", None),
        devices=config.getoption("xpu_device", "cpu"),
        label=config.getoption("xpu_label", None),
        options=config.getoption("xpu_option", []),
        rounds=config.getoption("xpu_rounds", "1"),
        warmup_rounds=config.getoption("xpu_warmup_rounds", "0"),
        out_dir=config.getoption("xpu_out", None),
        sample_interval=config.getoption("xpu_sample_interval", None),
        backends=config.getoption("xpu_backend", None),
        repeat=config.getoption("xpu_repeat", None),
    )
    for note in notes:
        config.issue_config_time_warning(pytest.PytestConfigWarning(f"xpubench: {note}"), stacklevel=2)
    config.stash[SESSION] = Session(settings)


def _user_parametrized(metafunc: pytest.Metafunc, argname: str) -> bool:
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0] if marker.args else marker.kwargs.get("argnames", "")
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        if argname in names:
            return True
    return False


@pytest.hookimpl(trylast=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrises ``xpu_backend``, ``xpu_device`` and ``xpu_processes`` arguments from the options.

    Runs after the ``parametrize`` markers, so ids read ``lorenz-cpu-2p`` (``lorenz-jax-cpu-2p``
    with backends other than tensorflow alone); process counts vary fastest and ascending, so the
    1-process benchmark (the speedup baseline) of a workload, backend and device runs just before
    the others; backends vary slowest, tensorflow first (so the others get their
    ``speedup_vs_tensorflow``), then in the order given.

    Args:
        metafunc: The test function being collected.
    """
    settings = session(metafunc.config).settings
    if ("xpu_backend" in metafunc.fixturenames and not _user_parametrized(metafunc, "xpu_backend")
            and tuple(settings.backends) != (DEFAULT_BACKEND,)):
        backends = sorted(settings.backends, key=lambda b: b != DEFAULT_BACKEND)  # tensorflow first
        metafunc.parametrize("xpu_backend", backends, ids=backends)
    if "xpu_device" in metafunc.fixturenames and not _user_parametrized(metafunc, "xpu_device"):
        metafunc.parametrize(
            "xpu_device",
            [
                pytest.param(d, id=d, marks=(pytest.mark.requires_gpu,) if d.split(":")[0] == "gpu" else ())
                for d in settings.devices
            ],
        )
    if "xpu_processes" in metafunc.fixturenames and not _user_parametrized(metafunc, "xpu_processes"):
        metafunc.parametrize("xpu_processes", list(settings.processes), ids=[f"{n}p" for n in settings.processes])


def gpu_unavailable_reason() -> str | None:
    """None when a GPU is visible to this session's workers, else why not (one line).

    Uses the ``gpu`` device strategy's own check, asked of every installed Keras backend (a GPU
    any of them sees counts: a GPU box may have jax or torch and no TensorFlow), else NVML (lazily).
    """
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None and cvd.strip() in ("", "-1"):
        return f"no GPU visible (CUDA_VISIBLE_DEVICES={cvd!r} hides every GPU)"
    try:
        from bench.engines.devices import device_names, get_device

        if "gpu" in device_names():
            from bench.backends.registry import installed_backends

            reasons = [get_device("gpu").availability(backend=b) for b in installed_backends()]
            if not reasons or any(r is None for r in reasons):
                return None if reasons else "no GPU visible (no Keras backend is installed)"
            return f"no GPU visible ({'; '.join(dict.fromkeys(r for r in reasons if r))})"
        from bench.measure.nvml import nvml

        nv = nvml()
        return None if nv.available else f"no GPU visible ({nv.reason})"
    except Exception as exc:  # noqa: BLE001 - a broken driver (any error of device or NVML code) must not
        # break the session: recorded as the reason the requires_gpu tests are skipped
        return f"no GPU visible ({type(exc).__name__}: {exc})"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skips ``requires_gpu`` tests, with the reason, where no GPU is visible.

    The GPU check (NVML) runs only when some collected test carries the marker.

    Args:
        config: The pytest config.
        items: Collected tests.
    """
    marked = [item for item in items if item.get_closest_marker("requires_gpu") is not None]
    if not marked:
        return
    state = session(config)
    if not state.gpu_checked:
        state.gpu_reason = gpu_unavailable_reason()
        state.gpu_checked = True
    if state.gpu_reason:
        skip = pytest.mark.skip(reason=f"requires_gpu: {state.gpu_reason}")
        for item in marked:
            item.add_marker(skip)


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """Adds the xpubench machine fingerprint as ``machine_info["xpubench"]``.

    The fingerprint (bench.measure.machine.fingerprint) holds the label, CPU, physical/logical/usable
    cores, RAM, OS, Python, TensorFlow/Keras/numpy versions, GPUs (name, memory, driver) and the
    thread environment; this adds the CUDA driver version when NVML knows it and, when a
    workload ran in this session, the CUDA/cuDNN build and devices its TensorFlow reported.
    Never raises: a failure is recorded as ``machine_info["xpubench"]["error"]``.

    Args:
        config: The pytest config.
        machine_info: pytest-benchmark's machine info, updated in place.
    """
    from bench.model.results import plain

    state = session(config)
    try:
        from bench.measure.calibrate import cached_calibration
        from bench.measure.machine import fingerprint

        info = fingerprint(state.settings.label, calibration=cached_calibration())
        info.update(state.machine_extra)
        cuda = {g.get("cuda_driver_version") for g in info.get("gpus") or () if isinstance(g, dict)}
        cuda.discard(None)
        cuda.discard("unavailable")
        if cuda:
            info["cuda_driver_version"] = sorted(cuda)[0]
    except Exception as exc:  # noqa: BLE001 - never break pytest-benchmark's saving: recorded as
        # machine_info["xpubench"]["error"]
        info = {"label": state.settings.label, "error": f"{type(exc).__name__}: {exc}"}
    machine_info["xpubench"] = plain(info)
