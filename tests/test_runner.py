"""A real quick Lorenz sweep at 1 and 2 worker processes (shared session fixture)."""

import math

from bench.model import results


def _runs(result):
    return {r.strategy["processes"]: r for r in result.runs}


def test_every_trial_ran_under_both_strategies(lorenz_quick_result):
    result, path = lorenz_quick_result
    runs = _runs(result)
    assert set(runs) == {1, 2}
    for r in runs.values():
        assert r.status == "complete"
        assert len(r.trials) == 4 and all(t.ok for t in r.trials)
        assert r.summary["failed"] == 0
    assert result.complete


def test_same_trial_same_rmse_under_every_strategy(lorenz_quick_result):
    result, _ = lorenz_quick_result
    runs = _runs(result)
    one = {t.id: t.quality["rmse"] for t in runs[1].trials}
    two = {t.id: t.quality["rmse"] for t in runs[2].trials}
    assert one.keys() == two.keys()
    for k in one:
        assert math.isfinite(one[k]) and one[k] > 0
        # seeded per trial: identical at 2 threads x 1 process and 1 thread x 2 processes
        assert math.isclose(one[k], two[k], rel_tol=1e-5), (k, one[k], two[k])
    assert len(set(round(v, 4) for v in one.values())) > 1  # different configs, different RMSEs


def test_ratios_are_derived_from_raw_times(lorenz_quick_result):
    result, _ = lorenz_quick_result
    runs = _runs(result)
    w1, w2 = runs[1].summary["wall_s"], runs[2].summary["wall_s"]
    assert w1 > 0 and w2 > 0
    assert math.isclose(runs[2].summary["speedup"], w1 / w2)
    assert math.isclose(runs[2].summary["efficiency"], w1 / w2 / 2)
    assert runs[1].summary["speedup"] == 1.0
    # wall time of a run covers its trials: sum of trial walls <= processes x run wall (+ slack)
    for n, r in runs.items():
        assert sum(t.wall_s for t in r.trials) <= n * r.summary["wall_s"] * 1.05 + 0.5
        # CPU/wall ratio: at most the usable cores (+ sampler/parent noise)
        assert 0.2 < r.summary["cpu_wall_ratio"] < 2.6
        total = sum(t.samples for t in r.trials)
        assert math.isclose(r.summary["throughput"], total / r.summary["wall_s"])
        assert r.summary["throughput_unit"] == "samples/s"


def test_startup_is_reported_apart_from_compute(lorenz_quick_result):
    result, _ = lorenz_quick_result
    for r in result.runs:
        n = r.strategy["processes"]
        assert r.summary["startup_s"]["n"] == n
        assert r.summary["startup_s"]["median"] > 0.5  # a TensorFlow import
        assert len(r.workers) == n and all(w["import_s"] > 0 for w in r.workers)


def test_thread_environment_is_capped_and_recorded(lorenz_quick_result):
    result, _ = lorenz_quick_result
    cores = result.machine["usable_cores"]
    for r in result.runs:
        n = r.strategy["processes"]
        t = max(1, cores // n)
        assert r.strategy["threads_per_process"] == t
        assert r.env["TF_NUM_INTRAOP_THREADS"] == str(t) and r.env["OMP_NUM_THREADS"] == str(t)
        assert r.env["CUDA_VISIBLE_DEVICES"] == ""
        # what TensorFlow actually used, reported by the worker
        assert {w["intra_op_threads"] for w in r.workers} == {t}


def test_samples_and_memory_recorded(lorenz_quick_result):
    result, _ = lorenz_quick_result
    for r in result.runs:
        assert len(r.samples) >= 3
        assert r.summary["peak_tree_rss_bytes"] > 100 * 2**20  # TensorFlow processes
        assert r.summary["peak_worker_rss_bytes"] > 100 * 2**20
        assert all(t.peak_rss_bytes > 0 for t in r.trials)


def test_file_on_disk_matches_and_carries_fingerprint(lorenz_quick_result):
    result, path = lorenz_quick_result
    loaded = results.load(path)
    assert results.to_dict(loaded) == results.to_dict(result)
    m = loaded.machine
    assert m["label"] == "test-machine"
    for key in ("cpu", "physical_cores", "logical_cores", "usable_cores", "ram_bytes", "os", "python",
                "tensorflow", "keras", "gpus", "tensorflow_build", "tensorflow_devices"):
        assert key in m, key
    assert loaded.runs[0].data["source"] == "generated"
