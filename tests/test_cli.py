"""The command line end to end: list, run, suite (the README's main job), python -m bench."""

import os
import subprocess
import sys

from bench.model import results
from bench.model.workload import workload_names


def _bench(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, cwd=cwd, timeout=600,
                          env=None if env is None else {**os.environ, **env})


def test_list_names_every_workload_device_and_engine():
    out = _bench("list")
    assert out.returncode == 0, out.stderr
    for name in workload_names():
        assert f"  {name} " in out.stdout
    assert "  cpu " in out.stdout and "  mirrored " in out.stdout
    assert "ray" in out.stdout
    assert "usable cores" in out.stdout


def test_suite_runs_workloads_and_writes_results_and_report(tmp_path):
    cache = tmp_path / "xdg-cache"  # no calibration cached yet: the suite measures one first, once
    out = _bench("suite", "--workloads", "lorenz", "--opt", "epochs=1", "-p", "1,2", "--out", str(tmp_path), "-q",
                 env={"XDG_CACHE_HOME": str(cache)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert list((cache / "xpubench").glob("calibration-*.json"))
    files = sorted(tmp_path.glob("lorenz-quick-*.json"))
    assert len(files) == 1
    result = results.load(files[0])
    assert [r.strategy["processes"] for r in result.runs] == [1, 2]
    assert result.machine["calibration"]["parallel_efficiency"]["2"] > 0  # the headline's ceiling
    assert "this machine's ceiling" in out.stdout and "ceiling not measured" not in out.stdout
    assert all(len(r.trials) == 4 and r.summary["failed"] == 0 for r in result.runs)
    report = tmp_path / "report.html"
    html = report.read_text()
    assert html.lstrip().lower().startswith("<!doctype html")
    assert "lorenz" in html and "data:image/png;base64," in html
    assert f"report: {report}" in out.stdout
    # the summary table printed on the console carries the same speedup as the file
    speedup = result.runs[1].summary["speedup"]
    assert f"{speedup:.2f}×" in out.stdout


def test_python_dash_m_and_version():
    out = _bench("--version")
    assert out.returncode == 0 and out.stdout.startswith("xpubench ")
    out = _bench()
    assert out.returncode == 2 and "usage: bench" in out.stdout
    bad = _bench("report", "/nonexistent/x.json", "-o", "/tmp/never.html")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and bad.stderr.startswith("error: ")
