"""Energy meters: CPU package energy from RAPL, and where GPU energy comes from (NVML).

Only measured energy is reported. CPU package energy comes from the RAPL counters Linux
exposes under ``/sys/class/powercap/intel-rapl*`` (AMD Zen uses the same interface); since
Linux 5.10 (the PLATYPUS fix) ``energy_uj`` is usually readable only by root, and virtual
machines and containers often do not expose it at all. GPU energy comes from NVML: the
driver's total-energy counter where the GPU has one (Volta and newer), otherwise the
integral of the sampled board power (the method is recorded). Where energy cannot be read
the value is ``"unavailable: <reason>"`` — never an estimate.

RAPL counts the whole package (every process on the CPU, not only the benchmark), so energy
figures are machine-wide over the run's window; ``scope`` in the summary says so. The figures
derived from the meters' readings are :mod:`bench.model.energy`'s.

Nothing here imports TensorFlow or NVML; reading is lazy.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from bench.model.energy import counter_delta, unavailable

POWERCAP_ROOT = Path("/sys/class/powercap")
_TOP_ZONE = re.compile(r"^intel-rapl:(\d+)$")


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
    from bench.measure.nvml import nvml

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


