"""pytest plugin: xpubench workloads as pytest-benchmark benchmarks (pytest11 entry point ``xpubench``).

Users who benchmark with pytest-benchmark run ``pytest ... --benchmark-json=laptop.json`` on one
machine and the same on another; this plugin makes those files carry xpubench's figures so that
``bench compare laptop.json cloud.json`` can explain the difference.

What it adds to every pytest session (nothing heavy: this module imports no TensorFlow, no NVML,
no pytest-benchmark; all of that happens lazily when a benchmark runs or JSON is written):

- Options ``--xpu-size``, ``--xpu-processes``, ``--xpu-device``, ``--xpu-label``, ``--xpu-option``,
  ``--xpu-rounds``, ``--xpu-warmup-rounds``, ``--xpu-out``; bad values stop the session at start
  with one line (``ERROR: --xpu-size: unknown size 'x' (choose from: full, quick)``).
- The ``xpu`` fixture: ``xpu("lorenz", processes=2)`` runs one workload under one strategy
  inside ``benchmark.pedantic`` (explicit rounds and warm-up rounds) and writes
  ``benchmark.extra_info`` following the contract in docs/architecture.md.
- Tests that take the arguments ``xpu_processes`` and/or ``xpu_device`` are parametrised from
  ``--xpu-processes`` / ``--xpu-device`` (ids ``cpu-1p``, ``cpu-2p``...).
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

import dataclasses
import json
import math
import os
import statistics
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pytest

#: Version of the ``extra_info["xpubench"]`` layout (docs/architecture.md).
EXTRA_INFO_SCHEMA = 1
MAX_ROUNDS = 1000
MAX_LABEL = 80
#: Keys of ``extra_info["xpubench"]["strategy"]``.
STRATEGY_KEYS = ("device", "processes", "threads_per_process", "engine")
#: Flat headline keys copied from ``extra_info["xpubench"]`` for readers of pytest-benchmark's JSON.
FLAT_KEYS = ("throughput", "unit", "speedup", "efficiency", "cpu_wall_ratio", "peak_rss_bytes", "quality", "data")


# ---------------------------------------------------------------- settings


@dataclasses.dataclass(frozen=True)
class XpuSettings:
    """The session's ``--xpu-*`` options, validated.

    Args:
        size: Workload size, ``quick`` or ``full``.
        processes: Process counts the ``xpu_processes`` argument is parametrised over.
        devices: Device specs the ``xpu_device`` argument is parametrised over.
        label: Machine label recorded in the fingerprint (None: the hostname).
        options: Workload options (``key=value`` from ``--xpu-option``).
        rounds: pytest-benchmark rounds per benchmark (each round is one whole sweep).
        warmup_rounds: Sweeps run and discarded before the measured rounds.
        out_dir: Where result files are kept (None: a pytest temporary directory).
    """

    size: str = "quick"
    processes: tuple[int, ...] = (1,)
    devices: tuple[str, ...] = ("cpu",)
    label: str | None = None
    options: Mapping[str, str] = dataclasses.field(default_factory=dict)
    rounds: int = 1
    warmup_rounds: int = 0
    out_dir: str | None = None


def _default_processes() -> str:
    from bench.model.strategy import usable_cores

    n = usable_cores()
    return "1" if n == 1 else f"1,{n}"


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


def _parse_devices(text: str) -> list[str]:
    """Device specs, checked for known names only: one this machine cannot run is skipped later
    (with its reason), so the same command line works on a laptop and on a GPU instance."""
    from bench.engines.devices import device_names, get_device
    from bench.errors import UsageError

    specs = [p.strip() for p in str(text).split(",") if p.strip()]
    if not specs:
        raise UsageError(f"bad device list {text!r} (choose from: {', '.join(device_names() + ['all'])})")
    out: list[str] = []
    for spec in specs:
        names = device_names() if spec == "all" else [spec]
        for name in names:
            get_device(name)
            if name not in out:
                out.append(name)
    return out


def parse_settings(
    size: str | None = "quick",
    processes: str | None = None,
    devices: str | None = "cpu",
    label: str | None = None,
    options: Sequence[str] | None = None,
    rounds: str | int | None = 1,
    warmup_rounds: str | int | None = 0,
    out_dir: str | None = None,
) -> tuple[XpuSettings, list[str]]:
    """Validates the ``--xpu-*`` option values.

    Args:
        size: ``--xpu-size``.
        processes: ``--xpu-processes`` (``1,2,4`` or ``1-4``); None: ``1`` plus the usable cores.
        devices: ``--xpu-device`` (``cpu,gpu``... or ``all``). Unknown names are errors; a known
            device this machine cannot run is not (its benchmarks are skipped with the reason).
        label: ``--xpu-label``.
        options: ``--xpu-option`` values (``key=value``).
        rounds: ``--xpu-rounds``.
        warmup_rounds: ``--xpu-warmup-rounds``.
        out_dir: ``--xpu-out``.

    Returns:
        The settings, and warning lines (e.g. a process count above the usable cores).

    Raises:
        pytest.UsageError: one line naming the option and the bad value.
    """
    from bench.errors import UsageError, choices_error
    from bench.model.strategy import parse_processes
    from bench.model.workload import SIZES, parse_options

    size = "quick" if size is None else str(size)
    if size not in SIZES:
        raise pytest.UsageError(f"--xpu-size: {choices_error('size', size, SIZES)}")
    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            counts = parse_processes(processes if processes is not None else _default_processes())
    except UsageError as exc:
        raise pytest.UsageError(f"--xpu-processes: {exc}") from None
    try:
        specs = _parse_devices(devices if devices is not None else "cpu")
    except UsageError as exc:
        raise pytest.UsageError(f"--xpu-device: {exc}") from None
    try:
        opts = parse_options(list(options or []))
    except UsageError as exc:
        raise pytest.UsageError(f"--xpu-option: {exc}") from None
    if os.environ.get("XPUBENCH_OFFLINE"):
        opts.setdefault("offline", "1")
    out = None
    if out_dir is not None:
        from bench.sweep.sweep import prepare_out_dir

        if Path(out_dir).exists() and not Path(out_dir).is_dir():
            raise pytest.UsageError(f"--xpu-out: {str(out_dir)!r} is a file, not a directory")
        try:
            out = str(prepare_out_dir(out_dir).resolve())
        except UsageError as exc:
            raise pytest.UsageError(f"--xpu-out: {exc}") from None
    settings = XpuSettings(
        size=size,
        processes=tuple(counts),
        devices=tuple(specs),
        label=_label(label),
        options=opts,
        rounds=_count("--xpu-rounds", rounds if rounds is not None else 1, 1),
        warmup_rounds=_count("--xpu-warmup-rounds", warmup_rounds if warmup_rounds is not None else 0, 0),
        out_dir=out,
    )
    return settings, [str(w.message) for w in caught]


# ---------------------------------------------------------------- session state


@dataclasses.dataclass
class _Session:
    """What the plugin keeps for one pytest session (in ``config.stash``)."""

    settings: XpuSettings
    out_dir: Path | None = None
    baselines: dict = dataclasses.field(default_factory=dict)
    machine_extra: dict = dataclasses.field(default_factory=dict)
    gpu_reason: str | None = None
    gpu_checked: bool = False

    def note_result(self, result) -> None:
        """Keeps what only a TensorFlow worker knows (CUDA/cuDNN build, visible devices)."""
        for key in ("tensorflow_build", "tensorflow_devices"):
            if key in result.machine and key not in self.machine_extra:
                self.machine_extra[key] = result.machine[key]


_SESSION = pytest.StashKey[_Session]()


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
    group.addoption("--xpu-label", default=None, help="name of this machine in the results, e.g. laptop (default hostname)")
    group.addoption(
        "--xpu-option", action="append", default=[], metavar="KEY=VALUE", help="workload option, e.g. epochs=2 (repeatable)"
    )
    group.addoption("--xpu-rounds", default="1", metavar="N", help="measured sweeps per benchmark (default 1)")
    group.addoption("--xpu-warmup-rounds", default="0", metavar="N", help="discarded sweeps before measuring (default 0)")
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
    )
    for note in notes:
        config.issue_config_time_warning(pytest.PytestConfigWarning(f"xpubench: {note}"), stacklevel=2)
    config.stash[_SESSION] = _Session(settings)


def _session(config: pytest.Config) -> _Session:
    state = config.stash.get(_SESSION, None)
    if state is None:  # configure of this plugin did not run (should not happen); defaults
        state = config.stash[_SESSION] = _Session(parse_settings()[0])
    return state


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
    """Parametrises ``xpu_device`` and ``xpu_processes`` arguments from the options.

    Runs after the ``parametrize`` markers, so ids read ``lorenz-cpu-2p``; process counts vary
    fastest and ascending, so the 1-process benchmark (the speedup baseline) of a workload and
    device runs just before the others.

    Args:
        metafunc: The test function being collected.
    """
    settings = _session(metafunc.config).settings
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

    Uses the ``gpu`` device strategy's own check when one is registered, else NVML (lazily).
    """
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None and cvd.strip() in ("", "-1"):
        return f"no GPU visible (CUDA_VISIBLE_DEVICES={cvd!r} hides every GPU)"
    try:
        from bench.engines.devices import device_names, get_device

        if "gpu" in device_names():
            reason = get_device("gpu").availability()
            return f"no GPU visible ({reason})" if reason else None
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
    state = _session(config)
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
    state = _session(config)
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
    machine_info["xpubench"] = json_safe(info)


# ---------------------------------------------------------------- extra_info


def json_safe(value: Any) -> Any:
    """A copy that strict JSON accepts: tuples to lists, NaN/inf to None, numpy scalars to numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return json_safe(value.item())
    return value


def mean_quality(trials: Sequence) -> dict[str, float]:
    """Mean of each quality metric over the trials that finished.

    Args:
        trials: TrialRecords.
    """
    values: dict[str, list[float]] = {}
    for t in trials:
        if t.error is not None:
            continue
        for key, v in t.quality.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                values.setdefault(key, []).append(float(v))
    return {k: statistics.fmean(v) for k, v in values.items()}


def extra_info(run, rounds_wall_s: Sequence[float] = ()) -> dict:
    """``benchmark.extra_info`` for one run, per the pytest-benchmark JSON contract.

    Args:
        run: The RunRecord (summary already holding speedup/efficiency when a baseline was known).
        rounds_wall_s: xpubench wall seconds of every measured round (the run is their median).

    Returns:
        ``{"xpubench": {...contract...}, <flat headline copies>, "wall_s", "startup_s",
        "rounds_wall_s", "gpu_util_p50"/"gpu_util_p95" when GPUs were sampled}``.
    """
    summary = json_safe(dict(run.summary))
    strategy = {k: run.strategy.get(k) for k in STRATEGY_KEYS}
    if strategy["engine"] is None:
        strategy["engine"] = "local"
    quality = json_safe(mean_quality(run.trials))
    data = json_safe(dict(run.data))
    xb = {
        "workload": run.workload,
        "size": run.size,
        "strategy": strategy,
        "summary": summary,
        "quality": quality,
        "data": data,
        "schema": EXTRA_INFO_SCHEMA,
    }
    peak = summary.get("peak_tree_rss_bytes") or summary.get("peak_worker_rss_bytes")
    flat = {
        "throughput": summary.get("throughput"),
        "unit": summary.get("throughput_unit"),
        "speedup": summary.get("speedup"),
        "efficiency": summary.get("efficiency"),
        "cpu_wall_ratio": summary.get("cpu_wall_ratio"),
        "peak_rss_bytes": peak,
        "quality": dict(quality),
        "data": dict(data),
    }
    out = {"xpubench": xb, **flat}
    out["wall_s"] = summary.get("wall_s")
    startup = summary.get("startup_s")
    out["startup_s"] = startup.get("median") if isinstance(startup, dict) else None
    out["rounds_wall_s"] = json_safe(list(rounds_wall_s))
    for key in ("gpu_util_p50", "gpu_util_p95"):
        if summary.get(key) is not None:
            out[key] = summary[key]
    return out


# ---------------------------------------------------------------- the fixture


class XpuBenchmark:
    """The ``xpu`` fixture's value: call it once per test to benchmark one workload × strategy.

    Args:
        benchmark: pytest-benchmark's ``benchmark`` fixture for this test.
        settings: Defaults from the ``--xpu-*`` options.
        out_dir: Where the sweeps write their result files.
        baselines: Session store of 1-process runs, keyed by workload/size/device/engine/options.
        on_result: Called with every sweep's Result (the session keeps TensorFlow's build facts).
    """

    def __init__(
        self,
        benchmark,
        settings: XpuSettings,
        out_dir: str | os.PathLike,
        baselines: dict | None = None,
        on_result: Callable[[Any], None] | None = None,
    ):
        self.benchmark = benchmark
        self.settings = settings
        self.out_dir = Path(out_dir)
        self.baselines = {} if baselines is None else baselines
        self.on_result = on_result or (lambda result: None)
        self.results: list = []
        self._used = False

    def __call__(
        self,
        workload: str,
        processes: int = 1,
        device: str = "cpu",
        *,
        size: str | None = None,
        options: Mapping[str, Any] | None = None,
        threads: int | None = None,
        rounds: int | None = None,
        warmup_rounds: int | None = None,
        sample_interval: float | None = None,
        allow_failures: bool = False,
    ):
        """Runs ``workload`` under ``processes`` × ``device`` inside ``benchmark.pedantic``.

        Args:
            workload: Registry name (``bench.model.workload.workload_names()``).
            processes: Worker processes running trials at once.
            device: Device strategy spec (``cpu``, ``gpu``, ``gpu:1``, ``mirrored``).
            size: ``quick`` or ``full`` (default ``--xpu-size``).
            options: Workload options, added to ``--xpu-option`` ones (e.g. ``{"epochs": "2"}``).
            threads: Threads per worker (default usable cores // processes).
            rounds: Measured sweeps (default ``--xpu-rounds``).
            warmup_rounds: Discarded sweeps first (default ``--xpu-warmup-rounds``).
            sample_interval: Sampler interval in seconds (default 0.5; at least 0.05, below that
                the test fails with the floor named).
            allow_failures: Do not fail the test when trials fail.

        Returns:
            The median round's RunRecord, its summary holding speedup and efficiency against
            the 1-process run of the same workload/size/device measured earlier in this session
            (None when there was none).

        Raises:
            pytest.skip.Exception: the device is not available here.
            pytest.fail.Exception: bad arguments, a strategy that could not run, failed trials.
        """
        from bench.engines.devices import get_device
        from bench.errors import UsageError
        from bench.sweep.sweep import finalize_runs, run_sweep
        from bench.measure.sampler import DEFAULT_INTERVAL_S, check_interval
        from bench.text import printable
        from bench.model.strategy import parse_count
        from bench.model.workload import SIZES, get_workload

        if self._used:
            pytest.fail("the xpu fixture runs one benchmark per test (pytest-benchmark measures one target per test)")
        self._used = True
        size = size or self.settings.size
        rounds = self.settings.rounds if rounds is None else rounds
        warmup_rounds = self.settings.warmup_rounds if warmup_rounds is None else warmup_rounds
        opts = {**self.settings.options, **{str(k): str(v) for k, v in (options or {}).items()}}
        try:
            if size not in SIZES:
                raise UsageError(f"unknown size {size!r} (choose from: {', '.join(SIZES)})")
            processes = parse_count(processes)
            if sample_interval is not None:
                sample_interval = check_interval(sample_interval, "sample_interval")
            work = get_workload(workload)
            work.checked_trials(size, opts)
            reason = get_device(device).availability()
        except (UsageError, ValueError, TypeError) as exc:
            pytest.fail(f"xpu({workload!r}, processes={processes!r}, device={device!r}): {exc}", pytrace=False)
        if reason:
            pytest.skip(f"device {device!r} unavailable: {reason}")

        if getattr(self.benchmark, "group", None) is None:
            self.benchmark.group = f"{workload}-{size}"
        results = self.results

        def one_sweep():
            result = run_sweep(
                workload, size, processes=[processes], devices=[device], threads=threads,
                out_dir=self.out_dir, label=self.settings.label, options=opts,
                sample_interval=sample_interval or DEFAULT_INTERVAL_S,
            )
            results.append(result)
            return result

        try:
            self.benchmark.pedantic(one_sweep, rounds=rounds, warmup_rounds=warmup_rounds, iterations=1)
        except UsageError as exc:  # e.g. the memory guard refusing the strategy
            pytest.fail(f"{workload} {device}×{processes}p: {exc}", pytrace=False)
        # pedantic runs warm-up rounds first, then the measured ones (and, with --benchmark-disable, one)
        measured = results[warmup_rounds : warmup_rounds + rounds] or results[-1:]
        self.on_result(measured[-1])
        runs = [r.runs[0] for r in measured]
        for run in runs:
            if run.status == "skipped":
                pytest.skip(f"device {device!r} unavailable: {run.skipped}")
            if run.status != "complete":
                pytest.fail(f"{workload} {device}×{processes}p: run {run.status}: {printable('; '.join(run.notes), None)}",
                            pytrace=False)
        walls = [float(r.summary.get("wall_s") or 0.0) for r in runs]
        run = sorted(runs, key=lambda r: r.summary.get("wall_s") or 0.0)[(len(runs) - 1) // 2]

        key = (workload, size, device, run.strategy.get("engine", "local"), json.dumps(opts, sort_keys=True))
        if processes == 1 and not run.summary.get("failed"):
            self.baselines.setdefault(key, run)
        base = self.baselines.get(key)
        if base is not None:
            run = finalize_runs([base, run])[-1]
        self.benchmark.extra_info.update(extra_info(run, walls))

        failed = int(run.summary.get("failed") or 0)
        if failed and not allow_failures:
            first = next(t for t in run.trials if t.error is not None)
            pytest.fail(
                f"{workload} {device}×{processes}p: {failed} of {len(run.trials)} trials failed; "
                f"first ({printable(first.id)}): {first.error.kind}: {printable(first.error.message, 1000)}",
                pytrace=False,
            )
        return run


@pytest.fixture
def xpu(request: pytest.FixtureRequest, benchmark, tmp_path_factory: pytest.TempPathFactory) -> XpuBenchmark:
    """Benchmarks an xpubench workload under a strategy with pytest-benchmark.

    Example::

        def test_lorenz(xpu, xpu_processes):
            run = xpu("lorenz", processes=xpu_processes)
            assert run.summary["failed"] == 0

    Args:
        request: pytest's request (only the config's ``--xpu-*`` settings are read).
        benchmark: pytest-benchmark's fixture (so ``--benchmark-only``/``--benchmark-skip`` apply).
        tmp_path_factory: Result files go to one temporary directory per session unless
            ``--xpu-out`` is given.

    Returns:
        An :class:`XpuBenchmark`; call it once.
    """
    state = _session(request.config)
    if state.out_dir is None:
        # one directory per session: earlier result files are the memory guard's history, so a
        # 2-process sweep after the 1-process one starts its workers without a probe trial
        state.out_dir = Path(state.settings.out_dir) if state.settings.out_dir else tmp_path_factory.mktemp("xpubench")
    return XpuBenchmark(benchmark, state.settings, state.out_dir, baselines=state.baselines, on_result=state.note_result)
