"""No string from a result file or the command line reaches the terminal raw.

A real ``bench run`` (the test workload, 3 short trials, one failing) is given a label, an output
directory, a trial id and so an error message that hold a clear-screen sequence, a window-title
OSC, a one-byte CSI (C1), a carriage return and a right-to-left override. Its output, and that of
``bench compare`` / ``bench report`` on its result file (and on a copy whose label, CPU name and
notes a hostile user edited), must hold none of those characters raw, and the label must still
be recognisable in its escaped form.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

EVIL = "\x1b[2J\x1b]0;title\x07\x9b\r\u202e"
SHOWN = "\\x1b[2J\\x1b]0;title\\x07\\x9b\\r\\u202e"  # how EVIL is printed
# what must never be printed raw: C0 controls but newline, DEL, C1, bidi controls
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "XPUBENCH_FAULT"}
    env.update(COLUMNS="250", TF_CPP_MIN_LOG_LEVEL="3", XPUBENCH_OFFLINE="1", **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(TESTS)])
    return env


def _bench(args, cwd, **env) -> subprocess.CompletedProcess:
    """``python -m bench ARGS`` with the test workload registered (output kept as bytes)."""
    code = ("import runpy, xpubench_testload; xpubench_testload.enable(); "
            "runpy.run_module('bench', run_name='__main__', alter_sys=True)")
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, env=_env(**env),
                          timeout=300)


def _clean(proc: subprocess.CompletedProcess) -> str:
    """stdout + stderr as text, after checking neither holds a raw control character."""
    text = ""
    for name in ("stdout", "stderr"):
        data = getattr(proc, name)
        assert b"\x1b" not in data and b"\x07" not in data and b"\r" not in data, (name, data[-2000:])
        decoded = data.decode("utf-8")
        bad = sorted({hex(ord(c)) for c in RAW.findall(decoded)})
        assert not bad, (name, bad, decoded[-2000:])
        text += decoded
    return text


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """(CompletedProcess, result path) of a real run whose label, --out, trial id and error hold EVIL."""
    cwd = tmp_path_factory.mktemp("escapes")
    bad_trial = f"t1-k{EVIL}"
    proc = _bench(["run", "xpubench_testload", "--label", f"lab{EVIL}", "--out", f"out{EVIL}",
                   "--opt", f"plan=ok,k{EVIL},ok", "--opt", "sleep=0.05", "--sample-interval", "0.1"],
                  cwd, XPUBENCH_FAULT=f"raise:{bad_trial}")
    (path,) = (cwd / f"out{EVIL}").glob("*.json")
    return proc, path


@pytest.mark.slow
def test_run_prints_escaped_path_trial_id_and_error(hostile_run):
    proc, path = hostile_run
    assert proc.returncode == 1, proc.stderr[-2000:]  # one trial failed, on purpose
    text = _clean(proc)
    assert f"trial t1-k{SHOWN} failed (exception): RuntimeError: injected fault in trial t1-k" in text
    assert f"result: out{SHOWN}/" in text
    assert "1 of 3 trials failed" in text
    doc = json.loads(path.read_text())
    assert doc["machine"]["label"] == f"lab{EVIL}"  # the file keeps the value whole
    assert any(t["id"] == f"t1-k{EVIL}" for t in doc["runs"][0]["trials"])


@pytest.fixture(scope="module")
def two_machines(hostile_run, tmp_path_factory):
    """The real result file and a copy a hostile user edited (label, CPU name, notes, trial ids)."""
    _, a = hostile_run
    doc = json.loads(a.read_text())
    doc["machine"]["label"] = f"other{EVIL}"
    doc["machine"]["cpu"] = f"cpu{EVIL}"
    for run in doc["runs"]:
        run["label"] = f"other{EVIL}"
        run["notes"] = list(run.get("notes", [])) + [f"note{EVIL}"]
        for t in run["trials"]:
            if t.get("error"):
                t["error"]["message"] = f"message{EVIL}" * 50
    b = tmp_path_factory.mktemp("machine-b") / f"b{EVIL}.json"
    b.write_text(json.dumps(doc))
    return a, b


@pytest.mark.slow
def test_compare_prints_labels_escaped(two_machines, tmp_path):
    a, b = two_machines
    proc = _bench(["compare", str(a), str(b)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = _clean(proc)
    assert f"A = lab{SHOWN}: " in text and f"B = other{SHOWN}: cpu{SHOWN}, " in text
    assert "xpubench_testload (quick)" in text  # the table is there


@pytest.mark.slow
def test_report_and_its_warnings_print_escaped(two_machines, tmp_path):
    a, b = two_machines
    proc = _bench(["report", str(a), str(b), f"missing{EVIL}.json", "--keep-going", "-o", f"r{EVIL}.html"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = _clean(proc)
    assert f"report: r{SHOWN}.html" in text
    assert "warning: skipped missing\\x1b[2J" in text
    assert (tmp_path / f"r{EVIL}.html").is_file()


@pytest.mark.parametrize("args", [
    ["report", f"missing{EVIL}.json"],
    ["compare", f"a{EVIL}.json", "b.json"],
    ["run", f"lorenz{EVIL}"],
    ["run", "lorenz", "--processes", f"1,{EVIL}"],
    ["run", "lorenz", "--out", f"/proc/no{EVIL}/x"],
    ["report", "/dev/null", "-o", f"/proc/no{EVIL}/r.html"],
])
def test_error_lines_print_escaped(args, tmp_path):
    proc = _bench(args, tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    text = _clean(proc)
    assert text.startswith("error: ") and text.count("\n") == 1, text
    assert "\\x1b[2J" in text or "\\x1b" in text


def test_a_worker_that_could_not_be_ended_is_shown_escaped():
    """The engines' ``worker_not_ended`` event reaches the console as one line, its reason escaped."""
    import io

    from rich.console import Console

    from bench.console import ConsoleReporter

    buf = io.StringIO()
    reporter = ConsoleReporter(Console(file=buf, width=200, color_system=None), quiet=True)
    reporter("worker_not_ended", worker=3, reason="still alive 30 s after SIGKILL \x1b[2J")
    text = buf.getvalue()
    assert "worker 3 could not be ended" in text and "still alive 30 s after SIGKILL" in text
    assert "\x1b" not in text and "\\x1b[2J" in text
