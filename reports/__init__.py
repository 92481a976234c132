"""Reports: HTML and PNG from result files. (Minimal until the report issue lands.)"""

from __future__ import annotations

import html
from pathlib import Path

from bench import results


def write_report(files, output, png_dir=None, keep_going=False):
    rows = []
    for f in files:
        res = results.load(f)
        for r in res.runs:
            s = r.summary
            rows.append(
                "<tr>" + "".join(
                    f"<td>{html.escape(str(v))}</td>"
                    for v in (r.workload, r.strategy.get("device"), r.strategy.get("processes"), s.get("wall_s"), s.get("speedup"))
                ) + "</tr>"
            )
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    results.atomic_write_text(output, "<!doctype html><meta charset=utf-8><title>xpubench</title><table>" + "".join(rows) + "</table>")


def compare(files, output=None, prices=(), keep_going=False):
    raise NotImplementedError
