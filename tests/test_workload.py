"""The Workload contract and the registry."""

import pytest

from bench.errors import UsageError
from bench.model.workload import (
    SIZES,
    TrialContext,
    TrialOutput,
    Workload,
    get_workload,
    parse_options,
    register,
    trial_seed,
    workload_names,
)


class _Tiny(Workload):
    name = "tiny-test"
    description = "a test workload"

    def trials(self, size, options=None):
        n = 2 if size == "quick" else 5
        return [{"id": f"t{i}", "x": i} for i in range(n)]

    def run_trial(self, config, ctx):
        return TrialOutput(quality={"score": config["x"] * 2.0}, samples=10)


def test_builtin_lorenz_is_registered_and_listed():
    assert "lorenz" in workload_names()
    w = get_workload("lorenz")
    assert w.name == "lorenz" and w.quality_key == "rmse" and w.higher_is_better is False


def test_unknown_workload_error_lists_valid_names():
    with pytest.raises(UsageError) as info:
        get_workload("lorenzz")
    msg = str(info.value)
    assert msg.startswith("unknown workload 'lorenzz' (choose from: ")
    assert "lorenz" in msg and "\n" not in msg


def test_register_adds_and_instantiates():
    register(_Tiny)
    assert "tiny-test" in workload_names()
    assert isinstance(get_workload("tiny-test"), _Tiny)


def test_checked_trials_validates_size_and_ids():
    w = _Tiny()
    assert [c["id"] for c in w.checked_trials("quick")] == ["t0", "t1"]
    assert len(w.checked_trials("full")) == 5
    with pytest.raises(UsageError, match="unknown size 'huge' .*full, quick"):
        w.checked_trials("huge")

    class _Dup(_Tiny):
        def trials(self, size, options=None):
            return [{"id": "a"}, {"id": "a"}]

    with pytest.raises(TypeError, match="duplicate trial id"):
        _Dup().checked_trials("quick")

    class _NotJson(_Tiny):
        def trials(self, size, options=None):
            return [{"id": "a", "f": object()}]

    with pytest.raises(TypeError):
        _NotJson().checked_trials("quick")


def test_lorenz_trials_follow_the_seed_grids():
    configs = get_workload("lorenz").checked_trials("full")
    nodes = [c["nodes"] for c in configs]
    assert [5, 8, 5] in nodes and [5, 8, 8, 8, 8, 8, 5] in nodes
    assert [5, 2, 2, 5, 2, 2, 5] in nodes and [5, 16, 16, 16, 16, 16, 5] in nodes
    assert len(configs) == 8
    assert {c["epochs"] for c in configs} == {999}
    quick = get_workload("lorenz").checked_trials("quick")
    assert {c["epochs"] for c in quick} == {20}  # quick: enough to learn (tests/test_lorenz.py), far below 999
    assert get_workload("lorenz").checked_trials("quick", {"epochs": "3"})[0]["epochs"] == 3


def test_trial_seed_is_stable_and_distinct():
    assert trial_seed("lorenz", "a") == trial_seed("lorenz", "a")
    assert trial_seed("lorenz", "a") != trial_seed("lorenz", "b")
    assert 0 <= trial_seed("x", "y") < 2**31


def test_parse_options():
    assert parse_options(["epochs=3", "data=/x=y"]) == {"epochs": "3", "data": "/x=y"}
    with pytest.raises(UsageError, match="bad workload option 'epochs'"):
        parse_options(["epochs"])


def test_context_defaults_run_a_trial_in_process():
    out = _Tiny().run_trial({"id": "t1", "x": 3}, TrialContext())
    assert out.quality == {"score": 6.0} and out.samples == 10
    assert SIZES == ("quick", "full")


def test_workload_options_are_validated_before_anything_runs():
    lorenz = get_workload("lorenz")
    with pytest.raises(UsageError, match=r"bad workload option epochs='abc' \(expected a whole number >= 1\)"):
        lorenz.checked_trials("quick", {"epochs": "abc"})
    with pytest.raises(UsageError, match=r"bad workload option epochs='0'"):
        lorenz.checked_trials("quick", {"epochs": "0"})
    with pytest.raises(UsageError, match=r"unknown option for workload lorenz: 'epoch' \(choose from: data, epochs, model, model_file, offline\)"):
        lorenz.checked_trials("quick", {"epoch": "3"})
    # the options every workload gets from --data/--offline/--model are accepted
    assert len(lorenz.checked_trials("quick", {"offline": "1", "model": "x"})) == 4
