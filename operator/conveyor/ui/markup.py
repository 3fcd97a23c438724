"""The HTML pieces of the web page: every value goes through `text()` (or `link()`), so a name,
label, annotation or message read from the cluster is shown as text and never parsed as markup.

Helpers that take cells take HTML already made by these functions; nothing else builds tags
around untrusted values. Addresses are built here too, each path segment percent-quoted.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from ..features.htmlpage import page as document

__all__ = [
    "ABSENT",
    "Body",
    "conditions_table",
    "featureset_link",
    "featureset_url",
    "link",
    "metadata_section",
    "name_of",
    "namespace_of",
    "number",
    "page",
    "pairs_table",
    "pipeline_link",
    "pipeline_url",
    "plain",
    "ready",
    "status_of",
    "table",
    "text",
    "version_link",
    "version_url",
]

Body = Mapping[str, Any]

ABSENT = "—"
"""What a page shows for a value the object does not have (an older card, no live figures)."""

_HIDDEN_ANNOTATIONS = {"kubectl.kubernetes.io/last-applied-configuration"}
_STYLE = """
nav { margin: -0.5em 0 1.5em; color: #4a5568; }
nav a { margin-right: 1em; }
.status-true { color: #276749; font-weight: bold; }
.status-false { color: #9b2c2c; font-weight: bold; }
.leader { font-weight: bold; }
.reports a { margin-right: 1.5em; }
.error { border-left: 4px solid #c53030; padding: 0.5em 1em; background: #fff5f5; }
.empty { color: #718096; }
code { font-size: 0.95em; }
td { overflow-wrap: anywhere; }
"""


def page(title: str, sections: Iterable[str]) -> str:
    """A whole page: the title, a way back to the overview, then the sections."""
    nav = f'<nav><a href="/">{text("Conveyor: all namespaces")}</a></nav>'
    return document(title, [nav, *sections], style=_STYLE)


def text(value: Any) -> str:
    """A value as escaped text; "—" for a missing one."""
    if value is None or value == "":
        return ABSENT
    return html.escape(str(value), quote=True)


def number(value: Any, digits: int = 4) -> str:
    """A number for people: 4 significant digits, integers whole, "—" when there is none."""
    if value is None:
        return ABSENT
    if isinstance(value, bool) or not isinstance(value, int | float):
        return text(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}g}" if math.isfinite(value) else text(value)


def plain(value: Any) -> str:
    """Structured values (params, a holdout) as compact JSON text, escaped."""
    if isinstance(value, Mapping | list):
        return text(json.dumps(value, sort_keys=True, default=str))
    return text(value)


def link(href: str, label: Any) -> str:
    """An anchor to one of the page's own addresses (build them with the *_url functions)."""
    return f'<a href="{html.escape(href, quote=True)}">{text(label)}</a>'


def table(header: Sequence[str], rows: Sequence[Sequence[str]], *, empty: str = "") -> str:
    """A table of cells that are HTML already; `empty` (plain text) when there are no rows."""
    if not rows:
        return f'<p class="empty">{text(empty or "None.")}</p>'
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def pairs_table(rows: Sequence[tuple[str, str]]) -> str:
    """Name / value rows; the names are plain text, the values HTML already."""
    body = "".join(f"<tr><th>{text(name)}</th><td>{value}</td></tr>" for name, value in rows)
    return f"<table>{body}</table>"


def conditions_table(status: Mapping[str, Any]) -> str:
    rows = [
        (
            text(c.get("type")),
            f'<span class="status-{text(str(c.get("status", "")).lower())}">'
            f"{text(c.get('status'))}</span>",
            text(c.get("reason")),
            text(c.get("message")),
            text(c.get("lastTransitionTime")),
        )
        for c in status.get("conditions") or []
    ]
    header = ("type", "status", "reason", "message", "since")
    return "<h2>Conditions</h2>\n" + table(header, rows, empty="Not reconciled yet.")


def metadata_section(metadata: Mapping[str, Any]) -> str:
    """Labels and annotations, shown as the text they are."""
    labels = metadata.get("labels") or {}
    annotations = {
        key: value
        for key, value in (metadata.get("annotations") or {}).items()
        if key not in _HIDDEN_ANNOTATIONS
    }
    rows = [("label", key, value) for key, value in sorted(labels.items())]
    rows += [("annotation", key, value) for key, value in sorted(annotations.items())]
    cells = [(text(kind), f"<code>{text(key)}</code>", text(value)) for kind, key, value in rows]
    return "<h2>Labels and annotations</h2>\n" + table(("kind", "key", "value"), cells)


def ready(status: Mapping[str, Any]) -> str:
    """The Ready condition in one cell: its status and reason."""
    found = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if found is None:
        return ABSENT
    css = text(str(found.get("status", "")).lower())
    return (
        f'<span class="status-{css}">{text(found.get("status"))}</span> {text(found.get("reason"))}'
    )


def _segment(value: str) -> str:
    return quote(value, safe="")


def featureset_url(namespace: str, name: str, tail: str = "") -> str:
    return f"/namespaces/{_segment(namespace)}/featuresets/{_segment(name)}{tail}"


def pipeline_url(namespace: str, name: str) -> str:
    return f"/namespaces/{_segment(namespace)}/pipelines/{_segment(name)}"


def version_url(namespace: str, name: str, tail: str = "") -> str:
    return f"/namespaces/{_segment(namespace)}/versions/{_segment(name)}{tail}"


def featureset_link(namespace: str, name: Any) -> str:
    return link(featureset_url(namespace, str(name)), name) if name else ABSENT


def pipeline_link(namespace: str, name: Any) -> str:
    return link(pipeline_url(namespace, str(name)), name) if name else ABSENT


def version_link(namespace: str, name: Any) -> str:
    return link(version_url(namespace, str(name)), name) if name else ABSENT


def status_of(body: Body) -> Body:
    return body.get("status") or {}


def name_of(body: Body) -> str:
    return str((body.get("metadata") or {}).get("name", ""))


def namespace_of(body: Body) -> str:
    return str((body.get("metadata") or {}).get("namespace", ""))
