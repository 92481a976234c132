"""The benchmark suite is skipped by the normal test run.

It runs when asked for: ``pytest tests/benchmarks ...`` (a path inside this directory on the
command line) or ``--benchmark-only``. Otherwise every test here is skipped with the command to
run them, so ``pytest`` / ``tox`` stay fast.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
RUN_IT = "benchmark suite: run it with `pytest tests/benchmarks --benchmark-only --benchmark-json=out.json`"


def suite_requested(args, invocation_dir, benchmark_only: bool) -> bool:
    """True when the command line asks for the benchmark suite.

    Args:
        args: Positional command-line arguments (``config.args``: paths or node ids).
        invocation_dir: The directory pytest was started in (relative paths are resolved there).
        benchmark_only: ``--benchmark-only`` was given.
    """
    if benchmark_only:
        return True
    for arg in args:
        path = Path(invocation_dir, str(arg).split("::", 1)[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skips this directory's tests unless the suite was asked for.

    Args:
        config: The pytest config.
        items: Every collected test of the session (only this directory's are touched).
    """
    if suite_requested(config.args, config.invocation_params.dir, bool(config.getoption("benchmark_only", False))):
        return
    skip = pytest.mark.skip(reason=RUN_IT)
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(skip)
