"""Per-configuration tables: what each configuration of a sweep measured, the best one marked.

Built from the fields the workloads declare in each trial (never from names), for the console
(after the strategy table) and the report (one table per workload and machine):

- **networks** (trial config ``grid`` and ``nodes``, quality ``rmse``; the Lorenz sweep): RMSE
  and trial time per network, grouped by grid; lowest RMSE marked.
- **cv** (trial extra ``config_key``, ``fold``, ``folds``, optional ``cv_group``; quality
  ``accuracy``; the k-fold workloads): per configuration the mean and standard deviation of
  the fold accuracies, folds done, time per fold; the best mean CV accuracy of each group named.
- **epochs** (trial extra ``epoch_s`` with ``epoch_samples_per_s`` or ``time_to_accuracy``; the
  IMDB workload): every epoch's seconds (the first apart, as warm-up), samples/s, held-out
  accuracy, and the test accuracy after training; the time-to-accuracy curve as points.

Quality figures come from one reference run per machine and workload (the measured run with
the most finished trials, fewest processes first): every strategy runs the same seeded trials.
Times are shown for every strategy, one column each.
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any, Mapping, Sequence

from bench.model.ratios import number
from reports import fmt
from reports.fmt import ok

BEST = "★ best"


@dataclasses.dataclass(frozen=True)
class ConfigTable:
    """One per-configuration table, as formatted text cells.

    Args:
        kind: ``networks``, ``cv`` or ``epochs``.
        label: Machine label.
        workload: Workload name.
        size: Workload size.
        title: One line naming what the table shows.
        columns: Headings.
        rows: Rows of cells.
        numeric: Columns (by index) aligned right.
        best: Sentences naming the best configuration(s), from the numbers in the table.
        note: What the figures are (shown under the table).
        curves: For ``epochs``: ``(name, [(training seconds, accuracy), ...])`` per trial.
        strategy: The reference run's strategy (where the quality figures come from).
    """

    kind: str
    label: str
    workload: str
    size: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[int, ...] = ()
    best: tuple[str, ...] = ()
    note: str = ""
    curves: tuple[tuple[str, tuple[tuple[float, float], ...]], ...] = ()
    strategy: str = ""


def _measured(runs: Sequence[Any]) -> list[Any]:
    return [r for r in runs if r.status in ("complete", "interrupted") and r.ok_trials]


def reference_run(runs: Sequence[Any]) -> Any | None:
    """The run whose quality figures a table shows: most finished trials, then fewest processes.

    Args:
        runs: Runs of one workload on one machine.
    """
    measured = _measured(runs)
    if not measured:
        return None
    return sorted(measured, key=lambda r: (-len(r.ok_trials), r.processes, r.order))[0]


def _median(values: Sequence[Any]) -> float | None:
    vals = [v for v in map(number, values) if v is not None]
    return statistics.median(vals) if vals else None


# ---------------------------------------------------------------- networks (Lorenz)


def _is_network(t: Any) -> bool:
    return isinstance(t.config.get("grid"), str) and isinstance(t.config.get("nodes"), list)


def networks_table(runs: Sequence[Any]) -> ConfigTable | None:
    """RMSE and trial time per network, grouped by grid; the lowest RMSE of each grid marked.

    Args:
        runs: Runs of one workload on one machine whose trials declare ``grid`` and ``nodes``.
    """
    ref = reference_run(runs)
    if ref is None:
        return None
    trials = [t for t in ref.ok_trials if _is_network(t) and ok(t.quality.get("rmse"))]
    if not trials:
        return None
    measured = _measured(runs)
    times = {r.strategy: {t.id: t.wall_s for t in r.ok_trials} for r in measured}
    grids: dict[str, list] = {}
    for t in trials:
        grids.setdefault(t.config["grid"], []).append(t)
    overall = min(trials, key=lambda t: float(t.quality["rmse"]))
    rows, best = [], []
    for grid, members in grids.items():
        grid_best = min(members, key=lambda t: float(t.quality["rmse"]))
        for t in members:
            mark = BEST if t is overall else (f"best of {grid} grid" if t is grid_best else "")
            rows.append((
                grid, "-".join(map(str, t.config["nodes"])), fmt.plain(t.extra.get("params")),
                fmt.num(t.quality["rmse"], 4),
                *[fmt.seconds(times[s].get(t.id)) for s in times], mark,
            ))
        best.append(f"{grid} grid: lowest RMSE {fmt.num(grid_best.quality['rmse'], 4)} with network "
                    f"{'-'.join(map(str, grid_best.config['nodes']))}")
    columns = ("grid", "hidden layers", "params", "RMSE", *[f"trial s {s}" for s in times], "best")
    return ConfigTable(
        kind="networks", label=ref.label, workload=ref.workload, size=ref.size,
        title=f"{ref.workload} ({ref.size}) on {ref.label}: RMSE and trial time per network",
        columns=columns, rows=tuple(rows), numeric=tuple(range(2, len(columns) - 1)), best=tuple(best),
        note=(f"RMSE on the test window, from {ref.strategy} (every strategy trains the same seeded networks). "
              "Trial time: the whole trial (first epoch with tracing, the other epochs, predicting the test rows)."),
        strategy=ref.strategy,
    )


# ---------------------------------------------------------------- cross-validation (pose, lstm)


def _is_fold(t: Any) -> bool:
    return isinstance(t.extra.get("config_key"), str) and ok(t.extra.get("fold", t.config.get("fold")))


def cv_table(runs: Sequence[Any]) -> ConfigTable | None:
    """Mean and std of fold accuracy, folds done and time per fold per configuration; the best
    mean CV accuracy of each group marked and named.

    A group (``cv_group``: the task a configuration is searched for) with one configuration has
    nothing to compare, so nothing in it is marked.

    Args:
        runs: Runs of one workload on one machine whose trials declare ``config_key`` and ``fold``.
    """
    ref = reference_run(runs)
    if ref is None:
        return None

    def key(t: Any) -> tuple[str, str]:
        return str(t.extra.get("cv_group") or ""), t.extra["config_key"]

    groups: dict[tuple[str, str], list] = {}
    for t in ref.ok_trials:
        if _is_fold(t) and ok(t.quality.get("accuracy")):
            groups.setdefault(key(t), []).append(t)
    if not groups:
        return None
    measured = _measured(runs)
    stats = {}
    for k, members in groups.items():
        accs = [float(t.quality["accuracy"]) for t in members]
        declared = number(members[0].extra.get("folds", members[0].config.get("folds")))
        stats[k] = {"mean": statistics.fmean(accs), "std": statistics.pstdev(accs) if len(accs) >= 2 else None,
                    "done": len(accs), "folds": int(declared) if declared else len(accs)}
    best_of: dict[str, tuple[str, str]] = {}
    for k, st in stats.items():
        if k[0] not in best_of or st["mean"] > stats[best_of[k[0]]]["mean"]:
            best_of[k[0]] = k
    multi_group = len(best_of) > 1
    sizes = {g: sum(1 for k in stats if k[0] == g) for g in best_of}
    best_of = {g: k for g, k in best_of.items() if sizes[g] > 1}  # one configuration: nothing was compared
    rows = []
    for k, members in groups.items():
        st, t = stats[k], members[0]
        hidden = t.config.get("hidden")
        per_fold = [fmt.seconds(_median([x.wall_s for x in r.ok_trials if _is_fold(x) and key(x) == k]))
                    for r in measured]
        rows.append((
            *((k[0],) if multi_group else ()), k[1],
            "-".join(map(str, hidden)) if isinstance(hidden, list) else fmt.DASH,
            fmt.plain(t.extra.get("global_batch", t.config.get("batch"))),
            fmt.num(st["mean"], 3), fmt.num(st["std"], 2), f"{st['done']}/{st['folds']}", *per_fold,
            BEST if best_of.get(k[0]) == k else "",
        ))
    best = []
    for group, k in best_of.items():
        st = stats[k]
        spread = f" ± {fmt.num(st['std'], 2)}" if st["std"] is not None else ""
        best.append(f"best by mean CV accuracy{f' ({group})' if multi_group else ''}: {k[1]}, "
                    f"{fmt.num(st['mean'], 3)}{spread} over {st['done']} of {st['folds']} folds")
    columns = (*(("group",) if multi_group else ()), "configuration", "hidden layers", "batch", "mean accuracy",
               "std", "folds done", *[f"time/fold {r.strategy}" for r in measured], "best")
    off = 1 if multi_group else 0
    return ConfigTable(
        kind="cv", label=ref.label, workload=ref.workload, size=ref.size,
        title=f"{ref.workload} ({ref.size}) on {ref.label}: cross-validation per configuration",
        columns=columns, rows=tuple(rows), numeric=tuple(range(2 + off, len(columns) - 1)), best=tuple(best),
        note=(f"Fold accuracies from {ref.strategy} (every strategy runs the same seeded folds); std is the "
              "population standard deviation over the folds done; a failed fold is not done. Time/fold: median "
              "trial time (training all epochs and scoring the fold)."),
        strategy=ref.strategy,
    )


# ---------------------------------------------------------------- epochs (IMDB)


def _is_epochs(t: Any) -> bool:
    return isinstance(t.extra.get("epoch_s"), list) and (
        isinstance(t.extra.get("epoch_samples_per_s"), list) or isinstance(t.extra.get("time_to_accuracy"), list))


def _at(values: Any, i: int) -> float | None:
    return number(values[i]) if isinstance(values, list) and i < len(values) else None


def epochs_tables(runs: Sequence[Any]) -> list[ConfigTable]:
    """Per run: every epoch's seconds (first apart), samples/s, accuracy, and the time-to-accuracy curve.

    Args:
        runs: Runs of one workload on one machine whose trials declare ``epoch_s`` and
            ``epoch_samples_per_s`` (or ``time_to_accuracy``).
    """
    out = []
    measured = sorted(_measured(runs), key=lambda r: (r.processes, r.order))
    for r in measured:
        trials = [t for t in r.ok_trials if _is_epochs(t)]
        if not trials:
            continue
        best_t = max((t for t in trials if ok(t.quality.get("accuracy"))), key=lambda t: float(t.quality["accuracy"]),
                     default=None)
        rows, curves, warm, steady, rates = [], [], [], [], []
        for t in trials:
            e = t.extra
            epochs = e["epoch_s"]
            curve = [(float(p["train_s"]), float(p["accuracy"])) for p in e.get("time_to_accuracy") or []
                     if isinstance(p, Mapping) and ok(p.get("train_s")) and ok(p.get("accuracy"))]
            if curve:
                curves.append((t.id, tuple(curve)))
            for i, sec in enumerate(epochs):
                last = i == len(epochs) - 1
                (warm if i == 0 else steady).append(number(sec))
                if i > 0:
                    rates.append(_at(e.get("epoch_samples_per_s"), i))
                rows.append((
                    t.id, "1 (warm-up)" if i == 0 else str(i + 1), fmt.seconds(sec),
                    fmt.num(_at(e.get("epoch_samples_per_s"), i)),
                    fmt.num(_at(e.get("epoch_train_accuracy"), i), 3), fmt.num(_at(e.get("epoch_heldout_accuracy"), i), 3),
                    fmt.seconds(curve[i][0]) if i < len(curve) else fmt.DASH,
                    fmt.num(t.quality.get("accuracy"), 3) if last else "",
                    BEST if last and t is best_t and len(trials) > 1 else "",
                ))
        best = []
        w, s, rate = _median(warm), _median(steady), _median(rates)
        if w is not None and s is not None:
            best.append(f"warm-up epoch {fmt.seconds(w)} against {fmt.seconds(s)} per later epoch (median), "
                        f"{fmt.num(rate)} samples/s once warm")
        if best_t is not None:
            best.append(f"test accuracy after training: {fmt.num(best_t.quality['accuracy'], 3)}"
                        + (f" (best of {len(trials)} trials: {best_t.id})" if len(trials) > 1 else ""))
        held = next((t.extra.get("heldout") for t in trials if ok(t.extra.get("heldout"))), None)
        columns = ("trial", "epoch", "seconds", "samples/s", "training accuracy", "held-out accuracy",
                   "training s so far", "test accuracy after training", "best")
        # the accuracy columns only where a trial declares them (a user's model: times and samples/s alone)
        declared = [True, True, True, True, any(isinstance(t.extra.get("epoch_train_accuracy"), list) for t in trials),
                    any(isinstance(t.extra.get("epoch_heldout_accuracy"), list) for t in trials), bool(curves),
                    best_t is not None, best_t is not None and len(trials) > 1]
        keep = [i for i, d in enumerate(declared) if d]
        accuracy = any(declared[4:8])
        out.append(ConfigTable(
            kind="epochs", label=r.label, workload=r.workload, size=r.size,
            title=f"{r.workload} ({r.size}) on {r.label}, {r.strategy}: time {'and accuracy ' if accuracy else ''}per epoch",
            columns=tuple(columns[i] for i in keep),
            rows=tuple(tuple(row[i] for i in keep) for row in rows),
            numeric=tuple(keep.index(i) for i in (2, 3, 4, 5, 6, 7) if i in keep), best=tuple(best),
            note=("Epoch 1 includes tracing and compiling (warm-up)."
                  + (" Training accuracy is what Keras logged during the epoch; held-out accuracy scores "
                     + (f"{int(held)} test reviews" if held else "test reviews")
                     + " after each epoch, outside the epoch's time; test accuracy after training scores the "
                       "whole test set." if accuracy else "")),
            curves=tuple(curves), strategy=r.strategy,
        ))
    return out


# ---------------------------------------------------------------- front


def config_tables(runs: Sequence[Any]) -> list[ConfigTable]:
    """Every per-configuration table the runs' trials declare the fields for, per machine and workload.

    Args:
        runs: :class:`reports.load.Run` objects (any machines and workloads).
    """
    groups: dict[tuple, list] = {}
    for r in runs:
        if getattr(r, "scaling", "strong") == "weak" and r.processes > 1:
            continue  # N copies of every trial (weak scaling): the Weak scaling section shows them
        groups.setdefault((r.label, r.workload, r.size), []).append(r)
    out: list[ConfigTable] = []
    for group in groups.values():
        for table in (networks_table(group), cv_table(group)):
            if table is not None:
                out.append(table)
        out.extend(epochs_tables(group))
    return out


__all__ = ["BEST", "ConfigTable", "config_tables", "cv_table", "epochs_tables", "networks_table", "reference_run"]
