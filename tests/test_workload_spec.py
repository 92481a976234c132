"""Your own workload class (bench/model/workload_spec.py): ``bench run path/file.py:Class`` and
``package.module:Class``, validated in the parent, imported by the same spec in every worker; the
spec and its file's SHA-256 recorded, ``--resume`` refusing a changed file; ``xpu(Class)``.

The sweeps are real (workers import TensorFlow); the workload itself is a few NumPy sums, so a
trial takes milliseconds and the cost is worker start-up.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench.cli import main
from bench.model import results, workload_spec
from bench.model.workload import Workload, get_workload
from support.errors import one_error_line

ROOT = Path(__file__).resolve().parent.parent

USER_WORKLOAD = textwrap.dedent('''
    import os

    from bench.model.workload import TrialOutput, Workload
    from helper_mod import SCALE  # a neighbour module: the worker puts this file's folder on sys.path


    class NotAWorkload:
        pass


    class SumWorkload(Workload):
        name = "sum_squares"
        description = "sums of squares"
        options = ("fail",)
        quality_key = "total"
        throughput_unit = "items/s"

        def trials(self, size, options=None):
            if (options or {}).get("fail") == "trials":
                raise ValueError("no trials today")
            return [{"id": f"n{n}", "n": n} for n in (1000, 2000, 3000)]

        def run_trial(self, config, ctx):
            import numpy as np

            if ctx.options.get("fail") == config["id"]:
                raise RuntimeError("trial " + config["id"] + " fails on purpose")
            x = np.arange(config["n"], dtype="float64") * SCALE
            return TrialOutput(quality={"total": float((x ** 2).sum())}, samples=config["n"],
                               extra={"module": __name__, "pid": os.getpid()})
''')
SCALE = 3.0


def expected_total(n: int) -> float:
    return float(sum((i * SCALE) ** 2 for i in range(n)))


@pytest.fixture
def user_dir(tmp_path):
    """A folder holding the user's workload file and the neighbour module it imports."""
    d = tmp_path / "mine"
    d.mkdir()
    (d / "helper_mod.py").write_text(f"SCALE = {SCALE}\n")
    (d / "my_benchmarks.py").write_text(USER_WORKLOAD)
    (d / "broken.py").write_text("x = 1 / 0\n")
    return d


_one_error = one_error_line


# ---------------------------------------------------------------- the parent's checks (no worker starts)


def test_parse_spec_forms(tmp_path):
    f = workload_spec.parse_spec("sub/file.py:My")
    assert f.is_file and f.target == str(Path("sub/file.py").resolve()) and f.attr == "My"
    assert f.text == f"{Path('sub/file.py').resolve()}:My"
    m = workload_spec.parse_spec("pkg.mod:Outer.Inner")
    assert not m.is_file and m.target == "pkg.mod" and m.attr == "Outer.Inner"
    for bad in ("file.py", "file.py:", ":Class", "pkg.mod:not-a-name", "not a module:X"):
        with pytest.raises(Exception, match="bad workload spec"):
            workload_spec.parse_spec(bad)


def test_a_file_spec_is_loaded_once_named_and_hashed(user_dir):
    spec = f"{user_dir / 'my_benchmarks.py'}:SumWorkload"
    w = get_workload(spec)
    assert w.name == "sum_squares" and w.spec == spec
    assert w.spec_file == str(user_dir / "my_benchmarks.py")
    assert type(w).__module__.startswith(workload_spec.MODULE_PREFIX)  # never the bare stem: no clash
    assert type(get_workload(spec)) is type(w)  # imported once per process
    assert [c["id"] for c in w.checked_trials("quick", {})] == ["n1000", "n2000", "n3000"]


def test_spec_of_maps_a_class_to_what_a_worker_imports(user_dir):
    cls = type(get_workload(f"{user_dir / 'my_benchmarks.py'}:SumWorkload"))
    assert workload_spec.spec_of(cls) == f"{user_dir / 'my_benchmarks.py'}:SumWorkload"
    from workloads.lorenz import LorenzWorkload

    assert workload_spec.spec_of(LorenzWorkload) == "workloads.lorenz:LorenzWorkload"  # a package's module: by name

    def make():
        class Local(Workload):
            pass
        return Local

    with pytest.raises(Exception, match="inside a function"):
        workload_spec.spec_of(make())


@pytest.mark.parametrize("argv, needles", [
    (["run", "my_benchmarks.py"], ["'my_benchmarks.py'", "FILE.py:Class", "my_benchmarks.py:MyWorkload"]),
    (["run", "DIR/missing.py:SumWorkload"], ["missing.py", "does not exist"]),
    (["run", "no_such_module_xyz.bench:W"], ["'no_such_module_xyz.bench'", "not found", "PYTHONPATH"]),
    (["run", "DIR/my_benchmarks.py:Nope"], ["no class 'Nope'", "Workload classes there: SumWorkload"]),
    (["run", "DIR/my_benchmarks.py:NotAWorkload"], ["'NotAWorkload'", "not a Workload subclass",
                                                    "Workload classes there: SumWorkload"]),
    (["run", "DIR/broken.py:W"], ["cannot import", "broken.py", "ZeroDivisionError: division by zero"]),
    (["run", "DIR/my_benchmarks.py:SumWorkload", "--opt", "fail=trials"],
     ["trials('quick') raised ValueError: no trials today"]),
    (["run", "DIR/my_benchmarks.py:SumWorkload", "--opt", "epochs=3"], ["'epochs'", "choose from", "fail"]),
], ids=["no-colon", "missing-file", "missing-module", "no-such-class", "not-a-workload", "import-raises",
        "trials-raise", "unknown-option"])
def test_bad_specs_are_one_error_line_and_nothing_is_written(user_dir, tmp_path, monkeypatch, capsys, argv, needles):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    argv = [a.replace("DIR/", f"{user_dir}/") for a in argv]
    code = main(argv + ["-o", str(cwd / "results")])
    _one_error(capsys, code, *needles)
    assert list(cwd.iterdir()) == []


# ---------------------------------------------------------------- real sweeps


def test_file_spec_runs_in_every_worker_and_is_recorded(user_dir, tmp_path, monkeypatch, capsys):
    """1 and 2 processes: each worker imports the file by path (its neighbour module too); a trial
    that raises is a failed trial with its traceback tail; the spec and the file's SHA-256 are recorded."""
    out = tmp_path / "results"
    monkeypatch.chdir(user_dir)
    code = main(["run", "my_benchmarks.py:SumWorkload", "-p", "1,2", "-q", "--opt", "fail=n2000", "-o", str(out)])
    assert code == 1  # a trial failed: everything written, exit 1
    (path,) = out.glob("sum_squares-quick-*.json")
    res = results.load(path)
    assert [r.strategy["processes"] for r in res.runs] == [1, 2]
    for run in res.runs:
        by_id = {t.id: t for t in run.trials}
        assert set(by_id) == {"n1000", "n2000", "n3000"}
        for n in (1000, 3000):
            t = by_id[f"n{n}"]
            assert t.ok and t.quality["total"] == pytest.approx(expected_total(n), rel=1e-12)
            assert t.extra["module"].startswith(workload_spec.MODULE_PREFIX)
        failed = by_id["n2000"]
        assert failed.error.kind == "exception" and "trial n2000 fails on purpose" in failed.error.message
        assert "RuntimeError" in failed.error.stderr_tail and "my_benchmarks.py" in failed.error.stderr_tail
    assert len({t.extra["pid"] for t in res.runs[1].trials if t.ok}) >= 1
    identity = res.decisions[0]
    file = user_dir / "my_benchmarks.py"
    assert identity["spec"] == f"{file}:SumWorkload"
    assert identity["files"]["workload"] == {"path": str(file), "sha256": hashlib.sha256(file.read_bytes()).hexdigest()}


def test_resume_refuses_a_changed_workload_file(user_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "results"
    spec = f"{user_dir / 'my_benchmarks.py'}:SumWorkload"
    assert main(["run", spec, "-p", "1", "-q", "-o", str(out)]) == 0
    (path,) = out.glob("*.json")
    capsys.readouterr()
    assert main(["run", spec, "-p", "1", "-q", "-o", str(out), "--resume", str(path)]) == 0  # unchanged: fine
    resumed = results.load(path)
    assert resumed.decisions[-1]["kind"] == "resume" and resumed.decisions[-1]["files"] == resumed.decisions[0]["files"]
    before = path.read_bytes()
    (user_dir / "my_benchmarks.py").write_text(USER_WORKLOAD + "\n# changed\n")
    capsys.readouterr()
    code = main(["run", spec, "-p", "1", "-q", "-o", str(out), "--resume", str(path)])
    line = _one_error(capsys, code, "workload file", str(user_dir / "my_benchmarks.py"), "has changed since",
                      "without --resume")
    assert hashlib.sha256(USER_WORKLOAD.encode()).hexdigest()[:12] in line
    assert path.read_bytes() == before and sorted(out.iterdir()) == [path]


def test_module_spec_from_pythonpath(tmp_path):
    """``bench run package.module:Class`` with the package on PYTHONPATH (and a relative import in it)."""
    pkg = tmp_path / "lib" / "userbench"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "helper_mod.py").write_text(f"SCALE = {SCALE}\n")
    (pkg / "benchmarks.py").write_text(USER_WORKLOAD.replace("from helper_mod import", "from .helper_mod import"))
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "lib"), str(ROOT)]))
    proc = subprocess.run([sys.executable, "-m", "bench", "run", "userbench.benchmarks:SumWorkload", "-p", "2", "-q",
                           "-o", "out"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = (cwd / "out").glob("sum_squares-quick-*.json")
    res = results.load(path)
    (run,) = res.runs
    assert {t.extra["module"] for t in run.trials} == {"userbench.benchmarks"}
    assert sorted(t.quality["total"] for t in run.trials) == pytest.approx([expected_total(n) for n in (1000, 2000, 3000)])
    assert res.decisions[0]["spec"] == "userbench.benchmarks:SumWorkload"
    assert res.decisions[0]["files"]["workload"]["path"] == str(pkg / "benchmarks.py")


# ---------------------------------------------------------------- the xpu fixture


XPU_TESTS = textwrap.dedent('''
    from bench.model.workload import TrialOutput, Workload


    class InTestFile(Workload):
        name = "in_test_file"
        quality_key = "total"

        def trials(self, size, options=None):
            return [{"id": "a", "n": 10}, {"id": "b", "n": 20}]

        def run_trial(self, config, ctx):
            return TrialOutput(quality={"total": float(sum(range(config["n"])))}, samples=config["n"],
                               extra={"module": __name__})


    def test_class(xpu):
        run = xpu(InTestFile, processes=2)
        assert run.workload == "in_test_file" and run.summary.failed == 0
        assert sorted(t.quality["total"] for t in run.trials) == [45.0, 190.0]


    def test_spec_string(xpu):
        run = xpu("SPEC", processes=1)
        assert run.workload == "sum_squares" and run.summary.failed == 0


    def test_not_a_workload(xpu):
        xpu(dict)
''')


def test_xpu_takes_a_class_or_a_spec(pytester, user_dir):
    from support.plugin import PLUGIN

    pytester.makepyfile(test_mine=XPU_TESTS.replace("SPEC", f"{user_dir / 'my_benchmarks.py'}:SumWorkload"))
    out = pytester.path / "bench.json"
    result = pytester.runpytest_subprocess(*PLUGIN, "-p", "no:cacheprovider", "-q", f"--benchmark-json={out}",
                                           timeout=600)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*xpu('dict', processes=1, device='cpu'): dict is not a Workload subclass*"])
    doc = json.loads(out.read_text())
    got = {b["name"]: b["extra_info"]["xpubench"] for b in doc["benchmarks"]}
    assert got["test_class"]["workload"] == "in_test_file" and got["test_class"]["strategy"]["processes"] == 2
    assert got["test_spec_string"]["workload"] == "sum_squares"


def test_plan_resume_compares_every_recorded_file_by_role():
    """A model file or data file recorded by the earlier sweep with other contents is refused, named
    (the same check as the workload file's above); a role the earlier sweep did not record is not."""
    from bench.errors import UsageError
    from bench.model.results import Result
    from bench.sweep.resume import plan_resume, recorded_files

    then = {"model_file": {"path": "/m/my_model.keras", "sha256": "a" * 64},
            "data": {"path": "/m/x.npy", "sha256": "c" * 64}}
    old = Result(machine={}, decisions=({"kind": "sweep", "workload": "model", "size": "quick", "files": then},))
    assert recorded_files(old) == then
    common = dict(workload="model", size="quick", version=1, strategies=[], configs=[], options={},
                  data_source=None, machine={}, where="old.json")
    plan_resume(old, **common, files=then)  # unchanged: fine
    plan_resume(old, **common, files={"model_file": then["model_file"], "workload": {"path": "/w.py", "sha256": "e" * 64}})
    with pytest.raises(UsageError) as err:
        plan_resume(old, **common, files={**then, "model_file": {"path": "/m/my_model.keras", "sha256": "b" * 64}})
    msg = str(err.value)
    assert "old.json was measured with model_file file /m/my_model.keras (sha256 aaaaaaaaaaaa)" in msg
    assert "has changed since (sha256 bbbbbbbbbbbb)" in msg
    later = old.replace(decisions=old.decisions + ({"kind": "resume", "files": {**then, "data": {"path": "/m/x.npy",
                                                                                                 "sha256": "d" * 64}}},))
    with pytest.raises(UsageError, match="data file /m/x.npy"):  # the latest record of a role is what is compared
        plan_resume(later, **common, files=then)
