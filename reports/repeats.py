"""Repeats, validity and per-trial noise as the report and the console show them.

Everything here reads what the sweep recorded (bench.model.ratios ``finalize_runs``): each run's
``summary.repeats`` (medians and 95 % bootstrap intervals over the repeats of its strategy, with
the method), ``summary.validity`` (``valid`` and the reasons) and ``summary.noise`` (the CV of
each trial across the repeats). Nothing is recomputed.

:func:`collapse` is how a report sees the repeats of one strategy: one row, whose wall time,
throughput, speedup and efficiency are the recorded medians (``summary.repeats``), the first
finished repeat's trials and timeline, and every repeat's validity reasons. A file without
repeats (schema 1, or ``--repeat 1``) is unchanged.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

from bench.model.ratios import REPEAT_FIGURES
from bench.model.stats import NOISY_CV, format_interval
from reports import fmt

FIGURES = REPEAT_FIGURES  # the figures bench.model.ratios.repeat_summary records over the repeats


def interval_text(stats: Mapping[str, Any] | None, kind: str) -> str:
    """One recorded interval as text: ``1.66x [1.58-1.74]``, ``12.3 s [11.9-13.0]``,
    ``1.66x (single measurement)`` or ``-``.

    Args:
        stats: A figure of ``summary.repeats`` (:func:`bench.model.stats.interval`).
        kind: ``wall_s``, ``throughput``, ``speedup``, ``efficiency`` or ``weak_efficiency``.
    """
    if not isinstance(stats, Mapping) or not stats.get("n"):
        return fmt.DASH
    if kind in ("speedup",):
        return format_interval(stats, "{:.2f}", "x")
    if kind in ("efficiency", "weak_efficiency"):
        scaled = {k: (v * 100 if isinstance(v, (int, float)) and k in ("median", "low", "high") else v)
                  for k, v in stats.items()}
        return format_interval(scaled, "{:.0f}", " %")
    if kind == "wall_s":
        return format_interval(stats, "{:.2f}", " s")
    return format_interval(stats, "{:,.0f}")


def collapse(runs: Sequence[Any], key: Callable[[Any], tuple], replace: Callable[..., Any],
             repeat_of: Callable[[Any], int]) -> list:
    """One entry per strategy: the repeats of a strategy folded into its first finished repeat.

    Args:
        runs: Runs in file order (RunRecords or report runs).
        key: What the repeats of one strategy share (e.g. ``RunRecord.group``).
        replace: ``replace(run, summary=..., repeats=n, invalid=(...))`` builds the folded run.
        repeat_of: A run's repeat index.

    Returns:
        Runs in order: a run without repeats as it is; for a repeated strategy its first finished
        repeat, its summary's wall time, throughput, speedup, efficiency (and weak efficiency)
        replaced by the recorded medians and ``invalid`` holding every repeat's reasons.
    """
    groups: dict[tuple, list] = {}
    for r in runs:
        groups.setdefault(key(r), []).append(r)
    out, seen = [], set()
    for r in runs:
        k = key(r)
        if k in seen:
            continue
        seen.add(k)
        members = groups[k]
        invalid = tuple(invalid_lines(members, lambda m: f"repeat {repeat_of(m) + 1}" if len(members) > 1 else ""))
        if len(members) == 1:
            out.append(replace(r, repeats=1, invalid=invalid))
            continue
        first = next((m for m in members if m.status == "complete"), members[0])
        rep = first.summary.repeats if isinstance(first.summary.repeats, Mapping) else {}
        medians = {f: rep[f]["median"] for f in FIGURES
                   if isinstance(rep.get(f), Mapping) and isinstance(rep[f].get("median"), (int, float))}
        summary = first.summary.replace(**medians) if medians else first.summary
        out.append(replace(first, summary=summary, repeats=len(members), invalid=invalid))
    return out


def validity_of(run: Any) -> Mapping[str, Any] | None:
    """A run's recorded validity (None: not recorded, e.g. a file from before validity)."""
    v = run.summary.validity
    return v if isinstance(v, Mapping) and isinstance(v.get("valid"), bool) else None


def invalid_lines(runs: Iterable[Any], where: Callable[[Any], str] = lambda r: "") -> list[str]:
    """The reasons of every invalid run: ``repeat 2: busy machine: another process used 0.9 cores ...``.

    Args:
        runs: Runs.
        where: How to name a run in its lines (empty: the reason alone).
    """
    out = []
    for r in runs:
        v = validity_of(r)
        if v is None or v["valid"]:
            continue
        prefix = where(r)
        for reason in v.get("reasons") or ["invalid"]:
            out.append(f"{prefix}: {reason}" if prefix else str(reason))
    return out


def noise_warning(summary: Any, strategy: str) -> str | None:
    """``noise: trials x, y varied more than 10 % across 5 repeats of cpu×1p (worst x: CV 14 %)``,
    from the recorded per-trial noise, or None when no trial is noisy (or noise was not measured).

    Args:
        summary: A run summary (its ``noise``).
        strategy: The strategy's name.
    """
    noise = summary.noise
    if not isinstance(noise, Mapping) or not noise.get("measured"):
        return None
    noisy = [n for n in noise.get("noisy") or [] if isinstance(n, Mapping)]
    if not noisy:
        return None
    names = ", ".join(str(n.get("id")) for n in noisy[:8]) + (f" and {len(noisy) - 8} more" if len(noisy) > 8 else "")
    threshold = noise.get("threshold") if fmt.ok(noise.get("threshold")) else NOISY_CV
    worst = noisy[0]
    return (f"noisy trials on {strategy} (CV across repeats over {fmt.pct(threshold)}): {names}; "
            f"worst {worst.get('id')} CV {fmt.pct(worst.get('cv'))}")


def row(summary: Any) -> dict[str, str]:
    """The interval texts of one strategy's recorded repeats (``single measurement`` with one).

    Args:
        summary: A run summary (its ``repeats``).
    """
    rep = summary.repeats if isinstance(summary.repeats, Mapping) else {}
    return {f: interval_text(rep.get(f), f) for f in FIGURES}


def method_text(runs: Iterable[Any]) -> str | None:
    """How the intervals were computed, as recorded (the first run with repeats says).

    Args:
        runs: Runs.
    """
    for r in runs:
        rep = r.summary.repeats
        if isinstance(rep, Mapping) and isinstance(rep.get("method"), Mapping):
            m = rep["method"]
            return (f"{m.get('interval', 'bootstrap')}, {fmt.pct(m.get('confidence'))} interval, "
                    f"{m.get('resamples')} resamples, seed {m.get('seed')}")
    return None


__all__ = ["FIGURES", "collapse", "interval_text", "invalid_lines", "method_text", "noise_warning", "row", "validity_of"]
