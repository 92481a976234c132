"""Statistics over repeats: medians with bootstrap intervals, per-trial noise, significance.

A sweep run with ``--repeat K`` measures every strategy K times (interleaved: 1p, 2p, 1p, 2p...).
The figures of one strategy across its repeats are summarised here, and only here:

- :func:`interval` is the median of the repeats with a 95 % confidence interval from a percentile
  bootstrap of the median (:data:`RESAMPLES` resamples of the repeats, drawn with numpy's
  ``default_rng(SEED)``, so the same figures always give the same interval). With one measurement
  there is no interval: ``{"n": 1, "median": v, "single": True}``. :data:`METHOD` names the method
  in every summary that holds an interval.
- :func:`verdict` judges B against A from the raw repeats of both: the size of the change (median
  against median) *and* a two-sided Mann-Whitney U test (``scipy.stats.mannwhitneyu``); a
  difference is significant when p < :data:`ALPHA` and the medians differ by more than
  :data:`MIN_CHANGE`. With one measurement a side, or too few for the test to ever reach
  p < ALPHA, the verdict says it is not testable and why.

Every function is pure (numbers in, numbers out): bench.model.ratios records what these give,
and reports read the records.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Iterable, Mapping, Sequence

CONFIDENCE = 0.95
RESAMPLES = 10_000
SEED = 0
ALPHA = 0.05  # Mann-Whitney U, two-sided
MIN_CHANGE = 0.02  # medians within 2 % of each other are never called a difference
NOISY_CV = 0.10  # a trial whose wall time varies more than this across repeats is called noisy

#: How every interval in a summary was computed (recorded beside the intervals).
METHOD: dict[str, Any] = {
    "interval": "percentile bootstrap of the median over repeats",
    "confidence": CONFIDENCE,
    "resamples": RESAMPLES,
    "seed": SEED,
    "rng": "numpy.random.default_rng",
}

#: The test :func:`verdict` uses, as recorded and printed.
TEST = {"test": "Mann-Whitney U (two-sided, scipy.stats.mannwhitneyu)", "alpha": ALPHA, "min_change": MIN_CHANGE}

FASTER, SLOWER, SAME = "faster", "slower", "no significant difference"


def _numbers(values: Iterable[Any]) -> list[float]:
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if math.isfinite(v):
            out.append(float(v))
    return out


def bootstrap_medians(values: Sequence[float], resamples: int = RESAMPLES, seed: int = SEED):
    """The medians of ``resamples`` bootstrap resamples of ``values`` (each as many draws, with
    replacement), drawn with ``numpy.random.default_rng(seed)``.

    Args:
        values: The measurements (at least one).
        resamples: How many resamples.
        seed: The generator's seed.

    Returns:
        A numpy array of ``resamples`` medians.
    """
    import numpy as np

    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(data), size=(resamples, len(data)))
    return np.median(data[idx], axis=1)


def interval(values: Iterable[Any], confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
             seed: int = SEED) -> dict:
    """The median of repeated measurements and its bootstrap confidence interval.

    Args:
        values: One figure per repeat (values that are not finite numbers are left out).
        confidence: The interval's confidence (0.95: the 2.5th and 97.5th percentiles of the
            bootstrap medians).
        resamples: Bootstrap resamples.
        seed: Seed of the resampling generator.

    Returns:
        ``{"n", "median", "low", "high", "values"}``; with one value ``{"n": 1, "median",
        "values", "single": True}`` (no interval is invented); with none ``{"n": 0}``.
    """
    vals = _numbers(values)
    if not vals:
        return {"n": 0}
    if len(vals) == 1:
        return {"n": 1, "median": vals[0], "values": vals, "single": True}
    import numpy as np

    medians = bootstrap_medians(vals, resamples, seed)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(medians, [tail, 100.0 - tail])
    return {"n": len(vals), "median": statistics.median(vals), "low": float(low), "high": float(high),
            "values": vals}


def cv(values: Iterable[Any]) -> float | None:
    """Coefficient of variation (sample stdev / mean) of at least two values, else None.

    Args:
        values: Measurements.
    """
    vals = _numbers(values)
    if len(vals) < 2:
        return None
    mean = statistics.fmean(vals)
    return statistics.stdev(vals) / mean if mean else None


def min_p_value(m: int, n: int) -> float:
    """The smallest two-sided p-value an exact Mann-Whitney U test can give with ``m`` and ``n``
    measurements (all of one side below all of the other): ``2 / C(m+n, m)``.

    Args:
        m: Measurements of one side.
        n: Measurements of the other.
    """
    if m < 1 or n < 1:
        return 1.0
    return min(1.0, 2.0 / math.comb(m + n, m))


def verdict(a: Iterable[Any], b: Iterable[Any], higher_is_better: bool = False,
            alpha: float = ALPHA, min_change: float = MIN_CHANGE) -> dict:
    """Is B faster than A, slower, or not significantly different? From the raw repeats of both.

    The change is ``median(B) / median(A)`` (for times: below 1 is faster); B is faster or slower
    only when the two-sided Mann-Whitney U test gives p < ``alpha`` *and* the medians differ by
    more than ``min_change`` (a fraction). With one measurement on a side, or so few that the
    test cannot reach p < ``alpha`` whatever they are, the verdict is "not testable (...)".

    Args:
        a: A's figures, one per repeat (the reference).
        b: B's figures.
        higher_is_better: True for throughput-like figures, False for times.
        alpha: Significance threshold of the test.
        min_change: Smallest relative change of the medians called a difference.

    Returns:
        ``{"verdict", "ratio", "p_value", "n_a", "n_b", "testable", **TEST}``; ``ratio`` is
        how many times faster B is than A (``median(A)/median(B)`` for times).
    """
    xs, ys = _numbers(a), _numbers(b)
    out: dict[str, Any] = {"n_a": len(xs), "n_b": len(ys), **TEST, "alpha": alpha, "min_change": min_change}
    if not xs or not ys:
        return {**out, "verdict": "not testable (no measurement)", "ratio": None, "p_value": None, "testable": False}
    ma, mb = statistics.median(xs), statistics.median(ys)
    ratio = (mb / ma if higher_is_better else ma / mb) if ma > 0 and mb > 0 else None
    out["ratio"] = ratio
    if len(xs) < 2 or len(ys) < 2:
        return {**out, "verdict": "not testable (1 measurement each)" if len(xs) == len(ys) == 1
                else f"not testable ({len(xs)} and {len(ys)} measurements)", "p_value": None, "testable": False}
    floor = min_p_value(len(xs), len(ys))
    if floor >= alpha:
        return {**out, "p_value": None, "testable": False,
                "verdict": f"not testable ({len(xs)} and {len(ys)} measurements: the test cannot reach "
                           f"p < {alpha:g}; use at least 4 repeats each)"}
    from scipy.stats import mannwhitneyu

    p = float(mannwhitneyu(xs, ys, alternative="two-sided").pvalue)
    out.update(p_value=p, testable=True)
    if ratio is None or p >= alpha or abs(ratio - 1.0) <= min_change:
        return {**out, "verdict": SAME}
    return {**out, "verdict": FASTER if ratio > 1.0 else SLOWER}


def format_interval(stats: Mapping[str, Any] | None, fmt: str = "{:.2f}", suffix: str = "") -> str:
    """``1.66x [1.58-1.74]`` of an :func:`interval` (``1.66x (single measurement)`` for one).

    Args:
        stats: An :func:`interval` result (None or empty: ``-``).
        fmt: Format of each number.
        suffix: Text after each number (``x``, `` s``).
    """
    if not stats or not stats.get("n"):
        return "-"
    med = fmt.format(stats["median"]) + suffix
    if stats.get("single") or stats.get("low") is None:
        return f"{med} (single measurement)"
    return f"{med} [{fmt.format(stats['low'])}-{fmt.format(stats['high'])}]"


__all__ = [
    "ALPHA", "CONFIDENCE", "FASTER", "METHOD", "MIN_CHANGE", "NOISY_CV", "RESAMPLES", "SAME", "SEED", "SLOWER",
    "TEST", "bootstrap_medians", "cv", "format_interval", "interval", "min_p_value", "verdict",
]
