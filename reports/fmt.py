"""Number formatting shared by the HTML report and the terminal tables (plain text, escaped later).

One formatter per kind of figure: :func:`seconds`, :func:`num`, :func:`times` (ratios and measured
factors), :func:`pct`, :func:`nbytes` (memory), :func:`money`.
"""

from __future__ import annotations

import math
from typing import Any

DASH = "–"
SHOWN_CHARS = 200  # the longest value a table cell shows (the full value stays in the result file)
TEXT_CHARS = 1000  # the longest string anywhere in a report (paragraphs built from several values)
ELLIPSIS = "…"


def clip(value: Any, limit: int = SHOWN_CHARS) -> str:
    """A string from a result file or the command line, as a report shows it: at most ``limit``
    characters, a longer one cut and ending in ``…`` (a 200 MB label shows as 200 characters).

    Args:
        value: Anything (``str(value)`` is shown).
        limit: The most characters returned (at least 1).
    """
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + ELLIPSIS


def ok(value: Any) -> bool:
    """True for a finite real number (not bool, not None, not NaN)."""
    if isinstance(value, bool) or value is None:
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def seconds(value: Any) -> str:
    """``0.0123`` → ``12.3 ms``; ``75`` → ``75.0 s``; ``4000`` → ``1.1 h``."""
    if not ok(value):
        return DASH
    v = float(value)
    if v < 1e-3:
        return f"{v * 1e6:.3g} µs"
    if v < 1:
        return f"{v * 1e3:.3g} ms"
    if v < 3600:
        return f"{v:.3g} s" if v < 100 else f"{v:.0f} s"
    return f"{v / 3600:.2f} h"


def num(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant figures (thousands separated when large)."""
    if not ok(value):
        return DASH
    v = float(value)
    if abs(v) >= 10 ** digits:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def times(value: Any, figures: int | None = None) -> str:
    """A ratio such as a speedup: ``1.54×``; with ``figures``, a measured factor to at most that many
    significant figures (two decimals below 10): ``1.76×``, ``21.4×``, ``4,010×``, ``162,000×``.

    Args:
        value: The ratio.
        figures: Significant figures for factors of 10 and more (None: always two decimals).
    """
    if not ok(value):
        return DASH
    v = float(value)
    if figures is None or v < 10:
        return f"{v:.2f}×"
    magnitude = math.floor(math.log10(v))
    if magnitude < figures - 1:
        return f"{v:,.{figures - 1 - magnitude}f}×"
    return f"{round(v, figures - 1 - magnitude):,.0f}×"


def pct(value: Any, scale: float = 100.0) -> str:
    """A fraction as a percentage: ``0.77`` → ``77 %`` (``scale=1`` when already in percent)."""
    return DASH if not ok(value) else f"{float(value) * scale:.0f} %"


def nbytes(value: Any, unit: str | None = None) -> str:
    """``612e6`` → ``584 MiB``, ``3e9`` → ``2.8 GiB``; with ``unit="MiB"``: ``2,861 MiB``.

    Args:
        value: Bytes.
        unit: Always this unit (``KiB``, ``MiB`` or ``GiB``: whole numbers, thousands separated);
            None: the largest unit under 1024 of it.
    """
    if not ok(value):
        return DASH
    v = float(value)
    if unit is not None:
        return f"{v / _UNIT_BYTES[unit]:,.0f} {unit}"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(v) < 1024 or unit == "TiB":
            return f"{v:.0f} {unit}" if unit in ("B", "KiB", "MiB") else f"{v:.1f} {unit}"
        v /= 1024
    return DASH  # pragma: no cover


_UNIT_BYTES = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


def money(value: Any) -> str:
    """A price with enough digits for fractions of a cent: ``$0.000125``."""
    if not ok(value):
        return DASH
    v = float(value)
    if v == 0:
        return "$0"
    if v >= 1:
        return f"${v:,.2f}"
    decimals = min(12, 2 - math.floor(math.log10(v)))  # three significant figures, no exponent
    return f"${v:.{decimals}f}"


def plain(value: Any) -> str:
    """Any value as text (None → dash)."""
    if value is None:
        return DASH
    if isinstance(value, float):
        return num(value)
    return str(value)
