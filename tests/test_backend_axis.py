"""Keras backends as a strategy axis (issue 12): the strategy field, parsing and validation, old
files read as tensorflow, per-backend derived figures, console, report, plugin, and one real
quick sweep on tensorflow and jax."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from bench.backends import registry
from bench.cli import main
from bench.console import runs_table
from bench.errors import UsageError
from bench.model import results
from bench.model.ratios import finalize_runs, mean_quality
from bench.model.results import RunRecord
from bench.model.strategy import DEFAULT_BACKEND, Strategy, backend_of, make_strategies
from bench.model.summary import FIELDS
from bench.pytest.extra_info import STRATEGY_KEYS, extra_info
from bench.request import SweepRequest
from bench.sweep import memguard
from bench.sweep.resume import plan_resume, strategy_key
from reports import build_report, load_inputs
from reports.headline import backend_lines, headlines
from reports.load import from_result
from reports.tables import backends_frame, runs_frame

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "results-2026-12-01"
LORENZ = DATA / "lorenz-quick-20261201-214030.json"
XSS = "<script>alert(1)</script>"


def _clone(run: RunRecord, backend: str, factor: float, rmse_shift: float = 0.0) -> RunRecord:
    """The same run as if measured on ``backend``: walls × ``factor``, quality shifted."""
    trials = tuple(dataclasses.replace(t, wall_s=t.wall_s * factor,
                                       quality={k: v + rmse_shift for k, v in t.quality.items()}) for t in run.trials)
    summary = run.summary.replace(wall_s=run.summary.wall_s * factor,
                                  throughput=run.summary.throughput / factor)
    return dataclasses.replace(run, strategy={**run.strategy, "backend": backend}, trials=trials, summary=summary)


def _two_backends(jax_factor=0.25):
    """The real lorenz file's runs (tensorflow, 1 and 2 processes) plus the same runs as jax, finalized."""
    old = results.load(LORENZ)
    runs = list(old.runs) + [_clone(r, "jax", jax_factor, 0.01) for r in old.runs]
    return old.replace(runs=tuple(finalize_runs(runs)))


# ---------------------------------------------------------------- the strategy field


def test_strategy_records_its_backend_and_keeps_the_tensorflow_label():
    s = Strategy(device="cpu", processes=2, threads_per_process=1)
    assert s.backend == DEFAULT_BACKEND == "tensorflow"
    assert s.to_dict()["backend"] == "tensorflow"
    assert s.label == "cpu×2p×1t"  # as before backends were an axis
    assert dataclasses.replace(s, backend="jax").label == "jax:cpu×2p×1t"


def test_make_strategies_is_one_per_backend_device_and_process_count():
    out = make_strategies(["cpu", "gpu"], [1, 2], threads=1, backends=["tensorflow", "jax"])
    assert [(s.backend, s.device, s.processes) for s in out] == [
        ("tensorflow", "cpu", 1), ("tensorflow", "cpu", 2), ("tensorflow", "gpu", 1), ("tensorflow", "gpu", 2),
        ("jax", "cpu", 1), ("jax", "cpu", 2), ("jax", "gpu", 1), ("jax", "gpu", 2),
    ]
    assert {s.backend for s in make_strategies(["cpu"], [1])} == {"tensorflow"}


def test_a_strategy_without_a_backend_is_tensorflow():
    assert backend_of({"device": "cpu", "processes": 1}) == "tensorflow"
    assert backend_of({"device": "cpu", "processes": 1, "backend": "jax"}) == "jax"
    assert backend_of({"backend": None}) == backend_of({"backend": 3}) == "tensorflow"


# ---------------------------------------------------------------- old files


def test_old_files_load_as_tensorflow_everywhere():
    files = sorted(DATA.glob("*.json"))
    assert files
    for f in files:
        raw = json.loads(f.read_text())
        assert all("backend" not in r["strategy"] for r in raw["runs"])  # written before backends
        res = results.load(f)
        for run in res.runs:
            assert run.backend == "tensorflow" and run.key[5] == "tensorflow"
            assert "backend" not in run.strategy  # read as it is: not invented on load
            assert run.summary.speedup_vs_tensorflow is None and "speedup_vs_tensorflow" not in run.summary
        src = from_result(res, str(f))
        assert {r.backend for r in src.runs} == {"tensorflow"}
        assert all(":" not in r.strategy.split("×")[0] for r in src.runs)  # no backend prefix
        # re-saved unchanged: nothing added to an old run's strategy
        assert json.loads(results.dumps(res))["runs"][0]["strategy"] == raw["runs"][0]["strategy"]
    inputs = load_inputs([str(f) for f in files])
    html = build_report(inputs).html
    assert 'id="backends"' not in html  # one backend: no Backends section


def test_an_old_run_is_the_tensorflow_strategy_for_resume_and_a_jax_one_is_not():
    old = results.load(LORENZ)
    tf1 = Strategy(device="cpu", processes=1, threads_per_process=2)
    jax1 = dataclasses.replace(tf1, backend="jax")
    assert strategy_key("lorenz", "quick", tf1) == old.runs[0].key
    assert strategy_key("lorenz", "quick", jax1) != old.runs[0].key
    configs = [t.config for t in old.runs[0].trials]
    plan = plan_resume(old, workload="lorenz", size="quick", version=old.runs[0].workload_version,
                       strategies=[tf1, jax1], configs=configs, options=old.runs[0].options or {},
                       data_source=None, machine=old.machine)
    assert len(plan.of(strategy_key("lorenz", "quick", tf1)).kept) == len(configs)  # tensorflow resumes the old run
    assert plan.of(strategy_key("lorenz", "quick", jax1)).old is None  # jax: a different strategy, runs it all
    assert [r.key for r in plan.carried] == [old.runs[1].key]  # the 2-process tensorflow run is carried as it is


def test_the_loader_checks_the_backend_is_text(tmp_path):
    doc = json.loads(LORENZ.read_text())
    doc["runs"][0]["strategy"]["backend"] = 7
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(UsageError, match=r"runs\[0\]\.strategy: field 'backend' should be a string"):
        results.load(bad)


# ---------------------------------------------------------------- derived figures


def test_finalize_runs_per_backend_with_real_records():
    res = _two_backends(0.25)
    by = {(r.backend, r.strategy["processes"]): r for r in res.runs}
    tf1, tf2, jx1, jx2 = by["tensorflow", 1], by["tensorflow", 2], by["jax", 1], by["jax", 2]
    # speedup against the 1-process run of the same backend
    assert jx2.summary.speedup == pytest.approx(jx1.summary.wall_s / jx2.summary.wall_s)
    assert jx2.summary.baseline_wall_s == jx1.summary.wall_s
    assert tf2.summary.baseline_wall_s == tf1.summary.wall_s
    assert jx2.summary.efficiency == pytest.approx(jx2.summary.speedup / 2)
    # the backend's gain: the tensorflow wall of the same device/processes/threads over this wall
    assert jx1.summary.speedup_vs_tensorflow == pytest.approx(tf1.summary.wall_s / jx1.summary.wall_s) == pytest.approx(4.0)
    assert jx2.summary.speedup_vs_tensorflow == pytest.approx(tf2.summary.wall_s / jx2.summary.wall_s)
    assert tf1.summary.speedup_vs_tensorflow == 1.0
    # speedup vs cpu pairs runs of the same backend
    assert jx1.summary.speedup_vs_cpu == 1.0
    assert "speedup_vs_tensorflow" in FIELDS


def test_no_tensorflow_run_of_the_same_strategy_means_no_speedup_vs_tensorflow():
    old = results.load(LORENZ)
    jax_only = [_clone(r, "jax", 0.5) for r in old.runs]
    other_threads = dataclasses.replace(old.runs[0], strategy={**old.runs[0].strategy, "threads_per_process": 1})
    out = finalize_runs(jax_only + [other_threads])
    assert out[0].summary.speedup_vs_tensorflow is None  # threads differ: not the same strategy
    assert out[1].summary.speedup_vs_tensorflow is None
    assert out[1].summary.speedup == pytest.approx(out[0].summary.wall_s / out[1].summary.wall_s)


def test_the_memory_guard_estimates_from_runs_of_the_same_backend():
    old = results.load(LORENZ)
    runs = [("in a file", r) for r in old.runs]
    assert memguard.estimate(runs, "lorenz", "quick", "cpu") is not None
    assert memguard.estimate(runs, "lorenz", "quick", "cpu", "tensorflow") is not None
    assert memguard.estimate(runs, "lorenz", "quick", "cpu", "jax") is None  # a TF worker's memory is not JAX's


# ---------------------------------------------------------------- parsing and validation


def test_backends_parse_in_order_and_all_is_the_installed_ones():
    assert SweepRequest.parse().backends == ("tensorflow",)
    assert SweepRequest.parse(backends="tensorflow,jax").backends == ("tensorflow", "jax")
    assert SweepRequest.parse(backends=["jax", "tensorflow", "jax"]).backends == ("jax", "tensorflow")
    assert SweepRequest.parse(backends="all").backends == tuple(registry.installed_backends())
    request = SweepRequest.parse(workload="lorenz", backends="tensorflow,jax", processes="1,2", threads=1)
    assert [(s.backend, s.processes) for s in request.strategies()] == [
        ("tensorflow", 1), ("tensorflow", 2), ("jax", 1), ("jax", 2)]


def test_an_unknown_backend_is_one_line_naming_the_choices():
    with pytest.raises(UsageError) as info:
        SweepRequest.parse(backends="tensorflow,mxnet")
    assert str(info.value) == "unknown backend 'mxnet' (choose from: tensorflow, jax, torch)"
    assert info.value.field == "backends"


@pytest.fixture
def jax_missing(monkeypatch):
    """jax as if it were not installed (the registry's find_spec check says no)."""
    backend = registry._load("jax")
    monkeypatch.setattr(type(backend), "installed", lambda self: False)
    return backend


def test_a_backend_that_is_not_installed_is_exit_2_and_nothing_written(jax_missing, tmp_path, capsys):
    with pytest.raises(UsageError, match=re.escape("backend 'jax' is not installed (pip install 'xpubench[jax]')")):
        SweepRequest.parse(backends="jax")
    assert "jax" not in SweepRequest.parse(backends="all").backends
    out = tmp_path / "out"
    code = main(["run", "lorenz", "--backend", "tensorflow,jax", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == "error: backend 'jax' is not installed (pip install 'xpubench[jax]')"
    assert not out.exists()


def test_a_named_device_the_backend_cannot_run_is_one_line_naming_both(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", "lorenz", "--backend", "tensorflow,jax", "--device", "cpu,mirrored", "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("error: device 'mirrored' cannot run on backend 'jax': mirrored runs on tensorflow only")
    assert not out.exists()


def test_with_device_all_an_unsupported_combination_is_left_to_be_skipped_with_its_reason():
    request = SweepRequest.parse(workload="lorenz", devices="all", backends="tensorflow,jax")
    reasons = request.unavailable_pairs()
    assert reasons[("jax", "mirrored")].startswith("mirrored runs on tensorflow only")
    assert ("tensorflow", "cpu") not in reasons and ("jax", "cpu") not in reasons
    # the plugin's request: a named combination is not an error there, it is skipped by its benchmark
    plugin = SweepRequest.parse(devices="mirrored", backends="jax", require_available=False)
    assert plugin.unavailable()["mirrored"].startswith("mirrored runs on tensorflow only")


def test_bench_list_names_the_backends_and_which_devices_each_runs(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "backends:" in out and "  tensorflow " in out
    for name in registry.backend_names():
        assert f"  {name} " in out
    if {"tensorflow", "jax"} <= set(registry.installed_backends()):
        assert re.search(r"  mirrored .*\[tensorflow only\]", out)
        assert re.search(r"  data_parallel .*\[jax only\]", out)


def test_the_strategy_run_skips_a_combination_the_backend_cannot_run():
    from bench.engines.devices import get_device
    from bench.sweep.strategy_run import unavailable_reason

    mirrored = get_device("mirrored")
    assert unavailable_reason(Strategy(device="mirrored", backend="jax"), mirrored).startswith(
        "mirrored runs on tensorflow only")
    assert unavailable_reason(Strategy(device="cpu", backend="jax"), get_device("cpu")) is None


def test_plugin_settings_take_backends_and_name_the_option_in_errors(jax_missing):
    from bench.pytest.plugin import parse_settings

    settings, _ = parse_settings(backends="tensorflow")
    assert settings.backends == ("tensorflow",)
    with pytest.raises(pytest.UsageError, match=r"^--xpu-backend: unknown backend 'mx'"):
        parse_settings(backends="mx")
    with pytest.raises(pytest.UsageError, match=re.escape("--xpu-backend: backend 'jax' is not installed")):
        parse_settings(backends="jax")


def test_plugin_parametrises_xpu_backend_tensorflow_first_and_leaves_default_ids_alone(pytester):
    from support.plugin import PLUGIN

    pytester.makepyfile(
        """
        def test_b(xpu_backend, xpu_device, xpu_processes):
            pass

        def test_c(xpu):  # the xpu fixture's own default backend is the parametrised one
            pass
        """
    )
    result = pytester.runpytest(*PLUGIN, "--collect-only", "-q", "--xpu-processes=1,2", "--xpu-backend=jax,tensorflow",
                                "-W", "ignore::pytest.PytestConfigWarning")
    ids = [line.split("::", 1)[1] for line in result.outlines if "::" in line]
    assert ids == ["test_b[tensorflow-cpu-1p]", "test_b[tensorflow-cpu-2p]", "test_b[jax-cpu-1p]", "test_b[jax-cpu-2p]",
                   "test_c[tensorflow]", "test_c[jax]"]
    result = pytester.runpytest(*PLUGIN, "--collect-only", "-q", "--xpu-processes=1",
                                "-W", "ignore::pytest.PytestConfigWarning")
    assert [line.split("::", 1)[1] for line in result.outlines if "::" in line] == ["test_b[cpu-1p]", "test_c"]


class _Benchmark:
    """pytest-benchmark's fixture, as far as the xpu fixture uses it."""

    def __init__(self):
        self.group, self.extra_info = None, {}

    def pedantic(self, target, rounds=1, warmup_rounds=0, iterations=1, **_):
        for _ in range(warmup_rounds + rounds):
            target()


def test_the_xpu_fixture_compares_a_backend_with_the_sessions_tensorflow_run(monkeypatch, tmp_path):
    from bench.model.ratios import summarize
    from bench.model.results import Result, TrialRecord
    from bench.pytest.fixture import XpuBenchmark, XpuSettings

    walls, asked = {"tensorflow": 8.0, "jax": 2.0}, []

    def run_sweep(workload, size, processes, devices, threads=None, backends=("tensorflow",), **kw):
        (backend,), (n,) = backends, processes
        asked.append(backend)
        wall = walls[backend]
        trials = [TrialRecord(id=f"t{i}", config={"id": f"t{i}"}, wall_s=wall / 4, cpu_s=wall / 4, samples=100.0,
                              quality={"rmse": 1.0}) for i in range(4)]
        strategy = {"device": "cpu", "processes": n, "threads_per_process": 1, "inter_op_threads": 1,
                    "engine": "local", "backend": backend}
        run = RunRecord(workload=workload, size=size, strategy=strategy, trials=tuple(trials),
                        summary=summarize(trials, [], wall, n))
        return Result(machine={}, runs=(run,))

    monkeypatch.setattr("bench.sweep.sweep.run_sweep", run_sweep)
    baselines, settings = {}, XpuSettings()
    XpuBenchmark(_Benchmark(), settings, tmp_path, baselines)("lorenz", 1)
    bench = _Benchmark()
    run = XpuBenchmark(bench, settings, tmp_path, baselines, backend="jax")("lorenz", 1)
    assert asked == ["tensorflow", "jax"]
    assert run.summary.speedup_vs_tensorflow == pytest.approx(4.0) and run.summary.speedup == 1.0
    info = bench.extra_info["xpubench"]
    assert info["strategy"]["backend"] == "jax" and info["summary"]["speedup_vs_tensorflow"] == pytest.approx(4.0)
    XpuBenchmark(_Benchmark(), settings, tmp_path, baselines, backend="jax")("lorenz", 1, backend="tensorflow")
    assert asked[-1] == "tensorflow"  # the call's backend= wins over the test's


def test_extra_info_strategy_names_the_backend():
    assert "backend" in STRATEGY_KEYS
    res = _two_backends()
    old, jax_run = res.runs[0], res.runs[2]
    assert extra_info(old)["xpubench"]["strategy"]["backend"] == "tensorflow"  # recorded without one
    info = extra_info(jax_run)["xpubench"]
    assert info["strategy"]["backend"] == "jax"
    assert info["summary"]["speedup_vs_tensorflow"] == pytest.approx(4.0)


# ---------------------------------------------------------------- console and report


def _table_text(runs) -> str:
    console = Console(file=io.StringIO(), width=300, color_system=None)
    console.print(runs_table(runs))
    return console.file.getvalue()


def test_console_shows_the_backend_column_only_when_a_run_is_not_tensorflow():
    old = results.load(LORENZ)
    assert "backend" not in _table_text(old.runs) and "vs tensorflow" not in _table_text(old.runs)
    text = _table_text(_two_backends().runs)
    header = next(line for line in text.splitlines() if "backend" in line)
    assert "vs tensorflow" in header
    jax_rows = [line for line in text.splitlines() if " jax " in f" {line} "]
    assert len(jax_rows) == 2 and all("4.00×" in line for line in jax_rows)


def test_report_backends_section_side_by_side_with_quality(tmp_path):
    res = _two_backends(0.25)
    path = results.save(res, tmp_path / "two.json")
    inputs = load_inputs([str(path)])
    bf = backends_frame(runs_frame(inputs))
    assert list(bf["backend"]) == ["tensorflow", "jax", "tensorflow", "jax"]  # same strategy side by side
    jax1 = bf[(bf["backend"] == "jax") & (bf["processes"] == 1)].iloc[0]
    assert jax1["speedup_vs_tensorflow"] == pytest.approx(4.0)
    tf_quality = mean_quality(res.runs[0].trials)
    html = build_report(inputs).html
    m = re.search(r'<section id="backends">(.*?)</section>', html, re.S)
    assert m, "no Backends section"
    sec = m.group(1)
    assert "jax" in sec and "tensorflow" in sec and "4.00×" in sec
    assert f"rmse {tf_quality['rmse']:.4g}" in sec and f"rmse {tf_quality['rmse'] + 0.01:.4g}" in sec
    (h,) = headlines(inputs)
    (line,) = [x for x in h.lines if x.startswith("jax: ")]
    assert line.startswith("jax: 4.00× faster than tensorflow (cpu×")
    assert "same device, processes and threads" in line and "rmse" in line
    assert line in html


def test_backend_names_from_a_file_are_escaped(tmp_path):
    res = _two_backends()
    runs = [dataclasses.replace(r, strategy={**r.strategy, "backend": XSS}) if r.backend == "jax" else r
            for r in res.runs]
    path = results.save(res.replace(runs=tuple(runs)), tmp_path / "xss.json")
    html = build_report(load_inputs([str(path)])).html
    assert XSS not in html and "&lt;script&gt;" in html


def test_a_slower_backend_says_so_and_a_missing_tensorflow_run_says_how_to_measure():
    inputs = load_inputs([str(LORENZ)])
    res = _two_backends(2.0)
    runs = from_result(res, "x").runs
    (line,) = backend_lines(list(runs))
    assert line.startswith("jax: 0.50× the speed of tensorflow (slower)")
    only_jax = [r for r in runs if r.backend == "jax"]
    only_jax = [dataclasses.replace(r, summary=r.summary.replace(speedup_vs_tensorflow=None)) for r in only_jax]
    assert backend_lines(only_jax) == [
        "jax vs tensorflow: not measured (no tensorflow run of the same strategy; run with --backend tensorflow,jax)"]
    assert backend_lines(list(inputs.runs)) == []


# ---------------------------------------------------------------- one real quick sweep per backend


def test_real_quick_sweep_on_every_backend(tmp_path):
    """``bench run lorenz --backend tensorflow,jax,torch -p 1``: every run in one file, each one's
    recorded speedup over tensorflow, and the report's Backends section with all and their quality."""
    others = [b for b in ("jax", "torch") if b in registry.installed_backends()]
    if not others:
        pytest.skip("neither jax nor torch is installed (pip install 'xpubench[jax]' 'xpubench[torch]')")
    backends = ["tensorflow"] + others
    out = tmp_path / "out"
    env = {**os.environ, "XPUBENCH_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "run", "lorenz", "--backend", ",".join(backends), "-p", "1", "--opt", "epochs=1",
         "-o", str(out), "-q"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = out.glob("lorenz-quick-*.json")
    res = results.load(path)
    assert [r.backend for r in res.runs] == backends
    assert all(r.status == "complete" and not r.summary.failed for r in res.runs)
    tf, rest = res.runs[0], res.runs[1:]
    assert tf.summary.speedup_vs_tensorflow == 1.0
    q_tf = mean_quality(tf.trials)["rmse"]
    html = build_report(load_inputs([str(path)])).html
    sec = re.search(r'<section id="backends">(.*?)</section>', html, re.S).group(1)
    assert "tensorflow" in sec and f"rmse {q_tf:.4g}" in sec
    for run in rest:
        assert run.env.get("KERAS_BACKEND") == run.backend
        assert run.summary.speedup_vs_tensorflow == pytest.approx(tf.summary.wall_s / run.summary.wall_s)
        # the same model learned the same thing: RMSE of each backend within a factor of tensorflow's
        q = mean_quality(run.trials)["rmse"]
        assert 0.5 < q / q_tf < 2.0, (run.backend, q_tf, q)
        assert run.backend in sec and f"rmse {q:.4g}" in sec
    assert "backend" in proc.stdout and "vs tensorflow" in proc.stdout
    print(proc.stdout)
