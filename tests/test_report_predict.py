"""reports.predict, the report's predict_modes section and the console's per-mode table.

Inputs come from one real quick predict_modes sweep at 1 and 2 processes (``bench run`` in a
subprocess, as a user runs it); the figures expected are computed here from that sweep's trial
records, never copied from a report.
"""

from __future__ import annotations

import dataclasses
import html as html_lib
import json
import os
import re
import subprocess
import sys
import types

import pytest

from bench.model import results
from bench.console import predict_modes_output
from reports import build_report, fmt, load_inputs
from reports import predict as pr

# the old workload's extra keys (before mode_label, baseline, rows_predicted... were declared)
OLD_EXTRA = ("model", "mode", "batch", "rows_per_s", "rows_timed", "passes", "timed_s", "ms_per_row",
             "model_setup_s", "params", "table_rows")
ROW_LIMIT = 16


@pytest.fixture(scope="session")
def sweep(tmp_path_factory):
    """A real quick predict_modes sweep at 1 and 2 processes: its console output, file and Result."""
    out = tmp_path_factory.mktemp("predict-quick")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "XPUBENCH_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "bench", "run", "predict_modes", "--size", "quick", "-p", "1,2", "--out", str(out),
           "--label", "test-machine", "-q", "--opt", f"row_limit={ROW_LIMIT}", "--opt", "min_time=0.25"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (path,) = list(out.glob("*.json"))
    result = results.load(path)
    assert [r.strategy["processes"] for r in result.runs] == [1, 2]
    assert all(t.error is None for r in result.runs for t in r.trials)
    return types.SimpleNamespace(stdout=proc.stdout, path=path, result=result)


@pytest.fixture(scope="session")
def report_html(sweep):
    return build_report(load_inputs([str(sweep.path)])).html


def section(html: str, ident: str) -> str:
    m = re.search(rf'<section id="{re.escape(ident)}">(.*?)</section>', html, re.S)
    assert m, f"no section {ident}"
    return m.group(1)


def tables(html: str) -> list[dict]:
    """Every table: caption, headings and rows of unescaped cells."""
    out = []
    for t in re.findall(r"<table>(.*?)</table>", html, re.S):
        cap = re.search(r"<caption>(.*?)</caption>", t, re.S)
        heads = [html_lib.unescape(h) for h in re.findall(r"<th>(.*?)</th>", t, re.S)]
        rows = [[html_lib.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
                for tr in re.findall(r"<tr>(.*?)</tr>", t.split("</thead>")[-1], re.S)]
        out.append({"caption": html_lib.unescape(cap.group(1)) if cap else "", "heads": heads,
                    "rows": [dict(zip(heads, r)) for r in rows]})
    return out


def trials_by_id(run) -> dict:
    return {t.id: t for t in run.trials}


def mode_tables(html: str) -> dict[int, dict]:
    """The per-strategy mode tables of the predict section, by process count."""
    found = {}
    for t in tables(section(html, "predict-modes")):
        m = re.search(r"cpu×(\d)p", t["caption"])
        if m and "mode" in t["heads"]:
            found[int(m.group(1))] = t
    return found


def console_rows(stdout: str) -> list[list[str]]:
    """Rows of the console's per-mode table (cells stripped)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "predict_modes: rows/s per mode" in line)
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("└"):
            break
        if line.startswith("│") or line.startswith("┃"):
            rows.append([c.strip() for c in line.strip("│┃").split("│" if line.startswith("│") else "┃")])
    return rows


# ---------------------------------------------------------------- the report's mode table


def test_one_row_per_mode_and_batch_with_the_declared_rates(sweep, report_html):
    found = mode_tables(report_html)
    assert set(found) == {1, 2}
    for run in sweep.result.runs:
        table = found[run.strategy["processes"]]
        by_label = {r["mode"]: r for r in table["rows"]}
        modes = [t for t in run.trials if "shards" not in t.extra]
        assert len(table["rows"]) == len(modes) == 12  # every (mode, batch) its own row, shards apart
        predict = [t for t in modes if t.extra["mode"] == "predict"]
        assert sorted(t.extra["batch"] for t in predict) == [32, 256, 4096]
        for t in modes:
            row = by_label[t.extra["mode_label"]]
            assert row["batch"] == str(t.extra["batch"])
            assert row["rows/s"] == fmt.num(t.extra["rows_per_s"])
            assert row["ms per row"] == fmt.num(t.extra["ms_per_row"])
        # the three batch sizes of predict are three different measurements, not one median
        assert len({by_label[t.extra["mode_label"]]["rows/s"] for t in predict}) == 3
        assert [r["mode"] for r in table["rows"]] == [t.extra["mode_label"] for t in
                                                     sorted(modes, key=lambda t: -t.extra["rows_per_s"])]


def test_the_baseline_is_the_trial_that_declares_it(sweep, report_html):
    found = mode_tables(report_html)
    for run in sweep.result.runs:
        trials = trials_by_id(run)
        assert [t.id for t in run.trials if t.extra.get("baseline")] == ["predict_row-b1"]
        base = trials["predict_row-b1"].extra["rows_per_s"]
        rows = {r["mode"]: r for r in found[run.strategy["processes"]]["rows"]}
        marked = [label for label, r in rows.items() if "(baseline)" in r["× per-row model.predict"]]
        assert marked == [trials["predict_row-b1"].extra["mode_label"]] == ["model.predict, one row a call"]
        assert rows["model.predict, one row a call"]["× per-row model.predict"] == "1.00× (baseline)"
        for b in (32, 256, 4096):  # batched model.predict is not the baseline
            t = trials[f"predict-b{b}"]
            assert t.extra["baseline"] is False
            assert rows[t.extra["mode_label"]]["× per-row model.predict"] == pr.times(t.extra["rows_per_s"] / base)
        # and batching pays by far more than the spread between runs (generous: measured ~10^3..10^5)
        assert trials["predict_on_batch-b4096"].extra["rows_per_s"] > 50 * base
    assert "do not declare" not in section(report_html, "predict-modes")


def test_rows_in_timed_table_and_rows_predicted_are_both_shown(sweep, report_html):
    found = mode_tables(report_html)
    for run in sweep.result.runs:
        rows = {r["mode"]: r for r in found[run.strategy["processes"]]["rows"]}
        for t in run.trials:
            if "shards" in t.extra:
                continue
            row = rows[t.extra["mode_label"]]
            timed = ROW_LIMIT if t.extra["per_row"] else 4096
            assert t.extra["rows_timed"] == timed
            assert t.extra["rows_predicted"] == t.extra["passes"] * timed == t.samples
            assert row["rows in timed table"] == fmt.num(timed)
            assert row["rows predicted (all passes)"] == fmt.num(t.extra["rows_predicted"])
            assert row["passes"] == fmt.num(t.extra["passes"])
        fast = rows[trials_by_id(run)["predict_on_batch-b4096"].extra["mode_label"]]
        assert fast["rows in timed table"] == "4,096" and fast["rows predicted (all passes)"] != "4,096"


# ---------------------------------------------------------------- console


def test_console_prints_the_per_mode_table(sweep):
    rows = console_rows(sweep.stdout)
    assert rows[0] == ["strategy", "mode", "batch", "rows/s", "ms per row", "× per-row model.predict", "rows in timed table"]
    body = rows[1:]
    for run in sweep.result.runs:
        where = f"cpu×{run.strategy['processes']}p"
        mine = {(r[1], r[2]): r for r in body if r[0] == where}
        modes = [t for t in run.trials if "shards" not in t.extra]
        assert len(mine) == len(modes) == 12
        base = trials_by_id(run)["predict_row-b1"].extra["rows_per_s"]
        for t in modes:
            r = mine[(t.extra["mode"], str(t.extra["batch"]))]
            assert r[3] == f"{t.extra['rows_per_s']:,.0f}"
            assert r[4] == f"{t.extra['ms_per_row']:.3g}"
            assert r[5] == pr.times(t.extra["rows_per_s"] / base) + (" (baseline)" if t.extra["baseline"] else "")
            assert r[6] == f"{t.extra['rows_timed']:,}"
        assert [k for k, r in mine.items() if "baseline" in r[5]] == [("predict_row", "1")]
    assert "cpu×1p: accuracy on the same 16 rows: per-row scoring loop" in sweep.stdout
    assert "cpu×2p: 2 shards, 2 at once on 2 processes: " in sweep.stdout


# ---------------------------------------------------------------- seed 000: scoring and shards


def test_evaluate_and_the_per_row_loop_agree_on_the_metric(sweep, report_html):
    notes = html_lib.unescape(section(report_html, "predict-modes"))
    for run in sweep.result.runs:
        trials = trials_by_id(run)
        loop, ev = trials["score_row-b1"].extra, trials["evaluate-b4096"].extra
        assert loop["metric"] == ev["metric"] == "accuracy"
        assert ev["loop_rows"] == loop["metric_rows"] == loop["rows_timed"] == ROW_LIMIT
        assert ev["metric_loop_rows"] == pytest.approx(loop["metric_value"], abs=1e-6)
        assert ev["metric_value"] == pytest.approx(ev["metric_reference"], abs=1e-5)
        assert 0.5 < ev["metric_value"] <= 1.0  # a trained classifier on its own task
        text = pr.agreement_text(pr.mode_rows(run))
        assert text and f"per-row scoring loop {loop['metric_value']:.6g}, model.evaluate {ev['metric_loop_rows']:.6g}" in text
        assert text in notes
        # the shards, together, score the whole table to the same accuracy as one evaluate call
        assert pr.whole_table(run.trials)["metric_value"] == pytest.approx(ev["metric_value"], abs=1e-5)


def test_shard_chain_factors_are_measured_and_consistent(sweep, report_html):
    one, two = sweep.result.runs
    w1, w2 = pr.whole_table(one.trials), pr.whole_table(two.trials)
    # one process scores the shards one after another: the rate is all rows over all timed seconds
    shards1 = [t.extra for t in one.trials if "shards" in t.extra]
    assert w1["concurrency"] == 1 and w1["shards"] == 2
    assert w1["rows_per_s"] == pytest.approx(sum(s["rows_predicted"] for s in shards1)
                                             / sum(s["pass_ends_s"][-1] for s in shards1), rel=1e-6)
    # two processes: measured over the seconds both shards were being scored at once
    shards2 = [t.extra for t in two.trials if "shards" in t.extra]
    assert w2["concurrency"] == 2
    window = (min(s["timed_start_unix"] + s["pass_ends_s"][-1] for s in shards2)
              - max(s["timed_start_unix"] for s in shards2))
    assert w2["window_s"] == pytest.approx(window, rel=1e-6)
    assert 0 < w2["rows"] <= sum(s["rows_predicted"] for s in shards2)
    c = pr.chain(sweep.result.runs)
    loop = trials_by_id(one)["score_row-b1"].extra["rows_per_s"]
    assert c["processes"] == 2 and c["shards"] == 2
    assert c["batched_factor"] == pytest.approx(w1["rows_per_s"] / loop)
    assert c["parallel_factor"] == pytest.approx(w2["rows_per_s"] / w1["rows_per_s"])
    assert c["total_factor"] == pytest.approx(w2["rows_per_s"] / loop)
    assert c["total_factor"] == pytest.approx(c["batched_factor"] * c["parallel_factor"])
    assert c["batched_factor"] > 20  # batched evaluate against one model.predict per row: measured ~10^3
    text = (f"per-row scoring loop {fmt.num(loop)} rows/s -> batched model.evaluate, 2 shards in 1 process: "
            f"{fmt.num(w1['rows_per_s'])} rows/s ({pr.times(c['batched_factor'])}) -> 2 processes at once: "
            f"{fmt.num(w2['rows_per_s'])} rows/s ({pr.times(c['parallel_factor'])}) = {pr.times(c['total_factor'])} in total")
    assert c["text"] == text
    assert text in html_lib.unescape(section(report_html, "predict-modes"))
    assert f"seed 000's chain, measured: {text}" in sweep.stdout
    shard_table = next(t for t in tables(section(report_html, "predict-modes")) if "shards" in t["heads"])
    assert [(r["strategy"], r["scored at once"], r["rows/s of the whole table"]) for r in shard_table["rows"]] == [
        ("cpu×1p×2t", "1", fmt.num(w1["rows_per_s"])), ("cpu×2p×1t", "2", fmt.num(w2["rows_per_s"]))]


def test_factors_are_given_to_three_significant_figures():
    assert [pr.times(v) for v in (1.756, 21.44, 401.6, 4013.0, 162343.0, None)] == [
        "1.76×", "21.4×", "402×", "4,010×", "162,000×", fmt.DASH]


def test_no_chain_without_a_run_at_more_processes(sweep):
    one, two = sweep.result.runs
    assert pr.chain([one]) is None
    assert pr.chain([two]) is None  # no 1-process loop to start from
    missing_shard = dataclasses.replace(one, trials=tuple(t for t in one.trials if t.id != "evaluate_shard-2of2"))
    assert pr.whole_table(missing_shard.trials) is None  # half a table is not the whole table
    assert pr.chain([missing_shard, two]) is None


# ---------------------------------------------------------------- headline sentences


def test_headline_lines_from_measured_numbers(sweep):
    one = sweep.result.runs[0]
    trials = trials_by_id(one)
    base = trials["predict_row-b1"].extra["rows_per_s"]
    batched = [t for t in one.trials if t.extra["task"] == "predict" and not t.extra["per_row"]]
    best = max(batched, key=lambda t: t.extra["rows_per_s"])
    loop, ev = trials["score_row-b1"].extra, trials["evaluate-b4096"].extra
    lines = pr.headline_lines(one)
    assert lines == [
        f"batched {best.extra['mode_label']}: {pr.times(best.extra['rows_per_s'] / base)} "
        "per-row model.predict",
        f"batched {ev['mode_label']}: {pr.times(ev['rows_per_s'] / loop['rows_per_s'])} the per-row scoring loop",
        f"2 shards, 1 at once on 1 process: {fmt.num(pr.whole_table(one.trials)['rows_per_s'])} rows/s of the whole table",
    ]
    # the report's Run gives the same sentences as the RunRecord
    (run,) = [r for r in load_inputs([str(sweep.path)]).runs if r.processes == 1]
    assert pr.headline_lines(run) == lines
    # the sentences follow the declared fields, not the workload's name (the model workload declares them too)
    assert pr.headline_lines(dataclasses.replace(one, workload="model")) == lines
    undeclared = tuple(dataclasses.replace(t, extra={k: v for k, v in t.extra.items() if k != "mode"}) for t in one.trials)
    assert pr.headline_lines(dataclasses.replace(one, workload="predict_modes", trials=undeclared)) == []


# ---------------------------------------------------------------- results written before the fields were declared


@pytest.fixture(scope="session")
def old_result(sweep, tmp_path_factory):
    """The real sweep as the previous workload wrote it: trial extras without the declared fields."""
    doc = json.loads(sweep.path.read_text())
    for run in doc["runs"]:
        run["trials"] = [t for t in run["trials"] if "shards" not in t["extra"]]  # no shard or scoring modes then
        run["trials"] = [t for t in run["trials"] if t["extra"]["mode"] not in ("score_row", "evaluate")]
        for t in run["trials"]:
            t["extra"] = {k: v for k, v in t["extra"].items() if k in OLD_EXTRA}
    path = tmp_path_factory.mktemp("predict-old") / "old.json"
    path.write_text(json.dumps(doc))
    return path


def test_an_old_result_without_baseline_renders_without_a_guessed_one(old_result):
    html = build_report(load_inputs([str(old_result)])).html
    sec = html_lib.unescape(section(html, "predict-modes"))
    found = mode_tables(html)
    assert set(found) == {1, 2}
    for t in found.values():
        assert len(t["rows"]) == 10
        labels = [r["mode"] for r in t["rows"]]
        assert {"predict (batch 32)", "predict (batch 256)", "predict (batch 4096)", "predict_row (batch 1)"} <= set(labels)
        assert all(r["× per-row model.predict"] == fmt.DASH for r in t["rows"])  # no ratio: no guessed baseline
        assert all(r["rows in timed table"] in ("4,096", str(ROW_LIMIT)) for r in t["rows"])
    assert "(baseline)" not in sec
    assert sec.count("do not declare which mode is the per-row model.predict baseline") == 2
    runs = results.load(old_result).runs
    assert pr.headline_lines(runs[0]) == []  # nothing to compare with, so nothing said
    out = predict_modes_output(runs)
    assert any("do not declare a per-row model.predict baseline" in str(x) for x in out)
    rows = [r for r in out[0].columns[5].cells]
    assert rows and all(str(c) == fmt.DASH for c in rows)


def test_strings_from_the_result_are_escaped_and_never_markup(sweep, tmp_path):
    doc = json.loads(sweep.path.read_text())
    trial = next(t for t in doc["runs"][0]["trials"] if t["extra"]["mode"] == "predict")
    trial["extra"]["mode_label"] = "<script>alert(1)</script>"
    trial["extra"]["mode"] = "[red]boom[/red]"
    path = tmp_path / "evil.json"
    path.write_text(json.dumps(doc))
    sec = section(build_report(load_inputs([str(path)])).html, "predict-modes")
    assert "<script>" not in sec and "&lt;script&gt;alert(1)&lt;/script&gt;" in sec
    assert len(re.findall(r"<img ", sec)) == 1  # the chart
    table = predict_modes_output(results.load(path).runs)[0]
    assert "[red]boom[/red]" in [c.plain for c in table.columns[1].cells]
