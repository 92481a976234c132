"""bench.measure.flops: per-layer formulas against hand counts, a built Keras model walked, and what every
training workload records (checked against the hand count of its own configuration)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.measure import calibrate


# ---------------------------------------------------------------- formulas, by hand

from bench.measure import flops


# ---------------------------------------------------------------- formulas, by hand


def test_layer_formulas_match_hand_counts():
    # Dense 100 -> 1: 100 multiply-adds = 200 FLOPs; on 10 timesteps of width 6 -> 4: 10 x 24 MACs
    assert flops.dense_forward(100, 1) == 200
    assert flops.dense_forward(6, 4, positions=10) == 480
    # Conv1D, 32 channels in, 32 filters, kernel 3, 80 outputs: 80 x 32 x (3 x 32) MACs = 245,760
    assert flops.conv1d_forward(32, 32, 3, 80) == 2 * 245_760
    # LSTM 32 -> 100 over 40 steps: 4 gates x (32 + 100) x 100 = 52,800 MACs per step
    assert flops.lstm_forward(32, 100, 40) == 2 * 52_800 * 40
    # Embedding: a lookup (0), training adds 80 gradient rows of width 32
    assert flops.embedding_forward(80, 32) == 0
    assert flops.embedding_train(80, 32) == 2560


def test_dense_train_flops_is_shared_with_bench_calibrate():
    assert calibrate.dense_train_flops is flops.dense_train_flops
    # Lorenz [5, 8, 5]: 3x5 + 5x8 + 8x5 + 5x3 = 110 MACs = 220 FLOPs forward, x3 to train
    assert flops.dense_train_flops([3, 5, 8, 5, 3], 900) == 3 * 220 * 900
    assert flops.dense_train_flops([3], 10) == 0


def test_importing_bench_flops_imports_no_ml_framework():
    code = ("import sys, bench, bench.measure.flops, bench.measure.calibrate; "
            "print(sorted(m for m in ('keras', 'tensorflow', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------- a user's Keras model


@pytest.fixture(scope="module")
def keras():
    import keras as k

    return k


def test_model_flops_walks_the_imdb_model_like_the_hand_count(keras):
    model = keras.Sequential([
        keras.Input(shape=(80,), dtype="int32"), keras.layers.Embedding(5000, 32),
        keras.layers.Conv1D(32, 3, padding="same", activation="relu"), keras.layers.MaxPooling1D(2),
        keras.layers.LSTM(100), keras.layers.Dense(1, activation="sigmoid"),
    ])
    counted = flops.model_flops(model)
    kinds = [(layer.kind, layer.forward, layer.train) for layer in counted.layers]
    # hand count per review: conv 491,520; LSTM over the 40 pooled steps 4,224,000; dense 200
    assert kinds == [
        ("Embedding", 0.0, 2560.0), ("Conv1D", 491_520.0, 3 * 491_520.0), ("MaxPooling1D", 0.0, 0.0),
        ("LSTM", 4_224_000.0, 3 * 4_224_000.0), ("Dense", 200.0, 600.0),
    ]
    assert counted.forward == 4_715_720
    assert counted.train == 2560 + 3 * (491_520 + 4_224_000 + 200)
    assert counted.uncounted == []
    assert counted.trial(trained=1000, evaluated=10) == counted.train * 1000 + counted.forward * 10


def test_model_flops_nested_models_masks_and_uncounted_layers(keras):
    inner = keras.Sequential([keras.Input(shape=(8,)), keras.layers.Dense(4)])
    outer = keras.Sequential([keras.Input(shape=(5,)), keras.layers.Dense(8), keras.layers.Dropout(0.1), inner])
    assert flops.model_flops(outer).forward == 2 * (5 * 8 + 8 * 4)
    masked = keras.Sequential([keras.Input(shape=(48, 28)), keras.layers.Masking(0.0),
                               keras.layers.LSTM(16, return_sequences=True), keras.layers.Dense(2)])
    # the LSTM sees [inputs, mask]; the Dense runs on every one of the 48 steps
    assert flops.model_flops(masked).forward == 8 * 48 * 16 * (28 + 16) + 2 * 16 * 2 * 48
    gru = keras.Sequential([keras.Input(shape=(5, 3)), keras.layers.GRU(4), keras.layers.Dense(1)])
    counted = flops.model_flops(gru)
    assert counted.uncounted == [f"{gru.layers[0].name} (GRU)"] and counted.forward == 2 * 4


def test_model_flops_conv2d_and_a_functional_models_input_layer(keras):
    inp = keras.Input(shape=(10, 12, 3))
    out = keras.layers.Dense(2)(keras.layers.Flatten()(keras.layers.Conv2D(4, (3, 2), padding="valid")(inp)))
    counted = flops.model_flops(keras.Model(inp, out))
    kinds = [layer.kind for layer in counted.layers]
    assert kinds == ["Conv2D", "Flatten", "Dense"]  # the InputLayer is no layer of work
    conv = 2 * (3 * 2) * 3 * 4 * (8 * 11)  # output 8 x 11 with 'valid' padding
    assert counted.forward == conv + 2 * (8 * 11 * 4) * 2 and counted.uncounted == []
    assert counted.layers[0].train == 3 * conv


def test_model_flops_refuses_an_unbuilt_model(keras):
    with pytest.raises(ValueError, match="never been called"):
        flops.model_flops(keras.Sequential([keras.layers.Dense(3)]))


# ---------------------------------------------------------------- what the workloads record


def _trial_flops(result):
    run = result.runs[0]
    trials = [t for t in run.trials if t.ok]
    assert trials
    for t in trials:
        assert isinstance(t.extra["flops"], float) and t.extra["flops"] > 0
    assert run.summary["flops"] == pytest.approx(sum(t.extra["flops"] for t in trials))
    assert run.summary["gflops"] == pytest.approx(run.summary["flops"] / run.summary["wall_s"] / 1e9)
    return trials


def _dense(widths):
    return sum(2 * a * b for a, b in zip(widths, widths[1:]))


def test_lorenz_records_its_flops(lorenz_quick_result):
    result, _ = lorenz_quick_result
    for t in _trial_flops(result):
        fwd = _dense([3, *t.config["nodes"], 3])
        assert t.extra["flops"] == 3 * fwd * t.config["epochs"] * 900 + fwd * 900


def test_pose_classifier_records_its_flops(pose_quick_result):
    result, _ = pose_quick_result
    for t in _trial_flops(result):
        out = 4 if t.config["task"] == "multi" else 1
        fwd = _dense([28, *t.config["hidden"], out])
        assert t.extra["flops"] == 3 * fwd * t.config["epochs"] * t.extra["train"] + fwd * t.extra["valid"]


def test_lstm_sequence_records_its_flops(lstm_quick_result):
    result, _ = lstm_quick_result
    for t in _trial_flops(result):
        widths = [28, *t.config["hidden"]]
        fwd = sum(8 * 48 * u * (d + u) for d, u in zip(widths, widths[1:])) + 2 * widths[-1]
        assert t.extra["flops"] == 3 * fwd * t.config["epochs"] * t.extra["train"] + fwd * t.extra["valid"]


def test_imdb_records_its_flops(imdb_quick_result):
    result, _ = imdb_quick_result
    for t in _trial_flops(result):
        n = t.config["maxlen"]
        fwd = 2 * 3 * 32 * 32 * n + 8 * (n // 2) * 100 * (32 + 100) + 2 * 100
        train = 3 * fwd + n * 32
        evaluated = t.extra["test"] + t.config["epochs"] * t.extra["heldout"]
        assert t.extra["flops"] == train * t.config["epochs"] * t.extra["train"] + fwd * evaluated
