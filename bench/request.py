"""One sweep's request, parsed and validated once: the one path from ``bench run``, ``bench suite``
and the pytest plugin's ``xpu`` fixture to :class:`bench.sweep.sweep.Sweep`.

A sweep runs one strategy per (Keras backend, device, process count). Every front door gives
:meth:`SweepRequest.parse` the values as it has them (text from a command
line or an ini file, or Python values from a fixture call); bad input raises
:class:`bench.errors.UsageError`, one line naming the bad value and the valid choices, before
anything is created or started. The error carries ``field`` (which value was bad), so a front
door can name the value its own way (the plugin prefixes ``--xpu-size:``).

A front-door module: it imports the sweep, engines, measure and model layers, never reports/.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import types
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from bench.errors import UsageError
from bench.measure.sampler import DEFAULT_INTERVAL_S
from bench.model.workload import SIZES

if TYPE_CHECKING:
    from bench.model.results import Result

#: How a front door names each value in its messages; the defaults are the Python argument names
#: (the ``xpu`` fixture's). ``bench`` gives its option names (``--processes``...).
DEFAULT_NAMES: Mapping[str, str] = {
    "processes": "processes", "sample_interval": "sample_interval", "engine": "engine", "address": "address",
    "worker_max_rss": "worker_max_rss",
    "repeat": "repeat", "scaling": "scaling",
}

MAX_REPEATS = 1000  # measurements of one strategy a sweep may take


def _repeat(value: Any, name: str) -> int:
    """Repeats per strategy: a whole number from 1 to :data:`MAX_REPEATS` (None: 1)."""
    if value is None:
        return 1
    bad = UsageError(f"bad {name} {value!r} (expected a whole number of repeats from 1 to {MAX_REPEATS})")
    if isinstance(value, bool):
        raise bad
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise bad from None
    if not 1 <= number <= MAX_REPEATS:
        raise bad
    return number


def default_processes() -> str:
    """The process counts a sweep runs when none are given: 1, and the usable cores when more than 1."""
    from bench.model.strategy import usable_cores

    n = usable_cores()
    return "1" if n == 1 else f"1,{n}"


@contextlib.contextmanager
def _about(field: str) -> Iterator[None]:
    """Tags a UsageError raised inside the block with the request field it is about."""
    try:
        yield
    except UsageError as exc:
        if getattr(exc, "field", None) is None:
            exc.field = field
        raise


def _seconds(text: Any, what: str) -> float:
    """A positive, finite number of seconds, or UsageError naming ``what`` and the value."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise UsageError(f"bad {what} {text!r} (expected a positive number of seconds)") from None
    if not value > 0 or value == float("inf"):  # NaN fails ``> 0``
        raise UsageError(f"bad {what} {text!r} (expected a positive number of seconds)")
    return value


def _megabytes(text: Any, what: str) -> int:
    """A memory limit in MB (``0``: no limit) as bytes, or UsageError naming ``what`` and the value."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise UsageError(f"bad {what} {text!r} (expected megabytes, e.g. 4096, or 0 for no limit)") from None
    if not value >= 0 or value == float("inf"):  # NaN fails ``>= 0``
        raise UsageError(f"bad {what} {text!r} (expected megabytes, e.g. 4096, or 0 for no limit)")
    return int(value * 2**20)


def _size(text: Any) -> str:
    size = "quick" if text is None else str(text)
    if size not in SIZES:
        raise UsageError(f"unknown size {size!r} (choose from: {', '.join(SIZES)})")
    return size


def _processes(text: Any, name: str) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Process counts (``1,2,4``, ``1-4``, an int or a list) and the warnings parsing them gave."""
    from bench.model.strategy import parse_processes

    text = default_processes() if text is None else text
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            counts = parse_processes(text)
        except UsageError as exc:
            if isinstance(text, str) and "," in text and repr(text) not in str(exc):
                raise UsageError(f"{exc} in {name} {text!r}") from None
            raise
    return tuple(counts), tuple(str(w.message) for w in caught)


def parse_device_list(text: Any, require_available: bool = True) -> tuple[str, ...]:
    """Device specs (``cpu,gpu``, ``all``...), every name checked against the registry.

    Args:
        text: The comma-separated specs (None: ``cpu``).
        require_available: A named strategy this machine cannot run is an error (``bench run``).
            False: only unknown or malformed names are errors; an unavailable device is skipped
            later, with its reason (the plugin: one command line for a laptop and a GPU box).

    Raises:
        UsageError: empty list, unknown or malformed name (or, when required, one unavailable here).
    """
    from bench.engines.devices import device_names, get_device, parse_devices

    text = "cpu" if text is None else str(text)
    if require_available:
        return tuple(parse_devices(text))
    specs = [p.strip() for p in text.split(",") if p.strip()]
    if not specs:
        return tuple(parse_devices(text))  # raises the one "bad device list" error
    out: list[str] = []
    for spec in specs:
        for name in device_names() if spec == "all" else [spec]:
            get_device(name)
            if name not in out:
                out.append(name)
    return tuple(out)


def parse_backend_list(text: Any) -> tuple[str, ...]:
    """Keras backends (``tensorflow,jax``, ``all`` = the installed ones, or a list), each known and
    installed (:func:`bench.backends.registry.parse_backends`).

    Args:
        text: Comma-separated names, ``all``, or a list/tuple of names (None: tensorflow).

    Raises:
        UsageError: empty list, unknown backend (with the choices), one that is not installed
            (with the pip command).
    """
    from bench.backends.registry import parse_backends
    from bench.backends.registry import default_backend

    return tuple(parse_backends(default_backend() if text is None else text))


def explicit_devices(text: Any) -> tuple[str, ...]:
    """The device specs a device list names itself (``all`` left out: what it expands to is
    skipped, with the reason, where it cannot run).

    Args:
        text: The comma-separated specs (None: ``cpu``).
    """
    text = "cpu" if text is None else str(text)
    return tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip() and p.strip() != "all"))


def combination_reason(backend: str, device: str) -> str | None:
    """Why ``device`` cannot run with ``backend`` here (None: it can): the device strategy's
    ``availability(backend)``, which asks the backend first (``Backend.supports``), then this machine.

    Args:
        backend: Backend name (known and installed).
        device: Device spec.
    """
    from bench.engines.devices import get_device

    return get_device(device).availability(backend=backend) or None


def _check_combinations(devices: Any, backends: Sequence[str]) -> None:
    """Every explicitly named device must run with every backend here (``bench run``): one line
    naming both when a backend cannot run a device, the device's own reason when it is not here."""
    from bench.backends.registry import get_backend
    from bench.engines.devices import get_device

    for device in explicit_devices(devices):
        for backend in backends:
            reason = get_backend(backend).supports(device)
            if reason:
                raise UsageError(f"device {device!r} cannot run on backend {backend!r}: {reason}")
            reason = get_device(device).availability(backend=backend)
            if reason:
                raise UsageError(reason)


def _data_files(data: str) -> str:
    """``--data``: one file, or several comma-separated (``x.npy,y.npy``), each existing; resolved."""
    parts = [data] if Path(data).is_file() else [p.strip() for p in str(data).split(",") if p.strip()]
    for part in parts or [data]:
        if not Path(part).is_file():
            raise UsageError(f"data file {part!r} does not exist")
    return ",".join(str(Path(p).resolve()) for p in parts)


def _options(options: Sequence[str] | Mapping[str, Any] | None, data: str | None, offline: bool,
             model: str | None, model_file: str | None = None) -> dict[str, str]:
    from bench.model.workload import parse_options

    if isinstance(options, Mapping):
        opts = {str(k): str(v) for k, v in options.items()}
    else:
        opts = parse_options(list(options or []))
    if data:
        opts["data"] = _data_files(data)
    model_file = model_file or opts.get("model_file")
    if model_file:  # the model workload's saved model (--model-file): must exist; recorded resolved
        path = Path(model_file).expanduser()
        if not path.is_file():
            raise UsageError(f"model file {model_file!r} {'is not a file' if path.exists() else 'does not exist'}")
        opts["model_file"] = str(path.resolve())
    if offline or os.environ.get("XPUBENCH_OFFLINE"):
        opts["offline"] = "1"
    if model:
        opts["model"] = model
    return opts


@dataclasses.dataclass(frozen=True)
class SweepRequest:
    """Every option of one sweep, validated (build one with :meth:`parse`).

    Args:
        workload: Registry name (None: a request that is not about one workload yet, e.g. a
            suite's or a pytest session's defaults; see :meth:`for_workload`).
        size: ``quick`` or ``full``.
        processes: Worker process counts, ascending.
        devices: Device strategy specs.
        backends: Keras backends (known and installed), in the order given.
        threads: Threads per worker (None: usable cores // processes).
        options: Workload options (``key=value``, plus ``data``, ``offline``, ``model``); read-only.
        engine: Execution engine (``local``, ``ray``).
        engine_options: Engine keyword arguments (``{"address": ...}``); read-only.
        label: Machine label recorded in the result (None: the hostname).
        sample_interval: Sampler interval in seconds (at least the sampler's floor).
        trial_timeout: Seconds a trial may take (None: no limit).
        out_dir: Directory for the result file (None: the sweep's default).
        resume_path: The result file to continue and write (None: a new file in ``out_dir``).
        resume: The Result loaded from ``resume_path``.
        force: Run what the memory guard would lower or refuse.
        command: The command line recorded in the result (None: ``sys.argv``).
        notes: Warnings parsing gave (e.g. a process count above the usable cores).
        worker_max_rss: A local worker whose RSS after a trial is above this many bytes is
            restarted, and the restart recorded (None: the default,
            ``bench.engines.workercache.DEFAULT_MAX_RSS_MB``; 0: never).
        repeats: Measurements of every strategy, interleaved (``--repeat K``).
        scalings: ``strong`` and/or ``weak`` (``--scaling``; weak: every worker runs every trial).
    """

    workload: str | None = None
    size: str = "quick"
    processes: tuple[int, ...] = (1,)
    devices: tuple[str, ...] = ("cpu",)
    backends: tuple[str, ...] = ("tensorflow",)
    threads: int | None = None
    options: Mapping[str, str] = dataclasses.field(default_factory=dict)
    engine: str = "local"
    engine_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    label: str | None = None
    sample_interval: float = DEFAULT_INTERVAL_S
    trial_timeout: float | None = None
    out_dir: str | None = None
    resume_path: str | None = None
    resume: Result | None = dataclasses.field(default=None, compare=False, repr=False)
    force: bool = False
    command: tuple[str, ...] | None = None
    notes: tuple[str, ...] = dataclasses.field(default=(), compare=False)
    worker_max_rss: int | None = None
    repeats: int = 1
    scalings: tuple[str, ...] = ("strong",)

    @classmethod
    def parse(
        cls,
        *,
        workload: str | None = None,
        size: Any = "quick",
        processes: Any = None,
        devices: Any = "cpu",
        backends: Any = None,
        threads: Any = None,
        options: Sequence[str] | Mapping[str, Any] | None = None,
        data: str | None = None,
        offline: bool = False,
        model: str | None = None,
        model_file: str | None = None,
        engine: str | None = None,
        address: str | None = None,
        label: str | None = None,
        sample_interval: Any = None,
        trial_timeout: Any = None,
        out_dir: str | os.PathLike | None = None,
        create_out_dir: bool = False,
        resume: str | os.PathLike | None = None,
        force: bool = False,
        command: Sequence[str] | None = None,
        require_available: bool = True,
        names: Mapping[str, str] | None = None,
        worker_max_rss: Any = None,
        repeat: Any = None,
        scaling: Any = None,
    ) -> SweepRequest:
        """Parses and validates one sweep's values, in the order ``bench run`` checks them.

        Args:
            workload: Workload name (None: see the class).
            size: ``quick`` or ``full`` (None: quick).
            processes: ``1,2,4``, ``1-4``, an int or a list (None: :func:`default_processes`).
            devices: ``cpu,gpu``... or ``all`` (None: cpu).
            backends: ``tensorflow,jax,torch``, ``all`` (the installed ones) or a list (None: tensorflow).
            threads: Threads per worker, text or int (None: derived from the process count).
            options: ``key=value`` texts, or a mapping already split.
            data: A dataset file, or comma-separated files (``x.npy,y.npy``); each must exist;
                recorded as the ``data`` option, resolved.
            offline: Record ``offline=1`` (also when ``XPUBENCH_OFFLINE`` is set).
            model: predict_modes: which workload's model (the ``model`` option).
            model_file: The ``model`` workload's saved Keras model (must exist; the ``model_file`` option).
            engine: Cluster engine name (None: local).
            address: Cluster address; needs ``engine``.
            label: Machine label.
            sample_interval: Seconds, text or number (None: the sampler's default).
            trial_timeout: Seconds, text or number (None: no limit).
            out_dir: Output directory (None: left to the sweep's default, unchecked).
            create_out_dir: Create it now (the plugin) rather than only check it (``bench``: the
                sweep creates it once everything else is checked).
            resume: A result file to continue (loaded here; the sweep checks that it matches).
            force: The sweep's ``force``.
            command: The command line to record.
            require_available: See :func:`parse_device_list`; also, a named device a backend
                cannot run (``Backend.supports``), or cannot run here, is an error (False: such
                combinations are skipped later with the reason, see :meth:`unavailable`).
            names: How the caller names ``processes``, ``sample_interval``, ``engine``,
                ``address``, ``worker_max_rss``, ``repeat`` and ``scaling`` in messages (default
                :data:`DEFAULT_NAMES`).
            worker_max_rss: Megabytes, text or number (None: the default; 0: no limit).
            repeat: Measurements of every strategy, 1 to :data:`MAX_REPEATS`, text or int (None: 1).
            scaling: ``strong``, ``weak`` or ``strong,weak`` (None: strong).

        Returns:
            The request; ``notes`` holds warnings for the caller to show.

        Raises:
            UsageError: one line naming the bad value (and the choices); ``field`` says which.
        """
        from bench.model.strategy import parse_count

        names = {**DEFAULT_NAMES, **(names or {})}
        if workload is not None:
            with _about("workload"):
                _workload(workload)
        with _about("engine"):
            if engine:
                from bench.engines.registry import get_engine

                get_engine(engine)
            elif address:
                raise UsageError(f"{names['address']} {address!r} needs {names['engine']} (choose from: ray)")
        with _about("size"):
            size = _size(size)
        with _about("backends"):
            backend_names = parse_backend_list(backends)
        with _about("devices"):
            device_specs = parse_device_list(devices, require_available=False)
            if require_available:
                _check_combinations(devices, backend_names)
        with _about("processes"):
            counts, notes = _processes(processes, names["processes"])
        with _about("threads"):
            threads = None if threads is None else parse_count(threads, "thread count")
        with _about("repeat"):
            repeats = _repeat(repeat, names["repeat"])
        with _about("scaling"):
            from bench.model.strategy import parse_scalings

            scalings = parse_scalings(scaling)
        with _about("trial_timeout"):
            trial_timeout = None if trial_timeout is None else _seconds(trial_timeout, "trial timeout")
        with _about("sample_interval"):
            from bench.measure.sampler import check_interval

            interval = DEFAULT_INTERVAL_S if sample_interval is None else check_interval(
                _seconds(sample_interval, "sample interval"), names["sample_interval"])
        with _about("worker_max_rss"):
            max_rss = None if worker_max_rss is None else _megabytes(
                worker_max_rss, names["worker_max_rss"])
        with _about("options"):
            opts = _options(options, data, offline, model, model_file)
        loaded = None
        if resume is not None:
            from bench.model import results

            with _about("resume"):
                loaded = results.load(resume)
        request = cls(
            workload=workload, size=size, processes=counts, devices=device_specs, backends=backend_names,
            threads=threads, options=types.MappingProxyType(opts), engine=engine or "local",
            engine_options=types.MappingProxyType({"address": address} if address else {}), label=label,
            sample_interval=interval, trial_timeout=trial_timeout,
            out_dir=None if out_dir is None else str(out_dir), resume_path=None if resume is None else str(resume),
            resume=loaded, force=force, command=None if command is None else tuple(command), notes=notes,
            worker_max_rss=max_rss,
            repeats=repeats, scalings=scalings,
        )
        request = request.checked()
        if out_dir is not None and create_out_dir:  # last: nothing is created before every value is good
            from bench.sweep.sweep import prepare_out_dir

            with _about("out_dir"):
                request = dataclasses.replace(request, out_dir=str(prepare_out_dir(out_dir).resolve()))
        return request

    def checked(self) -> SweepRequest:
        """Checks what needs the registry or the file system: the workload's own option checks
        (``Workload.checked_trials``) and the directory the result file will go to.

        Returns:
            This request.

        Raises:
            UsageError: naming the bad value; ``field`` says which.
        """
        if self.workload is not None:
            with _about("options"):
                _workload(self.workload).checked_trials(self.size, dict(self.options))
        where = Path(self.resume_path).parent if self.resume_path else self.out_dir
        if where is not None:
            from bench.sweep.sweep import check_out_dir

            with _about("out_dir"):
                check_out_dir(where)
        return self

    def for_workload(self, workload: str, resume_path: str | None = None, resume: Result | None = None) -> SweepRequest:
        """This request for one workload (a suite's), checked.

        Args:
            workload: Workload name.
            resume_path: Its file to continue, if any.
            resume: The Result loaded from ``resume_path``.

        Raises:
            UsageError: unknown workload, or options it refuses.
        """
        with _about("workload"):
            _workload(workload)
        return dataclasses.replace(self, workload=workload, resume_path=resume_path, resume=resume).checked()

    def strategies(self) -> list:
        """The strategies to run: every backend × every device × every process count, threads capped."""
        from bench.model.strategy import make_strategies

        return make_strategies(list(self.devices), list(self.processes), self.threads, list(self.backends),
                               list(self.scalings))

    def unavailable(self) -> dict[str, str]:
        """Devices of this request this machine cannot run with (one of) its backends: spec -> the
        reason (one line; the first backend that cannot run it)."""
        out: dict[str, str] = {}
        for (backend, device), reason in self.unavailable_pairs().items():
            out.setdefault(device, reason)
        return out

    def unavailable_pairs(self) -> dict[tuple[str, str], str]:
        """(backend, device) combinations of this request that cannot run here: -> the reason."""
        reasons = {(b, d): combination_reason(b, d) for b in self.backends for d in self.devices}
        return {k: r for k, r in reasons.items() if r}

    def sweep_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :class:`bench.sweep.sweep.Sweep` (and ``run_sweep``) after
        workload, size and strategies."""
        kwargs: dict[str, Any] = dict(
            label=self.label, options=dict(self.options), trial_timeout=self.trial_timeout,
            sample_interval=self.sample_interval, resume_from=self.resume,
            path=self.resume_path if self.resume is not None else None, command=self.command,
            engine=self.engine, engine_options=dict(self.engine_options), force=self.force,
            worker_max_rss=self.worker_max_rss,
            repeats=self.repeats,
        )
        if self.out_dir is not None:
            kwargs["out_dir"] = self.out_dir
        return kwargs

    def sweep(self, on_event: Callable[..., None] | None = None, workers: Any = None):
        """The :class:`bench.sweep.sweep.Sweep` of this request (it checks resume and memory).

        Args:
            on_event: ``on_event(kind, **info)`` for progress display.
            workers: A :class:`bench.engines.workercache.WorkerCache` the caller owns and closes (a
                suite's: its sweeps share workers); None: the sweep makes and ends its own.

        Raises:
            UsageError: no workload in the request, or what the sweep refuses.
        """
        from bench.sweep.sweep import Sweep

        if self.workload is None:
            raise UsageError("no workload given")
        return Sweep(self.workload, self.size, self.strategies(), on_event=on_event, workers=workers, **self.sweep_kwargs())


def _workload(name: str):
    """The registered workload ``name`` (UsageError listing the valid names otherwise)."""
    from bench.model.workload import get_workload

    return get_workload(name)
