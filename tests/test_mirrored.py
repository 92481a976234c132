"""``mirrored`` for real, without a GPU: the CPU split into 2 logical TensorFlow devices.

One TensorFlow process (module fixture) sets the strategy up exactly as a worker does, then
trains the same model on one device and mirrored over two, and runs the Lorenz workload's
``run_trial`` both ways. A real sweep then runs ``mirrored:cpu2`` through the pool and worker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from fakes.tiny_workload import TinyWorkload  # noqa: E402

from bench.engines import childenv  # noqa: E402

from bench.engines import devices  # noqa: E402

pytestmark = pytest.mark.slow

SCRIPT = r"""
import json, sys
import tensorflow as tf, keras
from bench.engines.devices import get_device
from bench.model.workload import TrialContext, trial_seed
from fakes.tiny_workload import TinyWorkload
from workloads.lorenz import LorenzWorkload

dev = get_device("mirrored").setup()  # the worker's call; the environment asks for 2 CPU devices
out = {"replicas": dev.replicas, "info": dev.info}
with dev.scope():
    strategy = tf.distribute.get_strategy()
    v = tf.Variable(1.0)
    out["variable"] = type(v).__name__
    out["variable_devices"] = sorted(x.device for x in v.values)
ids = strategy.run(lambda: tf.distribute.get_replica_context().replica_id_in_sync_group)
out["replica_ids"] = sorted(int(x) for x in strategy.experimental_local_results(ids))
out["replica_devices"] = sorted(x.device for x in strategy.experimental_local_results(ids))

one = TrialContext(seed=0)
two = TrialContext(seed=0, device="mirrored", scope=dev.scope, replicas=dev.replicas)
tiny = TinyWorkload()
out["tiny"] = {}
for config in tiny.trials("quick", {"epochs": 4}):  # tiny-h8 both ways; tiny-h16 mirrored in the sweep below
    seed = trial_seed(tiny.name, config["id"])
    res = {}
    for name, ctx in (("one", one), ("mirrored", two))[: 2 if config["hidden"] == 8 else 1]:
        keras.utils.set_random_seed(seed)
        r = tiny.run_trial(config, ctx)
        res[name] = {"quality": r.quality, "extra": r.extra}
    out["tiny"][config["id"]] = res

lorenz = LorenzWorkload()
config = lorenz.trials("quick", {"epochs": 2})[0]
out["lorenz"] = {}
for name, ctx in (("one", one), ("mirrored", two)):
    keras.utils.set_random_seed(1)
    r = lorenz.run_trial(config, ctx)
    out["lorenz"][name] = {"rmse": r.quality["rmse"], "samples": r.samples, "warmup_s": r.warmup_s}
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def mirrored_process():
    """What one worker-like TensorFlow process with ``mirrored:cpu2`` measured."""
    dev = devices.get_device("mirrored:cpu2")
    env = childenv.child_env(2, 1, dev.child_env(0, 1))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(TESTS), env["PYTHONPATH"]])
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def test_two_logical_cpu_devices_two_replicas(mirrored_process):
    r = mirrored_process
    assert r["replicas"] == 2
    assert r["info"]["kind"] == "cpu-logical" and r["info"]["strategy"] == "MirroredStrategy"
    assert [d.rsplit(":", 2)[-2:] for d in r["info"]["devices"]] == [["CPU", "0"], ["CPU", "1"]]
    # variables really live on both devices, and each replica runs on its own device
    assert r["variable"] == "MirroredVariable" and len(set(r["variable_devices"])) == 2
    assert r["replica_ids"] == [0, 1] and len(set(r["replica_devices"])) == 2


def test_mirrored_training_matches_one_device(mirrored_process):
    """Same global batch, same seed: two replicas (half the batch each, gradients all-reduced)
    take the same steps as one device, so the losses agree to float rounding."""
    for trial, res in mirrored_process["tiny"].items():
        if "mirrored" not in res:
            continue
        one, two = res["one"], res["mirrored"]
        assert two["extra"]["replicas"] == 2 and two["extra"]["per_replica_batch"] * 2 == two["extra"]["global_batch"]
        assert one["quality"]["loss"] < 0.5, trial  # it trained (the target's variance is ~6.3)
        assert two["quality"]["loss"] == pytest.approx(one["quality"]["loss"], rel=1e-3, abs=1e-5), trial
        assert two["quality"]["mse"] == pytest.approx(one["quality"]["mse"], rel=1e-3, abs=1e-5), trial


def test_lorenz_trial_trains_under_mirrored(mirrored_process):
    """The Lorenz workload's own run_trial: batch scaled by replicas (global 200 = 2 x 100), so it
    takes half the steps of one device; its RMSE must still be in the same range."""
    one, two = mirrored_process["lorenz"]["one"], mirrored_process["lorenz"]["mirrored"]
    assert two["samples"] == one["samples"] == 2 * 900
    assert 0 < two["rmse"] < float("inf")
    assert 2 / 3 < two["rmse"] / one["rmse"] < 3 / 2, (one, two)
    assert two["warmup_s"] > 0


def test_sweep_runs_mirrored_through_the_worker(tmp_path, monkeypatch, mirrored_process):
    """The whole path: device env -> worker setup -> hello -> trials -> result; losses match the
    one-device runs of the same trials (same seeds) measured in the process above."""
    from bench.model import workload
    from bench.sweep.sweep import run_sweep

    monkeypatch.setitem(workload._REGISTRY, TinyWorkload.name, TinyWorkload)
    monkeypatch.syspath_prepend(str(TESTS))  # workers import fakes.tiny_workload from here
    result = run_sweep(TinyWorkload.name, "quick", processes=[1], devices=["mirrored:cpu2"], out_dir=tmp_path,
                       options={"epochs": "4", "hidden": "16"}, sample_interval=0.2)
    (run,) = result.runs
    assert run.status == "complete" and all(t.ok for t in run.trials), [t.error for t in run.trials]
    (worker,) = run.workers
    assert worker["replicas"] == 2 and worker["device_info"]["kind"] == "cpu-logical"
    assert worker["cuda_visible_devices"] == ""
    assert run.env["CUDA_VISIBLE_DEVICES"] == ""
    for t in run.trials:
        assert t.extra["replicas"] == 2
        one = mirrored_process["tiny"][t.id]["one"]["quality"]["loss"]
        assert t.quality["loss"] == pytest.approx(one, rel=1e-3, abs=1e-5), t.id
        assert t.wall_s > t.warmup_s > 0
    assert [t.id for t in run.trials] == ["tiny-h16"]
    s = run.summary
    assert s["throughput"] > 0 and s["energy"]["cpu"]["status"] in ("measured", "unavailable")
