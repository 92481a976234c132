"""Every GPU path of xpubench, checked in one command on a machine with an NVIDIA GPU (< 8 minutes).

What it runs, in order, continuing past failures (each step's output goes to ``logs/``):

1. NVML against the real driver: the machine fingerprint (GPUs, driver, each installed Keras
   backend's version and build) and the sampler for a second (``machine.json``).
2. For lorenz, imdb_cnn_lstm and predict_modes at quick size, on each installed backend: the
   real CLI, ``python -m bench run W --size quick --backend B --device gpu,MULTI`` (MULTI: the
   backend's multi-device strategy, ``mirrored`` on tensorflow, ``data_parallel`` on jax; torch
   has none), lorenz at 1 and 2 processes (two workers sharing a GPU), the others at 1, into
   ``results/``. A strategy the machine cannot run is recorded as skipped, with the reason.
3. ``pytest -m requires_gpu`` over the test files that use the marker (``pytest-requires-gpu.xml``).
4. ``python -m bench report`` over the result files (``report.html``).
5. ``summary.md``: what ran, what failed (with its error line), and each run's GPU utilisation p50
   as its result file records it.

Usage::

    python benchmarks/gpu_check.py [--out DIR] [--wheels DIR] [--time-limit S]
                                   [--backends jax,torch] [--workloads lorenz] [--rehearse]

``--out`` is a new or empty folder (default ``gpu-check-<date>-<time>``). ``--wheels DIR``
first installs, with ``pip install --no-index --find-links DIR``, whichever of keras and
xpubench's own dependencies are missing (tensorflow is not needed: the check runs on the backends
that are installed); where this Python's environment cannot be written, the folder's wheels go
into a temporary folder put on the import path instead. ``--time-limit`` (default 420 s) bounds
the whole check: runs that would start too late are listed as not run. ``--rehearse`` runs the
same plan on the CPU (``cpu`` in place of ``gpu``), to check the check itself where there is no
GPU. Without a GPU (NVML finds none and no installed backend sees one) it prints one line and
exits 2, having written nothing. Exit status: 0 every step passed, 1 some step failed (all
recorded), 2 bad input or no GPU, 130 interrupted (the summary holds what finished).

On the workplace's GPU machine (device tool; Python 3.12 there, with jax and torch for CUDA but
no TensorFlow and no keras), prepare the wheels here once, in the repository's root::

    echo /.whl/ >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \\
        -d .whl keras==3.15.1 namex==0.1.0 optree==0.20.0

(2.9 MB: every other package the check needs is already there), then call ``run`` with
``carry: [".whl"]``, ``timeout_s: 560`` and the command::

    PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --wheels .whl --out /tmp/gpu-check; rc=$?;
    tar czf $OUT/gpu-check.tgz -C /tmp gpu-check; cp /tmp/gpu-check/summary.md $OUT/; exit $rc

(the folder travels back as one archive, the summary beside it: the device returns at most 8
files). ``--time-limit 300`` leaves device time for a second try.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.errors import UsageError  # noqa: E402  (bench's base imports the standard library only)
from bench.text import printable, shell_join  # noqa: E402

# workload -> the process counts it runs at (lorenz at 2: two workers share one GPU)
WORKLOADS = {"lorenz": "1,2", "imdb_cnn_lstm": "1", "predict_modes": "1"}
DEFAULT_TIME_LIMIT_S = 420.0
RUN_CAP_S = 200.0  # one `bench run` at most
TRIAL_TIMEOUT_S = 150
RESERVE_S = 60.0  # kept for the requires_gpu tests and the report
MIN_RUN_S = 30.0  # a run is not started with less than this left
PROBE_TIMEOUT_S = 180.0
TESTS_TIMEOUT_S = 150.0
REPORT_TIMEOUT_S = 60.0
# packages the check needs besides xpubench's declared dependencies (tensorflow is optional here)
EXTRA_NEEDS = ("keras>=3.0", "pytest>=7.4")
OPTIONAL = ("tensorflow", "tensorflow-cpu")
# GPU readings every run summary needs; the others (energy counter, clocks...) only add facts
SAMPLER_NEEDS = ("util_percent", "mem_used_bytes")


@dataclasses.dataclass
class Step:
    """One thing the check does, and how it went.

    Args:
        name: What it checks, for the summary (``bench run lorenz --backend jax ...``).
        command: The command line (empty for a step run inside this process).
        rc: Exit status; None when it did not run.
        seconds: How long it took.
        error: The error line (a failed step), or why it did not run.
        log: Its output file, relative to the check's folder.
        note: One line of what it found (a passed step too).
    """

    name: str
    command: list[str] = dataclasses.field(default_factory=list)
    rc: int | None = None
    seconds: float = 0.0
    error: str = ""
    log: str = ""
    note: str = ""

    @property
    def status(self) -> str:
        if self.rc is None:
            return "not run"
        return "ok" if self.rc == 0 else "failed"


# ---------------------------------------------------------------- arguments


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError(f"{message} (see: python benchmarks/gpu_check.py --help)")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The check's options, validated (nothing is created here).

    Args:
        argv: The command line after the script's name.

    Raises:
        UsageError: an unknown option, a bad number, a --wheels folder without wheels, an --out
            that is a file or a folder that is not empty, an unknown workload.
    """
    p = _Parser(prog="gpu_check.py", description="Checks every GPU path of xpubench (< 8 minutes).")
    p.add_argument("--out", default=None, help="new or empty folder for everything (default gpu-check-<date>)")
    p.add_argument("--wheels", default=None, help="folder of wheels to install missing packages from (offline)")
    p.add_argument("--time-limit", default=str(DEFAULT_TIME_LIMIT_S), help="seconds for the whole check (default 420)")
    p.add_argument("--backends", default="all", help="installed backends to check, e.g. jax,torch (default all)")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help=f"subset of {','.join(WORKLOADS)}")
    p.add_argument("--rehearse", action="store_true", help="run the plan on the CPU: checks the check, no GPU needed")
    args = p.parse_args(list(argv))
    try:
        args.time_limit = float(args.time_limit)
    except ValueError:
        raise UsageError(f"bad --time-limit {printable(args.time_limit)!r} (expected seconds, e.g. 420)") from None
    if not 60 <= args.time_limit <= 86400:
        raise UsageError(f"bad --time-limit {args.time_limit:g} (expected 60 to 86400 seconds)")
    names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    bad = [w for w in names if w not in WORKLOADS]
    if bad or not names:
        raise UsageError(f"bad --workloads {printable(args.workloads)!r} (choose from: {', '.join(WORKLOADS)})")
    args.workloads = names
    if args.wheels is not None:
        wheels = Path(args.wheels)
        if not wheels.is_dir():
            raise UsageError(f"--wheels {printable(str(wheels))!r} is not a folder")
        if not any(wheels.glob("*.whl")):
            raise UsageError(f"--wheels {printable(str(wheels))!r} holds no .whl file")
        args.wheels = wheels.resolve()
    out = Path(args.out) if args.out else Path(f"gpu-check-{time.strftime('%Y%m%d-%H%M%S')}")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {printable(str(out))!r} is not a folder")
    if out.is_dir() and any(out.iterdir()):
        raise UsageError(f"--out {printable(str(out))!r} is not empty (give a new folder)")
    args.out = out.resolve()
    return args


# ---------------------------------------------------------------- packages


def _dist_name(requirement: str) -> str:
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return m.group(1) if m else requirement


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
        return True
    except metadata.PackageNotFoundError:
        return False


def needed() -> list[str]:
    """Requirements the check needs (xpubench's dependencies, keras, pytest), tensorflow left out."""
    reqs: list[str] = []
    try:
        import tomllib

        with open(ROOT / "pyproject.toml", "rb") as f:
            project = tomllib.load(f)["project"]
        reqs = list(project.get("dependencies", []))
    except (ImportError, OSError, KeyError, ValueError):  # Python 3.10 or no pyproject: what is installed says
        declared = metadata.requires("xpubench") if _installed("xpubench") else None
        reqs = [r for r in declared or [] if "extra ==" not in r]
    out = [r for r in [*reqs, *EXTRA_NEEDS] if _dist_name(r).lower() not in OPTIONAL]
    return list(dict.fromkeys(out))


def missing() -> list[str]:
    """The requirements of :func:`needed` whose distribution is not installed here."""
    return [r for r in needed() if not _installed(_dist_name(r))]


def _pip(args: Sequence[str]) -> str | None:
    """Runs ``python -m pip install ARGS`` quietly; None when it worked, else its last error line."""
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-warn-script-location",
           "-q", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"pip could not run ({type(exc).__name__})"
    if proc.returncode == 0:
        return None
    lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
    return next((ln for ln in reversed(lines) if "ERROR" in ln), lines[-1] if lines else f"exit {proc.returncode}")


def install_wheels(wheels: Path) -> list[str]:
    """Installs the missing requirements from a folder of wheels, with no index (offline).

    First into this Python's environment (``pip install --no-index --find-links DIR``, which
    resolves their dependencies from the folder too). Where that fails (an environment this user
    cannot write), every wheel of the folder that is not installed goes, without dependency
    resolution, into a new folder under the temporary directory put first on the import path of
    this process and of every command it starts.

    Args:
        wheels: The folder of ``.whl`` files.

    Returns:
        What was installed (empty: nothing was missing), and where, if not in the environment.

    Raises:
        UsageError: neither way worked (pip's last error line).
    """
    todo = missing()
    if not todo:
        return []
    why = _pip(["--no-index", "--find-links", str(wheels), *todo])
    if why is None:
        importlib.invalidate_caches()
        return todo
    files = [str(w) for w in sorted(wheels.glob("*.whl")) if not _installed(w.name.split("-", 1)[0])]
    site = tempfile.mkdtemp(prefix="gpu-check-site-")
    if not files or _pip(["--no-index", "--no-deps", "--target", site, *files]) is not None:
        raise UsageError(f"cannot install {', '.join(todo)} from --wheels {str(wheels)!r}: {why}")
    sys.path.insert(0, site)
    os.environ["PYTHONPATH"] = os.pathsep.join([site, *filter(None, [os.environ.get("PYTHONPATH")])])
    importlib.invalidate_caches()
    return [*(Path(f).name.split("-", 1)[0] for f in files), f"(into {site}: {why})"]


# ---------------------------------------------------------------- is there a GPU?


def _child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    env["XPUBENCH_OFFLINE"] = "1"
    env.update(extra)
    return env


_PROBE = (
    "import json\n"
    "from bench.backends.registry import get_backend\n"
    "print(json.dumps({'gpus': [str(g) for g in get_backend(%r).gpus()]}))\n"
)


def probe_backends(backends: Sequence[str]) -> dict[str, dict]:
    """Asks each backend, in its own fresh process (at once), which GPUs it sees.

    Args:
        backends: Installed backend names.

    Returns:
        ``{name: {"gpus": [...], "why": ""}}``; ``why`` says why a backend sees none (or why its
        probe failed).
    """
    from bench.backends.registry import get_backend
    from bench.model.results import read_message

    versions = {name: get_backend(name).version() or "?" for name in backends}
    procs = {}
    for name in backends:
        env = _child_env(KERAS_BACKEND=name, TF_CPP_MIN_LOG_LEVEL="3", XLA_PYTHON_CLIENT_PREALLOCATE="false")
        procs[name] = subprocess.Popen([sys.executable, "-c", _PROBE % name], env=env, cwd=ROOT,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = {}
    for name, proc in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=PROBE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            out[name] = {"gpus": [], "why": f"{name}: probe timed out after {PROBE_TIMEOUT_S:g} s"}
            continue
        try:
            gpus = list(read_message((stdout.strip().splitlines() or [""])[-1])["gpus"])
            out[name] = {"gpus": gpus, "why": "" if gpus else f"{name} {versions[name]} sees no GPU"}
        except (ValueError, KeyError, TypeError):
            tail = " ".join(stderr.strip().splitlines()[-1:])[:200]
            out[name] = {"gpus": [], "why": f"{name} probe failed (exit {proc.returncode}: {tail})"}
    return out


# ---------------------------------------------------------------- steps


def run_command(step: Step, out: Path, timeout: float, env: dict[str, str]) -> Step:
    """Runs a step's command with its output in ``out/logs``; past ``timeout`` it gets SIGINT (as
    Ctrl-C: bench writes what finished), then SIGKILL.

    Args:
        step: The step (its ``command`` is run; ``rc``, ``seconds``, ``error``, ``log`` are set).
        out: The check's folder.
        timeout: Seconds it may take.
        env: Its environment.
    """
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", step.name).strip("-")[:80]
    log = logs / f"{len(list(logs.iterdir())) + 1:02d}-{slug}.log"
    step.log = str(log.relative_to(out))
    t0 = time.monotonic()
    with open(log, "w", encoding="utf-8", errors="replace") as f:
        f.write(f"$ {shell_join(step.command)}\n")
        f.flush()
        proc = subprocess.Popen(step.command, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                start_new_session=True)
        try:
            step.rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _end(proc)
            step.rc = proc.returncode if proc.returncode not in (None, 0) else 124
            step.error = f"timed out after {timeout:.0f} s (ended; what finished is recorded)"
        except KeyboardInterrupt:  # its own session: Ctrl-C reached only this process, so end it here
            _end(proc)
            raise
    step.seconds = time.monotonic() - t0
    if step.rc != 0 and not step.error:
        step.error = error_line(log.read_text(encoding="utf-8", errors="replace"), step.rc)
    return step


def _end(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGINT, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:  # already gone
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def error_line(output: str, rc: int | None) -> str:
    """The line that says why a command failed: its last ``error: ...`` line, else its last line."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith("error:") or re.match(r"^[A-Za-z_.]*(Error|Exception)\b", ln):
            return printable(ln, 300)
    return printable(lines[-1], 300) if lines else f"exit {rc}"


def nvml_step(out: Path, label: str, rehearse: bool = False) -> tuple[Step, dict]:
    """The fingerprint and the sampler for a second against the real driver (``machine.json``).

    Args:
        out: The check's folder.
        label: The machine label recorded.
        rehearse: No GPU is expected (the step passes without one).

    Returns:
        (the step, the fingerprint).
    """
    from bench.measure.machine import fingerprint
    from bench.measure.sampler import Sampler
    from bench.model.ratios import gpu_percentiles
    from bench.model.results import message_line
    from bench.model.safefile import atomic_write_text

    step = Step("NVML: fingerprint and sampler")
    t0 = time.monotonic()
    fp = fingerprint(label)
    sampler = Sampler(interval=0.1, gpu=True, energy=False)
    with sampler:
        time.sleep(1.0)
    samples = sampler.samples
    atomic_write_text(out / "machine.json", message_line({"machine": fp, "samples": samples}) + "\n")
    step.log = "machine.json"
    step.seconds = time.monotonic() - t0
    gpus = fp.get("gpus") or []
    read = [g for s in samples for g in (s.get("gpus") or []) if isinstance(g, dict)]
    unavailable = sorted({k for g in read for k, v in g.items() if v == "unavailable"})
    bad = [k for k in unavailable if k in SAMPLER_NEEDS]
    p = gpu_percentiles(samples)
    names = ", ".join(f"{g.get('name')} (driver {g.get('driver_version')}, CUDA {g.get('cuda_driver_version')})"
                      for g in gpus if isinstance(g, dict))
    step.note = (f"{len(gpus)} GPU(s): {names or 'none'}; {len(samples)} samples, "
                 f"{len(read)} GPU readings, util p50 {_num(p.get('gpu_util_p50'))} %"
                 + (f"; unavailable here: {', '.join(unavailable)}" if unavailable else ""))
    if not gpus and rehearse:
        step.rc, step.note = 0, f"rehearsal: NVML lists no GPU ({fp.get('gpu_status') or 'no reason given'})"
    elif not gpus:
        step.rc, step.error = 1, f"NVML lists no GPU ({fp.get('gpu_status') or 'no reason given'})"
    elif not read or len(read) < len(samples) * len(gpus):
        step.rc, step.error = 1, f"the sampler read no GPU in {len(samples) - len(read)} of {len(samples)} samples"
    elif bad:
        step.rc, step.error = 1, f"NVML fields unavailable: {', '.join(bad)}"
    else:
        step.rc = 0
    return step, fp


def plan_runs(workloads: Sequence[str], backends: Sequence[str], rehearse: bool, results: Path) -> list[Step]:
    """The ``bench run`` steps: each workload on each backend, ``gpu`` (``cpu`` when rehearsing) and
    the backend's multi-device strategy."""
    from bench.backends.base import MULTI_DEVICE

    multi = {b: d for d, b in MULTI_DEVICE.items()}
    steps = []
    for workload in workloads:
        for backend in backends:
            devices = ",".join(["cpu" if rehearse else "gpu"] + ([multi[backend]] if backend in multi else []))
            args = [workload, "--size", "quick", "--backend", backend, "--device", devices,
                    "-p", WORKLOADS[workload], "--out", str(results), "--offline", "--quiet",
                    "--trial-timeout", str(TRIAL_TIMEOUT_S), "--label", "gpu-check"]
            steps.append(Step(f"bench run {' '.join(args[:9])}", [sys.executable, "-m", "bench", "run", *args]))
    return steps


def _pytest_plugin_args() -> list[str]:
    """``-p bench.pytest.plugin`` where xpubench is not installed (its entry point then is missing)."""
    try:
        registered = any(ep.value.startswith("bench.pytest") for ep in metadata.entry_points(group="pytest11"))
    except TypeError:  # Python 3.9's entry_points() takes no group
        registered = False
    return [] if registered else ["-p", "bench.pytest.plugin"]


def tests_step(out: Path) -> Step:
    """``pytest -m requires_gpu`` over the test files that use the marker (junit XML beside the log),
    on every installed backend (``--xpu-backend all``: the plugin's default, tensorflow, may be absent).

    Only those files are collected: a test module that needs a framework this machine lacks (say
    TensorFlow) would otherwise be a collection error unrelated to the GPU.
    """
    xml = out / "pytest-requires-gpu.xml"
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py")
                   if "requires_gpu" in p.read_text(encoding="utf-8", errors="replace"))
    cmd = [sys.executable, "-m", "pytest", *files, "-m", "requires_gpu", "-q", "-rA", "-p", "no:cacheprovider",
           "--continue-on-collection-errors", f"--junitxml={xml}", *_pytest_plugin_args(), "--xpu-backend", "all"]
    return Step("pytest -m requires_gpu", cmd)


def junit_note(path: Path) -> tuple[str, list[str]]:
    """(``"2 passed, 1 failed, 3 skipped"``, the failed tests with their first message line) from junit XML."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        return f"no test report ({type(exc).__name__})", []
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    failed = []
    for case in root.iter("testcase"):
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        if bad is not None:
            counts["failed"] += 1
            message = (bad.get("message") or bad.text or "").strip().splitlines()
            failed.append(f"{case.get('classname', '')}::{case.get('name', '')}: {message[0] if message else '?'}")
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    return ", ".join(f"{n} {k}" for k, n in counts.items()), [printable(f, 300) for f in failed]


# ---------------------------------------------------------------- summary


def _num(v, digits: int = 0) -> str:
    return f"{v:.{digits}f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"


def _cell(v) -> str:
    return printable(" ".join(str(v).split()), 400).replace("|", "\\|")


def run_rows(results: Path) -> list[list[str]]:
    """One row per run of every result file in ``results``, read through ``bench.model.results.load``:
    file, workload, backend, device, processes, status, trials ok, wall s, GPU util p50, first failure."""
    from bench.model import results as model

    rows = []
    for path in sorted(results.glob("*.json")):
        try:
            result = model.load(path)
        except UsageError as exc:  # ResultFileError: the one line naming the file and the problem
            rows.append([path.name, "-", "-", "-", "-", "unreadable", "-", "-", "-", str(exc)])
            continue
        for run in result.runs:
            s = run.strategy
            bad = next((t for t in run.trials if not t.ok), None)
            why = run.skipped or (f"{bad.error.kind}: {bad.error.message}" if bad is not None else "")
            ok = sum(1 for t in run.trials if t.ok)
            rows.append([path.name, run.workload, run.backend, s.get("device", "-"), s.get("processes", "-"),
                         run.status, f"{ok}/{len(run.trials)}", _num(run.summary.wall_s, 1),
                         _num(run.summary.gpu_util_p50) if run.summary.gpu_util_p50 is not None else "not sampled",
                         why])
    return rows


def summary_text(steps: Sequence[Step], results: Path, facts: Sequence[str] = ()) -> str:
    """The one-page ``summary.md``: facts, each step (status, seconds, error line or note), each run.

    Args:
        steps: The check's steps, run or not.
        results: The folder of result files the runs wrote.
        facts: Lines about the machine and the check (GPUs, backends, wheels installed).
    """
    failed = [s for s in steps if s.status == "failed"]
    not_run = [s for s in steps if s.status == "not run"]
    lines = [f"# xpubench GPU check: {_cell(socket.gethostname())}, {time.strftime('%Y-%m-%d %H:%M')}", ""]
    lines += [f"- {_cell(f)}" for f in facts]
    lines += [f"- steps: {len(steps)}, {len(failed)} failed, {len(not_run)} not run; "
              f"{sum(s.seconds for s in steps):.0f} s", ""]
    lines += ["## Steps", "", "| step | status | s | error line / what it found | log |", "|---|---|---|---|---|"]
    for s in steps:
        lines.append(f"| {_cell(s.name)} | {s.status}{'' if s.rc in (None, 0) else f' (exit {s.rc})'} | "
                     f"{s.seconds:.0f} | {_cell(s.error or s.note)} | {_cell(s.log)} |")
    rows = run_rows(results)
    lines += ["", "## Runs (from the result files)", ""]
    if rows:
        lines += ["| file | workload | backend | device | processes | status | trials ok | wall s | GPU util p50 % "
                  "| skipped / first failure |", "|---|---|---|---|---|---|---|---|---|---|"]
        lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    else:
        lines.append("No result file was written.")
    return "\n".join(lines) + "\n"


def write_summary(out: Path, steps: Sequence[Step], facts: Sequence[str] = ()) -> Path:
    """Writes ``out/summary.md`` atomically (see :func:`summary_text`) and returns its path."""
    from bench.model.safefile import atomic_write_text

    path = out / "summary.md"
    atomic_write_text(path, summary_text(steps, out / "results", facts))
    return path


# ---------------------------------------------------------------- the check


def _backend_facts(fp: dict, probes: dict[str, dict]) -> list[str]:
    out = []
    for name, facts in (fp.get("backends") or {}).items():
        build = facts.get("build") or {}
        cuda = f"CUDA {build['cuda']}" if build.get("cuda") else "no CUDA in its build"
        seen = probes.get(name)
        if seen is None:
            sees = "not checked (--backends)"
        elif seen["gpus"]:
            sees = f"sees {', '.join(seen['gpus'])}"
        else:
            sees = "sees no GPU" if seen["why"].endswith("sees no GPU") else seen["why"]
        out.append(f"{name} {facts.get('version')} ({cuda}): {sees}")
    return out


def preflight(args: argparse.Namespace) -> tuple[list[str], list[str], dict[str, dict]]:
    """Installs missing packages from ``--wheels``, then finds the backends and asks each for GPUs.

    Returns:
        (requirements installed, backends to check, each backend's probe answer).

    Raises:
        UsageError: pip failed, an unknown backend, no GPU (unless rehearsing), no keras, no backend.
    """
    installed_now = install_wheels(args.wheels) if args.wheels else []
    from bench.backends.registry import parse_backends
    from bench.measure.nvml import nvml

    backends = parse_backends(args.backends)
    nv = nvml()
    probes = probe_backends(backends)
    if not args.rehearse and not nv.available and not any(p["gpus"] for p in probes.values()):
        why = "; ".join([nv.reason] + [p["why"] for p in probes.values()])
        raise UsageError(f"no GPU here ({why}): this check needs an NVIDIA GPU (--rehearse runs it on the CPU)")
    if importlib.util.find_spec("keras") is None:
        raise UsageError("keras is not installed (pip install keras, or give --wheels DIR holding its wheels)")
    try:
        (args.out / "results").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create --out {str(args.out)!r} ({exc.strerror or exc})") from None
    return installed_now, backends, probes


def run_steps(args: argparse.Namespace, backends: Sequence[str], probes: dict[str, dict], steps: list[Step],
              facts: list[str], t0: float) -> None:
    """Runs the check's steps in order, appending each to ``steps`` as it ends.

    Args:
        args: The parsed options.
        backends: The backends to run on.
        probes: What each backend said it sees (:func:`probe_backends`), for ``facts``.
        steps: Filled with the steps, run or not.
        facts: Extended with a line per backend (version, build, GPUs it sees).
        t0: When the check started (``time.monotonic()``), for ``--time-limit``.
    """
    out, env = args.out, _child_env()

    def left(reserve: float = 0.0) -> float:
        return args.time_limit - (time.monotonic() - t0) - reserve

    try:
        step, fp = nvml_step(out, "gpu-check", args.rehearse)
    except Exception as exc:  # noqa: BLE001  # broad on purpose: a check records what broke and goes on
        step, fp = Step("NVML: fingerprint and sampler", rc=1, error=f"{type(exc).__name__}: {exc}"), {}
    steps.append(step)
    facts += _backend_facts(fp, probes)
    for run in plan_runs(args.workloads, backends, args.rehearse, out / "results"):
        if left(RESERVE_S) < MIN_RUN_S:
            run.error = f"time limit: {max(left(RESERVE_S), 0):.0f} s left of --time-limit {args.time_limit:g}"
        else:
            print(f"gpu_check: {run.name}", flush=True)
            run_command(run, out, min(RUN_CAP_S, left(RESERVE_S)), env)
        steps.append(run)
    tests = tests_step(out)
    print(f"gpu_check: {tests.name}", flush=True)
    run_command(tests, out, min(TESTS_TIMEOUT_S, max(40.0, left(15.0))), env)
    tests.note, failed = junit_note(out / "pytest-requires-gpu.xml")
    if failed:
        tests.error = f"{tests.note}; " + "; ".join(failed[:3])
    steps.append(tests)
    files = sorted((out / "results").glob("*.json"))
    report = Step("bench report", [sys.executable, "-m", "bench", "report", *map(str, files),
                                   "-o", str(out / "report.html"), "--keep-going"])
    if files:
        print(f"gpu_check: {report.name}", flush=True)
        run_command(report, out, min(REPORT_TIMEOUT_S, max(20.0, left())), env)
        report.note = "report.html"
    else:
        report.error = "no result file to report"
    steps.append(report)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the check. Returns 0 (every step passed), 1 (some failed), 2 (bad input, no GPU) or 130
    (interrupted: the summary holds what finished)."""
    t0 = time.monotonic()
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        installed_now, backends, probes = preflight(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    facts = [f"mode: {'REHEARSAL on the CPU (no GPU path checked)' if args.rehearse else 'GPU'}; "
             f"time limit {args.time_limit:.0f} s; python {sys.version.split()[0]} ({sys.executable})",
             f"wheels installed from {args.wheels}: {', '.join(installed_now) or 'none needed'}" if args.wheels
             else "wheels: none given"]
    if missing():
        facts.append(f"missing packages: {', '.join(missing())}")
    steps: list[Step] = []
    code = None
    try:
        run_steps(args, backends, probes, steps, facts, t0)
    except KeyboardInterrupt:
        facts.append("interrupted (Ctrl-C): the steps after the last one listed did not run")
        code = 130
    path = write_summary(args.out, steps, facts)
    bad = [s for s in steps if s.status != "ok"]
    print(f"gpu_check: {len(steps) - len(bad)} of {len(steps)} steps ok; summary: {path}")
    return code or (1 if bad else 0)


if __name__ == "__main__":
    sys.exit(main())
