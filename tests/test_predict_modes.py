"""predict_modes: every mode agrees with the reference, a wrong mode fails its trial, what each
trial declares (mode, batch, baseline, rows timed vs predicted, metric), shards, the ratios."""

from __future__ import annotations

import types

import numpy as np
import pytest

from bench.backends.registry import get_backend
from bench.errors import UsageError
from bench.model.results import TrialRecord
from bench.model.workload import TrialContext, get_workload
from reports import predict as pr
from workloads import predict_modes as pm

TINY = {"rows": "300", "row_limit": "4", "min_time": "0.05"}


def run(workload, config, seed=0, options=TINY):
    import keras

    keras.utils.set_random_seed(seed)
    tf = get_backend("tensorflow")  # what a tensorflow worker gives its trials
    ctx = TrialContext(size="quick", seed=seed, options=options, compile_predict=tf.compile_predict)
    return workload.run_trial(config, ctx)


def test_trials_cover_every_mode_and_validate_options():
    workload = get_workload("predict_modes")
    trials = workload.checked_trials("quick")
    pairs = [(c["mode"], c["batch"]) for c in trials]
    assert pairs == [("evaluate_shard", 4096), ("evaluate_shard", 4096),  # shards first: they start together
                     ("df_apply", 1), ("predict_row", 1), ("call_row", 1), ("predict_on_batch_row", 1),
                     ("tf_function_row", 1), ("score_row", 1), ("predict", 32), ("predict", 256), ("predict", 4096),
                     ("predict_on_batch", 4096), ("tf_function", 4096), ("evaluate", 4096)]
    assert [(c["shard"], c["shards"]) for c in trials[:2]] == [(0, 2), (1, 2)]
    assert {c["model"] for c in trials} == {"pose_classifier"}
    assert trials[0]["rows"] == 4096 and trials[0]["row_limit"] == 8
    full = workload.trials("full")
    assert full[0]["rows"] == 25000 and sum(c["mode"] == "evaluate_shard" for c in full) == 4  # the seed's table
    picked = workload.trials("quick", {"modes": "predict,predict_row", "batch_sizes": "8,64", "model": "lstm_sequence"})
    assert [c["id"] for c in picked] == ["predict_row-b1", "predict-b8", "predict-b64"]
    # a model without labels gets no scoring modes by default, and asking for one is a usage error
    lstm = {c["mode"] for c in workload.trials("quick", {"model": "lstm_sequence"})}
    assert lstm and not lstm & set(pm.SCORING)
    with pytest.raises(UsageError, match=r"'evaluate' needs labels .*\(models with labels: pose_classifier, lorenz\)"):
        workload.trials("quick", {"model": "lstm_sequence", "modes": "evaluate"})
    assert [c["id"] for c in workload.trials("quick", {"shards": "3", "modes": "evaluate_shard"})] == [
        "evaluate_shard-1of3", "evaluate_shard-2of3", "evaluate_shard-3of3"]
    assert set(pm.model_names()) >= {"pose_classifier", "lstm_sequence", "imdb_cnn_lstm", "lorenz"}
    with pytest.raises(UsageError, match="unknown model 'nope'"):
        workload.trials("quick", {"model": "nope"})
    with pytest.raises(UsageError, match="unknown predict mode 'loop'"):
        workload.trials("quick", {"modes": "loop"})
    with pytest.raises(UsageError, match="shards"):
        workload.trials("quick", {"shards": "0"})


def test_every_mode_matches_the_reference_declares_its_fields_and_batching_pays():
    workload = get_workload("predict_modes")
    outs, records = {}, []
    for config in workload.trials("quick", TINY):
        out = run(workload, config)
        e = out.extra
        outs[config["id"]] = out
        per_row = config["mode"] in pm.PER_ROW
        assert (e["mode"], e["batch"], e["per_row"]) == (config["mode"], config["batch"], per_row)
        assert e["baseline"] is (config["mode"] == "predict_row")
        assert e["scoring_baseline"] is (config["mode"] == "score_row")
        assert e["mode_label"] == pm.mode_label(config["mode"], config["batch"], config.get("shard"), config.get("shards"))
        rows = 150 if config["mode"] == "evaluate_shard" else (4 if per_row else 300)
        assert e["rows_timed"] == rows and e["table_rows"] == 300
        assert e["rows_predicted"] == e["passes"] * rows == out.samples
        assert e["ms_per_row"] == pytest.approx(1000 / e["rows_per_s"])
        assert e["timed_s"] >= 0.05 or e["passes"] == 1
        if config["mode"] in pm.SCORING:
            assert e["task"] == "score" and e["metric"] == "accuracy" and "exercise" in e["labels"]
            assert out.quality["metric_abs_diff"] <= 1e-5
            assert e["metric_value"] == pytest.approx(e["metric_reference"], abs=1e-5)
        else:
            assert e["task"] == "predict" and out.quality["max_abs_diff"] <= 1e-4, config["id"]
        records.append(TrialRecord(id=config["id"], config=config, extra=dict(e), samples=out.samples))
    # evaluate scored the per-row loop's rows too: the same accuracy from both, on identical rows
    ev, loop = outs["evaluate-b4096"].extra, outs["score_row-b1"].extra
    assert ev["loop_rows"] == loop["rows_timed"] == 4
    assert ev["metric_loop_rows"] == pytest.approx(loop["metric_value"], abs=1e-6)
    # the shards cover the table once, and together score what evaluate scores on the whole table
    shards = [outs["evaluate_shard-1of2"].extra, outs["evaluate_shard-2of2"].extra]
    assert [(s["shard_start_row"], s["rows_timed"]) for s in shards] == [(0, 150), (150, 150)]
    assert all(len(s["pass_ends_s"]) == s["passes"] and s["pass_ends_s"] == sorted(s["pass_ends_s"]) for s in shards)
    assert np.mean([s["metric_value"] for s in shards]) == pytest.approx(ev["metric_value"], abs=1e-5)
    table = {r["mode"] + f"-b{r['batch']}": r for r in pr.mode_rows(types.SimpleNamespace(trials=records))}
    assert "evaluate_shard-b4096" not in table  # shards are not modes of their own
    assert table["predict_row-b1"]["ratio"] == pytest.approx(1.0)
    # per-row model.predict pays its whole per-call overhead for every row
    assert table["predict-b256"]["ratio"] > 5
    assert table["predict_on_batch-b4096"]["ratio"] > 20
    assert table["tf_function_row-b1"]["ratio"] > 3
    assert table["evaluate-b4096"]["rows_per_s"] > 5 * table["score_row-b1"]["rows_per_s"]


def test_a_wrong_mode_fails_its_trial(monkeypatch):
    workload = get_workload("predict_modes")
    config = next(c for c in workload.trials("quick", TINY) if c["mode"] == "predict_on_batch")

    def off_by_one_row(model, x, batch):  # predictions shifted by one row
        return lambda: np.roll(np.asarray(model.predict_on_batch(x)), 1, axis=0)

    monkeypatch.setitem(pm.MODES, "predict_on_batch", off_by_one_row)
    with pytest.raises(pm.PredictionMismatch, match="predict_on_batch .* differ"):
        run(workload, config)

    def slightly_off(model, x, batch):
        return lambda: np.asarray(model.predict_on_batch(x)) + 1e-2

    monkeypatch.setitem(pm.MODES, "predict_on_batch", slightly_off)
    with pytest.raises(pm.PredictionMismatch):
        run(workload, config)

    def drops_the_last_batch(model, x, batch):
        return lambda: np.asarray(model.predict_on_batch(x[: len(x) // 2]))

    monkeypatch.setitem(pm.MODES, "predict_on_batch", drops_the_last_batch)
    with pytest.raises(pm.PredictionMismatch, match="shapes"):
        run(workload, config)


def test_a_scoring_mode_whose_metric_differs_fails_its_trial(monkeypatch):
    workload = get_workload("predict_modes")
    configs = {c["mode"]: c for c in workload.trials("quick", TINY)}

    def wrong_labels_in_the_loop(model, x, y, batch, metric):  # every label off by one class
        return pm._score_row(model, x, (y + 1) % 4, batch, metric)

    monkeypatch.setitem(pm.SCORE_MODES, "score_row", wrong_labels_in_the_loop)
    with pytest.raises(pm.MetricMismatch, match=r"score_row: accuracy .* differs from .* same 4 rows"):
        run(workload, configs["score_row"])

    def wrong_labels(model, x, y, batch, metric):
        return pm._evaluate(model, x, (y + 1) % 4, batch, metric)

    monkeypatch.setitem(pm.SCORE_MODES, "evaluate", wrong_labels)
    with pytest.raises(pm.MetricMismatch, match="evaluate: accuracy"):
        run(workload, configs["evaluate"])


def test_row_and_table_metrics_agree_with_hand_counts():
    preds = np.array([[0.1, 0.9], [0.8, 0.2], [0.4, 0.6]])
    assert pm.table_metric("accuracy", preds, np.array([1, 1, 1])) == pytest.approx(2 / 3)
    assert [pm.row_metric("accuracy", p, 1) for p in preds] == [1.0, 0.0, 1.0]
    assert pm.row_metric("accuracy", np.array([0.7]), 1) == 1.0  # one sigmoid output
    assert pm.table_metric("mean_squared_error", np.array([[1.0, 3.0]]), np.array([[0.0, 1.0]])) == pytest.approx(2.5)
    assert pm.row_metric("mean_squared_error", np.array([1.0, 3.0]), np.array([0.0, 1.0])) == pytest.approx(2.5)
    assert [pm.shard_rows(10, k, 3) for k in range(3)] == [(0, 3), (3, 6), (6, 10)]


def test_another_workloads_model_can_be_used():
    workload = get_workload("predict_modes")
    options = {**TINY, "model": "lorenz", "modes": "predict_on_batch,predict_row,score_row,evaluate"}
    outs = {c["mode"]: run(workload, c, options=options) for c in workload.trials("quick", options)}
    assert outs["predict_on_batch"].extra["params"] == (3 * 5 + 5) + (5 * 8 + 8) + (8 * 5 + 5) + (5 * 3 + 3)
    assert outs["predict_row"].quality["max_abs_diff"] <= 1e-4
    loop, ev = outs["score_row"].extra, outs["evaluate"].extra
    assert loop["metric"] == ev["metric"] == "mean_squared_error"
    assert ev["metric_loop_rows"] == pytest.approx(loop["metric_value"], rel=1e-4)
    assert workload.data_info("quick", options)["source"] == "generated"
