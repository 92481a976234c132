"""The ``model`` workload: your saved Keras model (``.keras``, or ``.h5`` where Keras loads it).

    bench run model --model-file my_model.keras -p 1,2
    bench run model --model-file my_model.keras --data x.npy,y.npy --opt epochs=3

It measures, on that model, the predict modes predict_modes measures (per-row vs batched
``model.predict``, ``model(x)``, ``predict_on_batch``, the pandas ``df.apply`` loop and the
backend's compiled call; one trial per (mode, batch), through the same measuring path,
:func:`workloads.predict_modes.run_mode`, every mode's predictions checked against
``model(x, training=False)``), and, when the model is compiled with a loss (or ``--opt loss=...``
is given), training throughput: one ``train`` trial whose record declares every epoch's seconds
(the first, with tracing, apart), samples/s once warm and the time per epoch.

Inputs come from ``--data`` (``x.npy,y.npy``, or an ``.npz`` holding ``x`` and optionally ``y``),
else they are synthetic, built from the model's input spec (its shape, a ``None`` axis other than
the batch's taken as ``SEQUENCE_LENGTH``, and its dtype; an input that feeds an ``Embedding`` gets
integers drawn below the Embedding's ``input_dim``) and labelled ``synthetic input of the model's
shape`` in the result. Targets come from ``--data``'s ``y``, else from the model's output on the
synthetic input and its loss (class indices for sparse categorical cross-entropy, one-hot for
categorical, 0/1 for binary, uniform in [0, 1) otherwise).

The model file is loaded in each worker (never pickled), with Keras's safe mode on: a model with a
``Lambda`` layer is refused with Keras's reason unless ``--opt unsafe=1``. The parent never imports
Keras: it asks a short-lived child interpreter (:func:`describe_file`, ``python -m
workloads.model_file describe FILE``) to load the model once and describe it (inputs, outputs,
loss, parameter count, layer types, FLOPs per row), which is how a file that is not a Keras model,
a Lambda layer or ``--data`` of the wrong shape become one error line before anything is written.
The description goes into the result (``RunRecord.data``); every trial declares its ``flops``
(bench/measure/flops.py), so the report's share of peak and its "why" work for your model too.

Limits: one input and one output (a model with more is refused with the counts).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from bench.errors import UsageError, shown
from bench.model.workload import TrialContext, TrialOutput, Workload
from workloads import predict_modes as pm
from workloads._common import fit_timed, float_option, int_list_option, int_option

SYNTHETIC = "synthetic input of the model's shape"
SEQUENCE_LENGTH = 32  # a None axis of the input spec (other than the batch axis) in synthetic inputs
DATA_SEED = 1234
SETUPS = {
    "quick": {"rows": 4096, "row_limit": 16, "min_time": 0.2, "epochs": 3, "train_rows": 1024, "train_batch": 32},
    "full": {"rows": 25000, "row_limit": 500, "min_time": 3.0, "epochs": 5, "train_rows": 16384, "train_batch": 32},
}
TRAIN_MODE = "train"
PROBE_TIMEOUT_S = 300
PROBE_MARK = "XPUBENCH_MODEL "
MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
_described: dict[tuple, dict] = {}  # (path, size, mtime, unsafe) -> describe_file's answer, in the parent
_loaded: dict[tuple, Any] = {}  # (path, unsafe) -> the model, in a worker (one at a time)


# ------------------------------------------------------------------- options


def truthy(value: Any) -> bool:
    """``--opt unsafe=1`` (also true, yes, on)."""
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def data_files(options: Mapping[str, Any]) -> list[str]:
    """The ``data`` option's files: ``x.npy,y.npy``, ``x.npy`` or ``data.npz`` (resolved paths)."""
    text = str(options.get("data") or "")
    return [p for p in text.split(",") if p] if text else []


def load_data(options: Mapping[str, Any], mmap: bool = False) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(x, y)`` from the ``data`` option (``y`` None when not given); ``(None, None)`` without it.

    Args:
        options: Workload options.
        mmap: Map ``.npy`` files rather than read them (the parent only checks shapes).

    Raises:
        UsageError: a file NumPy cannot read (pickled object arrays are refused), an ``.npz``
            without ``x``, more than two files, or ``x`` and ``y`` with different row counts.
    """
    files = data_files(options)
    if not files:
        return None, None
    if len(files) > 2:
        raise UsageError(f"--data takes x.npy,y.npy or one .npz with x (and y), not {len(files)} files")
    arrays = []
    for f in files:
        try:
            loaded = np.load(f, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise UsageError(f"--data {shown(f)}: NumPy cannot read it ({' '.join(str(exc).split())})") from None
        if isinstance(loaded, np.lib.npyio.NpzFile):
            keys = list(loaded.keys())
            if "x" not in keys and len(keys) != 1:
                raise UsageError(f"--data {shown(f)}: an .npz needs an array named 'x' (and optionally 'y'); "
                                 f"it holds {', '.join(keys) or 'nothing'}")
            arrays.append(loaded["x" if "x" in keys else keys[0]])
            if "y" in keys:
                arrays.append(loaded["y"])
        else:
            arrays.append(loaded)
    if len(arrays) > 2:
        raise UsageError("--data: give x and y once (an .npz with y, or x.npy,y.npy)")
    x, y = arrays[0], (arrays[1] if len(arrays) > 1 else None)
    if x.ndim < 1 or len(x) == 0:
        raise UsageError(f"--data {shown(files[0])}: x has no rows (shape {tuple(x.shape)})")
    if y is not None and (y.ndim < 1 or len(y) != len(x)):
        raise UsageError(f"--data: x has {len(x)} rows (shape {tuple(x.shape)}) but y has shape {tuple(y.shape)}: "
                         "one target per row")
    return x, y


def shape_text(shape) -> str:
    """``(None, 20)`` for a shape list from a description."""
    dims = ["None" if d is None else str(int(d)) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def check_data_shape(x_shape: tuple, spec: Mapping[str, Any], where: str) -> None:
    """Raises UsageError naming both shapes when rows of ``x_shape`` do not fit the model's input.

    Args:
        x_shape: The data's shape (rows first).
        spec: The model's input description (``shape`` with None for any size).
        where: How the message names the data.
    """
    want = list(spec["shape"])[1:]
    have = list(x_shape)[1:]
    if len(want) != len(have) or any(w is not None and int(w) != int(h) for w, h in zip(want, have)):
        raise UsageError(f"--data {where}: x has shape {shape_text(x_shape)} but the model's input shape is "
                         f"{shape_text(spec['shape'])}")


# ------------------------------------------------------------------- the model, in a child or a worker


def load_model(path: str, unsafe: bool = False):
    """``keras.saving.load_model`` with safe mode unless ``unsafe``; compiled as saved.

    A legacy ``.h5`` file whose compile settings Keras 3 cannot restore (``keras.metrics.mse``
    saved by an older Keras) is loaded uncompiled; ``model.xpubench_compile_note`` says why (the
    loss can then be given with ``--opt loss=``).
    """
    import keras

    try:
        return keras.saving.load_model(path, compile=True, safe_mode=not unsafe)
    except Exception as exc:  # noqa: BLE001 - retried below only for legacy HDF5 files
        if not str(path).lower().endswith((".h5", ".hdf5")):
            raise
        model = keras.saving.load_model(path, compile=False, safe_mode=not unsafe)  # raises what loading itself hits
        model.xpubench_compile_note = (f"Keras could not restore the saved compile settings "
                                       f"({type(exc).__name__}: {' '.join(str(exc).split())}); loaded uncompiled")
        return model


def loss_name(loss: Any) -> str | None:
    """A compiled loss's canonical function name (``sparse_categorical_crossentropy``), or None."""
    if loss is None:
        return None
    if isinstance(loss, (list, tuple, dict)):
        return None  # one loss per output: the workload measures one-output models
    import keras

    try:
        obj = keras.losses.get(loss) if isinstance(loss, str) else loss
    except (ValueError, TypeError):
        return str(loss)
    fn = getattr(obj, "fn", None)  # LossFunctionWrapper (SparseCategoricalCrossentropy()...)
    return getattr(fn, "__name__", None) or getattr(obj, "__name__", None) or getattr(obj, "name", None) or type(obj).__name__


def _embedding_high(model, tensor) -> int | None:
    """The ``input_dim`` of an Embedding the input feeds straight into (None: none does)."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.Embedding):
            try:
                if layer.input is tensor:
                    return int(layer.input_dim)
            except (AttributeError, ValueError):
                continue
    return None


def describe(model, loss_option: str | None = None) -> dict:
    """What the harness needs to know of a loaded model, as JSON.

    Args:
        model: The loaded model.
        loss_option: ``--opt loss=``, which overrides the compiled loss.

    Returns:
        ``inputs`` and ``outputs`` (``shape`` with None, ``dtype``; inputs ``int_high``: the
        Embedding's ``input_dim`` they feed, else None), ``loss`` (None: not compiled with one),
        ``params``, ``layers`` (layer type -> count, nested models walked), ``flops_per_row``
        (``forward``, ``train``, ``uncounted``), ``name``.
    """
    from bench.measure.flops import model_flops

    inputs = [{"shape": [None if d is None else int(d) for d in t.shape], "dtype": str(t.dtype),
               "int_high": _embedding_high(model, t)} for t in model.inputs]
    outputs = [{"shape": [None if d is None else int(d) for d in t.shape], "dtype": str(t.dtype)} for t in model.outputs]
    layers: dict[str, int] = {}
    try:
        flops = model_flops(model)
    except ValueError as exc:  # a layer the walk cannot read: no FLOP figure, the rest still measured
        counted = {"forward": None, "train": None, "uncounted": [f"not counted: {' '.join(str(exc).split())}"]}
        for layer in model.layers:
            layers[type(layer).__name__] = layers.get(type(layer).__name__, 0) + 1
    else:
        counted = {"forward": flops.forward, "train": flops.train, "uncounted": flops.uncounted}
        for layer in flops.layers:
            layers[layer.kind] = layers.get(layer.kind, 0) + 1
    compiled_loss = loss_name(getattr(model, "loss", None)) if getattr(model, "compiled", False) else None
    return {
        "name": model.name, "inputs": inputs, "outputs": outputs, "loss": loss_option or compiled_loss,
        "compiled_loss": compiled_loss, "compile_note": getattr(model, "xpubench_compile_note", None),
        "params": int(model.count_params()), "layers": layers,
        "flops_per_row": counted,
    }


def _probe_env() -> dict[str, str]:
    """A probe child's environment: this one, CPU only, one thread, quiet, this checkout importable."""
    env = dict(os.environ)
    env.setdefault("KERAS_BACKEND", "tensorflow")
    root = str(Path(__file__).resolve().parents[1])
    paths = [root] + [p for p in sys.path if p and os.path.isdir(p)]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.update(TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", JAX_PLATFORMS="cpu", OMP_NUM_THREADS="1",
               TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1", PYTHONHASHSEED="0")
    return env


def describe_file(path: str, unsafe: bool = False, loss: str | None = None) -> dict:
    """Loads a model file in a fresh child interpreter (the parent never imports Keras) and describes it.

    Args:
        path: The model file (it exists).
        unsafe: Load with Keras's safe mode off.
        loss: ``--opt loss=``: the description's ``loss`` (the compiled one stays ``compiled_loss``).

    Returns:
        :func:`describe`'s answer; the child runs once per file (path, size, mtime) in this process.

    Raises:
        UsageError: Keras could not load the file (its reason, one line), or the probe failed.
    """
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns, unsafe)
    if key in _described:
        return {**_described[key], "loss": loss or _described[key]["compiled_loss"]}
    cmd = [sys.executable, "-m", "workloads.model_file", "describe", path] + (["--unsafe"] if unsafe else [])
    try:
        # run from this checkout's root: a `workloads` folder in the user's directory is never imported instead
        proc = subprocess.run(cmd, env=_probe_env(), capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
                              stdin=subprocess.DEVNULL, cwd=Path(__file__).resolve().parents[1])
    except subprocess.TimeoutExpired:
        raise UsageError(f"model file {shown(path)}: loading it took over {PROBE_TIMEOUT_S} s") from None
    line = next((ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith(PROBE_MARK)), None)
    if line is None:
        tail = " ".join(" ".join(proc.stderr.strip().splitlines()[-3:]).split())
        raise UsageError(f"model file {shown(path)}: could not describe it (exit {proc.returncode}): {tail[-300:]}")
    answer = json.loads(line[len(PROBE_MARK):])
    if "error" in answer:
        raise UsageError(f"model file {shown(path)} is not a Keras model Keras can load: {answer['error']}")
    _described[key] = answer
    return {**answer, "loss": loss or answer["compiled_loss"]}


def _probe_main(argv: list[str]) -> int:
    """``python -m workloads.model_file describe FILE [--unsafe]``: one JSON line."""
    path = argv[1]
    unsafe = "--unsafe" in argv
    try:
        model = load_model(path, unsafe)
        answer = describe(model)
    except Exception as exc:  # noqa: BLE001 - whatever Keras said is the answer, in one line
        text = " ".join(str(exc).split())
        if "safe_mode=False" in text:
            text += " (xpubench: --opt unsafe=1 loads it with safe_mode=False)"
        answer = {"error": f"{type(exc).__name__}: {text}"[:600]}
    print(PROBE_MARK + json.dumps(answer), flush=True)
    return 0


def worker_model(path: str, unsafe: bool):
    """The model, loaded once per worker (a new file replaces the previous one)."""
    key = (path, unsafe)
    if key not in _loaded:
        _loaded.clear()
        pm._compiled.clear()  # compiled calls are keyed by id(model): drop those of a dropped model
        _loaded[key] = load_model(path, unsafe)
    return _loaded[key]


def synthetic_inputs(spec: Mapping[str, Any], rows: int, seed: int = DATA_SEED) -> np.ndarray:
    """Rows of the model's input spec: None axes as ``SEQUENCE_LENGTH``; integers below
    ``int_high`` where an Embedding reads them; standard normal floats otherwise.

    Args:
        spec: One input's description (:func:`describe`).
        rows: Rows wanted.
        seed: NumPy seed.
    """
    rng = np.random.default_rng(seed)
    shape = (rows,) + tuple(SEQUENCE_LENGTH if d is None else int(d) for d in spec["shape"][1:])
    dtype = np.dtype(str(spec["dtype"]).replace("string", "object"))
    if spec.get("int_high"):
        return rng.integers(0, int(spec["int_high"]), size=shape).astype(dtype)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, 2, size=shape).astype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(bool)
    return rng.standard_normal(shape).astype(dtype)


def synthetic_targets(loss: str, outputs: np.ndarray, seed: int = DATA_SEED + 1) -> tuple[np.ndarray, str]:
    """Targets of the model's output shape for its loss, and what they are.

    Args:
        loss: The loss's canonical name.
        outputs: The model's outputs on the inputs (their shape is the target's).
        seed: NumPy seed.
    """
    rng = np.random.default_rng(seed)
    shape = outputs.shape
    if "sparse_categorical" in loss:
        return rng.integers(0, shape[-1], size=shape[:-1]).astype("int32"), \
            f"synthetic class indices below {shape[-1]} (loss {loss})"
    if "categorical" in loss:
        return np.eye(shape[-1], dtype="float32")[rng.integers(0, shape[-1], size=shape[:-1])], \
            f"synthetic one-hot targets of {shape[-1]} classes (loss {loss})"
    if "binary" in loss or "hinge" in loss:
        return rng.integers(0, 2, size=shape).astype("float32"), f"synthetic 0/1 targets of the output shape (loss {loss})"
    return rng.random(shape).astype("float32"), f"synthetic targets in [0, 1) of the output shape (loss {loss})"


# ------------------------------------------------------------------- the workload


class ModelFileWorkload(Workload):
    """Your saved Keras model: per-row vs batched predict (and the compiled call), and training throughput."""

    name = "model"
    description = "Your saved Keras model (--model-file x.keras): predict modes, training samples/s"
    version = 1
    throughput_unit = "rows/s"
    quality_key = "max_abs_diff"
    higher_is_better = False
    options = ("model_file", "rows", "row_limit", "min_time", "modes", "batch_sizes", "epochs", "train_rows",
               "train_batch", "loss", "unsafe")
    suite = False  # it needs your model file: bench suite --workloads model --model-file x.keras

    def setup(self, size: str, options: Mapping[str, Any] | None = None) -> dict:
        """The size's setup with ``--opt`` overrides.

        Args:
            size: ``quick`` or ``full``.
            options: Workload options.
        """
        options = options or {}
        s = {k: int_option(options, k, v) for k, v in SETUPS[size].items() if k != "min_time"}
        s["min_time"] = float_option(options, "min_time", SETUPS[size]["min_time"])
        return s

    def model_path(self, options: Mapping[str, Any]) -> str:
        """The ``model_file`` option, checked to be an existing file.

        Raises:
            UsageError: none given, or no such file.
        """
        text = str(options.get("model_file") or "")
        if not text:
            raise UsageError("workload 'model' needs a saved Keras model: --model-file my_model.keras")
        path = Path(text).expanduser()
        if not path.is_file():
            raise UsageError(f"model file {shown(text)} {'is not a file' if path.exists() else 'does not exist'}")
        return str(path.resolve())

    def describe(self, options: Mapping[str, Any]) -> dict:
        """The model's description (loaded once, in a child interpreter), its one input and output checked.

        Raises:
            UsageError: see :func:`describe_file`; more than one input or output.
        """
        path = self.model_path(options)
        d = describe_file(path, truthy(options.get("unsafe", "")), str(options.get("loss") or "") or None)
        if len(d["inputs"]) != 1 or len(d["outputs"]) != 1:
            raise UsageError(f"model file {shown(path)} has {len(d['inputs'])} inputs and {len(d['outputs'])} outputs; "
                             "the model workload measures models with one input and one output")
        return d

    def trials(self, size: str, options: Mapping[str, Any] | None = None) -> list[dict]:
        from bench.errors import choices_error

        options = options or {}
        s = self.setup(size, options)
        d = self.describe(options)
        x, y = load_data(options, mmap=True)
        if x is not None:
            check_data_shape(tuple(x.shape), d["inputs"][0], ",".join(shown(f) for f in data_files(options)))
        batched = dict(pm.BATCHED)
        batched["predict"] = int_list_option(options, "batch_sizes", batched["predict"])
        known = list(pm.MODES) + [TRAIN_MODE]
        train = bool(d["loss"])
        if options.get("modes"):
            wanted = str(options["modes"]).split(",")
            unknown = [m for m in wanted if m not in known]
            if unknown:
                raise choices_error("mode of the model workload", unknown[0], known)
            if TRAIN_MODE in wanted and not train:
                raise UsageError("mode 'train' needs a loss: the model was saved without one (compile it with one, "
                                 "or give --opt loss=mean_squared_error...)")
        else:
            wanted = known if train else list(pm.MODES)
        model = Path(self.model_path(options)).name
        rows = s["rows"] if x is None else min(s["rows"], len(x))  # --data: its rows, up to the size's table
        common = {"model": model, "rows": rows, "row_limit": s["row_limit"], "min_time": s["min_time"]}
        # a batch larger than the table is the whole table: named by the rows it really holds
        pairs = [(m, 1) for m in pm.PER_ROW if m in pm.MODES] + list(dict.fromkeys(
            (m, min(b, rows)) for m, sizes in batched.items() if m in pm.MODES for b in sizes))
        configs = [{"id": f"{m}-b{b}", "mode": m, "batch": b, **common} for m, b in pairs if m in wanted]
        if TRAIN_MODE in wanted:
            configs.append({"id": f"train-b{s['train_batch']}-e{s['epochs']}", "mode": TRAIN_MODE, "model": model,
                            "epochs": s["epochs"], "batch": s["train_batch"],
                            "train_rows": s["train_rows"] if x is None else min(s["train_rows"], len(x))})
        return configs

    def input_files(self, options: Mapping[str, Any] | None = None) -> dict[str, str]:
        options = options or {}
        files = {"model_file": self.model_path(options)} if options.get("model_file") else {}
        for i, f in enumerate(data_files(options)):
            files["data" if i == 0 else f"data_{i + 1}"] = f
        return files

    def data_info(self, size: str, options: Mapping[str, Any] | None = None) -> dict:
        options = options or {}
        d = self.describe(options)
        s = self.setup(size, options)
        x, y = load_data(options, mmap=True)
        spec = d["inputs"][0]
        shape = [s["rows"]] + [SEQUENCE_LENGTH if v is None else v for v in spec["shape"][1:]]
        info = {
            "model_file": self.model_path(options), "model": d["name"], "params": d["params"], "layers": d["layers"],
            "flops_per_row": d["flops_per_row"], "input_shape": spec["shape"], "input_dtype": spec["dtype"],
            "output_shape": d["outputs"][0]["shape"], "loss": d["loss"],
        }
        if x is None:
            info.update(source="synthetic", label=SYNTHETIC, name=f"{SYNTHETIC} {shape_text(shape)}, {spec['dtype']}"
                        + (f", integers below {spec['int_high']} (Embedding input)" if spec.get("int_high") else ""))
        else:
            info.update(source="real", label=f"--data {', '.join(Path(f).name for f in data_files(options))}",
                        name=", ".join(data_files(options)), rows=int(len(x)), targets=y is not None)
        info["training"] = ("measured (loss " + d["loss"] + ")") if d["loss"] else (
            "not measured: the model was saved without a loss (compile it with one, or give --opt loss=...)")
        if d.get("compile_note"):
            info["compile_note"] = d["compile_note"]
        return info

    # -------------------------------------------------------------- in the worker

    def _table(self, model, options: Mapping[str, Any], rows: int) -> tuple[np.ndarray, np.ndarray | None, dict]:
        d = describe(model, str(options.get("loss") or "") or None)
        x, y = load_data(options)
        if x is None:
            return synthetic_inputs(d["inputs"][0], rows), None, d
        dtype = np.dtype(d["inputs"][0]["dtype"]) if d["inputs"][0]["dtype"] != "string" else x.dtype
        return np.asarray(x[:rows]).astype(dtype, copy=False), (None if y is None else np.asarray(y[:rows])), d

    def run_trial(self, config: Mapping[str, Any], ctx: TrialContext) -> TrialOutput:
        import keras

        options = ctx.options
        path, unsafe = self.model_path(options), truthy(options.get("unsafe", ""))
        if config["mode"] == TRAIN_MODE:
            return self._train(config, ctx, path, unsafe)
        t0 = time.perf_counter()
        with ctx.scope():
            model = worker_model(path, unsafe)
        table, _, d = self._table(model, options, int(config["rows"]))
        setup_s = time.perf_counter() - t0
        keras.utils.set_random_seed(ctx.seed)
        out = pm.run_mode(model, table, config, ctx, setup_s=setup_s, flops_per_row=d["flops_per_row"]["forward"])
        extra = dict(out.extra, data=SYNTHETIC if not options.get("data") else "--data")
        return TrialOutput(quality=out.quality, samples=out.samples, warmup_s=out.warmup_s, extra=extra)

    def _train(self, config: Mapping[str, Any], ctx: TrialContext, path: str, unsafe: bool) -> TrialOutput:
        """``model.fit`` for ``epochs`` on a fresh copy of the model (the predict trials' copy is
        not trained); every epoch timed, the first (tracing) apart."""
        t0 = time.perf_counter()
        with ctx.scope():
            model = load_model(path, unsafe)
            loss = str(ctx.options.get("loss") or "") or None
            if loss:  # --opt loss=: the model's own optimizer where it was compiled with one
                optimizer = model.optimizer if getattr(model, "compiled", False) and model.optimizer is not None else "adam"
                model.compile(optimizer=optimizer, loss=loss)
        rows = int(config["train_rows"])
        x, y, d = self._table(model, ctx.options, rows)
        if y is None:
            y, targets = synthetic_targets(d["loss"], pm.reference(model, x))
        else:
            targets = "y from --data"
        load_s = time.perf_counter() - t0
        epochs, batch = int(config["epochs"]), int(config["batch"]) * ctx.replicas
        times = fit_timed(model, x, y, epochs, batch)
        history = model.evaluate(x, y, batch_size=max(batch, 256), verbose=0, return_dict=True)
        steady = times[1:] or times
        samples_per_s = len(x) * len(steady) / sum(steady)
        per_row = d["flops_per_row"]["train"]
        extra = {
            "model": config["model"], "task": "train", "loss": d["loss"], "targets": targets,
            "data": SYNTHETIC if not ctx.options.get("data") else "--data",
            "epochs": epochs, "batch": int(config["batch"]), "global_batch": batch, "train_rows": len(x),
            "epoch_s": [float(t) for t in times], "epoch_samples_per_s": [len(x) / t for t in times],
            "first_epoch_s": float(times[0]), "steady_epoch_s": float(np.median(steady)),
            "samples_per_s": samples_per_s, "model_setup_s": load_s, "params": int(model.count_params()),
            "backend": ctx.backend,
        }
        if per_row is not None:
            extra["flops"] = per_row * len(x) * epochs
        loss_value = float(history.get("loss", math.nan))
        return TrialOutput(quality={"loss": loss_value}, samples=float(len(x) * epochs), warmup_s=load_s + times[0],
                           extra=extra)


if __name__ == "__main__":  # the parent's probe: python -m workloads.model_file describe FILE
    if len(sys.argv) >= 3 and sys.argv[1] == "describe":
        sys.exit(_probe_main(sys.argv[1:]))
    print("usage: python -m workloads.model_file describe FILE [--unsafe]", file=sys.stderr)
    sys.exit(2)
