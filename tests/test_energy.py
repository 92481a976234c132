"""Energy: RAPL package counters (a fake powercap tree; wrap-around; root-only files), what this
machine really allows, and the run summaries (joules, per trial, per 1,000 samples) computed
from sampler timelines — "unavailable" with the reason where nothing was measured."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.measure import energy
from bench.measure.energy import CpuEnergyMeter, Rapl
from bench.model.energy import counter_delta, cpu_energy, energy_summary, gpu_energy, is_unavailable

MAX = 262_143_328_850  # a real package max_energy_range_uj


def zone(root: Path, name: str, label: str, uj: int, max_range: int | None = MAX) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "name").write_text(label + "\n")
    (d / "energy_uj").write_text(f"{uj}\n")
    if max_range is not None:
        (d / "max_energy_range_uj").write_text(f"{max_range}\n")
    return d / "energy_uj"


@pytest.fixture
def powercap(tmp_path):
    """Two packages, their core sub-zones and a psys zone (which must not be counted)."""
    root = tmp_path / "powercap"
    p0 = zone(root, "intel-rapl:0", "package-0", 1_000_000)
    p1 = zone(root, "intel-rapl:1", "package-1", 5_000_000)
    zone(root, "intel-rapl:0:0", "core", 10)
    zone(root, "intel-rapl:2", "psys", 99_000_000)
    (root / "intel-rapl-mmio:0").mkdir()
    return root, p0, p1


def test_counter_delta_handles_wrap_around():
    assert counter_delta(100, 250, MAX) == 150
    assert counter_delta(MAX - 10, 5, MAX) == 15
    assert counter_delta(500, 20, None) == 0  # went backwards, range unknown: not counted


def test_rapl_reads_package_zones_only(powercap):
    root, p0, p1 = powercap
    rapl = Rapl(root)
    assert rapl.available and rapl.reason == ""
    assert [z[0] for z in rapl.zones] == ["package-0", "package-1"]
    assert rapl.read_uj() == [1_000_000, 5_000_000]


def test_meter_accumulates_joules_across_wraps(powercap):
    root, p0, p1 = powercap
    meter = CpuEnergyMeter(Rapl(root))
    assert meter.read() == 0.0
    p0.write_text("3500000\n")  # +2.5 J
    p1.write_text("5250000\n")  # +0.25 J
    assert meter.read() == pytest.approx(2.75)
    p0.write_text(f"{MAX - 500_000}\n")  # close to the top of the range
    first = meter.read()
    p0.write_text("1500000\n")  # wrapped: +0.5 J to the top, +1.5 J after
    assert meter.read() == pytest.approx(first + 2.0)


def test_root_only_counter_is_unavailable_with_the_reason(powercap, monkeypatch):
    root, p0, _ = powercap
    real = Rapl._read

    def read(self, path):
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied")
        return real(self, path)

    monkeypatch.setattr(Rapl, "_read", read)
    os.chmod(p0, 0o400)
    rapl = Rapl(root)
    assert not rapl.available and rapl.read_uj() is None
    assert rapl.reason == f"{p0} readable only by root (mode 0o400, Linux >= 5.10)"
    assert CpuEnergyMeter(rapl).read() == f"unavailable: {rapl.reason}"


def test_missing_powercap_and_missing_packages(tmp_path):
    assert Rapl(tmp_path / "nope").reason.startswith(f"{tmp_path / 'nope'} absent (")
    zone(tmp_path, "intel-rapl:0", "psys", 1)
    assert Rapl(tmp_path).reason.startswith("no RAPL package zone")


def test_a_counter_that_disappears_mid_run_becomes_unavailable(powercap):
    root, p0, _ = powercap
    meter = CpuEnergyMeter(Rapl(root))
    assert meter.read() == 0.0
    p0.unlink()
    value = meter.read()
    assert is_unavailable(value) and "RAPL read failed" in value


def test_this_machine_says_what_it_can_read():
    """No hard-coded answer: either RAPL counts here, or the field carries the reason."""
    rapl = Rapl()
    value = CpuEnergyMeter(rapl).read()
    if rapl.available:
        assert value == 0.0 and all(isinstance(v, int) for v in rapl.read_uj())
    else:
        assert value == f"unavailable: {rapl.reason}" and rapl.reason
        if not Path("/sys/class/powercap").exists():
            assert "/sys/class/powercap absent" in rapl.reason
    assert energy.sources()["cpu"]["readable"] is rapl.available


# ---------------------------------------------------------------- summaries


def timeline(cpu_j, gpus=None):
    out = []
    for i, c in enumerate(cpu_j):
        s = {"t": 0.5 * i, "cpu_energy_j": c}
        if gpus is not None:
            s["gpus"] = gpus(i)
        out.append(s)
    return out


def test_cpu_energy_per_trial_and_per_thousand_samples():
    samples = timeline([0.0, 10.0, 25.0, 42.0, 60.0])  # 60 J over 2 s
    e = cpu_energy(samples[1:], trials=4, work=2000.0)  # the run's window starts at the 2nd sample
    assert e["status"] == "measured" and e["method"] == "rapl-counter"
    assert e["joules"] == pytest.approx(50.0)
    assert e["per_trial_j"] == pytest.approx(12.5)
    assert e["per_1k_samples_j"] == pytest.approx(25.0)
    assert e["mean_power_w"] == pytest.approx(50.0 / 1.5)
    assert "machine-wide" in e["scope"]


def test_cpu_energy_unavailable_keeps_the_reason():
    e = cpu_energy(timeline(["unavailable: no RAPL here"] * 3), 2, 100.0)
    assert e == {"status": "unavailable", "reason": "no RAPL here"}
    assert cpu_energy([{"t": 0.0}], 1, 1.0)["status"] == "unavailable"
    assert "fewer than 2" in cpu_energy(timeline([1.0]), 1, 1.0)["reason"]


def test_gpu_energy_from_the_counter():
    def gpus(i):
        return [{"index": 0, "energy_mj": 1_000_000 + 3000 * i, "power_w": 1.0},
                {"index": 1, "energy_mj": 7_000 * i, "power_w": 1.0}]

    e = gpu_energy(timeline([0.0] * 5, gpus), trials=2, work=500.0)
    assert e["method"] == "nvml-energy-counter"
    assert e["per_gpu_j"] == {"0": pytest.approx(12.0), "1": pytest.approx(28.0)}
    assert e["joules"] == pytest.approx(40.0) and e["per_trial_j"] == pytest.approx(20.0)
    assert e["per_1k_samples_j"] == pytest.approx(80.0)


def test_gpu_energy_integrates_power_without_a_counter():
    def gpus(i):
        return [{"index": 0, "energy_mj": "unavailable", "power_w": [100.0, 200.0, 200.0][i]}]

    e = gpu_energy(timeline([0.0] * 3, gpus), trials=1, work=0.0)
    # trapezoids: 0.5 s * 150 W + 0.5 s * 200 W
    assert e["method"] == "nvml-power-integration" and e["joules"] == pytest.approx(175.0)
    assert e["per_1k_samples_j"] is None  # no work reported: no per-sample figure


def test_gpu_energy_unavailable_reasons():
    e = gpu_energy(timeline([0.0] * 3, lambda i: "unavailable"), 1, 1.0)
    assert e["status"] == "unavailable" and "NVML unavailable" in e["reason"]
    e = gpu_energy(timeline([0.0] * 3, lambda i: [{"index": 0, "energy_mj": "unavailable", "power_w": "unavailable"}]),
                   1, 1.0)
    assert e["status"] == "unavailable" and "GPU 0: neither" in e["reason"]
    assert "sampling was off" in gpu_energy(timeline([0.0] * 3), 1, 1.0)["reason"]
    assert "uses no GPU" in gpu_energy(timeline([0.0] * 3, lambda i: []), 1, 1.0)["reason"]


def test_energy_summary_has_both_parts():
    s = energy_summary(timeline([0.0, 1.0]), 1, 10.0)
    assert set(s) == {"cpu", "gpu"} and s["cpu"]["joules"] == pytest.approx(1.0)
    assert s["gpu"]["status"] == "unavailable"
