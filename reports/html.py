"""jinja2 rendering with autoescape: every string from a result file or the command line is escaped.

The template (``templates/report.html.j2``) receives plain data only: strings, numbers, lists
and dicts of them, and charts as base64 data URIs. Nothing is marked safe.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import jinja2

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


def environment() -> jinja2.Environment:
    """The report's jinja2 environment: autoescape on for every template, undefined names fail."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(context: dict[str, Any], template: str = "report.html.j2") -> str:
    """Renders the report template with ``context``."""
    return environment().get_template(template).render(**context)
