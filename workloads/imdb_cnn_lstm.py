"""IMDB sentiment with a CNN-LSTM (seed 003).

Embedding(5000 words, 32) over reviews padded/truncated to 500 tokens -> Conv1D(32, 3, same, relu)
-> MaxPooling1D(2) -> LSTM(100) -> Dense(1, sigmoid); Adam, binary cross-entropy, batch 64,
3 epochs (the seed scored 86-88 % test accuracy). Trials are repeats of that one setup (different
initial weights), so process strategies have something to spread.

Data, in this order: the ``data`` option (a path to an ``imdb.npz``, from ``--data``); the file
``keras.datasets.imdb.load_data`` caches (``$KERAS_HOME/datasets/imdb.npz``, default
``~/.keras``); a download of that file into the same cache, unless offline (``offline`` option or
``XPUBENCH_OFFLINE``); else the synthetic corpus of ``workloads.synthetic.imdb_reviews`` with a
one-line notice on stderr. A file is read exactly as ``load_data(num_words=5000)`` reads it
(``read_imdb_npz``; the tests check the two agree) but without ``load_data``'s hash check,
which would re-download any file other than the official one.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import io
import os
import pickle
import sys
import time
import urllib.request
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from bench.errors import UsageError
from bench.measure.flops import model_flops
from bench.model.workload import TrialContext, TrialOutput, Workload
from workloads import synthetic
from workloads._common import fit_timed, int_option, release_keras, rss_bytes

IMDB_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/imdb.npz"
IMDB_SHA256 = "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"
WORDS, EMBED, BATCH = 5000, 32, 64
HELDOUT = 1024  # test reviews scored after every epoch (the time-to-accuracy curve)
SYNTHETIC_SEED = 3
# train/test reviews, padded length, epochs, repeats (trials)
SETUPS = {
    "quick": {"train": 4096, "test": 1024, "maxlen": 80, "epochs": 2, "repeats": 2},
    "full": {"train": 25000, "test": 25000, "maxlen": 500, "epochs": 3, "repeats": 2},
}
_download_failed = False


def is_offline(options: Mapping[str, Any] | None) -> bool:
    """True when the ``offline`` option or the ``XPUBENCH_OFFLINE`` environment variable is set.

    Args:
        options: Workload options.
    """
    flags = ((options or {}).get("offline"), os.environ.get("XPUBENCH_OFFLINE"))
    return any(str(f).strip().lower() not in ("", "0", "false", "no", "none") for f in flags if f is not None)


def cache_paths() -> list[Path]:
    """Where ``keras.datasets.imdb.load_data`` keeps ``imdb.npz`` (``get_file``'s cache)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return [Path(home) / "datasets" / "imdb.npz", Path("/tmp/.keras/datasets/imdb.npz")]


def _download(target: Path, timeout: float = 60.0) -> None:
    """Downloads the official imdb.npz to ``target`` (atomically), checking its sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".part{os.getpid()}")
    try:
        with urllib.request.urlopen(IMDB_URL, timeout=timeout) as response, open(tmp, "wb") as out:
            digest = hashlib.sha256()
            for block in iter(lambda: response.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
        if digest.hexdigest() != IMDB_SHA256:
            raise ValueError("sha256 mismatch")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def imdb_file(options: Mapping[str, Any] | None, download: bool = False) -> Path | None:
    """The imdb.npz to read, or None for synthetic data.

    Args:
        options: Workload options (``data``, ``offline``).
        download: Try a download into the Keras cache when nothing is cached and not offline.
            Only the parent does this (from ``data_info``); workers read what it left.

    Raises:
        UsageError: The ``data`` option names a missing file.
    """
    global _download_failed
    given = (options or {}).get("data")
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise UsageError(f"IMDB data file {str(path)!r} does not exist (--data takes a keras imdb.npz)")
        return path
    for path in cache_paths():
        if path.is_file():
            return path
    if download and not _download_failed and not is_offline(options):
        target = cache_paths()[0]
        try:
            _download(target)
            return target
        except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError/timeouts/disk, sha256
            # mismatch, a cut-off response: told on stderr, and the data is recorded as synthetic
            _download_failed = True
            reason = " ".join(str(exc).split())[:120]
            print(f"xpubench: IMDB download failed ({reason}); using synthetic IMDB-shaped data", file=sys.stderr)
    return None


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays only, as Keras does for its dataset files."""

    _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from an IMDB data file")


def load_npz_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads an .npz with object arrays (ragged int lists) without arbitrary unpickling.

    Args:
        path: The .npz file.
    """
    arrays = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if not member.endswith(".npy"):
                continue
            buf = io.BytesIO(archive.read(member))
            try:
                arrays[member[:-4]] = np.lib.format.read_array(buf, allow_pickle=False)
            except ValueError:  # an object array: skip the header, then unpickle arrays only
                buf.seek(0)
                major, _ = np.lib.format.read_magic(buf)
                (np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0)(buf)
                arrays[member[:-4]] = _ArrayUnpickler(buf).load()
    return arrays


def read_imdb_npz(path: str | os.PathLike, num_words: int = WORDS) -> tuple[tuple, tuple]:
    """``keras.datasets.imdb.load_data(num_words=...)`` on a given file, with its defaults.

    Same shuffle (seed 113), start character 1, out-of-vocabulary 2, word indices offset by 3.

    Args:
        path: An imdb.npz (x_train, y_train, x_test, y_test; x as object arrays of int lists).
        num_words: Keep the most frequent words; others become the out-of-vocabulary index 2.

    Returns:
        ``((x_train, y_train), (x_test, y_test))`` with x as object arrays of lists.
    """
    f = load_npz_arrays(path)
    rng = np.random.RandomState(113)
    out = []
    for split in ("train", "test"):
        x, y = f[f"x_{split}"], np.asarray(f[f"y_{split}"])
        order = np.arange(len(x))
        rng.shuffle(order)
        seqs = [[1] + [w + 3 if w + 3 < num_words else 2 for w in x[i]] for i in order]
        out.append((np.array(seqs + [None], dtype=object)[:-1], y[order]))
    return out[0], out[1]


def pad_pre(seqs, maxlen: int) -> np.ndarray:
    """``pad_sequences(seqs, maxlen)`` with its defaults (pad and truncate at the front), int32.

    Args:
        seqs: Sequences of word indices.
        maxlen: Output length.
    """
    out = np.zeros((len(seqs), maxlen), np.int32)
    for i, s in enumerate(seqs):
        s = list(s)[-maxlen:]
        if s:
            out[i, maxlen - len(s):] = s
    return out


@functools.lru_cache(maxsize=2)
def _dataset(path: str | None, stamp: tuple, n_train: int, n_test: int, maxlen: int):
    """Padded arrays, cached per process; ``stamp`` (mtime, size) keeps a changed file from hitting."""
    if path is None:
        (xt, yt), (xe, ye) = synthetic.imdb_reviews(n_train, n_test, seed=SYNTHETIC_SEED, maxlen=maxlen)
        return xt, yt, xe, ye
    (xt, yt), (xe, ye) = read_imdb_npz(path)
    n_train, n_test = min(n_train, len(xt)), min(n_test, len(xe))
    return (pad_pre(xt[:n_train], maxlen), np.asarray(yt[:n_train], np.float32),
            pad_pre(xe[:n_test], maxlen), np.asarray(ye[:n_test], np.float32))


def load_imdb(n_train: int, n_test: int, maxlen: int, options: Mapping[str, Any] | None = None):
    """The padded train/test arrays a trial uses, and where they came from.

    Args:
        n_train: Training reviews (the first n of the split; real data has at most 25,000).
        n_test: Test reviews.
        maxlen: Padded length.
        options: Workload options (``data``, ``offline``).

    Returns:
        ``(x_train, y_train, x_test, y_test, source)`` with source ``"real"`` or ``"synthetic"``.
    """
    path = imdb_file(options)
    stamp = (path.stat().st_mtime_ns, path.stat().st_size) if path else ()
    data = _dataset(str(path) if path else None, stamp, n_train, n_test, maxlen)
    return (*data, "real" if path else "synthetic")


def epoch_scorer(model, x, y):
    """A Keras callback that, after each epoch, records the training accuracy Keras logged and
    scores ``(x, y)`` (accuracy and the seconds it took). Given to :func:`fit_timed` after its
    clock, so the scoring is not counted in the epoch's time.

    Args:
        model: The model being trained.
        x: Held-out inputs.
        y: Held-out labels.

    Returns:
        ``(callback, record)``; ``record`` holds ``train_accuracy``, ``accuracy`` and ``eval_s`` lists.
    """
    import keras

    record: dict[str, list[float]] = {"train_accuracy": [], "accuracy": [], "eval_s": []}

    def score(epoch, logs=None):
        record["train_accuracy"].append(float((logs or {}).get("accuracy", float("nan"))))
        t0 = time.perf_counter()
        _, accuracy = model.evaluate(x, y, batch_size=256, verbose=0)
        record["eval_s"].append(time.perf_counter() - t0)
        record["accuracy"].append(float(accuracy))

    return keras.callbacks.LambdaCallback(on_epoch_end=score), record


def build_model(maxlen: int):
    """The seed's CNN-LSTM, compiled (Adam, binary cross-entropy, accuracy).

    Args:
        maxlen: Review length in tokens.
    """
    import keras

    model = keras.Sequential(
        [
            keras.Input(shape=(maxlen,), dtype="int32"),
            keras.layers.Embedding(WORDS, EMBED),
            keras.layers.Conv1D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling1D(2),
            keras.layers.LSTM(100),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


class ImdbCnnLstmWorkload(Workload):
    """The seed-003 CNN-LSTM on IMDB (real when available, else synthetic); test accuracy."""

    name = "imdb_cnn_lstm"
    description = "IMDB CNN-LSTM sentiment, 3 epochs at batch 64 (seed 003); test accuracy"
    throughput_unit = "samples/s"
    quality_key = "accuracy"
    higher_is_better = True
    options = ("data", "offline", "epochs", "train", "test", "maxlen", "repeats")

    def setup(self, size: str, options: Mapping[str, Any] | None = None) -> dict:
        """The size's setup with option overrides (train, test, maxlen, epochs, repeats).

        Args:
            size: ``quick`` or ``full``.
            options: Workload options (strings from the command line, or numbers).
        """
        return {k: int_option(options, k, v) for k, v in SETUPS[size].items()}

    def trials(self, size: str, options: Mapping[str, Any] | None = None) -> list[dict]:
        s = self.setup(size, options)
        if (options or {}).get("data"):
            imdb_file(options)  # a missing --data file is a usage error before anything starts
        return [
            {"id": f"rep{r}-e{s['epochs']}-n{s['train']}-len{s['maxlen']}", "repeat": r,
             **{k: s[k] for k in ("train", "test", "maxlen", "epochs")}}
            for r in range(s["repeats"])
        ]

    def data_info(self, size: str, options: Mapping[str, Any] | None = None) -> dict:
        s = self.setup(size, options)
        path = imdb_file(options, download=True)
        info = {"train": s["train"], "test": s["test"], "maxlen": s["maxlen"], "num_words": WORDS}
        if path is None:
            return {"source": "synthetic", "name": "synthetic IMDB-shaped reviews (workloads.synthetic)", **info}
        return {"source": "real", "name": "IMDB (keras.datasets.imdb, num_words=5000)", "path": str(path), **info}

    def run_trial(self, config: Mapping[str, Any], ctx: TrialContext) -> TrialOutput:
        try:
            return self._train_and_score(config, ctx)
        finally:
            release_keras()

    def _train_and_score(self, config: Mapping[str, Any], ctx: TrialContext) -> TrialOutput:
        rss0, t0 = rss_bytes(), time.perf_counter()
        x_train, y_train, x_test, y_test, source = load_imdb(config["train"], config["test"], config["maxlen"], ctx.options)
        data_s, t0 = time.perf_counter() - t0, time.perf_counter()
        with ctx.scope():
            model = build_model(config["maxlen"])
        epochs = int(config["epochs"])
        held = min(HELDOUT, len(x_test))
        scorer, scored = epoch_scorer(model, x_test[:held], y_test[:held])
        epoch_s = fit_timed(model, x_train, y_train, epochs, BATCH * ctx.replicas, callbacks=[scorer])
        fit_s, t0 = time.perf_counter() - t0, time.perf_counter()
        loss, accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
        eval_s = time.perf_counter() - t0
        steady = epoch_s[1:] or epoch_s
        train_s = np.cumsum(epoch_s).tolist()
        return TrialOutput(
            quality={"accuracy": float(accuracy), "loss": float(loss)},
            samples=float(epochs * len(x_train)),
            warmup_s=epoch_s[0],
            extra={
                "data_source": source, "train": len(x_train), "test": len(x_test), "maxlen": int(config["maxlen"]),
                "epochs": epochs, "epoch_s": epoch_s, "data_s": data_s, "fit_s": fit_s, "eval_s": eval_s,
                "train_samples_per_s": len(x_train) * len(steady) / sum(steady),
                "params": int(model.count_params()), "rss_start_bytes": rss0, "rss_end_bytes": rss_bytes(),
                "replicas": ctx.replicas, "global_batch": BATCH * ctx.replicas,
                # per epoch: the first is the warm-up (tracing); held-out scoring is outside epoch_s
                "epoch_samples_per_s": [len(x_train) / s for s in epoch_s],
                "epoch_train_accuracy": scored["train_accuracy"], "epoch_heldout_accuracy": scored["accuracy"],
                "epoch_eval_s": scored["eval_s"], "heldout": held,
                # accuracy on the held-out reviews against training seconds so far (scoring excluded)
                "time_to_accuracy": [{"train_s": t, "accuracy": a} for t, a in zip(train_s, scored["accuracy"])],
                "flops": model_flops(model).trial(trained=epochs * len(x_train), evaluated=len(x_test) + epochs * held),
            },
        )

    def predict_setup(self, size: str, rows: int, options: Mapping[str, Any] | None = None):
        """A trained model and ``rows`` input rows for predict_modes.

        The model trains one epoch on up to 2,048 reviews of the size's data (prediction speed
        does not depend on how well it learnt). Rows are test reviews, repeated if needed.

        Args:
            size: ``quick`` or ``full`` (sets the review length).
            rows: Number of input rows wanted.
            options: Workload options (``data``, ``offline``).

        Returns:
            ``(model, x)``.
        """
        s = self.setup(size, options)
        x_train, y_train, x_test, _, _ = load_imdb(min(s["train"], 2048), s["test"], s["maxlen"], options)
        model = build_model(s["maxlen"])
        model.fit(x_train, y_train, epochs=1, batch_size=BATCH, verbose=0)
        return model, np.resize(x_test, (rows, s["maxlen"]))
