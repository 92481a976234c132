"""The ``model`` workload (workloads/model_file.py) end to end on tiny models this module saves:
a Dense network and an Embedding + LSTM one, with and without ``--data``, at 1 and 2 processes;
every bad input (one ``error:`` line, exit 2, nothing written); the report and console of a real run.

Models are saved by a child interpreter (this process never imports Keras). Trials are kept short
(``row_limit=4``, ``min_time=0.05``): a sweep costs mostly worker start-up.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main
from bench.model import results
from workloads import model_file as mf
from workloads import predict_modes as pm
from support.errors import one_error_line

FAST = ["--opt", "row_limit=4", "--opt", "min_time=0.05", "-q"]
PREDICT_MODES = {m for m in pm.MODES}

MAKE_MODELS = textwrap.dedent('''
    import sys
    from pathlib import Path

    import keras
    import numpy as np

    out = Path(sys.argv[1])
    keras.utils.set_random_seed(0)
    dense = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(4)])
    dense.compile(optimizer="adam", loss="mse")
    dense.save(out / "dense.keras")
    dense.save(out / "dense.h5")
    bare = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])  # never compiled: no loss
    bare.save(out / "bare.keras")
    seq = keras.Sequential([keras.Input((12,), dtype="int32"), keras.layers.Embedding(50, 6), keras.layers.LSTM(8),
                            keras.layers.Dense(3, activation="softmax")])
    seq.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    seq.save(out / "seq.keras")
    inp = keras.Input((5,))
    lam = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Lambda(lambda t: t * 2.0)(inp)))
    lam.save(out / "lambda.keras")
    rng = np.random.default_rng(1)
    np.save(out / "seq_x.npy", rng.integers(0, 50, size=(300, 12)).astype("int64"))
    np.save(out / "seq_y.npy", rng.integers(0, 3, size=(300,)))
    np.savez(out / "dense.npz", x=rng.standard_normal((200, 8)).astype("float32"),
             y=rng.standard_normal((200, 4)).astype("float32"))
    np.save(out / "wrong_x.npy", np.zeros((100, 5), "float32"))
    np.save(out / "short_y.npy", np.zeros((7,), "float32"))
    np.savez(out / "no_x.npz", a=np.zeros((3, 8)), b=np.zeros((3,)))
    (out / "notes.keras").write_text("not a model")
''')


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("models")
    proc = subprocess.run([sys.executable, "-c", MAKE_MODELS, str(d)], capture_output=True, text=True, timeout=300,
                          env=mf._probe_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return d


def _run(argv, out: Path) -> tuple[int, results.Result]:
    code = main(["run", "model", *argv, "-o", str(out)])
    files = sorted(out.glob("model-quick-*.json"))
    assert len(files) == 1, files
    return code, results.load(files[0])


def _by_mode(run) -> dict:
    """Each predict mode's trial with its largest batch."""
    out = {}
    for t in sorted((t for t in run.trials if t.ok and "mode" in t.extra), key=lambda t: t.extra["batch"]):
        out[t.extra["mode"]] = t
    return out


def _train(run):
    (t,) = [t for t in run.trials if t.id.startswith("train-")]
    return t


def _check_training(t, rows: int, epochs: int = 3) -> None:
    e = t.extra
    assert t.ok and e["task"] == "train" and e["epochs"] == epochs and len(e["epoch_s"]) == epochs
    assert e["train_rows"] == rows and t.samples == rows * epochs
    assert e["first_epoch_s"] == e["epoch_s"][0] and t.warmup_s >= e["first_epoch_s"]
    assert e["steady_epoch_s"] == pytest.approx(statistics.median(e["epoch_s"][1:]))
    assert e["samples_per_s"] == pytest.approx(rows * (epochs - 1) / sum(e["epoch_s"][1:]))
    assert e["epoch_samples_per_s"] == pytest.approx([rows / s for s in e["epoch_s"]])
    assert np.isfinite(t.quality["loss"])


# ---------------------------------------------------------------- Dense


def test_dense_model_synthetic_inputs_at_1_and_2_processes(models, tmp_path, capsys):
    code, res = _run(["--model-file", str(models / "dense.keras"), "-p", "1,2", *FAST], tmp_path)
    assert code == 0, capsys.readouterr().err
    assert [r.strategy["processes"] for r in res.runs] == [1, 2]
    for run in res.runs:
        assert run.status == "complete" and run.summary.failed == 0
        d = run.data
        assert d["source"] == "synthetic" and d["label"] == mf.SYNTHETIC == "synthetic input of the model's shape"
        # 8 -> 16 -> 4: parameters and FLOPs per row by hand (bench/measure/flops.py)
        assert d["params"] == 8 * 16 + 16 + 16 * 4 + 4 and d["layers"] == {"Dense": 2}
        assert d["flops_per_row"]["forward"] == 2 * (8 * 16 + 16 * 4) and d["flops_per_row"]["uncounted"] == []
        assert d["input_shape"] == [None, 8] and d["loss"] == "mean_squared_error"
        modes = _by_mode(run)
        assert set(modes) == PREDICT_MODES  # every predict mode predict_modes measures
        for t in modes.values():
            assert t.quality["max_abs_diff"] <= 1e-3  # checked against model(x) in the worker
            assert t.extra["flops"] == d["flops_per_row"]["forward"] * t.extra["rows_predicted"]
        assert modes["predict_row"].extra["baseline"] and modes["predict_row"].extra["rows_timed"] == 4
        assert modes["tf_function"].extra["compiler"] == "tf.function"
        assert modes["predict_on_batch"].extra["rows_per_s"] > 10 * modes["predict_row"].extra["rows_per_s"]
        _check_training(_train(run), rows=1024)
        assert _train(run).extra["flops"] == d["flops_per_row"]["train"] * 1024 * 3
        assert run.summary.flops is not None and run.summary.gflops > 0
    out = capsys.readouterr().out
    assert "model: rows/s per mode" in out and "time per epoch" in out and "1 (warm-up)" in out
    assert "synthetic input of the model's shape (4096, 8), float32" in out


def test_dense_model_with_npz_data_and_h5(models, tmp_path, capsys):
    """A legacy .h5 file Keras 3 loads but whose compile settings (``keras.metrics.mse``) it cannot
    restore: loaded uncompiled, said so, trained with ``--opt loss=``."""
    code, res = _run(["--model-file", str(models / "dense.h5"), "--data", str(models / "dense.npz"), "-p", "1",
                      "--opt", "modes=predict_row,predict_on_batch,train", "--opt", "loss=mse", *FAST], tmp_path)
    assert code == 0, capsys.readouterr().err
    (run,) = res.runs
    assert "could not restore the saved compile settings" in run.data["compile_note"]
    assert run.data["loss"] == "mse"
    assert run.data["source"] == "real" and run.data["rows"] == 200 and run.data["targets"] is True
    (t,) = [t for t in run.trials if t.extra.get("mode") == "predict_on_batch"]
    assert t.extra["rows_timed"] == 200 and t.extra["data"] == "--data" and t.extra["batch"] == 200
    _check_training(_train(run), rows=200)
    assert _train(run).extra["targets"] == "y from --data"

    # the report of this real run: the predict table (the user's model named) and the training figures
    from reports import write_report
    from reports.predict import headline_lines

    (path,) = tmp_path.glob("model-quick-*.json")
    html_path = tmp_path / "report.html"
    write_report([str(path)], str(html_path))
    html = html_path.read_text()
    assert "dense.h5 model" in html  # the predict table's caption names the user's model file
    for trial in run.trials:
        if trial.extra.get("mode"):
            assert trial.extra["mode_label"] in html
    assert "× per-row model.predict" in html and "(baseline)" in html
    assert "time per epoch" in html and "1 (warm-up)" in html and "samples/s once warm" in html
    lines = headline_lines(run)
    assert lines and lines[0].startswith("batched predict_on_batch (batch 200): ") and "per-row model.predict" in lines[0]


# ---------------------------------------------------------------- Embedding + LSTM


def test_embedding_lstm_with_data_at_1_and_2_processes(models, tmp_path, capsys):
    data = f"{models / 'seq_x.npy'},{models / 'seq_y.npy'}"
    code, res = _run(["--model-file", str(models / "seq.keras"), "--data", data, "-p", "1,2",
                      "--opt", "modes=predict_row,predict,tf_function,train", "--opt", "epochs=2", *FAST], tmp_path)
    assert code == 0, capsys.readouterr().err
    for run in res.runs:
        assert run.summary.failed == 0
        assert run.data["layers"] == {"Embedding": 1, "LSTM": 1, "Dense": 1}
        # LSTM 8·T·U·(D+U) with T=12, U=8, D=6; Dense 2·8·3; the Embedding is a lookup
        assert run.data["flops_per_row"]["forward"] == 8 * 12 * 8 * (6 + 8) + 2 * 8 * 3
        assert run.data["source"] == "real" and run.data["rows"] == 300
        modes = _by_mode(run)
        assert {"predict_row", "predict", "tf_function"} <= set(modes)
        assert modes["predict"].extra["rows_timed"] == 300 and modes["predict"].extra["batch"] == 300  # batch <= rows
        assert sorted(t.extra["batch"] for t in run.trials if t.extra.get("mode") == "predict") == [32, 256, 300]
        _check_training(_train(run), rows=300, epochs=2)
        assert _train(run).extra["loss"] == "sparse_categorical_crossentropy"


def test_embedding_lstm_synthetic_integers_stay_below_input_dim(models, tmp_path, capsys):
    code, res = _run(["--model-file", str(models / "seq.keras"), "-p", "1",
                      "--opt", "modes=call_row,predict_on_batch,train", *FAST], tmp_path)
    assert code == 0, capsys.readouterr().err
    (run,) = res.runs
    assert run.summary.failed == 0
    assert run.data["name"] == "synthetic input of the model's shape (4096, 12), int32, integers below 50 (Embedding input)"
    assert "class indices below 3" in _train(run).extra["targets"]
    x = mf.synthetic_inputs({"shape": [None, 12], "dtype": "int32", "int_high": 50}, 4096)
    assert x.dtype == np.int32 and x.min() >= 0 and x.max() == 49


# ---------------------------------------------------------------- loss, safe mode


def test_training_needs_a_loss_or_the_loss_option(models):
    w = mf.ModelFileWorkload()
    bare = {"model_file": str(models / "bare.keras")}
    assert "train" not in {c["mode"] for c in w.checked_trials("quick", bare)}
    assert w.data_info("quick", bare)["training"].startswith("not measured: the model was saved without a loss")
    trained = w.checked_trials("quick", {**bare, "loss": "mse"})
    assert trained[-1]["mode"] == "train" and trained[-1]["id"] == "train-b32-e3"
    with pytest.raises(Exception, match="mode 'train' needs a loss"):
        w.checked_trials("quick", {**bare, "modes": "train"})


def test_a_lambda_layer_runs_only_with_unsafe(models, tmp_path, capsys):
    code, res = _run(["--model-file", str(models / "lambda.keras"), "-p", "1", "--opt", "unsafe=1",
                      "--opt", "modes=predict_on_batch", *FAST], tmp_path)
    assert code == 0, capsys.readouterr().err
    (t,) = res.runs[0].trials
    assert t.ok and t.extra["mode"] == "predict_on_batch"


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("argv, needles", [
    (["--model-file", "MODELS/missing.keras"], ["model file", "missing.keras", "does not exist"]),
    ([], ["needs a saved Keras model", "--model-file"]),
    (["--model-file", "MODELS/notes.keras"], ["notes.keras", "is not a Keras model Keras can load", "ValueError"]),
    (["--model-file", "MODELS/lambda.keras"], ["lambda.keras", "Lambda", "safe_mode=False", "--opt unsafe=1"]),
    (["--model-file", "MODELS/dense.keras", "--data", "MODELS/wrong_x.npy"],
     ["wrong_x.npy", "x has shape (100, 5)", "the model's input shape is (None, 8)"]),
    (["--model-file", "MODELS/seq.keras", "--data", "MODELS/seq_x.npy,MODELS/short_y.npy"],
     ["x has 300 rows", "y has shape (7,)"]),
    (["--model-file", "MODELS/dense.keras", "--data", "MODELS/no_x.npz"], ["no_x.npz", "named 'x'", "a, b"]),
    (["--model-file", "MODELS/dense.keras", "--data", "MODELS/seq_x.npy,MODELS/nope.npy"], ["nope.npy", "does not exist"]),
    (["--model-file", "MODELS/dense.keras", "--opt", "modes=fit"], ["'fit'", "choose from", "train"]),
    (["--model-file", "MODELS/bare.keras", "--opt", "modes=train"], ["mode 'train' needs a loss", "--opt loss="]),
], ids=["missing", "no-model-file", "not-keras", "lambda", "data-shape", "y-rows", "npz-without-x", "missing-y",
        "bad-mode", "train-without-loss"])
def test_bad_model_input_is_one_error_line_and_nothing_is_written(models, tmp_path, monkeypatch, capsys, argv, needles):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    code = main(["run", "model", *[a.replace("MODELS/", f"{models}/") for a in argv], "-q"])
    one_error_line(capsys, code, *needles)
    assert list(cwd.iterdir()) == []


def test_the_parent_never_imports_keras(models):
    """Validation loads the model in a child interpreter: this process, which described and
    checked every model above, has not imported a framework."""
    code = textwrap.dedent(f'''
        import sys
        from workloads.model_file import ModelFileWorkload
        configs = ModelFileWorkload().checked_trials("quick", {{"model_file": {str(models / "seq.keras")!r}}})
        assert configs[-1]["mode"] == "train", configs
        print(sorted(m for m in ("tensorflow", "keras", "jax", "torch") if m in sys.modules))
    ''')
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=mf._probe_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_the_model_workload_is_listed_but_not_in_the_suite():
    from bench.model.workload import suite_names, workload_names

    assert "model" in workload_names() and "model" not in suite_names()
    assert set(workload_names()) - set(suite_names()) == {"model"}
