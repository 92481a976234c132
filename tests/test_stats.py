"""bench.model.stats: bootstrap intervals of the median, coefficient of variation, verdicts."""

from __future__ import annotations

import math

import pytest

from bench.model import stats

# 11 measurements, out of order; sorted: 9.5 9.7 9.9 10.0 10.1 10.3 10.4 10.6 10.8 11.2 12.5
ELEVEN = [10.0, 10.4, 9.7, 11.2, 10.1, 9.9, 10.8, 10.3, 12.5, 9.5, 10.6]


def _median_cdf(n: int, j: int) -> float:
    """Hand computation: P(the median of n draws with replacement <= the j-th smallest of n
    distinct values) = P(at least (n+1)/2 of the n draws land among the j smallest)."""
    p, need = j / n, (n + 1) // 2
    return sum(math.comb(n, k) * p ** k * (1 - p) ** (n - k) for k in range(need, n + 1))


def test_bootstrap_interval_matches_the_hand_computed_quantiles():
    cdf = [_median_cdf(11, j) for j in range(1, 12)]
    # the 2.5th percentile of the bootstrap median is the first order statistic whose CDF passes 0.025,
    # the 97.5th the first whose CDF passes 0.975 (both far from the boundary: 0.0072 / 0.0512, 0.9488 / 0.9928)
    lo_rank = next(j for j, c in enumerate(cdf, 1) if c >= 0.025)
    hi_rank = next(j for j, c in enumerate(cdf, 1) if c >= 0.975)
    assert (lo_rank, hi_rank) == (3, 9)
    ordered = sorted(ELEVEN)
    for seed in (0, 1, 12345):
        got = stats.interval(ELEVEN, seed=seed)
        assert got["n"] == 11 and got["median"] == 10.3
        assert got["low"] == ordered[lo_rank - 1] == 9.9
        assert got["high"] == ordered[hi_rank - 1] == 10.8
        assert got["values"] == ELEVEN  # the raw figures, in repeat order


def test_bootstrap_medians_follow_the_hand_computed_distribution():
    medians = stats.bootstrap_medians(ELEVEN, resamples=20_000, seed=7)
    ordered = sorted(ELEVEN)
    for j in (3, 6, 9):
        share = float((medians <= ordered[j - 1]).mean())
        assert share == pytest.approx(_median_cdf(11, j), abs=0.01)


def test_interval_is_seeded_and_names_its_method():
    a = stats.interval([1.0, 1.3, 1.1, 0.9, 1.6], seed=3)
    assert a == stats.interval([1.0, 1.3, 1.1, 0.9, 1.6], seed=3)
    assert stats.METHOD["seed"] == stats.SEED and stats.METHOD["confidence"] == 0.95
    assert "bootstrap" in stats.METHOD["interval"] and stats.METHOD["resamples"] == stats.RESAMPLES
    # five values: P(median = smallest) = 0.058 > 0.025, so the 95 % interval is the whole range
    assert (a["low"], a["high"]) == (0.9, 1.6)


def test_one_measurement_gets_no_interval():
    one = stats.interval([2.5])
    assert one == {"n": 1, "median": 2.5, "values": [2.5], "single": True}
    assert stats.format_interval(one, suffix="x") == "2.50x (single measurement)"
    assert stats.interval([]) == {"n": 0} and stats.interval([None, float("nan")]) == {"n": 0}


def test_format_interval_reads_like_the_issue():
    assert stats.format_interval({"n": 5, "median": 1.66, "low": 1.58, "high": 1.74}, suffix="x") == "1.66x [1.58-1.74]"


def test_cv():
    assert stats.cv([1.0]) is None
    assert stats.cv([9.0, 11.0]) == pytest.approx(math.sqrt(2) / 10)


def test_verdict_clearly_faster_and_clearly_slower():
    a = [10.0, 10.2, 10.1, 10.3, 9.9]
    b = [8.0, 8.1, 8.2, 7.9, 8.05]
    v = stats.verdict(a, b)
    assert v["verdict"] == stats.FASTER and v["testable"]
    assert v["p_value"] == pytest.approx(2 / math.comb(10, 5))  # every B below every A: the exact minimum
    assert v["ratio"] == pytest.approx(10.1 / 8.05)
    back = stats.verdict(b, a)
    assert back["verdict"] == stats.SLOWER and back["ratio"] == pytest.approx(8.05 / 10.1)


def test_verdict_clearly_same():
    a = [10.0, 10.3, 9.8, 10.1, 10.2]
    b = [10.1, 9.9, 10.2, 10.0, 10.3]
    v = stats.verdict(a, b)
    assert v["testable"] and v["p_value"] > 0.05 and v["verdict"] == stats.SAME
    # significant by the test but smaller than the 2 % threshold: still no difference
    tiny = stats.verdict([10.0, 10.01, 10.02, 10.03, 10.04], [10.1, 10.11, 10.12, 10.13, 10.14])
    assert tiny["p_value"] < 0.05 and abs(tiny["ratio"] - 1) < stats.MIN_CHANGE and tiny["verdict"] == stats.SAME


def test_verdict_one_sample_and_too_few():
    one = stats.verdict([10.0], [5.0])
    assert one["verdict"] == "not testable (1 measurement each)" and not one["testable"] and one["p_value"] is None
    assert one["ratio"] == 2.0  # the size is still reported
    few = stats.verdict([10.0, 10.1, 10.2], [5.0, 5.1, 5.2])
    assert stats.min_p_value(3, 3) == pytest.approx(0.1)
    assert few["verdict"].startswith("not testable (3 and 3 measurements") and not few["testable"]
    assert stats.verdict([], [1.0])["verdict"] == "not testable (no measurement)"


def test_verdict_higher_is_better():
    v = stats.verdict([100, 101, 102, 103], [150, 151, 152, 153], higher_is_better=True)
    assert v["verdict"] == stats.FASTER and v["ratio"] == pytest.approx(151.5 / 101.5)
