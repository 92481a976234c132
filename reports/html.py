"""jinja2 rendering with autoescape: every string from a result file or the command line is escaped.

The template (``templates/report.html.j2``) receives plain data only: strings, numbers, lists
and dicts of them, and charts as base64 data URIs. Nothing is marked safe.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import jinja2

from reports import fmt

TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclasses.dataclass
class Table:
    """A table for the template: headings and rows of already formatted cells.

    Args:
        columns: Headings.
        rows: Rows of cells (strings).
        caption: Shown above the table.
        numeric: Columns (by index) aligned right.
        note: Shown under the table.
    """

    columns: Sequence[str]
    rows: Sequence[Sequence[str]]
    caption: str = ""
    numeric: Sequence[int] = ()
    note: str = ""

    def __post_init__(self):
        # every cell is bounded here, in one place (fmt.clip): a huge label or message from a
        # result file shows as its first 200 characters and "…"
        self.rows = [[fmt.clip(cell) if isinstance(cell, str) else cell for cell in row] for row in self.rows]


@dataclasses.dataclass
class Section:
    """One report section.

    Args:
        id: HTML anchor.
        title: Heading.
        intro: Paragraphs before its content.
        charts: ``{"title", "uri", "file"}`` dicts.
        tables: Tables after the charts.
        notes: Paragraphs at the end.
    """

    id: str
    title: str
    intro: list[str] = dataclasses.field(default_factory=list)
    charts: list[dict] = dataclasses.field(default_factory=list)
    tables: list[Table] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)


def _bounded(value: Any) -> Any:
    """Every ``{{ value }}`` of the template: a string is cut to ``fmt.TEXT_CHARS`` (not the
    template's own markup, not a chart's data URI), so no value from a file can blow up the page."""
    if type(value) is str and len(value) > fmt.TEXT_CHARS and not value.startswith("data:image/"):
        return fmt.clip(value, fmt.TEXT_CHARS)
    return value


def environment() -> jinja2.Environment:
    """The report's jinja2 environment: autoescape on for every template, undefined names fail,
    every string bounded (:func:`_bounded`)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_bounded,
    )


def render(context: dict[str, Any], template: str = "report.html.j2") -> str:
    """Renders the report template with ``context``."""
    return environment().get_template(template).render(**context)
