"""The sampler with GPUs (fake pynvml) and CPU energy (a fake powercap tree): per-GPU readings in
every sample, an injected NVML error giving "unavailable" for one field, only the strategy's
GPUs sampled, and the run summary's GPU percentiles and energy computed from those samples."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from fakes.nvml_fixture import forget, install  # noqa: E402

from bench.model.ratios import gpu_percentiles, summarize  # noqa: E402
from bench.model.results import TrialRecord  # noqa: E402
from bench.measure.sampler import Sampler  # noqa: E402

GIB = 2**30
GPU_FIELDS = {"index", "util_percent", "mem_used_bytes", "mem_total_bytes", "power_w", "sm_clock_mhz",
              "temperature_c", "energy_mj"}


@pytest.fixture
def fake_nvml(monkeypatch):
    """``fake_nvml(**config)`` installs the fake pynvml for this test."""
    yield lambda **config: install(monkeypatch, **config)
    forget()


def powercap(root: Path, uj: int) -> Path:
    d = root / "intel-rapl:0"
    d.mkdir(parents=True, exist_ok=True)
    (d / "name").write_text("package-0\n")
    (d / "max_energy_range_uj").write_text("262143328850\n")
    (d / "energy_uj").write_text(f"{uj}\n")
    return d / "energy_uj"


def two_gpus(**second) -> list[dict]:
    return [
        {"util": 20, "mem_used": 1 * GIB, "power_mw": 100_000, "energy_mj": lambda n: 1_000 * n},
        {"util": 80, "mem_used": 3 * GIB, "power_mw": 50_000, "energy_mj": lambda n: 4_000 * n, **second},
    ]


def test_every_sample_has_each_gpu_and_an_injected_error_is_one_field(fake_nvml, tmp_path):
    fake_nvml(gpus=two_gpus(), fail={("nvmlDeviceGetClockInfo", 1): 3})
    s = Sampler(interval=0.05, rapl_root=tmp_path / "none")
    with s:
        time.sleep(0.4)
    assert len(s.samples) >= 4
    for sample in s.samples:
        a, b = sample["gpus"]
        assert set(a) == set(b) == GPU_FIELDS
        assert (a["index"], b["index"]) == (0, 1)
        assert a["util_percent"] == 20.0 and b["util_percent"] == 80.0
        assert a["sm_clock_mhz"] == 1410.0 and b["sm_clock_mhz"] == "unavailable"
        assert sample["cpu_energy_j"].startswith("unavailable: ")
        assert {"t", "cpu_percent", "tree_cpu_s", "tree_rss_bytes"} <= set(sample)  # existing fields kept
    # the GPU percentiles the report shows, from these samples: half the readings at 20 %, half at 80 %
    p = gpu_percentiles(s.samples)
    assert p["gpu_util_p50"] == pytest.approx(50.0) and p["gpu_util_p95"] == pytest.approx(80.0)
    assert p["gpu_mem_used_p50_bytes"] == pytest.approx(2 * GIB)
    assert p["gpu_mem_used_p95_bytes"] == pytest.approx(3 * GIB)


def test_only_the_strategys_gpus_are_sampled(fake_nvml, tmp_path):
    fake_nvml(gpus=two_gpus())
    with Sampler(interval=0.05, gpu_indices=[1], energy=False) as s:
        time.sleep(0.1)
    assert all([g["index"] for g in x["gpus"]] == [1] for x in s.samples)
    assert all("cpu_energy_j" not in x for x in s.samples)
    assert gpu_percentiles(s.samples)["gpu_util_p50"] == pytest.approx(80.0)


def test_without_nvml_gpu_fields_say_unavailable(fake_nvml, tmp_path):
    fake_nvml(init_error=12)
    with Sampler(interval=0.05, rapl_root=tmp_path) as s:
        time.sleep(0.1)
    assert all(x["gpus"] == "unavailable" for x in s.samples)
    assert gpu_percentiles(s.samples) == {}


def test_energy_summary_from_a_sampled_run(fake_nvml, tmp_path):
    """CPU joules from the RAPL counter, GPU joules from the NVML counter (GPU 0) and from
    integrated power (GPU 1 has no counter), per trial and per 1,000 samples."""
    fake_nvml(gpus=two_gpus(energy_mj=None))
    counter = powercap(tmp_path, 10_000_000)
    s = Sampler(interval=30.0, rapl_root=tmp_path).start()  # first sample now, the next on stop
    time.sleep(0.2)
    counter.write_text("16000000\n")  # +6 J of package energy
    samples = s.stop()
    assert len(samples) == 2
    assert samples[0]["cpu_energy_j"] == 0.0 and samples[1]["cpu_energy_j"] == pytest.approx(6.0)
    dt = samples[1]["t"] - samples[0]["t"]
    trials = [TrialRecord(id=f"t{i}", config={}, wall_s=0.1, samples=750.0) for i in range(2)]
    summary = summarize(trials, samples, wall_s=dt, processes=1)
    cpu, gpu = summary["energy"]["cpu"], summary["energy"]["gpu"]
    assert cpu["joules"] == pytest.approx(6.0) and cpu["per_trial_j"] == pytest.approx(3.0)
    assert cpu["per_1k_samples_j"] == pytest.approx(4.0)
    assert gpu["method"] == "nvml-energy-counter+nvml-power-integration"
    assert gpu["per_gpu_j"]["0"] == pytest.approx(1.0)  # counter: 1000 mJ per read
    assert gpu["per_gpu_j"]["1"] == pytest.approx(50.0 * dt)  # 50 W held for the window
    assert gpu["joules"] == pytest.approx(1.0 + 50.0 * dt)
    assert summary["gpu_util_p50"] == pytest.approx(50.0)


def test_speedup_over_cpu_pairs_runs_with_the_same_process_count():
    from bench.model.ratios import speedup_over_cpu
    from bench.model.results import RunRecord

    def run(device, processes, wall, status="complete", workload="w"):
        return RunRecord(workload=workload, size="quick", strategy={"device": device, "processes": processes},
                         status=status, summary={"wall_s": wall} if wall else {})

    runs = [run("cpu", 1, 30.0), run("gpu", 1, 10.0), run("mirrored", 1, 60.0), run("cpu", 2, 20.0),
            run("gpu", 2, 8.0), run("gpu", 4, 5.0), run("gpu", 1, None, status="skipped"),
            run("gpu", 1, 3.0, workload="x")]
    assert speedup_over_cpu(runs) == [pytest.approx(1.0), pytest.approx(3.0), pytest.approx(0.5), pytest.approx(1.0),
                                      pytest.approx(2.5), None, None, None]
