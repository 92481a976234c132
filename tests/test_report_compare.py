"""bench compare: machine A vs B side by side, B's speedup, costs from --price, terminal table."""

from __future__ import annotations

import io
import json
import re

import pytest

from bench.model import results
from bench.cli import main
from bench.errors import UsageError
from reports import compare, fmt, load_inputs
from support import synth
from reports.comparison import distinct_labels, machines_table, parse_prices
from reports.tables import runs_frame

A_WALLS = {1: 8.0, 2: 5.0}
B_WALLS = {1: 6.0, 2: 3.0}
TRIALS, SAMPLES = 4, 900.0


@pytest.fixture
def two_machines(tmp_path):
    a = synth.make_result(synth.scaling_runs(walls=A_WALLS, n_trials=TRIALS), label="laptop", cpu="Laptop CPU")
    b = synth.make_result(synth.scaling_runs(walls=B_WALLS, n_trials=TRIALS), label="cloud", cpu="Cloud CPU")
    return str(results.save(a, tmp_path / "laptop.json")), str(results.save(b, tmp_path / "cloud.json"))


def test_machines_table_speedup_and_costs(two_machines):
    inputs = load_inputs(list(two_machines))
    t = machines_table(runs_frame(inputs), inputs.labels, {"laptop": 0.0, "cloud": 0.9}).set_index("processes")
    for n in A_WALLS:
        assert t.loc[n, "speedup:cloud"] == pytest.approx(A_WALLS[n] / B_WALLS[n])
        assert t.loc[n, "cost_trial:cloud"] == pytest.approx(0.9 * B_WALLS[n] / 3600 / TRIALS)
        assert t.loc[n, "cost_1k:cloud"] == pytest.approx(0.9 * B_WALLS[n] / 3600 / (TRIALS * SAMPLES) * 1000)
        assert t.loc[n, "cost_trial:laptop"] == 0.0
        assert t.loc[n, "per_trial:laptop"] == pytest.approx(A_WALLS[n] / TRIALS)


def test_terminal_table_and_html(two_machines, tmp_path, capsys):
    out = tmp_path / "cmp.html"
    code = main(["compare", *two_machines, "-o", str(out), "--price", "laptop=0", "--price", "cloud=0.90"])
    assert code == 0
    text = capsys.readouterr().out
    assert "A = laptop" in text and "B = cloud" in text and "$0.900/hour" in text
    for n in A_WALLS:
        assert fmt.times(A_WALLS[n] / B_WALLS[n]) in text
        assert fmt.money(0.9 * B_WALLS[n] / 3600 / TRIALS) in text
        assert fmt.money(0.9 * B_WALLS[n] / 3600 / (TRIALS * SAMPLES) * 1000) in text
    assert f"report: {out}" in text
    html = out.read_text()
    ids = re.findall(r'<section id="([^"]+)"', html)
    assert ids[:5] == ["headline", "machines", "data", "warnings", "machine-comparison"]
    sec = re.search(r'<section id="machine-comparison">(.*?)</section>', html, re.S).group(1)
    assert "$/trial cloud" in sec and fmt.money(0.9 * B_WALLS[2] / 3600 / TRIALS) in sec
    assert "<img src=\"data:image/png;base64," in sec
    assert "laptop vs cloud" in html  # title


def test_report_of_two_machines_has_the_comparison_without_prices(two_machines, tmp_path):
    out = tmp_path / "r.html"
    assert main(["report", *two_machines, "-o", str(out)]) == 0
    html = out.read_text()
    assert 'id="machine-comparison"' in html and "cloud vs laptop" in html and "--price" in html


@pytest.mark.parametrize(
    "price, message",
    [
        ("cloud", "bad --price 'cloud' (expected LABEL=PRICE_PER_HOUR"),
        ("cloud=abc", "bad --price 'cloud=abc'"),
        ("cloud=-1", "bad --price 'cloud=-1'"),
        ("cloud=nan", "bad --price 'cloud=nan'"),
        ("=1", "bad --price '=1'"),
        ("desktop=1", "unknown machine label 'desktop' in --price (choose from: cloud, laptop)"),
    ],
)
def test_bad_prices(two_machines, capsys, price, message):
    assert main(["compare", *two_machines, "--price", price]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_price_given_twice_and_label_with_equals():
    with pytest.raises(UsageError, match="given twice"):
        parse_prices(["a=1", "a=2"])
    assert parse_prices(["g5.x=large=0.5"]) == {"g5.x=large": 0.5}


def test_compare_needs_two_files(two_machines, capsys):
    assert main(["compare", two_machines[0]]) == 2
    assert "at least two result files (got 1)" in capsys.readouterr().err


def test_same_label_files_are_told_apart_by_file_name(tmp_path, capsys):
    a = results.save(synth.make_result(synth.scaling_runs(walls={1: 4.0}), label="host"), tmp_path / "before.json")
    b = results.save(synth.make_result(synth.scaling_runs(walls={1: 2.0}), label="host"), tmp_path / "after.json")
    inputs = distinct_labels(load_inputs([str(a), str(b)]))
    assert inputs.labels == ["before", "after"]
    assert main(["compare", str(a), str(b), "--price", "after=1"]) == 0
    out = capsys.readouterr().out
    assert "A = before" in out and "B = after" in out and fmt.times(2.0) in out


def test_rich_markup_in_labels_is_printed_literally(tmp_path):
    label = "[bold red]cloud[/] <b>"
    a = results.save(synth.make_result(synth.scaling_runs(), label="laptop"), tmp_path / "a.json")
    b = results.save(synth.make_result(synth.scaling_runs(), label=label), tmp_path / "b.json")
    buf = io.StringIO()
    assert compare([str(a), str(b)], prices=[f"{label}=2"], file=buf) == 0
    assert f"B = {label}" in buf.getvalue()


def test_plain_pytest_benchmark_timings_are_compared(tmp_path):
    def doc(node, mean):
        return {"machine_info": {"node": node, "cpu": {"brand_raw": "cpu"}}, "benchmarks": [
            {"name": "test_fit", "fullname": "t.py::test_fit", "stats": {"mean": mean, "stddev": 0.0, "rounds": 5}}],
            "version": "5.2.3"}

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(doc("laptop", 0.4)))
    b.write_text(json.dumps(doc("cloud", 0.1)))
    buf = io.StringIO()
    assert compare([str(a), str(b)], prices=["cloud=3.6"], file=buf) == 0
    text = buf.getvalue()
    assert "pytest-benchmark timings" in text and "t.py::test_fit" in text
    assert fmt.times(4.0) in text and fmt.money(3.6 * 0.1 / 3600) in text


def test_keep_going_and_nothing_in_common(two_machines, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert main(["compare", *two_machines, str(bad), "--keep-going"]) == 0
    captured = capsys.readouterr()
    assert f"warning: skipped {bad}" in captured.err
    assert main(["compare", two_machines[0], str(bad), "--keep-going"]) == 2
    assert "at least two readable result files (got 1)" in capsys.readouterr().err
    other = results.save(synth.make_result([synth.make_run("steady")], label="desk"), tmp_path / "o.json")
    buf = io.StringIO()
    assert compare([two_machines[0], str(other)], file=buf) == 0
    assert "no workload × strategy was measured on both laptop and another machine" in buf.getvalue()


def test_different_thread_counts_are_shown(tmp_path):
    a = results.save(synth.make_result(synth.scaling_runs(walls={1: 4.0}, cores=1), label="one"), tmp_path / "a.json")
    b = results.save(synth.make_result(synth.scaling_runs(walls={1: 3.0}, cores=2), label="two"), tmp_path / "b.json")
    buf = io.StringIO()
    assert compare([str(a), str(b)], file=buf) == 0
    assert "cpu×1p (1t vs 2t)" in buf.getvalue() and fmt.times(4.0 / 3.0) in buf.getvalue()


def test_fastest_strategy_of_each_machine_is_compared_too(tmp_path):
    a = results.save(synth.make_result(synth.scaling_runs(walls={1: 8.0}), label="one"), tmp_path / "a.json")
    b = results.save(synth.make_result(synth.scaling_runs(walls={1: 6.0, 2: 3.0}), label="two"), tmp_path / "b.json")
    inputs = load_inputs([str(a), str(b)])
    t = machines_table(runs_frame(inputs), inputs.labels, {"two": 1.8})
    best = t[t["best"]].iloc[0]
    assert best["strategy"] == "fastest: cpu×1p | cpu×2p"
    assert best["speedup:two"] == pytest.approx(8.0 / 3.0)
    assert best["cost_trial:two"] == pytest.approx(1.8 * 3.0 / 3600 / TRIALS)
    same = t[~t["best"]].iloc[0]
    assert same["strategy"] == "cpu×1p" and same["speedup:two"] == pytest.approx(8.0 / 6.0)
