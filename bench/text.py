"""Strings made safe for a terminal: the one place that decides what a console line may contain.

Labels, paths, trial ids, error messages and notes come from result files and the command line;
printed raw, an ESC sequence in one of them clears the screen, retitles the window or recolours
everything after it. :func:`printable` escapes every character a terminal could act on and bounds
the length shown (the full value stays in the file):

- C0 controls and DEL (``\\x1b``, ``\\x07``, ``\\r``, ``\\n``...) and C1 controls (``\\x9b``, the
  one-byte CSI...) become Python-style escapes (``\\x1b``, ``\\n``);
- Unicode format characters (bidi overrides and isolates such as U+202E, zero-width characters),
  line/paragraph separators, surrogates, private-use and unassigned code points become ``\\uXXXX``;
- more than ``limit`` characters end in ``…``.

Every printable character, non-ASCII ones included (``×``, ``–``, accents), passes unchanged, and
so does a backslash, so an escaped string is recognisable and escaping is idempotent.
:func:`shell_join` quotes a command line to print (``resume with: ...``) with ``$'...'`` for an
argument holding a control character, so the printed line is safe and still pastes into bash/zsh.

Importing this module imports nothing beyond the standard library.
"""

from __future__ import annotations

import re
import shlex
import unicodedata
from typing import Iterable

SHOWN_CHARS = 200  # the longest value shown on a console line or in a table cell
ELLIPSIS = "…"

# Characters never printed raw: every C0/C1 control and DEL, and the Unicode categories below.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_ASCII_SAFE = re.compile(r"[\x20-\x7e]*\Z")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def is_unsafe(ch: str) -> bool:
    """True when a terminal could act on this character (it is printed escaped).

    Args:
        ch: One character.
    """
    o = ord(ch)
    if 0x20 <= o < 0x7F:
        return False
    if o < 0x20 or 0x7F <= o <= 0x9F:
        return True
    return unicodedata.category(ch) in _UNSAFE_CATEGORIES


def _escape_char(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    o = ord(ch)
    if o <= 0xFF:
        return f"\\x{o:02x}"
    if o <= 0xFFFF:
        return f"\\u{o:04x}"
    return f"\\U{o:08x}"


def printable(value: object, limit: int | None = SHOWN_CHARS) -> str:
    """The text of ``value`` as it may be printed: control characters escaped, length bounded.

    Args:
        value: Anything; ``str(value)`` is shown (None shows as ``None``).
        limit: The most characters returned (an escape counts by its length); a longer text is
            cut and ends in ``…``. None: no bound (for whole lines whose parts are bounded).

    Returns:
        A string without any character :func:`is_unsafe` flags.
    """
    text = value if isinstance(value, str) else str(value)
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit!r}")
    if _ASCII_SAFE.match(text) and (limit is None or len(text) <= limit):
        return text
    # escaping only lengthens: no more than limit + 1 raw characters can matter
    raw = text if limit is None else text[: limit + 1]
    pieces: list[str] = []
    size = 0
    for ch in raw:
        piece = _escape_char(ch) if is_unsafe(ch) else ch
        pieces.append(piece)
        size += len(piece)
        if limit is not None and size > limit:
            break
    out = "".join(pieces)
    if limit is not None and (size > limit or len(text) > len(raw)):
        # cut before the piece that overflows, so no escape is shown half
        while pieces and size > limit - 1:
            size -= len(pieces.pop())
        out = "".join(pieces) + ELLIPSIS
    return out


def printable_lines(text: object, limit: int | None = None) -> str:
    """Like :func:`printable`, but newlines stay newlines (for multi-line messages).

    Args:
        text: The text.
        limit: Bound of each line (None: unbounded).
    """
    return "\n".join(printable(line, limit) for line in str(text).split("\n"))


def shell_quote(arg: str) -> str:
    """One shell word for ``arg``: shlex quoting, or ``$'...'`` when it holds an unsafe character.

    In ``$'...'`` an unsafe character is written as its bytes (``\\xHH``), so bash and zsh give
    the program the same argument whatever the locale.

    Args:
        arg: A command-line argument.
    """
    arg = str(arg)
    if not any(is_unsafe(ch) for ch in arg):
        return shlex.quote(arg)
    body = []
    for ch in arg:
        if is_unsafe(ch):  # its bytes (UTF-8; an undecodable argv byte as itself): locale-independent
            body.append("".join(f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogateescape")))
        elif ch in "\\'":
            body.append("\\" + ch)
        else:
            body.append(ch)
    return "$'" + "".join(body) + "'"


def shell_join(args: Iterable[str]) -> str:
    """A command line to print: :func:`shell_quote` of each argument, joined by spaces.

    Args:
        args: The program and its arguments.
    """
    return " ".join(shell_quote(a) for a in args)
