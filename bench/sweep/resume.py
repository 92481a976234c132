"""Resuming a sweep: which earlier runs are carried over, which trials are kept, which run again.

:func:`plan_resume` is pure: given the earlier :class:`bench.model.results.Result` and what this
sweep asks for, it returns a :class:`ResumePlan` (or raises UsageError when the file does not match)
without touching any file or clock. :func:`merge_resumed` joins a resumed run to its earlier part.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

from bench.errors import UsageError
from bench.model import results
from bench.model.ratios import number, tree_cpu_seconds
from bench.model.results import Result, RunRecord, TrialRecord
from bench.measure.sampler import merge_sampler_cost
from bench.model.strategy import Strategy
from bench.sweep import memguard
from bench.sweep.repeats import trial_configs

IGNORED_OPTIONS = ("offline",)  # options that do not change what a trial measures


def strategy_key(workload: str, size: str, strategy: Strategy, repeat: int = 0) -> tuple:
    """The :attr:`RunRecord.key` a run of ``strategy`` has (what resume matches runs by).

    Args:
        workload: Workload name.
        size: Workload size.
        strategy: The strategy as requested.
        repeat: Which repeat of the strategy (``--repeat K``: 0 to K-1).
    """
    return RunRecord(workload=workload, size=size, strategy=strategy.to_dict(), repeat=repeat).key


@dataclasses.dataclass(frozen=True)
class StrategyResume:
    """What resume gives one strategy.

    Args:
        old: The earlier run to continue (None: every trial runs, nothing is joined).
        kept: Its finished trials that stay, by id (same config, same workload version).
        decisions: Decisions to record when the strategy runs (``superseded`` or ``rerun``).
        superseded: ``(old version, new version)`` when a workload version change drops the old run.
    """

    old: RunRecord | None = None
    kept: Mapping[str, TrialRecord] = dataclasses.field(default_factory=dict)
    decisions: tuple[Mapping[str, Any], ...] = ()
    superseded: tuple[int, int] | None = None


NOTHING_KEPT = StrategyResume()


@dataclasses.dataclass(frozen=True)
class ResumePlan:
    """The outcome of :func:`plan_resume`.

    Args:
        carried: Earlier runs of strategies this sweep does not run, kept unchanged (file order).
        strategies: What each requested strategy resumes, by its run key (:func:`strategy_key`).
    """

    carried: tuple[RunRecord, ...] = ()
    strategies: Mapping[tuple, StrategyResume] = dataclasses.field(default_factory=dict)

    def of(self, key: tuple) -> StrategyResume:
        """What the strategy with run key ``key`` resumes (nothing kept if it had no earlier run).

        Args:
            key: A :func:`strategy_key`.
        """
        return self.strategies.get(key, NOTHING_KEPT)


def _same_config(a: Mapping, b: Mapping) -> bool:
    # canonical text of two configs, compared (not a record written anywhere): 1 and 1.0 or true differ
    return results.canonical(a) == results.canonical(b)


def compared_options(options: Mapping[str, Any]) -> dict:
    """The options that change what a trial measures (``offline`` left out).

    Args:
        options: Workload options.
    """
    return {k: v for k, v in options.items() if k not in IGNORED_OPTIONS}


def _fmt_options(options: Mapping[str, Any]) -> str:
    opts = compared_options(options)
    return ", ".join(f"{k}={v}" for k, v in sorted(opts.items())) or "none"


def plan_resume(
    old: Result,
    *,
    workload: str,
    size: str,
    version: int,
    strategies: Sequence[Strategy],
    configs: Sequence[Mapping[str, Any]],
    options: Mapping[str, Any],
    data_source: str | None,
    machine: Mapping[str, Any],
    force: bool = False,
    where: str = "the resumed file",
    files: Mapping[str, Mapping[str, str]] | None = None,
    repeats: int = 1,
) -> ResumePlan:
    """Checks an earlier result against this sweep and plans what to carry, keep and run.

    Args:
        old: The earlier (possibly interrupted) result.
        workload: This sweep's workload name.
        size: Its size.
        version: The workload's version now (a different one runs every trial of a run again).
        strategies: The strategies this sweep runs.
        configs: The trial configs this sweep runs (each with an ``id``).
        options: The workload options this sweep runs with.
        data_source: The data source this sweep would use (``data_info(...)["source"]``).
        machine: This machine's fingerprint.
        force: Resume a file measured on another machine anyway.
        where: How messages name the file.
        files: The files this sweep depends on, by role, with their SHA-256
            (:func:`bench.model.workload.source_files`); one the earlier sweep recorded with
            other contents is refused.
        repeats: Repeats of each strategy this sweep runs (each is its own run, keyed by repeat).

    Returns:
        The runs carried over and, per strategy, the earlier run and its trials kept.

    Raises:
        UsageError: other workload or size, other machine (unless ``force``), other options or data.
    """
    mine = (workload, size)
    theirs = sorted({(r.workload, r.size) for r in old.runs} | {
        (d.get("workload"), d.get("size")) for d in old.decisions
        if d.get("kind") == "sweep" and isinstance(d.get("workload"), str) and isinstance(d.get("size"), str)
    })
    if theirs and theirs != [mine]:
        held = ", ".join(f"{w} {s}" for w, s in theirs)
        raise UsageError(
            f"{where} holds {held} results, not {workload} {size}: resume with the same workload "
            "and --size, or drop --resume"
        )
    if not force and old.machine and not memguard.same_machine(old.machine, machine):
        raise UsageError(
            f"{where} was measured on another machine ({old.machine.get('hostname')}, {old.machine.get('cpu')}); "
            "resuming would mix two machines' timings (use --force to resume anyway)"
        )
    _check_files(old, files or {}, where)
    keys = {strategy_key(workload, size, s, r): s for r in range(max(1, repeats)) for s in strategies}
    ids = {c["id"] for c in configs}
    for run in old.runs:
        if run.key not in keys or not run.trials:
            continue
        recorded = run.options  # None in files written before options were recorded
        if recorded is not None and compared_options(recorded) != compared_options(options):
            raise UsageError(
                f"{where} was run with workload options {_fmt_options(recorded)}; this command has "
                f"{_fmt_options(options)}: resume with the same --opt/--data/--model"
            )
        if recorded is None and not any(t.id in ids for t in run.trials):
            raise UsageError(
                f"none of the trials in {where} is a trial of this command (other --opt or --data?): "
                "resume with the same options"
            )
        source = (run.data or {}).get("source")
        if source and data_source and source != data_source:
            raise UsageError(
                f"{where} used {source} data but this command would use {data_source} data: "
                "resume where the same data is available (see --data/--offline)"
            )
    carried = tuple(r for r in old.runs if r.key not in keys)
    plans = {key: _strategy_resume(old, key, strategy, version, configs) for key, strategy in keys.items()}
    return ResumePlan(carried=carried, strategies=plans)


def recorded_files(old: Result) -> dict[str, Mapping[str, str]]:
    """The files an earlier result's sweeps recorded (``files`` of its ``sweep``/``resume``
    decisions), by role; the latest record of a role wins.

    Args:
        old: The earlier result.
    """
    out: dict[str, Mapping[str, str]] = {}
    for d in old.decisions:
        if d.get("kind") in ("sweep", "resume") and isinstance(d.get("files"), Mapping):
            out.update({str(k): v for k, v in d["files"].items() if isinstance(v, Mapping)})
    return out


def _check_files(old: Result, files: Mapping[str, Mapping[str, str]], where: str) -> None:
    """Refuses a resume whose workload file, model file or data changed since the earlier sweep."""
    for role, then in recorded_files(old).items():
        now = files.get(role)
        if now is None or not then.get("sha256") or now.get("sha256") == then.get("sha256"):
            continue
        raise UsageError(
            f"{where} was measured with {role} file {then.get('path')} (sha256 {str(then.get('sha256'))[:12]}), "
            f"but {now.get('path')} has changed since (sha256 {str(now.get('sha256'))[:12]}): resuming would mix "
            "two versions' timings; run it anew without --resume"
        )


def _strategy_resume(
    old: Result, key: tuple, strategy: Strategy, version: int, configs: Sequence[Mapping[str, Any]]
) -> StrategyResume:
    """The earlier run of one strategy and its trials that can be kept (finished, same config and version)."""
    run = next((r for r in old.runs if r.key == key), None)
    if run is None:
        return NOTHING_KEPT
    if run.workload_version != version:
        return StrategyResume(
            decisions=({
                "kind": "resume", "action": "superseded", "strategy": strategy.to_dict(),
                "reason": f"workload version {run.workload_version} -> {version}: every trial runs again",
                "run": results.plain(run),
            },),
            superseded=(run.workload_version, version),
        )
    by_id = {c["id"]: c for c in trial_configs(configs, strategy)}  # weak scaling: its copies too
    kept = {t.id: t for t in run.trials if t.ok and t.id in by_id and _same_config(t.config, by_id[t.id])}
    dropped = [t for t in run.trials if t.id not in kept]
    decisions: tuple = ()
    if dropped:  # failed (or changed) trials run again; their old records stay in the file
        decisions = ({
            "kind": "resume", "action": "rerun", "strategy": strategy.to_dict(),
            "trials": [results.plain(t) for t in dropped],
        },)
    return StrategyResume(old=run, kept=kept, decisions=decisions)


def merge_resumed(
    old: RunRecord,
    new: RunRecord,
    new_wall: float,
    summarize: Callable[[RunRecord, float, float], Mapping[str, Any]],
) -> RunRecord:
    """Joins a resumed run to the earlier part: times add up, the timelines follow each other.

    Args:
        old: The earlier part (as in the resumed file).
        new: This sweep's part (it holds the kept trials too).
        new_wall: Seconds this sweep's part took.
        summarize: ``summarize(run, wall_s, compute_offset_s)``: the run summary of a run.
    """
    old_wall = number(old.summary.wall_s) or 0.0
    kept = {t.id for t in old.trials} & {t.id for t in new.trials}
    shift = max((s.get("t", 0.0) for s in old.samples if isinstance(s.get("t"), (int, float))), default=0.0)
    samples = tuple(old.samples) + tuple({**s, "t": round(s.get("t", 0.0) + shift, 4)} for s in new.samples)
    workers = tuple(old.workers) + tuple(new.workers)
    wall = old_wall + new_wall
    merged = dataclasses.replace(new, workers=workers)
    summary = dict(summarize(merged, wall, number(old.summary.compute_offset_s) or 0.0))
    cpu_old = number(old.summary.cpu_s) or 0.0
    cpu_new = tree_cpu_seconds(new.samples)
    if cpu_new is None:
        cpu_new = sum(t.cpu_s for t in new.trials if t.id not in kept)
    summary["cpu_s"] = cpu_old + cpu_new
    summary["cpu_wall_ratio"] = summary["cpu_s"] / wall if wall > 0 else None
    summary["per_process_cpu_wall_ratio"] = (
        sum(t.cpu_s for t in new.trials) / int(new.strategy["processes"]) / wall if wall > 0 else None
    )
    for key in ("peak_tree_rss_bytes", "peak_tree_uss_bytes"):
        vals = [v for v in (getattr(old.summary, key), summary.get(key)) if number(v) is not None]
        summary[key] = max(vals, default=None)
    summary["resumed_trials"] = len(kept)
    summary.update(merge_sampler_cost(old.summary, new.summary))
    summary["segments"] = [{"t0": 0.0, "wall_s": old_wall}, {"t0": shift, "wall_s": new_wall}]
    note = f"resumed: {len(kept)} trials kept from an earlier run ({old_wall:.1f} s), {len(new.trials) - len(kept)} run now"
    return dataclasses.replace(merged, samples=samples, summary=summary, notes=tuple(new.notes) + (note,))
