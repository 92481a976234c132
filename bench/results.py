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
import tempfile
from pathlib import Path
from typing import Any, Mapping

from bench.errors import ResultFileError

SCHEMA = 1
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
    options the trials ran with (resume checks them).
    """

    workload: str
    size: str
    strategy: Mapping[str, Any]
    trials: tuple[TrialRecord, ...] = ()
    samples: tuple[Mapping[str, Any], ...] = ()
    workers: tuple[Mapping[str, Any], ...] = ()
    summary: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    workload_version: int = 1
    data: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    env: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    status: str = "complete"
    skipped: str | None = None
    notes: tuple[str, ...] = ()
    started_at: str = ""
    options: Mapping[str, Any] | None = None

    @property
    def key(self) -> tuple:
        s = self.strategy
        return (self.workload, self.size, s.get("device"), s.get("processes"), s.get("threads_per_process"))


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
    except Exception:  # not installed (running from a checkout)
        return "0.1.0+checkout"


# ---------------------------------------------------------------- serialisation


def _clean(value: Any) -> Any:
    """JSON-safe copy: tuples to lists, non-finite floats to None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _clean({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _clean(value.item())
    return value


def as_json(value: Any) -> Any:
    """A JSON-safe copy of any record (dataclasses to objects, tuples to lists, NaN to null)."""
    return _clean(value)


def to_dict(result: Result) -> dict:
    """The JSON document of a result (the only serialisation path)."""
    doc = _clean(result)
    # key order: schema first, so `head` shows what a file is
    return {"schema": doc.pop("schema"), **doc}


def dumps(result: Result) -> str:
    return json.dumps(to_dict(result), indent=1, allow_nan=False)


def _new_file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file (0o666 minus the umask)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Writes a file so that readers see the old or the new content, never half of it.

    The data goes to a temporary file in the same directory, is flushed and fsynced, and the
    temporary file is renamed over ``path`` (then the directory is fsynced). On any failure,
    Ctrl-C included, the temporary file is removed and ``path`` keeps its old content.

    Args:
        path: The file to (re)place. An existing file keeps its permission bits.
        data: The whole new content.

    Returns:
        ``path`` as a Path.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        mode = _new_file_mode()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)  # mkstemp makes 0600 files
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # pragma: no cover - some filesystems refuse directory fsync
        pass
    return path


def save(result: Result, path: str | os.PathLike) -> Path:
    """Atomically writes a result file."""
    return atomic_write_text(path, dumps(result) + "\n")


# ---------------------------------------------------------------- loading + validation
#
# The loader is a validator: it reads JSON (json.loads only: no pickle, no eval, no object hooks
# that build anything but dicts and lists), then checks every field the tool or a report relies
# on, and raises ResultFileError naming the file, the place and the first problem.

MAX_FILE_BYTES = 1 << 30

_NUM = (int, float)

# summary keys that hold a number (or null); spreads are objects of numbers.
_SUMMARY_NUMBERS = (
    "trials", "failed", "wall_s", "trials_per_hour", "speedup", "efficiency", "cpu_s", "cpu_wall_ratio",
    "per_process_cpu_wall_ratio", "throughput", "peak_tree_rss_bytes", "peak_tree_uss_bytes",
    "peak_worker_rss_bytes", "compute_offset_s", "baseline_wall_s", "gpu_util_p50", "gpu_util_p95",
    "gpu_mem_used_p50_bytes", "gpu_mem_used_p95_bytes", "resumed_trials",
)
_SUMMARY_SPREADS = ("trial_wall_s", "startup_s")
_SAMPLE_NUMBERS = (
    "t", "tree_cpu_s", "tree_rss_bytes", "tree_uss_bytes", "processes", "sys_mem_used_bytes", "sys_mem_total_bytes",
)
_MACHINE_STRINGS = ("label", "hostname", "cpu", "os", "python")
_MACHINE_NUMBERS = ("physical_cores", "logical_cores", "usable_cores", "os_cpu_count", "ram_bytes")


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
        self.source = source

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
    names = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number", bool: "true/false"}
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


def _summary_from(d: Mapping, c: _Checker, where: str) -> dict:
    summary = c.get(d, "summary", dict, where, None) or {}
    w = where + ".summary"
    c.numbers(summary, _SUMMARY_NUMBERS, w)
    c.get(summary, "throughput_unit", str, w, None)
    for key in _SUMMARY_SPREADS:
        spread = c.get(summary, key, dict, w, None)
        if spread:
            c.numbers(spread, list(spread), f"{w}.{key}")
    failures = c.get(summary, "failures", dict, w, None)
    if failures:
        c.numbers(failures, list(failures), f"{w}.failures")
    return summary


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
    trials = c.get(d, "trials", list, where)
    records = tuple(_trial_from(t, c, f"{where}.trials[{i}]") for i, t in enumerate(trials))
    seen: set[str] = set()
    for i, t in enumerate(records):
        if t.id in seen:
            raise c.fail(f"{where}.trials[{i}]", f"duplicate trial id {t.id!r}")
        seen.add(t.id)
    samples = c.list_of(d, "samples", dict, where)
    for i, s in enumerate(samples):
        c.numbers(s, _SAMPLE_NUMBERS, f"{where}.samples[{i}]")
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
    )


def from_dict(doc: Any, source: str = "<result>") -> Result:
    """Validates a parsed JSON document and builds a Result.

    Args:
        doc: Any value ``json.loads`` can return.
        source: The file name used in error messages.

    Raises:
        ResultFileError: naming the source and the first thing wrong.
    """
    c = _Checker(source)
    if not isinstance(doc, dict):
        raise c.fail("top level", f"expected a JSON object, got {_jname(doc)}")
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
    for key in _MACHINE_STRINGS:
        c.get(machine, key, str, "machine", None)
    c.numbers(machine, _MACHINE_NUMBERS, "machine")
    c.get(machine, "gpus", list, "machine", None)
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


def loads(text: str, source: str = "<result>") -> Result:
    """Parses and validates the text of a result file.

    Args:
        text: The file's text.
        source: The file name used in error messages.

    Raises:
        ResultFileError: empty, not JSON (truncated?), or invalid as a result.
    """
    if not text.strip():
        raise ResultFileError(f"{source}: empty file")
    try:
        doc = json.loads(text, parse_constant=_no_constants, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise ResultFileError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno}; truncated?)") from None
    except ValueError as exc:  # NaN/Infinity, a number out of range, an integer with too many digits
        raise ResultFileError(f"{source}: not valid JSON ({str(exc)[:100]})") from None
    except RecursionError:
        raise ResultFileError(f"{source}: JSON nested too deeply") from None
    return from_dict(doc, source)


def load(path: str | os.PathLike) -> Result:
    """Reads and validates a result file. Never executes anything from the file.

    Args:
        path: An xpubench result file.

    Raises:
        ResultFileError: the file is missing, unreadable, corrupt, of another tool or a newer schema.
    """
    path = Path(path)
    try:
        if path.is_file() and path.stat().st_size > MAX_FILE_BYTES:
            raise ResultFileError(f"{path}: too large for a result file ({path.stat().st_size} bytes)")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ResultFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ResultFileError(f"{path}: is a directory, not a result file") from None
    except OSError as exc:
        raise ResultFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if raw.startswith(b"\xef\xbb\xbf"):  # tolerate the byte-order mark some editors add
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ResultFileError(f"{path}: not a text file (not UTF-8)") from None
    return loads(text, str(path))
