"""Result records (schema v1) and their one serialisation path.

Records are frozen dataclasses. A result file is JSON with an integer ``schema``; loading
validates every field it relies on and refuses files of a newer schema. Loading never
executes code. Writes are atomic: temporary file, fsync, rename.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any, Mapping

from bench.errors import ResultFileError, UsageError
from bench.text import printable
from bench.model.safefile import atomic_write_bytes, atomic_write_text, read_regular
from bench.model.strategy import backend_of, scaling_of
from bench.model.summary import RunSummary

# 2: runs carry ``repeat`` (``--repeat K``: one RunRecord per strategy and repeat) and summaries
# ``repeats``/``validity``; strategies may say ``scaling: weak``. Schema-1 files load unchanged
# (every run is repeat 0, strong scaling); files newer than SCHEMA are refused.
SCHEMA = 2
TOOL = "xpubench"


@dataclasses.dataclass(frozen=True)
class TrialError:
    """Why a trial did not finish.

    Args:
        kind: ``exception``, ``crash`` (killed by a signal / exited), ``timeout``, ``oom`` or ``interrupted``.
        message: One line.
        exit_code: The worker's exit code, if it died.
        signal: The signal that killed it, if any.
        stderr_tail: Last lines the worker wrote to stderr.
    """

    kind: str
    message: str
    exit_code: int | None = None
    signal: int | None = None
    stderr_tail: str = ""


@dataclasses.dataclass(frozen=True)
class TrialRecord:
    """One trial: its config, times measured by the runner, and what the workload reported."""

    id: str
    config: Mapping[str, Any]
    worker: int = 0
    start_s: float = 0.0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    warmup_s: float = 0.0
    samples: float = 0.0
    quality: Mapping[str, float] = dataclasses.field(default_factory=dict)
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    peak_rss_bytes: int = 0
    error: TrialError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """One strategy applied to one workload: trials, sampler timeline, worker facts, summary.

    ``status`` is ``complete``, ``running`` (being written), ``interrupted``, ``failed`` (no worker
    could start) or ``skipped`` (with the reason in ``skipped``). ``options`` are the workload
    options the trials ran with (resume checks them). ``summary`` is a
    :class:`bench.model.summary.RunSummary`; a plain dict given here is converted to one.
    ``strategy`` is the mapping as recorded: a file written before backends were an axis has no
    ``backend`` in it, and :attr:`backend` reads that as tensorflow. ``repeat`` is which of the
    ``--repeat K`` measurements of the strategy this run is (0 in files written before repeats);
    the repeats of one strategy share :attr:`group` and each is a whole run (trials, timeline).
    """

    workload: str
    size: str
    strategy: Mapping[str, Any]
    trials: tuple[TrialRecord, ...] = ()
    samples: tuple[Mapping[str, Any], ...] = ()
    workers: tuple[Mapping[str, Any], ...] = ()
    summary: RunSummary = dataclasses.field(default_factory=RunSummary)
    workload_version: int = 1
    data: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    env: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    status: str = "complete"
    skipped: str | None = None
    notes: tuple[str, ...] = ()
    started_at: str = ""
    options: Mapping[str, Any] | None = None
    repeat: int = 0

    def __post_init__(self):
        if not isinstance(self.summary, RunSummary):  # a producer's dict (bench.model.ratios.summarize)
            object.__setattr__(self, "summary", RunSummary.from_dict(self.summary))

    @property
    def backend(self) -> str:
        """The run's Keras backend (``tensorflow`` for a run recorded without one)."""
        return backend_of(self.strategy)

    @property
    def key(self) -> tuple:
        """What identifies the run's strategy: workload, size, device, processes, threads, backend
        (resume matches runs by it; an old run without a backend keys as tensorflow)."""
        s = self.strategy
        return (self.workload, self.size, s.get("device"), s.get("processes"), s.get("threads_per_process"),
                self.backend, scaling_of(s), self.repeat)

    @property
    def group(self) -> tuple:
        """:attr:`key` without the repeat: what the repeats of one strategy share."""
        return self.key[:-1]


@dataclasses.dataclass(frozen=True)
class Result:
    """A result file: tool, machine fingerprint, runs."""

    machine: Mapping[str, Any]
    runs: tuple[RunRecord, ...] = ()
    tool: Mapping[str, str] = dataclasses.field(default_factory=lambda: {"name": TOOL, "version": _version()})
    created: str = ""
    complete: bool = True
    command: tuple[str, ...] = ()
    decisions: tuple[Mapping[str, Any], ...] = ()
    schema: int = SCHEMA

    def replace(self, **changes) -> "Result":
        return dataclasses.replace(self, **changes)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("xpubench")
    except ImportError:  # PackageNotFoundError: not installed (running from a checkout)
        return "0.1.0+checkout"


# ---------------------------------------------------------------- serialisation


def plain(value: Any) -> Any:
    """A copy that strict JSON accepts, of any record or value: dataclasses to objects, tuples to
    lists, NaN/inf to None, numpy scalars to numbers and numpy arrays to lists.

    This and the functions below are the one path between records and JSON: result files, the
    worker protocol's lines and pytest-benchmark's ``extra_info`` all go through it.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:  # numpy scalars
        return plain(value.item())
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy arrays
        return plain(value.tolist())
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)  # an object JSON has no form for (one a workload put in ``extra``): its text


def as_json(value: Any) -> Any:
    """A JSON-safe copy of any record (dataclasses to objects, tuples to lists, NaN to null)."""
    return plain(value)


def message_line(message: Any) -> str:
    """One line of the worker protocol (a JSON object, no newline inside), of any value :func:`plain` takes."""
    return json.dumps(plain(message), allow_nan=False)


def require_json(value: Any) -> None:
    """Raises TypeError (or ValueError for NaN) unless ``value`` is JSON as it is (a trial config must be)."""
    json.dumps(value, allow_nan=False)


def canonical(value: Any) -> str:
    """One text per value, whatever its key order: to compare or group configs (``{"a": 1, "b": 2}``
    and ``{"b": 2, "a": 1}`` give the same text; ``1`` and ``1.0`` do not)."""
    return json.dumps(value, sort_keys=True, default=str)


def read_message(line: str | bytes) -> dict:
    """A worker-protocol line back to a dict (strict JSON: no NaN, no Infinity).

    Raises:
        ValueError: the line is not one JSON object (the caller records a ``protocol`` error).
    """
    msg = json.loads(line, parse_constant=_no_constants)
    if not isinstance(msg, dict):
        raise ValueError(f"a protocol line is a JSON object, not {type(msg).__name__}")
    return msg


def to_dict(result: Result) -> dict:
    """The JSON document of a result (the only serialisation path)."""
    doc = plain(result)
    for run in doc.get("runs") or ():  # repeat 0 (every run of a sweep without repeats) is not written:
        if run.get("repeat") == 0:     # a file of one measurement per strategy reads as it always did
            del run["repeat"]
    # key order: schema first, so `head` shows what a file is
    return {"schema": doc.pop("schema"), **doc}


def dumps(result: Result) -> str:
    return json.dumps(to_dict(result), indent=1, allow_nan=False)


# the one atomic writer (atomic_write_bytes / atomic_write_text, imported above and importable
# from here) lives in bench.model.safefile: regular files only, an OSError becomes FileWriteError.
__all__ = ["atomic_write_bytes", "atomic_write_text"]  # re-exported


def save(result: Result, path: str | os.PathLike) -> Path:
    """Atomically writes a result file (see :func:`bench.model.safefile.atomic_write_bytes`).

    Raises:
        FileWriteError: naming the path (a full disk, a read-only directory, not a regular file).
    """
    return atomic_write_text(path, dumps(result) + "\n")


# ---------------------------------------------------------------- loading + validation
#
# The loader is a validator: it reads JSON (json.loads only: no pickle, no eval, no object hooks
# that build anything but dicts and lists), then checks every field the tool or a report relies
# on, and raises ResultFileError naming the file, the place and the first problem.
#
# Before any field is read, one walk of the whole parsed document (check_tree) bounds what every
# consumer may meet anywhere, also in free-form objects (a trial's config and extra, data, env):
# nesting at most MAX_DEPTH levels, whole numbers within 64 bits, other numbers within
# +-MAX_MAGNITUDE (far beyond any measured figure, far from where sums, ratios and chart axes
# overflow). The file itself is read only if it is a regular file of at most max_file_bytes().

MAX_FILE_BYTES = 256 << 20  # default limit on a result file's size (XPUBENCH_MAX_RESULT_MB overrides)
ENV_MAX_MB = "XPUBENCH_MAX_RESULT_MB"
MAX_DEPTH = 64
MAX_INT = 2**63  # whole numbers lie in [-MAX_INT, MAX_INT)
MAX_MAGNITUDE = 1e100

_NUM = (int, float)

# the summary's keys and their checks: bench.model.summary (RunSummary's declared fields)
_SAMPLE_NUMBERS = (
    "t", "tree_cpu_s", "tree_rss_bytes", "tree_uss_bytes", "processes", "sys_mem_used_bytes", "sys_mem_total_bytes",
    "cpu_mhz", "swap_used_bytes",
)
_MACHINE_STRINGS = (
    "label", "hostname", "cpu", "os", "platform", "python", "python_implementation", "executable", "tensorflow",
    "keras", "numpy", "xpubench", "gpu_status", "cuda_visible_devices",
)
_MACHINE_NUMBERS = ("physical_cores", "logical_cores", "usable_cores", "os_cpu_count", "ram_bytes", "cpu_mhz_max")
_MACHINE_OBJECTS = ("energy", "thread_env", "tensorflow_build", "backends")
_CALIBRATION_NUMBERS = ("matmul_gflops", "matmul_gflops_all_cores", "matmul_gflops_1thread", "usable_cores",
                        "load_avg_1m")


def max_file_bytes() -> int:
    """The largest result file a load accepts: 256 MiB, or ``XPUBENCH_MAX_RESULT_MB`` MiB.

    Raises:
        UsageError: the variable is set to something other than a positive number.
    """
    text = os.environ.get(ENV_MAX_MB, "").strip()
    if not text:
        return MAX_FILE_BYTES
    try:
        mb = float(text)
    except ValueError:
        mb = math.nan
    if not (0 < mb < 2**40):
        raise UsageError(f"bad {ENV_MAX_MB} {text[:40]!r} (expected a positive number of MiB, e.g. 1024)")
    return int(mb * 2**20)


def _where(path: tuple) -> str:
    """``("runs", 0, "trials", 3, "extra")`` -> ``runs[0].trials[3].extra`` (each key cut to 40 chars)."""
    out = ""
    for key in path:
        if isinstance(key, int):
            out += f"[{key}]"
        else:
            key = str(key)
            out += ("." if out else "") + (key if len(key) <= 40 else key[:39] + "…")
    return out or "top level"


def _tree_problem(value: Any) -> str | None:
    """What is wrong with one value of a document (not looking inside), or None."""
    t = type(value)
    if t is int:
        if -MAX_INT <= value < MAX_INT:
            return None
        digits = int(value.bit_length() * 0.30103) + 1
        return f"a whole number of about {digits} digits is out of range (at most 19 digits)"
    if t is float:
        if -MAX_MAGNITUDE <= value <= MAX_MAGNITUDE:
            return None
        if math.isnan(value):
            return "NaN is not a number"
        return f"number {value:.3g} is out of range (at most ±{MAX_MAGNITUDE:.0e})"
    if t is str or t is bool or value is None:
        return None
    return f"{t.__name__} is not a JSON value"


def check_tree(doc: Any, source: str, max_depth: int = MAX_DEPTH) -> None:
    """Checks every value of a parsed JSON document against the bounds every consumer relies on.

    Objects and lists nest at most ``max_depth`` levels; whole numbers fit in 64 bits; other
    numbers are finite and within ±MAX_MAGNITUDE; object keys are strings. One iterative pass
    (no recursion, whatever the depth); a second pass only to name the place of a problem.

    Args:
        doc: What ``json.loads`` returned (or any Python value).
        source: The file name used in error messages.

    Raises:
        ResultFileError: ``SOURCE: runs[0].trials[2].extra.x: ...``.
    """
    stack = [(doc, 0)]
    pop, push = stack.pop, stack.append
    while stack:
        value, depth = pop()
        t = type(value)
        if t is dict or t is list:
            if depth >= max_depth:
                break
            if t is dict:
                for k, v in value.items():
                    if type(k) is not str:
                        break
                    push((v, depth + 1))
                else:
                    continue
                break
            for v in value:
                push((v, depth + 1))
        elif t is not str and _tree_problem(value) is not None:
            break
    else:
        return
    _locate_problem(doc, source, max_depth)


def _locate_problem(doc: Any, source: str, max_depth: int) -> None:
    stack = [(doc, ())]
    while stack:
        value, path = stack.pop()
        t = type(value)
        if t is dict or t is list:
            if len(path) >= max_depth:
                raise ResultFileError(f"{source}: {_where(path[:8])}…: nested deeper than {max_depth} levels")
            if t is dict:
                for k, v in value.items():
                    if type(k) is not str:
                        raise ResultFileError(f"{source}: {_where(path)}: key {str(k)[:40]!r} is not a string")
                    stack.append((v, path + (k,)))
            else:
                stack.extend((v, path + (i,)) for i, v in enumerate(value))
            continue
        problem = _tree_problem(value)
        if problem is not None:
            raise ResultFileError(f"{source}: {_where(path)}: {problem}")
    raise ResultFileError(f"{source}: invalid document")  # pragma: no cover - the first pass found a problem


def _is_num(value: Any) -> bool:
    """A finite JSON number (bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, _NUM):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


class _Checker:
    """Field access that raises ResultFileError naming the file, the place and the problem."""

    def __init__(self, source: str):
        self.source = printable(source)  # a path of any length shows as at most ~200 characters

    def fail(self, where: str, what: str) -> ResultFileError:
        return ResultFileError(f"{self.source}: {where}: {what}")

    def get(self, obj: Mapping, key: str, types, where: str, default=dataclasses.MISSING):
        """``obj[key]`` checked against ``types``; ``default`` when missing (or null, if default is None)."""
        if key not in obj:
            if default is dataclasses.MISSING:
                raise self.fail(where, f"missing field '{key}'")
            return default
        value = obj[key]
        if value is None and default is None:
            return None
        types = types if isinstance(types, tuple) else (types,)
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise self.fail(where, f"field '{key}' should be {_tname(types)}, not {_jname(value)}")
        if isinstance(value, _NUM) and not isinstance(value, bool) and not _is_num(value):
            raise self.fail(where, f"field '{key}' should be a finite number, not {value!r:.40}")
        return value

    def num(self, obj: Mapping, key: str, where: str, default: float = 0.0) -> float:
        """A finite number field as float; null or missing gives ``default``."""
        value = self.get(obj, key, _NUM, where, None)
        return default if value is None else float(value)

    def count(self, obj: Mapping, key: str, where: str, default: int = 0, minimum: int = 0) -> int:
        """A whole number field >= ``minimum``; null or missing gives ``default``."""
        value = self.get(obj, key, _NUM, where, None)
        if value is None:
            return default
        if value != int(value) or value < minimum:
            raise self.fail(where, f"field '{key}' should be a whole number >= {minimum}, not {value!r}")
        return int(value)

    def list_of(self, obj: Mapping, key: str, types, where: str) -> list:
        """A list field (missing or null: empty) whose items are all of ``types``."""
        items = self.get(obj, key, list, where, None) or []
        types = types if isinstance(types, tuple) else (types,)
        for i, item in enumerate(items):
            if (isinstance(item, bool) and bool not in types) or not isinstance(item, types):
                raise self.fail(f"{where}.{key}[{i}]", f"should be {_tname(types)}, not {_jname(item)}")
        return items

    def numbers(self, obj: Mapping, keys, where: str) -> None:
        """Every key of ``keys`` present in ``obj`` holds a finite number or null."""
        for key in keys:
            if key in obj and obj[key] is not None:
                self.get(obj, key, _NUM, where)


def _tname(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    names = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number", bool: "true/false",
             type(None): "null"}
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in types))


def _jname(value: Any) -> str:
    """The JSON name of a value's type (for messages)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return {dict: "an object", list: "a list"}.get(type(value), type(value).__name__)


def _trial_from(d: Any, c: _Checker, where: str) -> TrialRecord:
    if not isinstance(d, dict):
        raise c.fail(where, f"should be an object, not {_jname(d)}")
    err = c.get(d, "error", dict, where, None)
    error = None
    if err is not None:
        w = where + ".error"
        error = TrialError(
            kind=c.get(err, "kind", str, w),
            message=c.get(err, "message", str, w),
            exit_code=c.get(err, "exit_code", int, w, None),
            signal=c.get(err, "signal", int, w, None),
            stderr_tail=c.get(err, "stderr_tail", str, w, None) or "",
        )
    quality = c.get(d, "quality", dict, where, None) or {}
    for k, v in quality.items():
        if v is not None and not _is_num(v):
            raise c.fail(where, f"quality '{k}' should be a finite number or null, not {_jname(v)}")
    return TrialRecord(
        id=c.get(d, "id", str, where),
        config=c.get(d, "config", dict, where),
        worker=c.count(d, "worker", where),
        start_s=c.num(d, "start_s", where),
        wall_s=c.num(d, "wall_s", where),
        cpu_s=c.num(d, "cpu_s", where),
        warmup_s=c.num(d, "warmup_s", where),
        samples=c.num(d, "samples", where),
        quality=quality,
        extra=c.get(d, "extra", dict, where, None) or {},
        peak_rss_bytes=c.count(d, "peak_rss_bytes", where),
        error=error,
    )


def _summary_from(d: Mapping, c: _Checker, where: str) -> RunSummary:
    return RunSummary.from_dict(c.get(d, "summary", dict, where, None) or {}, c, where + ".summary")


def _run_from(d: Any, c: _Checker, where: str) -> RunRecord:
    if not isinstance(d, dict):
        raise c.fail(where, f"should be an object, not {_jname(d)}")
    strategy = c.get(d, "strategy", dict, where)
    ws = where + ".strategy"
    c.get(strategy, "device", str, ws)
    c.get(strategy, "processes", int, ws)
    c.count(strategy, "processes", ws, minimum=1)
    if strategy.get("threads_per_process") is not None:
        c.count(strategy, "threads_per_process", ws, minimum=1)
    c.get(strategy, "backend", str, ws, None)  # missing (older files): tensorflow
    trials = c.get(d, "trials", list, where)
    records = tuple(_trial_from(t, c, f"{where}.trials[{i}]") for i, t in enumerate(trials))
    seen: set[str] = set()
    for i, t in enumerate(records):
        if t.id in seen:
            raise c.fail(f"{where}.trials[{i}]", f"duplicate trial id {t.id[:100]!r}")
        seen.add(t.id)
    samples = c.list_of(d, "samples", dict, where)
    for i, s in enumerate(samples):
        w = f"{where}.samples[{i}]"
        c.get(s, "t", _NUM, w, 0.0)  # a sample's time is a number (missing: 0), never null
        c.numbers(s, _SAMPLE_NUMBERS, w)
        c.list_of(s, "cpu_percent", _NUM + (type(None),), w)
    return RunRecord(
        workload=c.get(d, "workload", str, where),
        size=c.get(d, "size", str, where),
        strategy=strategy,
        trials=records,
        samples=tuple(samples),
        workers=tuple(c.list_of(d, "workers", dict, where)),
        summary=_summary_from(d, c, where),
        workload_version=c.count(d, "workload_version", where, default=1),
        data=c.get(d, "data", dict, where, None) or {},
        env=c.get(d, "env", dict, where, None) or {},
        status=c.get(d, "status", str, where, None) or "complete",
        skipped=c.get(d, "skipped", str, where, None),
        notes=tuple(c.list_of(d, "notes", str, where)),
        started_at=c.get(d, "started_at", str, where, None) or "",
        options=c.get(d, "options", dict, where, None),
        repeat=c.count(d, "repeat", where),
    )


def check_machine(machine: Mapping, c: "_Checker", where: str = "machine") -> None:
    """Checks the fingerprint fields a report or the memory guard reads (strings, numbers, calibration).

    Args:
        machine: A result's ``machine`` object (or pytest-benchmark's ``machine_info.xpubench``).
        c: The checker of the file.
        where: Its place in the file, for messages.
    """
    for key in _MACHINE_STRINGS:
        c.get(machine, key, str, where, None)
    c.numbers(machine, _MACHINE_NUMBERS, where)
    c.list_of(machine, "gpus", (dict, str), where)
    c.list_of(machine, "tensorflow_devices", str, where)
    for key in _MACHINE_OBJECTS:
        c.get(machine, key, dict, where, None)
    cal = c.get(machine, "calibration", dict, where, None)
    if cal:
        w = f"{where}.calibration"
        c.numbers(cal, _CALIBRATION_NUMBERS, w)
        c.get(cal, "measured_at", str, w, None)
        eff = c.get(cal, "parallel_efficiency", (dict, list), w, None)
        if isinstance(eff, dict):
            c.numbers(eff, list(eff), f"{w}.parallel_efficiency")
        elif isinstance(eff, list):
            for i, point in enumerate(c.list_of(cal, "parallel_efficiency", dict, w)):
                c.numbers(point, ("processes", "efficiency"), f"{w}.parallel_efficiency[{i}]")


def checker(source: str) -> "_Checker":
    """The field checker for one file (its errors name ``source``), for other loaders of result data."""
    return _Checker(source)


def from_dict(doc: Any, source: str = "<result>") -> Result:
    """Validates a parsed JSON document and builds a Result.

    Args:
        doc: Any value ``json.loads`` can return.
        source: The file name used in error messages.

    Raises:
        ResultFileError: naming the source and the first thing wrong.
    """
    source = printable(source)
    c = _Checker(source)
    if not isinstance(doc, dict):
        raise c.fail("top level", f"expected a JSON object, got {_jname(doc)}")
    check_tree(doc, source)
    if "schema" not in doc or "runs" not in doc:
        hint = " (it looks like pytest-benchmark JSON)" if "benchmarks" in doc else ""
        raise c.fail("top level", f"not an xpubench result file (no 'schema'/'runs'){hint}")
    schema = doc["schema"]
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
        raise c.fail("schema", f"expected a positive integer, got {schema!r:.40}")
    if schema > SCHEMA:
        raise c.fail(
            "schema", f"file has schema {str(schema)[:20]}, newer than this xpubench reads ({SCHEMA}): upgrade xpubench"
        )
    tool = c.get(doc, "tool", dict, "top level", None) or {"name": TOOL, "version": "?"}
    name = tool.get("name", TOOL)
    if name != TOOL:
        raise c.fail("tool", f"written by {name!r:.60}, not {TOOL}")
    c.get(tool, "version", str, "tool", None)
    machine = c.get(doc, "machine", dict, "top level")
    check_machine(machine, c)
    runs = c.get(doc, "runs", list, "top level")
    return Result(
        schema=schema,
        tool=tool,
        machine=machine,
        runs=tuple(_run_from(r, c, f"runs[{i}]") for i, r in enumerate(runs)),
        created=c.get(doc, "created", str, "top level", None) or "",
        complete=c.get(doc, "complete", bool, "top level", True),
        command=tuple(c.list_of(doc, "command", str, "top level")),
        decisions=tuple(c.list_of(doc, "decisions", dict, "top level")),
    )


def _no_constants(name: str):
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def parse(data: str | bytes, source: str = "<result>") -> Any:
    """The JSON document of a file's text or bytes (not yet validated as a result: see :func:`from_dict`).

    Args:
        data: The file's content (bytes are decoded as UTF-8; a leading byte-order mark is dropped).
        source: The file name used in error messages.

    Raises:
        ResultFileError: empty, not UTF-8, not JSON (truncated?), NaN/Infinity, nested too deeply.
    """
    source = printable(source)
    if isinstance(data, (bytes, bytearray)):
        if data.startswith(b"\xef\xbb\xbf"):  # tolerate the byte-order mark some editors add
            data = data[3:]
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ResultFileError(f"{source}: not a text file (not UTF-8)") from None
    if not data.strip():
        raise ResultFileError(f"{source}: empty file")
    try:
        return json.loads(data, parse_constant=_no_constants, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise ResultFileError(f"{source}: not valid JSON ({exc.msg}, line {exc.lineno}; truncated?)") from None
    except ValueError as exc:  # NaN/Infinity, a number out of range, an integer with too many digits
        raise ResultFileError(f"{source}: not valid JSON ({str(exc)[:100]})") from None
    except RecursionError:
        raise ResultFileError(f"{source}: JSON nested too deeply") from None


def loads(text: str | bytes, source: str = "<result>") -> Result:
    """Parses and validates the text of a result file.

    Args:
        text: The file's text (or bytes).
        source: The file name used in error messages.

    Raises:
        ResultFileError: empty, not JSON (truncated?), or invalid as a result.
    """
    return from_dict(parse(text, source), source)


def read(path: str | os.PathLike) -> bytes:
    """The bytes of an input file: a regular file (not a FIFO, device or directory) within the size limit.

    Args:
        path: The file.

    Raises:
        ResultFileError: missing, not a regular file, too large (``XPUBENCH_MAX_RESULT_MB``), unreadable.
    """
    limit = max_file_bytes()
    try:
        return read_regular(path, limit)
    except ResultFileError as exc:
        if "too large" in str(exc):
            raise ResultFileError(f"{exc} (set {ENV_MAX_MB} to read larger files)") from None
        raise


def load(path: str | os.PathLike) -> Result:
    """Reads and validates a result file. Never executes anything from the file.

    Only a regular file is opened (never a FIFO or a device such as ``/dev/zero``, also not through
    a link), and only up to :func:`max_file_bytes`.

    Args:
        path: An xpubench result file.

    Raises:
        ResultFileError: the file is missing, not a regular file, too large, unreadable, corrupt,
            of another tool or a newer schema.
    """
    return loads(read(path), str(path))
