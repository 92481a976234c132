"""Report inputs: xpubench result files and pytest-benchmark JSON, normalised to one shape.

xpubench result files are read only through :func:`bench.model.results.load`. pytest-benchmark JSON
(``pytest --benchmark-json``) is read here, following the contract in docs/architecture.md:
``machine_info["xpubench"]`` holds the machine fingerprint and each benchmark's
``extra_info["xpubench"]`` holds one run's figures. A pytest-benchmark file without those keys is
still valid: its timing statistics become :class:`Timing` rows.

Every problem raises :class:`bench.errors.ResultFileError` naming the file and what is wrong.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from bench.model import results
from bench.errors import ResultFileError, UsageError
from bench.model.ratios import mean_quality, number
from bench.model.results import SCHEMA, TrialRecord
from bench.model.strategy import DEFAULT_BACKEND, backend_label, backend_of, scaling_of
from bench.model.summary import RunSummary
from bench.text import printable
from reports import fmt
from reports.repeats import collapse

XPUBENCH = "xpubench"
# the schema of pytest-benchmark's extra_info["xpubench"] (bench.pytest.extra_info.EXTRA_INFO_SCHEMA): its own
# number, not the result file's (bench.model.results.SCHEMA); the summary keys added since are optional
EXTRA_INFO_SCHEMA = 1
PYTEST_BENCHMARK = "pytest-benchmark"


@dataclasses.dataclass(frozen=True)
class Run:
    """One strategy applied to one workload on one machine, from either input format.

    Args:
        file: The input file it came from.
        origin: ``xpubench`` or ``pytest-benchmark``.
        label: The machine label.
        workload: Workload name.
        size: ``quick`` or ``full``.
        device: Device strategy name.
        processes: Worker processes (or Ray tasks at once).
        threads: Threads per process, when recorded.
        engine: ``local`` or ``ray``.
        backend: The Keras backend (``tensorflow`` for a run recorded without one).
        status: ``complete``, ``skipped``, ``running``, ``interrupted`` or ``failed``.
        skipped: Why the strategy was skipped, if it was.
        summary: The run's summary (a :class:`bench.model.summary.RunSummary`; a dict is converted).
        quality: Mean of each quality metric over the trials that finished.
        trials: Trial records (empty for pytest-benchmark inputs).
        samples: The sampler timeline (empty for pytest-benchmark inputs).
        data: What data the workload used (``{"source": "real"|"synthetic"|"generated", ...}``).
        created: When the result was written.
        name: The pytest-benchmark test name, if any.
        order: Position among all runs loaded (stable sort key).
        repeat: Which repeat of its strategy the run is (0 without repeats).
        scaling: ``strong`` or ``weak`` (every worker ran every trial).
        repeats: How many repeats of the strategy this row stands for (:func:`reports.repeats.collapse`:
            its wall, throughput, speedup and efficiency are then the recorded medians).
        invalid: Every repeat's validity reasons (empty: valid, or not recorded).
    """

    file: str
    origin: str
    label: str
    workload: str
    size: str
    device: str
    processes: int
    threads: int | None = None
    engine: str = "local"
    backend: str = DEFAULT_BACKEND
    status: str = "complete"
    skipped: str | None = None
    summary: RunSummary = dataclasses.field(default_factory=RunSummary)
    quality: Mapping[str, float] = dataclasses.field(default_factory=dict)
    trials: tuple[TrialRecord, ...] = ()
    samples: tuple[Mapping[str, Any], ...] = ()
    data: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    created: str = ""
    name: str = ""
    order: int = 0
    repeat: int = 0
    scaling: str = "strong"
    repeats: int = 1
    invalid: tuple[str, ...] = ()

    def __post_init__(self):
        if not isinstance(self.summary, RunSummary):
            object.__setattr__(self, "summary", RunSummary.from_dict(self.summary))

    @property
    def strategy(self) -> str:
        """A short strategy name, e.g. ``cpu×2p×1t``, ``cpu×4p ray`` or (not tensorflow) ``jax:cpu×2p×1t``."""
        return backend_label(self.backend, self.plain_strategy)

    @property
    def plain_strategy(self) -> str:
        """The strategy name without its backend (``cpu×2p×1t`` whatever the backend)."""
        text = f"{self.device}×{self.processes}p"
        if self.threads:
            text += f"×{self.threads}t"
        text += " weak" if self.scaling == "weak" else ""
        return text + (f" {self.engine}" if self.engine != "local" else "")

    @property
    def ok_trials(self) -> list[TrialRecord]:
        """Trials that finished without an error."""
        return [t for t in self.trials if t.error is None]


@dataclasses.dataclass(frozen=True)
class Timing:
    """A plain pytest-benchmark entry: its timing statistics, in seconds per round."""

    file: str
    label: str
    name: str
    group: str
    fullname: str
    mean: float
    median: float | None = None
    min: float | None = None
    max: float | None = None
    stddev: float | None = None
    rounds: int | None = None
    has_xpubench: bool = False


@dataclasses.dataclass(frozen=True)
class Source:
    """One readable input file.

    Args:
        path: The file as given.
        kind: ``xpubench`` or ``pytest-benchmark``.
        label: The machine label (from the fingerprint; else pytest-benchmark's node; else the file stem).
        machine: The machine fingerprint (``bench.measure.machine.fingerprint`` keys where known).
        tool_version: The xpubench (or pytest-benchmark) version that wrote it.
        created: When it was written.
        complete: False for a sweep that was interrupted or is still running.
        runs: Its runs.
        timings: Its plain pytest-benchmark timings (every benchmark in the file).
    """

    path: str
    kind: str
    label: str
    machine: Mapping[str, Any]
    tool_version: str
    created: str = ""
    complete: bool = True
    runs: tuple[Run, ...] = ()
    timings: tuple[Timing, ...] = ()


@dataclasses.dataclass(frozen=True)
class Inputs:
    """Everything a report reads: the readable sources and one line per file skipped."""

    sources: tuple[Source, ...]
    skipped: tuple[str, ...] = ()

    @property
    def runs(self) -> list[Run]:
        """Every run of every source, in input order."""
        return [r for s in self.sources for r in s.runs]

    @property
    def timings(self) -> list[Timing]:
        """Every pytest-benchmark entry of every source."""
        return [t for s in self.sources for t in s.timings]

    def machine(self, label: str) -> Mapping[str, Any]:
        """The fingerprint of the first source with this label (empty if none)."""
        return next((s.machine for s in self.sources if s.label == label), {})

    @property
    def labels(self) -> list[str]:
        """Machine labels in the order their files were given."""
        return list(dict.fromkeys(s.label for s in self.sources))


# ---------------------------------------------------------------- helpers


def shown_name(value: Any) -> str:
    """A name from a file (machine label, workload, device...) as a report shows and groups by it.

    Whole up to ``fmt.SHOWN_CHARS`` characters; a longer one is cut and ends in ``~`` and 8 hex
    digits of its SHA-256, so two long names stay apart. The file keeps the whole value; the
    report never carries a 200 MB label into every row, chart and sentence.

    Args:
        value: The value (``str(value)`` is used).
    """
    text = value if isinstance(value, str) else str(value)
    if len(text) <= fmt.SHOWN_CHARS:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return fmt.clip(text, fmt.SHOWN_CHARS - 9) + "~" + digest


def _fail(source: str, where: str, what: str) -> ResultFileError:
    return ResultFileError(f"{printable(source)}: {where}: {what}")


# ---------------------------------------------------------------- xpubench results


def from_result(result: results.Result, path: str, order: int = 0) -> Source:
    """Normalises a loaded xpubench Result.

    Args:
        result: A Result from :func:`bench.model.results.load`.
        path: The file it was read from.
        order: Position of its first run among all runs loaded.
    """
    machine = dict(result.machine)
    label = shown_name(machine.get("label") or Path(path).stem)
    runs = []
    for i, r in enumerate(result.runs):
        s = r.strategy
        threads = s.get("threads_per_process")
        runs.append(
            Run(
                file=path,
                origin=XPUBENCH,
                label=label,
                workload=shown_name(r.workload),
                size=shown_name(r.size),
                device=shown_name(s.get("device")),
                processes=int(s["processes"]),
                threads=threads if isinstance(threads, int) and not isinstance(threads, bool) else None,
                engine=shown_name(s.get("engine") or "local"),
                backend=shown_name(r.backend),
                status=shown_name(r.status),
                skipped=r.skipped,
                summary=r.summary,
                quality=mean_quality(r.trials),
                trials=tuple(r.trials),
                samples=tuple(r.samples),
                data=dict(r.data),
                created=r.started_at or result.created,
                order=order + i,
                repeat=r.repeat,
                scaling=scaling_of(s),
            )
        )
    groups = {id(run): rec.group for run, rec in zip(runs, result.runs)}
    runs = collapse(runs, key=lambda run: groups[id(run)], replace=dataclasses.replace, repeat_of=lambda run: run.repeat)
    return Source(
        path=path,
        kind=XPUBENCH,
        label=label,
        machine=machine,
        tool_version=str(result.tool.get("version", "?")),
        created=result.created,
        complete=result.complete,
        runs=tuple(runs),
    )


# ---------------------------------------------------------------- pytest-benchmark JSON


def _machine_from_info(info: Mapping[str, Any]) -> dict:
    """A fingerprint-shaped dict from pytest-benchmark's own machine_info (no xpubench keys)."""
    cpu = info.get("cpu") if isinstance(info.get("cpu"), dict) else {}
    return {
        "label": info.get("node") or "",
        "hostname": info.get("node"),
        "cpu": cpu.get("brand_raw") or info.get("processor"),
        "logical_cores": cpu.get("count"),
        "os": " ".join(str(x) for x in (info.get("system"), info.get("release")) if x) or None,
        "python": info.get("python_version"),
        "python_implementation": info.get("python_implementation"),
    }


def _pb_run(xb: Any, bench: Mapping, path: str, where: str, label: str, created: str, order: int) -> Run:
    if not isinstance(xb, dict):
        raise _fail(path, where, "should be an object")
    schema = xb.get("schema", 1)
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
        raise _fail(path, where, f"field 'schema' should be a positive integer, got {schema!r:.40}")
    if schema > EXTRA_INFO_SCHEMA:
        raise _fail(path, where,
                    f"schema {schema} is newer than this xpubench reads ({EXTRA_INFO_SCHEMA}): upgrade xpubench")
    for key in ("workload", "strategy"):
        if key not in xb:
            raise _fail(path, where, f"missing field '{key}'")
    if not isinstance(xb["workload"], str):
        raise _fail(path, where, "field 'workload' should be a string")
    strategy = xb["strategy"]
    if not isinstance(strategy, dict):
        raise _fail(path, where, "field 'strategy' should be an object")
    processes = strategy.get("processes")
    if not isinstance(processes, int) or isinstance(processes, bool) or processes < 1:
        raise _fail(path, where + ".strategy", f"field 'processes' should be a positive number, got {processes!r:.40}")
    for key, typ in (("summary", dict), ("quality", dict), ("data", dict)):
        if key in xb and not isinstance(xb[key], typ):
            raise _fail(path, where, f"field '{key}' should be an object")
    c = results.checker(path)
    summary = RunSummary.from_dict(xb.get("summary") or {}, c, where + ".summary")
    for key in ("size", "status", "skipped"):
        c.get(xb, key, str, where, None)
    for key in ("device", "engine", "backend"):
        c.get(strategy, key, str, where + ".strategy", None)
    if strategy.get("threads_per_process") is not None:
        c.count(strategy, "threads_per_process", where + ".strategy", minimum=1)
    stats = bench.get("stats") or {}
    if number(summary.wall_s) is None and number(stats.get("mean")) is not None:
        summary = summary.replace(wall_s=float(stats["mean"]))  # one round = one sweep of the strategy
    quality = {k: float(v) for k, v in (xb.get("quality") or {}).items() if number(v) is not None}
    threads = strategy.get("threads_per_process")
    return Run(
        file=path,
        origin=PYTEST_BENCHMARK,
        label=label,
        workload=shown_name(xb["workload"]),
        size=shown_name(xb.get("size") or "?"),
        device=shown_name(strategy.get("device") or "cpu"),
        processes=processes,
        threads=threads if isinstance(threads, int) and not isinstance(threads, bool) else None,
        engine=shown_name(strategy.get("engine") or "local"),
        backend=shown_name(backend_of(strategy)),
        status=shown_name(xb.get("status") or "complete"),
        skipped=xb.get("skipped") if isinstance(xb.get("skipped"), str) else None,
        summary=summary,
        quality=quality,
        data=dict(xb.get("data") or {}),
        created=created,
        name=shown_name(bench.get("name", "")),
        order=order,
    )


def from_pytest_benchmark(doc: Mapping[str, Any], path: str, order: int = 0) -> Source:
    """Validates and normalises a pytest-benchmark JSON document.

    Args:
        doc: The parsed JSON (a dict with ``benchmarks``).
        path: The file it was read from (named in every error).
        order: Position of its first run among all runs loaded.

    Raises:
        ResultFileError: naming the file and the first field that is missing or of the wrong type.
    """
    if not isinstance(doc, dict):
        raise _fail(path, "top level", "expected a JSON object")
    results.check_tree(doc, printable(path))
    c = results.checker(path)
    info = doc.get("machine_info")
    if not isinstance(info, dict):
        raise _fail(path, "top level", "missing field 'machine_info'" if info is None else "field 'machine_info' should be an object")
    benchmarks = doc.get("benchmarks")
    if not isinstance(benchmarks, list):
        raise _fail(path, "top level", "field 'benchmarks' should be a list")
    xinfo = info.get(XPUBENCH)
    if xinfo is not None and not isinstance(xinfo, dict):
        raise _fail(path, "machine_info.xpubench", "should be an object")
    if xinfo:
        results.check_machine(xinfo, c, "machine_info.xpubench")
    machine = dict(xinfo) if xinfo else _machine_from_info(info)
    label = shown_name(machine.get("label") or info.get("node") or Path(path).stem)
    machine["label"] = label
    created = str(doc.get("datetime") or "")
    runs, timings = [], []
    for i, b in enumerate(benchmarks):
        where = f"benchmarks[{i}]"
        if not isinstance(b, dict):
            raise _fail(path, where, "should be an object")
        name = b.get("name")
        if not isinstance(name, str):
            raise _fail(path, where, "missing field 'name'" if name is None else "field 'name' should be a string")
        stats = b.get("stats")
        if not isinstance(stats, dict):
            raise _fail(path, where, "missing field 'stats'" if stats is None else "field 'stats' should be an object")
        if number(stats.get("mean")) is None:
            raise _fail(path, where + ".stats", "missing or non-numeric field 'mean'")
        c.numbers(stats, ("median", "min", "max", "stddev", "rounds"), where + ".stats")
        extra = b.get("extra_info", {})
        if extra is None:
            extra = {}
        if not isinstance(extra, dict):
            raise _fail(path, where, "field 'extra_info' should be an object")
        has_x = XPUBENCH in extra
        if has_x:
            runs.append(_pb_run(extra[XPUBENCH], b, path, where + ".extra_info.xpubench", label, created, order + len(runs)))
        rounds = stats.get("rounds")
        timings.append(
            Timing(
                file=path,
                label=label,
                name=shown_name(name),
                group=shown_name(b.get("group") or ""),
                fullname=shown_name(b.get("fullname") or name),
                mean=float(stats["mean"]),
                median=number(stats.get("median")),
                min=number(stats.get("min")),
                max=number(stats.get("max")),
                stddev=number(stats.get("stddev")),
                rounds=rounds if isinstance(rounds, int) and not isinstance(rounds, bool) else None,
                has_xpubench=has_x,
            )
        )
    version = machine.get("xpubench") or f"pytest-benchmark {doc.get('version', '?')}"
    return Source(
        path=path,
        kind=PYTEST_BENCHMARK,
        label=label,
        machine=machine,
        tool_version=str(version),
        created=created,
        complete=True,
        runs=tuple(runs),
        timings=tuple(timings),
    )


# ---------------------------------------------------------------- front


def load_file(path: str | os.PathLike, order: int = 0) -> Source:
    """Reads one input file of either format.

    Args:
        path: An xpubench result file or a pytest-benchmark JSON file.
        order: Position of its first run among all runs loaded.

    Raises:
        ResultFileError: one line naming the file and what is wrong (missing, not JSON, truncated,
            unknown format, newer schema, wrong field types).
    """
    # read once (a regular file within the size limit: never a FIFO or /dev/zero), parse once
    doc = results.parse(results.read(path), str(path))
    if isinstance(doc, dict) and "benchmarks" in doc and "schema" not in doc and "runs" not in doc:
        return from_pytest_benchmark(doc, str(path), order)
    if isinstance(doc, dict) and "schema" not in doc and "runs" not in doc:
        raise ResultFileError(
            f"{printable(path)}: unknown format: neither an xpubench result file (no 'schema'/'runs') "
            "nor pytest-benchmark JSON (no 'benchmarks')"
        )
    return from_result(results.from_dict(doc, str(path)), str(path), order)


def load_inputs(files: Sequence[str | os.PathLike], keep_going: bool = False, warn=None) -> Inputs:
    """Reads every input file.

    Args:
        files: Paths as given on the command line.
        keep_going: Skip unreadable files (one warning line each) instead of raising.
        warn: Called with each warning line (default: printed to stderr as ``warning: ...``).

    Raises:
        ResultFileError: the first unreadable file, unless ``keep_going``.
        UsageError: no files, or none readable.
    """
    if warn is None:
        warn = lambda line: print(f"warning: {line}", file=sys.stderr)  # noqa: E731
    if not files:
        raise UsageError("no result files given")
    sources, skipped = [], []
    order = 0
    for f in files:
        try:
            src = load_file(f, order)
        except ResultFileError as exc:
            if not keep_going:
                raise
            skipped.append(f"skipped {exc}")
            warn(skipped[-1])
            continue
        order += len(src.runs)
        sources.append(src)
    if not sources:
        raise UsageError(f"no readable result files ({len(skipped)} skipped)")
    return Inputs(sources=tuple(sources), skipped=tuple(skipped))
