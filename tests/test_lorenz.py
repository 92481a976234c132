"""Lorenz workload: the quick size still learns (its test RMSE well below an untrained network's)."""

from __future__ import annotations

import numpy as np

from bench.model.workload import TrialContext, get_workload
from workloads.lorenz import SHIFT, TEST_START, TRAIN_L, lorenz_series


def test_quick_trial_learns_the_shifted_series():
    import keras

    y_test = lorenz_series()[TEST_START + SHIFT : TEST_START + TRAIN_L + SHIFT]
    untrained = float(np.sqrt(np.mean(y_test**2)))  # an untrained network outputs ~0: the RMSE of zeros
    workload = get_workload("lorenz")
    config = next(c for c in workload.trials("quick") if c["nodes"] == [5, 16, 16, 16, 16, 16, 5])
    assert config["epochs"] == 20
    keras.utils.set_random_seed(7)
    out = workload.run_trial(config, TrialContext(size="quick", seed=7))
    assert out.quality["rmse"] < 0.6 * untrained  # ~7 against ~17: a learning signal, not noise
    assert out.samples == 20 * TRAIN_L and out.extra["epochs"] == 20
