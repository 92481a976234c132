"""The errors the command line prints as one line, ``error: <message>``, and their exit statuses.

``UsageError`` (exit 2) is bad input from a user or a file. ``ResultWriteError`` (exit 74) is a
result file that could not be written mid-sweep. ``WorkerStartError`` is raised by an engine's
``start()`` when no worker could start; the runner turns it into failed trials.
"""

from __future__ import annotations

from typing import Iterable


class UsageError(Exception):
    """Bad input from a user or a file: printed once as ``error: ...`` with exit status 2.

    The message is one line and names the bad value and, where there is a choice,
    the valid choices.

    Args:
        message: What is wrong; whitespace (newlines included) is collapsed to single spaces.
    """

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class ResultFileError(UsageError):
    """A result file that cannot be read: corrupt, truncated, of another tool or newer schema."""


class ResultWriteError(UsageError):
    """A result file that could not be written (disk full, permissions changed mid-sweep).

    The file on disk still holds the last complete write: writes are atomic.
    """

    exit_code = 74  # EX_IOERR


class WorkerStartError(RuntimeError):
    """No worker of a pool could start (TensorFlow import failed, startup time limit...).

    Args:
        message: Why, with the last worker's stderr tail; collapsed to one line.
    """

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def choices_error(kind: str, value: object, choices: Iterable[str]) -> UsageError:
    """Builds the standard "unknown X" error.

    Args:
        kind: What was asked for, e.g. ``"workload"``.
        value: The bad value as the user gave it.
        choices: The valid names.

    Returns:
        A UsageError reading ``unknown workload 'x' (choose from: a, b)``.
    """
    return UsageError(f"unknown {kind} {str(value)!r} (choose from: {', '.join(sorted(choices))})")
