"""xpubench: how fast does my Keras/TensorFlow work run on 1..N processes, CPU or GPUs, here or there?

The public front. Importing it does not import TensorFlow or initialise NVML.
"""

from bench.errors import ResultFileError, UsageError
from bench.model.results import SCHEMA, Result, RunRecord, TrialError, TrialRecord, load, save
from bench.model.strategy import Strategy, parse_processes, usable_cores
from bench.model.workload import TrialContext, TrialOutput, Workload, get_workload, register, workload_names

__all__ = [
    "SCHEMA", "Result", "ResultFileError", "RunRecord", "Strategy", "TrialContext", "TrialError",
    "TrialOutput", "TrialRecord", "UsageError", "Workload", "get_workload", "load", "parse_processes",
    "register", "run_sweep", "save", "usable_cores", "workload_names",
]


def run_sweep(*args, **kwargs):
    """Runs a sweep (see :func:`bench.sweep.sweep.run_sweep`)."""
    from bench.sweep.sweep import run_sweep as _run_sweep

    return _run_sweep(*args, **kwargs)
