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
    """One strategy applied to one workload: trials, sampler timeline, worker facts, summary."""

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


def to_dict(result: Result) -> dict:
    """The JSON document of a result (the only serialisation path)."""
    doc = _clean(result)
    # key order: schema first, so `head` shows what a file is
    return {"schema": doc.pop("schema"), **doc}


def dumps(result: Result) -> str:
    return json.dumps(to_dict(result), indent=1, allow_nan=False)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes a file so that readers see the old or the new content, never half of it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
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


class _Checker:
    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, what: str) -> ResultFileError:
        return ResultFileError(f"{self.source}: {where}: {what}")

    def get(self, obj: Mapping, key: str, types, where: str, default=dataclasses.MISSING):
        if key not in obj:
            if default is dataclasses.MISSING:
                raise self.fail(where, f"missing field '{key}'")
            return default
        value = obj[key]
        if value is None and default is None:
            return None
        if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            raise self.fail(where, f"field '{key}' should be {_tname(types)}, not {type(value).__name__}")
        if not isinstance(value, types):
            raise self.fail(where, f"field '{key}' should be {_tname(types)}, not {type(value).__name__}")
        return value


def _tname(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    names = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number", bool: "true/false"}
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in types))


_NUM = (int, float)


def _trial_from(d: Any, c: _Checker, where: str) -> TrialRecord:
    if not isinstance(d, dict):
        raise c.fail(where, "should be an object")
    err = c.get(d, "error", (dict,), where, None)
    error = None
    if err is not None:
        error = TrialError(
            kind=c.get(err, "kind", str, where + ".error"),
            message=c.get(err, "message", str, where + ".error"),
            exit_code=c.get(err, "exit_code", int, where + ".error", None),
            signal=c.get(err, "signal", int, where + ".error", None),
            stderr_tail=c.get(err, "stderr_tail", str, where + ".error", "") or "",
        )
    quality = c.get(d, "quality", dict, where, {}) or {}
    for k, v in quality.items():
        if v is not None and (isinstance(v, bool) or not isinstance(v, _NUM)):
            raise c.fail(where, f"quality '{k}' should be a number")
    return TrialRecord(
        id=c.get(d, "id", str, where),
        config=c.get(d, "config", dict, where),
        worker=c.get(d, "worker", int, where, 0) or 0,
        start_s=float(c.get(d, "start_s", _NUM, where, 0.0) or 0.0),
        wall_s=float(c.get(d, "wall_s", _NUM, where, 0.0) or 0.0),
        cpu_s=float(c.get(d, "cpu_s", _NUM, where, 0.0) or 0.0),
        warmup_s=float(c.get(d, "warmup_s", _NUM, where, 0.0) or 0.0),
        samples=float(c.get(d, "samples", _NUM, where, 0.0) or 0.0),
        quality=quality,
        extra=c.get(d, "extra", dict, where, {}) or {},
        peak_rss_bytes=int(c.get(d, "peak_rss_bytes", _NUM, where, 0) or 0),
        error=error,
    )


def _run_from(d: Any, c: _Checker, where: str) -> RunRecord:
    if not isinstance(d, dict):
        raise c.fail(where, "should be an object")
    strategy = c.get(d, "strategy", dict, where)
    for key in ("device", "processes"):
        if key not in strategy:
            raise c.fail(where + ".strategy", f"missing field '{key}'")
    if not isinstance(strategy["processes"], int) or isinstance(strategy["processes"], bool):
        raise c.fail(where + ".strategy", "field 'processes' should be a number")
    trials = c.get(d, "trials", list, where)
    samples = c.get(d, "samples", list, where, [])
    for i, s in enumerate(samples or []):
        if not isinstance(s, dict):
            raise c.fail(f"{where}.samples[{i}]", "should be an object")
    return RunRecord(
        workload=c.get(d, "workload", str, where),
        size=c.get(d, "size", str, where),
        strategy=strategy,
        trials=tuple(_trial_from(t, c, f"{where}.trials[{i}]") for i, t in enumerate(trials)),
        samples=tuple(samples or ()),
        workers=tuple(c.get(d, "workers", list, where, []) or ()),
        summary=c.get(d, "summary", dict, where, {}) or {},
        workload_version=c.get(d, "workload_version", int, where, 1) or 1,
        data=c.get(d, "data", dict, where, {}) or {},
        env=c.get(d, "env", dict, where, {}) or {},
        status=c.get(d, "status", str, where, "complete") or "complete",
        skipped=c.get(d, "skipped", str, where, None),
        notes=tuple(c.get(d, "notes", list, where, []) or ()),
        started_at=c.get(d, "started_at", str, where, "") or "",
    )


def from_dict(doc: Any, source: str = "<result>") -> Result:
    """Validates a parsed JSON document and builds a Result.

    Raises:
        ResultFileError: naming the source and the first thing wrong.
    """
    c = _Checker(source)
    if not isinstance(doc, dict):
        raise c.fail("top level", f"expected a JSON object, got {type(doc).__name__}")
    if "schema" not in doc or "runs" not in doc:
        raise c.fail("top level", "not an xpubench result file (no 'schema'/'runs')")
    schema = doc["schema"]
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
        raise c.fail("schema", f"expected a positive integer, got {schema!r}")
    if schema > SCHEMA:
        raise c.fail(
            "schema", f"file has schema {schema}, newer than this xpubench reads ({SCHEMA}): upgrade xpubench"
        )
    tool = c.get(doc, "tool", dict, "top level", {"name": TOOL, "version": "?"}) or {}
    if tool.get("name", TOOL) != TOOL:
        raise c.fail("tool", f"written by {tool.get('name')!r}, not {TOOL}")
    machine = c.get(doc, "machine", dict, "top level")
    runs = c.get(doc, "runs", list, "top level")
    return Result(
        schema=schema,
        tool=tool,
        machine=machine,
        runs=tuple(_run_from(r, c, f"runs[{i}]") for i, r in enumerate(runs)),
        created=c.get(doc, "created", str, "top level", "") or "",
        complete=c.get(doc, "complete", bool, "top level", True),
        command=tuple(c.get(doc, "command", list, "top level", []) or ()),
        decisions=tuple(c.get(doc, "decisions", list, "top level", []) or ()),
    )


def loads(text: str, source: str = "<result>") -> Result:
    if not text.strip():
        raise ResultFileError(f"{source}: empty file")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultFileError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno}; truncated?)") from None
    except RecursionError:
        raise ResultFileError(f"{source}: JSON nested too deeply") from None
    return from_dict(doc, source)


def load(path: str | os.PathLike) -> Result:
    """Reads and validates a result file.

    Raises:
        ResultFileError: the file is missing, unreadable, corrupt, of another tool or a newer schema.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ResultFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ResultFileError(f"{path}: is a directory, not a result file") from None
    except OSError as exc:
        raise ResultFileError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ResultFileError(f"{path}: not a text file (not UTF-8)") from None
    return loads(text, str(path))
