"""Output paths (issue 17): concurrent runs into one --out each keep their file; a device, FIFO,
socket or a link to one is never replaced by a report, a PNG or a result; a full disk names the
path and leaves no partial file; a long --label gives a bounded, safe file name (the whole label
stays in the file) and error lines stay short.

Result files here come from real ``bench run`` processes of the test workload (tests/xpubench_testload.py).
"""

from __future__ import annotations

import errno
import hashlib
import multiprocessing
import os
import stat
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

from bench.sweep import sweep as runner  # noqa: E402
from bench.cli import main  # noqa: E402

WL = xpubench_testload.FaultyWorkload.name
N = 8
FROZEN = "20240101-120000"

# `python -m bench` with the test workload registered and the clock of result names frozen at one
# second, so concurrent runs all want the same file name
_FROZEN_BENCH = """
import datetime as d, runpy, xpubench_testload
import bench.sweep.sweep as r
class _Frozen(d.datetime):
    @classmethod
    def now(cls, tz=None):
        return d.datetime(2024, 1, 1, 12, 0, 0, tzinfo=tz)
r._dt = type("clock", (), {"datetime": _Frozen, "timezone": d.timezone})
xpubench_testload.enable()
runpy.run_module("bench", run_name="__main__", alter_sys=True)
"""


def _env() -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", XPUBENCH_OFFLINE="1", COLUMNS="200")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(TESTS)])
    return env


def _bench(args, frozen=True) -> subprocess.Popen:
    code = _FROZEN_BENCH if frozen else (
        "import runpy, xpubench_testload; xpubench_testload.enable(); "
        "runpy.run_module('bench', run_name='__main__', alter_sys=True)")
    return subprocess.Popen([sys.executable, "-c", code, *args], env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _one_error(code: int, err: str, expected_code: int = 2) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert code == expected_code, (code, err)
    return lines[0]


# ---------------------------------------------------------------- concurrent runs into one --out


@pytest.fixture(scope="module")
def concurrent_runs(tmp_path_factory):
    """Three real `bench run` of the test workload at once into one --out, same label, same second."""
    out = tmp_path_factory.mktemp("concurrent") / "results"
    args = ["run", WL, "--opt", "plan=ok,ok", "--opt", "sleep=0", "-p", "1", "--label", "same", "--out", str(out), "-q"]
    procs = [_bench(args) for _ in range(3)]
    done = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
    for code, stdout, stderr in done:
        assert code == 0, stdout[-2000:] + stderr[-2000:]
    return out, done


def test_concurrent_runs_into_one_out_each_keep_their_file(concurrent_runs):
    out, done = concurrent_runs
    files = sorted(out.iterdir())
    stem = f"{WL}-quick-{FROZEN}-same"
    assert [f.name for f in files] == [f"{stem}-2.json", f"{stem}-3.json", f"{stem}.json"]
    assert len({hashlib.sha256(f.read_bytes()).hexdigest() for f in files}) == 3
    pids = set()
    for f in files:
        res = results.load(f)
        assert res.complete and [t.id for t in res.runs[0].trials] == ["t0-ok", "t1-ok"]
        pids.update(w["pid"] for w in res.runs[0].workers)
    assert len(pids) == 3  # three different sweeps, not one file written three times
    printed = sorted(line for _, stdout, _ in done for line in stdout.splitlines() if line.startswith("result: "))
    assert printed == sorted(f"result: {f}" for f in files)  # each run names the file it wrote


class _FrozenClock:
    class datetime:
        @staticmethod
        def now(tz=None):
            import datetime as d

            return d.datetime(2024, 1, 1, 12, 0, 0, tzinfo=tz)


def _claim_and_save(args):
    directory, i, start = args
    runner._dt = _FrozenClock  # this is a spawned process of its own
    start.wait()
    path = runner.result_path(Path(directory), "lorenz", "quick", "lab")
    results.save(results.Result(machine={"label": "lab", "i": i}), path)
    return str(path)


def test_result_path_claims_from_threads_at_the_same_second_are_distinct(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "_dt", _FrozenClock)
    barrier = threading.Barrier(N)
    got = []

    def claim(i):
        barrier.wait()
        path = runner.result_path(tmp_path, "lorenz", "quick", "lab")
        results.save(results.Result(machine={"label": "lab", "i": i}), path)
        got.append(path)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == N == len(list(tmp_path.iterdir()))
    assert sorted(results.load(p).machine["i"] for p in got) == list(range(N))


def test_result_path_claims_from_processes_at_the_same_second_are_distinct(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Event()
        with ctx.Pool(N) as pool:
            pending = pool.map_async(_claim_and_save, [(str(tmp_path), i, start) for i in range(N)])
            start.set()
            got = pending.get(timeout=120)
    assert len(set(got)) == N == len(list(tmp_path.iterdir()))
    assert all(Path(p).name.startswith(f"lorenz-quick-{FROZEN}-lab") for p in got)
    assert sorted(results.load(p).machine["i"] for p in got) == list(range(N))


# ---------------------------------------------------------------- outputs that are not regular files


def _chardev(path: Path) -> Path:
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # what /dev/null is
    except PermissionError as exc:
        pytest.skip(f"mknod not permitted here ({exc})")
    return path


def _identity(path: Path) -> tuple:
    st = os.lstat(path)
    return (st.st_ino, st.st_mode, st.st_rdev)


@pytest.fixture
def result_file(concurrent_runs):
    out, _ = concurrent_runs
    return sorted(out.iterdir())[0]


@pytest.mark.parametrize("kind", ["chardev", "fifo", "link_to_chardev"])
@pytest.mark.parametrize("command", ["report", "compare"])
def test_report_output_that_is_not_a_regular_file_is_refused_and_left_alone(tmp_path, capsys, result_file, kind, command):
    target = tmp_path / "report.html"
    if kind == "chardev":
        _chardev(target)
        what = "a character device"
    elif kind == "fifo":
        os.mkfifo(target)
        what = "a FIFO (named pipe)"
    else:
        dev = _chardev(tmp_path / "null")
        target.symlink_to(dev)
        what = f"a link to a character device ({dev})"
    before = _identity(target)
    files = [str(result_file)] if command == "report" else [str(result_file), str(result_file)]
    code = main([command, *files, "-o", str(target)])
    out, err = capsys.readouterr()
    line = _one_error(code, err)
    assert line == f"error: {str(target)!r} is {what}, not a regular file; choose a file path"
    assert _identity(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["report.html"] + (["null"] if kind.startswith("link") else []))


def test_a_fifo_in_png_dir_is_not_replaced_and_nothing_is_written(tmp_path, capsys, result_file):
    pngs = tmp_path / "png"
    assert main(["report", str(result_file), "-o", str(tmp_path / "first.html"), "--png-dir", str(pngs)]) == 0
    capsys.readouterr()
    names = sorted(p.name for p in pngs.iterdir())
    assert names and all(n.endswith(".png") for n in names)
    fifo = pngs / names[-1]
    fifo.unlink()
    os.mkfifo(fifo)
    code = main(["report", str(result_file), "-o", str(tmp_path / "second.html"), "--png-dir", str(pngs)])
    line = _one_error(code, capsys.readouterr().err)
    assert line == f"error: {str(fifo)!r} is a FIFO (named pipe), not a regular file; choose a file path"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert not (tmp_path / "second.html").exists()  # every target is checked before any is written
    assert sorted(p.name for p in pngs.iterdir()) == names


def test_suite_report_path_that_is_a_fifo_is_refused_before_anything_runs(tmp_path, capsys):
    fifo = tmp_path / "report.html"
    os.mkfifo(fifo)
    code = main(["suite", "--workloads", "lorenz", "-p", "1", "--out", str(tmp_path / "res"), "--report", str(fifo)])
    line = _one_error(code, capsys.readouterr().err)
    assert "is a FIFO (named pipe), not a regular file; choose a file path" in line
    assert not (tmp_path / "res").exists()


def test_calibrate_out_that_is_a_device_is_refused_before_measuring(tmp_path, capsys):
    dev = _chardev(tmp_path / "cal.json")
    code = main(["calibrate", "--out", str(dev)])
    line = _one_error(code, capsys.readouterr().err)
    assert line == f"error: {str(dev)!r} is a character device, not a regular file; choose a file path"
    assert stat.S_ISCHR(os.lstat(dev).st_mode)


# ---------------------------------------------------------------- a full disk


@pytest.mark.parametrize("code_", [errno.ENOSPC, errno.EDQUOT, errno.EROFS])
def test_report_on_a_full_disk_names_the_path_and_keeps_the_old_report(tmp_path, capsys, monkeypatch, result_file, code_):
    out = tmp_path / "report.html"
    out.write_text("the old report")

    def full(fd):
        raise OSError(code_, os.strerror(code_))

    monkeypatch.setattr(os, "fsync", full)
    code = main(["report", str(result_file), "-o", str(out)])
    line = _one_error(code, capsys.readouterr().err)
    assert line == f"error: cannot write {str(out)!r} ({os.strerror(code_)})"
    assert out.read_text() == "the old report"
    assert os.listdir(tmp_path) == ["report.html"]  # no temporary file left


def test_run_whose_first_write_fails_leaves_no_empty_file(tmp_path, capsys, monkeypatch):
    from bench.model import workload

    monkeypatch.setitem(workload._REGISTRY, WL, xpubench_testload.FaultyWorkload)

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    out = tmp_path / "res"
    code = main(["run", WL, "--opt", "plan=ok", "-p", "1", "--out", str(out), "-q"])
    line = _one_error(code, capsys.readouterr().err, expected_code=74)
    assert "cannot write result file" in line and "(No space left on device); nothing was written" in line
    assert list(out.iterdir()) == []  # the claimed name was given back


# ---------------------------------------------------------------- long and odd labels


def test_name_part_bounds_and_sanitises():
    long = "x" * 10_000
    part = runner.name_part(long)
    assert len(part.encode()) <= runner.NAME_LABEL_BYTES and part.startswith("x" * 40) and "~" in part
    assert runner.name_part(long + "y") != part  # the hash tells long labels apart
    assert runner.name_part("lab") == "lab"
    assert runner.name_part("../../etc/passwd") == "_.._etc_passwd"  # no '/', no leading '.'
    assert runner.name_part("a\x1b[2J\nb\u202e") == "a__2J_b_"
    assert len(runner.name_part("é" * 100).encode()) <= runner.NAME_LABEL_BYTES


def test_a_long_label_with_slashes_and_escapes_keeps_whole_in_the_file(tmp_path):
    label = "lab/\x1b[31mred\x07" + "L" * 10_000
    out = tmp_path / "res"
    proc = _bench(["run", WL, "--opt", "plan=ok", "--opt", "sleep=0", "-p", "1", "--label", label,
                   "--out", str(out), "-q"], frozen=False)
    code, stdout, stderr = proc.wait(timeout=300), proc.stdout.read(), proc.stderr.read()
    assert code == 0, stderr[-2000:]
    (f,) = out.iterdir()
    assert len(f.name.encode()) < 160 and "/" not in f.name and "\x1b" not in f.name
    assert f.name.startswith(f"{WL}-quick-") and "-lab___31mred_LLLL" in f.name
    assert results.load(f).machine["label"] == label  # the whole label, in the file
    assert "\x1b" not in stdout + stderr


def test_a_long_out_path_gives_a_short_error_line(tmp_path, capsys):
    out = tmp_path / ("d" * 10_000)
    code = main(["run", "lorenz", "--out", str(out)])
    line = _one_error(code, capsys.readouterr().err)
    assert len(line) < 400 and "…" in line
