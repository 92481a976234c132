"""bench.sweep.repeats: interleaved repeats (each its own run), resume by repeat, and weak scaling
(N copies of every trial) on real sweeps."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench.model import results
from bench.model.strategy import Strategy, make_strategies, parse_scalings
from bench.errors import UsageError
from bench.sweep.repeats import copy_id, original_id, run_order, trial_configs

sys.path.insert(0, str(Path(__file__).parent))
import xpubench_testload  # noqa: E402

WL = xpubench_testload.FaultyWorkload.name


@pytest.fixture(scope="module")
def testload():
    with pytest.MonkeyPatch.context() as mp:
        from bench.model import workload

        mp.setitem(workload._REGISTRY, WL, xpubench_testload.FaultyWorkload)
        yield WL


def test_run_order_interleaves_strategies():
    one, two = Strategy(processes=1), Strategy(processes=2)
    order = run_order([one, two], 3)
    assert [(s.processes, r) for s, r in order] == [(1, 0), (2, 0), (1, 1), (2, 1), (1, 2), (2, 2)]
    assert run_order([one], 1) == [(one, 0)]


def test_weak_trial_configs_are_n_copies_each():
    configs = [{"id": "a", "x": 1}, {"id": "b", "x": 2}, {"id": "c", "x": 3}]
    weak = Strategy(processes=3, scaling="weak")
    got = trial_configs(configs, weak)
    assert len(got) == 3 * len(configs)
    assert [c["id"] for c in got[:3]] == ["a", "a@copy1", "a@copy2"]  # trial by trial
    assert len({c["id"] for c in got}) == len(got)
    assert all(original_id(c["id"]) == c["id"].split("@")[0] for c in got)
    assert [c["x"] for c in got] == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert trial_configs(configs, Strategy(processes=3)) == tuple(configs)  # strong: the list once
    assert trial_configs(configs, Strategy(processes=1, scaling="weak")) == tuple(configs)
    assert copy_id("a", 0) == "a" and original_id("x@copyz") == "x@copyz"


def test_scalings_parse_and_strategies():
    assert parse_scalings("strong,weak") == ("strong", "weak")
    with pytest.raises(UsageError, match=r"unknown scaling 'wek' \(choose from: strong, weak\)"):
        parse_scalings("wek")
    both = make_strategies(["cpu"], [1, 2], backends=["tensorflow"], scalings=["strong", "weak"])
    assert [(s.processes, s.scaling) for s in both] == [(1, "strong"), (2, "strong"), (2, "weak")]
    assert "scaling" not in both[0].to_dict() and both[2].to_dict()["scaling"] == "weak"


def test_request_parses_repeat_and_scaling():
    from bench.request import SweepRequest

    r = SweepRequest.parse(workload="lorenz", processes="1,2", repeat="3", scaling="weak")
    assert r.repeats == 3 and r.scalings == ("weak",)
    assert r.sweep_kwargs()["repeats"] == 3
    for bad in ("0", "x", "1001", "2.5"):
        with pytest.raises(UsageError) as exc:
            SweepRequest.parse(workload="lorenz", repeat=bad, names={"repeat": "--repeat"})
        assert f"bad --repeat '{bad}'" in str(exc.value) and exc.value.field == "repeat"


def test_cli_bad_repeat_is_one_error_line(capsys, tmp_path):
    from bench.cli import main

    assert main(["run", "lorenz", "--repeat", "0", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: bad --repeat '0' (expected a whole number of repeats from 1 to 1000)"]
    assert main(["run", "lorenz", "--scaling", "wide", "-o", str(tmp_path)]) == 2
    assert "unknown scaling 'wide' (choose from: strong, weak)" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.json"))


@pytest.fixture(scope="module")
def repeated(testload, tmp_path_factory):
    """A real sweep of the test workload at 1 and 2 processes, 2 repeats; the events it sent."""
    from bench.sweep.sweep import run_sweep

    out = tmp_path_factory.mktemp("repeats")
    events = []
    result = run_sweep(testload, "quick", processes=[1, 2], out_dir=out, label="rep", sample_interval=0.1,
                       options={"plan": "ok,ok,ok", "sleep": "0.2"}, repeats=2,
                       on_event=lambda kind, **info: events.append((kind, info)))
    return result, next(out.glob("*.json")), events


def test_repeats_run_interleaved_each_its_own_run(repeated):
    result, path, events = repeated
    started = [(i["strategy"].processes, i["repeat"]) for k, i in events if k == "strategy_start"]
    assert started == [(1, 0), (2, 0), (1, 1), (2, 1)]
    loaded = results.load(path)
    assert loaded.schema == results.SCHEMA == 2
    assert [(r.strategy["processes"], r.repeat) for r in loaded.runs] == [(1, 0), (2, 0), (1, 1), (2, 1)]
    assert len({r.key for r in loaded.runs}) == 4 and len({r.group for r in loaded.runs}) == 2
    assert all(len(r.trials) == 3 and r.status == "complete" for r in loaded.runs)
    assert results.loads(results.dumps(loaded)) == loaded  # round-trips


def test_repeats_summary_records_medians_intervals_and_raw_figures(repeated):
    result, path, _ = repeated
    runs = results.load(path).runs
    two = [r for r in runs if r.strategy["processes"] == 2]
    one = [r for r in runs if r.strategy["processes"] == 1]
    rep = two[0].summary.repeats
    assert rep == two[1].summary.repeats  # every repeat holds the strategy's summary
    assert rep["count"] == 2 and rep["finished"] == 2 and rep["method"]["resamples"] == 10_000
    assert rep["wall_s"]["values"] == [r.summary.wall_s for r in two]
    assert rep["wall_s"]["median"] == pytest.approx(sum(rep["wall_s"]["values"]) / 2)
    assert rep["wall_s"]["low"] == min(rep["wall_s"]["values"]) and rep["wall_s"]["high"] == max(rep["wall_s"]["values"])
    # each repeat's speedup is against the 1-process run of the same repeat (measured beside it)
    for r1, r2 in zip(one, two):
        assert r2.summary.speedup == pytest.approx(r1.summary.wall_s / r2.summary.wall_s)
        assert r2.summary.baseline_wall_s == r1.summary.wall_s
    assert rep["speedup"]["values"] == [r.summary.speedup for r in two]
    assert rep["efficiency"]["values"] == pytest.approx([r.summary.speedup / 2 for r in two])
    # noise: each trial across the repeats (3 trials, 2 measurements each), never across configurations
    noise = two[0].summary.noise
    assert noise["measured"] and noise["configs"] == 3 and noise["measurements"] == 6
    assert noise["threshold"] == 0.10 and isinstance(noise["noisy"], list)
    assert all(isinstance(r.summary.validity["valid"], bool) for r in runs)


def test_old_files_load_as_repeat_zero():
    data = Path(__file__).parent / "data"
    old = [p for p in data.rglob("*.json") if '"schema": 1' in p.read_text()[:200]]
    assert old
    for p in old[:5]:
        res = results.load(p)
        assert all(r.repeat == 0 for r in res.runs)


def test_newer_schema_is_refused(tmp_path, repeated):
    _, path, _ = repeated
    doc = results.parse(path.read_bytes())
    doc["schema"] = results.SCHEMA + 1
    with pytest.raises(results.ResultFileError, match="newer than this xpubench reads"):
        results.from_dict(doc, "x.json")


def test_resume_plans_each_repeat(repeated, testload):
    from bench.measure.machine import fingerprint
    from bench.sweep.resume import plan_resume, strategy_key

    result, path, _ = repeated
    old = results.load(path)
    cut = old.replace(runs=old.runs[:3], complete=False)  # interrupted before the 2-process repeat 2
    strategies = make_strategies(["cpu"], [1, 2])
    configs = xpubench_testload.FaultyWorkload().trials("quick", {"plan": "ok,ok,ok"})
    plan = plan_resume(cut, workload=testload, size="quick", version=1, strategies=strategies, configs=configs,
                       options={"plan": "ok,ok,ok", "sleep": "0.2"}, data_source="generated",
                       machine=fingerprint("rep"), force=True, repeats=2)
    assert plan.carried == ()
    for s in strategies:
        for r in (0, 1):
            kept = plan.of(strategy_key(testload, "quick", s, r)).kept
            assert len(kept) == (0 if (s.processes, r) == (2, 1) else 3)


@pytest.fixture(scope="module")
def weak_lorenz(tmp_path_factory):
    """A real quick Lorenz sweep, strong and weak scaling at 1 and 2 processes (1 epoch per trial)."""
    from bench.sweep.sweep import run_sweep

    out = tmp_path_factory.mktemp("weak")
    result = run_sweep("lorenz", "quick", processes=[1, 2], out_dir=out, label="weak", scalings=["strong", "weak"],
                       options={"epochs": "1"}, sample_interval=0.2)
    return result, next(out.glob("*.json"))


def test_weak_scaling_runs_n_times_the_work(weak_lorenz):
    result, path = weak_lorenz
    runs = results.load(path).runs
    assert [(r.strategy["processes"], r.strategy.get("scaling", "strong")) for r in runs] == [
        (1, "strong"), (2, "strong"), (2, "weak")]
    one, strong, weak = runs
    n_trials = len(one.trials)
    assert n_trials == 4 and len(strong.trials) == n_trials
    assert len(weak.trials) == 2 * n_trials and all(t.ok for t in weak.trials)
    assert sorted(original_id(t.id) for t in weak.trials) == sorted(t.id for t in one.trials for _ in range(2))
    assert {t.worker for t in weak.trials} == {0, 1}  # both workers ran trials
    samples = sum(t.samples for t in weak.trials)
    assert samples == pytest.approx(2 * sum(t.samples for t in one.trials))


def test_weak_scaling_figures(weak_lorenz):
    result, path = weak_lorenz
    one, strong, weak = results.load(path).runs
    s = weak.summary
    assert s.throughput == pytest.approx(sum(t.samples for t in weak.trials) / s.wall_s)
    assert s.baseline_throughput == one.summary.throughput
    assert s.weak_efficiency == pytest.approx(s.throughput / (2 * one.summary.throughput))
    assert 0.05 < s.weak_efficiency < 1.5
    assert s.speedup is None and s.efficiency is None  # strong speedup is not defined for N times the work
    assert s.per_process_cpu_wall_ratio is not None and s.per_process_cpu_wall_ratio > 0
    assert strong.summary.speedup == pytest.approx(one.summary.wall_s / strong.summary.wall_s)
    assert s.repeats["weak_efficiency"]["single"] is True


def test_weak_scaling_in_the_report(weak_lorenz, tmp_path):
    from reports import write_report
    from reports.load import load_inputs
    from reports.tables import runs_frame, scaling_frame, weak_frame

    _, path = weak_lorenz
    inputs = load_inputs([path])
    df = runs_frame(inputs)
    sc = scaling_frame(df, inputs)
    assert sorted(sc["processes"]) == [1, 2]  # the weak run is not a strong-scaling point
    wk = weak_frame(df, sc)
    assert list(wk["processes"]) == [1, 2]
    weak_run = next(r for r in inputs.runs if r.scaling == "weak")
    assert wk["weak_efficiency"].iloc[1] == pytest.approx(weak_run.summary.weak_efficiency)
    assert wk["strong_efficiency"].iloc[1] == pytest.approx(sc[sc["processes"] == 2]["efficiency"].iloc[0])
    out = tmp_path / "r.html"
    write_report([str(path)], str(out), png_dir=str(tmp_path / "png"))
    html = out.read_text()
    assert "Weak scaling" in html and "weak efficiency" in html
    assert any(p.name.startswith("weak-strong-lorenz") for p in (tmp_path / "png").iterdir())


# ---------------------------------------------------------------- how the console and the report show repeats


def _console_text(runs) -> str:
    from rich.console import Console

    from bench.console import repeats_output

    console = Console(record=True, width=250)
    for renderable in repeats_output(runs):
        console.print(renderable)
    return console.export_text()


def test_console_prints_recorded_intervals_and_invalid_runs(repeated):
    from reports.repeats import interval_text

    result, path, _ = repeated
    runs = results.load(path).runs
    text = _console_text(runs)
    two = [r for r in runs if r.strategy["processes"] == 2]
    rep = two[0].summary.repeats
    assert "over repeats: median [95 % interval]" in text
    assert interval_text(rep["speedup"], "speedup") in text  # e.g. 1.66x [1.58-1.74]
    assert f"{rep['speedup']['median']:.2f}x [{rep['speedup']['low']:.2f}-{rep['speedup']['high']:.2f}]" in text
    assert "bootstrap" in text and "10000 resamples" in text
    invalid = [r for r in runs if not r.summary.validity["valid"]]
    assert text.count("INVALID ") >= len(invalid)
    for r in invalid:
        assert r.summary.validity["reasons"][0] in text


def test_single_measurement_says_so(weak_lorenz):
    result, path = weak_lorenz
    text = _console_text(results.load(path).runs)
    import re

    assert "1.00x (single measurement)" in text  # the 1-process speedup, measured once
    assert not re.search(r"\d\.\d\dx \[", text)  # no interval is invented


def test_one_measurement_each_prints_no_table_over_repeats(weak_lorenz):
    result, path = weak_lorenz
    strong = [r for r in results.load(path).runs if r.strategy.get("scaling") != "weak"]
    assert strong and all(r.summary.weak_efficiency is None for r in strong)
    text = _console_text(strong)
    assert "over repeats" not in text  # the strategy table already holds every figure
    invalid = [r for r in strong if not r.summary.validity["valid"]]
    assert text.count("INVALID ") == len(invalid)  # still said, one line each


def test_report_folds_repeats_into_recorded_medians(repeated, tmp_path):
    from reports import write_report
    from reports.load import load_inputs

    result, path, _ = repeated
    runs = results.load(path).runs
    inputs = load_inputs([path])
    assert [(r.processes, r.repeats) for r in inputs.runs] == [(1, 2), (2, 2)]
    two = next(r for r in inputs.runs if r.processes == 2)
    rec = [r for r in runs if r.strategy["processes"] == 2][0].summary.repeats
    assert two.summary.wall_s == rec["wall_s"]["median"] and two.summary.speedup == rec["speedup"]["median"]
    out = tmp_path / "r.html"
    write_report([str(path)], str(out))
    html = out.read_text()
    assert "Repeats: medians with 95 % intervals" in html
    assert f"{rec['speedup']['median']:.2f}x [{rec['speedup']['low']:.2f}-{rec['speedup']['high']:.2f}]" in html
    invalid = [r for r in runs if not r.summary.validity["valid"]]
    assert ("INVALID runs" in html) == bool(invalid)
    if invalid:  # listed at the top, before the headline
        assert html.index("INVALID runs") < html.index('id="headline"')


def test_plugin_repeat_goes_through_the_request(tmp_path):
    from bench.pytest.plugin import parse_settings

    settings, _ = parse_settings(repeat="3", out_dir=str(tmp_path / "o"), processes="1")
    assert settings.request.repeats == 3 and settings.request.sweep_kwargs()["repeats"] == 3
    with pytest.raises(pytest.UsageError) as exc:
        parse_settings(repeat="zero", out_dir=str(tmp_path / "p"), processes="1")
    assert str(exc.value) == "--xpu-repeat: bad repeat 'zero' (expected a whole number of repeats from 1 to 1000)"
