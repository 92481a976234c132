"""The one error type the command line prints: ``error: <message>``, exit status 2."""

from __future__ import annotations

from typing import Iterable


class UsageError(Exception):
    """Bad input from a user or a file: printed once as ``error: ...`` with exit status 2.

    The message is one line and names the bad value and, where there is a choice,
    the valid choices.
    """

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class ResultFileError(UsageError):
    """A result file that cannot be read: corrupt, truncated, of another tool or newer schema."""


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
