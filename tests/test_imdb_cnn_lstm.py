"""IMDB CNN-LSTM: where its data comes from (real file > synthetic, no network when offline) and a
quick trial end to end. The real-data path is exercised with a small imdb.npz written here."""

from __future__ import annotations

import io
import sys
import urllib.error

import numpy as np
import pytest

from bench.errors import UsageError
from bench.model.workload import TrialContext, get_workload
from workloads import imdb_cnn_lstm as imdb


def ragged(rows):
    out = np.empty(len(rows), dtype=object)
    out[:] = [[int(w) for w in r] for r in rows]  # plain ints, as in the real file
    return out


def write_imdb_npz(path, n_train=40, n_test=30, seed=0):
    """A tiny file in keras's imdb.npz format: object arrays of raw word-index lists (1 = commonest)."""
    rng = np.random.default_rng(seed)

    def split(n):
        seqs = [rng.integers(1, 6000, rng.integers(5, 60)) for _ in range(n)]
        return ragged(seqs), rng.integers(0, 2, n)

    (xt, yt), (xe, ye) = split(n_train), split(n_test)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x_train=xt, y_train=yt, x_test=xe, y_test=ye)
    return (xt, yt), (xe, ye)


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """An empty Keras cache, offline, with any network use failing the test."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("XPUBENCH_OFFLINE", "1")
    monkeypatch.setattr(imdb, "cache_paths", lambda: [tmp_path / "keras" / "datasets" / "imdb.npz"])
    monkeypatch.setattr(imdb, "_download_failed", False)

    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(imdb.urllib.request, "urlopen", no_network)
    return tmp_path / "keras" / "datasets" / "imdb.npz"


def test_offline_without_a_file_means_synthetic_and_no_network(keras_home):
    workload = get_workload("imdb_cnn_lstm")
    assert imdb.imdb_file({}, download=True) is None  # offline: urlopen is never reached
    info = workload.data_info("quick", {})
    assert info["source"] == "synthetic" and info["train"] == 4096
    x_train, y_train, x_test, y_test, source = imdb.load_imdb(64, 32, 80, {})
    assert source == "synthetic" and x_train.shape == (64, 80) and x_test.shape == (32, 80)


def test_cached_real_file_is_preferred_over_synthetic(keras_home):
    (xt, yt), _ = write_imdb_npz(keras_home)
    assert imdb.imdb_file({"offline": "1"}) == keras_home
    info = get_workload("imdb_cnn_lstm").data_info("quick", {"offline": "1"})
    assert info["source"] == "real" and info["path"] == str(keras_home)
    x_train, y_train, x_test, y_test, source = imdb.load_imdb(1000, 1000, 20, {"offline": "1"})
    assert source == "real"
    assert x_train.shape == (40, 20) and x_test.shape == (30, 20)  # capped at the file's size
    # load_data's order: a RandomState(113) shuffle; words offset by 3 after the start index 1,
    # indices >= 5000 become 2; then pad_sequences pads/truncates at the front
    order = np.arange(40)
    np.random.RandomState(113).shuffle(order)
    raw = xt[order[0]]
    expected = [1] + [w + 3 if w + 3 < 5000 else 2 for w in raw]
    expected = ([0] * 20 + expected)[-20:]
    assert x_train[0].tolist() == expected
    assert y_train.tolist() == yt[order].astype(np.float32).tolist()


def test_data_option_wins_over_the_cache(keras_home, tmp_path):
    write_imdb_npz(keras_home, n_train=40)
    given = tmp_path / "mine" / "imdb.npz"
    write_imdb_npz(given, n_train=12, seed=1)
    x_train, *_, source = imdb.load_imdb(100, 100, 30, {"data": str(given)})
    assert source == "real" and len(x_train) == 12
    with pytest.raises(UsageError, match="missing.npz' does not exist"):
        get_workload("imdb_cnn_lstm").trials("quick", {"data": str(tmp_path / "missing.npz")})


def test_reader_matches_keras_load_data(keras_home, monkeypatch):
    import keras
    import keras.src.datasets.imdb as keras_imdb

    write_imdb_npz(keras_home, n_train=25, n_test=15, seed=3)
    monkeypatch.setattr(keras_imdb, "get_file", lambda *a, **k: str(keras_home))
    (kx, ky), (kxe, kye) = keras.datasets.imdb.load_data(num_words=5000)
    (x, y), (xe, ye) = imdb.read_imdb_npz(keras_home, num_words=5000)
    assert [list(s) for s in x] == [list(s) for s in kx] and y.tolist() == ky.tolist()
    assert [list(s) for s in xe] == [list(s) for s in kxe] and ye.tolist() == kye.tolist()
    padded = keras.utils.pad_sequences(list(kx), maxlen=30)
    np.testing.assert_array_equal(imdb.pad_pre(x, 30), padded)


def test_failed_download_falls_back_with_one_notice(keras_home, monkeypatch, capsys):
    monkeypatch.delenv("XPUBENCH_OFFLINE")
    calls = []

    def unreachable(url, timeout):
        calls.append(url)
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(imdb.urllib.request, "urlopen", unreachable)
    workload = get_workload("imdb_cnn_lstm")
    assert workload.data_info("quick", {})["source"] == "synthetic"
    assert workload.data_info("quick", {})["source"] == "synthetic"  # asked again: no second try
    err = capsys.readouterr().err.strip().splitlines()
    assert calls == [imdb.IMDB_URL] and len(err) == 1 and "IMDB download failed" in err[0]
    assert not keras_home.exists()


def test_download_lands_in_the_keras_cache(keras_home, monkeypatch, tmp_path):
    import hashlib

    monkeypatch.delenv("XPUBENCH_OFFLINE")
    source = tmp_path / "served.npz"
    write_imdb_npz(source)
    payload = source.read_bytes()
    monkeypatch.setattr(imdb, "IMDB_SHA256", hashlib.sha256(payload).hexdigest())
    monkeypatch.setattr(imdb.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(payload))
    info = get_workload("imdb_cnn_lstm").data_info("quick", {})
    assert info["source"] == "real" and keras_home.read_bytes() == payload
    monkeypatch.setattr(imdb, "IMDB_SHA256", "0" * 64)  # a corrupted download is refused
    keras_home.unlink()
    assert imdb.imdb_file({}, download=True) is None and not keras_home.exists()


def test_quick_trial_learns_synthetic_sentiment(keras_home):
    import keras

    workload = get_workload("imdb_cnn_lstm")
    (config,) = workload.trials("quick", {"repeats": "1"})
    assert (config["train"], config["maxlen"], config["epochs"]) == (4096, 80, 2)
    keras.utils.set_random_seed(11)
    out = workload.run_trial(config, TrialContext(size="quick", seed=11, options={}))
    assert out.quality["accuracy"] > 0.65  # chance is 0.5
    assert out.samples == 2 * 4096
    assert len(out.extra["epoch_s"]) == 2 and out.warmup_s == out.extra["epoch_s"][0]
    assert out.extra["data_source"] == "synthetic" and out.extra["train_samples_per_s"] > 0
    assert out.extra["params"] == 5000 * 32 + (3 * 32 * 32 + 32) + 4 * (32 + 100 + 1) * 100 + 101


def test_trial_on_a_cached_file_says_real(keras_home):
    import keras

    write_imdb_npz(keras_home)
    workload = get_workload("imdb_cnn_lstm")
    opts = {"train": "40", "test": "30", "maxlen": "24", "epochs": "1", "repeats": "1"}
    (config,) = workload.trials("quick", opts)
    keras.utils.set_random_seed(1)
    out = workload.run_trial(config, TrialContext(size="quick", seed=1, options=opts))
    assert out.extra["data_source"] == "real" and out.extra["train"] == 40 and out.samples == 40
    assert 0.0 <= out.quality["accuracy"] <= 1.0


def test_import_does_not_load_tensorflow():
    import subprocess

    code = "import workloads.imdb_cnn_lstm, workloads.pose_classifier, workloads.lstm_sequence, " \
           "workloads.predict_modes, sys; print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
