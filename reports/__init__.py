"""Reports: a self-contained HTML page (charts embedded as PNG) and machine comparisons.

Public front used by ``bench report`` and ``bench compare``::

    write_report(files, output, png_dir=None, keep_going=False)
    compare(files, output=None, prices=["cloud=0.90"], keep_going=False) -> exit status

Inputs are xpubench result files (read through :func:`bench.model.results.load`) and pytest-benchmark
JSON files (see :mod:`reports.load`). Unreadable inputs raise
:class:`bench.errors.ResultFileError` naming the file; with ``keep_going`` they are skipped with
a warning line each. Every file written is written atomically.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

from bench.errors import UsageError, shown
from bench.model.results import atomic_write_bytes, atomic_write_text

__all__ = ["write_report", "compare", "build_report", "load_inputs"]


def load_inputs(files, keep_going: bool = False, warn=None):
    """Loads result files of either format (see :func:`reports.load.load_inputs`).

    Args:
        files: xpubench result files and/or pytest-benchmark JSON files.
        keep_going: Skip unreadable files with a warning line each instead of raising.
        warn: Called with each warning line (default: printed to stderr).
    """
    from reports.load import load_inputs as _load

    return _load(files, keep_going=keep_going, warn=warn)


def build_report(inputs, prices=None, title=None, comparison_first=False, png_names=False):
    """Builds a :class:`reports.report.Report` (HTML text and charts) without writing anything.

    Args:
        inputs: From :func:`load_inputs`.
        prices: Price per hour by machine label.
        title: Page title.
        comparison_first: Put the machine comparison first.
        png_names: Name each chart's PNG file under its figure.
    """
    from reports.report import build

    return build(inputs, prices=prices, title=title, comparison_first=comparison_first, png_names=png_names)


def _check_output(output: str | os.PathLike) -> Path:
    path = Path(output)
    if path.is_dir():
        raise UsageError(f"report output {shown(path)} is a directory (give a file name such as report.html)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create directory for report {shown(path)} ({exc.strerror})") from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write report {shown(path)} (directory not writable)")
    return path


def _check_png_dir(png_dir: str | os.PathLike) -> Path:
    path = Path(png_dir)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--png-dir {shown(path)} is a file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create --png-dir {shown(path)} ({exc.strerror})") from None
    return path


def _write(report, output: Path, png_dir: Path | None) -> None:
    from bench.model.safefile import check_target

    # every target is checked before any is written: a device/FIFO/socket is never replaced
    for path in [png_dir / f"{c.name}.png" for c in report.charts] if png_dir is not None else []:
        check_target(path)
    check_target(output)
    if png_dir is not None:
        for chart in report.charts:
            atomic_write_bytes(png_dir / f"{chart.name}.png", chart.png)
    atomic_write_text(output, report.html)


def write_report(
    files: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    png_dir: str | os.PathLike | None = None,
    keep_going: bool = False,
    title: str | None = None,
) -> Path:
    """Writes a self-contained HTML report (and every chart as PNG when ``png_dir`` is given).

    Args:
        files: xpubench result files and/or pytest-benchmark JSON files.
        output: The HTML file to write (atomically).
        png_dir: Directory for one PNG per chart.
        keep_going: Skip unreadable files with a warning line each instead of stopping.
        title: Page title.

    Returns:
        The path written.

    Raises:
        ResultFileError: an unreadable file (without ``keep_going``).
        UsageError: bad output paths, or no readable file.
    """
    out = _check_output(output)
    pngs = _check_png_dir(png_dir) if png_dir else None
    inputs = load_inputs(files, keep_going=keep_going)
    report = build_report(inputs, title=title, png_names=pngs is not None)
    _write(report, out, pngs)
    return out


def compare(
    files: Sequence[str | os.PathLike],
    output: str | os.PathLike | None = None,
    prices: Sequence[str] = (),
    keep_going: bool = False,
    file=None,
    fail_if_slower: float | str | None = None,
) -> int:
    """Prints a machine comparison table (and writes an HTML report when ``output`` is given).

    Args:
        files: Two or more result files (xpubench or pytest-benchmark JSON), one per machine (or more).
        output: HTML file to write.
        prices: ``LABEL=PER_HOUR`` strings (cost per trial and per 1,000 samples).
        keep_going: Skip unreadable files instead of stopping.
        file: Where the terminal table goes (default stdout).
        fail_if_slower: Return 1 when some strategy of B is significantly slower than A by more
            than this many % (:func:`reports.significance.slower_than`); None: never.

    Returns:
        0 on success, 1 when ``fail_if_slower`` is exceeded (errors raise UsageError: the CLI
        prints them and exits 2).
    """
    from reports.comparison import check_price_labels, distinct_labels, parse_prices, print_terminal
    from reports.significance import parse_percent, slower_than

    limit = None if fail_if_slower is None else parse_percent(fail_if_slower)
    price_map = parse_prices(prices)
    if len(files) < 2:
        raise UsageError(f"compare needs at least two result files (got {len(files)})")
    out = _check_output(output) if output else None
    inputs = distinct_labels(load_inputs(files, keep_going=keep_going))
    if len(inputs.sources) < 2:
        raise UsageError(f"compare needs at least two readable result files (got {len(inputs.sources)})")
    check_price_labels(price_map, inputs.labels)
    verdicts = print_terminal(inputs, price_map, file=file)
    if out is not None:
        labels = inputs.labels
        title = f"xpubench comparison: {labels[0]} vs {', '.join(labels[1:])}"
        _write(build_report(inputs, prices=price_map, title=title, comparison_first=True), out, None)
        from bench.text import printable

        print(f"report: {printable(out)}", file=file or sys.stdout)
    if limit is not None:
        from bench.text import printable

        slow = slower_than(verdicts, limit)
        for row in slow:
            print(f"slower: {printable(row['strategy'])} ({printable(row['key'][0])}) on {printable(row['b'])} is "
                  f"{(1 / row['ratio'] - 1):.1%} slower than on {printable(row['a'])} (p = {row['p_value']:.3g}; "
                  f"limit {limit:g} %)", file=file or sys.stdout)
        if slow:
            return 1
    return 0
