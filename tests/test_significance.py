"""reports.significance: ``bench compare`` verdicts from the raw repeats of real sweeps, the
INVALID rule, and ``--fail-if-slower`` exit codes.

The result files come from real sweeps of the test workload whose trials sleep a set time
(A: 0.4 s, B: 0.8 s per trial), so B is truly slower. This machine is shared while the tests run,
so a run's validity verdict (bench.model.validity, tested in test_validity.py) may say "busy
machine"; the exit-code tests write copies whose runs are marked valid (through the one save path),
and one copy marked INVALID, so each verdict here does not depend on the machine's load.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from bench.model import results, stats

sys.path.insert(0, str(Path(__file__).parent))
import xpubench_testload  # noqa: E402

WL = xpubench_testload.FaultyWorkload.name


def _sweep(out: Path, sleep: str, repeats: int, label: str) -> Path:
    from bench.sweep.sweep import run_sweep

    out.mkdir(parents=True, exist_ok=True)
    run_sweep(WL, "quick", processes=[1], out_dir=out, label=label, sample_interval=0.2,
              options={"plan": "ok,ok,ok", "sleep": sleep}, repeats=repeats)
    return next(out.glob("*.json"))


def _marked(path: Path, out: Path, valid: bool) -> Path:
    """A copy of a real result whose runs' validity says ``valid`` (the reason kept if not)."""
    res = results.load(path)
    verdict = {"valid": valid, "reasons": [] if valid else ["busy machine: another process used 0.9 cores on average"],
               "notes": [], "other_cores": 0.0 if valid else 0.9, "rules": {}}
    runs = tuple(dataclasses.replace(r, summary=r.summary.replace(validity=verdict)) for r in res.runs)
    results.save(res.replace(runs=runs), out)
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        from bench.model import workload

        mp.setitem(workload._REGISTRY, WL, xpubench_testload.FaultyWorkload)
        root = tmp_path_factory.mktemp("significance")
        raw = {
            "a": _sweep(root / "a", "0.4", 4, "fast"),
            "b": _sweep(root / "b", "0.8", 4, "slow"),
            "a1": _sweep(root / "a1", "0.4", 1, "fast1"),
            "b1": _sweep(root / "b1", "0.8", 1, "slow1"),
        }
    out = {k: _marked(p, root / f"{k}-valid.json", True) for k, p in raw.items()}
    out["b-invalid"] = _marked(raw["b"], root / "b-invalid.json", False)
    out["raw"] = raw
    return out


def _rows(*paths):
    from reports.comparison import distinct_labels
    from reports.load import load_inputs
    from reports.significance import verdict_rows

    inputs = distinct_labels(load_inputs([str(p) for p in paths]))
    return verdict_rows(inputs, inputs.labels)


def test_slower_and_faster_from_the_raw_repeats(files):
    (row,) = _rows(files["a"], files["b"])
    a_walls = [r.summary.wall_s for r in results.load(files["a"]).runs]
    assert row["a_values"] == a_walls and len(row["b_values"]) == 4
    assert row["verdict"] == stats.SLOWER and row["testable"]
    assert row["p_value"] == pytest.approx(2 / 70)  # 4 against 4, every B slower: the exact minimum
    assert 0.35 < row["ratio"] < 0.7  # median(A) / median(B): B about half as fast
    assert row["a_interval"]["n"] == 4 and row["a_interval"]["low"] <= row["a_interval"]["median"]
    (back,) = _rows(files["b"], files["a"])
    assert back["verdict"] == stats.FASTER and back["ratio"] == pytest.approx(1 / row["ratio"])


def test_single_measurements_are_not_testable(files):
    (row,) = _rows(files["a1"], files["b1"])
    assert row["verdict"] == "not testable (1 measurement each)" and row["p_value"] is None
    assert row["ratio"] < 1  # the size is still shown
    (mixed,) = _rows(files["a"], files["b1"])
    assert mixed["verdict"] == "not testable (4 and 1 measurements)"


def test_invalid_side_is_never_judged(files):
    (row,) = _rows(files["a"], files["b-invalid"])
    assert row["verdict"] == (
        "not judged: B is INVALID (repeat 1: busy machine: another process used 0.9 cores on average)")
    assert row["invalid"]


def test_fail_if_slower_exit_codes(files, capsys):
    from bench.cli import main

    a, b = str(files["a"]), str(files["b"])
    assert main(["compare", a, b, "--fail-if-slower", "10"]) == 1
    out = capsys.readouterr().out
    assert "slower: cpu×1p×" in out and "% slower than on fast" in out and "limit 10 %" in out
    assert "Mann-Whitney U" in out and "p < 0.05" in out and "more than 2%" in out
    assert main(["compare", a, b, "--fail-if-slower", "5000"]) == 0  # slower, but by less than 5000 %
    assert main(["compare", b, a, "--fail-if-slower", "0"]) == 0  # B faster
    assert main(["compare", a, b]) == 0  # no limit given: never fails
    assert main(["compare", str(files["a1"]), str(files["b1"]), "--fail-if-slower", "0"]) == 0  # not testable
    assert main(["compare", a, str(files["b-invalid"]), "--fail-if-slower", "0"]) == 0  # not judged
    capsys.readouterr()
    for bad in ("abc", "-5", "nan"):
        assert main(["compare", a, b, "--fail-if-slower", bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"error: bad --fail-if-slower '{bad}' (expected a percentage >= 0, e.g. 5 for 5 % slower)"]


def test_compare_prints_verdicts_and_intervals(files, capsys):
    from reports import compare

    assert compare([str(files["a"]), str(files["b"])]) == 0
    out = capsys.readouterr().out
    assert "significance" in out and "slower" in out
    row = _rows(files["a"], files["b"])[0]
    assert f"{row['a_interval']['median']:.2f} s [" in out  # the interval, not one number
