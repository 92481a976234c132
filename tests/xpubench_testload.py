"""A test-only workload whose trials succeed or fail on purpose (importable by workers).

Trial plan: option ``plan`` is a comma-separated list of kinds, one trial each:
``ok`` (sleeps ``sleep`` seconds, default 0.1, and reports a score), ``raise`` (ValueError),
``kill`` (SIGKILLs its own worker), ``exit`` (worker exits with status 3) and ``hang`` (sleeps an
hour). Trial ids are ``t<index>-<kind>``. Workers find this module through PYTHONPATH, which the
pool builds from the parent's sys.path (tests/ is on it under pytest); they load the class by
its module path, so only the parent needs it registered: call :func:`enable` (a subprocess) or
monkeypatch ``bench.model.workload._REGISTRY`` (a test, so other tests never see it).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any, Mapping

from bench.model.workload import TrialContext, TrialOutput, Workload, register

DEFAULT_PLAN = "ok,raise,kill,ok,hang,ok,ok"
_RUN_IN_THIS_IMPORT = [0]  # trials run since this module was imported (a worker's per-process workload state)


class FaultyWorkload(Workload):
    """Trials that succeed quickly or fail in a chosen way."""

    name = "xpubench_testload"
    options = ("plan", "sleep")
    description = "test-only: trials that succeed or fail on purpose"
    version = 1
    quality_key = "score"
    throughput_unit = "items/s"

    def trials(self, size: str, options: Mapping[str, Any] | None = None) -> list[dict]:
        plan = str((options or {}).get("plan", DEFAULT_PLAN)).split(",")
        return [{"id": f"t{i}-{kind}", "kind": kind, "index": i} for i, kind in enumerate(plan)]

    def data_info(self, size: str, options=None) -> dict:
        return {"source": "generated", "name": "none"}

    def run_trial(self, config: Mapping[str, Any], ctx: TrialContext) -> TrialOutput:
        kind = config["kind"]
        if kind == "raise":
            raise ValueError(f"boom from trial {config['id']}")
        if kind == "kill":
            print(f"trial {config['id']} about to be killed", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        if kind == "exit":
            print(f"trial {config['id']} exiting with status 3", file=sys.stderr, flush=True)
            os._exit(3)
        if kind == "hang":
            time.sleep(3600)
        time.sleep(float(ctx.options.get("sleep", 0.1)))
        _RUN_IN_THIS_IMPORT[0] += 1
        return TrialOutput(quality={"score": float(config["index"])}, samples=100.0,
                           extra={"run_in_this_import": _RUN_IN_THIS_IMPORT[0]})


def enable() -> None:
    """Registers the workload under its name (for ``bench`` run in a subprocess)."""
    register(FaultyWorkload)


class OtherFaultyWorkload(FaultyWorkload):
    """The same trials under a second name: a suite of two workloads without TensorFlow models."""

    name = "xpubench_testload_b"
