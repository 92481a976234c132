"""The order a sweep runs its strategies in, repeats included, and the trials a strategy runs.

``--repeat K`` measures every strategy K times. :func:`run_order` interleaves them, strategy-major
within each round (1p, 2p, 1p, 2p, ...), so a slow drift of the machine (another job starting,
the CPU warming) spreads over every strategy instead of landing on one. Each (strategy, repeat)
is its own run (bench.model.results.RunRecord ``repeat``), so resume matches and keeps the
trials of each repeat like those of any run. The loop does not assume anything about worker
pools: a run gets its pool from the engine, fresh or reused.

:func:`trial_configs` is what a strategy runs: the workload's trials (strong scaling), or with
``scaling: weak`` at N processes every trial N times (N times the work), each copy its own trial
id (``ID@copyK``; copy 0 keeps the trial's id) and the trial's seed (the same work), ordered trial by trial (copy 0..N-1 of the first
trial, then of the second...) so that N idle workers each take one copy of the same trial.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from bench.model.strategy import Strategy, scaling_of


def run_order(strategies: Sequence[Strategy], repeats: int = 1) -> list[tuple[Strategy, int]]:
    """``(strategy, repeat)`` in the order a sweep runs them: every strategy once per round.

    Args:
        strategies: The sweep's strategies, in order.
        repeats: Measurements of each strategy (K >= 1).
    """
    return [(s, r) for r in range(max(1, int(repeats))) for s in strategies]


def copy_id(trial_id: str, copy: int) -> str:
    """The id of copy ``copy`` of a trial in a weak-scaling run (copy 0 keeps the id).

    Args:
        trial_id: The workload's trial id.
        copy: Which copy (0 to N-1).
    """
    return trial_id if copy == 0 else f"{trial_id}@copy{copy}"


def original_id(trial_id: str) -> str:
    """The workload's trial id of a weak-scaling copy (the id itself for any other trial).

    Args:
        trial_id: A trial id, perhaps ``ID@copyK``.
    """
    head, sep, tail = str(trial_id).rpartition("@copy")
    return head if sep and tail.isdigit() else str(trial_id)


def trial_configs(configs: Sequence[Mapping], strategy: Strategy | Mapping) -> tuple[dict, ...]:
    """The trials one run of ``strategy`` runs.

    Args:
        configs: The workload's trial configs for the size and options.
        strategy: The strategy (its ``processes`` and ``scaling``).

    Returns:
        ``configs`` for strong scaling; for weak scaling at N processes, N copies of each
        (N x the trials), each copy with its own id (:func:`copy_id`), trial by trial.
    """
    processes = strategy.processes if isinstance(strategy, Strategy) else int(strategy.get("processes", 1))
    if scaling_of(strategy) != "weak" or processes <= 1:
        return tuple(dict(c) for c in configs)
    return tuple({**c, "id": copy_id(c["id"], k)} for c in configs for k in range(processes))


__all__ = ["copy_id", "original_id", "run_order", "trial_configs"]
