"""LSTM sequence workload: trials, the model's shape, a quick trial end to end with memory figures."""

from __future__ import annotations

import pytest

from bench.errors import UsageError
from bench.model.workload import TrialContext, get_workload
from workloads import lstm_sequence


def test_trials_are_three_four_layer_stacks_times_folds():
    workload = get_workload("lstm_sequence")
    full = workload.checked_trials("full")
    assert len(full) == 3 * 10
    assert {tuple(c["hidden"]) for c in full} == {tuple(h) for h in lstm_sequence.HIDDEN}
    assert all(len(c["hidden"]) == 4 for c in full)
    quick = workload.trials("quick", {"exercise": "push_up", "folds": "3"})
    assert len(quick) == 3 and quick[0]["id"] == "push_up-lstm32-16-f0of3"  # quick: one 2-layer stack
    assert quick[0]["hidden"] == lstm_sequence.QUICK_HIDDEN == [32, 16]
    seeds = workload.trials("quick", {"stacks": "2"})  # the seed's two smallest stacks instead
    assert [c["hidden"] for c in seeds] == [lstm_sequence.HIDDEN[0]] * 2 + [lstm_sequence.HIDDEN[1]] * 2
    with pytest.raises(UsageError, match="bad stacks option 4"):
        workload.trials("quick", {"stacks": "4"})
    assert workload.data_info("quick", {"exercise": "push_up"})["source"] == "synthetic"
    with pytest.raises(UsageError, match="unknown exercise 'jump'"):
        workload.trials("quick", {"exercise": "jump"})


def test_model_masks_exactly_the_padding_and_stacks_four_lstms():
    import numpy as np

    model = lstm_sequence.build_model([8, 8, 4, 4])
    assert [type(layer).__name__ for layer in model.layers] == ["Masking"] + ["LSTM"] * 4 + ["Dense"]
    x, _, frames = lstm_sequence.sequence_data("squat", 40)
    mask = np.asarray(model.layers[0].compute_mask(x))
    assert mask.sum(1).tolist() == frames.tolist()  # every real frame seen, every padded one masked


def test_quick_trial_learns_and_records_memory():
    import keras

    workload = get_workload("lstm_sequence")
    config = workload.trials("quick")[1]  # the quick stack, fold 1
    keras.utils.set_random_seed(3)
    out = workload.run_trial(config, TrialContext(size="quick", seed=3))
    assert out.quality["accuracy"] > 0.65  # correct vs incorrect: chance is 0.5
    assert out.samples == config["epochs"] * out.extra["train"] == 6 * 240
    assert out.extra["rss_end_bytes"] > 100e6 and out.extra["rss_start_bytes"] > 0
    assert len(out.extra["epoch_s"]) == 6 and out.extra["train_samples_per_s"] > 0
