"""Device strategies: GPU assignment (pure functions), availability and its errors, the worker
environments each strategy sets, and `--device gpu` on a machine without a visible GPU.

GPUs are never real here: NVML is the fake ``pynvml`` (tests/fakes) and the TensorFlow probe is
replaced where a test needs GPUs "seen by TensorFlow". One test runs the real probe.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from fakes.nvml_fixture import forget, install  # noqa: E402

from bench.engines import devices  # noqa: E402
from bench.engines.devices import (  # noqa: E402
    assign_gpus,
    get_device,
    gpu_for_worker,
    parse_cuda_visible,
    parse_devices,
    partition_gpus,
)
from bench.errors import UsageError  # noqa: E402


@pytest.fixture
def fake_nvml(monkeypatch):
    """``fake_nvml(**config)`` installs the fake pynvml for this test."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv(devices.MIRRORED_CPUS_VAR, raising=False)
    monkeypatch.delenv(devices.GPU_PROBE_VAR, raising=False)
    yield lambda **config: install(monkeypatch, **config)
    forget()


@pytest.fixture
def tf_sees(monkeypatch):
    """``tf_sees(n)``: the TensorFlow probe reports n GPUs (None: the probe fails); counts calls."""
    def set_(n):
        calls = []

        def probe():
            calls.append(n)
            if n is None:
                return None, "TensorFlow probe failed (TimeoutExpired)"
            if n == 0:
                return [], "TensorFlow (CUDA 12.5.1 build) lists no GPU device"
            return [f"/physical_device:GPU:{i}" for i in range(n)], ""

        monkeypatch.setattr(devices, "_probe_gpus", lambda backend: probe())
        forget()
        return calls

    return set_


def no_gpu(fake_nvml):
    fake_nvml(init_error=12)  # NVML_ERROR_LIBRARY_NOT_FOUND: no NVIDIA driver


# ---------------------------------------------------------------- pure assignment


def test_round_robin_deals_gpus_in_turn():
    assert assign_gpus(5, ["0", "1"]) == ["0", "1", "0", "1", "0"]
    assert assign_gpus(2, ["3", "1", "2"]) == ["3", "1"]
    assert assign_gpus(3, ["GPU-a"]) == ["GPU-a"] * 3


@pytest.mark.parametrize("n,g", list(itertools.product(range(1, 9), range(1, 5))))
def test_round_robin_is_balanced(n, g):
    gpus = [str(i) for i in range(g)]
    counts = Counter(assign_gpus(n, gpus))
    used = [counts.get(x, 0) for x in gpus]
    assert sum(used) == n
    assert max(used) - min(used) <= 1  # no GPU gets two workers while another has none
    assert len(counts) == min(n, g)


def test_replacement_workers_continue_the_rotation():
    # a pool replacing dead workers starts indices n, n+1, ...: they stay on visible GPUs
    assert [gpu_for_worker(i, 2, ["0", "1"]) for i in range(2, 6)] == ["0", "1", "0", "1"]


def test_pinned_gpu_puts_every_worker_on_it():
    assert assign_gpus(3, ["4", "5", "6"], pinned=1) == ["5", "5", "5"]


@pytest.mark.parametrize(
    "call",
    [
        lambda: gpu_for_worker(0, 1, []),
        lambda: gpu_for_worker(0, 1, ["0"], pinned=1),
        lambda: gpu_for_worker(-1, 1, ["0"]),
        lambda: partition_gpus(0, 1, []),
    ],
)
def test_assignment_rejects_impossible_requests(call):
    with pytest.raises(ValueError):
        call()


@pytest.mark.parametrize("g", range(1, 9))
def test_partition_gives_disjoint_blocks_covering_every_gpu(g):
    gpus = [str(i) for i in range(g)]
    for n in range(1, g + 1):
        blocks = [partition_gpus(i, n, gpus) for i in range(n)]
        flat = [x for b in blocks for x in b]
        assert sorted(flat, key=int) == gpus and len(flat) == len(set(flat))
        sizes = [len(b) for b in blocks]
        assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
        assert all(b == sorted(b, key=int) for b in blocks)  # contiguous: NVLink neighbours stay together


def test_partition_with_more_workers_than_gpus_shares_one_each():
    assert [partition_gpus(i, 5, ["0", "1"]) for i in range(5)] == [["0"], ["1"], ["0"], ["1"], ["0"]]


@pytest.mark.parametrize(
    "value,count,expected",
    [
        (None, 3, [("0", 0), ("1", 1), ("2", 2)]),
        ("2,0", 3, [("2", 2), ("0", 0)]),
        ("0,7,1", 2, [("0", 0)]),  # CUDA stops at the first index that names no device
        ("1,1", 2, [("1", 1)]),  # and at a repeated one
        ("-1", 2, []),
        ("", 2, []),
        (" 1 , 0 ", 2, [("1", 1), ("0", 0)]),
        ("GPU-bb", 2, [("GPU-bb", 1)]),  # UUID prefix -> its NVML index
        ("GPU-zz,0", 2, []),  # unknown UUID ends the list
    ],
)
def test_parse_cuda_visible_reads_it_like_cuda(value, count, expected):
    uuids = ["GPU-aa11", "GPU-bb22"][:count]
    assert parse_cuda_visible(value, count, uuids) == expected


# ---------------------------------------------------------------- parsing and availability


def test_unknown_and_malformed_devices_are_usage_errors():
    with pytest.raises(UsageError, match=r"unknown device 'tpu' \(choose from: cpu, data_parallel, gpu, mirrored\)"):
        parse_devices("tpu")
    for bad in ("gpu:x", "gpu:-1", "cpu:2", "mirrored:cpu0", "mirrored:gpu2", "mirrored:cpu65", "data_parallel:cpu0",
                "data_parallel:gpu"):
        with pytest.raises(UsageError, match="bad device"):
            get_device(bad)
    with pytest.raises(UsageError, match="bad device list"):
        parse_devices(" , ")


def test_gpu_without_visible_gpu_is_a_usage_error(fake_nvml, tf_sees):
    no_gpu(fake_nvml)
    calls = tf_sees(0)
    for spec in ("gpu", "gpu:0", "cpu,gpu"):
        with pytest.raises(UsageError) as err:
            parse_devices(spec)
        assert str(err.value).startswith("no GPU visible to TensorFlow (")
        assert "NVML Shared Library Not Found" in str(err.value)
    assert calls == []  # no TensorFlow probe unless asked (XPUBENCH_GPU_PROBE) or a non-NVIDIA backend


def test_all_keeps_unavailable_strategies_for_the_runner_to_skip(fake_nvml):
    no_gpu(fake_nvml)
    assert parse_devices("all") == ["cpu", "data_parallel", "gpu", "mirrored"]
    assert parse_devices("cpu,all,mirrored") == ["cpu", "data_parallel", "gpu", "mirrored"]
    assert get_device("gpu").availability().startswith("no GPU visible to TensorFlow (")
    assert get_device("cpu").availability() is None
    assert get_device("mirrored").availability() is None  # falls back to logical CPU devices


def test_hidden_gpus_are_not_visible(fake_nvml, monkeypatch):
    fake_nvml(gpus=[{}, {}])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    forget()
    assert "hides every GPU" in get_device("gpu").availability()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    forget()
    assert "names none of the 2 GPU(s)" in get_device("gpu").availability()


def test_gpu_workers_get_one_gpu_each_round_robin(fake_nvml, tf_sees, monkeypatch):
    pynvml = fake_nvml(gpus=[{} for _ in range(3)])
    calls = tf_sees(3)
    assert parse_devices("gpu,gpu:2") == ["gpu", "gpu:2"]
    gpu = get_device("gpu")
    envs = [gpu.child_env(i, 4) for i in range(4)]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "2", "0"]
    assert all(e["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" and e["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID" for e in envs)
    assert gpu.nvml_indices(2) == [0, 1] and gpu.nvml_indices(8) == [0, 1, 2]
    assert [get_device("gpu:2").child_env(i, 2)["CUDA_VISIBLE_DEVICES"] for i in range(2)] == ["2", "2"]
    assert get_device("gpu:2").nvml_indices(2) == [2]
    assert len(calls) == 1  # the inventory (NVML + one probe) is cached
    with pytest.raises(UsageError, match=r"no GPU 3 visible to TensorFlow \(3 visible: 0\.\.2\)"):
        parse_devices("gpu:3")
    assert pynvml.CALLS  # NVML was really asked (through the fake)


def test_gpu_assignment_respects_the_parents_cuda_visible_devices(fake_nvml, tf_sees, monkeypatch):
    fake_nvml(gpus=[{} for _ in range(4)])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    tf_sees(2)
    gpu = get_device("gpu")
    assert [gpu.child_env(i, 3)["CUDA_VISIBLE_DEVICES"] for i in range(3)] == ["3", "1", "3"]
    assert gpu.nvml_indices(3) == [1, 3]
    assert get_device("gpu:0").child_env(0, 1)["CUDA_VISIBLE_DEVICES"] == "3"


def test_nvml_gpus_that_tensorflow_cannot_use_are_not_visible(fake_nvml, tf_sees):
    fake_nvml(gpus=[{}, {}])
    tf_sees(0)
    reason = get_device("gpu").availability()
    assert reason.startswith("no GPU visible to TensorFlow (NVML sees 2 GPU(s) but TensorFlow")
    assert "tensorflow[and-cuda]" in reason
    with pytest.raises(UsageError, match="NVML sees 2 GPU"):
        parse_devices("gpu")


def test_probe_can_be_turned_off_and_a_failed_probe_trusts_nvml(fake_nvml, tf_sees, monkeypatch):
    fake_nvml(gpus=[{}, {}])
    calls = tf_sees(None)  # the probe itself fails: NVML's answer stands
    assert get_device("gpu").availability() is None and calls == [None]
    monkeypatch.setenv(devices.GPU_PROBE_VAR, "0")
    calls = tf_sees(0)
    assert get_device("gpu").availability() is None and calls == []


def test_mirrored_over_gpus_splits_them_between_workers(fake_nvml, tf_sees):
    fake_nvml(gpus=[{} for _ in range(4)])
    tf_sees(4)
    m = get_device("mirrored")
    assert [m.child_env(i, 2)["CUDA_VISIBLE_DEVICES"] for i in range(2)] == ["0,1", "2,3"]
    assert m.child_env(0, 1)["CUDA_VISIBLE_DEVICES"] == "0,1,2,3"
    assert devices.MIRRORED_CPUS_VAR not in m.child_env(0, 1)
    assert m.nvml_indices(2) == [0, 1, 2, 3]
    # mirrored:cpuN ignores the GPUs
    assert get_device("mirrored:cpu3").child_env(0, 1) == {"CUDA_VISIBLE_DEVICES": "", devices.MIRRORED_CPUS_VAR: "3"}
    assert get_device("mirrored:cpu3").nvml_indices(1) == []


def test_mirrored_without_gpu_splits_the_cpu(fake_nvml, monkeypatch):
    no_gpu(fake_nvml)
    m = get_device("mirrored")
    assert m.child_env(1, 2) == {"CUDA_VISIBLE_DEVICES": "", devices.MIRRORED_CPUS_VAR: "2"}
    monkeypatch.setenv(devices.MIRRORED_CPUS_VAR, "3")
    assert m.child_env(0, 1)[devices.MIRRORED_CPUS_VAR] == "3"
    monkeypatch.setenv(devices.MIRRORED_CPUS_VAR, "lots")
    assert "bad XPUBENCH_MIRRORED_CPUS='lots'" in m.availability()
    with pytest.raises(UsageError, match="XPUBENCH_MIRRORED_CPUS"):
        parse_devices("mirrored")


def test_cpu_hides_every_gpu(fake_nvml):
    fake_nvml(gpus=[{}])
    assert get_device("cpu").child_env(0, 1) == {"CUDA_VISIBLE_DEVICES": ""}
    assert get_device("cpu").nvml_indices(1) == []


def test_runner_records_an_unavailable_strategy_as_skipped(fake_nvml, tmp_path):
    from bench.sweep.sweep import run_sweep

    no_gpu(fake_nvml)
    result = run_sweep("lorenz", "quick", processes=[1], devices=["gpu"], out_dir=tmp_path)
    (run,) = result.runs
    assert run.status == "skipped" and run.trials == ()
    assert run.skipped.startswith("no GPU visible to TensorFlow (")


# ---------------------------------------------------------------- real processes


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XPUBENCH_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def test_cli_device_gpu_without_gpu_exits_2_before_writing(tmp_path):
    forget()
    extra = {"XPUBENCH_GPU_PROBE": "0"}
    if devices.gpu_inventory().ids:  # a machine with a GPU: hide it for this test
        extra["CUDA_VISIBLE_DEVICES"] = "-1"
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "run", "lorenz", "--size", "quick", "--device", "gpu", "--processes", "1",
         "--out", str(out)],
        capture_output=True, text=True, env=_env(**extra), cwd=tmp_path, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: no GPU visible to TensorFlow ("), proc.stderr
    assert not out.exists()  # nothing half-written


def test_checking_devices_imports_neither_tensorflow_nor_nvml_eagerly():
    code = (
        "import sys\n"
        "import bench, bench.engines.devices, bench.measure.sampler, bench.measure.energy, bench.measure.machine, bench.model.ratios\n"
        "print('pynvml' in sys.modules, 'tensorflow' in sys.modules)\n"
        "from bench.engines.devices import get_device, device_names, parse_devices\n"
        "[get_device(n).availability() for n in device_names()]\n"
        "parse_devices('cpu,mirrored,all')\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=_env(XPUBENCH_GPU_PROBE="0"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False", "False", "False"]


@pytest.mark.slow
def test_real_tensorflow_probe(monkeypatch):
    """The probe subprocess for real: on a machine without GPU it explains what TensorFlow saw."""
    names, why = devices._probe_gpus("tensorflow")
    assert names is not None, why  # the probe ran and answered
    if names:
        assert why == "" and all("GPU" in n for n in names)
    else:
        assert "lists no GPU device" in why and "TensorFlow (" in why


def _gpu_backends() -> list[str]:
    from bench.backends.registry import installed_backends

    return installed_backends()


@pytest.mark.requires_gpu
@pytest.mark.parametrize("backend", _gpu_backends())
def test_gpu_strategy_on_a_real_gpu(tmp_path, monkeypatch, backend):
    """Only where the backend sees a GPU: one trial on it, with GPU readings in the samples."""
    forget()
    reason = devices.get_device("gpu").availability(backend=backend)
    if reason:
        pytest.skip(f"no GPU visible to {backend} on this machine ({reason})")
    from bench.model import workload
    from bench.sweep.sweep import run_sweep
    from fakes.tiny_workload import TinyWorkload

    monkeypatch.setitem(workload._REGISTRY, TinyWorkload.name, TinyWorkload)
    result = run_sweep(TinyWorkload.name, "quick", processes=[1], devices=["gpu"], backends=[backend], out_dir=tmp_path)
    (run,) = result.runs
    assert run.status == "complete" and all(t.ok for t in run.trials)
    assert run.workers[0]["device_info"]["kind"] == "gpu"
    assert isinstance(run.samples[-1]["gpus"], list) and run.summary.get("gpu_util_p50") is not None
