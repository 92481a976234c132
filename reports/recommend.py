"""A recommendation per workload and machine: what to run, how many processes fit, and why.

The fastest strategy is the one with the most finished trials per hour. The process count that
fits is the largest N with N × (measured per-worker peak RSS) <= RAM × (1 - HEADROOM). The reason
is one sentence built from the numbers that decided it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import pandas as pd

from bench.model import ratios
from reports.fmt import nbytes, ok, pct, times
from reports.load import Inputs
from reports.tables import calibration, measured
from reports.why import LOW_GPU_UTIL  # p50 % below which a GPU is reported as starved (one threshold)

HEADROOM = 0.20  # fraction of RAM kept free for the OS, the parent process and page cache


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """What to run for one workload on one machine.

    Args:
        label: Machine label.
        workload: Workload name.
        size: Workload size.
        fastest: The fastest strategy measured (``cpu×2p×1t``).
        trials_per_hour: Its finished trials per hour.
        processes: Recommended worker processes (the fastest count, lowered to what fits in RAM).
        memory_max_processes: Largest process count that fits in RAM with headroom (None: not measured).
        reason: One sentence.
    """

    label: str
    workload: str
    size: str
    fastest: str
    trials_per_hour: float
    processes: int
    memory_max_processes: int | None
    reason: str


def memory_max_processes(peak_worker_bytes: Any, ram_bytes: Any, headroom: float = HEADROOM) -> int | None:
    """Largest N with N × peak <= RAM × (1 - headroom); None when either figure is unknown.

    Args:
        peak_worker_bytes: Measured peak RSS of one worker.
        ram_bytes: The machine's RAM.
        headroom: Fraction of RAM kept free.
    """
    if not ok(peak_worker_bytes) or not ok(ram_bytes) or float(peak_worker_bytes) <= 0 or float(ram_bytes) <= 0:
        return None
    return int(math.floor(float(ram_bytes) * (1.0 - headroom) / float(peak_worker_bytes)))


def _sentence(parts: list[str]) -> str:
    text = "; ".join(p for p in parts if p)
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


def _recommend_one(label: str, workload: str, size: str, g: pd.DataFrame, machine: Mapping[str, Any]) -> Recommendation:
    agg = (
        g.groupby(["backend", "device", "engine", "processes"], sort=False)
        .agg(strategy=("strategy", "first"), tph=("trials_per_hour", "median"), wall=("wall_s", "median"),
             ratio=("cpu_wall_ratio", "median"), gpu50=("gpu_util_p50", "median"))
        .reset_index()
        .sort_values(["tph", "processes"], ascending=[False, True], kind="stable")
    )
    best = agg.iloc[0]
    cores = machine.get("usable_cores") or machine.get("logical_cores")
    peak = g["peak_worker_rss"].max()
    ram = machine.get("ram_bytes")
    max_fit = memory_max_processes(peak, ram)
    parts: list[str] = []
    local = agg[(agg["engine"] == "local") & (agg["device"] == best["device"]) & (agg["backend"] == best["backend"])]
    base = local[local["processes"] == 1]
    base_wall = float(base["wall"].iloc[0]) if len(base) else math.nan
    if len(agg) == 1:
        parts.append(f"only {best['strategy']} was measured, so there is nothing to compare it with "
                     "(run with --processes 1,2 or --device all)")
    elif int(best["processes"]) > 1 and ok(base_wall):
        sp = ratios.speedup(base_wall, float(best["wall"]))
        ceiling = calibration(machine)[0].get(int(best["processes"]))
        against = f"; this machine's ceiling {pct(ceiling)}" if ceiling else ""
        parts.append(f"the fastest was {best['strategy']}, {times(sp)} the 1-process run "
                     f"(efficiency {pct(ratios.efficiency(sp, int(best['processes'])))}{against})")
    elif int(best["processes"]) == 1 and len(local) > 1:
        other = local[local["processes"] > 1].sort_values("tph", ascending=False).iloc[0]
        sp = ratios.speedup(base_wall, float(other["wall"])) if ok(base_wall) else None
        text = f"1 process was fastest: {int(other['processes'])} processes reached only {times(sp)}"
        if ok(best["ratio"]) and ok(cores) and float(best["ratio"]) >= 0.75 * float(cores):
            text += (f" because one process already kept {float(best['ratio']):.1f} of {int(cores)} "
                     "usable cores busy")
        parts.append(text)
    else:
        parts.append(f"the fastest was {best['strategy']} at {float(best['tph']):.0f} trials/hour")
    gpu = agg[(agg["device"] != "cpu") & agg["gpu50"].notna()]
    if len(gpu):
        worst = gpu.sort_values("gpu50").iloc[0]
        if best["device"] == "cpu" and float(worst["gpu50"]) < LOW_GPU_UTIL:
            parts.append(f"GPU utilisation p50 was {float(worst['gpu50']):.0f} %: batch too small to feed the GPU")
        elif best["device"] != "cpu":
            cpu = agg[(agg["device"] == "cpu") & (agg["backend"] == best["backend"])]
            if len(cpu):
                parts.append(f"the GPU ran {float(best['tph']) / float(cpu['tph'].max()):.1f}× the best CPU strategy "
                             f"at {float(best['gpu50']):.0f} % utilisation (p50)")
    recommended = int(best["processes"])
    if max_fit is None:
        parts.append("no per-worker peak memory was measured, so the memory limit is unknown")
    elif max_fit < 1:
        parts.append(f"one worker's measured peak ({nbytes(peak)}) does not fit in {nbytes(ram)} RAM "
                     f"with {pct(HEADROOM)} headroom")
        recommended = 1
    elif recommended > max_fit:
        parts.append(f"but its measured peak of {nbytes(peak)} per worker fits only {max_fit} workers in "
                     f"{nbytes(ram)} RAM with {pct(HEADROOM)} headroom, so use {max_fit}")
        recommended = max_fit
    else:
        parts.append(f"the measured peak of {nbytes(peak)} per worker allows up to {max_fit} processes in "
                     f"{nbytes(ram)} RAM with {pct(HEADROOM)} headroom")
    return Recommendation(
        label=label, workload=workload, size=size, fastest=str(best["strategy"]),
        trials_per_hour=float(best["tph"]), processes=recommended, memory_max_processes=max_fit,
        reason=_sentence(parts),
    )


def recommend(df: pd.DataFrame, inputs: Inputs) -> list[Recommendation]:
    """One recommendation per (machine, workload, size) with at least one measured run.

    Args:
        df: The runs table (:func:`reports.tables.runs_frame`).
        inputs: The loaded inputs (machine RAM and cores come from their fingerprints).
    """
    m = measured(df)
    m = m[m["trials_per_hour"].notna()]
    out = []
    for (label, workload, size), g in m.groupby(["label", "workload", "size"], sort=False):
        out.append(_recommend_one(label, workload, size, g, inputs.machine(label)))
    return out
