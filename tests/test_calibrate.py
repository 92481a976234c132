"""bench calibrate: the cache's reader, the command's input checks, and one real measurement."""

from __future__ import annotations

import json
import time

import pytest

from bench.measure import calibrate
from bench.cli import main as cli_main

GOOD = {
    "schema": 1,
    "tool": "xpubench",
    "parallel_efficiency": {"1": 1.0, "2": 0.9, "4": 0.7},
    "matmul_gflops": 120.5,
    "matmul_gflops_1thread": 60.0,
    "measured_at": "2026-01-01T00:00:00+00:00",
    "usable_cores": 4,
    "kernel": {"wall_s": {"1": [0.25], "2": [0.27]}},
}


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    """A private ~/.cache, so tests neither read nor overwrite the real calibration."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cache_path_is_per_machine_and_safe(cache_home):
    assert calibrate.cache_path("node-1.lan") == cache_home / "xpubench" / "calibration-node-1.lan.json"
    assert calibrate.cache_path("../../etc/x y").name == "calibration-.._.._etc_x_y.json"
    assert calibrate.cache_path("../x").parent == cache_home / "xpubench"


@pytest.mark.parametrize(
    "n, counts",
    [(1, [1]), (2, [1, 2]), (8, list(range(1, 9))), (32, [1, 2, 4, 6, 8, 16, 32]), (12, [1, 2, 4, 6, 8, 12])],
)
def test_process_counts(n, counts):
    assert calibrate.process_counts(n) == counts


def test_cached_calibration_reads_a_good_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(GOOD))
    got = calibrate.cached_calibration(path)
    assert got == {k: GOOD[k] for k in ("parallel_efficiency", "matmul_gflops", "matmul_gflops_1thread", "measured_at", "usable_cores")}


@pytest.mark.parametrize(
    "content",
    [
        "",
        "{not json",
        "[]",
        "null",
        json.dumps({**GOOD, "parallel_efficiency": {}}),
        json.dumps({**GOOD, "parallel_efficiency": {"1": "1.0"}}),
        json.dumps({**GOOD, "parallel_efficiency": {"one": 1.0}}),
        json.dumps({**GOOD, "parallel_efficiency": {"0": 1.0}}),
        json.dumps({**GOOD, "parallel_efficiency": {"1": -0.5}}),
        json.dumps({**GOOD, "parallel_efficiency": {"1": True}}),
        json.dumps({**GOOD, "matmul_gflops": True}),
        json.dumps({**GOOD, "matmul_gflops": 0}),
        json.dumps({**GOOD, "matmul_gflops": "fast"}),
        json.dumps({k: v for k, v in GOOD.items() if k != "measured_at"}),
        "\udcff",
    ],
)
def test_cached_calibration_ignores_bad_files(tmp_path, content):
    path = tmp_path / "c.json"
    path.write_text(content, encoding="utf-8", errors="surrogateescape")
    assert calibrate.cached_calibration(path) is None


def test_cached_calibration_without_a_file(cache_home):
    assert calibrate.cached_calibration() is None
    assert calibrate.cached_calibration(cache_home / "missing.json") is None


def test_ceiling_interpolates_between_measured_counts():
    assert calibrate.ceiling_for(GOOD, 1) == 1.0
    assert calibrate.ceiling_for(GOOD, 2) == 0.9
    assert calibrate.ceiling_for(GOOD, 3) == pytest.approx(0.8)
    assert calibrate.ceiling_for(GOOD, 8) is None
    assert calibrate.ceiling_for(None, 2) is None


def test_table_shows_every_count():
    doc = {
        **GOOD,
        "hostname": "h",
        "cpu": "cpu",
        "logical_cores": 8,
        "elapsed_s": 4.2,
        "load_avg_1m": 3.5,
        "matmul_gflops_all_cores": 120.5,
        "parallel_efficiency": {"1": 1.0, "2": 0.9},
        "kernel": {"wall_s": {"1": [0.3, 0.25], "2": [0.28]}, "skipped_counts": [4]},
        "matmul": {"n": 1024, "threads": 4, "numpy": "2", "blas": "openblas"},
    }
    text = calibrate.format_table(doc)
    assert "0.250 s" in text and "90.0 %" in text and "1.80" in text
    assert "not measured, over the time budget: 4" in text
    assert "120.5 GFLOP/s on 4 threads" in text
    assert "other work was running" in text  # load 3.5 on 4 cores


@pytest.mark.parametrize("value", ["0", "-1", "two", "10000"])
def test_bad_process_count_is_a_usage_error(value, capsys, monkeypatch, cache_home):
    monkeypatch.setattr(calibrate, "calibrate", lambda *a, **k: pytest.fail("measured despite bad input"))
    assert cli_main(["calibrate", "--max-processes", value]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and repr(value) in err and err.count("\n") == 1


def test_unusable_out_is_refused_before_measuring(tmp_path, capsys, monkeypatch, cache_home):
    monkeypatch.setattr(calibrate, "calibrate", lambda *a, **k: pytest.fail("measured despite bad input"))
    assert cli_main(["calibrate", "--out", str(tmp_path / "no" / "such" / "c.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (cache_home / "xpubench").exists()


def test_a_real_calibration(tmp_path, capsys, cache_home):
    """The real thing: 1 and 2 processes and the matmul, in well under 10 s."""
    from bench.sweep.sweep import Sweep
    from bench.model.strategy import make_strategies

    t0 = time.perf_counter()
    assert cli_main(["calibrate", "--max-processes", "2", "--out", str(tmp_path)]) == 0
    elapsed = time.perf_counter() - t0
    assert elapsed < 10.0
    out = capsys.readouterr().out
    written = tmp_path / calibrate.cache_path().name
    doc = json.loads(written.read_text())
    assert doc["schema"] == 1 and doc["kind"] == "calibration"
    eff = doc["parallel_efficiency"]
    assert list(eff) == ["1", "2"] and eff["1"] == 1.0
    assert 0.05 < eff["2"] <= 1.3  # 2 processes: from heavily shared to (noise above) perfect
    assert doc["matmul_gflops"] >= doc["matmul_gflops_1thread"] > 0.5  # any CPU of this century
    assert doc["kernel"]["rounds"] >= 2 and all(len(v) == doc["kernel"]["rounds"] for v in doc["kernel"]["wall_s"].values())
    assert doc["elapsed_s"] < elapsed
    for n in ("1", "2"):
        assert f"\n{n:>9}  " in out
    assert "GFLOP/s" in out
    # cached for this machine and carried by every result's fingerprint
    assert json.loads(calibrate.cache_path().read_text()) == doc
    assert calibrate.cached_calibration() == calibrate.summary(doc)
    sweep = Sweep("lorenz", "quick", make_strategies(["cpu"], [1], 1), out_dir=tmp_path / "results")
    assert sweep.result.machine["calibration"] == calibrate.summary(doc)


def test_dense_training_flops_and_share_of_peak():
    # Lorenz [5, 8, 5]: 3->5->8->5->3 = 2*(15+40+40+15) = 220 FLOPs forward per example
    assert calibrate.dense_train_flops([3, 5, 8, 5, 3], 900) == 3 * 220 * 900
    assert calibrate.dense_train_flops([3], 10) == 0
    # 1 GFLOP in 1 s on a 100 GFLOP/s machine: 1 %
    assert calibrate.peak_share(1e9, 1.0, {"matmul_gflops": 100.0}) == pytest.approx(0.01)
    assert calibrate.peak_share(1e9, 1.0, None) is None
    assert calibrate.peak_share(1e9, 0.0, {"matmul_gflops": 100.0}) is None
