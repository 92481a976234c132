"""Lorenz-attractor MLP hyper-parameter sweep (seed 001).

The Lorenz system (sigma=10, rho=28, beta=8/3) is integrated over t in [0, 20] with 9999 points
from [1, 1, 1]. A Dense ReLU network (input 3, linear output 3; Adam, MSE) learns to shift the
series 99 steps ahead: trained on xyz[:900] -> xyz[99:999] with batch 100, scored by RMSE on
xyz[5000:5900] -> xyz[5099:5999]. Trials are the seed's depth and width grids (quick: 4 of
the 8 networks).
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import numpy as np

from bench.measure.flops import model_flops
from bench.model.workload import TrialContext, TrialOutput, Workload
from workloads._common import int_option

DEPTHS = [[5, 8, 5], [5, 8, 8, 5], [5, 8, 8, 8, 5], [5, 8, 8, 8, 8, 5], [5, 8, 8, 8, 8, 8, 5]]
WIDTHS = [[5, 2, 2, 5, 2, 2, 5], [5, 8, 10, 12, 14, 8, 5], [5, 16, 16, 16, 16, 16, 5]]
# quick: 20 epochs (180 steps) halve the test RMSE of an untrained network (~17, predicting zeros) to
# ~7; at 5 epochs (the quick size before) it stayed at ~15: no learning signal
EPOCHS = {"quick": 20, "full": 999}
# quick trains 4 of the 8 networks (each ~2 s on 2 cores, most of it building and tracing): the
# shallowest and a 3-layer one of the depth grid, the narrowest and the widest of the width grid;
# full trains the seed's grids
QUICK = {"depth": ([5, 8, 5], [5, 8, 8, 8, 5]), "width": ([5, 2, 2, 5, 2, 2, 5], [5, 16, 16, 16, 16, 16, 5])}
TRAIN_L, SHIFT, TEST_START, BATCH = 900, 99, 5000, 100


@functools.lru_cache(maxsize=1)
def lorenz_series(points: int = 9999, t_end: float = 20.0) -> np.ndarray:
    """The seed's trajectory: scipy odeint of the Lorenz system from [1, 1, 1]."""
    from scipy.integrate import odeint

    sigma, rho, beta = 10.0, 28.0, 8.0 / 3.0

    def deriv(v, _t):
        x, y, z = v
        return [sigma * (y - x), x * (rho - z) - y, x * y - beta * z]

    t = np.linspace(0.0, t_end, points)
    return odeint(deriv, np.ones(3), t).astype("float32")


class LorenzWorkload(Workload):
    """Dense ReLU networks predicting the Lorenz state 99 steps ahead; quality is test RMSE."""

    name = "lorenz"
    description = "Lorenz-attractor MLP sweep over depth/width (seed 001); RMSE"
    throughput_unit = "samples/s"
    quality_key = "rmse"
    higher_is_better = False
    options = ("epochs",)

    def trials(self, size: str, options: Mapping[str, Any] | None = None) -> list[dict]:
        epochs = int_option(options, "epochs", EPOCHS[size])
        depths, widths = (QUICK["depth"], QUICK["width"]) if size == "quick" else (DEPTHS, WIDTHS)
        grid = [("depth", list(n)) for n in depths] + [("width", list(n)) for n in widths]
        return [
            {"id": f"{kind}-{'-'.join(map(str, nodes))}-e{epochs}", "grid": kind, "nodes": nodes, "epochs": epochs}
            for kind, nodes in grid
        ]

    def data_info(self, size: str, options=None) -> dict:
        return {"source": "generated", "name": "lorenz odeint, 9999 points, t in [0, 20]"}

    def run_trial(self, config: Mapping[str, Any], ctx: TrialContext) -> TrialOutput:
        import time

        import keras

        xyz = lorenz_series()
        x_train, y_train = xyz[:TRAIN_L], xyz[SHIFT : TRAIN_L + SHIFT]
        x_test = xyz[TEST_START : TEST_START + TRAIN_L]
        y_test = xyz[TEST_START + SHIFT : TEST_START + TRAIN_L + SHIFT]
        with ctx.scope():
            model = keras.Sequential([keras.Input(shape=(3,))])
            for n in config["nodes"]:
                model.add(keras.layers.Dense(n, activation="relu"))
            model.add(keras.layers.Dense(3, activation="linear"))
            model.compile(loss="mean_squared_error", optimizer="adam")
        epochs = int(config["epochs"])
        t0 = time.perf_counter()
        model.fit(x_train, y_train, epochs=1, batch_size=BATCH * ctx.replicas, verbose=0, shuffle=True)
        warmup = time.perf_counter() - t0
        if epochs > 1:
            model.fit(
                x_train, y_train, initial_epoch=1, epochs=epochs, batch_size=BATCH * ctx.replicas, verbose=0, shuffle=True
            )
        pred = model.predict(x_test, batch_size=1000, verbose=0)
        rmse = float(np.sqrt(np.mean((y_test - pred) ** 2)))
        return TrialOutput(
            quality={"rmse": rmse},
            samples=float(epochs * TRAIN_L),
            warmup_s=warmup,
            extra={
                "epochs": epochs,
                "params": int(model.count_params()),
                "replicas": ctx.replicas,
                "global_batch": BATCH * ctx.replicas,
                # training on epochs x 900 rows, then predicting the 900 test rows (bench.measure.flops)
                "flops": model_flops(model).trial(trained=epochs * TRAIN_L, evaluated=len(x_test)),
            },
        )
