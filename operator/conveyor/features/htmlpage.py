"""Self-contained HTML pages with inline SVG plots: the data report and the training report.

Plots are drawn with matplotlib's object API (no pyplot, no display) and inlined as `<svg>`
without prolog, comments or dates, so the same inputs always render the same page.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Iterable
from typing import Any

import matplotlib
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure

__all__ = ["PLOT_STYLE", "figure_svg", "new_figure", "page"]

PLOT_STYLE: dict[Any, Any] = {
    "svg.hashsalt": "conveyor",  # stable element ids: the same inputs render the same page
    "svg.fonttype": "none",  # text stays text: smaller, searchable, escaped by the writer
    "text.parse_math": False,  # "$" in a label is data, not mathtext
    "font.size": 9,
}
_STYLESHEET = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #1a202c; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #cbd5e0; padding: 0.2em 0.6em; text-align: left; vertical-align: top; }
th { background: #edf2f7; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
.plot svg { max-width: 100%; height: auto; }
"""


def page(title: str, sections: Iterable[str], *, style: str = "") -> str:
    """A whole HTML document: the title as heading, then the non-empty sections."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_STYLESHEET}{style}</style>",
        "</head>",
        "<body>",
        f"<h1>{html.escape(title)}</h1>",
        *sections,
        "</body>",
        "</html>",
    ]
    return "\n".join(part for part in parts if part) + "\n"


def new_figure(height: float) -> Figure:
    return Figure(figsize=(6.4, height), layout="constrained")


def figure_svg(figure: Figure) -> str:
    """The figure as an inline `<svg>` element: no prolog, no comments, no date."""
    buffer = io.StringIO()
    with matplotlib.rc_context(PLOT_STYLE):
        FigureCanvasSVG(figure).print_svg(buffer, metadata={"Date": None})
    text = buffer.getvalue()
    return re.sub(r"<!--.*?-->", "", text[text.index("<svg") :], flags=re.DOTALL)
