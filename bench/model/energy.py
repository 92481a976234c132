"""Energy figures of a run, from the sampler's timeline: joules, per trial, per 1,000 samples, mean W.

Only measured energy is reported; where energy could not be read the value is
``"unavailable: <reason>"`` — never an estimate. The meters that read RAPL and NVML live in
:mod:`bench.measure.energy`; this module derives figures from what they recorded.
"""

from __future__ import annotations

from typing import Mapping, Sequence

UNAVAILABLE = "unavailable"


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
