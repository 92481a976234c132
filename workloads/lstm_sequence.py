"""Stacked-LSTM exercise-repetition classifiers (seed 002).

Sequences of 24-48 frames x 28 keypoint features (``workloads.synthetic.keypoint_sequences``),
labelled correct or incorrect repetition, padded to 48 frames and masked. The model is the
seed's: 4 stacked LSTM layers, 3 hidden-size combinations, sigmoid output (quick: one 2-layer
stack); scored by k-fold cross-validation, a trial being one (combination, fold). Seed 002 found only 3 LSTM processes fit
at once on its 6-core machine, so every trial records its process memory (the worker adds the
peak RSS) for the report to recommend a safe process count.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Mapping

import numpy as np

from bench.measure.flops import model_flops
from bench.model.workload import TrialContext, TrialOutput, Workload
from workloads import synthetic
from workloads._common import fit_timed, int_option, int_options, release_keras, rss_bytes
from workloads.pose_classifier import fold_indices

HIDDEN = ([32, 32, 16, 16], [64, 64, 32, 32], [128, 128, 64, 64])
# quick trains one 2-layer stack (the smallest stack's first and last widths) for 6 epochs: tracing
# a masked LSTM layer's training step costs ~1.1 s on 2 cores, so the seed's smallest 4-layer stack
# took ~6.5 s a trial (3 epochs, ~0.78 accuracy) where this takes ~4.5 s (0.75-0.85); ``--opt stacks=N``
# trains the seed's N smallest stacks instead; full trains the seed's three
QUICK_HIDDEN = [32, 16]
STACKS = {"quick": 0, "full": len(HIDDEN)}  # 0: the quick stack
MIN_FRAMES, MAX_FRAMES, BATCH, DATA_SEED = 24, 48, 32, 4
# sequences, epochs, folds
SETUPS = {
    "quick": {"samples": 480, "epochs": 6, "folds": 2},
    "full": {"samples": 2000, "epochs": 30, "folds": 10},
}


@functools.lru_cache(maxsize=4)
def sequence_data(exercise: str, samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fixed data set of an exercise (the same in every trial and process).

    Args:
        exercise: One of ``synthetic.EXERCISES``.
        samples: Number of sequences.
    """
    seed = DATA_SEED + synthetic.EXERCISES.index(exercise)
    return synthetic.keypoint_sequences(samples, seed=seed, exercise=exercise, min_frames=MIN_FRAMES, max_frames=MAX_FRAMES)


def build_model(hidden: list[int]):
    """A compiled masked stack of LSTM layers -> sigmoid (Adam, binary cross-entropy, accuracy).

    Args:
        hidden: Units of each LSTM layer, first to last.
    """
    import keras

    layers = [keras.Input(shape=(MAX_FRAMES, synthetic.FEATURES)), keras.layers.Masking(0.0)]
    for i, units in enumerate(hidden):
        layers.append(keras.layers.LSTM(units, return_sequences=i < len(hidden) - 1))
    layers.append(keras.layers.Dense(1, activation="sigmoid"))
    model = keras.Sequential(layers)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def config_key(config: Mapping[str, Any]) -> str:
    """The configuration a trial belongs to (its id without the fold).

    Args:
        config: A trial config (``exercise``, ``hidden``).
    """
    return f"{config['exercise']}-lstm{'-'.join(map(str, config['hidden']))}"


class LstmSequenceWorkload(Workload):
    """4-layer LSTMs telling correct from incorrect repetitions, k-fold cross-validated; accuracy."""

    name = "lstm_sequence"
    description = "Stacked LSTM on keypoint sequences, 3 sizes x k folds (seed 002); accuracy, memory"
    throughput_unit = "samples/s"
    quality_key = "accuracy"
    higher_is_better = True
    options = ("samples", "epochs", "folds", "exercise", "stacks")

    def setup(self, size: str, options: Mapping[str, Any] | None = None) -> dict:
        """The size's setup with option overrides (samples, epochs, folds, exercise).

        Args:
            size: ``quick`` or ``full``.
            options: Workload options (strings from the command line, or numbers).
        """
        s = int_options(options, SETUPS[size])
        s["exercise"] = str((options or {}).get("exercise") or "squat")
        if s["exercise"] not in synthetic.EXERCISES:
            from bench.errors import choices_error

            raise choices_error("exercise", s["exercise"], synthetic.EXERCISES)
        return s

    def stacks(self, size: str, options: Mapping[str, Any] | None = None) -> list[list[int]]:
        """The LSTM stacks a size trains: quick, its 2-layer stack; full, the seed's three; option
        ``stacks=N`` (1-3), the seed's N smallest.

        Args:
            size: ``quick`` or ``full``.
            options: Workload options.
        """
        n = int_option(options, "stacks", STACKS[size])
        if n > len(HIDDEN):
            from bench.errors import UsageError

            raise UsageError(f"bad stacks option {n} (choose from 1 to {len(HIDDEN)})")
        return [list(QUICK_HIDDEN)] if n == 0 else [list(h) for h in HIDDEN[:n]]

    def trials(self, size: str, options: Mapping[str, Any] | None = None) -> list[dict]:
        s = self.setup(size, options)
        return [
            {"id": f"{s['exercise']}-lstm{'-'.join(map(str, h))}-f{fold}of{s['folds']}", "hidden": h, "fold": fold, **s}
            for h in self.stacks(size, options)
            for fold in range(s["folds"])
        ]

    def data_info(self, size: str, options: Mapping[str, Any] | None = None) -> dict:
        s = self.setup(size, options)
        return {"source": "synthetic", "name": f"{s['exercise']} keypoint sequences, {MIN_FRAMES}-{MAX_FRAMES} frames "
                "(workloads.synthetic)", "samples": s["samples"]}

    def run_trial(self, config: Mapping[str, Any], ctx: TrialContext) -> TrialOutput:
        try:
            return self._train_and_score(config, ctx)
        finally:
            release_keras()

    def _train_and_score(self, config: Mapping[str, Any], ctx: TrialContext) -> TrialOutput:
        rss0 = rss_bytes()
        x, y, _ = sequence_data(config["exercise"], int(config["samples"]))
        train, valid = fold_indices(len(x), int(config["folds"]), int(config["fold"]))
        with ctx.scope():
            model = build_model(config["hidden"])
        epochs = int(config["epochs"])
        epoch_s = fit_timed(model, x[train], y[train], epochs, BATCH * ctx.replicas)
        t0 = time.perf_counter()
        loss, accuracy = model.evaluate(x[valid], y[valid], batch_size=256, verbose=0)
        steady = epoch_s[1:] or epoch_s
        return TrialOutput(
            quality={"accuracy": float(accuracy), "loss": float(loss)},
            samples=float(epochs * len(train)),
            warmup_s=epoch_s[0],
            extra={
                "train": len(train), "valid": len(valid), "epoch_s": epoch_s, "eval_s": time.perf_counter() - t0,
                "train_samples_per_s": len(train) * len(steady) / sum(steady), "params": int(model.count_params()),
                "data_source": "synthetic", "rss_start_bytes": rss0, "rss_end_bytes": rss_bytes(),
                "replicas": ctx.replicas, "global_batch": BATCH * ctx.replicas,
                "config_key": config_key(config), "fold": int(config["fold"]), "folds": int(config["folds"]),
                "cv_group": config["exercise"],
                "flops": model_flops(model).trial(trained=epochs * len(train), evaluated=len(valid)),
            },
        )

    def predict_setup(self, size: str, rows: int, options: Mapping[str, Any] | None = None):
        """A trained smallest LSTM stack and ``rows`` sequences, for predict_modes.

        Args:
            size: ``quick`` or ``full`` (sets the training samples).
            rows: Number of input rows (sequences) wanted.
            options: Workload options (``exercise``).

        Returns:
            ``(model, x)``.
        """
        s = self.setup(size, options)
        x, y, _ = sequence_data(s["exercise"], s["samples"])
        model = build_model(HIDDEN[0])
        model.fit(x, y, epochs=2, batch_size=BATCH, verbose=0)
        return model, np.resize(x, (rows,) + x.shape[1:])
