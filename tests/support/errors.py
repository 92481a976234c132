"""The one-line ``error: ...`` contract, as the front-door tests check it."""

from __future__ import annotations


def one_error_line(capsys, code: int, *needles: str) -> str:
    """Asserts that stderr holds exactly one ``error:`` line (no traceback) containing every needle,
    and that the exit status was 2; returns the line.

    Args:
        capsys: pytest's capsys fixture (stderr is read from it).
        code: The exit status the command returned.
        *needles: Texts the line must contain.
    """
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.rstrip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert code == 2, (code, lines[0])
    return lines[0]
