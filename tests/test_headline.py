"""The headline block: its sentences from real quick runs, equal in the report's top section, at the
end of ``bench run`` (the console reporter) and once at the end of ``bench suite``."""

from __future__ import annotations

import io
import re
import statistics

import pytest
from markupsafe import escape
from rich.console import Console

from bench.model import results
from bench.cli import main
from bench.console import ConsoleReporter
from reports import build_report, fmt, load_inputs
from reports.headline import headline_text, headlines, noise_between
from reports.recommend import memory_max_processes
from reports.why import why_lines


def block(path, workload):
    (h,) = [h for h in headlines(load_inputs([str(path)])) if h.workload == workload]
    return h


def expected_scaling(result, n):
    by_n = {r.strategy["processes"]: r for r in result.runs}
    sp = by_n[1].summary["wall_s"] / by_n[n].summary["wall_s"]
    cal = result.machine.get("calibration")
    ceiling = (f"this machine's ceiling {fmt.pct(cal['parallel_efficiency'][str(n)])}" if cal
               else "this machine's ceiling not measured: run bench calibrate")
    how = ("the same speed as 1 (1.00×)" if f"{sp:.2f}" == "1.00"
           else f"{sp:.2f}× faster than 1" if sp > 1 else f"{sp:.2f}× the speed of 1 (slower)")
    return f"{n} processes: {how} (single measurement; efficiency {fmt.pct(sp / n)}; {ceiling})"


def test_headline_of_a_real_calibrated_sweep(pose_quick_result):
    result, path = pose_quick_result
    h = block(path, "pose_classifier")
    assert h.title == "pose_classifier (quick) on test-machine"
    assert h.lines[0] == expected_scaling(result, 2)
    assert "this machine's ceiling" in h.lines[0] and "not measured" not in h.lines[0]
    assert not any("Amdahl" in line for line in h.lines)  # two process counts: no fit claimed
    if not result.machine.get("gpus"):
        assert "no GPU on this machine: not measured" in h.lines
    peak = max(t.peak_rss_bytes for r in result.runs for t in r.trials)
    n = memory_max_processes(peak, result.machine["ram_bytes"])
    assert f"fits {n} workers in RAM (measured {fmt.nbytes(peak)} each)" in h.lines
    assert h.lines[-1] == "noise not measured (no repeated measurement)"
    inputs = load_inputs([str(path)])
    assert list(h.why) == why_lines(inputs.runs, inputs.machine("test-machine"))
    assert h.why  # tiny networks on a calibrated machine: at least the overhead rule speaks


def test_headline_without_calibration_says_the_ceiling_was_not_measured(lorenz_quick_result):
    result, path = lorenz_quick_result
    h = block(path, "lorenz")
    assert h.lines[0] == expected_scaling(result, 2)


@pytest.fixture(scope="module")
def pose_again(calibrated_sweep, pose_quick_result):
    """The 1-process pose sweep run a second time: a repeated measurement of the same trials."""
    return calibrated_sweep("pose_classifier", [1], {"epochs": "1", "folds": "2", "tasks": "multi,squat"})


def test_noise_is_measured_only_between_repeats_of_the_same_thing(pose_quick_result, pose_again):
    (first, p1), (second, p2) = pose_quick_result, pose_again
    one = [r for r in first.runs if r.strategy["processes"] == 1][0]
    two = second.runs[0]
    assert one.summary["noise"] == {"measured": False, "reason": "no repeated measurement"}
    walls = [one.summary["wall_s"], two.summary["wall_s"]]
    run_cv = statistics.stdev(walls) / statistics.fmean(walls)
    again = {t.id: t.wall_s for t in two.trials}
    trial_cvs = [statistics.stdev([t.wall_s, again[t.id]]) / statistics.fmean([t.wall_s, again[t.id]])
                 for t in one.trials]
    strategy = load_inputs([str(p1)]).runs[0].strategy
    if run_cv >= max(trial_cvs):
        what = f"CV {fmt.pct(run_cv)} between 2 repeated runs of {strategy}"
    else:
        what = f"CV up to {fmt.pct(max(trial_cvs))} between {2 * len(trial_cvs)} measurements of the same configuration ({strategy})"
    inputs = load_inputs([str(p1), str(p2)])
    noise = noise_between([r for r in inputs.runs if r.status == "complete"])
    assert noise["measured"] and noise["what"] == what
    (h,) = headlines(inputs)
    assert h.lines[-1].startswith(f"noise: {what}")


def test_console_prints_the_same_block_after_a_run(pose_quick_result):
    result, path = pose_quick_result
    buf = io.StringIO()
    ConsoleReporter(console=Console(file=buf, width=250), quiet=True).on_sweep_done(result, path)
    out = buf.getvalue()
    assert out.count("Is it worth it?") == 1
    tail = out[out.index("Is it worth it?"):].splitlines()[1:]
    assert [line.rstrip() for line in tail] == headline_text(load_inputs([str(path)]))
    buf = io.StringIO()
    ConsoleReporter(console=Console(file=buf, width=250), quiet=True, headline=False).on_sweep_done(result, path)
    assert "Is it worth it?" not in buf.getvalue()


def test_suite_prints_one_headline_at_the_end(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the suite calibrates there first
    out = tmp_path / "suite"
    code = main(["suite", "--workloads", "pose_classifier", "--opt", "epochs=1", "--opt", "folds=2",
                 "--opt", "tasks=multi", "-p", "1", "--out", str(out), "--quiet"])
    assert code == 0
    stdout = capsys.readouterr().out
    files = sorted(str(p) for p in out.glob("*.json"))
    assert len(files) == 1
    assert stdout.count("Is it worth it?") == 1
    lines = [line.rstrip() for line in stdout.splitlines()]
    start = lines.index("Is it worth it?") + 1
    expected = headline_text(load_inputs(files))
    assert lines[start:start + len(expected)] == expected
    assert lines[start + len(expected)].startswith("report: ")


def test_report_opens_with_the_headline(pose_quick_result, lorenz_quick_result):
    files = [str(pose_quick_result[1]), str(lorenz_quick_result[1])]
    inputs = load_inputs(files)
    page = build_report(inputs).html
    main_part = page[page.index("<main>"):]
    # INVALID runs (their validity as recorded), when there are any, are listed first; then the headline
    ids = re.findall(r"<section id=\"([^\"]+)\"", main_part)
    invalid = any(r.invalid for r in inputs.runs)
    assert ids[:2] == ["invalid", "headline"] if invalid else ids[0] == "headline"
    sec = re.search(r'<section id="headline">(.*?)</section>', page, re.S).group(1)
    for h in headlines(inputs):
        assert f"<h3>{escape(h.title)}</h3>" in sec
        for line in h.lines:
            assert f"<li>{escape(line)}</li>" in sec, line
        for w in h.why:
            assert f"<b>Why:</b> {escape(w)}</p>" in sec
    assert len(headlines(inputs)) == 2
    # the result files are unchanged by reading them
    assert results.load(files[0]).runs[0].summary == pose_quick_result[0].runs[0].summary


def test_a_tie_is_not_called_slower():
    from reports.headline import versus

    assert versus(0.9987, "tensorflow") == "the same speed as tensorflow (1.00×)"  # measured: imdb quick, jax vs tf
    assert versus(1.66, "1") == "1.66× faster than 1"
    assert versus(0.77, "tensorflow") == "0.77× the speed of tensorflow (slower)"
