"""benchmarks/gpu_check.py where there is no GPU: the "no GPU" path for real (one line, exit 2,
nothing written or run), bad arguments (one line, exit 2), the NVML step against the fake driver,
and the summary written from real result files (tests/data/results-2026-12-01), a real failing
``bench`` command and a real pytest junit report."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
DATA = TESTS / "data" / "results-2026-12-01"
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from fakes.nvml_fixture import forget, install  # noqa: E402

from bench.model import results  # noqa: E402


def _load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


gpu_check = _load_script()


@pytest.fixture
def fake_nvml(monkeypatch):
    yield lambda **config: install(monkeypatch, **config)
    forget()


@pytest.mark.slow
def test_without_a_gpu_it_says_so_in_one_line_and_exits_2(tmp_path):
    """For real, on this machine: NVML finds no GPU and each installed backend, asked in its own
    process, sees none. One line, exit 2, no folder created, so nothing was run."""
    from bench.measure.nvml import Nvml

    if Nvml().available:
        pytest.skip("NVML sees a GPU on this machine: the no-GPU path cannot run here")
    out = tmp_path / "check"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: no GPU here ("), lines
    assert "this check needs an NVIDIA GPU" in lines[0]
    from bench.backends.registry import installed_backends

    for backend in installed_backends():  # every installed backend was asked
        assert f"{backend} " in lines[0]
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--nope"], "error: unrecognized arguments: --nope"),
        (["--time-limit", "soon"], "error: bad --time-limit 'soon'"),
        (["--time-limit", "5"], "error: bad --time-limit 5 (expected 60 to 86400 seconds)"),
        (["--workloads", "pose_classifier"], "error: bad --workloads 'pose_classifier' (choose from: lorenz,"),
        (["--workloads", ","], "error: bad --workloads ','"),
        (["--wheels", "{empty}"], "holds no .whl file"),
        (["--wheels", "{file}"], "is not a folder"),
        (["--out", "{file}"], "is not a folder"),
        (["--out", "{full}"], "is not empty (give a new folder)"),
        (["--backends", "mxnet"], "error: unknown backend 'mxnet' (choose from: tensorflow, jax, torch)"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(tmp_path, capsys, argv, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old.json").write_text("{}")
    (tmp_path / "file").write_text("x")
    argv = [a.format(empty=tmp_path / "empty", file=tmp_path / "file", full=tmp_path / "full") for a in argv]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert gpu_check.main(argv + ["--out", str(tmp_path / "new")] if "--out" not in argv else argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing created


def test_the_nvml_step_reads_every_gpu_and_names_a_field_nvml_cannot_give(fake_nvml, tmp_path):
    fake_nvml(gpus=[{"name": "Fake H200", "util": lambda n: 40.0}, {"name": "Fake T4"}])
    step, fp = gpu_check.nvml_step(tmp_path, "box")
    assert step.status == "ok" and step.error == "", step
    assert [g["name"] for g in fp["gpus"]] == ["Fake H200", "Fake T4"]
    assert step.note.startswith("2 GPU(s): Fake H200 (driver 550.54.15, CUDA 12.4), Fake T4")
    assert step.note.endswith("util p50 45 %; unavailable here: energy_mj")  # no energy counter: a fact, no failure
    assert "backends" in fp and (tmp_path / "machine.json").is_file()
    forget()
    fake_nvml(gpus=[{"name": "Fake H200"}], fail={"nvmlDeviceGetUtilizationRates": 3})
    step, _ = gpu_check.nvml_step(tmp_path, "box")
    assert step.status == "failed" and step.error == "NVML fields unavailable: util_percent"
    forget()
    fake_nvml(init_error=12)
    step, _ = gpu_check.nvml_step(tmp_path, "box")
    assert step.status == "failed" and step.error.startswith("NVML lists no GPU (")
    step, _ = gpu_check.nvml_step(tmp_path, "box", rehearse=True)
    assert step.status == "ok" and step.note.startswith("rehearsal: NVML lists no GPU")


def _gpu_result(fake_nvml, out: Path) -> Path:
    """A result file whose run summary carries a GPU utilisation, made by the producers: the sampler
    reading a (fake) driver and ``bench.model.ratios.summarize``, saved by ``results.save``."""
    from bench.measure.sampler import Sampler
    from bench.model.ratios import summarize
    from bench.model.results import Result, RunRecord, TrialRecord

    fake_nvml(gpus=[{"name": "Fake H200", "util": lambda n: 60.0}])
    sampler = Sampler(interval=0.05, energy=False)
    with sampler:
        time.sleep(0.3)
    trial = TrialRecord(id="t0", config={"id": "t0"}, wall_s=0.3, samples=10)
    run = RunRecord(workload="lorenz", size="quick", strategy={"device": "gpu", "processes": 1, "backend": "jax"},
                    trials=(trial,), samples=tuple(sampler.samples),
                    summary=summarize([trial], sampler.samples, wall_s=0.3, processes=1))
    path = out / "lorenz-quick-gpu.json"
    results.save(Result(machine={"label": "box"}, runs=(run,)), path)
    return path


def test_summary_lists_steps_with_their_error_line_and_every_run_of_the_result_files(fake_nvml, tmp_path):
    out = tmp_path / "check"
    (out / "results").mkdir(parents=True)
    for f in DATA.glob("*.json"):
        shutil.copy(f, out / "results" / f.name)
    gpu_file = _gpu_result(fake_nvml, out / "results")
    env = gpu_check._child_env()
    bad = gpu_check.run_command(
        gpu_check.Step("bench run no_such_workload", [sys.executable, "-m", "bench", "run", "no_such_workload",
                                                      "--out", str(tmp_path / "unused")]), out, 120, env)
    good = gpu_check.run_command(gpu_check.Step("bench --version", [sys.executable, "-m", "bench", "--version"]),
                                 out, 120, env)
    late = gpu_check.Step("bench run predict_modes", error="time limit: 0 s left of --time-limit 60")
    assert bad.rc == 2 and bad.error.startswith("error: unknown workload 'no_such_workload'"), bad
    assert good.rc == 0 and good.error == ""
    assert (out / bad.log).read_text().startswith("$ ")  # the command, then its output

    path = gpu_check.write_summary(out, [bad, good, late], facts=["jax 0.10.2 (no CUDA in its build): sees no GPU"])
    text = path.read_text()
    assert text.startswith("# xpubench GPU check: ")
    assert "- jax 0.10.2 (no CUDA in its build): sees no GPU" in text
    assert "- steps: 3, 1 failed, 1 not run;" in text
    assert f"| bench run no_such_workload | failed (exit 2) | " in text and bad.error in text
    assert "| bench --version | ok | " in text
    assert "| bench run predict_modes | not run | 0 | time limit: 0 s left of --time-limit 60 |" in text

    rows = [ln for ln in text.splitlines() if ln.startswith("| ") and ".json |" in ln]
    expected = 0
    for f in sorted((out / "results").glob("*.json")):
        result = results.load(f)
        for run in result.runs:
            expected += 1
            ok = sum(1 for t in run.trials if t.ok)
            util = run.summary.gpu_util_p50
            cells = [f.name, run.workload, run.backend, str(run.strategy["device"]), str(run.strategy["processes"]),
                     run.status, f"{ok}/{len(run.trials)}", f"{run.summary.wall_s:.1f}",
                     "not sampled" if util is None else f"{util:.0f}"]
            assert any(ln.startswith("| " + " | ".join(cells) + " |") for ln in rows), (cells, rows)
    assert len(rows) == expected and expected > len(list(DATA.glob("*.json")))  # every run, several per file
    assert results.load(gpu_file).runs[0].summary.gpu_util_p50 == 60.0
    assert f"| {gpu_file.name} | lorenz | jax | gpu | 1 | complete | 1/1 | 0.3 | 60 |" in text


def test_summary_of_a_check_that_wrote_no_result(tmp_path):
    (tmp_path / "results").mkdir()
    text = gpu_check.summary_text([gpu_check.Step("NVML: fingerprint and sampler", rc=0, note="1 GPU(s)")],
                                  tmp_path / "results")
    assert "| NVML: fingerprint and sampler | ok | 0 | 1 GPU(s) |" in text
    assert text.rstrip().endswith("No result file was written.")


def test_junit_note_counts_a_real_pytest_report(pytester):
    pytester.makepyfile(
        """
        import pytest

        def test_ok():
            pass

        def test_bad():
            assert 1 == 2, "one is not two"

        @pytest.mark.skip(reason="no GPU")
        def test_skipped():
            pass
        """
    )
    xml = pytester.path / "junit.xml"
    pytester.runpytest_subprocess(f"--junitxml={xml}")
    note, failed = gpu_check.junit_note(xml)
    assert note == "1 passed, 1 failed, 1 skipped"
    assert len(failed) == 1 and failed[0].startswith("test_junit_note_counts_a_real_pytest_report::test_bad: ")
    assert "one is not two" in failed[0]
    assert gpu_check.junit_note(pytester.path / "missing.xml") == ("no test report (FileNotFoundError)", [])


def test_missing_packages_leave_tensorflow_out_and_name_keras():
    needs = gpu_check.needed()
    names = [gpu_check._dist_name(r) for r in needs]
    assert "keras" in names and "pytest" in names and "psutil" in names and "nvidia-ml-py" in names
    assert "tensorflow" not in names  # the check runs on whichever backends are installed
    assert gpu_check.missing() == []  # everything is installed in the test environment


def test_the_plan_runs_gpu_and_each_backends_multi_device_strategy(tmp_path):
    steps = gpu_check.plan_runs(["lorenz", "predict_modes"], ["tensorflow", "jax", "torch"], False, tmp_path)
    devices = {(s.command[s.command.index("run") + 1], s.command[s.command.index("--backend") + 1]):
               (s.command[s.command.index("--device") + 1], s.command[s.command.index("-p") + 1]) for s in steps}
    assert devices == {
        ("lorenz", "tensorflow"): ("gpu,mirrored", "1,2"), ("lorenz", "jax"): ("gpu,data_parallel", "1,2"),
        ("lorenz", "torch"): ("gpu", "1,2"), ("predict_modes", "tensorflow"): ("gpu,mirrored", "1"),
        ("predict_modes", "jax"): ("gpu,data_parallel", "1"), ("predict_modes", "torch"): ("gpu", "1"),
    }
    assert all(s.command[:4] == [sys.executable, "-m", "bench", "run"] and "--offline" in s.command
               and s.command[s.command.index("--out") + 1] == str(tmp_path) for s in steps)
    rehearsal = gpu_check.plan_runs(["lorenz"], ["jax"], True, tmp_path)
    assert rehearsal[0].command[rehearsal[0].command.index("--device") + 1] == "cpu,data_parallel"


@pytest.mark.slow
def test_a_rehearsal_out_of_time_still_runs_the_tests_and_writes_the_summary(tmp_path):
    """The whole check, for real, on the CPU, with a time limit that leaves no time for a run: every
    run is listed as not run, the requires_gpu tests and the summary still happen, exit 1."""
    out = tmp_path / "check"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--rehearse", "--backends", "torch", "--workloads", "lorenz",
                           "--time-limit", "60", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == f"gpu_check: 2 of 4 steps ok; summary: {out / 'summary.md'}"
    text = (out / "summary.md").read_text()
    assert "- mode: REHEARSAL on the CPU (no GPU path checked); time limit 60 s;" in text
    assert "| NVML: fingerprint and sampler | ok |" in text
    assert "| bench run lorenz --size quick --backend torch --device cpu -p 1,2 | not run | 0 | time limit: " in text
    assert "| pytest -m requires_gpu | ok |" in text
    assert "| bench report | not run | 0 | no result file to report |" in text
    assert text.rstrip().endswith("No result file was written.")
    assert (out / "machine.json").is_file() and (out / "pytest-requires-gpu.xml").is_file()
