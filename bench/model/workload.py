"""The Workload contract and the registry that maps names to workloads.

A workload is a list of trials (plain JSON configs) and a function that runs one trial in the
current process. Workloads know nothing of pools, samplers or timing: the runner times them.
Keras (and its backend's framework) is imported inside ``run_trial``, never at module import
time; anything backend-specific a workload needs comes from its :class:`TrialContext`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import importlib.util
from typing import Any, Callable, ClassVar, Iterator, Mapping

from bench.errors import UsageError, choices_error
from bench.model import workload_spec
from bench.model.results import require_json

SIZES = ("quick", "full")
# options the command line sets for every workload (--data, --offline, --model, --model-file); a
# workload reads the ones it understands
COMMON_OPTIONS = ("data", "offline", "model", "model_file")


@dataclasses.dataclass(frozen=True)
class TrialOutput:
    """What one trial reports back; the runner adds the timing.

    Args:
        quality: Quality metrics, e.g. ``{"rmse": 3.1}`` or ``{"accuracy": 0.87}``.
        samples: Work done, in the workload's throughput unit (e.g. training samples processed).
        extra: Any other JSON-serialisable figures (epoch times, data source, ...).
        warmup_s: Seconds of the trial that were warm-up (first epoch / first call, tracing),
            reported apart from the steady state. 0 when the workload does not separate them.
    """

    quality: Mapping[str, float]
    samples: float
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    warmup_s: float = 0.0


@dataclasses.dataclass
class TrialContext:
    """What the worker gives a trial besides its config.

    Args:
        size: ``quick`` or ``full``.
        seed: Seed derived from the trial id: the same trial gets the same seed everywhere.
        options: Workload options from the command line (``data``, ``offline``, ``model``...).
        device: The device strategy name the worker runs under (``cpu``, ``gpu``, ``mirrored``).
        scope: A factory for the distribution scope models must be built in (nullcontext on one
            device; a ``tf.distribute`` strategy's scope for ``mirrored``, the Keras distribution's
            for ``data_parallel``).
        replicas: Number of model replicas (1 except under a multi-device strategy).
        backend: The Keras backend the worker runs (``tensorflow``, ``jax``, ``torch``).
        compiler: What ``compile_predict`` compiles with, for labels (``tf.function``, ``jax.jit``,
            ``torch.compile``).
        compile_predict: ``compile_predict(model, x) -> fn(batch) -> numpy predictions``: the backend's
            compiled forward pass (:meth:`bench.backends.base.Backend.compile_predict`; it raises
            ``bench.backends.base.Unavailable`` where the compiler does not work). None outside a worker
            unless the caller gives one.
    """

    size: str = "quick"
    seed: int = 0
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    device: str = "cpu"
    scope: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    replicas: int = 1
    backend: str = "tensorflow"
    compiler: str = "tf.function"
    compile_predict: Callable[[Any, Any], Callable] | None = None


class Workload:
    """Base class: subclass, set ``name``, implement ``trials`` and ``run_trial``.

    Class attributes:
        name: Registry name, e.g. ``"lorenz"``.
        description: One line for ``bench list``.
        version: Bump when a change makes old results incomparable (resume checks it).
        throughput_unit: Unit of ``TrialOutput.samples`` per second, e.g. ``"samples/s"``.
        quality_key: The main quality metric name; ``higher_is_better`` says its direction.
        options: Names of the ``--opt key=value`` options the workload reads.
        suite: Whether ``bench suite`` (``--workloads all``) and the benchmark suite run it: False
            for a workload that needs the user's input (the ``model`` workload's ``--model-file``).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    version: ClassVar[int] = 1
    throughput_unit: ClassVar[str] = "samples/s"
    quality_key: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True
    options: ClassVar[tuple[str, ...]] = ()
    suite: ClassVar[bool] = True

    def trials(self, size: str, options: Mapping[str, Any] | None = None) -> list[dict]:
        """Returns the trial configurations for a size: JSON-serialisable dicts with an ``id``."""
        raise NotImplementedError

    def run_trial(self, config: Mapping[str, Any], ctx: TrialContext) -> TrialOutput:
        """Builds, trains and evaluates one configuration in this process."""
        raise NotImplementedError

    def data_info(self, size: str, options: Mapping[str, Any] | None = None) -> dict:
        """Describes the data a run will use (``{"source": "synthetic"|"real", ...}``)."""
        return {"source": "synthetic"}

    def input_files(self, options: Mapping[str, Any] | None = None) -> dict[str, str]:
        """Files whose content decides what the trials measure, by role (``{"model_file": path}``).

        The sweep records each one's SHA-256 (:func:`source_files`) and ``--resume`` refuses a
        file that changed since. Default: none.

        Args:
            options: Workload options.
        """
        return {}

    def checked_trials(self, size: str, options: Mapping[str, Any] | None = None) -> list[dict]:
        """``trials`` with the size validated and every config checked for an id and JSON-ability."""
        if size not in SIZES:
            raise choices_error("size", size, SIZES)
        known = set(self.options) | set(COMMON_OPTIONS)
        for key in options or {}:
            if key not in known:
                raise choices_error(f"option for workload {self.name}:", key, known)
        spec = getattr(self, "spec", None)
        if spec is None:
            return self._checked(size, options)
        try:  # a user's workload (a spec): whatever its trials() raises is one line, exit 2
            return self._checked(size, options)
        except UsageError:
            raise
        except Exception as exc:  # noqa: BLE001 - user code
            raise UsageError(f"workload {spec}: trials({size!r}) raised {type(exc).__name__}: "
                             f"{' '.join(str(exc).split())}") from None

    def _checked(self, size: str, options: Mapping[str, Any] | None) -> list[dict]:
        configs = self.trials(size, options or {})
        seen = set()
        for config in configs:
            if "id" not in config:
                raise TypeError(f"{self.name}: trial config without an 'id': {config!r}")
            if config["id"] in seen:
                raise TypeError(f"{self.name}: duplicate trial id {config['id']!r}")
            seen.add(config["id"])
            require_json(config)
        return configs


def trial_seed(workload: str, trial_id: str, base: int = 0) -> int:
    """A seed that depends only on the workload, the trial id and a base seed."""
    digest = hashlib.sha256(f"{workload}/{trial_id}/{base}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % (2**31 - 1)


# name -> "module:Class". Built-ins are imported lazily, so `import bench` stays light.
_REGISTRY: dict[str, str | type[Workload]] = {
    "lorenz": "workloads.lorenz:LorenzWorkload",
    "imdb_cnn_lstm": "workloads.imdb_cnn_lstm:ImdbCnnLstmWorkload",
    "pose_classifier": "workloads.pose_classifier:PoseClassifierWorkload",
    "lstm_sequence": "workloads.lstm_sequence:LstmSequenceWorkload",
    "predict_modes": "workloads.predict_modes:PredictModesWorkload",
    "model": "workloads.model_file:ModelFileWorkload",
}


def register(cls: type[Workload]) -> type[Workload]:
    """Class decorator adding a workload to the registry under ``cls.name``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} has no name")
    _REGISTRY[cls.name] = cls
    return cls


def _available() -> dict[str, str | type[Workload]]:
    """The registry without built-ins whose module is not present (yet)."""
    out = {}
    for name, target in _REGISTRY.items():
        if isinstance(target, str):
            module = target.split(":")[0]
            if importlib.util.find_spec(module) is None:
                continue
        out[name] = target
    return out


def workload_names() -> list[str]:
    """Names of every registered workload."""
    return sorted(_available())


def workload_class(ref: str | type[Workload]) -> type[Workload]:
    """The Workload class of a registry target, a spec or a class: what a worker imports by its
    ``"module:Class"`` or ``"/path/file.py:Class"`` (bench.model.workload_spec).

    Args:
        ref: ``"module:Class"``, ``"path/file.py:Class"`` or a Workload subclass.

    Raises:
        UsageError: the spec cannot be imported or does not name a Workload subclass.
    """
    if isinstance(ref, type):
        return ref
    return workload_spec.load_class(ref, Workload)[0]


def _from_spec(text: str) -> Workload:
    cls, spec = workload_spec.load_class(text, Workload)
    try:
        workload = cls()
    except Exception as exc:  # noqa: BLE001 - user code
        raise UsageError(f"workload {spec.text}: {cls.__name__}() raised {type(exc).__name__}: "
                         f"{' '.join(str(exc).split())}") from None
    if not workload.name:
        workload.name = cls.__name__
    workload.spec = spec.text
    workload.spec_file = workload_spec.spec_file(spec)
    return workload


def suite_names() -> list[str]:
    """Registered workloads that run with no input from the user (``Workload.suite``): what
    ``bench suite --workloads all`` and the benchmark suite run."""
    return [name for name in workload_names() if get_workload(name).suite]


def get_workload(name: str | type[Workload]) -> Workload:
    """Instantiates a workload: a registered name, a spec (``file.py:Class``, ``package.module:Class``)
    or a Workload subclass.

    A workload made from a spec or a class has ``spec`` (what every worker imports it by) and
    ``spec_file`` (its source file, hashed into the result); its ``name`` is the class's ``name``,
    else the class name.

    Raises:
        UsageError: ``unknown workload 'x' (choose from: ...)``, or what is wrong with the spec.
    """
    if isinstance(name, type):
        if not issubclass(name, Workload) or name is Workload:
            raise UsageError(f"{name.__qualname__} is not a Workload subclass")
        return _from_spec(workload_spec.spec_of(name))
    available = _available()
    if name not in available and workload_spec.is_spec(name):
        return _from_spec(name)
    if name not in available:
        if workload_spec.looks_like_spec(name):
            workload_spec.parse_spec(name)  # raises: a spec needs its ":Class"
        names = ", ".join(sorted(available))
        raise UsageError(f"unknown workload {str(name)!r} (choose from: {names}; or your own class as "
                         "FILE.py:Class or package.module:Class)")
    target = available[name]
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        target = getattr(importlib.import_module(module), attr)
    return target()


def source_files(workload: Workload, options: Mapping[str, Any] | None = None) -> dict[str, dict[str, str]]:
    """The files a sweep of ``workload`` depends on, by role, with their SHA-256: a spec's source
    file (``workload``) and the workload's :meth:`Workload.input_files`. Results record them;
    resume refuses a file that changed.

    Args:
        workload: The workload instance.
        options: Its options.
    """
    files = {}
    if getattr(workload, "spec_file", None):
        files["workload"] = workload.spec_file
    files.update(workload.input_files(options or {}))
    out = {}
    for role, path in files.items():
        try:
            out[role] = {"path": str(path), "sha256": workload_spec.file_sha256(path)}
        except OSError as exc:
            raise UsageError(f"cannot read {role} file {path!r} ({exc.strerror or exc})") from None
    return out


def iter_workloads() -> Iterator[Workload]:
    """Every registered workload, instantiated."""
    for name in workload_names():
        yield get_workload(name)


def parse_options(pairs: list[str] | None) -> dict[str, str]:
    """Parses ``key=value`` workload options from the command line."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"bad workload option {pair!r} (expected key=value)")
        out[key] = value
    return out
