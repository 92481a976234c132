"""The ``xpu`` fixture: one xpubench workload × strategy benchmarked inside ``benchmark.pedantic``.

The session's ``--xpu-*`` settings (:class:`XpuSettings`, parsed by bench/pytest/plugin.py) are the
defaults; each call's values go through :meth:`bench.request.SweepRequest.parse`, the same checks
as ``bench run``. Timing: one pytest-benchmark round is one sweep *including* worker start-up;
xpubench's own figures in ``extra_info`` (bench/pytest/extra_info.py) exclude it.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable, Mapping

import pytest

from bench.model.strategy import DEFAULT_BACKEND, backend_label
from bench.pytest.extra_info import extra_info
from bench.request import SweepRequest


@dataclasses.dataclass(frozen=True)
class XpuSettings:
    """The session's ``--xpu-*`` options, validated: the sweep defaults and pytest's own knobs.

    Args:
        request: Size, process counts and devices to parametrise over, label, workload options,
            sample interval and output directory (None: a pytest temporary directory).
        rounds: pytest-benchmark rounds per benchmark (each round is one whole sweep).
        warmup_rounds: Sweeps run and discarded before the measured rounds.
    """

    request: SweepRequest = dataclasses.field(default_factory=SweepRequest)
    rounds: int = 1
    warmup_rounds: int = 0

    @property
    def size(self) -> str:
        return self.request.size

    @property
    def processes(self) -> tuple[int, ...]:
        return self.request.processes

    @property
    def devices(self) -> tuple[str, ...]:
        return self.request.devices

    @property
    def backends(self) -> tuple[str, ...]:
        return self.request.backends

    @property
    def label(self) -> str | None:
        return self.request.label

    @property
    def options(self) -> Mapping[str, str]:
        return self.request.options

    @property
    def out_dir(self) -> str | None:
        return self.request.out_dir

    @property
    def sample_interval(self) -> float:
        return self.request.sample_interval


@dataclasses.dataclass
class Session:
    """What the plugin keeps for one pytest session (in ``config.stash``)."""

    settings: XpuSettings
    out_dir: Path | None = None
    # runs measured earlier in the session that later ones are compared with: 1-process runs
    # (speedup) and tensorflow runs (speedup_vs_tensorflow), by reference_keys()
    baselines: dict = dataclasses.field(default_factory=dict)
    machine_extra: dict = dataclasses.field(default_factory=dict)
    gpu_reason: str | None = None
    gpu_checked: bool = False

    def note_result(self, result) -> None:
        """Keeps what only a TensorFlow worker knows (CUDA/cuDNN build, visible devices)."""
        for key in ("tensorflow_build", "tensorflow_devices"):
            if key in result.machine and key not in self.machine_extra:
                self.machine_extra[key] = result.machine[key]


SESSION = pytest.StashKey[Session]()


def reference_keys(run, options: Mapping[str, Any]) -> tuple[tuple, tuple]:
    """The session keys a run is stored and looked up by: its own 1-process baseline (same
    workload/size/device/backend/engine/options) and the tensorflow run it is compared with (same
    workload/size/device/processes/threads/engine/options).

    Args:
        run: A RunRecord.
        options: The workload options it ran with.
    """
    s, opts = run.strategy, tuple(sorted(options.items()))
    engine = s.get("engine", "local")
    own = ("baseline", run.workload, run.size, s.get("device"), run.backend, engine, opts)
    tf = ("tensorflow", run.workload, run.size, s.get("device"), s.get("processes"), s.get("threads_per_process"),
          engine, opts)
    return own, tf


def session(config: pytest.Config) -> Session:
    """The session state ``pytest_configure`` stored (defaults, should it not have run).

    Args:
        config: The pytest config.
    """
    state = config.stash.get(SESSION, None)
    if state is None:
        state = config.stash[SESSION] = Session(XpuSettings(SweepRequest.parse(require_available=False)))
    return state


class XpuBenchmark:
    """The ``xpu`` fixture's value: call it once per test to benchmark one workload × strategy.

    Args:
        benchmark: pytest-benchmark's ``benchmark`` fixture for this test.
        settings: Defaults from the ``--xpu-*`` options.
        out_dir: Where the sweeps write their result files.
        baselines: Session store of runs later ones are compared with (:func:`reference_keys`).
        on_result: Called with every sweep's Result (the session keeps TensorFlow's build facts).
        backend: The Keras backend of a call that names none (the test's ``xpu_backend``).
    """

    def __init__(
        self,
        benchmark,
        settings: XpuSettings,
        out_dir: str | os.PathLike,
        baselines: dict | None = None,
        on_result: Callable[[Any], None] | None = None,
        backend: str = DEFAULT_BACKEND,
    ):
        self.benchmark = benchmark
        self.backend = backend
        self.settings = settings
        self.out_dir = Path(out_dir)
        self.baselines = {} if baselines is None else baselines
        self.on_result = on_result or (lambda result: None)
        self.results: list = []
        self._used = False

    def _request(self, workload, processes, device, backend, size, options, threads, sample_interval,
                 repeat=None) -> SweepRequest:
        """This call's SweepRequest: the session's settings overridden by the call's arguments."""
        base = self.settings.request
        return SweepRequest.parse(
            repeat=base.repeats if repeat is None else repeat,
            workload=workload, size=base.size if size is None else size, processes=processes, devices=device,
            backends=backend, threads=threads,
            options={**base.options, **{str(k): str(v) for k, v in (options or {}).items()}},
            label=base.label, sample_interval=base.sample_interval if sample_interval is None else sample_interval,
            out_dir=self.out_dir, require_available=False,
        )

    def __call__(
        self,
        workload: str | type,
        processes: int = 1,
        device: str = "cpu",
        *,
        backend: str | None = None,
        size: str | None = None,
        options: Mapping[str, Any] | None = None,
        threads: int | None = None,
        rounds: int | None = None,
        warmup_rounds: int | None = None,
        sample_interval: float | None = None,
        allow_failures: bool = False,
        repeat: int | None = None,
    ):
        """Runs ``workload`` under ``processes`` × ``device`` inside ``benchmark.pedantic``.

        Args:
            workload: Registry name (``bench.model.workload.workload_names()``), a spec
                (``"path/file.py:Class"``, ``"package.module:Class"``) or a ``Workload`` subclass
                (defined at module level, e.g. in the test file: every worker imports it by its
                file, :func:`bench.model.workload_spec.spec_of`).
            processes: Worker processes running trials at once.
            device: Device strategy spec (``cpu``, ``gpu``, ``gpu:1``, ``mirrored``).
            backend: Keras backend (``tensorflow``, ``jax``, ``torch``; default: this test's
                ``xpu_backend``, from ``--xpu-backend``, else tensorflow). Not installed: the test fails.
            size: ``quick`` or ``full`` (default ``--xpu-size``).
            options: Workload options, added to ``--xpu-option`` ones (e.g. ``{"epochs": "2"}``).
            threads: Threads per worker (default usable cores // processes).
            rounds: Measured sweeps (default ``--xpu-rounds``).
            warmup_rounds: Discarded sweeps first (default ``--xpu-warmup-rounds``).
            sample_interval: Sampler interval in seconds (default ``--xpu-sample-interval``, 0.5;
                at least 0.05, below that the test fails with the floor named).
            allow_failures: Do not fail the test when trials fail.
            repeat: Measurements of the strategy in each round's sweep (default ``--xpu-repeat``,
                1); the run returned is the first repeat, its ``summary.repeats`` holding the
                medians and 95 % intervals over all of them.

        Returns:
            The median round's RunRecord, its summary holding speedup and efficiency against
            the 1-process run of the same workload/size/device/backend measured earlier in this
            session, and ``speedup_vs_tensorflow`` against the tensorflow run of the same
            workload/size/device/processes/threads (None when there was none).

        Raises:
            pytest.skip.Exception: the device is not available here (or not with this backend).
            pytest.fail.Exception: bad arguments, a strategy that could not run, failed trials.
        """
        from bench.errors import UsageError
        from bench.model.ratios import finalize_runs
        from bench.sweep import sweep as sweep_module
        from bench.text import printable

        if self._used:
            pytest.fail("the xpu fixture runs one benchmark per test (pytest-benchmark measures one target per test)")
        self._used = True
        rounds = self.settings.rounds if rounds is None else rounds
        warmup_rounds = self.settings.warmup_rounds if warmup_rounds is None else warmup_rounds
        backend = self.backend if backend is None else backend
        try:
            workload, name = _workload_spec(workload)
            request = self._request(workload, processes, device, backend, size, options, threads, sample_interval,
                                    repeat)
            if len(request.processes) != 1 or len(request.devices) != 1 or len(request.backends) != 1:
                raise UsageError(f"one process count, one device and one backend per call, not "
                                 f"{len(request.processes)}, {len(request.devices)} and {len(request.backends)} "
                                 "(parametrise with xpu_processes / xpu_device / xpu_backend)")
            unavailable = request.unavailable()
        except (UsageError, ValueError, TypeError) as exc:  # TypeError, ValueError: a workload's own config checks
            shown_backend = "" if backend == DEFAULT_BACKEND else f", backend={backend!r}"
            shown_workload = getattr(workload, "__qualname__", workload)
            pytest.fail(f"xpu({shown_workload!r}, processes={processes!r}, device={device!r}{shown_backend}): {exc}",
                        pytrace=False)
        processes, size, backend = request.processes[0], request.size, request.backends[0]
        if unavailable:
            with_backend = "" if backend == DEFAULT_BACKEND else f" with backend {backend!r}"
            pytest.skip(f"device {device!r} unavailable{with_backend}: {unavailable[request.devices[0]]}")
        where = backend_label(backend, f"{device}×{processes}p")

        if getattr(self.benchmark, "group", None) is None:
            self.benchmark.group = f"{name}-{size}"
        results = self.results

        def one_sweep():
            result = sweep_module.run_sweep(workload, size, processes=list(request.processes),
                                            devices=list(request.devices), threads=request.threads,
                                            backends=list(request.backends), **request.sweep_kwargs())
            results.append(result)
            return result

        try:
            self.benchmark.pedantic(one_sweep, rounds=rounds, warmup_rounds=warmup_rounds, iterations=1)
        except UsageError as exc:  # e.g. the memory guard refusing the strategy
            pytest.fail(f"{name} {where}: {exc}", pytrace=False)
        # pedantic runs warm-up rounds first, then the measured ones (and, with --benchmark-disable, one)
        measured = results[warmup_rounds : warmup_rounds + rounds] or results[-1:]
        self.on_result(measured[-1])
        runs = [r.runs[0] for r in measured]
        for run in runs:
            if run.status == "skipped":
                with_backend = "" if backend == DEFAULT_BACKEND else f" with backend {backend!r}"
                pytest.skip(f"device {device!r} unavailable{with_backend}: {run.skipped}")
            if run.status != "complete":
                pytest.fail(f"{name} {where}: run {run.status}: {printable('; '.join(run.notes), None)}",
                            pytrace=False)
        walls = [float(r.summary.wall_s or 0.0) for r in runs]
        run = sorted(runs, key=lambda r: r.summary.wall_s or 0.0)[(len(runs) - 1) // 2]
        repeats = next((r.runs for r in measured if r.runs and r.runs[0] is run), (run,))  # its round's repeats

        own, tf = reference_keys(run, request.options)
        if not run.summary.failed:
            if processes == 1:
                self.baselines.setdefault(own, run)
            if backend == DEFAULT_BACKEND:
                self.baselines.setdefault(tf, run)
        earlier = {id(x): x for x in (self.baselines.get(own), self.baselines.get(tf)) if x is not None}
        if earlier:  # the round's repeats together, so their intervals stay over all of them
            together = [*earlier.values(), *(r for r in repeats if id(r) not in earlier)]
            run = finalize_runs(together)[next(i for i, r in enumerate(together) if r is run)]
        self.benchmark.extra_info.update(extra_info(run, walls))

        failed = int(run.summary.failed or 0)
        if failed and not allow_failures:
            first = next(t for t in run.trials if t.error is not None)
            pytest.fail(
                f"{name} {where}: {failed} of {len(run.trials)} trials failed; "
                f"first ({printable(first.id)}): {first.error.kind}: {printable(first.error.message, 1000)}",
                pytrace=False,
            )
        return run


def _workload_spec(workload: Any) -> tuple[str, str]:
    """``(what the request and the workers get, the workload's name)`` for a registered name, a spec
    or a Workload subclass (mapped to the spec a worker imports it by; this process keeps the class).

    Raises:
        UsageError: not a Workload subclass, a class a worker cannot import, a bad spec.
    """
    from bench.model import workload_spec
    from bench.model.workload import get_workload

    if isinstance(workload, type):
        get_workload(workload)  # checks it is a Workload subclass defined at module level
        workload = workload_spec.spec_of(workload)
    return workload, get_workload(workload).name


@pytest.fixture
def xpu_backend() -> str:
    """The Keras backend of this test: parametrised from ``--xpu-backend`` by the plugin (ids
    ``jax``...) unless that is tensorflow alone; then ``tensorflow``. The ``xpu`` fixture uses it
    as its default backend, so every benchmark runs once per ``--xpu-backend``."""
    return DEFAULT_BACKEND


@pytest.fixture
def xpu(request: pytest.FixtureRequest, benchmark, tmp_path_factory: pytest.TempPathFactory,
        xpu_backend: str) -> XpuBenchmark:
    """Benchmarks an xpubench workload under a strategy with pytest-benchmark.

    Example::

        def test_lorenz(xpu, xpu_processes):
            run = xpu("lorenz", processes=xpu_processes)
            assert run.summary.failed == 0

    Args:
        request: pytest's request (only the config's ``--xpu-*`` settings are read).
        benchmark: pytest-benchmark's fixture (so ``--benchmark-only``/``--benchmark-skip`` apply).
        tmp_path_factory: Result files go to one temporary directory per session unless
            ``--xpu-out`` is given.
        xpu_backend: The test's backend (the calls' default).

    Returns:
        An :class:`XpuBenchmark`; call it once.
    """
    state = session(request.config)
    if state.out_dir is None:
        # one directory per session: earlier result files are the memory guard's history, so a
        # 2-process sweep after the 1-process one starts its workers without a probe trial
        state.out_dir = Path(state.settings.out_dir) if state.settings.out_dir else tmp_path_factory.mktemp("xpubench")
    return XpuBenchmark(benchmark, state.settings, state.out_dir, baselines=state.baselines, on_result=state.note_result,
                        backend=xpu_backend)
