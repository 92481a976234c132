"""Your own workload: train a small Keras MLP per width; run it with

    python -m bench run examples/my_workload.py:MyWorkload -p 1,2
"""

from bench.model.workload import TrialOutput, Workload


class MyWorkload(Workload):
    name = "my_mlp"
    description = "A small MLP trained on random data, one trial per width"
    throughput_unit = "samples/s"
    quality_key = "loss"
    higher_is_better = False
    options = ("epochs",)  # --opt epochs=N

    def trials(self, size, options=None):
        epochs = int((options or {}).get("epochs", 2 if size == "quick" else 20))
        return [{"id": f"width-{w}", "width": w, "epochs": epochs} for w in (16, 64, 256)]

    def data_info(self, size, options=None):  # recorded with the result
        return {"source": "generated", "name": "random x (4096 x 32), y = x @ w"}

    def run_trial(self, config, ctx):
        import keras  # imported in the worker, never at module level
        import numpy as np

        rng = np.random.default_rng(ctx.seed)
        x = rng.normal(size=(4096, 32)).astype("float32")
        y = x @ rng.normal(size=(32, 1)).astype("float32")
        with ctx.scope():
            model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(config["width"], activation="relu"),
                                      keras.layers.Dense(1)])
            model.compile(optimizer="adam", loss="mse")
        history = model.fit(x, y, epochs=config["epochs"], batch_size=64, verbose=0)
        return TrialOutput(quality={"loss": history.history["loss"][-1]}, samples=len(x) * config["epochs"])
