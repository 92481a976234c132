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
from bench.model.results import require_json

SIZES = ("quick", "full")
# options the command line sets for every workload (--data, --offline, --model); a workload
# reads the ones it understands
COMMON_OPTIONS = ("data", "offline", "model")


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
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    version: ClassVar[int] = 1
    throughput_unit: ClassVar[str] = "samples/s"
    quality_key: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True
    options: ClassVar[tuple[str, ...]] = ()

    def trials(self, size: str, options: Mapping[str, Any] | None = None) -> list[dict]:
        """Returns the trial configurations for a size: JSON-serialisable dicts with an ``id``."""
        raise NotImplementedError

    def run_trial(self, config: Mapping[str, Any], ctx: TrialContext) -> TrialOutput:
        """Builds, trains and evaluates one configuration in this process."""
        raise NotImplementedError

    def data_info(self, size: str, options: Mapping[str, Any] | None = None) -> dict:
        """Describes the data a run will use (``{"source": "synthetic"|"real", ...}``)."""
        return {"source": "synthetic"}

    def checked_trials(self, size: str, options: Mapping[str, Any] | None = None) -> list[dict]:
        """``trials`` with the size validated and every config checked for an id and JSON-ability."""
        if size not in SIZES:
            raise choices_error("size", size, SIZES)
        known = set(self.options) | set(COMMON_OPTIONS)
        for key in options or {}:
            if key not in known:
                raise choices_error(f"option for workload {self.name}:", key, known)
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


def get_workload(name: str) -> Workload:
    """Instantiates a registered workload by name.

    Raises:
        UsageError: ``unknown workload 'x' (choose from: ...)``.
    """
    available = _available()
    if name not in available:
        raise choices_error("workload", name, available)
    target = available[name]
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        target = getattr(importlib.import_module(module), attr)
    return target()


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
