"""Process-count strategies: parsing, validation, thread capping."""

import os

import pytest

from bench.errors import UsageError
from bench.model.strategy import MAX_PROCESSES, Strategy, default_threads, make_strategies, parse_processes, usable_cores


@pytest.mark.parametrize(
    "text, expected",
    [("1", [1]), ("1,2", [1, 2]), ("2,1,2", [1, 2]), (" 1 , 3 ", [1, 3]), ("1-3", [1, 2, 3]), ([4, 1], [1, 4]), (2, [2])],
)
def test_parse_processes_valid(text, expected):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert parse_processes(text) == expected


@pytest.mark.parametrize("bad", ["0", "-1", "two", "10000", "", "1,,x", "3-1", "1.5"])
def test_parse_processes_rejects_with_the_value_named(bad):
    with pytest.raises(UsageError) as info:
        parse_processes(bad)
    assert "\n" not in str(info.value)
    assert "expected" in str(info.value)


def test_warns_above_usable_cores():
    with pytest.warns(UserWarning, match="above the .* usable cores"):
        parse_processes(str(usable_cores() + 1))


def test_usable_cores_follows_affinity():
    assert usable_cores() == len(os.sched_getaffinity(0))
    assert 1 <= usable_cores() <= (os.cpu_count() or 1)


def test_default_threads_divides_cores():
    assert default_threads(1, cores=8) == 8
    assert default_threads(2, cores=8) == 4
    assert default_threads(3, cores=8) == 2
    assert default_threads(16, cores=8) == 1


def test_make_strategies_cross_product_and_thread_override():
    s = make_strategies(["cpu"], [1, 2])
    assert [x.processes for x in s] == [1, 2]
    assert all(x.threads_per_process >= 1 for x in s)
    s = make_strategies(["cpu", "gpu"], [1, 4], threads=3)
    assert len(s) == 4 and {x.threads_per_process for x in s} == {3}
    assert Strategy().to_dict()["processes"] == 1
    assert MAX_PROCESSES >= 64
