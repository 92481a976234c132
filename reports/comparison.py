"""Machine comparison: the same workload × strategy on machine A and B, B's speedup, costs.

Machine A is the first label given; every other label is compared with it. Costs come from
``--price LABEL=PER_HOUR``: cost per trial = price × wall hours / finished trials; cost per 1,000
samples = price × wall hours / samples × 1000.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import sys
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from bench.errors import UsageError
from bench.model import ratios
from bench.model.strategy import DEFAULT_BACKEND, backend_label
from reports.fmt import DASH, money, ok, seconds, times
from reports.load import Inputs
from reports.tables import measured

KEYS = ["workload", "size", "backend", "device", "engine", "processes", "scaling"]


def parse_prices(texts: Sequence[str]) -> dict[str, float]:
    """Parses ``--price LABEL=PER_HOUR`` options.

    Raises:
        UsageError: a malformed option, a price that is not a finite number >= 0, or a label twice.
    """
    prices: dict[str, float] = {}
    for text in texts:
        label, sep, value = str(text).rpartition("=")
        label = label.strip()
        bad = UsageError(f"bad --price {text!r} (expected LABEL=PRICE_PER_HOUR, e.g. cloud=0.90)")
        if not sep or not label:
            raise bad
        try:
            price = float(value)
        except ValueError:
            raise bad from None
        if not math.isfinite(price) or price < 0:
            raise bad
        if label in prices:
            raise UsageError(f"--price for machine {label!r} given twice")
        prices[label] = price
    return prices


def check_price_labels(prices: Mapping[str, float], labels: Sequence[str]) -> None:
    """Raises UsageError naming a priced label that no input has, with the labels there are."""
    for label in prices:
        if label not in labels:
            raise UsageError(
                f"unknown machine label {label!r} in --price (choose from: {', '.join(sorted(labels))})"
            )


def distinct_labels(inputs: Inputs) -> Inputs:
    """When several files all carry one machine label, labels them by file name instead.

    ``bench compare a.json b.json`` of two runs on one host (default label: its hostname) would
    otherwise merge them into one machine.
    """
    if len(inputs.sources) < 2 or len(inputs.labels) > 1:
        return inputs
    seen: dict[str, int] = {}
    sources = []
    for s in inputs.sources:
        name = Path(s.path).stem
        seen[name] = seen.get(name, 0) + 1
        label = name if seen[name] == 1 else f"{name}-{seen[name]}"
        sources.append(dataclasses.replace(
            s, label=label, machine={**s.machine, "label": label},
            runs=tuple(dataclasses.replace(r, label=label) for r in s.runs),
            timings=tuple(dataclasses.replace(t, label=label) for t in s.timings),
        ))
    return dataclasses.replace(inputs, sources=tuple(sources))


def machines_table(df: pd.DataFrame, labels: Sequence[str], prices: Mapping[str, float] | None = None) -> pd.DataFrame:
    """One row per workload × strategy measured on the first machine and at least one other.

    Args:
        df: The runs table (:func:`reports.tables.runs_frame`).
        labels: Machine labels, machine A first.
        prices: Price per hour by label.

    Columns per machine ``L``: ``wall:L``, ``per_trial:L`` (wall / finished trials),
    ``throughput:L``, ``cost_trial:L`` and ``cost_1k:L`` (when priced), and for every machine but
    the first ``speedup:L`` = wall on the first / wall on ``L`` (> 1: ``L`` is faster).
    """
    prices = dict(prices or {})
    m = measured(df)
    agg = (
        m.groupby(["label"] + KEYS, sort=False)
        .agg(wall=("wall_s", "median"), ok_trials=("ok_trials", "median"), samples=("samples_total", "median"),
             throughput=("throughput", "median"), unit=("unit", "first"), quality=("quality_text", "first"),
             threads=("threads", "first"))
        .reset_index()
    )
    ref = labels[0] if labels else None
    rows = []
    for key, g in agg.groupby(KEYS, sort=False):
        by = {r.label: r for r in g.itertuples()}
        if ref not in by or len(by) < 2:
            continue
        workload, size, backend, device, engine, procs, scaling = key
        strategy = _strategy(device, procs, engine, backend) + (" weak" if scaling == "weak" else "")
        row = {"workload": workload, "size": size, "backend": backend, "device": device, "engine": engine,
               "processes": int(procs), "strategy": strategy, "unit": by[ref].unit,
               "best": False}
        rows.append(_fill(row, by, labels, prices))
    # the fastest strategy of each machine, when some machine measured more than one
    agg["per_trial"] = agg["wall"] / agg["ok_trials"]
    for (workload, size), g in agg.groupby(["workload", "size"], sort=False):
        by = {label: gg.sort_values("per_trial").iloc[0] for label, gg in g.groupby("label", sort=False)}
        if ref not in by or len(by) < 2 or g.groupby("label").size().max() < 2:
            continue
        by = {k: _Row(**v[["label", "wall", "ok_trials", "samples", "throughput", "quality", "threads"]].to_dict(),
                      strategy=_strategy(v["device"], v["processes"], v["engine"], v["backend"])) for k, v in by.items()}
        row = {"workload": workload, "size": size, "backend": "", "device": "", "engine": "", "processes": 0,
               "strategy": "fastest: " + " | ".join(by[lab].strategy if lab in by else "–" for lab in labels),
               "unit": "", "best": True}
        rows.append(_fill(row, by, labels, prices))
    return pd.DataFrame(rows)


@dataclasses.dataclass
class _Row:
    label: str
    wall: float
    ok_trials: float
    samples: float
    throughput: float
    quality: str
    threads: float
    strategy: str = ""


def _strategy(device, processes, engine, backend=DEFAULT_BACKEND) -> str:
    return backend_label(backend, f"{device}×{int(processes)}p" + (f" {engine}" if engine != "local" else ""))


def _fill(row: dict, by: Mapping, labels: Sequence[str], prices: Mapping[str, float]) -> dict:
    """Adds the per-machine columns of one comparison row (see :func:`machines_table`)."""
    ref = labels[0]
    for label in labels:
        r = by.get(label)
        wall = float(r.wall) if r is not None else math.nan
        n = float(r.ok_trials) if r is not None else math.nan
        samples = float(r.samples) if r is not None and ok(r.samples) else math.nan
        row[f"wall:{label}"] = wall
        row[f"per_trial:{label}"] = wall / n if ok(n) and n > 0 else math.nan
        row[f"throughput:{label}"] = float(r.throughput) if r is not None else math.nan
        row[f"quality:{label}"] = r.quality if r is not None else ""
        row[f"threads:{label}"] = float(r.threads) if r is not None and ok(r.threads) else math.nan
        price = prices.get(label)
        hours = wall / 3600.0
        row[f"cost_trial:{label}"] = price * hours / n if price is not None and ok(n) and n > 0 else math.nan
        row[f"cost_1k:{label}"] = (price * hours / samples * 1000.0
                                   if price is not None and ok(samples) and samples > 0 else math.nan)
        if label != ref:
            row[f"speedup:{label}"] = _speedup(row[f"wall:{ref}"], wall)
    return row


def _speedup(ref: float, other: float) -> float:
    """Machine ``other``'s speedup over the reference (:func:`bench.model.ratios.speedup`; NaN if unknown)."""
    sp = ratios.speedup(ref, other) if ok(ref) and ok(other) else None
    return math.nan if sp is None else sp


def timings_table(inputs: Inputs, labels: Sequence[str], prices: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Plain pytest-benchmark entries (by full name) on the first machine and another, with speedups.

    Args:
        inputs: Loaded inputs.
        labels: Machine labels, machine A first.
        prices: Price per hour by label (cost per round).
    """
    prices = dict(prices or {})
    ref = labels[0] if labels else None
    by_name: dict[str, dict[str, list[float]]] = {}
    for t in inputs.timings:
        if not t.has_xpubench:
            by_name.setdefault(t.fullname, {}).setdefault(t.label, []).append(t.mean)
    rows = []
    for name, per in by_name.items():
        if ref not in per or len(per) < 2:
            continue
        row = {"name": name}
        for label in labels:
            mean = float(pd.Series(per[label]).median()) if label in per else math.nan
            row[f"mean:{label}"] = mean
            price = prices.get(label)
            row[f"cost_round:{label}"] = price * mean / 3600.0 if price is not None and ok(mean) else math.nan
            if label != ref:
                row[f"speedup:{label}"] = _speedup(row[f"mean:{ref}"], mean)
        rows.append(row)
    return pd.DataFrame(rows)


def table_cells(
    table: pd.DataFrame, labels: Sequence[str], prices: Mapping[str, float], names: Mapping[str, str] | None = None
) -> tuple[list[str], list[list[str]]]:
    """Column headings and formatted cells of a machines table (shared by terminal and HTML).

    Args:
        table: From :func:`machines_table`.
        labels: Machine labels, the reference first.
        prices: Price per hour by label.
        names: Short names for the headings (e.g. ``{"laptop": "A"}``); default the labels.
    """
    n, vs, priced = _headings(labels, prices, names)
    cols = ["workload", "strategy"] + [f"wall {n[lab]}" for lab in labels] + vs
    cols += [f"time/trial {n[lab]}" for lab in labels]
    cols += [f"$/trial {n[lab]}" for lab in priced] + [f"$/1k samples {n[lab]}" for lab in priced]
    rows = []
    for r in table.to_dict("records"):
        threads = [r.get(f"threads:{lab}") for lab in labels]
        strategy = r["strategy"]
        if not r.get("best") and all(ok(t) for t in threads) and len(set(threads)) > 1:  # same N, other threads
            strategy += " (" + " vs ".join(f"{int(t)}t" for t in threads) + ")"
        cells = [f"{r['workload']} ({r['size']})", strategy]
        cells += [seconds(r[f"wall:{lab}"]) for lab in labels]
        cells += [times(r[f"speedup:{lab}"]) for lab in labels[1:]]
        cells += [seconds(r[f"per_trial:{lab}"]) for lab in labels]
        cells += [money(r[f"cost_trial:{lab}"]) for lab in priced]
        cells += [money(r[f"cost_1k:{lab}"]) for lab in priced]
        rows.append(cells)
    return cols, rows


def _headings(labels: Sequence[str], prices: Mapping[str, float],
              names: Mapping[str, str] | None) -> tuple[dict[str, str], list[str], list[str]]:
    """What both comparison tables head their columns with: the name of each label, the
    ``B vs A`` headings (every machine against the first) and the priced labels.

    Args:
        labels: Machine labels, the reference first.
        prices: Price per hour by label.
        names: Short names for the headings; default the labels.
    """
    names = dict(names or {})
    n = {lab: names.get(lab, lab) for lab in labels}
    return n, [f"{n[lab]} vs {n[labels[0]]}" for lab in labels[1:]], [lab for lab in labels if lab in prices]


def timing_cells(
    table: pd.DataFrame, labels: Sequence[str], prices: Mapping[str, float], names: Mapping[str, str] | None = None
) -> tuple[list[str], list[list[str]]]:
    """Column headings and cells of the plain pytest-benchmark comparison.

    Args:
        table: From :func:`timings_table`.
        labels: Machine labels, machine A first.
        prices: Price per hour by label.
        names: Short names for the headings, as in :func:`table_cells`.
    """
    n, vs, priced = _headings(labels, prices, names)
    cols = ["benchmark"] + [f"mean {n[lab]}" for lab in labels] + vs + [f"$/round {n[lab]}" for lab in priced]
    rows = []
    for r in table.to_dict("records"):
        cells = [r["name"]] + [seconds(r[f"mean:{lab}"]) for lab in labels]
        cells += [times(r[f"speedup:{lab}"]) for lab in labels[1:]]
        cells += [money(r[f"cost_round:{lab}"]) for lab in priced]
        rows.append(cells)
    return cols, rows


def print_verdicts(console, inputs: Inputs, labels: Sequence[str], names: Mapping[str, str]) -> list[dict]:
    """Prints each strategy's verdict (B faster / slower / no significant difference than A, from
    the raw repeats: :mod:`reports.significance`) and returns the rows.

    Args:
        console: A rich Console.
        inputs: Loaded inputs.
        labels: Machine labels, A first.
        names: Letter of each label.
    """
    from rich.table import Table
    from rich.text import Text

    from bench.text import printable
    from reports.repeats import interval_text
    from reports.significance import test_text, verdict_rows

    rows = verdict_rows(inputs, labels)
    if not rows:
        return rows
    t = Table(title=Text("significance: wall time per strategy, median [95 % interval] over repeats"), show_lines=False)
    for i, c in enumerate(["workload", "strategy", "A", "B", "B vs A", "p", "verdict"]):
        t.add_column(Text(c), justify="left" if i in (0, 1, 6) else "right", overflow="fold")
    for r in rows:
        p = r.get("p_value")
        verdict = str(r["verdict"])
        style = {"faster": "green", "slower": "bold red"}.get(verdict, "yellow" if r.get("invalid") else "")
        t.add_row(Text(printable(f"{r['key'][0]} ({r['key'][1]})")), Text(printable(r["strategy"])),
                  Text(printable(f"{names[r['a']]}: {interval_text(r['a_interval'], 'wall_s')}")),
                  Text(printable(f"{names[r['b']]}: {interval_text(r['b_interval'], 'wall_s')}")),
                  Text(times(r["ratio"]) if ok(r.get("ratio")) else DASH),
                  Text(f"{p:.3g}" if isinstance(p, float) else DASH), Text(printable(verdict), style=style))
    console.print(t)
    console.print(Text(test_text() + "."))
    return rows


def print_terminal(inputs: Inputs, prices: Mapping[str, float], file=None) -> list[dict]:
    """Prints the comparison as rich tables (every string from a file shown as plain text, no markup,
    its control characters escaped and its length bounded by :func:`bench.text.printable`).

    Args:
        inputs: Loaded inputs (at least two machine labels).
        prices: Price per hour by label.
        file: Where to print (default stdout).

    Returns:
        The verdict rows (:func:`reports.significance.verdict_rows`).
    """
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from bench.text import printable

    labels = inputs.labels
    names = {lab: _letter(i) for i, lab in enumerate(labels)}
    width = shutil.get_terminal_size((160, 24)).columns
    console = Console(file=file or sys.stdout, width=max(width, 100), highlight=False, soft_wrap=False)
    for lab in labels:
        m = inputs.machine(lab)
        files = ", ".join(printable(s.path) for s in inputs.sources if s.label == lab)
        price = f", {money(prices[lab])}/hour" if lab in prices else ""
        cores = m.get('usable_cores') or m.get('logical_cores') or '?'
        console.print(Text(f"{names[lab]} = {printable(lab)}: {printable(m.get('cpu') or '?')}, {printable(cores)} "
                           f"usable cores{price} ({files})"))
    tables = []
    mt = machines_table(_frame(inputs), labels, prices)
    if len(mt):
        tables.append(("xpubench runs", *table_cells(mt, labels, prices, names)))
    tt = timings_table(inputs, labels, prices)
    if len(tt):
        tables.append(("pytest-benchmark timings", *timing_cells(tt, labels, prices, names)))
    if not tables:
        console.print(Text(f"no workload × strategy was measured on both {printable(labels[0])} and another machine "
                           f"({', '.join(printable(lab) for lab in labels)})"))
        return []
    for title, cols, rows in tables:
        t = Table(title=Text(title), show_lines=False)
        for i, c in enumerate(cols):
            t.add_column(Text(printable(c)), justify="left" if i < 2 else "right", overflow="fold")
        for cells in rows:
            t.add_row(*[Text(printable(c) if c else DASH) for c in cells])
        console.print(t)
    console.print(Text("'B vs A' > 1×: B is faster. Time/trial = wall / finished trials (trials overlap "
                       "when processes > 1)."))
    return print_verdicts(console, inputs, labels, names)


def _letter(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else f"M{i + 1}"


def _frame(inputs: Inputs) -> pd.DataFrame:
    from reports.tables import runs_frame

    return runs_frame(inputs)
