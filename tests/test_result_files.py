"""Hostile result files (issue 17): `bench report`, `bench compare`, `bench run --resume` and a stray
file in --out answer one ``error:`` line (exit 2) or do the right thing, never an internal error,
a hang or a huge allocation; a corrupt file given to --resume is left byte for byte as it was.

The files start as real output: a real `bench run` of the test workload (tests/xpubench_testload.py)
and a real pytest-benchmark JSON written by the xpubench plugin; each case changes one field.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

import xpubench_testload  # noqa: E402

from bench.model import results  # noqa: E402
from bench.cli import main  # noqa: E402
from bench.errors import UsageError  # noqa: E402

WL = xpubench_testload.FaultyWorkload.name


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", XPUBENCH_OFFLINE="1", COLUMNS="200")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(TESTS)])
    return env


def _python_m_bench(args, timeout=120) -> subprocess.CompletedProcess:
    code = ("import runpy, xpubench_testload; xpubench_testload.enable(); "
            "runpy.run_module('bench', run_name='__main__', alter_sys=True)")
    return subprocess.run([sys.executable, "-c", code, *args], env=_env(), capture_output=True, text=True,
                          timeout=timeout)


PB_TEST = """
def test_testload(xpu, xpu_processes):
    run = xpu("xpubench_testload", processes=xpu_processes, options={"plan": "ok,ok", "sleep": "0.05"})
    assert run.summary["failed"] == 0
"""
PB_CONFTEST = "import xpubench_testload\nxpubench_testload.enable()\n"


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """A real result file (1 and 2 processes, one failed trial, a sampler timeline) and a real
    pytest-benchmark JSON of the plugin; a calibration is added as bench.measure.calibrate.summary writes it."""
    from bench.measure.calibrate import summary

    d = tmp_path_factory.mktemp("real")
    proc = _python_m_bench(["run", WL, "--opt", "plan=ok,raise,ok", "--opt", "sleep=0.2", "-p", "1,2",
                            "--sample-interval", "0.05", "--label", "lab", "--out", str(d / "res"), "-q"], timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]  # the raising trial, recorded
    (path,) = (d / "res").iterdir()
    doc = json.loads(path.read_text())
    assert doc["runs"][0]["samples"], "the sampler recorded nothing"
    doc["machine"]["calibration"] = summary({
        "parallel_efficiency": {"1": 1.0, "2": 0.9}, "matmul_gflops": 40.0, "matmul_gflops_1thread": 20.0,
        "measured_at": "2024-01-01T00:00:00+00:00", "usable_cores": 2, "load_avg_1m": 0.1})
    (d / "pb").mkdir()
    (d / "pb" / "test_testload.py").write_text(PB_TEST)
    (d / "pb" / "conftest.py").write_text(PB_CONFTEST)
    pb_out = d / "pb.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--xpu-processes=1", "--xpu-label=pbbox",
         f"--xpu-out={d / 'pbres'}", f"--benchmark-json={pb_out}", "test_testload.py"],
        cwd=d / "pb", env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    pb = json.loads(pb_out.read_text())
    assert pb["benchmarks"][0]["extra_info"]["xpubench"]
    return {"result": doc, "pb": pb, "dir": d}


def _set(doc, path, value):
    doc = copy.deepcopy(doc)
    obj = doc
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value
    return doc


def _nested(depth: int):
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


HUGE = 10**400
# (name, format, path, value, what the error line says)
CASES = [
    ("calibration_400_digits", "result", ("machine", "calibration", "parallel_efficiency", "2"), HUGE, "out of range"),
    ("gflops_400_digits", "result", ("machine", "calibration", "matmul_gflops"), HUGE, "out of range"),
    ("sample_400_digits", "result", ("runs", 0, "samples", 0, "tree_rss_bytes"), HUGE, "out of range"),
    ("trial_wall_400_digits", "result", ("runs", 0, "trials", 0, "wall_s"), HUGE, "out of range"),
    ("processes_30_digits", "result", ("runs", 0, "strategy", "processes"), 10**30, "out of range"),
    ("sample_t_null", "result", ("runs", 0, "samples", 0, "t"), None, "field 't' should be a number, not null"),
    ("cpu_percent_strings", "result", ("runs", 0, "samples", 0, "cpu_percent"), ["x"], "cpu_percent[0]"),
    ("version_list", "result", ("tool", "version"), ["1", "2"], "field 'version' should be a string, not a list"),
    ("tensorflow_list", "result", ("machine", "tensorflow"), ["2.16"], "field 'tensorflow' should be a string"),
    ("calibration_list", "result", ("machine", "calibration"), [1, 2], "field 'calibration' should be an object"),
    ("extra_600_deep", "result", ("runs", 0, "trials", 0, "extra"), {"x": _nested(600)}, "nested deeper than 64"),
    ("config_600_deep", "result", ("runs", 1, "trials", 0, "config", "deep"), _nested(600), "nested deeper than 64"),
    ("near_float_max", "result", ("runs", 0, "samples", 0, "t"), 1.7e308, "out of range"),
    ("pb_mean_400_digits", "pb", ("benchmarks", 0, "stats", "mean"), HUGE, "out of range"),
    ("pb_stddev_400_digits", "pb", ("benchmarks", 0, "stats", "stddev"), HUGE, "out of range"),
    ("pb_stddev_list", "pb", ("benchmarks", 0, "stats", "stddev"), [1], "field 'stddev' should be a number"),
    ("pb_summary_string", "pb", ("benchmarks", 0, "extra_info", "xpubench", "summary", "wall_s"), "slow",
     "field 'wall_s' should be a number"),
    ("pb_machine_version_list", "pb", ("machine_info", "xpubench", "xpubench"), ["0.1"], "field 'xpubench' should be a string"),
    ("pb_threads_string", "pb", ("benchmarks", 0, "extra_info", "xpubench", "strategy", "threads_per_process"), "two",
     "threads_per_process"),
    ("pb_extra_600_deep", "pb", ("benchmarks", 0, "extra_info", "deep"), _nested(600), "nested deeper than 64"),
]


def _write_case(real, tmp_path, name, fmt, path, value) -> Path:
    doc = _set(real["result" if fmt == "result" else "pb"], path, value)
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps(doc))
    return p


def _one_error(code, out, err, *needles) -> str:
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    assert code == 2, (code, lines)
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert len(lines[0]) < 500
    return lines[0]


def test_the_real_files_load_and_report(real, tmp_path, capsys):
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps(real["result"]))
    pb = tmp_path / "pb.json"
    pb.write_text(json.dumps(real["pb"]))
    assert main(["report", str(ok), str(pb), "-o", str(tmp_path / "r.html")]) == 0
    assert "parallel ceiling 1p 100 %, 2p 90 %" in (tmp_path / "r.html").read_text()


@pytest.mark.parametrize("command, name, fmt, path, value, needle", [
    pytest.param(command, *case, id=f"{command}-{case[0]}")
    for command in ("report", "compare", "resume") for case in CASES
    if not (command == "resume" and case[1] == "pb")  # --resume reads xpubench result files only
])
def test_hostile_field_values_give_one_error_line(real, tmp_path, capsys, monkeypatch, command, name, fmt, path, value,
                                                  needle):
    from bench.model import workload

    monkeypatch.setitem(workload._REGISTRY, WL, xpubench_testload.FaultyWorkload)
    bad = _write_case(real, tmp_path, name, fmt, path, value)
    digest = hashlib.sha256(bad.read_bytes()).hexdigest()
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_set(real["result"], ("machine", "label"), "other")))
    argv = {
        "report": ["report", str(bad), "-o", str(tmp_path / "r.html")],
        "compare": ["compare", str(good), str(bad)],
        "resume": ["run", WL, "--opt", "plan=ok,raise,ok", "--opt", "sleep=0.2", "-p", "1,2", "--resume", str(bad)],
    }[command]
    code = main(argv)
    out, err = capsys.readouterr()
    _one_error(code, out, err, f"{bad.name}: ", needle)
    assert hashlib.sha256(bad.read_bytes()).hexdigest() == digest
    assert not (tmp_path / "r.html").exists()


# ---------------------------------------------------------------- --resume of a corrupt file


CORRUPTIONS = {
    "truncated_half": lambda b: b[: len(b) // 2],
    "truncated_to_one_byte": lambda b: b[:1],
    "empty": lambda b: b"",
    "garbage_appended": lambda b: b + b"\x00\xffgarbage",
    "nul_bytes": lambda b: b"\x00" * len(b),
    "byte_flipped": lambda b: b.replace(b'"runs"', b'"run\xff"', 1),
    "brace_removed": lambda b: b.rstrip()[:-1],
    "trial_ids_duplicated": lambda b: json.dumps(_dup_ids(json.loads(b))).encode(),
}


def _dup_ids(doc):
    doc["runs"][0]["trials"][1]["id"] = doc["runs"][0]["trials"][0]["id"]
    return doc


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_resume_of_a_corrupt_file_refuses_and_leaves_it_byte_for_byte(real, tmp_path, capsys, monkeypatch, corruption):
    from bench.model import workload

    monkeypatch.setitem(workload._REGISTRY, WL, xpubench_testload.FaultyWorkload)
    f = tmp_path / "res" / "r.json"
    f.parent.mkdir()
    f.write_bytes(CORRUPTIONS[corruption](json.dumps(real["result"], indent=1).encode()))
    before = (hashlib.sha256(f.read_bytes()).hexdigest(), f.stat().st_mtime_ns, f.stat().st_mode)
    code = main(["run", WL, "--opt", "plan=ok,raise,ok", "--opt", "sleep=0.2", "-p", "1,2", "--resume", str(f)])
    out, err = capsys.readouterr()
    _one_error(code, out, err, "r.json: ")
    assert (hashlib.sha256(f.read_bytes()).hexdigest(), f.stat().st_mtime_ns, f.stat().st_mode) == before
    assert os.listdir(f.parent) == ["r.json"]


# ---------------------------------------------------------------- files that are not regular files


def _specials(tmp_path: Path) -> dict[str, Path]:
    link = tmp_path / "zero.json"
    link.symlink_to("/dev/zero")
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    return {"link_to_dev_zero": link, "fifo": fifo, "dev_zero": Path("/dev/zero")}


WHAT = {"link_to_dev_zero": "is a character device, not a regular file", "fifo": "is a FIFO (named pipe), not a regular file",
        "dev_zero": "is a character device, not a regular file"}


@pytest.mark.parametrize("command", ["report", "compare", "resume"])
@pytest.mark.parametrize("kind", sorted(WHAT))
def test_non_regular_inputs_are_refused_without_reading(real, tmp_path, command, kind):
    """In a subprocess with a time limit: a FIFO opened blocking would hang, /dev/zero read whole would eat RAM."""
    special = _specials(tmp_path)[kind]
    good = tmp_path / "good.json"
    good.write_text(json.dumps(real["result"]))
    argv = {"report": ["report", str(special), "-o", str(tmp_path / "r.html")],
            "compare": ["compare", str(good), str(special)],
            "resume": ["run", WL, "--opt", "plan=ok,raise,ok", "-p", "1,2", "--resume", str(special)]}[command]
    proc = _python_m_bench(argv, timeout=60)
    _one_error(proc.returncode, proc.stdout, proc.stderr, f"{special}: {WHAT[kind]}")
    assert not (tmp_path / "r.html").exists()


def test_stray_special_and_hostile_files_in_out_are_skipped_by_the_memory_guard(real, tmp_path):
    """A sweep reads earlier results in --out (memory guard): a FIFO, a link to /dev/zero, a file of
    huge numbers or deep nesting there are skipped, not read, and not touched."""
    from bench.sweep.sweep import Sweep
    from bench.model.strategy import make_strategies
    from bench.model import workload

    out = tmp_path / "res"
    out.mkdir()
    os.mkfifo(out / "fifo.json")
    (out / "zero.json").symlink_to("/dev/zero")
    for name, fmt, path, value, _ in CASES[:12]:
        if fmt == "result":
            _write_case(real, out, name, fmt, path, value)
    before = {p.name: (os.lstat(p).st_ino, os.lstat(p).st_mtime_ns) for p in out.iterdir()}
    made = {}

    def construct():
        saved = workload._REGISTRY.get(WL)
        workload._REGISTRY[WL] = xpubench_testload.FaultyWorkload
        try:
            made["sweep"] = Sweep(WL, "quick", make_strategies(["cpu"], [1], 1), out_dir=out, options={"plan": "ok"})
        except BaseException as exc:  # pragma: no cover - reported below
            made["error"] = exc
        finally:
            if saved is None:
                workload._REGISTRY.pop(WL, None)

    t = threading.Thread(target=construct, daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "reading --out blocked (a FIFO opened blocking?)"
    assert "error" not in made, made.get("error")
    assert made["sweep"].path is None  # and no file claimed before the sweep runs
    assert {p.name: (os.lstat(p).st_ino, os.lstat(p).st_mtime_ns) for p in out.iterdir()} == before


# ---------------------------------------------------------------- sizes: a huge label, a file over the limit


def _peak_rss_of(argv) -> tuple[int, subprocess.CompletedProcess]:
    code = ("import resource, runpy, sys; "
            "exit_code = 0\n"
            "try:\n    runpy.run_module('bench', run_name='__main__', alter_sys=True)\n"
            "except SystemExit as e:\n    exit_code = e.code\n"
            "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
            "sys.exit(exit_code)")
    proc = subprocess.run([sys.executable, "-c", code, *argv], env=_env(), capture_output=True, text=True, timeout=300)
    peak = [line for line in proc.stderr.splitlines() if line.startswith("PEAK ")]
    return int(peak[-1].split()[1]) * 1024, proc


def test_a_huge_label_is_kept_in_the_file_but_bounded_in_the_report(real, tmp_path):
    size = 40 * 2**20
    label = "L" * size
    big = tmp_path / "big.json"
    big.write_text(json.dumps(_set(real["result"], ("machine", "label"), label)))
    small = tmp_path / "small.json"
    small.write_text(json.dumps(real["result"]))
    base_peak, proc = _peak_rss_of(["report", str(small), "-o", str(tmp_path / "small.html")])
    assert proc.returncode == 0, proc.stderr[-2000:]
    peak, proc = _peak_rss_of(["report", str(big), "-o", str(tmp_path / "big.html")])
    assert proc.returncode == 0, proc.stderr[-2000:]
    html = (tmp_path / "big.html").read_text()
    small_html = (tmp_path / "small.html").read_text()
    assert len(html) < len(small_html) + 200_000  # not one copy of the label per mention
    assert "L" * 190 + "…~" in html and "L" * 201 not in html  # cut, with a hash that tells labels apart
    assert peak - base_peak < 8 * size, (peak, base_peak)  # was 27x the file before
    assert results.load(big).machine["label"] == label  # the file keeps the whole label


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(real, tmp_path, capsys, monkeypatch):
    f = tmp_path / "r.json"
    f.write_text(json.dumps(real["result"]))
    monkeypatch.setenv(results.ENV_MAX_MB, str(f.stat().st_size / 2**20 / 2))
    code = main(["report", str(f), "-o", str(tmp_path / "r.html")])
    out, err = capsys.readouterr()
    _one_error(code, out, err, "r.json: too large for a result file", f"set {results.ENV_MAX_MB}")
    monkeypatch.setenv(results.ENV_MAX_MB, "lots")
    with pytest.raises(UsageError, match="bad XPUBENCH_MAX_RESULT_MB 'lots'"):
        results.load(f)
    monkeypatch.delenv(results.ENV_MAX_MB)
    assert results.max_file_bytes() == results.MAX_FILE_BYTES == 256 * 2**20
    assert results.load(f).runs
