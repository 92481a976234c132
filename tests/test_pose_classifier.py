"""Pose classifier: the cross-validation grid, the folds, a quick trial end to end, cv_summary."""

from __future__ import annotations

import numpy as np
import pytest

from bench.errors import UsageError
from bench.model.workload import TrialContext, get_workload
from workloads import pose_classifier as pose


def test_full_grid_is_the_seeds_and_trials_are_config_fold_pairs():
    workload = get_workload("pose_classifier")
    full = workload.checked_trials("full")  # unique ids, JSON-able
    keys = {pose.config_key(c) for c in full}
    assert len([k for k in keys if k.startswith("multi-")]) == 24
    for exercise in ("squat", "push_up", "lunge", "bicep_curl"):
        assert len([k for k in keys if k.startswith(exercise + "-")]) == 6
    assert len(full) == (24 + 4 * 6) * 10 and {c["fold"] for c in full} == set(range(10))
    quick = workload.checked_trials("quick")
    assert {c["folds"] for c in quick} == {2} and len(quick) == 2 * 2  # multi (2 networks), 2 folds
    assert {c["task"] for c in quick} == {"multi"}
    only = workload.trials("quick", {"tasks": "squat", "folds": "2"})
    assert [c["id"] for c in only] == ["squat-h32-16-b32-f0of2", "squat-h32-16-b32-f1of2"]
    with pytest.raises(UsageError, match="unknown pose task 'jump'"):
        workload.trials("quick", {"tasks": "jump"})


def test_folds_partition_the_data():
    parts = [pose.fold_indices(100, 3, k) for k in range(3)]
    valid = np.concatenate([v for _, v in parts])
    assert sorted(valid.tolist()) == list(range(100))
    for train, v in parts:
        assert len(np.intersect1d(train, v)) == 0 and len(train) + len(v) == 100
    np.testing.assert_array_equal(pose.fold_indices(100, 3, 1)[1], parts[1][1])  # fixed split


def test_quick_trial_end_to_end_is_accurate_and_repeatable():
    import keras

    workload = get_workload("pose_classifier")
    config = next(c for c in workload.trials("quick") if c["task"] == "multi" and c["hidden"] == [64, 32])
    outs = []
    for _ in range(2):
        keras.utils.set_random_seed(5)
        outs.append(workload.run_trial(config, TrialContext(size="quick", seed=5)))
    out = outs[0]
    assert out.quality["accuracy"] > 0.85  # 4 classes: chance is 0.25
    assert outs[1].quality == out.quality  # same seed, same data, same result
    assert out.extra["train"] == 600 and out.extra["valid"] == 600  # 1200 poses, 2 folds
    assert out.samples == config["epochs"] * 600
    assert len(out.extra["epoch_s"]) == config["epochs"] and out.warmup_s == out.extra["epoch_s"][0]
    assert out.extra["params"] == (28 * 64 + 64) + (64 * 32 + 32) + (32 * 4 + 4)


def test_binary_trial_learns_the_start_position():
    import keras

    workload = get_workload("pose_classifier")
    config = workload.trials("quick", {"tasks": "push_up"})[0]
    keras.utils.set_random_seed(1)
    out = workload.run_trial(config, TrialContext(size="quick", seed=1))
    assert out.quality["accuracy"] > 0.75  # chance is 0.5


def test_cv_summary_means_per_configuration():
    def record(task, fold, accuracy, wall, error=None):
        config = {"task": task, "hidden": [32], "batch": 16, "fold": fold}
        return {"config": config, "quality": {"accuracy": accuracy}, "wall_s": wall, "error": error}

    summary = pose.cv_summary(
        [record("multi", 0, 0.8, 2.0), record("multi", 1, 0.9, 4.0), record("squat", 0, 0.5, 1.0),
         record("squat", 1, 0.0, 9.0, error={"kind": "oom"})]
    )
    assert summary["multi-h32-b16"] == {"mean_accuracy": pytest.approx(0.85), "folds": 2, "mean_wall_s": 3.0}
    assert summary["squat-h32-b16"]["folds"] == 1  # the failed fold is left out
