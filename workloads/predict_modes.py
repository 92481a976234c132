"""Per-row versus batched prediction and scoring (seed 000).

A trained model (default: the pose classifier's 28 -> 64 -> 32 -> 4 network; the ``model`` option,
from ``--model``, picks any workload's) predicts a table of rows in each of the ways people write
it: the seed's pandas ``df.apply(lambda row: model.predict(...))`` loop, per-row ``model.predict``,
``model(x, training=False)``, ``predict_on_batch`` and a compiled call, then batched
``model.predict`` at several batch sizes, batched ``predict_on_batch`` and the batched compiled
call. A trial is one (mode, batch size). Each trial checks its predictions against a reference
(``model(x, training=False)`` in chunks) and fails if they differ.

The compiled call is the backend's (``TrialContext.compile_predict``): ``tf.function`` on
TensorFlow, ``jax.jit`` of the stateless call on JAX, ``torch.compile`` on PyTorch (a trial where
it does not work here fails with the reason, ``Unavailable: ...``). Its modes keep the ids
``tf_function_row`` and ``tf_function`` on every backend, so old result files, resumed runs and
``--opt modes=`` mean what they meant and one mode compares across backends; the label
(``mode_label``) and ``extra["compiler"]`` name the compiler actually used. It is compiled once per
model and process, inside the first compiled trial's warm-up (``extra["compile_s"]``).

Seed 000's two measured steps are modes too, for models whose set-up gives labels (``SCORED``):

- ``score_row``: the seed's scoring loop, ``model.predict`` on one row then the metric in Python;
- ``evaluate``: one batched ``model.evaluate`` with the compiled metric;
- ``evaluate_shard``: the table split into ``shards`` shards, one trial each, every shard scored
  with ``evaluate``. The shard trials come first in the sweep, so at N worker processes N shards
  start together; each records when its timed passes ran (``timed_start_unix``, ``pass_ends_s``)
  so the report measures the rows/s of the whole table while the shards were scored at once
  (:func:`reports.predict.whole_table`), not a multiple of one process's rate.

Every scoring trial checks its metric against the same metric computed with NumPy from the
reference predictions of the same rows, and fails if they differ beyond tolerance; ``evaluate``
also scores the per-row loop's rows, so the two are compared on identical rows.

Every trial declares in its record (``extra``) what the report reads: ``mode``, ``mode_label``,
``batch``, ``task`` (``predict`` or ``score``), ``per_row``, ``baseline`` (True only for per-row
``model.predict``), ``scoring_baseline`` (True only for ``score_row``), ``rows_per_s``,
``ms_per_row``, ``rows_timed`` (rows in the timed table), ``rows_predicted`` (over all passes)
and ``passes``. Per-row modes are timed on the first ``row_limit`` rows only: per-row
``model.predict`` costs ~40 ms a call. Fast modes repeat whole passes until ``min_time`` seconds
(shards: ``SHARD_TIME`` times that, so that shards run at once overlap) so their rate is not a
timer artefact.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping

import numpy as np

from bench.model.workload import TrialContext, TrialOutput, Workload
from workloads._common import float_option, int_list_option, int_option

BASELINE = "predict_row"  # per-row model.predict: what every mode's ratio is against
SCORING_BASELINE = "score_row"  # seed 000's loop: per-row model.predict + the metric in Python
SHARD_MODE = "evaluate_shard"
PER_ROW = ("df_apply", "predict_row", "call_row", "predict_on_batch_row", "tf_function_row", "score_row")
COMPILED = ("tf_function_row", "tf_function")  # modes timing the backend's compiled call (ids kept from TensorFlow)
BATCHED = {"predict": (32, 256, 4096), "predict_on_batch": (4096,), "tf_function": (4096,), "evaluate": (4096,)}
SCORING = ("score_row", "evaluate", SHARD_MODE)  # modes that need labels and a metric
SHARD_BATCH = 4096
SHARD_TIME = 3  # shards time passes for SHARD_TIME x min_time: long enough to overlap when run at once
# rows in the table, rows timed in per-row modes, minimum seconds timed per trial, shards
SETUPS = {
    "quick": {"rows": 4096, "row_limit": 8, "shards": 2, "min_time": 0.1},
    "full": {"rows": 25000, "row_limit": 1000, "shards": 4, "min_time": 3.0},
}
DEFAULT_MODEL, MODEL_SEED = "pose_classifier", 1234
RTOL, ATOL = 1e-3, 1e-5
METRIC_RTOL, METRIC_ATOL = 1e-3, 1e-5
# models whose set-up returns labels: the compiled metric evaluate reports, and what the labels are
SCORED = {
    "pose_classifier": {"metric": "accuracy",
                        "labels": "true exercise (0..3) of each synthetic pose row, from the training data's generator"},
    "lorenz": {"metric": "mean_squared_error", "labels": "the Lorenz state 99 steps later (the training target)"},
}
LABELS = {
    "df_apply": "pandas df.apply(model.predict)", "predict_row": "model.predict", "call_row": "model(x)",
    "predict_on_batch_row": "predict_on_batch", "tf_function_row": "tf.function",
    "score_row": "scoring loop (model.predict + Python metric)",
    "predict": "model.predict", "predict_on_batch": "predict_on_batch", "tf_function": "tf.function",
    "evaluate": "model.evaluate, compiled metric", SHARD_MODE: "model.evaluate",
}
_models: dict[tuple, tuple] = {}
_compiled: dict[int, Callable] = {}  # id(model) -> its compiled call (the model is held by _models)


class PredictionMismatch(AssertionError):
    """A mode's predictions differ from the reference."""


class MetricMismatch(AssertionError):
    """A scoring mode's metric differs from the metric of the reference predictions."""


def mode_label(mode: str, batch: int, shard: int | None = None, shards: int | None = None,
               compiler: str | None = None) -> str:
    """The human name of a trial's mode, e.g. ``model.predict (batch 256)``.

    Args:
        mode: Mode name (a key of ``MODES`` or ``SCORE_MODES``).
        batch: Rows per call (1 for per-row modes).
        shard: Shard index (from 0), for shard trials.
        shards: Number of shards, for shard trials.
        compiler: For the compiled modes: the backend's compiler (``jax.jit``...; default ``tf.function``).
    """
    label = compiler if (mode in COMPILED and compiler) else LABELS[mode]
    if mode in PER_ROW:
        return f"{label}, one row a call"
    if shards:
        return f"{label} of shard {int(shard or 0) + 1}/{shards} (batch {batch})"
    return f"{label} (batch {batch})"


# ------------------------------------------------------------------- the modes
# Each mode: mode(model, x, batch) -> a callable that predicts every row of x, as one array. The
# compiled modes (COMPILED) get the backend's compiled call, fn(batch) -> array, in place of the
# model. Building the callable (a DataFrame, a compiled call) is set-up; calling it is what is timed.


def _host(value) -> np.ndarray:
    """A model output as a NumPy array, whatever the backend (a torch tensor is detached first)."""
    import keras

    return np.asarray(keras.ops.convert_to_numpy(value))


def _rows(predict_one: Callable, to_host: Callable = np.asarray) -> Callable:
    def factory(model, x, batch):
        return lambda: np.stack([to_host(predict_one(model, x[i : i + 1]))[0] for i in range(len(x))])

    return factory


def _df_apply(model, x, batch):
    import pandas as pd

    shape, dtype = x.shape[1:], x.dtype
    df = pd.DataFrame(x.reshape(len(x), -1))

    def row_to_output(row):  # the seed's loop: build the model input from a row, predict it
        return model.predict(row.to_numpy(dtype=dtype).reshape((1,) + shape), verbose=0)[0]

    return lambda: np.stack(df.apply(row_to_output, axis=1).to_list())


def _compiled_row(fn, x, batch):
    return lambda: np.stack([fn(x[i : i + 1])[0] for i in range(len(x))])


def _chunked(predict_chunk: Callable) -> Callable:
    def factory(model, x, batch):
        return lambda: np.concatenate([np.asarray(predict_chunk(model, x[i : i + batch])) for i in range(0, len(x), batch)])

    return factory


def _compiled_batches(fn, x, batch):
    return lambda: np.concatenate([fn(x[i : i + batch]) for i in range(0, len(x), batch)])


MODES: dict[str, Callable] = {
    "df_apply": _df_apply,
    "predict_row": _rows(lambda m, r: m.predict(r, verbose=0)),
    "call_row": _rows(lambda m, r: m(r, training=False), _host),
    "predict_on_batch_row": _rows(lambda m, r: m.predict_on_batch(r)),
    "tf_function_row": _compiled_row,
    "predict": lambda model, x, batch: (lambda: model.predict(x, batch_size=batch, verbose=0)),
    "predict_on_batch": _chunked(lambda m, c: m.predict_on_batch(c)),
    "tf_function": _compiled_batches,
}


def compiled_call(model, x: np.ndarray, ctx: TrialContext) -> tuple[Callable, float]:
    """The backend's compiled call of ``model`` (``ctx.compile_predict``), built once per model and process.

    Args:
        model: The trained model.
        x: The table (its row shape and dtype are what the call is compiled for).
        ctx: The trial's context.

    Returns:
        ``(fn, compile_s)``: ``fn(batch) -> array``; ``compile_s`` is 0 when it was cached.

    Raises:
        RuntimeError: the context has no compiled call (outside a worker).
        bench.backends.base.Unavailable: the backend's compiler does not work here.
    """
    if id(model) in _compiled:
        return _compiled[id(model)], 0.0
    if ctx.compile_predict is None:
        raise RuntimeError("the compiled modes need the backend's compiled call (TrialContext.compile_predict), "
                           "which a worker gives")
    t0 = time.perf_counter()
    fn = ctx.compile_predict(model, x)
    _compiled[id(model)] = fn
    return fn, time.perf_counter() - t0


# ------------------------------------------------------------------- scoring
# A metric in Python for one row, as the seed's loop computed it; and the same metric in NumPy
# over many rows, for the check.


def row_metric(metric: str, pred: np.ndarray, label: Any) -> float:
    """One row's metric in plain Python: 1.0/0.0 for ``accuracy``, the mean squared error else.

    Args:
        metric: ``accuracy`` or ``mean_squared_error``.
        pred: The model's output for the row.
        label: The row's label (a class index, or the target vector).
    """
    pred = np.asarray(pred)
    if metric == "accuracy":
        guess = int(pred[0] > 0.5) if pred.size == 1 else int(np.argmax(pred))
        return 1.0 if guess == int(label) else 0.0
    return float(np.mean((pred.astype(np.float64) - np.asarray(label, np.float64)) ** 2))


def table_metric(metric: str, preds: np.ndarray, labels: np.ndarray) -> float:
    """The metric over many rows with NumPy (what ``model.evaluate`` should report for them).

    Args:
        metric: ``accuracy`` or ``mean_squared_error``.
        preds: Predictions, one row each.
        labels: Labels, one row each.
    """
    preds = np.asarray(preds)
    if metric == "accuracy":
        guess = (preds[:, 0] > 0.5).astype(int) if preds.shape[-1] == 1 else np.argmax(preds, axis=-1)
        return float(np.mean(guess == np.asarray(labels).astype(int)))
    return float(np.mean((preds.astype(np.float64) - np.asarray(labels, np.float64)) ** 2))


def _score_row(model, x, y, batch, metric):
    def run():  # the seed's loop: predict one row, score it in Python, average
        total = 0.0
        for i in range(len(x)):
            total += row_metric(metric, model.predict(x[i : i + 1], verbose=0)[0], y[i])
        return total / len(x)

    return run


def _evaluate(model, x, y, batch, metric):
    def run():
        scores = model.evaluate(x, y, batch_size=batch, verbose=0, return_dict=True)
        if metric not in scores:
            raise MetricMismatch(f"model.evaluate reported no {metric!r} (it reported: {', '.join(scores)}); "
                                 f"the model must be compiled with metrics=[{metric!r}]")
        return float(scores[metric])

    return run


# Each scoring mode: mode(model, x, y, batch, metric) -> a callable returning the metric over x.
SCORE_MODES: dict[str, Callable] = {"score_row": _score_row, "evaluate": _evaluate, SHARD_MODE: _evaluate}


def reference(model, x: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """The predictions every mode must match: ``model(x, training=False)`` in chunks.

    Args:
        model: A Keras model.
        x: Input rows.
        chunk: Rows per call.
    """
    return np.concatenate([_host(model(x[i : i + chunk], training=False)) for i in range(0, len(x), chunk)])


def shard_rows(rows: int, shard: int, shards: int) -> tuple[int, int]:
    """The ``[start, end)`` row range of one shard of a table (shards differ by at most one row).

    Args:
        rows: Rows in the table.
        shard: Shard index, from 0.
        shards: Number of shards.
    """
    return shard * rows // shards, (shard + 1) * rows // shards


# ------------------------------------------------------------------- models


def _lorenz_setup(size: str, rows: int, options: Mapping[str, Any] | None = None):
    """The Lorenz workload's [5, 8, 5] network, trained 5 epochs; rows and targets from its test range.

    (The Lorenz module has no ``predict_setup`` of its own; this stands in for it.)

    Args:
        size: Unused (the Lorenz data has one size).
        rows: Number of input rows wanted.
        options: Unused.

    Returns:
        ``(model, x, y)``: ``y`` is the state 99 steps after each row (the training target).
    """
    import keras

    from workloads.lorenz import BATCH, SHIFT, TEST_START, TRAIN_L, lorenz_series

    xyz = lorenz_series()
    model = keras.Sequential([keras.Input(shape=(3,))] + [keras.layers.Dense(n, activation="relu") for n in (5, 8, 5)]
                             + [keras.layers.Dense(3)])
    model.compile(loss="mean_squared_error", optimizer="adam", metrics=["mean_squared_error"])
    model.fit(xyz[:TRAIN_L], xyz[SHIFT : TRAIN_L + SHIFT], epochs=5, batch_size=BATCH, verbose=0)
    idx = TEST_START + np.arange(rows) % (len(xyz) - TEST_START - SHIFT)
    return model, xyz[idx], xyz[idx + SHIFT]


def model_names() -> list[str]:
    """Workloads whose model predict_modes can use."""
    from bench.model.workload import get_workload, workload_names

    names = []
    for name in workload_names():
        if name == "lorenz" or (name != PredictModesWorkload.name and hasattr(get_workload(name), "predict_setup")):
            names.append(name)
    return names


def trained_model(name: str, size: str, rows: int, options: Mapping[str, Any] | None = None):
    """A workload's trained model, ``rows`` input rows and their labels; built once per process.

    The model is built from a fixed seed, so every trial of a run predicts with the same model.

    Args:
        name: Workload name (``model`` option).
        size: ``quick`` or ``full``.
        rows: Rows in the table.
        options: Workload options, passed to the model's workload.

    Returns:
        ``(model, x, y, setup_s)``: ``y`` is None when the set-up gives no labels; ``setup_s`` is
        0 when the model was cached.
    """
    key = (name, size, rows, tuple(sorted((k, str(v)) for k, v in (options or {}).items())))
    if key in _models:
        return (*_models[key], 0.0)
    import keras

    from bench.model.workload import get_workload

    t0 = time.perf_counter()
    keras.utils.set_random_seed(MODEL_SEED)
    setup = _lorenz_setup if name == "lorenz" else get_workload(name).predict_setup
    built = setup(size, rows, options)
    model, x, y = (*built, None) if len(built) == 2 else built
    _models.clear()  # one model at a time: they can be large
    _compiled.clear()
    _models[key] = (model, x, y)
    return model, x, y, time.perf_counter() - t0


class PredictModesWorkload(Workload):
    """Rows/s of each way to predict or score with a trained model; results checked against a reference."""

    name = "predict_modes"
    description = "Per-row vs batched predict/evaluate, and shards over processes (seed 000); rows/s"
    version = 2
    throughput_unit = "rows/s"
    quality_key = "max_abs_diff"
    higher_is_better = False
    options = ("model", "rows", "row_limit", "min_time", "modes", "batch_sizes", "shards")

    def setup(self, size: str, options: Mapping[str, Any] | None = None) -> dict:
        """The size's setup with option overrides (rows, row_limit, shards, min_time, model).

        Args:
            size: ``quick`` or ``full``.
            options: Workload options (strings from the command line, or numbers).
        """
        options = options or {}
        s = {k: int_option(options, k, v) for k, v in SETUPS[size].items() if k != "min_time"}
        s["min_time"] = float_option(options, "min_time", SETUPS[size]["min_time"])
        s["model"] = str(options.get("model") or DEFAULT_MODEL)
        return s

    def trials(self, size: str, options: Mapping[str, Any] | None = None) -> list[dict]:
        from bench.errors import UsageError, choices_error

        options = options or {}
        s = self.setup(size, options)
        if s["model"] not in model_names():
            raise choices_error("model", s["model"], model_names())
        batched = dict(BATCHED)
        batched["predict"] = int_list_option(options, "batch_sizes", batched["predict"])
        known = list(MODES) + list(SCORE_MODES)
        scored = s["model"] in SCORED
        if options.get("modes"):
            wanted = str(options["modes"]).split(",")
            unknown = [m for m in wanted if m not in known]
            if unknown:
                raise choices_error("predict mode", unknown[0], known)
            unscorable = [m for m in wanted if m in SCORING and not scored]
            if unscorable:
                raise UsageError(f"predict mode {unscorable[0]!r} needs labels and a metric, which model "
                                 f"{s['model']!r} does not give (models with labels: {', '.join(SCORED)})")
        else:
            wanted = [m for m in known if scored or m not in SCORING]
        shards = s.pop("shards")
        configs = [{"id": f"{SHARD_MODE}-{k + 1}of{shards}", "mode": SHARD_MODE, "batch": SHARD_BATCH, "shard": k,
                    "shards": shards, **s} for k in range(shards) if SHARD_MODE in wanted]
        pairs = [(m, 1) for m in PER_ROW] + [(m, b) for m, sizes in batched.items() for b in sizes]
        return configs + [{"id": f"{m}-b{b}", "mode": m, "batch": b, **s} for m, b in pairs if m in wanted]

    def data_info(self, size: str, options: Mapping[str, Any] | None = None) -> dict:
        from bench.model.workload import get_workload

        s = self.setup(size, options)
        info = get_workload(s["model"]).data_info(size, options)
        return {**info, "model": s["model"], "rows": s["rows"]}

    def run_trial(self, config: Mapping[str, Any], ctx: TrialContext) -> TrialOutput:
        import keras

        with ctx.scope():
            model, table, labels, setup_s = trained_model(config["model"], ctx.size, int(config["rows"]), ctx.options)
        keras.utils.set_random_seed(ctx.seed)
        mode = config["mode"]
        if mode in SCORE_MODES and (labels is None or config["model"] not in SCORED):
            raise MetricMismatch(f"mode {mode} needs labels: model {config['model']!r} gives none")
        scored = SCORED.get(config["model"], {})
        return run_mode(model, table, config, ctx, labels=labels, metric=scored.get("metric"),
                        labels_text=scored.get("labels"), setup_s=setup_s)

    @staticmethod
    def _check_predictions(mode: str, batch: int, pred: np.ndarray, ref: np.ndarray) -> float:
        same_shape = pred.shape == ref.shape
        diff = float(np.max(np.abs(pred - ref))) if same_shape else float("inf")
        if not (same_shape and np.allclose(pred, ref, rtol=RTOL, atol=ATOL)):
            raise PredictionMismatch(
                f"mode {mode} (batch {batch}) predictions differ from the reference: max |diff| {diff:.3g} "
                f"over {len(ref)} rows (rtol {RTOL}, atol {ATOL}); shapes {pred.shape} vs {ref.shape}"
            )
        return diff

    @staticmethod
    def _check_metric(mode: str, metric: str, value: float, ref: np.ndarray, y: np.ndarray, extra: dict) -> dict:
        expected = table_metric(metric, ref, y)
        extra.update(metric_value=value, metric_reference=expected, metric_rows=len(y))
        if not np.isclose(value, expected, rtol=METRIC_RTOL, atol=METRIC_ATOL):
            raise MetricMismatch(
                f"mode {mode}: {metric} {value:.6g} differs from {expected:.6g}, the {metric} of the reference "
                f"predictions (model(x) in chunks) on the same {len(y)} rows (rtol {METRIC_RTOL}, atol {METRIC_ATOL})"
            )
        return {"metric_abs_diff": abs(value - expected)}


def run_mode(model, table: np.ndarray, config: Mapping[str, Any], ctx: TrialContext, *, labels: np.ndarray | None = None,
             metric: str | None = None, labels_text: str | None = None, setup_s: float = 0.0,
             flops_per_row: float | None = None) -> TrialOutput:
    """Times one (mode, batch) trial of a model over a table, checked against the reference.

    The one measuring path of every predict mode: predict_modes runs it on a workload's trained
    model, the ``model`` workload (workloads.model_file) on a saved model. Warm-up (the compiled
    call, a full and a partial batch) is apart; whole passes repeat until ``min_time`` seconds.

    Args:
        model: A built Keras model (one input, one output).
        table: The input rows.
        config: The trial config: ``mode``, ``batch``, ``row_limit``, ``min_time``, ``model`` (the
            name recorded), and for shard trials ``shard`` and ``shards``.
        ctx: The trial's context (compiled call, compiler label, backend).
        labels: One label per row of ``table`` (scoring modes).
        metric: The metric scoring modes compute (``accuracy``, ``mean_squared_error``).
        labels_text: What the labels are (recorded with scoring trials).
        setup_s: Seconds building the model took (warm-up).
        flops_per_row: Forward FLOPs per row: the trial then declares ``flops`` (rows predicted × it).

    Raises:
        PredictionMismatch: the mode's predictions differ from the reference.
        MetricMismatch: a scoring mode's metric differs from the reference predictions'.
    """
    mode, batch = config["mode"], int(config["batch"])
    scoring = mode in SCORE_MODES
    if scoring and (labels is None or metric is None):
        raise MetricMismatch(f"mode {mode} needs labels and a metric: model {config.get('model')!r} gives none")
    shards = int(config.get("shards") or 0) if mode == SHARD_MODE else 0
    if shards:
        lo, hi = shard_rows(len(table), int(config["shard"]), shards)
    else:
        lo, hi = 0, int(config["row_limit"]) if mode in PER_ROW else len(table)
    x = table[lo:hi]
    y = labels[lo:hi] if scoring else None

    compiled, compile_s = None, 0.0

    def build(rows: slice):
        if scoring:
            return SCORE_MODES[mode](model, x[rows], y[rows], batch, metric)
        return MODES[mode](compiled if mode in COMPILED else model, x[rows], batch)

    t0 = time.perf_counter()
    if mode in COMPILED:  # compiling is warm-up: once per model and process
        compiled, compile_s = compiled_call(model, table, ctx)
    build(slice(0, 2 * batch + 1))()  # warm-up: tracing, a full and a partial batch
    run = build(slice(None))
    warmup_s = time.perf_counter() - t0
    min_time = float(config["min_time"]) * (SHARD_TIME if shards else 1)
    passes, elapsed, first, ends = 0, 0.0, None, []
    start_unix, t_start = time.time(), time.perf_counter()
    while passes == 0 or elapsed < min_time:
        t0 = time.perf_counter()
        out = run()
        t1 = time.perf_counter()
        elapsed += t1 - t0
        passes += 1
        ends.append(round(t1 - t_start, 6))
        first = out if first is None else first
    ref = reference(model, x)
    rows_done = passes * len(x)
    extra = {
        "model": config["model"], "mode": mode,
        "mode_label": mode_label(mode, batch, config.get("shard"), shards, ctx.compiler),
        "batch": batch, "task": "score" if scoring else "predict", "per_row": mode in PER_ROW,
        "baseline": mode == BASELINE, "scoring_baseline": mode == SCORING_BASELINE,
        "rows_per_s": rows_done / elapsed, "ms_per_row": 1000 * elapsed / rows_done, "rows_timed": len(x),
        "rows_predicted": rows_done, "passes": passes, "timed_s": elapsed, "model_setup_s": setup_s,
        "params": int(model.count_params()), "table_rows": len(table), "backend": ctx.backend,
    }
    if flops_per_row is not None:
        extra["flops"] = float(flops_per_row) * rows_done
    if mode in COMPILED:
        extra.update(compiler=ctx.compiler, compile_s=compile_s)
    if scoring:
        quality = PredictModesWorkload._check_metric(mode, metric, float(first), ref, y, extra)
        extra.update(metric=metric, labels=labels_text)
        if mode == "evaluate":  # the per-row loop's rows, scored by evaluate: compared on identical rows
            n = int(config["row_limit"])
            loop_rows = _evaluate(model, x[:n], y[:n], batch, metric)()
            PredictModesWorkload._check_metric(mode, metric, loop_rows, ref[:n], y[:n], {})
            extra.update(metric_loop_rows=loop_rows, loop_rows=n)
    else:
        quality = {"max_abs_diff": PredictModesWorkload._check_predictions(mode, batch, np.asarray(first), ref)}
    if shards:
        extra.update(shard=int(config["shard"]), shards=shards, shard_start_row=lo, timed_start_unix=start_unix,
                     pass_ends_s=ends)
    return TrialOutput(quality=quality, samples=float(rows_done), warmup_s=setup_s + warmup_s, extra=extra)
