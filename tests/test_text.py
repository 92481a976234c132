"""bench.text: what a terminal may be sent (control characters escaped, length bounded)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from bench.errors import UsageError
from bench.text import ELLIPSIS, SHOWN_CHARS, is_unsafe, printable, printable_lines, shell_join, shell_quote

# (raw, how it is shown)
HOSTILE = [
    ("\x1b[2J", "\\x1b[2J"),  # clear screen
    ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),  # window title (OSC ... BEL)
    ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),  # colour
    ("\x9b2J", "\\x9b2J"),  # one-byte CSI (C1)
    ("a\rb", "a\\rb"),  # carriage return: overwrites the line
    ("a\nb\tc", "a\\nb\\tc"),
    ("\x00\x08\x7f", "\\x00\\x08\\x7f"),  # NUL, backspace, DEL
    ("abc\u202edef", "abc\\u202edef"),  # right-to-left override
    ("\u2066x\u2069", "\\u2066x\\u2069"),  # bidi isolates
    ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),
    ("line\u2028sep", "line\\u2028sep"),
    ("\U000e0041tag", "\\U000e0041tag"),  # a tag character (format, outside the BMP)
]


@pytest.mark.parametrize("raw, shown", HOSTILE)
def test_control_characters_are_escaped_recognisably(raw, shown):
    assert printable(raw) == shown
    assert printable(shown) == shown  # idempotent: an escaped text is printable as it is


@pytest.mark.parametrize("text", ["plain ascii", "Ünïcødé × – “quotes” 日本語 🚀", "C:\\path\\x1b", "a\u00a0b", ""])
def test_printable_text_passes_unchanged(text):
    assert printable(text) == text


def test_no_character_of_any_code_point_survives_unescaped():
    every = "".join(chr(c) for c in range(0x110000))
    out = printable(every, limit=None)
    assert not [c for c in out if is_unsafe(c)]
    assert not any(0x80 <= ord(c) <= 0x9F or ord(c) < 0x20 or ord(c) == 0x7F for c in out)
    assert "\\x1b" in out and "\\u202e" in out and "é" in out


def test_length_is_bounded_with_an_ellipsis():
    assert printable("x" * SHOWN_CHARS) == "x" * SHOWN_CHARS
    long = printable("x" * 10_000)
    assert len(long) == SHOWN_CHARS and long.endswith(ELLIPSIS)
    assert printable("abcdef", limit=4) == "abc" + ELLIPSIS
    assert printable("x" * 500, limit=None) == "x" * 500


def test_bound_counts_escapes_and_never_shows_half_of_one():
    out = printable("a" * 197 + "\x1b[2J", limit=SHOWN_CHARS)
    assert len(out) <= SHOWN_CHARS and out.endswith(ELLIPSIS)
    assert out == "a" * 197 + ELLIPSIS  # "\x1b" does not fit whole before the ellipsis
    assert printable("\x1b" * 1000, limit=9) == "\\x1b\\x1b" + ELLIPSIS


def test_a_huge_value_costs_only_its_shown_prefix():
    huge = "\x1b" * 50_000_000  # escaping all of it would take many seconds and GBs
    assert printable(huge) == "\\x1b" * 49 + ELLIPSIS


def test_non_strings_are_shown_by_their_text():
    assert printable(None) == "None" and printable(3.5) == "3.5"
    from pathlib import Path

    assert printable(Path("/tmp/a\x1bb")) == "/tmp/a\\x1bb"


def test_printable_lines_keeps_newlines_only():
    assert printable_lines("one\x1b[2J\ntwo\r") == "one\\x1b[2J\ntwo\\r"


def test_usage_error_messages_are_escaped_at_the_source():
    err = UsageError("cannot read '/tmp/\x1b]0;pwned\x07.json' \u202e")
    assert str(err) == "cannot read '/tmp/\\x1b]0;pwned\\x07.json' \\u202e"
    assert not any(is_unsafe(c) for c in str(err))


@pytest.mark.parametrize("arg", ["plain", "with space", "it's", "lab\x1b[2J\x1b]0;t\x07", "back\\slash'\x9b", "\u202eevil\r\n"])
def test_shell_quote_round_trips_through_bash(arg):
    quoted = shell_quote(arg)
    assert not any(is_unsafe(c) for c in quoted)
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash here")
    out = subprocess.run([bash, "-c", f"printf %s {quoted}"], capture_output=True, check=True).stdout
    assert out == arg.encode()


def test_shell_join_quotes_each_word():
    assert shell_join(["bench", "run", "a b", "--label", "x\x1by"]) == "bench run 'a b' --label $'x\\x1by'"
