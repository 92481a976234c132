"""Energy: CPU package energy from RAPL, GPU energy from NVML, and the per-run energy summary.

Only measured energy is reported. CPU package energy comes from the RAPL counters Linux
exposes under ``/sys/class/powercap/intel-rapl*`` (AMD Zen uses the same interface); since
Linux 5.10 (the PLATYPUS fix) ``energy_uj`` is usually readable only by root, and virtual
machines and containers often do not expose it at all. GPU energy comes from NVML: the
driver's total-energy counter where the GPU has one (Volta and newer), otherwise the
integral of the sampled board power (the method is recorded). Where energy cannot be read
the value is ``"unavailable: <reason>"`` — never an estimate.

RAPL counts the whole package (every process on the CPU, not only the benchmark), so energy
figures are machine-wide over the run's window; ``scope`` in the summary says so.

Nothing here imports TensorFlow or NVML; reading is lazy.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping, Sequence

UNAVAILABLE = "unavailable"
POWERCAP_ROOT = Path("/sys/class/powercap")
_TOP_ZONE = re.compile(r"^intel-rapl:(\d+)$")


def unavailable(reason: str) -> str:
    """The value of an energy field that could not be read: ``"unavailable: <reason>"``."""
    return f"{UNAVAILABLE}: {reason}"


def is_unavailable(value) -> bool:
    return isinstance(value, str) and value.startswith(UNAVAILABLE)


def unavailable_reason(value) -> str:
    """The reason part of an ``"unavailable: …"`` value ("" if none)."""
    if not isinstance(value, str):
        return ""
    return value.partition(":")[2].strip()


def counter_delta(previous: int, current: int, max_range: int | None) -> int:
    """Increase of a wrapping energy counter between two reads.

    Args:
        previous: Earlier reading.
        current: Later reading.
        max_range: The value after which the counter wraps to 0 (RAPL ``max_energy_range_uj``);
            None when unknown.

    Returns:
        The increase; a counter that went backwards without a known range counts as 0.
    """
    if current >= previous:
        return current - previous
    if max_range and max_range > previous:
        return (max_range - previous) + current
    return 0


def _is_vm() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return any(line.startswith("flags") and " hypervisor" in line for line in f)
    except OSError:
        return False


class Rapl:
    """Reads the CPU package energy counters (µJ) of the RAPL powercap zones.

    Args:
        root: The powercap directory (default ``/sys/class/powercap``; tests give a fake tree).

    Attributes:
        zones: ``[(name, energy_uj path, max_energy_range_uj or None)]`` of the package zones.
        reason: Why the counters cannot be read ("" when they can).
    """

    def __init__(self, root: str | os.PathLike = POWERCAP_ROOT):
        self.root = Path(root)
        self.zones: list[tuple[str, Path, int | None]] = []
        self.reason = ""
        self._discover()

    @property
    def available(self) -> bool:
        return not self.reason

    def _read(self, path: Path) -> int:
        with open(path, encoding="ascii") as f:
            return int(f.read().strip())

    def _discover(self) -> None:
        try:
            entries = sorted(os.listdir(self.root))
        except FileNotFoundError:
            self.reason = f"{self.root} absent (" + (
                "virtual machine: the hypervisor does not expose RAPL)" if _is_vm() else "no intel_rapl driver)"
            )
            return
        except OSError as exc:
            self.reason = f"cannot list {self.root} ({exc.strerror})"
            return
        zones = []
        for entry in entries:
            if not _TOP_ZONE.match(entry):
                continue  # sub-zones (core, uncore, dram) are inside the package figure
            zone = self.root / entry
            try:
                name = (zone / "name").read_text(encoding="ascii").strip()
            except OSError:
                name = entry
            if not name.startswith("package"):
                continue  # psys (whole platform) would double count
            try:
                max_range = self._read(zone / "max_energy_range_uj")
            except (OSError, ValueError):
                max_range = None
            zones.append((name, zone / "energy_uj", max_range))
        if not zones:
            self.reason = f"no RAPL package zone (intel-rapl:N with name package-N) under {self.root}"
            return
        for name, path, _ in zones:
            try:
                self._read(path)
            except PermissionError:
                try:
                    mode = oct(os.stat(path).st_mode & 0o777)
                except OSError:
                    mode = "?"
                self.reason = f"{path} readable only by root (mode {mode}, Linux >= 5.10)"
                return
            except (OSError, ValueError) as exc:
                self.reason = f"cannot read {path} ({getattr(exc, 'strerror', None) or exc})"
                return
        self.zones = zones

    def read_uj(self) -> list[int] | None:
        """One reading per package zone (µJ), or None if a read fails."""
        if not self.available:
            return None
        try:
            return [self._read(path) for _, path, _ in self.zones]
        except (OSError, ValueError) as exc:
            self.reason = f"RAPL read failed ({getattr(exc, 'strerror', None) or exc})"
            return None


class CpuEnergyMeter:
    """Cumulative CPU package energy since the first reading, wrap-corrected.

    Args:
        rapl: The counters to read (default: a :class:`Rapl` on ``/sys/class/powercap``).
    """

    def __init__(self, rapl: Rapl | None = None):
        self.rapl = rapl if rapl is not None else Rapl()
        self._last: list[int] | None = None
        self._total_uj = 0

    @property
    def reason(self) -> str:
        return self.rapl.reason

    def read(self) -> float | str:
        """Joules since the first call (0.0 on the first), or ``"unavailable: <reason>"``."""
        now = self.rapl.read_uj()
        if now is None:
            return unavailable(self.rapl.reason)
        if self._last is not None:
            for (_, _, max_range), prev, cur in zip(self.rapl.zones, self._last, now):
                self._total_uj += counter_delta(prev, cur, max_range)
        self._last = now
        return round(self._total_uj / 1e6, 6)


def sources(rapl_root: str | os.PathLike = POWERCAP_ROOT) -> dict:
    """What energy this machine lets this user read (for the machine fingerprint).

    Returns:
        ``{"cpu": {"readable": bool, "method": "rapl", "zones": [...]} or {"readable": False,
        "reason": ...}, "gpu": {...}}``.
    """
    from bench.nvml import nvml

    rapl = Rapl(rapl_root)
    cpu = (
        {"readable": True, "method": "rapl", "zones": [z[0] for z in rapl.zones]}
        if rapl.available
        else {"readable": False, "reason": rapl.reason}
    )
    nv = nvml()
    if nv.available:
        counters = [g.get("energy_counter") for g in nv.describe()]
        gpu = {
            "readable": True,
            "method": "nvml-energy-counter" if counters and all(counters) else "nvml-power-integration",
        }
    else:
        gpu = {"readable": False, "reason": nv.reason}
    return {"cpu": cpu, "gpu": gpu}


# ---------------------------------------------------------------- summaries from samples


def _per(joules: float, trials: int, work: float, seconds: float, **extra) -> dict:
    return {
        "status": "measured",
        "joules": joules,
        "per_trial_j": joules / trials if trials else None,
        "per_1k_samples_j": joules / work * 1000.0 if work else None,
        "mean_power_w": joules / seconds if seconds > 0 else None,
        "window_s": seconds,
        **extra,
    }


def cpu_energy(samples: Sequence[Mapping], trials: int, work: float) -> dict:
    """CPU package energy over a timeline from the samples' cumulative ``cpu_energy_j``.

    Args:
        samples: Sampler timeline (the run's window).
        trials: Finished trials (joules per trial = run joules / trials).
        work: Work done in the run (samples processed), for joules per 1,000 samples.
    """
    pts = [(s.get("t"), s.get("cpu_energy_j")) for s in samples if "cpu_energy_j" in s]
    if not pts:
        return {"status": UNAVAILABLE, "reason": "the samples carry no CPU energy readings"}
    bad = [v for _, v in pts if not isinstance(v, (int, float))]
    if bad:
        return {"status": UNAVAILABLE, "reason": unavailable_reason(bad[-1]) or str(bad[-1])}
    if len(pts) < 2:
        return {"status": UNAVAILABLE, "reason": "fewer than 2 energy readings in the run's window"}
    (t0, e0), (t1, e1) = pts[0], pts[-1]
    return _per(
        float(e1 - e0), trials, work, float(t1 - t0),
        method="rapl-counter", scope="CPU package(s), machine-wide: every process on the CPU, not only the benchmark",
    )


def gpu_energy(samples: Sequence[Mapping], trials: int, work: float) -> dict:
    """GPU energy over a timeline from the NVML readings in the samples.

    Uses each GPU's total-energy counter (``energy_mj``) when every reading has it; otherwise
    the trapezoidal integral of its sampled ``power_w`` (recorded as the method).

    Args:
        samples: Sampler timeline (the run's window).
        trials: Finished trials.
        work: Work done in the run (samples processed).
    """
    series: dict[int, list[tuple[float, dict]]] = {}
    for s in samples:
        gpus = s.get("gpus")
        if isinstance(gpus, list):
            for g in gpus:
                series.setdefault(int(g.get("index", 0)), []).append((float(s.get("t", 0.0)), g))
    if not series:
        kind = next((s.get("gpus") for s in samples if "gpus" in s), None)
        if kind is None:
            why = "GPU sampling was off"
        elif isinstance(kind, list):
            why = "this strategy uses no GPU"
        else:
            why = "NVML unavailable or no GPU"
        return {"status": UNAVAILABLE, "reason": f"no GPU readings in the samples ({why})"}
    total, methods, per_gpu, missing = 0.0, set(), {}, []
    window = 0.0
    for index, pts in sorted(series.items()):
        if len(pts) < 2:
            missing.append(f"GPU {index}: fewer than 2 readings")
            continue
        window = max(window, pts[-1][0] - pts[0][0])
        counters = [g.get("energy_mj") for _, g in pts]
        if all(isinstance(c, (int, float)) for c in counters):
            j = sum(counter_delta(int(a), int(b), None) for a, b in zip(counters, counters[1:])) / 1000.0
            methods.add("nvml-energy-counter")
        else:
            power = [(t, g.get("power_w")) for t, g in pts]
            if not all(isinstance(p, (int, float)) for _, p in power):
                missing.append(f"GPU {index}: neither the energy counter nor board power could be read")
                continue
            j = sum((t1 - t0) * (p0 + p1) / 2.0 for (t0, p0), (t1, p1) in zip(power, power[1:]))
            methods.add("nvml-power-integration")
        per_gpu[str(index)] = j
        total += j
    if missing:
        return {"status": UNAVAILABLE, "reason": "; ".join(missing)}
    return _per(
        total, trials, work, window,
        method="+".join(sorted(methods)), per_gpu_j=per_gpu,
        scope="whole board(s) of the sampled GPU(s), every process on them",
    )


def energy_summary(samples: Sequence[Mapping], trials: int, work: float) -> dict:
    """``{"cpu": ..., "gpu": ...}`` energy of a run: joules, per trial, per 1,000 samples, mean W.

    Args:
        samples: Sampler timeline (the run's window).
        trials: Finished trials.
        work: Work done (the workload's samples processed).
    """
    return {"cpu": cpu_energy(samples, trials, work), "gpu": gpu_energy(samples, trials, work)}
