"""Keras backends (tensorflow, jax, torch): selection and worker environments (pure functions), GPU
availability asked of the backend that will run, then real workers of each backend.

The real part starts one worker per installed backend (a few seconds each) and runs, in it, one
Lorenz trial long enough to learn (40 epochs of the 5-16x5-5 network) and predict_modes' two
compiled modes; one more jax worker runs ``data_parallel`` over two logical CPU devices. Under jax
and torch the worker must not import TensorFlow (its hello says which frameworks it loaded).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
import types
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from fakes.nvml_fixture import forget, install  # noqa: E402

from bench.backends import base, registry  # noqa: E402
from bench.backends.registry import backend_names, get_backend, installed_backends, parse_backends  # noqa: E402
from bench.engines import childenv, devices  # noqa: E402
from bench.errors import UsageError  # noqa: E402

EIGEN_OFF = "--xla_cpu_multi_thread_eigen=false"
COUNT = "--xla_force_host_platform_device_count"


# ---------------------------------------------------------------- selection


def test_the_registry_names_three_backends_in_order_without_importing_them():
    assert backend_names() == ["tensorflow", "jax", "torch"]
    tf, jax, torch = (get_backend(n) for n in backend_names())
    assert (tf.dist, tf.extra, jax.dist, jax.extra, torch.dist, torch.extra) == (
        "tensorflow", "", "jax", "jax", "torch", "torch")
    assert (tf.compiler, jax.compiler, torch.compiler) == ("tf.function", "jax.jit", "torch.compile")
    for b in (tf, jax, torch):
        assert b.version() == metadata.version(b.dist)
    assert installed_backends() == ["tensorflow", "jax", "torch"]  # all three are in the test environment


def test_parse_backends_keeps_order_drops_repeats_and_expands_all():
    assert parse_backends("tensorflow,jax") == ["tensorflow", "jax"]
    assert parse_backends(" jax , torch,jax ") == ["jax", "torch"]
    assert parse_backends(["torch", "tensorflow"]) == ["torch", "tensorflow"]
    assert parse_backends("all") == installed_backends()
    assert parse_backends("jax,all") == ["jax", "tensorflow", "torch"]
    with pytest.raises(UsageError, match=r"^bad backend list ' , ' \(choose from: tensorflow, jax, torch, all\)$"):
        parse_backends(" , ")
    with pytest.raises(UsageError) as err:
        parse_backends("tensorflow,mxnet")
    assert str(err.value) == "unknown backend 'mxnet' (choose from: tensorflow, jax, torch)"


def test_a_backend_that_is_not_installed_is_one_error_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jax" else real(name, *a))
    assert installed_backends() == ["tensorflow", "torch"]
    assert parse_backends("all") == ["tensorflow", "torch"]
    for text in ("jax", "tensorflow,jax"):
        with pytest.raises(UsageError) as err:
            parse_backends(text)
        assert str(err.value) == "backend 'jax' is not installed (pip install 'xpubench[jax]')"
    with pytest.raises(UsageError, match=r"^backend 'jax' is not installed"):
        childenv.child_env(1, 1, backend="jax")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorflow" else real(name, *a))
    with pytest.raises(UsageError, match=r"^backend 'tensorflow' is not installed \(pip install tensorflow\)$"):
        get_backend("tensorflow")


def test_supports_names_the_backend_that_runs_a_multi_device_strategy():
    tf, jax, torch = (get_backend(n) for n in backend_names())
    assert all(b.supports(d) is None for b in (tf, jax, torch) for d in ("cpu", "gpu", "gpu:1"))
    assert tf.supports("mirrored") is None and tf.supports("mirrored:cpu2") is None
    assert jax.supports("data_parallel") is None and jax.supports("data_parallel:cpu4") is None
    assert jax.supports("mirrored") == "mirrored runs on tensorflow only (jax: use data_parallel)"
    assert tf.supports("data_parallel:cpu2") == "data_parallel runs on jax only (tensorflow: use mirrored)"
    assert torch.supports("mirrored") == "mirrored runs on tensorflow only (torch has no multi-device strategy here)"
    assert torch.supports("data_parallel") == "data_parallel runs on jax only (torch has no multi-device strategy here)"
    # the worker refuses it too, before touching a framework
    with pytest.raises(RuntimeError, match=r"mirrored runs on tensorflow only \(jax: use data_parallel\)"):
        devices.get_device("mirrored").setup(jax)


def test_naming_backends_and_building_their_environments_imports_no_framework():
    code = (
        "import sys\n"
        "from bench.backends.registry import backend_names, get_backend, installed_backends, parse_backends\n"
        "from bench.engines import childenv, devices\n"
        "parse_backends('all'); installed_backends()\n"
        "for n in backend_names():\n"
        "    b = get_backend(n); b.version(); b.supports('mirrored'); b.thread_env(2, 1)\n"
        "    for d in devices.device_names():\n"
        "        dev = devices.get_device(d)\n"
        "        if not dev.availability(n):\n"
        "            childenv.recorded(childenv.child_env(1, 1, dev.child_env(0, 1, n), backend=n))\n"
        "print(','.join(m for m in ('tensorflow', 'jax', 'torch', 'keras') if m in sys.modules))\n"  # NVML is asked (gpu)
    )
    env = {**os.environ, "XPUBENCH_GPU_PROBE": "0", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


# ---------------------------------------------------------------- environments (pure)


def test_flag_lists_merge_flag_by_flag():
    assert base.merge_flags("", EIGEN_OFF) == EIGEN_OFF
    assert base.merge_flags(f"--xla_dump_to=/d {COUNT}=8", f"{COUNT}=2") == f"--xla_dump_to=/d {COUNT}=2"
    assert base.merge_flags("--a=1 --b", "--b=0 --c") == "--a=1 --b=0 --c"
    assert base.flag_value(f"{COUNT}=8 --x {COUNT}=3", COUNT) == "3"  # the last one wins, as in XLA
    assert base.flag_value("--x", "--x") == "true" and base.flag_value("--y=1", "--x") is None


def test_thread_caps_per_backend():
    parent = {"PATH": "/bin", "KERAS_BACKEND": "torch", "TF_NUM_INTRAOP_THREADS": "9"}
    tf = childenv.child_env(2, 1, parent=parent)
    assert tf["KERAS_BACKEND"] == "tensorflow"  # the strategy's backend, never the parent's
    assert {k: tf[k] for k in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS",
                               "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")} == {
        "TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "2",
        "MKL_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}
    assert childenv.thread_env(2, 1) == get_backend("tensorflow").thread_env(2, 1)

    one = childenv.child_env(1, 1, parent=parent, backend="jax")
    assert one["KERAS_BACKEND"] == "jax" and one["XLA_FLAGS"] == EIGEN_OFF
    assert (one["OMP_NUM_THREADS"], one["MKL_NUM_THREADS"], one["OPENBLAS_NUM_THREADS"]) == ("1", "1", "1")
    assert "TF_NUM_INTRAOP_THREADS" not in one and "TF_NUM_INTEROP_THREADS" not in one
    assert "XLA_FLAGS" not in childenv.child_env(2, 1, parent=parent, backend="jax")  # no flag sets N > 1 threads
    user = {**parent, "XLA_FLAGS": f"--xla_dump_to=/tmp/d {COUNT}=8 --xla_cpu_multi_thread_eigen=true"}
    assert childenv.child_env(1, 1, parent=user, backend="jax")["XLA_FLAGS"] == f"--xla_dump_to=/tmp/d {COUNT}=8 {EIGEN_OFF}"
    assert childenv.child_env(2, 1, parent=user, backend="jax")["XLA_FLAGS"] == user["XLA_FLAGS"]  # the user's, kept

    torch = childenv.child_env(3, 2, parent=parent, backend="torch")
    assert (torch["OMP_NUM_THREADS"], torch["MKL_NUM_THREADS"], torch["XPUBENCH_TORCH_INTEROP_THREADS"]) == ("3", "3", "2")
    assert "TF_NUM_INTRAOP_THREADS" not in torch and "XLA_FLAGS" not in torch


def test_recorded_environment_carries_the_backends_own_variables():
    user = {"PATH": "/bin", "XLA_FLAGS": "--xla_dump_to=/tmp/d"}
    dev = devices.get_device("data_parallel")
    jax = childenv.recorded(childenv.child_env(1, 1, dev.child_env(0, 1, "jax"), parent=user, backend="jax"))
    assert jax == {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                   "CUDA_VISIBLE_DEVICES": "", devices.MIRRORED_CPUS_VAR: "2", "KERAS_BACKEND": "jax",
                   "JAX_PLATFORMS": "cpu", "XLA_FLAGS": f"--xla_dump_to=/tmp/d {EIGEN_OFF} {COUNT}=2"}
    tf = childenv.recorded(childenv.child_env(1, 1, {"CUDA_VISIBLE_DEVICES": ""}, parent=user))
    assert "XLA_FLAGS" not in tf and tf["KERAS_BACKEND"] == "tensorflow" and tf["TF_NUM_INTRAOP_THREADS"] == "1"
    torch = childenv.recorded(childenv.child_env(1, 1, parent=user, backend="torch"))
    assert torch["XPUBENCH_TORCH_INTEROP_THREADS"] == "1" and "XLA_FLAGS" not in torch


@pytest.fixture
def fake_gpus(monkeypatch):
    """``fake_gpus(n, seen)``: NVML (fake) sees n GPUs; each backend's probe answers ``seen[backend]``
    (a count, or None for a probe that failed). Returns the backends probed, in order."""
    for var in ("CUDA_VISIBLE_DEVICES", devices.MIRRORED_CPUS_VAR, devices.GPU_PROBE_VAR):
        monkeypatch.delenv(var, raising=False)
    calls: list[str] = []

    def set_(n: int, seen: dict):
        install(monkeypatch, gpus=[{} for _ in range(n)]) if n else install(monkeypatch, init_error=12)

        def probe(backend):
            calls.append(backend)
            count = seen.get(backend, n)
            if count is None:
                return None, f"{get_backend(backend).label} probe failed (TimeoutExpired)"
            if count == 0:
                return [], f"{get_backend(backend).label} (a build without CUDA) lists no GPU device"
            return [f"gpu:{i}" for i in range(count)], ""

        monkeypatch.setattr(devices, "_probe_gpus", probe)
        forget()
        return calls

    yield set_
    forget()


def test_device_variables_per_backend(fake_gpus):
    fake_gpus(2, {})
    cpu = {b: devices.get_device("cpu").child_env(0, 1, b) for b in backend_names()}
    assert cpu == {"tensorflow": {"CUDA_VISIBLE_DEVICES": ""}, "torch": {"CUDA_VISIBLE_DEVICES": ""},
                   "jax": {"CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu"}}
    gpu = devices.get_device("gpu")
    common = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert [gpu.child_env(i, 2, "tensorflow") for i in range(2)] == [
        {"CUDA_VISIBLE_DEVICES": str(i), "TF_FORCE_GPU_ALLOW_GROWTH": "true", **common} for i in range(2)]
    assert gpu.child_env(1, 2, "jax") == {"CUDA_VISIBLE_DEVICES": "1", "XLA_PYTHON_CLIENT_PREALLOCATE": "false", **common}
    assert gpu.child_env(0, 1, "torch") == {"CUDA_VISIBLE_DEVICES": "0", **common}
    dp = devices.get_device("data_parallel")
    assert [dp.child_env(i, 2, "jax")["CUDA_VISIBLE_DEVICES"] for i in range(2)] == ["0", "1"]
    assert dp.child_env(0, 1, "jax") == {"CUDA_VISIBLE_DEVICES": "0,1", "XLA_PYTHON_CLIENT_PREALLOCATE": "false", **common}
    assert devices.get_device("data_parallel:cpu3").child_env(0, 1, "jax") == {
        "CUDA_VISIBLE_DEVICES": "", devices.MIRRORED_CPUS_VAR: "3", "JAX_PLATFORMS": "cpu", "XLA_FLAGS": f"{COUNT}=3"}
    assert devices.get_device("data_parallel:cpu3").nvml_indices(1) == [] and dp.nvml_indices(1) == [0, 1]


def test_gpu_availability_is_asked_of_the_backend_that_will_run(fake_gpus):
    calls = fake_gpus(2, {"tensorflow": 2, "jax": 0, "torch": None})
    gpu = devices.get_device("gpu")
    assert gpu.availability("tensorflow") is None
    reason = gpu.availability("jax")
    assert reason == ("no GPU visible to JAX (NVML sees 2 GPU(s) but JAX (a build without CUDA) lists no GPU device; "
                      "pip install 'jax[cuda12]')")
    assert gpu.availability("torch") is None  # the probe itself failed: NVML's answer stands
    assert devices.get_device("gpu:1").availability("jax") == reason
    assert calls == ["tensorflow", "jax", "torch"]  # one probe per backend, cached
    with pytest.raises(UsageError, match=r"^no GPU visible to JAX \(NVML sees 2"):
        devices.parse_devices("cpu,gpu", backend="jax")
    # a multi-device strategy falls back to logical CPUs when its backend sees no GPU (and watches none)
    assert devices.get_device("data_parallel").child_env(0, 1, "jax")["XLA_FLAGS"] == f"{COUNT}=2"
    assert devices.get_device("data_parallel").nvml_indices(1, "jax") == []
    assert devices.get_device("mirrored").nvml_indices(1, "tensorflow") == [0, 1]
    assert devices.get_device("gpu").nvml_indices(2, "torch") == [0, 1]


def test_without_nvml_only_an_asked_probe_runs(fake_gpus, monkeypatch):
    calls = fake_gpus(0, {})
    for b in backend_names():
        reason = devices.get_device("gpu").availability(b)
        label = get_backend(b).label
        assert reason.startswith(f"no GPU visible to {label} (") and f"to ask {label} directly" in reason
    assert calls == []
    monkeypatch.setenv(devices.GPU_PROBE_VAR, "1")
    calls = fake_gpus(0, {"torch": 1})
    assert devices.get_device("gpu").availability("torch") is None and calls == ["torch"]


def test_parse_devices_checks_the_backend_it_is_given(fake_gpus):
    fake_gpus(0, {})
    assert devices.parse_devices("cpu,data_parallel", backend="jax") == ["cpu", "data_parallel"]
    assert devices.parse_devices("all", backend="torch") == ["cpu", "data_parallel", "gpu", "mirrored"]
    with pytest.raises(UsageError) as err:
        devices.parse_devices("mirrored", backend="jax")
    assert str(err.value) == "mirrored runs on tensorflow only (jax: use data_parallel)"
    with pytest.raises(UsageError, match=r"^data_parallel runs on jax only \(tensorflow: use mirrored\)$"):
        devices.parse_devices("data_parallel")
    assert devices.get_device("data_parallel").availability("jax") is None
    assert devices.get_device("mirrored").availability("jax") == "mirrored runs on tensorflow only (jax: use data_parallel)"


def test_a_torch_compile_that_fails_is_unavailable_with_the_reason(monkeypatch):
    def compile_(fn, dynamic=None):
        def compiled(t):
            raise subprocess.CalledProcessError(1, ["cc", "-shared"], "no C compiler\nmore")

        return compiled

    torch = get_backend("torch")
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(compile=compile_, no_grad=contextlib.nullcontext))
    with pytest.raises(base.Unavailable, match=r"^torch\.compile does not work here \(CalledProcessError: Command"):
        torch.compile_predict(lambda t, training=False: t, np.zeros((3, 2), "float32"))


# ---------------------------------------------------------------- real workers


def lorenz_baseline() -> float:
    """RMSE of an untrained network's answer (about zero) on the Lorenz test range: what learning must beat."""
    from workloads.lorenz import SHIFT, TEST_START, TRAIN_L, lorenz_series

    y = lorenz_series()[TEST_START + SHIFT : TEST_START + TRAIN_L + SHIFT]
    return float(np.sqrt(np.mean(y.astype(np.float64) ** 2)))


LEARNS_CONFIG = "width-5-16-16-16-16-16-5-e40"
PREDICT_OPTIONS = {"rows": "300", "row_limit": "4", "min_time": "0.05", "model": "lorenz",
                   "modes": "tf_function_row,tf_function"}


def _jobs():
    from bench.model.workload import get_workload, trial_seed

    lorenz = next(c for c in get_workload("lorenz").trials("quick", {"epochs": "40"}) if c["id"] == LEARNS_CONFIG)
    jobs = [{"type": "trial", "workload": "workloads.lorenz:LorenzWorkload", "size": "quick", "config": lorenz,
             "seed": trial_seed("lorenz", lorenz["id"]), "options": {}}]
    for c in get_workload("predict_modes").trials("quick", PREDICT_OPTIONS):
        jobs.append({"type": "trial", "workload": "workloads.predict_modes:PredictModesWorkload", "size": "quick",
                     "config": c, "seed": trial_seed("predict_modes", c["id"]), "options": PREDICT_OPTIONS})
    return jobs


def run_worker(backend: str, device: str, jobs: list[dict]) -> tuple[dict, dict]:
    """Runs ``jobs`` in one real worker of ``backend`` on ``device``; returns (its hello, {trial id: reply})."""
    from bench.engines.local import WorkerPool

    dev = devices.get_device(device)
    pool = WorkerPool(1, lambda i: childenv.child_env(1, 1, dev.child_env(i, 1, backend), backend=backend), device)
    replies = {}
    try:
        pool.start()
        pool.run(jobs, lambda job, reply: replies.__setitem__(job["config"]["id"], reply), trial_timeout=600)
    finally:
        pool.close()
    return pool.worker_facts[0], replies


@pytest.fixture(scope="module")
def workers():
    """{backend: (hello, replies)}: one cpu worker per installed backend, each running ``_jobs()``."""
    forget()
    return {b: run_worker(b, "cpu", _jobs()) for b in installed_backends()}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tensorflow", "jax", "torch"])
def test_a_real_worker_of_each_backend_loads_only_its_framework(workers, name):
    hello, _ = workers[name]
    backend = get_backend(name)
    assert hello["backend"] == name and hello["backend_version"] == backend.version()
    assert hello["keras"] == metadata.version("keras")
    assert ("tensorflow" in hello["frameworks_loaded"]) is (name == "tensorflow")  # jax/torch: no TensorFlow
    assert name in hello["frameworks_loaded"]
    assert hello["tensorflow"] == (backend.version() if name == "tensorflow" else "")
    applied = hello["threads_applied"]
    assert applied["source"] and hello["intra_op_threads"] == applied["intra_op_threads"]
    if name == "jax":  # XLA sizes its pool by CPU affinity; what the flag did is recorded
        assert applied["xla_cpu_multi_thread_eigen"] is False and applied["intra_op_threads"] >= 1
        assert hello["inter_op_threads"] == 0 and hello["visible_devices"] == ["cpu:0"]
    else:  # the caps as the framework reports them
        assert (hello["intra_op_threads"], hello["inter_op_threads"]) == (1, 1)
    assert hello["device_info"]["kind"] == "cpu" and hello["cuda_visible_devices"] == ""
    assert isinstance(hello["build"], dict) and "is_cuda_build" in hello["build"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tensorflow", "jax", "torch"])
def test_lorenz_learns_on_every_backend(workers, name):
    _, replies = workers[name]
    reply = replies[LEARNS_CONFIG]
    assert reply.ok, reply.error
    assert reply.quality["rmse"] < 0.5 * lorenz_baseline(), reply.quality  # ~17 untrained, ~5.5-6 after 40 epochs
    assert reply.extra["replicas"] == 1 and reply.extra["global_batch"] == 100 and reply.samples == 40 * 900


@pytest.mark.slow
def test_backends_learn_about_the_same_lorenz_network(workers):
    # the same network, seed and data; what differs is each backend's random streams (initial weights,
    # shuffling) and the order of floating-point sums, so the RMSEs are close, not equal
    rmse = {b: workers[b][1][LEARNS_CONFIG].quality["rmse"] for b in workers}
    assert max(rmse.values()) < 1.5 * min(rmse.values()), rmse


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tensorflow", "jax", "torch"])
def test_the_compiled_predict_modes_use_each_backends_compiler(workers, name):
    compiler = get_backend(name).compiler
    _, replies = workers[name]
    for trial in ("tf_function_row-b1", "tf_function-b4096"):
        reply = replies[trial]
        assert reply.ok, reply.error
        assert reply.quality["max_abs_diff"] <= 1e-4  # the same check against the reference predictions
        e = reply.extra
        assert e["compiler"] == compiler and e["backend"] == name and e["mode_label"].startswith(compiler)
        assert e["compile_s"] >= 0 and e["rows_per_s"] > 0
    assert replies["tf_function-b4096"].extra["compile_s"] == 0  # compiled once per model and process


@pytest.mark.slow
def test_data_parallel_trains_over_two_logical_cpu_devices_under_jax():
    forget()
    job = _jobs()[0]
    hello, replies = run_worker("jax", "data_parallel", [job])
    assert hello["replicas"] == 2 and "tensorflow" not in hello["frameworks_loaded"]
    info = hello["device_info"]
    assert (info["kind"], info["strategy"], info["devices"]) == ("cpu-logical", "DataParallel", ["cpu:0", "cpu:1"])
    assert len(hello["visible_devices"]) == 2
    reply = replies[LEARNS_CONFIG]
    assert reply.ok, reply.error
    assert reply.extra["replicas"] == 2 and reply.extra["global_batch"] == 200  # per-replica batch x replicas
    assert reply.quality["rmse"] < 0.5 * lorenz_baseline()
