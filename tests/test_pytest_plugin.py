"""The pytest plugin (bench/pytest/plugin.py), tested as pytest-benchmark tests itself: inner pytest
sessions through ``pytester`` (in-process where fast, a subprocess where a clean interpreter matters).

One real session (module fixture ``lorenz_session``) benchmarks the Lorenz quick sweep (1 epoch per
trial) at 1 and 2 processes, and several tests read its pytest-benchmark JSON and result files.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy  # noqa: F401  (imported before in-process pytester runs: C extensions load once per process)
import psutil
import pytest

import bench.measure.machine  # noqa: F401
import bench.sweep.sweep  # noqa: F401
import workloads.lorenz  # noqa: F401
from bench.pytest import plugin as pytest_plugin
from bench.model import results
from bench.model.results import Result, RunRecord, TrialError, TrialRecord
from bench.model.strategy import usable_cores
from bench.model.workload import suite_names

ROOT = Path(__file__).resolve().parent.parent
FAKES = Path(__file__).resolve().parent / "fakes"
CONTRACT_KEYS = {"workload", "size", "strategy", "summary", "quality", "data", "schema"}
FINALIZED = {"speedup", "efficiency", "baseline_wall_s", "repeats"}  # filled from the session's 1-process run


from support.plugin import PLUGIN


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def _pytest(args, cwd, timeout=600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *PLUGIN, *args]
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


# ---------------------------------------------------------------- one real session, shared

LORENZ_TEST = """
def test_lorenz(xpu, xpu_processes):
    run = xpu("lorenz", processes=xpu_processes)
    assert run.summary["failed"] == 0
"""


@pytest.fixture(scope="module")
def lorenz_session(tmp_path_factory):
    """A real session: Lorenz quick (1 epoch/trial) at 1 then 2 processes, label ``pytester-box``,
    sampler every 0.2 s."""
    d = tmp_path_factory.mktemp("xpu-session")
    (d / "test_lorenz_bench.py").write_text(LORENZ_TEST)
    out = d / "out.json"
    proc = _pytest(
        ["-q", "--xpu-processes=1,2", "--xpu-option=epochs=1", "--xpu-label=pytester-box", "--xpu-sample-interval=0.2",
         f"--xpu-out={d / 'results'}", f"--benchmark-json={out}", "test_lorenz_bench.py"],
        cwd=d,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    doc = json.loads(out.read_text())
    files = sorted((d / "results").glob("*.json"))
    by_processes = {}
    for f in files:
        result = results.load(f)
        by_processes[result.runs[0].strategy["processes"]] = result
    benches = {b["params"]["xpu_processes"]: b for b in doc["benchmarks"]}
    return SimpleNamespace(dir=d, path=out, doc=doc, benches=benches, results=by_processes, files=files, stdout=proc.stdout)


def test_session_ran_one_benchmark_and_one_result_file_per_strategy(lorenz_session):
    assert set(lorenz_session.benches) == {1, 2}
    assert set(lorenz_session.results) == {1, 2} and len(lorenz_session.files) == 2
    for n, b in lorenz_session.benches.items():
        assert b["name"] == f"test_lorenz[{n}p]"
        assert b["group"] == "lorenz-quick"
        assert b["stats"]["rounds"] == 1  # --xpu-rounds default: one sweep per round, no calibration


def test_extra_info_follows_the_contract(lorenz_session):
    for n, b in lorenz_session.benches.items():
        extra = b["extra_info"]
        xb = extra["xpubench"]
        assert set(xb) == CONTRACT_KEYS
        assert xb["schema"] == 1 and xb["workload"] == "lorenz" and xb["size"] == "quick"
        assert xb["strategy"] == {"device": "cpu", "processes": n, "threads_per_process": max(1, usable_cores() // n),
                                  "engine": "local", "backend": "tensorflow"}
        assert xb["data"]["source"] == "generated"
        assert set(xb["quality"]) == {"rmse"}
        # flat copies for readers of pytest-benchmark's own output
        s = xb["summary"]
        assert extra["throughput"] == s["throughput"] > 0
        assert extra["unit"] == s["throughput_unit"] == "samples/s"
        assert extra["speedup"] == s["speedup"] and extra["efficiency"] == s["efficiency"]
        assert extra["cpu_wall_ratio"] == s["cpu_wall_ratio"] > 0
        assert extra["peak_rss_bytes"] == s["peak_tree_rss_bytes"] > 0
        assert extra["quality"] == xb["quality"] and extra["data"] == xb["data"]
        assert extra["wall_s"] == s["wall_s"] and extra["rounds_wall_s"] == [s["wall_s"]]
        assert extra["startup_s"] == s["startup_s"]["median"] > 0


def test_extra_info_matches_the_sweeps_result_files(lorenz_session):
    for n, b in lorenz_session.benches.items():
        xb = b["extra_info"]["xpubench"]
        run = lorenz_session.results[n].runs[0]
        assert len(run.trials) == xb["summary"]["trials"] == 4 and all(t.ok for t in run.trials)
        expected = results.to_dict(lorenz_session.results[n])["runs"][0]["summary"]
        for key, value in expected.items():
            if key not in FINALIZED:
                assert xb["summary"][key] == value, key
        total = sum(t.samples for t in run.trials)
        assert math.isclose(xb["summary"]["throughput"], total / run.summary["wall_s"])
        assert math.isclose(xb["quality"]["rmse"], statistics.fmean(t.quality["rmse"] for t in run.trials))


def test_sample_interval_option_is_the_sweeps_interval(lorenz_session):
    for n, b in lorenz_session.benches.items():
        assert lorenz_session.results[n].runs[0].summary["sampler_interval_s"] == 0.2
        assert b["extra_info"]["xpubench"]["summary"]["sampler_interval_s"] == 0.2


def test_speedup_and_efficiency_use_the_same_sessions_1_process_run(lorenz_session):
    one = lorenz_session.benches[1]["extra_info"]["xpubench"]["summary"]
    two = lorenz_session.benches[2]["extra_info"]["xpubench"]["summary"]
    assert one["speedup"] == 1.0 and one["efficiency"] == 1.0
    assert two["baseline_wall_s"] == one["wall_s"]
    assert math.isclose(two["speedup"], one["wall_s"] / two["wall_s"])
    assert math.isclose(two["efficiency"], two["speedup"] / 2)
    # the result file of the 2-process sweep alone has no baseline
    assert lorenz_session.results[2].runs[0].summary["speedup"] is None


def test_pytest_benchmark_round_covers_worker_startup_and_the_sweep(lorenz_session):
    for b in lorenz_session.benches.values():
        s = b["extra_info"]["xpubench"]["summary"]
        assert b["stats"]["mean"] >= s["wall_s"] + s["startup_s"]["min"]


def test_machine_info_carries_the_fingerprint_and_tensorflow_build(lorenz_session):
    info = lorenz_session.doc["machine_info"]
    assert info["node"] == platform.node()  # pytest-benchmark's own fields are kept
    xm = info["xpubench"]
    assert xm["label"] == "pytester-box"
    assert xm["usable_cores"] == usable_cores() and xm["ram_bytes"] == psutil.virtual_memory().total
    assert xm["tensorflow"] == importlib.metadata.version("tensorflow")
    assert "cuda_version" in xm["tensorflow_build"]  # reported by a worker, CUDA build or not
    assert any("CPU" in d for d in xm["tensorflow_devices"])


def test_json_is_read_by_pytest_benchmark_compare(lorenz_session):
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_benchmark", "compare", "--columns=mean,rounds", str(lorenz_session.path)],
        capture_output=True, text=True, env=_env(), timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "test_lorenz[1p]" in proc.stdout and "test_lorenz[2p]" in proc.stdout


def test_json_round_trips_into_the_report_loader(lorenz_session):
    load = pytest.importorskip("reports.load")
    if not hasattr(load, "load_file"):
        pytest.skip("reports cannot load pytest-benchmark JSON yet")
    source = load.load_file(lorenz_session.path)
    assert source.kind == "pytest-benchmark" and source.label == "pytester-box"
    runs = {r.processes: r for r in source.runs}
    assert set(runs) == {1, 2}
    for n, r in runs.items():
        xb = lorenz_session.benches[n]["extra_info"]["xpubench"]
        assert (r.workload, r.size, r.device) == ("lorenz", "quick", "cpu")
        assert r.summary["speedup"] == xb["summary"]["speedup"]
        assert r.quality == xb["quality"]


def test_json_round_trips_into_bench_report(lorenz_session):
    html = lorenz_session.dir / "report.html"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "report", str(lorenz_session.path), "-o", str(html)],
        capture_output=True, text=True, env=_env(), timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    text = html.read_text()
    assert "pytester-box" in text and "lorenz" in text


# ---------------------------------------------------------------- options


@pytest.mark.parametrize(
    "arg, message",
    [
        ("--xpu-size=huge", "--xpu-size: unknown size 'huge' (choose from: quick, full)"),  # bench run's message
        ("--xpu-processes=0", "--xpu-processes: bad process count '0'"),
        ("--xpu-processes=two", "--xpu-processes: bad process count 'two'"),
        ("--xpu-processes=4-2", "--xpu-processes: bad process range '4-2'"),
        ("--xpu-device=tpu", "--xpu-device: unknown device 'tpu' (choose from: "),
        ("--xpu-label=  ", "--xpu-label: empty label"),
        ("--xpu-rounds=0", "--xpu-rounds: bad value '0'"),
        ("--xpu-warmup-rounds=-1", "--xpu-warmup-rounds: bad value '-1'"),
        ("--xpu-option=epochs", "--xpu-option: bad workload option 'epochs' (expected key=value)"),
        ("--xpu-sample-interval=0.01", "--xpu-sample-interval 0.01 is below the floor 0.05 s ("),
        ("--xpu-sample-interval=soon", "--xpu-sample-interval: bad sample interval 'soon' (expected a positive number"),
        ("--xpu-sample-interval=0", "--xpu-sample-interval: bad sample interval '0' (expected a positive number"),
    ],
)
def test_bad_option_fails_the_session_at_start_with_one_line(pytester, arg, message):
    pytester.makepyfile("def test_never():\n    raise AssertionError('ran')\n")
    result = pytester.runpytest(*PLUGIN, arg)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = [line for line in result.errlines if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("ERROR: " + message), lines[0]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert "ran" not in result.stdout.str()


def test_options_parametrise_xpu_device_and_xpu_processes(pytester):
    pytester.makepyfile(
        """
        import pytest

        def test_auto(xpu_device, xpu_processes):
            pass

        @pytest.mark.parametrize("xpu_processes", [3])
        def test_own(xpu_processes):
            pass
        """
    )
    result = pytester.runpytest(*PLUGIN, "--collect-only", "-q", "--xpu-processes=1-2,4", "--xpu-device=cpu",
                                "-W", "ignore::pytest.PytestConfigWarning")
    ids = [line for line in result.outlines if "::" in line]
    assert ids == [
        "test_options_parametrise_xpu_device_and_xpu_processes.py::test_auto[cpu-1p]",
        "test_options_parametrise_xpu_device_and_xpu_processes.py::test_auto[cpu-2p]",
        "test_options_parametrise_xpu_device_and_xpu_processes.py::test_auto[cpu-4p]",
        "test_options_parametrise_xpu_device_and_xpu_processes.py::test_own[3]",
    ]


def test_process_count_above_usable_cores_warns(pytester):
    from bench.model.strategy import MAX_PROCESSES

    n = usable_cores() + 1
    if n > MAX_PROCESSES:
        pytest.skip("more usable cores than the largest process count")
    pytester.makepyfile("def test_x(xpu_processes):\n    pass\n")
    # (an installed xpubench is already imported here: pytest may add assert-rewrite warnings)
    result = pytester.runpytest(*PLUGIN, "-W", "ignore::pytest.PytestAssertRewriteWarning", f"--xpu-processes=1,{n}")
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines([f"*process count {n} is above the {n - 1} usable cores*"])


# ---------------------------------------------------------------- marker, fixture paths without workers


def test_requires_gpu_is_skipped_with_a_reason_where_no_gpu_is_visible(pytester, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.requires_gpu
        def test_gpu():
            raise AssertionError("ran without a GPU")

        def test_cpu():
            pass
        """
    )
    result = pytester.runpytest(*PLUGIN, "-rs", "--strict-markers")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*requires_gpu: no GPU visible (CUDA_VISIBLE_DEVICES='' hides every GPU)*"])


def test_gpu_devices_are_marked_requires_gpu(pytester, monkeypatch):
    from bench.engines.devices import device_names

    if "gpu" not in device_names():
        pytest.skip("no 'gpu' device strategy registered")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    pytester.makepyfile("def test_x(xpu_device):\n    pass\n")
    result = pytester.runpytest(*PLUGIN, "-v", "-rs", "--xpu-device=cpu,gpu", "--xpu-processes=1")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        ["*::test_x?cpu? PASSED*", "*::test_x?gpu? SKIPPED*", "SKIPPED ?1? *: requires_gpu: no GPU visible*"]
    )


def test_fixture_fails_cleanly_on_an_unknown_workload(pytester):
    pytester.makepyfile("def test_x(xpu):\n    xpu('nope')\n")
    result = pytester.runpytest(*PLUGIN, "-p", "no:randomly")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*xpu('nope', processes=1, device='cpu'): unknown workload 'nope' (choose from: *lorenz*"])
    assert "Traceback" not in result.stdout.str()


def test_fixture_refuses_a_sample_interval_below_the_floor(pytester):
    pytester.makepyfile("def test_x(xpu):\n    xpu('lorenz', sample_interval=1e-9)\n")
    result = pytester.runpytest(*PLUGIN, "-p", "no:randomly")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*xpu('lorenz', processes=1, device='cpu'): sample_interval 1e-09 is below the floor 0.05 s*"])
    assert "Traceback" not in result.stdout.str()


def test_fixture_skips_an_unavailable_device_without_measuring(pytester, monkeypatch):
    from bench.engines.devices import device_names, get_device

    if "gpu" not in device_names():
        pytest.skip("no 'gpu' device strategy registered")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    if get_device("gpu").availability() is None:
        pytest.skip("a GPU is visible despite CUDA_VISIBLE_DEVICES=''")
    pytester.makepyfile("def test_x(xpu):\n    xpu('lorenz', device='gpu')\n")
    result = pytester.runpytest(*PLUGIN, "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*device 'gpu' unavailable: *"])
    assert not list(pytester.path.rglob("lorenz-*.json"))  # no sweep started


def test_benchmark_skip_skips_xpu_tests(pytester):
    pytester.makepyfile("def test_x(xpu):\n    raise AssertionError('ran')\n\ndef test_plain():\n    pass\n")
    result = pytester.runpytest(*PLUGIN, "--benchmark-skip")
    result.assert_outcomes(passed=1, skipped=1)


# ---------------------------------------------------------------- the machine-info hook


def test_machine_info_hook_fills_the_fingerprint(pytester, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    pytester.makepyfile("def test_b(benchmark):\n    benchmark.pedantic(lambda: None, rounds=1)\n")
    out = pytester.path / "out.json"
    result = pytester.runpytest(*PLUGIN, f"--benchmark-json={out}")
    result.assert_outcomes(passed=1)
    doc = json.loads(out.read_text())
    xm = doc["machine_info"]["xpubench"]
    assert xm["label"] == socket.gethostname()  # no --xpu-label
    assert xm["usable_cores"] == usable_cores()
    assert xm["logical_cores"] == psutil.cpu_count(logical=True)
    assert xm["ram_bytes"] == psutil.virtual_memory().total
    assert xm["python"] == platform.python_version()
    assert xm["tensorflow"] == importlib.metadata.version("tensorflow")
    assert xm["keras"] == importlib.metadata.version("keras")
    assert xm["thread_env"]["OMP_NUM_THREADS"] == "3"
    assert isinstance(xm["gpus"], list) and (xm["gpus"] or xm["gpu_status"])
    assert "xpubench" not in doc["benchmarks"][0]["extra_info"]  # a plain benchmark stays plain


def test_machine_info_hook_records_gpu_name_memory_driver_and_cuda(pytester, monkeypatch):
    from bench.measure import nvml as nvml_module

    monkeypatch.syspath_prepend(str(FAKES))
    monkeypatch.delitem(sys.modules, "pynvml", raising=False)
    import pynvml

    assert getattr(pynvml, "IS_FAKE", False)
    pynvml.configure(gpus=[pynvml.gpu(name="Fake A100", mem_total=40 * 2**30)], driver="550.54.15", cuda_driver=12040)
    nvml_module.reset_for_tests()
    try:
        pytester.makepyfile("def test_b(benchmark):\n    benchmark.pedantic(lambda: None, rounds=1)\n")
        out = pytester.path / "out.json"
        result = pytester.runpytest(*PLUGIN, f"--benchmark-json={out}", "--xpu-label=gpu-box")
        result.assert_outcomes(passed=1)
        xm = json.loads(out.read_text())["machine_info"]["xpubench"]
    finally:
        nvml_module.reset_for_tests()
        sys.modules.pop("pynvml", None)
    (gpu,) = xm["gpus"]
    assert gpu["name"] == "Fake A100" and gpu["memory_total_bytes"] == 40 * 2**30
    assert gpu["driver_version"] == "550.54.15"
    assert xm["cuda_driver_version"] == "12.4"


def test_plugin_does_not_break_sessions_without_pytest_benchmark(pytester):
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest(*PLUGIN, "-p", "no:benchmark", "--xpu-label=x")
    result.assert_outcomes(passed=1)
    assert result.ret == 0


def test_a_session_with_the_plugin_imports_no_tensorflow_or_nvml(pytester):
    # NVML may be initialised when the JSON is written (GPU facts), never earlier; TensorFlow never.
    pytester.makeconftest(
        """
        import sys

        def _heavy(names, path):
            with open(path, "w") as f:
                f.write(",".join(m for m in names if m in sys.modules))

        def pytest_collection_finish(session):
            _heavy(("tensorflow", "keras", "pynvml", "jax", "torch"), "after_collection.txt")

        def pytest_unconfigure(config):
            _heavy(("tensorflow", "keras", "jax", "torch"), "at_exit.txt")
        """
    )
    pytester.makepyfile(
        "def test_b(benchmark, xpu_processes):\n    benchmark.pedantic(lambda: None, rounds=1)\n"
    )
    result = pytester.runpytest_subprocess(*PLUGIN, f"--benchmark-json={pytester.path / 'out.json'}")
    result.assert_outcomes(passed=len(pytest_plugin.parse_settings()[0].processes))
    assert (pytester.path / "after_collection.txt").read_text() == ""
    assert (pytester.path / "at_exit.txt").read_text() == ""


# ---------------------------------------------------------------- the suite


def test_suite_collects_every_workload_under_every_strategy():
    proc = _pytest(["tests/benchmarks", "--collect-only", "-q", "--xpu-processes=1,2", "--xpu-device=cpu"], cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ids = {line.split("[", 1)[1].rstrip("]") for line in proc.stdout.splitlines() if "::test_benchmark_workload[" in line}
    assert ids == {f"{w}-cpu-{n}p" for w in suite_names() for n in (1, 2)}


def test_normal_test_run_skips_the_suite():
    # `pytest tests` as the normal run does; other test modules left out to keep this quick
    proc = _pytest(["tests", "-q", "-rs", "--ignore-glob=tests/test_*.py", "--xpu-processes=1"], cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    n = len(suite_names())
    assert f"{n} skipped" in proc.stdout and "passed" not in proc.stdout
    assert "benchmark suite: run it with `pytest tests/benchmarks --benchmark-only" in proc.stdout


# ---------------------------------------------------------------- fixture logic without workers


class FakeBenchmark:
    """Stands in for pytest-benchmark's fixture: pedantic runs warm-up rounds, then rounds."""

    def __init__(self):
        self.group = None
        self.extra_info = {}
        self.calls = []

    def pedantic(self, target, args=(), kwargs=None, setup=None, teardown=None, rounds=1, warmup_rounds=0, iterations=1):
        self.calls.append((rounds, warmup_rounds, iterations))
        for _ in range(warmup_rounds + rounds):
            result = target()
        return result


def _trial(i, wall, rmse=1.0, error=None):
    return TrialRecord(id=f"t{i}", config={"id": f"t{i}"}, wall_s=wall, cpu_s=wall, samples=100.0,
                       quality={"rmse": rmse}, error=error)


def _fake_result(processes, wall, trials, samples=()):
    from bench.model.ratios import summarize

    summary = summarize(trials, list(samples), wall, processes, unit="samples/s")
    run = RunRecord(workload="lorenz", size="quick", trials=tuple(trials), summary=summary,
                    strategy={"device": "cpu", "processes": processes, "threads_per_process": 1, "inter_op_threads": 1,
                              "engine": "local"},
                    data={"source": "generated"})
    return Result(machine={"label": "fake", "tensorflow_build": {"cuda_version": "fake"}}, runs=(run,))


@pytest.fixture
def fake_sweeps(monkeypatch):
    """Replaces run_sweep: each call returns the next scripted wall time's result."""
    walls = []

    def run_sweep(workload, size, processes, devices, **kw):
        (n,) = processes
        wall = walls.pop(0)
        return _fake_result(n, wall, [_trial(i, wall / 4, rmse=float(i + 1)) for i in range(4)])

    monkeypatch.setattr("bench.sweep.sweep.run_sweep", run_sweep)
    return walls


def test_fixture_takes_the_median_measured_round_and_the_sessions_baseline(fake_sweeps, tmp_path):
    settings = pytest_plugin.XpuSettings()
    baselines, seen = {}, []
    fake_sweeps.extend([9.0, 4.0, 6.0, 5.0])  # one warm-up round, then three measured
    one = FakeBenchmark()
    run1 = pytest_plugin.XpuBenchmark(one, settings, tmp_path, baselines, seen.append)("lorenz", 1, rounds=3, warmup_rounds=1)
    assert one.calls == [(3, 1, 1)] and one.group == "lorenz-quick"
    assert run1.summary["wall_s"] == statistics.median([4.0, 6.0, 5.0])
    assert one.extra_info["rounds_wall_s"] == [4.0, 6.0, 5.0]
    assert len(seen) == 1 and seen[0].machine["tensorflow_build"] == {"cuda_version": "fake"}

    fake_sweeps.append(2.0)
    two = FakeBenchmark()
    run2 = pytest_plugin.XpuBenchmark(two, settings, tmp_path, baselines, seen.append)("lorenz", 2)
    assert math.isclose(run2.summary["speedup"], run1.summary["wall_s"] / 2.0)
    assert math.isclose(two.extra_info["efficiency"], run1.summary["wall_s"] / 2.0 / 2)
    assert two.extra_info["xpubench"]["summary"]["baseline_wall_s"] == run1.summary["wall_s"]
    assert two.extra_info["quality"] == {"rmse": statistics.fmean([1.0, 2.0, 3.0, 4.0])}

    # other options: another baseline key, so no speedup
    fake_sweeps.append(2.0)
    three = FakeBenchmark()
    pytest_plugin.XpuBenchmark(three, settings, tmp_path, baselines)("lorenz", 2, options={"epochs": "1"})
    assert three.extra_info["speedup"] is None and three.extra_info["efficiency"] is None


def test_sample_interval_setting_reaches_the_sweep_and_a_call_overrides_it(monkeypatch, tmp_path):
    seen = []

    def run_sweep(workload, size, processes, devices, **kw):
        seen.append(kw["sample_interval"])
        return _fake_result(processes[0], 1.0, [_trial(0, 1.0)])

    monkeypatch.setattr("bench.sweep.sweep.run_sweep", run_sweep)
    settings, _ = pytest_plugin.parse_settings(processes="1", sample_interval="0.2")
    assert settings.sample_interval == 0.2
    pytest_plugin.XpuBenchmark(FakeBenchmark(), settings, tmp_path)("lorenz", 1)
    pytest_plugin.XpuBenchmark(FakeBenchmark(), settings, tmp_path)("lorenz", 1, sample_interval=0.1)
    pytest_plugin.XpuBenchmark(FakeBenchmark(), pytest_plugin.XpuSettings(), tmp_path)("lorenz", 1)
    assert seen == [0.2, 0.1, 0.5]


def test_fixture_runs_one_strategy_per_call(fake_sweeps, tmp_path):
    x = pytest_plugin.XpuBenchmark(FakeBenchmark(), pytest_plugin.XpuSettings(), tmp_path)
    with pytest.raises(pytest.fail.Exception, match=r"xpu\('lorenz', processes='1,2', device='cpu'\): one process count"):
        x("lorenz", "1,2")


def test_fixture_is_single_use(fake_sweeps, tmp_path):
    fake_sweeps.append(1.0)
    x = pytest_plugin.XpuBenchmark(FakeBenchmark(), pytest_plugin.XpuSettings(), tmp_path)
    x("lorenz", 1)
    with pytest.raises(pytest.fail.Exception, match="one benchmark per test"):
        x("lorenz", 1)


def test_failed_trials_fail_the_test_but_figures_are_kept(monkeypatch, tmp_path):
    trials = [_trial(0, 1.0), _trial(1, 0.5, error=TrialError(kind="oom", message="out of memory"))]
    monkeypatch.setattr("bench.sweep.sweep.run_sweep", lambda *a, **k: _fake_result(1, 2.0, trials))
    bench = FakeBenchmark()
    with pytest.raises(pytest.fail.Exception, match=r"1 of 2 trials failed; first \(t1\): oom: out of memory"):
        pytest_plugin.XpuBenchmark(bench, pytest_plugin.XpuSettings(), tmp_path)("lorenz", 1)
    assert bench.extra_info["xpubench"]["summary"]["failed"] == 1
    assert bench.extra_info["quality"] == {"rmse": 1.0}  # mean over the trials that finished


def test_extra_info_is_strict_json():
    trials = [_trial(0, 1.0, rmse=float("nan")), _trial(1, 1.0, rmse=2.0)]
    run = _fake_result(1, 0.0, trials).runs[0]  # wall 0: ratios are None, not inf
    extra = pytest_plugin.extra_info(run)
    json.dumps(extra, allow_nan=False)
    assert extra["quality"] == {"rmse": 2.0}
    assert extra["throughput"] is None and extra["cpu_wall_ratio"] is None


def test_gpu_utilisation_is_copied_when_gpus_were_sampled():
    trials = [_trial(0, 1.0)]
    utils = [20.0, 40.0, 90.0]
    samples = [{"t": float(i), "gpus": [{"index": 0, "util_percent": u, "mem_used_bytes": 2**30}]} for i, u in enumerate(utils)]
    extra = pytest_plugin.extra_info(_fake_result(1, 3.0, trials, samples).runs[0])
    assert extra["gpu_util_p50"] == extra["xpubench"]["summary"]["gpu_util_p50"] == statistics.median(utils)
    assert extra["gpu_util_p95"] > extra["gpu_util_p50"]
    assert "gpu_util_p50" not in pytest_plugin.extra_info(_fake_result(1, 3.0, trials).runs[0])
