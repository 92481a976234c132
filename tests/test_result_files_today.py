"""Real result files of 2026-12-01 (tests/data/results-2026-12-01/) load, keep their figures, and report.

The five files are ``bench suite --size quick`` output of that day's code (imdb_cnn_lstm, lorenz,
lstm_sequence, pose_classifier, predict_modes at 1 and 2 processes on a 2-core machine), kept as
they were written. These files must keep loading (schema 1) in later versions: a change that
breaks one of these tests breaks every result file users already have. Figures expected are read
from each file's own JSON (what the producer recorded), never typed in here.
"""

from __future__ import annotations

import html as html_lib
import json
import re
from pathlib import Path

import pytest

from bench.model import results
from reports import load_inputs, write_report
from reports.headline import headline_text

DATA = Path(__file__).resolve().parent / "data" / "results-2026-12-01"
FILES = sorted(DATA.glob("*.json"))
WORKLOADS = ["imdb_cnn_lstm", "lorenz", "lstm_sequence", "pose_classifier", "predict_modes"]


def section(html: str, ident: str) -> str:
    m = re.search(rf'<section id="{re.escape(ident)}">(.*?)</section>', html, re.S)
    assert m, f"no section {ident}"
    return html_lib.unescape(re.sub(r"<[^>]+>", " ", m.group(1)))


def test_the_five_files_are_there():
    assert [p.name.split("-quick-")[0] for p in FILES] == WORKLOADS


@pytest.mark.parametrize("path", FILES, ids=[p.name.split("-quick-")[0] for p in FILES])
def test_a_file_of_today_loads_with_what_it_records(path):
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw["schema"] == 1 and raw["tool"]["name"] == "xpubench" and raw["complete"] is True
    result = results.load(path)
    assert result.complete is True and result.created == raw["created"]
    assert result.machine["label"] == raw["machine"]["label"]
    assert result.machine["calibration"] == raw["machine"]["calibration"]
    assert [r.strategy["processes"] for r in result.runs] == [1, 2]
    assert [r.workload for r in result.runs] == [path.name.split("-quick-")[0]] * 2
    assert [r.size for r in result.runs] == ["quick", "quick"]
    assert [r.status for r in result.runs] == ["complete", "complete"]
    one, two = result.runs
    for run, doc in zip(result.runs, raw["runs"]):
        assert [t.id for t in run.trials] == [t["id"] for t in doc["trials"]]
        assert all(t.error is None for t in run.trials)
        assert run.summary["trials"] == len(run.trials) == len(doc["trials"]) > 0
        for key in ("wall_s", "speedup", "efficiency", "baseline_wall_s", "cpu_s", "throughput"):
            assert run.summary[key] == doc["summary"][key], key
        assert [t.wall_s for t in run.trials] == [t["wall_s"] for t in doc["trials"]]
        assert len(run.samples) == len(doc["samples"]) > 0
    # the same trials at 1 and 2 processes; speedup and efficiency as recorded against the 1-process wall
    assert sorted(t.id for t in one.trials) == sorted(t.id for t in two.trials)
    assert one.summary["speedup"] == 1.0 and one.summary["baseline_wall_s"] == one.summary["wall_s"]
    assert two.summary["baseline_wall_s"] == one.summary["wall_s"]
    assert two.summary["speedup"] == pytest.approx(one.summary["wall_s"] / two.summary["wall_s"], rel=1e-9)
    assert two.summary["efficiency"] == pytest.approx(two.summary["speedup"] / 2, rel=1e-9)
    # and it saves back to the same figures (a file loaded today can be written and read again)
    again = results.loads(results.dumps(result), str(path))
    assert again.runs == result.runs and again.machine == result.machine


def test_a_report_of_all_five_files(tmp_path):
    out = write_report([str(p) for p in FILES], tmp_path / "today.html")
    html = out.read_text(encoding="utf-8")
    headline = section(html, "headline")
    predict = section(html, "predict-modes")
    inputs = load_inputs([str(p) for p in FILES])
    text = headline_text(inputs)
    for path in FILES:
        raw = json.loads(path.read_text(encoding="utf-8"))
        label, (one, two) = raw["machine"]["label"], raw["runs"]
        block = f"{one['workload']} (quick) on {label}"
        assert block in headline and f"{block}:" in text  # the console's block heading ends in a colon
        # the headline states the speedup the file records, not one it works out again
        said = f"2 processes: {two['summary']['speedup']:.2f}× faster than 1"
        assert said in headline and any(line.strip().startswith(said) for line in text)
    # the predict section lists every mode the predict_modes file declares (one row each), and
    # the shard trials (which declare ``shards``) as the whole table scored in that many shards
    (predict_file,) = [p for p in FILES if p.name.startswith("predict_modes-")]
    extras = [t["extra"] for r in json.loads(predict_file.read_text(encoding="utf-8"))["runs"] for t in r["trials"]]
    modes = {e["mode_label"] for e in extras if "shards" not in e}
    shards = {e["shards"] for e in extras if "shards" in e}
    assert len(modes) > 5 and len(shards) == 1
    squashed = " ".join(predict.split())
    for mode in modes:
        assert " ".join(mode.split()) in squashed, mode
    assert f"{shards.pop()} shards in 1 process" in squashed
