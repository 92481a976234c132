"""Pose classifiers with cross-validated hyper-parameter grids (seed 002).

Feed-forward networks over 14 body keypoints (28 normalised features, ``workloads.synthetic``):
one multi-class classifier naming the exercise (4 types) from its start position, and one binary
"in start position?" classifier per exercise. The seed searched hidden-layer configurations x
batch sizes (24 combinations for the multi-class model, 6 per binary model), each scored by
10-fold cross-validation. A trial is one (task, configuration, fold): process strategies spread
the folds. ``cv_summary`` turns trial records into mean accuracy per configuration.
"""

from __future__ import annotations

import functools
import itertools
import time
from typing import Any, Iterable, Mapping

import numpy as np

from bench.measure.flops import model_flops
from bench.model.workload import TrialContext, TrialOutput, Workload
from workloads import synthetic
from workloads._common import fit_timed, int_options, record_field, release_keras, rss_bytes

MULTI_HIDDEN = ([32], [64], [128], [64, 32], [128, 64], [128, 64, 32])
MULTI_BATCHES = (16, 32, 64, 128)  # 6 x 4 = the seed's 24 combinations
BINARY_HIDDEN = ([16], [32, 16], [64, 32])
BINARY_BATCHES = (32, 64)  # 3 x 2 = the seed's 6 combinations per exercise
TASKS = ("multi",) + synthetic.EXERCISES
DATA_SEED, FOLD_SEED = 2, 20
# poses per task, epochs, folds; quick also takes a small slice of the grid
SETUPS = {
    "quick": {"samples": 1200, "epochs": 6, "folds": 2},
    "full": {"samples": 4000, "epochs": 50, "folds": 10},
}
QUICK_GRID = {"multi": [([32], 32), ([64, 32], 32)], "binary": [([32, 16], 32)]}
# quick: the multi-class task, 2 configurations x 2 folds (an exercise's binary task: --opt tasks=multi,squat)
QUICK_TASKS = ("multi",)


@functools.lru_cache(maxsize=8)
def pose_data(task: str, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """The fixed data set of a task (the same in every trial and process).

    Args:
        task: ``multi`` or an exercise name.
        samples: Number of poses.
    """
    return synthetic.poses(samples, seed=DATA_SEED + TASKS.index(task), task=task)


def fold_indices(n: int, folds: int, fold: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices of one fold of a fixed shuffled k-fold split.

    Args:
        n: Number of samples.
        folds: k.
        fold: Which fold validates, 0..k-1.
    """
    parts = np.array_split(np.random.default_rng(FOLD_SEED).permutation(n), folds)
    return np.concatenate(parts[:fold] + parts[fold + 1 :]), parts[fold]


def build_model(hidden: list[int], classes: int):
    """A compiled feed-forward classifier: 28 features -> Dense ReLU layers -> softmax/sigmoid.

    Args:
        hidden: Units of each hidden layer.
        classes: Number of classes (2 -> one sigmoid output).
    """
    import keras

    model = keras.Sequential([keras.Input(shape=(synthetic.FEATURES,))])
    for units in hidden:
        model.add(keras.layers.Dense(units, activation="relu"))
    if classes == 2:
        model.add(keras.layers.Dense(1, activation="sigmoid"))
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    else:
        model.add(keras.layers.Dense(classes, activation="softmax"))
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def config_key(config: Mapping[str, Any]) -> str:
    """The configuration a trial belongs to (its id without the fold).

    Args:
        config: A trial config (``task``, ``hidden``, ``batch``).
    """
    return f"{config['task']}-h{'-'.join(map(str, config['hidden']))}-b{config['batch']}"


def cv_summary(trials: Iterable[Any]) -> dict[str, dict]:
    """Mean cross-validation accuracy per configuration, from finished trials.

    Args:
        trials: ``TrialRecord`` objects or their dicts (``config``, ``quality``, ``wall_s``,
            optional ``error``); failed trials are left out.

    Returns:
        ``{config key: {"mean_accuracy", "folds", "mean_wall_s"}}``.
    """
    groups: dict[str, list[tuple[float, float]]] = {}
    for t in trials:
        quality = record_field(t, "quality") or {}
        if record_field(t, "error") or "accuracy" not in quality:
            continue
        groups.setdefault(config_key(record_field(t, "config")), []).append(
            (quality["accuracy"], record_field(t, "wall_s", 0.0))
        )
    return {
        key: {"mean_accuracy": float(np.mean([a for a, _ in v])), "folds": len(v),
              "mean_wall_s": float(np.mean([w for _, w in v]))}
        for key, v in sorted(groups.items())
    }


class PoseClassifierWorkload(Workload):
    """Multi-class and per-exercise binary pose classifiers, k-fold cross-validated; accuracy."""

    name = "pose_classifier"
    description = "Keypoint pose classifiers, hidden x batch grid x k folds (seed 002); accuracy"
    throughput_unit = "samples/s"
    quality_key = "accuracy"
    higher_is_better = True
    options = ("samples", "epochs", "folds", "tasks")

    def setup(self, size: str, options: Mapping[str, Any] | None = None) -> dict:
        """The size's setup with option overrides (samples, epochs, folds).

        Args:
            size: ``quick`` or ``full``.
            options: Workload options (strings from the command line, or numbers).
        """
        return int_options(options, SETUPS[size])

    def grid(self, size: str, task: str) -> list[tuple[list[int], int]]:
        """(hidden layers, batch size) pairs searched for a task at a size.

        Args:
            size: ``quick`` (a slice of the grid) or ``full`` (the seed's grid).
            task: ``multi`` or an exercise name.
        """
        kind = "multi" if task == "multi" else "binary"
        if size == "quick":
            return QUICK_GRID[kind]
        hidden, batches = (MULTI_HIDDEN, MULTI_BATCHES) if kind == "multi" else (BINARY_HIDDEN, BINARY_BATCHES)
        return [(list(h), b) for h, b in itertools.product(hidden, batches)]

    def trials(self, size: str, options: Mapping[str, Any] | None = None) -> list[dict]:
        s = self.setup(size, options)
        default = QUICK_TASKS if size == "quick" else TASKS
        tasks = [t for t in str((options or {}).get("tasks") or ",".join(default)).split(",") if t]
        unknown = [t for t in tasks if t not in TASKS]
        if unknown:
            from bench.errors import choices_error

            raise choices_error("pose task", unknown[0], TASKS)
        out = []
        for task in tasks:
            for hidden, batch in self.grid(size, task):
                for fold in range(s["folds"]):
                    config = {"task": task, "hidden": list(hidden), "batch": batch, "fold": fold, **s}
                    config["id"] = f"{config_key(config)}-f{fold}of{s['folds']}"
                    out.append(config)
        return out

    def data_info(self, size: str, options: Mapping[str, Any] | None = None) -> dict:
        return {"source": "synthetic", "name": "keypoint poses from skeleton templates (workloads.synthetic)",
                "samples_per_task": self.setup(size, options)["samples"]}

    def run_trial(self, config: Mapping[str, Any], ctx: TrialContext) -> TrialOutput:
        try:
            return self._train_and_score(config, ctx)
        finally:
            release_keras()

    def _train_and_score(self, config: Mapping[str, Any], ctx: TrialContext) -> TrialOutput:
        rss0 = rss_bytes()
        x, y = pose_data(config["task"], int(config["samples"]))
        train, valid = fold_indices(len(x), int(config["folds"]), int(config["fold"]))
        classes = len(synthetic.EXERCISES) if config["task"] == "multi" else 2
        with ctx.scope():
            model = build_model(config["hidden"], classes)
        epochs = int(config["epochs"])
        epoch_s = fit_timed(model, x[train], y[train], epochs, int(config["batch"]) * ctx.replicas)
        t0 = time.perf_counter()
        loss, accuracy = model.evaluate(x[valid], y[valid], batch_size=1024, verbose=0)
        return TrialOutput(
            quality={"accuracy": float(accuracy), "loss": float(loss)},
            samples=float(epochs * len(train)),
            warmup_s=epoch_s[0],
            extra={
                "config_key": config_key(config), "train": len(train), "valid": len(valid), "epoch_s": epoch_s,
                "eval_s": time.perf_counter() - t0, "params": int(model.count_params()), "data_source": "synthetic",
                "rss_start_bytes": rss0, "rss_end_bytes": rss_bytes(),
                "replicas": ctx.replicas, "global_batch": int(config["batch"]) * ctx.replicas,
                "fold": int(config["fold"]), "folds": int(config["folds"]), "cv_group": config["task"],
                "flops": model_flops(model).trial(trained=epochs * len(train), evaluated=len(valid)),
            },
        )

    def predict_setup(self, size: str, rows: int, options: Mapping[str, Any] | None = None):
        """A trained 28 -> 64 -> 32 -> 4 exercise classifier and ``rows`` pose rows, for predict_modes.

        Args:
            size: ``quick`` or ``full`` (sets the training samples).
            rows: Number of input rows wanted.
            options: Workload options (unused).

        Returns:
            ``(model, x, y)``: ``y`` is each row's true exercise (0..3), from the same generator
            as the training poses (a different seed); the model is compiled with ``accuracy``.
        """
        x, y = pose_data("multi", SETUPS[size]["samples"])
        model = build_model([64, 32], len(synthetic.EXERCISES))
        model.fit(x, y, epochs=5, batch_size=32, verbose=0)
        rows_x, rows_y = synthetic.poses(rows, seed=DATA_SEED + 100, task="multi")
        return model, rows_x, rows_y
