"""bench report: sections and numbers, PNGs, escaping, warnings, bad inputs, keep-going, speed.

Most inputs are synthetic result files built with bench.model.results records (tests/support/synth.py); the
figures expected are computed here from those inputs, never copied from a report.
"""

from __future__ import annotations

import base64
import html as html_lib
import json
import re
import time

import pytest

from bench.model import ratios

from bench.model import results
from bench.cli import main
from bench.errors import ResultFileError, UsageError
from reports import build_report, fmt, load_inputs, write_report
from support import synth
from reports.load import load_file
from reports import report as report_module
from reports.report import MAX_TIMELINES
from reports.tables import runs_frame, scaling_frame

XSS = "<script>alert(1)</script>"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def save(tmp_path, name, result):
    return str(results.save(result, tmp_path / name))


def imgs(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'<img src="data:image/png;base64,([^"]+)"', html)]


def section(html: str, ident: str) -> str:
    m = re.search(rf'<section id="{re.escape(ident)}">(.*?)</section>', html, re.S)
    assert m, f"no section {ident}"
    return m.group(1)


def cells(html: str) -> list[str]:
    return re.findall(r"<td[^>]*>(.*?)</td>", html, re.S)


# ---------------------------------------------------------------- scaling figures


def test_speedup_efficiency_and_amdahl_fit_come_from_the_walls(tmp_path):
    walls = {1: 9.0, 2: 5.4, 4: 3.3}
    path = save(tmp_path, "a.json", synth.make_result(synth.scaling_runs(walls=walls, cores=4), label="box", cores=4))
    out = tmp_path / "report.html"
    assert main(["report", path, "-o", str(out)]) == 0
    html = out.read_text()
    sec = section(html, "scaling-lorenz")
    speedups = {n: walls[1] / w for n, w in walls.items()}
    f = ratios.amdahl_fit(speedups)
    assert f is not None and 0 < f < 1
    assert f"serial fraction {f:.2f}" in sec
    for n, s in speedups.items():
        assert fmt.times(s) in cells(sec), n
        assert fmt.pct(s / n) in cells(sec), n
    # both charts embedded and decodable, sized in the tag
    pngs = imgs(sec)
    assert len(pngs) == 1 and pngs[0].startswith(PNG_SIGNATURE)
    assert "CPU-time / wall-time" in html


def test_scaling_uses_median_of_repeats_and_recorded_speedup_without_a_baseline(tmp_path):
    a = synth.make_result(synth.scaling_runs(walls={1: 10.0, 2: 6.0}), label="m")
    b = synth.make_result(synth.scaling_runs(walls={1: 12.0, 2: 6.0}), label="m")
    c = synth.make_result(synth.scaling_runs(walls={1: 14.0, 2: 8.0}), label="m")
    no_base = synth.make_result([synth.make_run(processes=2, wall_s=4.0, baseline_wall_s=7.0)], label="other")
    files = [save(tmp_path, f"{i}.json", r) for i, r in enumerate((a, b, c, no_base))]
    inputs = load_inputs(files)
    sc = scaling_frame(runs_frame(inputs), inputs)
    m = sc[sc["label"] == "m"].set_index("processes")
    assert m.loc[1, "n"] == 3 and m.loc[1, "wall_s"] == 12.0 and m.loc[2, "wall_s"] == 6.0
    assert m.loc[2, "speedup"] == pytest.approx(2.0)
    other = sc[sc["label"] == "other"].iloc[0]
    assert other["speedup"] == pytest.approx(7.0 / 4.0) and other["efficiency"] == pytest.approx(7.0 / 8.0)


def test_efficiency_against_the_measured_machine_ceiling(tmp_path):
    walls = {1: 8.0, 2: 5.0}
    cal = {"parallel_efficiency": {"1": 1.0, "2": 0.8}, "matmul_gflops": 40.0}
    runs = synth.scaling_runs(walls=walls, extras=[{"flops": 2e9}] * 4)
    path = save(tmp_path, "a.json", synth.make_result(runs, calibration=cal))
    html = build_report(load_inputs([path])).html
    sec = section(html, "scaling-lorenz")
    eff = walls[1] / walls[2] / 2
    assert "efficiency vs ceiling" in sec
    assert fmt.pct(eff / 0.8) in cells(sec) and fmt.pct(0.8) in cells(sec)
    gflops = 4 * 2e9 / walls[2] / 1e9
    assert fmt.num(gflops) in cells(sec) and fmt.pct(gflops / 40.0) in cells(sec)
    assert "matmul 40.0 GFLOP/s" in section(html, "machines")


def test_cpu_wall_ratio_table_matches_the_samples(tmp_path):
    run = synth.make_run(processes=2, trial_walls=[2.0] * 4, wall_s=4.0, timeline_points=9)
    path = save(tmp_path, "a.json", synth.make_result([run]))
    (src_run,) = load_inputs([path]).runs
    expected = ratios.tree_cpu_seconds(src_run.samples) / 4.0
    html = build_report(load_inputs([path])).html
    assert fmt.num(expected) in cells(section(html, "runs"))


# ---------------------------------------------------------------- charts, PNGs, self-contained


def test_png_dir_holds_every_embedded_chart(tmp_path):
    runs = synth.scaling_runs(walls={1: 8.0, 2: 5.0}) + [synth.make_run(device="gpu", gpu_util=[9, 12, 40])]
    path = save(tmp_path, "a.json", synth.make_result(runs))
    out, pngs = tmp_path / "r.html", tmp_path / "charts"
    assert main(["report", path, "-o", str(out), "--png-dir", str(pngs)]) == 0
    embedded = imgs(out.read_text())
    files = sorted(pngs.glob("*.png"))
    assert len(files) == len(embedded) >= 5  # speedup, cpu/wall, 3 timelines, devices
    assert sorted(p.read_bytes() for p in files) == sorted(embedded)
    for p in files:
        data = p.read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        assert int.from_bytes(data[16:20], "big") > 100 and int.from_bytes(data[20:24], "big") > 100
    assert not list(tmp_path.glob(".*.tmp")) and not list(pngs.glob(".*"))


def test_report_is_self_contained_and_locked_down(tmp_path):
    path = save(tmp_path, "a.json", synth.make_result(synth.scaling_runs()))
    html = build_report(load_inputs([path])).html
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    for attr in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert attr.startswith(("data:image/png;base64,", "#")), attr
    assert "<script" not in html.lower()
    assert "<link" not in html.lower()


def test_timelines_one_per_distinct_run_capped(tmp_path, monkeypatch):
    few = synth.make_result(synth.scaling_runs(walls={1: 4.0, 2: 3.0, 4: 2.0}, cores=4), cores=4)
    html = build_report(load_inputs([save(tmp_path, "few.json", few)])).html
    assert len(imgs(section(html, "timelines"))) == 3
    assert MAX_TIMELINES >= 8
    monkeypatch.setattr(report_module, "MAX_TIMELINES", 2)
    many = [synth.make_run(f"w{i}", processes=1) for i in range(5)]
    repeat = synth.make_run("w0", processes=1)  # same machine × workload × strategy: one timeline
    html = build_report(load_inputs([save(tmp_path, "many.json", synth.make_result(many + [repeat]))])).html
    sec = section(html, "timelines")
    assert len(imgs(sec)) == 2
    assert "2 of 5 distinct runs" in sec


# ---------------------------------------------------------------- escaping


def test_every_string_from_files_is_escaped(tmp_path):
    evil = '<img src=x onerror="alert(2)">'
    run = synth.make_run(
        workload=evil, processes=1, failed=1, data={"source": "synthetic", "name": XSS},
        configs=[{"id": XSS}, {"id": "b"}, {"id": "c"}, {"id": "d"}, {"id": "e"}],
    )
    run2 = synth.make_run(workload=evil, device=XSS, status="skipped", skipped=XSS)
    res = synth.make_result([run, run2], label=XSS, cpu=evil, tensorflow=XSS)
    path = save(tmp_path, "a$b.json", res)
    out = tmp_path / "r.html"
    assert main(["report", path, "-o", str(out)]) == 0
    html = out.read_text()
    assert XSS not in html and evil not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;" in html
    assert "<script" not in html.lower() and "onerror=\"" not in html


def test_dollar_signs_in_labels_do_not_break_charts(tmp_path):
    runs = synth.scaling_runs(workload="$x^2$ cost $", walls={1: 4.0, 2: 3.0})
    path = save(tmp_path, "a.json", synth.make_result(runs, label="$5/h $\\alpha"))
    html = build_report(load_inputs([path])).html
    assert len(imgs(html)) >= 3 and "$5/h $\\alpha" in html


# ---------------------------------------------------------------- header: machines, data, warnings


def test_header_shows_fingerprint_versions_and_synthetic_data(tmp_path):
    run = synth.make_run(workload="imdb_cnn_lstm", data={"source": "synthetic", "name": "IMDB-shaped corpus"})
    res = synth.make_result([run], label="lab", tensorflow="2.21.0", keras="3.11.3", ram_bytes=8 * 2**30)
    html = build_report(load_inputs([save(tmp_path, "a.json", res)])).html
    machines = section(html, "machines")
    for text in ("lab", "Synthetic CPU @ 2.0GHz", "2.21.0", "3.11.3", "8.0 GiB", "0.1.0", "2/2/2"):
        assert text in machines, text
    data = section(html, "data")
    assert "imdb_cnn_lstm" in data and "synthetic data" in data and "not the real dataset" in data


def test_warnings_noise_skipped_failed_incomplete(tmp_path):
    walls = [1.0, 1.5, 1.0, 1.6]  # four different configurations: their spread is not noise
    varied = synth.make_run(trial_walls=walls, failed=2)
    skipped = synth.make_run(device="gpu", status="skipped", skipped="no GPU visible to TensorFlow (no NVML)")
    res = synth.make_result([varied, skipped], label="lab", complete=False)
    # the same strategy run twice: repeated measurements of the same trials
    again = [synth.make_result([synth.make_run(workload="steady", trial_walls=[1.0] * 4, wall_s=w)], label="lab")
             for w in (4.0, 5.2)]
    files = [save(tmp_path, "a.json", res), save(tmp_path, "b.json", again[0]), save(tmp_path, "c.json", again[1])]
    html = build_report(load_inputs(files)).html
    warnings = html_lib.unescape(section(html, "warnings"))
    assert ratios.spread(walls)["cv"] > 0.10
    assert "lorenz (quick) on lab: unstable" not in warnings and "trial wall-time CV" not in warnings
    cv = ratios.spread([4.0, 5.2])["cv"]
    assert f"steady (quick) on lab: unstable timings, CV {fmt.pct(cv)} between 2 repeated runs of cpu×1p×2t (> 10 %)" \
        in warnings
    assert "skipped: no GPU visible to TensorFlow (no NVML)" in warnings
    assert "2 of 6 trials failed [crash] (first: worker killed by SIGKILL)" in warnings
    assert "did not finish" in warnings


# ---------------------------------------------------------------- devices, cluster


def test_device_comparison_shows_time_quality_and_gpu_percentiles(tmp_path):
    util = [5.0, 8.0, 9.0, 11.0, 60.0]
    cpu = synth.make_run(trial_walls=[2.0] * 4, quality={"accuracy": 0.871})
    gpu = synth.make_run(device="gpu", trial_walls=[3.0] * 4, quality={"accuracy": 0.869}, gpu_util=util,
                         timeline_points=len(util))
    html = build_report(load_inputs([save(tmp_path, "a.json", synth.make_result([cpu, gpu]))])).html
    sec = section(html, "devices")
    c = cells(sec)
    assert "accuracy 0.871" in c and "accuracy 0.869" in c
    assert fmt.seconds(3.0) in c and fmt.seconds(2.0) in c
    assert fmt.pct(ratios.percentile(util, 50), 1) in c and fmt.pct(ratios.percentile(util, 95), 1) in c
    assert len(imgs(sec)) == 1


# predict_modes: tests/test_report_predict.py (built from a real quick sweep)


def test_cluster_runs_grouped_by_nodes_against_local_baseline(tmp_path):
    local = synth.make_run(processes=1, trial_walls=[2.0] * 4, wall_s=8.0)
    two_nodes = synth.make_run(processes=4, engine="ray", trial_walls=[2.0] * 4, wall_s=2.5,
                               extras=[{"node": "10.0.0.1"}, {"node": "10.0.0.2"}] * 2)
    one_node = synth.make_run(processes=2, engine="ray", trial_walls=[2.0] * 4, wall_s=4.4,
                              extras=[{"node": "10.0.0.1"}] * 4)
    html = build_report(load_inputs([save(tmp_path, "a.json", synth.make_result([local, two_nodes, one_node]))])).html
    rows = re.findall(r"<tr>(.*?)</tr>", section(html, "cluster"), re.S)
    table = [cells(r) for r in rows if "<td" in r]
    by_nodes = {(int(r[2]), int(r[3])): r for r in table}
    assert by_nodes[(2, 4)][7] == fmt.times(8.0 / 2.5) and by_nodes[(2, 4)][8] == fmt.pct(8.0 / 2.5 / 4)
    assert by_nodes[(1, 2)][7] == fmt.times(8.0 / 4.4)
    assert "cpu×4p×1t ray" in html


# ---------------------------------------------------------------- pytest-benchmark inputs


def pb_doc(label="laptop", benchmarks=None, xpubench_machine=True):
    info = {"node": "host-1", "processor": "x86_64", "python_version": "3.11.7", "system": "Linux", "release": "6.1",
            "cpu": {"brand_raw": "Some CPU", "count": 2}}
    if xpubench_machine:
        info["xpubench"] = {"label": label, "cpu": "Some CPU", "ram_bytes": 8 * 2**30, "logical_cores": 2,
                            "usable_cores": 2, "tensorflow": "2.21.0", "xpubench": "0.1.0"}
    return {"machine_info": info, "commit_info": {}, "benchmarks": benchmarks or [], "datetime": "2025-01-01T00:00:00",
            "version": "5.2.3"}


def pb_bench(name, mean, stddev=0.0, xpu=None):
    b = {"group": None, "name": name, "fullname": f"tests/test_x.py::{name}", "params": None, "param": None,
         "extra_info": {}, "options": {},
         "stats": {"min": mean * 0.9, "max": mean * 1.1, "mean": mean, "stddev": stddev, "rounds": 3,
                   "median": mean, "iqr": 0.0, "q1": mean, "q3": mean, "iqr_outliers": 0, "stddev_outliers": 0,
                   "outliers": "0;0", "ld15iqr": mean, "hd15iqr": mean, "ops": 1 / mean, "total": 3 * mean,
                   "iterations": 1}}
    if xpu is not None:
        b["extra_info"] = {"xpubench": xpu, "throughput": 1.0}
    return b


def xpu_extra(processes, wall, speedup=None, schema=1):
    return {"workload": "lorenz", "size": "quick", "schema": schema,
            "strategy": {"device": "cpu", "processes": processes, "threads_per_process": 1, "engine": "local"},
            "summary": {"wall_s": wall, "speedup": speedup, "trials": 8, "failed": 0, "throughput": 7200 / wall,
                        "throughput_unit": "samples/s", "cpu_wall_ratio": 0.9 * processes,
                        "peak_worker_rss_bytes": 600 * 2**20},
            "quality": {"rmse": 3.5}, "data": {"source": "generated", "name": "lorenz"}}


def test_plain_pytest_benchmark_json_shows_its_timings(pytester, tmp_path):
    pytester.makepyfile(
        """
        import time
        def test_sleepy(benchmark):
            benchmark.pedantic(time.sleep, args=(0.02,), rounds=3, iterations=1)
        """
    )
    out = tmp_path / "plain.json"
    res = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:xpubench", f"--benchmark-json={out}", "-q")
    res.assert_outcomes(passed=1)
    doc = json.loads(out.read_text())
    mean = doc["benchmarks"][0]["stats"]["mean"]
    report = tmp_path / "r.html"
    assert main(["report", str(out), "-o", str(report)]) == 0
    html = report.read_text()
    sec = section(html, "timings")
    assert "test_sleepy" in sec and fmt.seconds(mean) in cells(sec)
    assert len(imgs(sec)) == 1
    assert "without xpubench data" in section(html, "warnings")


def test_pytest_benchmark_with_xpubench_extra_info_becomes_runs(tmp_path):
    doc = pb_doc(benchmarks=[pb_bench("test_lorenz[cpu-1]", 8.0, xpu=xpu_extra(1, 8.0, 1.0)),
                             pb_bench("test_lorenz[cpu-2]", 5.0, xpu=xpu_extra(2, 5.0, 1.6))])
    p = tmp_path / "pb.json"
    p.write_text(json.dumps(doc))
    src = load_file(p)
    assert src.label == "laptop" and [r.processes for r in src.runs] == [1, 2]
    html = build_report(load_inputs([str(p)])).html
    sec = section(html, "scaling-lorenz")
    assert fmt.times(8.0 / 5.0) in cells(sec) and "rmse 3.5" in html
    assert "timings" not in re.findall(r'<section id="([^"]+)"', html)  # no plain timings left over


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("machine_info"), "missing field 'machine_info'"),
        (lambda d: d["benchmarks"][0].pop("stats"), r"benchmarks\[0\]: missing field 'stats'"),
        (lambda d: d["benchmarks"][0]["stats"].update(mean="fast"), "non-numeric field 'mean'"),
        (lambda d: d["benchmarks"][0]["extra_info"]["xpubench"].update(schema=2), "schema 2 is newer"),
        (lambda d: d["benchmarks"][0]["extra_info"]["xpubench"]["strategy"].update(processes="two"),
         "field 'processes' should be a positive number"),
        (lambda d: d.update(benchmarks={}), "field 'benchmarks' should be a list"),
    ],
)
def test_bad_pytest_benchmark_json_names_file_and_field(tmp_path, mutate, message):
    doc = pb_doc(benchmarks=[pb_bench("t", 1.0, xpu=xpu_extra(1, 1.0))])
    mutate(doc)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(ResultFileError, match=message) as exc:
        load_file(p)
    assert str(exc.value).startswith(str(p))


def test_empty_skipped_and_interrupted_results_still_render(tmp_path):
    import dataclasses

    empty = save(tmp_path, "empty.json", synth.make_result([], complete=False))
    skipped = save(tmp_path, "skip.json", synth.make_result([synth.make_run(status="skipped", skipped="no GPU")]))
    cut = dataclasses.replace(synth.make_run(processes=2, trial_walls=[1.0, 2.0]), summary={}, status="interrupted")
    partial = save(tmp_path, "cut.json", synth.make_result([cut], complete=False))
    html = build_report(load_inputs([empty, skipped, partial])).html
    warnings = html_lib.unescape(section(html, "warnings"))
    assert "empty.json: the sweep did not finish" in warnings and "run interrupted" in warnings
    assert "skipped: no GPU" in warnings
    runs = cells(section(html, "runs"))
    assert "interrupted" in runs and "2/2" in runs and fmt.seconds(2.0) in runs  # wall from the trials
    assert len(imgs(section(html, "timelines"))) == 1


# ---------------------------------------------------------------- bad inputs through the CLI


def _good(tmp_path):
    return save(tmp_path, "good.json", synth.make_result(synth.scaling_runs()))


BAD_FILES = [
    ("empty.json", "", "empty file"),
    ("truncated.json", None, "not valid JSON"),
    ("garbage.json", "\x00\x01 not json", "not valid JSON"),
    ("other.json", '{"foo": 1}', "unknown format"),
    ("newer.json", "NEWER", "newer than this xpubench reads"),
    ("types.json", "TYPES", "should be"),
    ("latin1.json", b"\xff\xfe{", "not a text file"),
]


def _write_bad(tmp_path, name, content):
    p = tmp_path / name
    if content is None:
        p.write_text(results.dumps(synth.make_result(synth.scaling_runs()))[:300])
    elif content == "NEWER":
        doc = results.to_dict(synth.make_result([]))
        doc["schema"] = 99
        p.write_text(json.dumps(doc))
    elif content == "TYPES":
        doc = results.to_dict(synth.make_result(synth.scaling_runs()))
        doc["runs"][0]["trials"][0]["wall_s"] = "fast"
        p.write_text(json.dumps(doc))
    elif isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content)
    return str(p)


@pytest.mark.parametrize("name, content, message", BAD_FILES)
def test_unreadable_input_is_one_error_line_naming_the_file(tmp_path, capsys, name, content, message):
    bad = _write_bad(tmp_path, name, content)
    out = tmp_path / "r.html"
    out.write_text("old report")
    code = main(["report", _good(tmp_path), bad, "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}") and message in lines[0], err
    assert "Traceback" not in err
    assert out.read_text() == "old report"  # nothing half-written, old report untouched
    assert not list(tmp_path.glob(".*.tmp"))


def test_missing_file_and_directory(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope.json"), "-o", str(tmp_path / "r.html")]) == 2
    assert "nope.json: no such file" in capsys.readouterr().err
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "r.html")]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_keep_going_renders_the_rest_with_a_warning_per_skipped_file(tmp_path, capsys):
    bads = [_write_bad(tmp_path, n, c) for n, c, _ in BAD_FILES[:4]]
    out = tmp_path / "r.html"
    assert main(["report", _good(tmp_path), *bads, "-o", str(out), "--keep-going"]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning: skipped")]
    assert len(warnings) == len(bads)
    for bad, line in zip(bads, warnings):
        assert bad in line
    html = out.read_text()
    assert len(imgs(html)) >= 3
    for bad in bads:
        assert bad in section(html, "warnings")
    # nothing readable at all: still an error
    assert main(["report", *bads, "-o", str(tmp_path / "none.html"), "--keep-going"]) == 2
    assert "no readable result files (4 skipped)" in capsys.readouterr().err


def test_bad_output_paths(tmp_path, capsys):
    good = _good(tmp_path)
    assert main(["report", good, "-o", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["report", good, "-o", str(tmp_path / "r.html"), "--png-dir", str(f)]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err
    with pytest.raises(UsageError):
        write_report([], tmp_path / "x.html")


# ---------------------------------------------------------------- speed


def test_two_hundred_results_render_in_a_few_seconds(tmp_path):
    files = []
    for i in range(200):
        workload = ("lorenz", "imdb_cnn_lstm", "pose_classifier", "lstm_sequence")[i % 4]
        label, f = (("laptop", 1.0), ("cloud", 0.7))[(i // 4) % 2]
        runs = synth.scaling_runs(workload, walls={1: 8 * f * (1 + 0.02 * (i % 5)), 2: 5 * f, 4: 3.5 * f},
                                  n_trials=8, cores=4, timeline_points=40, seed=i)
        files.append(save(tmp_path, f"r{i:03d}.json", synth.make_result(runs, label=label, cores=4)))
    c0, t0 = time.process_time(), time.perf_counter()
    path = write_report(files, tmp_path / "r.html", png_dir=tmp_path / "png")
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    print(f"\n200 results ({len(files) * 3} runs): {wall:.2f} s wall, {cpu:.2f} s CPU")
    html = path.read_text()
    assert html.count("<tr>") > 600  # every run listed
    assert cpu < 10.0, f"200 results took {cpu:.1f} s of CPU"


# ---------------------------------------------------------------- end to end on a real sweep


def test_real_quick_sweep_end_to_end(lorenz_quick_result, tmp_path, capsys):
    result, path = lorenz_quick_result
    out, pngs = tmp_path / "real.html", tmp_path / "png"
    assert main(["report", str(path), "-o", str(out), "--png-dir", str(pngs)]) == 0
    assert capsys.readouterr().out.strip() == f"report: {out}"
    html = out.read_text()
    one, two = (r for r in result.runs if r.strategy["processes"] in (1, 2))
    speedup = one.summary["wall_s"] / two.summary["wall_s"]
    assert two.summary["speedup"] == pytest.approx(speedup)
    sec = section(html, "scaling-lorenz")
    assert fmt.times(speedup) in cells(sec) and fmt.pct(speedup / 2) in cells(sec)
    # two process counts: no Amdahl fit is claimed, the report says more counts are needed
    assert "Amdahl fit over" not in sec and "at most" not in sec
    assert "no Amdahl fit: it needs at least 3 distinct process counts and 1, 2 were measured" in sec
    assert len(imgs(section(html, "timelines"))) == 2
    assert len(list(pngs.glob("*.png"))) == len(imgs(html))
    rmse = sum(t.quality["rmse"] for t in two.trials if t.ok) / sum(1 for t in two.trials if t.ok)
    assert f"rmse {rmse:.4g}" in cells(section(html, "runs"))
    assert "generated data" in section(html, "data")
    rec = cells(section(html, "recommendations"))
    assert rec[0] == "lorenz (quick)"
    fastest = min((one, two), key=lambda r: r.summary["wall_s"])
    assert rec[1].startswith(f"cpu×{fastest.strategy['processes']}p")


# ---------------------------------------------------------------- Amdahl, ceiling and noise on real runs


def test_amdahl_fit_needs_three_process_counts():
    assert ratios.amdahl_fit({1: 1.0, 2: 1.8}) is None
    assert ratios.amdahl_fit({2: 1.8}) is None
    f = ratios.amdahl_fit({1: 1.0, 2: 1.8, 4: 3.0})
    assert f is not None and 0 < f < 1
    assert ratios.amdahl_fit({2: 1.8, 4: 3.0}) == f  # speedups over a 1-process baseline measured elsewhere


def test_efficiency_against_ideal_and_the_measured_ceiling_of_a_real_run(pose_quick_result, lorenz_quick_result):
    result, path = pose_quick_result
    sec = section(build_report(load_inputs([str(path)])).html, "scaling-pose-classifier")
    by_n = {r.strategy["processes"]: r for r in result.runs}
    sp = by_n[1].summary["wall_s"] / by_n[2].summary["wall_s"]
    ceiling = result.machine["calibration"]["parallel_efficiency"]["2"]
    row = next(r for r in re.findall(r"<tr>(.*?)</tr>", sec, re.S) if "<td" in r and cells(r)[3] == "2")
    c = cells(row)
    assert c[6:10] == [fmt.times(sp), fmt.pct(sp / 2), fmt.pct(ceiling), fmt.pct(sp / 2 / ceiling)]
    # a machine that never ran bench calibrate: the columns stay, saying so
    result, path = lorenz_quick_result
    if not result.machine.get("calibration"):
        sec = section(build_report(load_inputs([str(path)])).html, "scaling-lorenz")
        assert cells(sec).count("not measured") == 4 and "run bench calibrate" in sec


def test_noise_not_measured_for_one_run_and_for_old_files(lorenz_quick_result, tmp_path):
    result, path = lorenz_quick_result
    for run in result.runs:
        assert run.summary["noise"] == {"measured": False, "reason": "no repeated measurement"}
    doc = results.to_dict(result)
    for run in doc["runs"]:
        del run["summary"]["noise"]  # a file written before the noise field existed
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc))
    for p in (path, old):
        html = build_report(load_inputs([str(p)])).html
        assert "unstable timings," not in section(html, "warnings")
        assert cells(section(html, "runs")).count("not measured") == len(result.runs)
        assert "noise not measured (no repeated measurement)" in section(html, "headline")
