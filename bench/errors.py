"""The errors the command line prints as one line, ``error: <message>``, and their exit statuses.

``UsageError`` (exit 2) is bad input from a user or a file. ``FileWriteError`` (exit 2, also an
OSError) is an output that could not be written (a full disk, a device given as a path), named with
its path. ``ResultWriteError`` (exit 74) is a result file that could not be written mid-sweep.
:func:`shown` quotes and bounds a value echoed in an error line. ``WorkerStartError`` is raised
by an engine's ``start()`` when no worker could start; the runner turns it into failed trials.
"""

from __future__ import annotations

from typing import Iterable

from bench.text import SHOWN_CHARS, printable


class UsageError(Exception):
    """Bad input from a user or a file: printed once as ``error: ...`` with exit status 2.

    The message is one line and names the bad value and, where there is a choice,
    the valid choices.

    Args:
        message: What is wrong; whitespace (newlines included) is collapsed to single spaces,
            and every control character left (ESC, C1, bidi overrides...) is escaped
            (:func:`bench.text.printable`), so the line is safe to print on a terminal.
    """

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(printable(" ".join(str(message).split()), limit=None))


class ResultFileError(UsageError):
    """A result file that cannot be read: corrupt, truncated, of another tool or newer schema."""


class FileWriteError(UsageError, OSError):
    """A file the tool was asked to write could not be written (exit 2); nothing partial is left.

    Raised by :mod:`bench.model.safefile` for a disk that is full, a directory that is read-only, or a
    path that is not a regular file. It is also an OSError (``errno``, ``strerror`` and
    ``filename`` are set where known), so code that handles OSError keeps working.

    Args:
        message: One line naming the path and why.
        errno: The OSError's errno, if one caused it.
        strerror: Why, in a few words (``No space left on device``).
        filename: The path.
    """

    def __init__(self, message: str, errno: int | None = None, strerror: str | None = None, filename=None):
        UsageError.__init__(self, message)
        self.errno, self.strerror, self.filename = errno, strerror, filename

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


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


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """A value as an error message quotes it: in quotes, control characters escaped, bounded.

    The one helper for echoing a user's or a file's value (a path, a label) in an ``error:`` line:
    a 10,000-character ``--label`` or path shows as its first ~200 characters and ``…``.

    Args:
        value: Anything; ``str(value)`` is quoted the way ``repr`` quotes a string.
        limit: The most characters returned.
    """
    return printable(repr(str(value)), limit)
