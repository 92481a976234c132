"""``bench compare``'s verdicts: is B faster than A, slower, or not significantly different?

Per workload × strategy measured on machine A (the first input) and another machine B, the raw
figures are the per-repeat wall times each result recorded (``summary.repeats.wall_s.values``;
a run without repeats is one measurement, its ``wall_s``; several files of one machine add up).
The verdict is :func:`bench.model.stats.verdict`: the medians' ratio *and* a two-sided
Mann-Whitney U test on the raw repeats (significant when p < 0.05 and the medians differ by more
than 2 %); with one measurement each it is "not testable (1 measurement each)". When either side
holds an INVALID run (its recorded ``validity``) no difference is called significant, and the
verdict says why. :func:`slower_than` is ``--fail-if-slower PCT``.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from bench.errors import UsageError
from bench.model import stats
from reports.load import Inputs, Run

KEYS = ("workload", "size", "backend", "device", "engine", "processes", "scaling")


def parse_percent(text: Any, what: str = "--fail-if-slower") -> float:
    """A percentage >= 0 (``5`` or ``5%``).

    Raises:
        UsageError: one line naming the bad value.
    """
    raw = str(text).strip().rstrip("%").strip()
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or value > 1e6:
        raise UsageError(f"bad {what} {str(text)[:40]!r} (expected a percentage >= 0, e.g. 5 for 5 % slower)")
    return value


def wall_values(run: Run) -> list[float]:
    """The raw wall times one run stands for: every repeat's, as recorded, or its one wall time.

    Args:
        run: A report run (repeats folded, :func:`reports.repeats.collapse`).
    """
    rep = run.summary.repeats if isinstance(run.summary.repeats, Mapping) else {}
    wall = rep.get("wall_s") if isinstance(rep.get("wall_s"), Mapping) else {}
    values = wall.get("values")
    if isinstance(values, list) and values:
        return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    w = run.summary.wall_s
    return [float(w)] if isinstance(w, (int, float)) and not isinstance(w, bool) and w > 0 else []


def _key(r: Run) -> tuple:
    return (r.workload, r.size, r.backend, r.device, r.engine, r.processes, r.scaling)


def verdict_rows(inputs: Inputs, labels: Sequence[str]) -> list[dict]:
    """One verdict per workload × strategy measured on ``labels[0]`` (A) and another machine (B).

    Args:
        inputs: Loaded inputs.
        labels: Machine labels, A first.

    Returns:
        Dicts: ``key``, ``strategy``, ``a``/``b`` (labels), ``a_values``/``b_values``,
        ``a_interval``/``b_interval`` (:func:`bench.model.stats.interval`), ``invalid`` (why no
        verdict is called significant, or None) and the :func:`bench.model.stats.verdict` fields.
    """
    groups: dict[tuple, dict[str, list[Run]]] = {}
    for r in inputs.runs:
        if r.status == "complete" and wall_values(r):
            groups.setdefault(_key(r), {}).setdefault(r.label, []).append(r)
    ref = labels[0] if labels else None
    rows = []
    for key, by in groups.items():
        if ref not in by:
            continue
        for other in labels[1:]:
            if other not in by:
                continue
            a_runs, b_runs = by[ref], by[other]
            a = [v for r in a_runs for v in wall_values(r)]
            b = [v for r in b_runs for v in wall_values(r)]
            v = stats.verdict(a, b)
            why = []
            for side, runs in (("A", a_runs), ("B", b_runs)):
                reasons = [line for r in runs for line in r.invalid]
                if reasons:
                    why.append(f"{side} is INVALID ({reasons[0]})")
            if why:  # never a significant difference from an untrustworthy measurement
                v = {**v, "verdict": "not judged: " + "; ".join(why)}
            rows.append({
                "key": key, "strategy": a_runs[0].strategy, "a": ref, "b": other, "a_values": a, "b_values": b,
                "a_interval": stats.interval(a), "b_interval": stats.interval(b), "invalid": "; ".join(why) or None,
                **v,
            })
    return rows


def significantly_slower(row: Mapping[str, Any]) -> bool:
    """True when the row's verdict is "slower" (significant, both sides valid)."""
    return row.get("verdict") == stats.SLOWER and not row.get("invalid")


def slower_than(rows: Sequence[Mapping[str, Any]], percent: float) -> list[Mapping[str, Any]]:
    """The rows where B is significantly slower than A by more than ``percent`` % (median wall of B
    over median wall of A, minus 1): what ``--fail-if-slower PCT`` fails on.

    Args:
        rows: :func:`verdict_rows`.
        percent: The tolerated slowdown in %.
    """
    out = []
    for row in rows:
        ratio = row.get("ratio")  # median(A) / median(B): below 1, B is slower
        if significantly_slower(row) and isinstance(ratio, (int, float)) and ratio > 0:
            if (1.0 / ratio - 1.0) * 100.0 > percent:
                out.append(row)
    return out


def test_text() -> str:
    """Which test and threshold the verdicts use (printed under the table, written in the docs)."""
    return (f"verdicts: {stats.TEST['test']} on the per-repeat wall times; a difference is significant when "
            f"p < {stats.ALPHA:g} and the medians differ by more than {stats.MIN_CHANGE:.0%}; "
            "an INVALID run is never judged")


__all__ = ["KEYS", "parse_percent", "significantly_slower", "slower_than", "test_text", "verdict_rows", "wall_values"]
