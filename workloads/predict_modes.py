"""Per-row versus batched prediction (seed 000).

A trained model (default: the pose classifier's 28 -> 64 -> 32 -> 4 network; the ``model`` option,
from ``--model``, picks any workload's) predicts a table of rows in each of the ways people write
it: the seed's pandas ``df.apply(lambda row: model.predict(...))`` loop, per-row ``model.predict``,
``model(x, training=False)``, ``predict_on_batch`` and a ``tf.function``-compiled call, then
batched ``model.predict`` at several batch sizes, batched ``predict_on_batch`` and batched
``tf.function``. A trial is one (mode, batch size). Each trial checks its predictions against a
reference (``model(x, training=False)`` in chunks) and fails if they differ; its rows/s go in
``extra["rows_per_s"]`` and ``mode_ratios`` relates every trial to per-row ``model.predict``.

Per-row modes are timed on the first ``row_limit`` rows only (recorded as ``rows_timed``):
per-row ``model.predict`` costs ~60 ms a call. Fast modes repeat whole passes until ``min_time``
seconds so their rate is not a timer artefact (``passes`` says how many).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from bench.workload import TrialContext, TrialOutput, Workload
from workloads._common import int_option, record_field

BASELINE = "predict_row"
PER_ROW = ("df_apply", "predict_row", "call_row", "predict_on_batch_row", "tf_function_row")
BATCHED = {"predict": (32, 256, 4096), "predict_on_batch": (4096,), "tf_function": (4096,)}
# rows in the table, rows timed in per-row modes, minimum seconds timed per trial
SETUPS = {
    "quick": {"rows": 4096, "row_limit": 40, "min_time": 0.5},
    "full": {"rows": 25000, "row_limit": 1000, "min_time": 3.0},
}
DEFAULT_MODEL, MODEL_SEED = "pose_classifier", 1234
RTOL, ATOL = 1e-3, 1e-5
_models: dict[tuple, tuple] = {}


class PredictionMismatch(AssertionError):
    """A mode's predictions differ from the reference."""


# ------------------------------------------------------------------- the modes
# Each mode: mode(model, x, batch) -> a callable that predicts every row of x, as one array.
# Building the callable (a DataFrame, a tf.function) is set-up; calling it is what is timed.


def _rows(predict_one: Callable) -> Callable:
    def factory(model, x, batch):
        return lambda: np.stack([np.asarray(predict_one(model, x[i : i + 1]))[0] for i in range(len(x))])

    return factory


def _df_apply(model, x, batch):
    import pandas as pd

    shape, dtype = x.shape[1:], x.dtype
    df = pd.DataFrame(x.reshape(len(x), -1))

    def row_to_output(row):  # the seed's loop: build the model input from a row, predict it
        return model.predict(row.to_numpy(dtype=dtype).reshape((1,) + shape), verbose=0)[0]

    return lambda: np.stack(df.apply(row_to_output, axis=1).to_list())


def _compiled(model, x):
    import tensorflow as tf

    spec = tf.TensorSpec((None,) + x.shape[1:], tf.as_dtype(x.dtype))
    return tf.function(lambda t: model(t, training=False), input_signature=[spec])


def _tf_function_row(model, x, batch):
    fn = _compiled(model, x)
    return lambda: np.stack([fn(x[i : i + 1]).numpy()[0] for i in range(len(x))])


def _chunked(predict_chunk: Callable) -> Callable:
    def factory(model, x, batch):
        return lambda: np.concatenate([np.asarray(predict_chunk(model, x[i : i + batch])) for i in range(0, len(x), batch)])

    return factory


def _tf_function(model, x, batch):
    fn = _compiled(model, x)
    return lambda: np.concatenate([fn(x[i : i + batch]).numpy() for i in range(0, len(x), batch)])


MODES: dict[str, Callable] = {
    "df_apply": _df_apply,
    "predict_row": _rows(lambda m, r: m.predict(r, verbose=0)),
    "call_row": _rows(lambda m, r: m(r, training=False)),
    "predict_on_batch_row": _rows(lambda m, r: m.predict_on_batch(r)),
    "tf_function_row": _tf_function_row,
    "predict": lambda model, x, batch: (lambda: model.predict(x, batch_size=batch, verbose=0)),
    "predict_on_batch": _chunked(lambda m, c: m.predict_on_batch(c)),
    "tf_function": _tf_function,
}


def reference(model, x: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """The predictions every mode must match: ``model(x, training=False)`` in chunks.

    Args:
        model: A Keras model.
        x: Input rows.
        chunk: Rows per call.
    """
    return np.concatenate([np.asarray(model(x[i : i + chunk], training=False)) for i in range(0, len(x), chunk)])


# ------------------------------------------------------------------- models


def _lorenz_setup(size: str, rows: int, options: Mapping[str, Any] | None = None):
    """The Lorenz workload's [5, 8, 5] network, trained 5 epochs; rows from its test range.

    (The Lorenz module has no ``predict_setup`` of its own; this stands in for it.)

    Args:
        size: Unused (the Lorenz data has one size).
        rows: Number of input rows wanted.
        options: Unused.
    """
    import keras

    from workloads.lorenz import BATCH, SHIFT, TEST_START, TRAIN_L, lorenz_series

    xyz = lorenz_series()
    model = keras.Sequential([keras.Input(shape=(3,))] + [keras.layers.Dense(n, activation="relu") for n in (5, 8, 5)]
                             + [keras.layers.Dense(3)])
    model.compile(loss="mean_squared_error", optimizer="adam")
    model.fit(xyz[:TRAIN_L], xyz[SHIFT : TRAIN_L + SHIFT], epochs=5, batch_size=BATCH, verbose=0)
    return model, np.resize(xyz[TEST_START:], (rows, 3))


def model_names() -> list[str]:
    """Workloads whose model predict_modes can use."""
    from bench.workload import get_workload, workload_names

    names = []
    for name in workload_names():
        if name == "lorenz" or (name != PredictModesWorkload.name and hasattr(get_workload(name), "predict_setup")):
            names.append(name)
    return names


def trained_model(name: str, size: str, rows: int, options: Mapping[str, Any] | None = None):
    """A workload's trained model and ``rows`` input rows; built once per process and reused.

    The model is built from a fixed seed, so every trial of a run predicts with the same model.

    Args:
        name: Workload name (``model`` option).
        size: ``quick`` or ``full``.
        rows: Rows in the table.
        options: Workload options, passed to the model's workload.

    Returns:
        ``(model, x, setup_s)``: ``setup_s`` is 0 when the model was cached.
    """
    key = (name, size, rows, tuple(sorted((k, str(v)) for k, v in (options or {}).items())))
    if key in _models:
        return (*_models[key], 0.0)
    import keras

    from bench.workload import get_workload

    t0 = time.perf_counter()
    keras.utils.set_random_seed(MODEL_SEED)
    setup = _lorenz_setup if name == "lorenz" else get_workload(name).predict_setup
    model, x = setup(size, rows, options)
    _models.clear()  # one model at a time: they can be large
    _models[key] = (model, x)
    return model, x, time.perf_counter() - t0


def mode_ratios(trials: Iterable[Any]) -> list[dict]:
    """Rows/s of every finished trial and its ratio to per-row ``model.predict`` of the same model.

    Args:
        trials: ``TrialRecord`` objects or their dicts (``id``, ``config``, ``extra``, optional
            ``error``), e.g. one run's trials. Failed trials are left out.

    Returns:
        One dict per trial, in the order given: ``id``, ``model``, ``mode``, ``batch``,
        ``rows_per_s``, ``rows_timed``, ``ratio`` (None without a baseline trial).
    """
    rows = []
    for t in trials:
        extra, config = record_field(t, "extra") or {}, record_field(t, "config") or {}
        if record_field(t, "error") or "rows_per_s" not in extra:
            continue
        rows.append({"id": record_field(t, "id") or config.get("id"), "model": config.get("model"), "mode": config.get("mode"),
                     "batch": config.get("batch"), "rows_per_s": float(extra["rows_per_s"]),
                     "rows_timed": extra.get("rows_timed")})
    base: dict[Any, list[float]] = {}
    for r in rows:
        if r["mode"] == BASELINE:
            base.setdefault(r["model"], []).append(r["rows_per_s"])
    for r in rows:
        b = base.get(r["model"])
        r["ratio"] = r["rows_per_s"] / float(np.mean(b)) if b else None
    return rows


class PredictModesWorkload(Workload):
    """Rows/s of each way to predict with a trained model; predictions checked against a reference."""

    name = "predict_modes"
    description = "Per-row vs batched predict: df.apply, predict, __call__, tf.function... (seed 000); rows/s"
    throughput_unit = "rows/s"
    quality_key = "max_abs_diff"
    higher_is_better = False
    options = ("model", "rows", "row_limit", "min_time", "modes", "batch_sizes")

    def setup(self, size: str, options: Mapping[str, Any] | None = None) -> dict:
        """The size's setup with option overrides (rows, row_limit, min_time, model).

        Args:
            size: ``quick`` or ``full``.
            options: Workload options (strings from the command line, or numbers).
        """
        options = options or {}
        s = {k: int_option(options, k, v) for k, v in SETUPS[size].items() if k != "min_time"}
        s["min_time"] = float(options.get("min_time") or SETUPS[size]["min_time"])
        s["model"] = str(options.get("model") or DEFAULT_MODEL)
        return s

    def trials(self, size: str, options: Mapping[str, Any] | None = None) -> list[dict]:
        from bench.errors import choices_error

        options = options or {}
        s = self.setup(size, options)
        if s["model"] not in model_names():
            raise choices_error("model", s["model"], model_names())
        batched = dict(BATCHED)
        if options.get("batch_sizes"):
            batched["predict"] = tuple(int(b) for b in str(options["batch_sizes"]).split(","))
        pairs = [(m, 1) for m in PER_ROW] + [(m, b) for m, sizes in batched.items() for b in sizes]
        wanted = str(options.get("modes") or "").split(",") if options.get("modes") else list(MODES)
        unknown = [m for m in wanted if m not in MODES]
        if unknown:
            raise choices_error("predict mode", unknown[0], MODES)
        return [{"id": f"{m}-b{b}", "mode": m, "batch": b, **s} for m, b in pairs if m in wanted]

    def data_info(self, size: str, options: Mapping[str, Any] | None = None) -> dict:
        from bench.workload import get_workload

        s = self.setup(size, options)
        info = get_workload(s["model"]).data_info(size, options)
        return {**info, "model": s["model"], "rows": s["rows"]}

    def run_trial(self, config: Mapping[str, Any], ctx: TrialContext) -> TrialOutput:
        import keras

        mode, batch = config["mode"], int(config["batch"])
        with ctx.scope():
            model, table, setup_s = trained_model(config["model"], ctx.size, int(config["rows"]), ctx.options)
        keras.utils.set_random_seed(ctx.seed)
        x = table[: int(config["row_limit"])] if mode in PER_ROW else table
        t0 = time.perf_counter()
        MODES[mode](model, x[: 2 * batch + 1], batch)()  # warm-up: tracing, a full and a partial batch
        run = MODES[mode](model, x, batch)
        warmup_s = time.perf_counter() - t0
        passes, elapsed, pred = 0, 0.0, None
        while passes == 0 or elapsed < float(config["min_time"]):
            t0 = time.perf_counter()
            out = run()
            elapsed += time.perf_counter() - t0
            passes += 1
            pred = out if pred is None else pred
        pred, ref = np.asarray(pred), reference(model, x)
        same_shape = pred.shape == ref.shape
        diff = float(np.max(np.abs(pred - ref))) if same_shape else float("inf")
        if not (same_shape and np.allclose(pred, ref, rtol=RTOL, atol=ATOL)):
            raise PredictionMismatch(
                f"mode {mode} (batch {batch}) predictions differ from the reference: max |diff| {diff:.3g} "
                f"over {len(x)} rows (rtol {RTOL}, atol {ATOL}); shapes {pred.shape} vs {ref.shape}"
            )
        rows_done = passes * len(x)
        return TrialOutput(
            quality={"max_abs_diff": diff},
            samples=float(rows_done),
            warmup_s=setup_s + warmup_s,
            extra={
                "model": config["model"], "mode": mode, "batch": batch, "rows_per_s": rows_done / elapsed,
                "rows_timed": len(x), "passes": passes, "timed_s": elapsed, "ms_per_row": 1000 * elapsed / rows_done,
                "model_setup_s": setup_s, "params": int(model.count_params()), "table_rows": len(table),
            },
        )
