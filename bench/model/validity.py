"""Is a run's measurement valid? Rules over the sampler's timeline, each giving its reason.

A run is ``valid: false`` when any rule finds a cause that makes its timings untrustworthy:

- *busy machine* (:func:`busy_machine`): CPU used by processes outside the benchmark's process
  tree during the run, i.e. the machine's busy cores (``cpu_percent`` summed / 100, per sample
  interval) minus the tree's (its ``tree_cpu_s`` growth / seconds), averaged over the run, above
  :data:`BUSY_OTHER_CORES`: "another process used 0.9 cores on average";
- *too short* (:func:`too_short`): steady-state (compute-phase) seconds under
  :data:`MIN_STEADY_S`, where timer resolution and start-up noise matter;
- *throttled* (:func:`throttled`): the CPU frequency (``cpu_mhz``, psutil.cpu_freq) dropping by more
  than :data:`THROTTLE_DROP` below its highest reading during the run; where the machine does not
  report a frequency the check is not made and the verdict says "frequency not readable";
- *memory pressure* (:func:`memory_pressure`): swap use growing during the run (by more than
  :data:`SWAP_GROWTH_BYTES`), or available RAM under :data:`MIN_AVAILABLE_FRACTION` of the total
  in any sample.

:func:`validity` applies every rule and gives the record a run summary holds as ``validity``:
``{"valid": bool, "reasons": [...], "notes": [...], "other_cores": float|None, "rules": {...}}``.
Pure: samples in (the dicts :class:`bench.measure.sampler.Sampler` appends), a verdict out.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

BUSY_OTHER_CORES = 0.5  # cores other processes may use on average before a run is invalid
MIN_STEADY_S = 1.0  # a run's compute phase shorter than this is too short to time
THROTTLE_DROP = 0.10  # frequency this far below the run's highest reading: throttled
MIN_AVAILABLE_FRACTION = 0.10  # available RAM below this share of the total: memory pressure
SWAP_GROWTH_BYTES = 16 << 20  # swap use growing by more than this during the run: memory pressure

RULES = {
    "busy_machine": f"other processes used more than {BUSY_OTHER_CORES:g} cores on average",
    "too_short": f"steady-state time under {MIN_STEADY_S:g} s",
    "throttled": f"CPU frequency dropped more than {THROTTLE_DROP:.0%} during the run",
    "memory_pressure": f"swap use grew by more than {SWAP_GROWTH_BYTES >> 20} MiB, "
                       f"or available RAM under {MIN_AVAILABLE_FRACTION:.0%}",
}


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value == value and abs(value) != float("inf") else None


def other_cores(samples: Sequence[Mapping]) -> float | None:
    """Cores used on average by processes outside the benchmark's tree during the timeline.

    Per pair of consecutive samples: the machine's busy cores over that interval (the later
    sample's ``cpu_percent``, which psutil measures since the previous read, summed / 100) minus
    the tree's cores (``tree_cpu_s`` growth / seconds between the samples); the average weights
    each interval by its length. None with fewer than two usable samples.

    Args:
        samples: The sampler timeline (``t``, ``cpu_percent``, ``tree_cpu_s``).
    """
    total = weight = 0.0
    prev = None
    for s in samples:
        t, tree = _num(s.get("t")), _num(s.get("tree_cpu_s"))
        per_core = s.get("cpu_percent")
        if t is None or tree is None or not isinstance(per_core, list):
            continue
        busy = sum(v for v in (_num(x) for x in per_core) if v is not None) / 100.0
        if prev is not None:
            dt = t - prev[0]
            if dt > 0:
                mine = max(0.0, tree - prev[1]) / dt
                total += max(0.0, busy - mine) * dt
                weight += dt
        prev = (t, tree)
    return total / weight if weight > 0 else None


def busy_machine(samples: Sequence[Mapping], limit: float = BUSY_OTHER_CORES) -> tuple[str | None, float | None]:
    """The *busy machine* rule: (reason or None, the cores other processes used).

    Args:
        samples: The run's timeline.
        limit: Cores other processes may use on average.
    """
    other = other_cores(samples)
    if other is None or other <= limit:
        return None, other
    return f"busy machine: another process used {other:.1f} cores on average (limit {limit:g})", other


def too_short(wall_s: float | None, minimum: float = MIN_STEADY_S) -> str | None:
    """The *too short* rule: the reason, or None.

    Args:
        wall_s: The run's steady-state (compute-phase) seconds.
        minimum: The shortest steady state that times reliably.
    """
    wall = _num(wall_s)
    if wall is None or wall >= minimum:
        return None
    return f"too short: steady-state time {wall:.2f} s is under the {minimum:g} s minimum"


def throttled(samples: Sequence[Mapping], drop: float = THROTTLE_DROP) -> tuple[str | None, str | None]:
    """The *throttled* rule: (reason or None, note or None).

    Args:
        samples: The run's timeline (``cpu_mhz``: the current CPU frequency, or None).
        drop: The largest fractional drop below the run's highest frequency allowed.

    Returns:
        The reason when the frequency fell more than ``drop`` below its peak; the note
        "frequency not readable" when no sample holds a frequency.
    """
    mhz = [v for v in (_num(s.get("cpu_mhz")) for s in samples) if v is not None and v > 0]
    if not mhz:
        return None, "frequency not readable"
    top, low = max(mhz), min(mhz)
    if low < (1.0 - drop) * top:
        return f"throttled: CPU frequency fell from {top:.0f} to {low:.0f} MHz ({1 - low / top:.0%} drop)", None
    return None, None


def memory_pressure(samples: Sequence[Mapping], min_available: float = MIN_AVAILABLE_FRACTION,
                    swap_growth: int = SWAP_GROWTH_BYTES) -> str | None:
    """The *memory pressure* rule: the reason, or None.

    Args:
        samples: The run's timeline (``sys_mem_used_bytes``, ``sys_mem_total_bytes``, ``swap_used_bytes``).
        min_available: Smallest share of RAM that must stay available.
        swap_growth: Bytes of swap use growth during the run tolerated.
    """
    lowest = None
    for s in samples:
        used, total = _num(s.get("sys_mem_used_bytes")), _num(s.get("sys_mem_total_bytes"))
        if used is not None and total:
            share = (total - used) / total
            lowest = share if lowest is None else min(lowest, share)
    if lowest is not None and lowest < min_available:
        return f"memory pressure: available RAM fell to {lowest:.0%} of the total"
    swap = [v for v in (_num(s.get("swap_used_bytes")) for s in samples) if v is not None]
    if len(swap) >= 2 and max(swap) - swap[0] > swap_growth:
        return f"memory pressure: swap use grew by {(max(swap) - swap[0]) / 2**20:.0f} MiB during the run"
    return None


def validity(samples: Sequence[Mapping], wall_s: float | None) -> dict:
    """Every rule over one run's timeline: the ``validity`` record of its summary.

    Args:
        samples: The run's sampler timeline (its compute phase).
        wall_s: Its steady-state (compute-phase) seconds.

    Returns:
        ``{"valid", "reasons", "notes", "other_cores", "rules"}``: ``reasons`` one line per rule
        that failed, ``notes`` the checks that could not be made, ``rules`` each rule's threshold.
    """
    reasons, notes = [], []
    busy, other = busy_machine(samples)
    if other is None:
        notes.append("busy machine not checked (too few samples)")
    freq, freq_note = throttled(samples)
    for reason in (busy, too_short(wall_s), freq, memory_pressure(samples)):
        if reason:
            reasons.append(reason)
    if freq_note:
        notes.append(freq_note)
    return {"valid": not reasons, "reasons": reasons, "notes": notes,
            "other_cores": None if other is None else round(other, 3), "rules": dict(RULES)}


__all__ = [
    "BUSY_OTHER_CORES", "MIN_AVAILABLE_FRACTION", "MIN_STEADY_S", "RULES", "SWAP_GROWTH_BYTES", "THROTTLE_DROP",
    "busy_machine", "memory_pressure", "other_cores", "throttled", "too_short", "validity",
]
