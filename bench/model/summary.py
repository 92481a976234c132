"""A run's summary as a typed record: one declared list of fields, each with its kind.

The producers (:func:`bench.model.ratios.summarize`, :func:`bench.model.ratios.finalize_runs`, the
sweep's merge of a resumed run) declare the figures; every reader reads them here, as attributes
(``run.summary.wall_s``), and never recomputes one. The fields of :class:`RunSummary` are the one
list of summary keys: their kinds drive the checks a loaded file gets (:func:`check`).

A summary holds what its file held, no more: a key missing from an older file reads as None (it
was not measured then) and stays missing when the file is written again; a key this version does
not declare is kept in :attr:`RunSummary.extra`. :meth:`RunSummary.as_dict` gives back exactly
the JSON object that was read, in its order.

For code written against the summary as a dict, :class:`RunSummary` is also a read-only mapping
(``summary["wall_s"]``, ``get("noise")``, ``dict(summary)``, ``"flops" in summary``) over the keys
it holds.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Mapping

# the kinds of summary field, and what a loaded file is checked for (see check())
NUMBER = "number"  # a finite number or null
TEXT = "text"  # a string or null
NUMBERS = "numbers"  # an object whose values are numbers or null (a spread, counts by kind), or null
OBJECT = "object"  # free-form JSON object (read defensively by its readers); not checked
LIST = "list"  # free-form JSON list; not checked


def _field(kind: str) -> Any:
    return dataclasses.field(default=None, metadata={"kind": kind})


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class RunSummary(Mapping):
    """The figures of one run. Every field is None when the run's file does not hold it.

    Args:
        trials: Trials of the run (finished and failed).
        failed: Trials that failed.
        wall_s: Wall seconds from the first dispatch to the last completion (worker start-up excluded).
        trials_per_hour: Finished trials per hour of wall.
        speedup: Wall of the 1-process run of the same workload/size/device/backend over this wall.
        efficiency: ``speedup`` / processes.
        cpu_s: CPU seconds of the process tree (else the trials' own CPU seconds).
        cpu_wall_ratio: ``cpu_s`` / ``wall_s``: cores the process tree kept busy.
        per_process_cpu_wall_ratio: Mean over workers of the worker's CPU seconds / wall.
        throughput: Work per second (``throughput_unit``), over the run's wall.
        throughput_unit: E.g. ``samples/s``.
        trial_wall_s: Spread of the finished trials' wall seconds (:func:`bench.model.ratios.spread`).
        peak_tree_rss_bytes: Peak RSS of the process tree.
        peak_tree_uss_bytes: Peak USS of the process tree, of the samples that read it (the sampler
            reads USS sparsely: bench.measure.sampler's ``uss_budget``).
        peak_worker_rss_bytes: Peak RSS of one worker.
        startup_s: Spread of the workers' start-up seconds.
        gpu_util_p50: GPU utilisation p50 (%), when GPUs were sampled.
        gpu_util_p95: GPU utilisation p95 (%).
        gpu_mem_used_p50_bytes: GPU memory used, p50.
        gpu_mem_used_p95_bytes: GPU memory used, p95.
        energy: ``{"cpu": ..., "gpu": ...}`` (:func:`bench.model.energy.energy_summary`).
        noise: Noise between measurements of the same configuration (:func:`bench.model.ratios.trial_noise`).
        busy_cores_p50: Median over samples of the machine's busy cores.
        flops: Analytic FLOPs of the finished trials (only when every one declares them).
        gflops: ``flops`` / ``wall_s`` / 1e9.
        compute_offset_s: Seconds into the timeline where the workers were ready (start-up before it).
        failures: Failed trials by error kind.
        resumed_trials: Trials kept from an earlier, interrupted run (a resumed run).
        segments: A resumed run's parts: ``[{"t0", "wall_s"}, ...]``.
        sampler_cpu_s: CPU seconds the sampler itself used.
        sampler_wall_s: Seconds the sampler ran.
        sampler_cpu_share: ``sampler_cpu_s`` / ``sampler_wall_s`` (a fraction of one core).
        sampler_samples: Samples taken.
        sampler_interval_s: The sampling interval.
        baseline_wall_s: The wall of the 1-process run ``speedup`` is measured against.
        speedup_vs_cpu: Wall of the ``cpu`` run with the same trials, processes and backend over this wall.
        speedup_vs_tensorflow: Wall of the tensorflow run with the same workload, size, device,
            processes and threads over this wall (how much faster this run's backend was).
        validity: ``{"valid", "reasons", "notes", "other_cores", "rules"}`` (bench.model.validity).
        repeats: Over the repeats of this run's strategy: ``{"count", "finished", "method",
            "wall_s", "throughput", "speedup", "efficiency", "weak_efficiency"}``, each figure an
            interval (:func:`bench.model.stats.interval`; bench.model.ratios.repeat_summary).
        weak_efficiency: Weak scaling: throughput / (processes x the 1-process throughput).
        baseline_throughput: The 1-process throughput ``weak_efficiency`` is measured against.
        extra: Keys this version does not declare, as the file held them (kept on re-save).
    """

    trials: int | None = _field(NUMBER)
    failed: int | None = _field(NUMBER)
    wall_s: float | None = _field(NUMBER)
    trials_per_hour: float | None = _field(NUMBER)
    speedup: float | None = _field(NUMBER)
    efficiency: float | None = _field(NUMBER)
    cpu_s: float | None = _field(NUMBER)
    cpu_wall_ratio: float | None = _field(NUMBER)
    per_process_cpu_wall_ratio: float | None = _field(NUMBER)
    throughput: float | None = _field(NUMBER)
    throughput_unit: str | None = _field(TEXT)
    trial_wall_s: Mapping[str, float] | None = _field(NUMBERS)
    peak_tree_rss_bytes: int | None = _field(NUMBER)
    peak_tree_uss_bytes: int | None = _field(NUMBER)
    peak_worker_rss_bytes: int | None = _field(NUMBER)
    startup_s: Mapping[str, float] | None = _field(NUMBERS)
    gpu_util_p50: float | None = _field(NUMBER)
    gpu_util_p95: float | None = _field(NUMBER)
    gpu_mem_used_p50_bytes: float | None = _field(NUMBER)
    gpu_mem_used_p95_bytes: float | None = _field(NUMBER)
    energy: Mapping[str, Any] | None = _field(OBJECT)
    noise: Mapping[str, Any] | None = _field(OBJECT)
    busy_cores_p50: float | None = _field(NUMBER)
    flops: float | None = _field(NUMBER)
    gflops: float | None = _field(NUMBER)
    compute_offset_s: float | None = _field(NUMBER)
    failures: Mapping[str, int] | None = _field(NUMBERS)
    resumed_trials: int | None = _field(NUMBER)
    segments: list | None = _field(LIST)
    sampler_cpu_s: float | None = _field(NUMBER)
    sampler_wall_s: float | None = _field(NUMBER)
    sampler_cpu_share: float | None = _field(NUMBER)
    sampler_samples: int | None = _field(NUMBER)
    sampler_interval_s: float | None = _field(NUMBER)
    baseline_wall_s: float | None = _field(NUMBER)
    speedup_vs_cpu: float | None = _field(NUMBER)
    speedup_vs_tensorflow: float | None = _field(NUMBER)
    validity: Mapping[str, Any] | None = _field(OBJECT)
    repeats: Mapping[str, Any] | None = _field(OBJECT)
    weak_efficiency: float | None = _field(NUMBER)
    baseline_throughput: float | None = _field(NUMBER)
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    # the keys held, in the file's order (a declared field that is None and not listed here was
    # not recorded: it reads as None and is not written back)
    keys_held: tuple[str, ...] = dataclasses.field(default=(), compare=False)

    def __post_init__(self):
        extra = dict(self.extra)
        clash = [k for k in extra if k in KINDS]
        if clash:
            raise TypeError(f"RunSummary.extra holds declared field(s) {', '.join(clash)}")
        held = [k for k in dict.fromkeys(self.keys_held) if k in KINDS or k in extra]
        held += [k for k in KINDS if k not in held and getattr(self, k) is not None]
        held += [k for k in extra if k not in held]
        object.__setattr__(self, "extra", extra)
        object.__setattr__(self, "keys_held", tuple(held))

    # ------------------------------------------------------------ building and writing

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any] | None, checker: Any = None, where: str = "summary") -> "RunSummary":
        """A summary from its JSON object (a file's, or a producer's dict), keys and order as they are.

        Args:
            doc: The summary object (None: an empty summary).
            checker: The file's checker (:func:`bench.model.results.checker`): when given, the
                object is checked first (:func:`check`).
            where: Its place in the file, for messages.

        Raises:
            ResultFileError: with a checker, naming the file, the place and the first bad field.
        """
        if isinstance(doc, RunSummary) and checker is None:
            return doc
        doc = doc or {}
        if checker is not None:
            check(doc, checker, where)
        declared = {k: v for k, v in doc.items() if k in KINDS}
        extra = {k: v for k, v in doc.items() if k not in KINDS}
        return cls(**declared, extra=extra, keys_held=tuple(doc))

    def as_dict(self) -> dict[str, Any]:
        """The JSON object this summary holds (only the keys it holds, in their order; values as they are)."""
        return {k: self[k] for k in self.keys_held}

    def replace(self, **changes: Any) -> "RunSummary":
        """A copy with ``changes`` set (a key not held yet is added after the others; a value of
        None is kept as a recorded null).

        Args:
            **changes: Figures by key (declared or not).
        """
        doc = self.as_dict()
        doc.update(changes)
        return RunSummary.from_dict(doc)

    # ------------------------------------------------------------ the read-only mapping

    def __getitem__(self, key: str) -> Any:
        if key in KINDS:
            if key in self.keys_held:
                return getattr(self, key)
        elif key in self.extra:
            return self.extra[key]
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys_held)

    def __len__(self) -> int:
        return len(self.keys_held)

    def __contains__(self, key: object) -> bool:
        return key in self.keys_held

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self.as_dict() == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # like the dict it stands for

    def __repr__(self) -> str:
        return f"RunSummary({self.as_dict()!r})"


KINDS: dict[str, str] = {
    f.name: f.metadata["kind"] for f in dataclasses.fields(RunSummary) if "kind" in f.metadata
}
FIELDS: tuple[str, ...] = tuple(KINDS)  # every declared summary key, in the producers' order


def keys_of(kind: str) -> tuple[str, ...]:
    """The declared summary keys of one kind (``NUMBER``, ``TEXT``, ``NUMBERS``, ``OBJECT``, ``LIST``).

    Args:
        kind: The kind.
    """
    return tuple(k for k, v in KINDS.items() if v == kind)


def check(doc: Mapping[str, Any], c: Any, where: str) -> None:
    """Checks a summary object by the kinds of its declared fields: every ``NUMBER`` a finite
    number or null, every ``TEXT`` a string or null, every ``NUMBERS`` an object of numbers or
    null. Free-form fields (``OBJECT``, ``LIST``) and undeclared keys are not checked: their
    readers check what they read.

    Args:
        doc: A run's ``summary`` object.
        c: The file's checker (:func:`bench.model.results.checker`).
        where: Its place in the file, for messages.

    Raises:
        ResultFileError: naming the file, the place and the first bad field.
    """
    c.numbers(doc, keys_of(NUMBER), where)
    for key in keys_of(TEXT):
        c.get(doc, key, str, where, None)
    for key in keys_of(NUMBERS):
        obj = c.get(doc, key, dict, where, None)
        if obj:
            c.numbers(obj, list(obj), f"{where}.{key}")


__all__ = ["FIELDS", "KINDS", "LIST", "NUMBER", "NUMBERS", "OBJECT", "TEXT", "RunSummary", "check", "keys_of"]
