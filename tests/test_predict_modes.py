"""predict_modes: every mode agrees with the reference, a wrong mode fails its trial, the ratios."""

from __future__ import annotations

import numpy as np
import pytest

from bench.errors import UsageError
from bench.workload import TrialContext, get_workload
from workloads import predict_modes as pm

TINY = {"rows": "300", "row_limit": "4", "min_time": "0.05"}


def run(workload, config, seed=0, options=TINY):
    import keras

    keras.utils.set_random_seed(seed)
    return workload.run_trial(config, TrialContext(size="quick", seed=seed, options=options))


def test_trials_cover_every_mode_and_validate_options():
    workload = get_workload("predict_modes")
    trials = workload.checked_trials("quick")
    pairs = [(c["mode"], c["batch"]) for c in trials]
    assert pairs == [("df_apply", 1), ("predict_row", 1), ("call_row", 1), ("predict_on_batch_row", 1),
                     ("tf_function_row", 1), ("predict", 32), ("predict", 256), ("predict", 4096),
                     ("predict_on_batch", 4096), ("tf_function", 4096)]
    assert {c["model"] for c in trials} == {"pose_classifier"}
    assert trials[0]["rows"] == 4096 and trials[0]["row_limit"] == 40
    full = workload.trials("full")
    assert full[0]["rows"] == 25000  # the seed's table
    picked = workload.trials("quick", {"modes": "predict,predict_row", "batch_sizes": "8,64", "model": "lstm_sequence"})
    assert [c["id"] for c in picked] == ["predict_row-b1", "predict-b8", "predict-b64"]
    assert set(pm.model_names()) >= {"pose_classifier", "lstm_sequence", "imdb_cnn_lstm", "lorenz"}
    with pytest.raises(UsageError, match="unknown model 'nope'"):
        workload.trials("quick", {"model": "nope"})
    with pytest.raises(UsageError, match="unknown predict mode 'loop'"):
        workload.trials("quick", {"modes": "loop"})


def test_every_mode_matches_the_reference_and_batching_pays():
    workload = get_workload("predict_modes")
    records = []
    for config in workload.trials("quick", TINY):
        out = run(workload, config)
        assert out.quality["max_abs_diff"] <= 1e-4, config["id"]
        per_row = config["mode"] in pm.PER_ROW
        assert out.extra["rows_timed"] == (4 if per_row else 300)
        assert out.samples == out.extra["passes"] * out.extra["rows_timed"]
        assert out.extra["timed_s"] >= 0.05 or out.extra["passes"] == 1
        records.append({"id": config["id"], "config": config, "extra": dict(out.extra)})
    table = {r["id"]: r for r in pm.mode_ratios(records)}
    assert table["predict_row-b1"]["ratio"] == pytest.approx(1.0)
    # per-row model.predict pays its whole per-call overhead for every row
    assert table["predict-b256"]["ratio"] > 5
    assert table["predict_on_batch-b4096"]["ratio"] > 20
    assert table["tf_function_row-b1"]["ratio"] > 3


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


def test_another_workloads_model_can_be_used():
    workload = get_workload("predict_modes")
    options = {**TINY, "model": "lorenz", "modes": "predict_on_batch,predict_row"}
    outs = {c["mode"]: run(workload, c, options=options) for c in workload.trials("quick", options)}
    assert outs["predict_on_batch"].extra["params"] == (3 * 5 + 5) + (5 * 8 + 8) + (8 * 5 + 5) + (5 * 3 + 3)
    assert outs["predict_row"].quality["max_abs_diff"] <= 1e-4
    assert workload.data_info("quick", options)["source"] == "generated"


def test_mode_ratios_from_records_and_failures():
    class Record:  # a TrialRecord-like object
        def __init__(self, id, mode, rate, error=None):
            self.id, self.error = id, error
            self.config = {"id": id, "mode": mode, "batch": 1, "model": "m"}
            self.extra = {"rows_per_s": rate, "rows_timed": 10}

    rows = pm.mode_ratios([Record("a", "predict_row", 20.0), Record("b", "tf_function", 50000.0),
                           {"id": "c", "config": {"mode": "call_row", "model": "m"}, "extra": {"rows_per_s": 100.0}},
                           Record("d", "predict", 1.0, error={"kind": "exception"})])
    assert [(r["id"], r["ratio"]) for r in rows] == [("a", 1.0), ("b", 2500.0), ("c", 5.0)]
    assert pm.mode_ratios([Record("b", "tf_function", 5.0)])[0]["ratio"] is None  # no baseline
