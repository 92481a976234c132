"""A tiny workload for device-strategy tests: a seconds-long regression that runs under any
device strategy (built in ``ctx.scope()``, global batch fixed so every strategy takes the same
optimisation steps and reaches the same loss).

Importable as ``fakes.tiny_workload`` with ``tests/`` on ``sys.path`` (never ``tests/fakes``
itself: that would put the fake ``pynvml`` first).
"""

from __future__ import annotations

import time
from typing import Any, Mapping

import numpy as np

from bench.model.workload import TrialContext, TrialOutput, Workload

GLOBAL_BATCH = 64
N = 512


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A noiseless linear target with a bias: learnable, so the loss falls."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, 4)).astype("float32")
    y = x @ np.array([[1.0], [2.0], [-1.0], [0.5]], dtype="float32") + 0.1
    return x, y.astype("float32")


class TinyWorkload(Workload):
    """Dense 4-8-1 regression trained with SGD; quality is the final training loss (MSE)."""

    name = "tiny_devices"
    options = ("epochs", "hidden")
    description = "test-only tiny regression for device strategies"
    quality_key = "loss"
    higher_is_better = False

    def trials(self, size: str, options: Mapping[str, Any] | None = None) -> list[dict]:
        options = options or {}
        epochs = int(options.get("epochs", 3))
        hidden = [int(h) for h in str(options.get("hidden", "8,16")).split(",")]
        return [{"id": f"tiny-h{h}", "hidden": h, "epochs": epochs} for h in hidden]

    def run_trial(self, config: Mapping[str, Any], ctx: TrialContext) -> TrialOutput:
        import keras

        x, y = data()
        with ctx.scope():
            model = keras.Sequential(
                [keras.Input((4,)), keras.layers.Dense(config["hidden"], activation="relu"), keras.layers.Dense(1)]
            )
            model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
        t0 = time.perf_counter()
        model.fit(x, y, batch_size=GLOBAL_BATCH, epochs=1, shuffle=False, verbose=0)
        warmup = time.perf_counter() - t0
        hist = model.fit(x, y, batch_size=GLOBAL_BATCH, initial_epoch=1, epochs=config["epochs"], shuffle=False,
                         verbose=0)
        pred = model.predict(x, batch_size=N, verbose=0)  # back on the host: part of the timed trial
        return TrialOutput(
            quality={"loss": float(hist.history["loss"][-1]), "mse": float(np.mean((pred - y) ** 2))},
            samples=float(config["epochs"] * N),
            warmup_s=warmup,
            extra={"replicas": ctx.replicas, "global_batch": GLOBAL_BATCH,
                   "per_replica_batch": GLOBAL_BATCH // ctx.replicas},
        )
