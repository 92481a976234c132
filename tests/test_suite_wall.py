"""benchmarks/suite_wall.py: the host's stolen CPU, worker starts counted from real result files,
bad --repeat refused."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import suite_wall  # noqa: E402

DATA = ROOT / "tests" / "data" / "results-2026-12-01"


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="/proc/stat is Linux's")
def test_steal_is_read_from_proc_stat_and_never_goes_back():
    first = suite_wall.steal_s()
    assert isinstance(first, float) and first >= 0
    assert suite_wall.steal_s() >= first


def test_count_reads_every_run_of_files_written_before_workers_were_reused(capsys):
    from bench.model import results

    counts = suite_wall.count_starts([str(DATA)])
    runs = [run for p in sorted(DATA.glob("*.json")) for run in results.load(p).runs]
    assert len(counts["runs"]) == len(runs) > 0
    # before workers were reused every (workload, strategy) started its own pool: one start per worker
    assert counts["reused"] == 0
    assert counts["started"] == sum(len(r.workers) for r in runs) >= len(runs)
    assert suite_wall.main(["--count", str(DATA)]) == 0
    assert f"TensorFlow imports (workers started): {counts['started']}; workers reused: 0" in capsys.readouterr().out


def test_repeat_below_one_is_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        suite_wall.main(["--repeat", "0"])
    assert exc.value.code == 2
    assert "--repeat must be at least 1, got 0" in capsys.readouterr().err
