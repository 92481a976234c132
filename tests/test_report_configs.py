"""Per-configuration tables from real quick runs: every figure the console and the report show is
checked against the trial records the workloads wrote, and the best configuration is marked."""

from __future__ import annotations

import base64
import io
import re
import statistics

import pytest
from markupsafe import escape
from rich.console import Console

from bench.console import config_tables_output
from reports import build_report, fmt, load_inputs
from reports.configs import BEST, config_tables


def tables(path, kind):
    return [t for t in config_tables(load_inputs([str(path)]).runs) if t.kind == kind]


def rows_by(table, *cols):
    idx = [table.columns.index(c) for c in cols]
    return {tuple(r[i] for i in idx): r for r in table.rows}


def section(page, ident):
    m = re.search(rf'<section id="{re.escape(ident)}">(.*?)</section>', page, re.S)
    assert m, ident
    return m.group(1)


def html_rows(sec):
    return [re.findall(r"<td[^>]*>(.*?)</td>", r, re.S) for r in re.findall(r"<tr>(.*?)</tr>", sec, re.S) if "<td" in r]


def console_text(result, path):
    buf = io.StringIO()
    console = Console(file=buf, width=250)
    for renderable in config_tables_output(result, path):
        console.print(renderable)
    return buf.getvalue()


# ---------------------------------------------------------------- lorenz: per network, by grid


def test_lorenz_rmse_and_trial_time_per_network(lorenz_quick_result):
    result, path = lorenz_quick_result
    (t,) = tables(path, "networks")
    runs = sorted(result.runs, key=lambda r: r.strategy["processes"])
    ref = runs[0]
    strategies = [r.strategy for r in sorted(load_inputs([str(path)]).runs, key=lambda r: r.processes)]
    assert t.columns == ("grid", "hidden layers", "params", "RMSE", *[f"trial s {s}" for s in strategies], "best")
    assert len(t.rows) == len(ref.trials) == 4
    rows = rows_by(t, "grid", "hidden layers")
    for trial in ref.trials:
        row = rows[(trial.config["grid"], "-".join(map(str, trial.config["nodes"])))]
        assert row[2] == str(trial.extra["params"])
        assert row[3] == fmt.num(trial.quality["rmse"], 4)
        for i, run in enumerate(runs):
            wall = next(x.wall_s for x in run.trials if x.id == trial.id)
            assert row[4 + i] == fmt.seconds(wall)
    best = min(ref.trials, key=lambda x: x.quality["rmse"])
    marked = [r for r in t.rows if r[-1] == BEST]
    assert len(marked) == 1 and marked[0][1] == "-".join(map(str, best.config["nodes"]))
    other = {x.config["grid"] for x in ref.trials} - {best.config["grid"]}
    for grid in other:
        gbest = min((x for x in ref.trials if x.config["grid"] == grid), key=lambda x: x.quality["rmse"])
        assert rows[(grid, "-".join(map(str, gbest.config["nodes"])))][-1] == f"best of {grid} grid"
    # the report: one table in the lorenz section, the best row marked, the best named under it
    page = build_report(load_inputs([str(path)])).html
    sec = section(page, "configs-lorenz")
    shown = html_rows(sec)
    assert [r[1] for r in shown] == [r[1] for r in t.rows]
    assert [r for r in shown if r[-1] == BEST][0][3] == fmt.num(best.quality["rmse"], 4)
    assert str(escape(f"lowest RMSE {fmt.num(best.quality['rmse'], 4)} with network")) in sec
    # the console: the same table after the strategy table
    text = console_text(result, path)
    assert "RMSE and trial time per network" in text and BEST in text
    line = next(x for x in text.splitlines() if BEST in x)
    assert fmt.num(best.quality["rmse"], 4) in line and "-".join(map(str, best.config["nodes"])) in line


# ---------------------------------------------------------------- k-fold: per configuration


def _cv_expectations(result):
    ref = min(result.runs, key=lambda r: r.strategy["processes"])
    by: dict[tuple, list] = {}
    for x in ref.trials:
        by.setdefault((x.extra.get("cv_group"), x.extra["config_key"]), []).append(x)
    return ref, by


def _check_cv(result, path, groups_expected):
    (t,) = tables(path, "cv")
    ref, by = _cv_expectations(result)
    assert {g for g, _ in by} == groups_expected
    multi = len(groups_expected) > 1
    assert ("group" in t.columns) == multi
    rows = rows_by(t, "configuration")
    runs = sorted(result.runs, key=lambda r: r.strategy["processes"])
    strategies = [r.strategy for r in sorted(load_inputs([str(path)]).runs, key=lambda r: r.processes)]
    assert [c for c in t.columns if c.startswith("time/fold")] == [f"time/fold {s}" for s in strategies]
    best_of = {}
    for (group, key), folds in by.items():
        row = rows[(key,)]
        accs = [x.quality["accuracy"] for x in folds]
        assert row[t.columns.index("mean accuracy")] == fmt.num(statistics.fmean(accs), 3)
        assert row[t.columns.index("std")] == fmt.num(statistics.pstdev(accs), 2)
        assert row[t.columns.index("folds done")] == f"{len(folds)}/{folds[0].config['folds']}"
        assert row[t.columns.index("hidden layers")] == "-".join(map(str, folds[0].config["hidden"]))
        for s, run in zip(strategies, runs):
            walls = [x.wall_s for x in run.trials if x.extra.get("config_key") == key]
            assert row[t.columns.index(f"time/fold {s}")] == fmt.seconds(statistics.median(walls))
        if group not in best_of or statistics.fmean(accs) > best_of[group][1]:
            best_of[group] = (key, statistics.fmean(accs))
    compared = {g for g, _ in by if sum(1 for gg, _ in by if gg == g) > 1}  # groups of 2+ configurations
    best_of = {g: v for g, v in best_of.items() if g in compared}
    marked = {r[t.columns.index("configuration")] for r in t.rows if r[-1] == BEST}
    assert marked == {k for k, _ in best_of.values()} and len(t.best) == len(best_of)
    for group, (key, mean) in best_of.items():
        assert any(b.startswith("best by mean CV accuracy") and f": {key}, {fmt.num(mean, 3)}" in b for b in t.best)
    return t, best_of


def test_pose_classifier_per_configuration(pose_quick_result):
    result, path = pose_quick_result
    t, best_of = _check_cv(result, path, {"multi", "squat"})
    page = build_report(load_inputs([str(path)])).html
    sec = section(page, "configs-pose-classifier")
    shown = html_rows(sec)
    assert len(shown) == len(t.rows) == 3
    assert {r[1] for r in shown if r[-1] == BEST} == {k for k, _ in best_of.values()}
    assert "Best by mean CV accuracy (multi)" in sec
    text = console_text(result, path)
    assert "cross-validation per configuration" in text
    assert f"Best by mean CV accuracy (multi): {best_of['multi'][0]}" in text


def test_lstm_sequence_per_configuration(lstm_quick_result):
    result, path = lstm_quick_result
    t, best_of = _check_cv(result, path, {"squat"})
    assert len(t.rows) == 3
    (key, mean), = best_of.values()
    assert t.best[0].startswith(f"best by mean CV accuracy: {key}, {fmt.num(mean, 3)}")


# ---------------------------------------------------------------- imdb: per epoch, time to accuracy


def test_imdb_time_and_accuracy_per_epoch(imdb_quick_result):
    result, path = imdb_quick_result
    (t,) = tables(path, "epochs")
    trials = result.runs[0].trials
    assert len(trials) == 2 and len(t.rows) == 4
    for x in trials:
        e = x.extra
        assert [p["train_s"] for p in e["time_to_accuracy"]] == pytest.approx(list(
            map(sum, (e["epoch_s"][: i + 1] for i in range(len(e["epoch_s"]))))))
        mine = [r for r in t.rows if r[0] == x.id]
        assert [r[1] for r in mine] == ["1 (warm-up)", "2"]
        for i, r in enumerate(mine):
            assert r[2] == fmt.seconds(e["epoch_s"][i])
            assert r[3] == fmt.num(e["epoch_samples_per_s"][i]) == fmt.num(e["train"] / e["epoch_s"][i])
            assert r[5] == fmt.num(e["epoch_heldout_accuracy"][i], 3)
            assert r[6] == fmt.seconds(e["time_to_accuracy"][i]["train_s"])
        assert mine[-1][7] == fmt.num(x.quality["accuracy"], 3) and mine[0][7] == ""
    best = max(trials, key=lambda x: x.quality["accuracy"])
    assert [r[0] for r in t.rows if r[-1] == BEST] == [best.id]
    steady = statistics.median(x.extra["epoch_s"][1] for x in trials)
    assert t.best[0].startswith(f"warm-up epoch {fmt.seconds(statistics.median(x.extra['epoch_s'][0] for x in trials))} "
                                f"against {fmt.seconds(steady)} per later epoch")
    assert [c[0] for c in t.curves] == [x.id for x in trials]
    # the report: the table and a decodable time-to-accuracy PNG
    page = build_report(load_inputs([str(path)])).html
    sec = section(page, "configs-imdb-cnn-lstm")
    pngs = [base64.b64decode(m) for m in re.findall(r'<img src="data:image/png;base64,([^"]+)"', sec)]
    assert len(pngs) == 1 and pngs[0].startswith(b"\x89PNG")
    assert "accuracy vs training seconds" in sec
    assert len(html_rows(sec)) == 4
    text = console_text(result, path)
    assert "1 (warm-up)" in text and "time and accuracy per epoch" in text
