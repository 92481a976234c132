"""Lazy NVML against the fake ``pynvml`` (tests/fakes): per-GPU readings and their units, an
NVML error on one query giving "unavailable" for that field only, a failed init, and the GPU
facts the machine fingerprint records."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from fakes.nvml_fixture import forget, install  # noqa: E402

from bench.measure.nvml import UNAVAILABLE, Nvml, nvml  # noqa: E402

GIB = 2**30
TWO = [
    {"name": "Fake A100", "mem_total": 40 * GIB, "mem_used": 3 * GIB, "util": 87, "power_mw": 251_500,
     "power_limit_mw": 400_000, "sm_clock": 1410, "temperature": 61, "energy_mj": 5_000_000, "cc": (8, 0)},
    {"name": "Fake T4", "mem_total": 16 * GIB, "mem_used": 1 * GIB, "util": 3, "power_mw": 27_250,
     "power_limit_mw": 70_000, "sm_clock": 585, "temperature": 40, "energy_mj": None, "cc": (7, 5)},
]


@pytest.fixture
def fake_nvml(monkeypatch):
    """``fake_nvml(**config)`` installs the fake pynvml for this test."""
    yield lambda **config: install(monkeypatch, **config)
    forget()


def test_nothing_is_imported_or_initialised_until_first_query(fake_nvml):
    fake_nvml(gpus=TWO)
    del sys.modules["pynvml"]  # as in a fresh process: a re-import starts with one default GPU
    nv = nvml()
    assert "pynvml" not in sys.modules and nv.reason == "not initialised"
    assert nv.available and nv.reason == ""
    assert sys.modules["pynvml"].IS_FAKE and sys.modules["pynvml"].STATE["initialised"]
    assert nv.device_count() == 1


def test_sample_reads_every_field_in_its_unit(fake_nvml):
    fake_nvml(gpus=TWO)
    a, t = nvml().sample()
    assert a == {
        "index": 0, "util_percent": 87.0, "mem_used_bytes": 3 * GIB, "mem_total_bytes": 40 * GIB,
        "power_w": 251.5, "sm_clock_mhz": 1410.0, "temperature_c": 61.0, "energy_mj": 5_000_000.0,
    }
    assert t["index"] == 1 and t["power_w"] == 27.25 and t["util_percent"] == 3.0
    assert t["energy_mj"] == UNAVAILABLE  # a T4 has no total-energy counter: NOT_SUPPORTED
    assert nvml().errors["energy_mj[1]"] == "nvmlDeviceGetTotalEnergyConsumption: Not Supported"


def test_an_nvml_error_on_one_query_makes_only_that_field_unavailable(fake_nvml):
    pynvml = fake_nvml(gpus=TWO, fail={("nvmlDeviceGetPowerUsage", 1): 4, "nvmlDeviceGetTemperature": 15})
    a, t = nvml().sample()
    assert t["power_w"] == UNAVAILABLE and a["power_w"] == 251.5  # only GPU 1's power query fails
    assert a["temperature_c"] == t["temperature_c"] == UNAVAILABLE  # that query fails on both
    assert t["util_percent"] == 3.0 and t["mem_used_bytes"] == GIB and t["sm_clock_mhz"] == 585.0
    assert nvml().errors["power_w[1]"].endswith("Insufficient Permissions")
    assert nvml().errors["temperature_c[0]"].endswith("GPU is lost")
    # the failure is per call: when the GPU answers again, the field comes back
    pynvml.STATE["fail"].clear()
    assert nvml().sample()[1]["power_w"] == 27.25


def test_memory_error_blanks_both_memory_fields(fake_nvml):
    fake_nvml(gpus=TWO, fail={"nvmlDeviceGetMemoryInfo": 999})
    for g in nvml().sample():
        assert g["mem_used_bytes"] == g["mem_total_bytes"] == UNAVAILABLE
        assert isinstance(g["util_percent"], float)


def test_sample_selected_gpus(fake_nvml):
    fake_nvml(gpus=TWO)
    assert [g["index"] for g in nvml().sample([1])] == [1]
    assert [g["index"] for g in nvml().sample([1, 7, 0])] == [1, 0]  # unknown indices are ignored
    assert nvml().sample([]) == []


def test_values_change_between_samples(fake_nvml):
    fake_nvml(gpus=[{"util": lambda n: 10.0 * n, "energy_mj": lambda n: 1000 * n}])
    reads = [nvml().sample()[0] for _ in range(3)]
    assert [r["util_percent"] for r in reads] == [0.0, 10.0, 20.0]
    assert [r["energy_mj"] for r in reads] == [0.0, 1000.0, 2000.0]


@pytest.mark.parametrize("code,text", [(12, "NVML Shared Library Not Found"), (999, "Unknown Error")])
def test_failed_init_is_unavailable_not_a_crash(fake_nvml, code, text):
    fake_nvml(init_error=code)
    nv = nvml()
    assert not nv.available and nv.device_count() == 0
    assert nv.sample() == [] and nv.describe() == [] and nv.uuids() == []
    assert nv.reason == f"NVML unavailable ({text})"


def test_no_gpu_and_missing_module(fake_nvml, monkeypatch):
    fake_nvml(gpus=[])
    assert not nvml().available and nvml().reason == "NVML found no GPU"
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    nv = Nvml()
    assert not nv.available and nv.reason.startswith("pynvml not importable (")


def test_describe_gives_the_fingerprint_facts(fake_nvml):
    fake_nvml(gpus=TWO, driver="550.54.15", cuda_driver=12040, fail={("nvmlDeviceGetPowerManagementLimit", 1): 3})
    a, t = nvml().describe()
    assert a["name"] == "Fake A100" and a["memory_total_bytes"] == 40 * GIB
    assert a["driver_version"] == "550.54.15" and a["cuda_driver_version"] == "12.4"
    assert a["compute_capability"] == "8.0" and a["power_limit_w"] == 400.0
    assert a["uuid"].startswith("GPU-") and a["pci_bus_id"] == "00000000:01:00.0"
    assert a["energy_counter"] is True and t["energy_counter"] is False
    assert t["power_limit_w"] == UNAVAILABLE and t["compute_capability"] == "7.5"


def test_machine_fingerprint_lists_gpus_and_energy_sources(fake_nvml, tmp_path):
    from bench.measure import energy
    from bench.measure import machine

    fake_nvml(gpus=TWO)
    fp = machine.fingerprint("box")
    assert [g["name"] for g in fp["gpus"]] == ["Fake A100", "Fake T4"] and fp["gpu_status"] == ""
    # one GPU without the counter: its energy has to come from integrated power samples
    assert fp["energy"]["gpu"] == {"readable": True, "method": "nvml-power-integration"}
    forget()
    fake_nvml(gpus=TWO[:1])
    assert energy.sources(tmp_path)["gpu"]["method"] == "nvml-energy-counter"
    assert energy.sources(tmp_path)["cpu"]["readable"] is False
    forget()
    fake_nvml(init_error=12)
    fp = machine.fingerprint("box")
    assert fp["gpus"] == [] and "NVML Shared Library Not Found" in fp["gpu_status"]
    assert fp["energy"]["gpu"]["readable"] is False
