"""The data report of a snapshot: one self-contained HTML page, and the text table of the CLI.

The page: an overview, the target, correlations, a section per raw column and one per model
input after the transforms (each against the previous snapshot's), and the rejected rows by
reason with a sample. Entity keys and event times are shown with their counts and ranges but no
drift. Drawing the raw columns takes most of the time, so `render_column_sections` can draw them
ahead (beside the materialize Job's second pass) and `render_report` takes them as drawn.

Plots are drawn with matplotlib's object API (``Figure`` with the SVG canvas: no pyplot, no
display, no global state) and inlined as ``<svg>``, so the page needs no script and no other
file. Everything that comes from the data — column names, categories, reject reasons — is
HTML-escaped; plot text is escaped by the SVG writer and never parsed as mathtext.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import matplotlib

from .htmlpage import PLOT_STYLE, figure_svg, new_figure, page
from .profile import KEY_ROLES, ColumnProfile, Profile

__all__ = ["DRIFT_ALERT", "render_column_sections", "render_profile_table", "render_report"]

DRIFT_ALERT = 0.2
"""Drift scores above this are highlighted (PSI: a real shift)."""

_CURRENT_COLOUR, _PREVIOUS_COLOUR = "#2b6cb0", "#dd6b20"
_LABEL_WIDTH = 24
_ROLE_WORDS = {"entityKey": "entity key", "eventTime": "event time", "target": "target"}
_EXTRA_STYLE = """
.drift-high { background: #fed7d7; color: #9b2c2c; font-weight: bold; }
section.column { border-top: 1px solid #e2e8f0; padding-top: 0.5em; }
"""


def render_report(
    profile: Profile,
    *,
    previous: Profile | None,
    title: str,
    snapshot_id: str,
    reject_samples: Sequence[Mapping[str, Any]] = (),
    created_at: datetime | None = None,
    drift_alert: float = DRIFT_ALERT,
    drawn_columns: str | None = None,
) -> str:
    """The HTML data report of ``profile``, compared with ``previous`` when given.

    ``drawn_columns``: the raw columns' sections from ``render_column_sections``, when drawn
    already; rejected rows and their reasons come from the profile.
    """
    if drawn_columns is None:
        drawn_columns = render_column_sections(profile, previous, drift_alert)
    features = profile.features
    sections = [
        _overview(profile, previous, snapshot_id, created_at),
        _target_section(profile, previous),
        _correlation_section(profile, "Correlations with the target"),
        "<h2>Columns</h2>",
        drawn_columns,
    ]
    if features is not None:
        sections += [
            "<h2>Model inputs after the transforms</h2>\n<p>What the model reads: the "
            "snapshot's features, each compared with the previous snapshot's.</p>",
            _correlation_section(features, "Model inputs: correlations with the target"),
            render_column_sections(features, previous.features if previous else None, drift_alert),
        ]
    sections.append(_rejects_section(profile, reject_samples))
    return page(title, sections, style=_EXTRA_STYLE)


def render_column_sections(
    profile: Profile, previous: Profile | None, drift_alert: float = DRIFT_ALERT
) -> str:
    """The section of each column of ``profile`` (not its features), with its plot."""
    return "\n".join(
        _column_section(column, _previous_column(previous, column.name), drift_alert)
        for column in profile.columns.values()
    )


def render_profile_table(profile: Profile) -> str:
    """The plain-text tables ``conveyor features describe`` prints, one row per column: the raw
    columns, then (when profiled) the model's inputs after the transforms."""
    text = _column_table(profile)
    if profile.features is not None:
        text += "\nMODEL INPUTS AFTER THE TRANSFORMS\n" + _column_table(profile.features)
    return text


def _column_table(profile: Profile) -> str:
    header = ("NAME", "KIND", "ROLE", "COUNT", "NULLS", "MEAN/TOP", "STD", "MIN", "MAX", "DRIFT")
    rows = [header]
    for column in profile.columns.values():
        rows.append(
            (
                _shorten(column.name),
                column.kind,
                column.role,
                str(column.count),
                str(column.nulls),
                _shorten(_mean_or_top(column)),
                _number(column.std, "-"),
                _shorten(_number(column.min, "-")),
                _shorten(_number(column.max, "-")),
                _number(column.drift_score, "-"),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return "\n".join(lines) + "\n"


# --- sections -------------------------------------------------------------------------------


def _overview(
    profile: Profile, previous: Profile | None, snapshot_id: str, created_at: datetime | None
) -> str:
    summary = profile.summary()
    features = profile.features
    facts: list[tuple[str, Any]] = [
        ("Snapshot", snapshot_id),
        ("Created", _rfc3339(created_at) if created_at else "not recorded"),
        ("Rows", profile.rows),
        ("Columns", len(profile.columns)),
        ("Model inputs", len(features.columns) if features else "not profiled"),
        ("Rows after the transforms", features.rows if features else "-"),
        ("Rejected rows", profile.rejected),
        ("Null cells (model inputs)" if features else "Null cells", summary["nullCells"]),
        ("Target", f"{profile.target} ({profile.target_kind})" if profile.target else "none"),
        ("Compared with", previous.created_from or "the previous snapshot" if previous else "-"),
        ("Largest drift score", _number(summary["maxDriftScore"], "-")),
    ]
    body = "".join(f"<tr><th>{_text(k)}</th><td>{_text(v)}</td></tr>" for k, v in facts)
    return f"<h2>Overview</h2>\n<table>{body}</table>"


def _target_section(profile: Profile, previous: Profile | None) -> str:
    if not profile.target or not profile.target_distribution:
        return ""
    before = previous.target_distribution if previous else {}
    if "classes" in profile.target_distribution:
        classes = profile.target_distribution["classes"]
        plot = _bar_plot(_shares(classes), _shares(before.get("classes", {})), profile.target)
        rows = "".join(
            f"<tr><td>{_text(label)}</td><td class=number>{_text(count)}</td></tr>"
            for label, count in classes.items()
        )
        table = f"<table><tr><th>class</th><th>rows</th></tr>{rows}</table>"
    else:
        plot = _histogram_plot(
            profile.target_distribution.get("histogram", {}),
            before.get("histogram", {}),
            profile.target,
        )
        table = ""
    return f"<h2>Target: {_text(profile.target)}</h2>\n<div class=plot>{plot}</div>\n{table}"


def _correlation_section(profile: Profile, heading: str) -> str:
    correlations = {
        name: column.correlation_with_target
        for name, column in profile.columns.items()
        if column.correlation_with_target is not None
    }
    if not correlations:
        return ""
    names = sorted(correlations, key=lambda name: abs(correlations[name]))  # strongest on top
    with matplotlib.rc_context(PLOT_STYLE):
        figure = new_figure(height=max(1.5, 0.3 * len(names) + 0.8))
        axes = figure.subplots()
        axes.barh(
            [_label(n) for n in names], [correlations[n] for n in names], color=_CURRENT_COLOUR
        )
        axes.axvline(0, color="#4a5568", linewidth=0.8)
        axes.set_xlabel("correlation with the target (Pearson r, or eta for categories)")
        plot = figure_svg(figure)
    return f"<h2>{_text(heading)}</h2>\n<div class=plot>{plot}</div>"


def _column_section(column: ColumnProfile, before: ColumnProfile | None, alert: float) -> str:
    stats: list[tuple[str, str]] = [
        ("kind", column.kind),
        ("count", str(column.count)),
        ("nulls", str(column.nulls)),
        ("min", _number(column.min)),
        ("max", _number(column.max)),
        ("mean", _number(column.mean)),
        ("std", _number(column.std)),
        *((key, _number(value)) for key, value in column.quantiles.items()),
        ("distinct", _number(column.distinct)),
        ("top", ", ".join(f"{entry['value']} ({entry['count']})" for entry in column.top) or "—"),
        ("correlation with target", _number(column.correlation_with_target)),
    ]
    role = _ROLE_WORDS.get(column.role)
    if role:
        stats.insert(1, ("role", role))
    cells = "".join(f"<tr><th>{_text(k)}</th><td>{_text(v)}</td></tr>" for k, v in stats)
    drift_class = " class=drift-high" if (column.drift_score or 0) > alert else ""
    drift = _text(_number(column.drift_score))
    if column.role in KEY_ROLES:
        drift = f"not scored: the {_ROLE_WORDS[column.role]} names rows"
    cells += f"<tr><th>drift score</th><td{drift_class}>{drift}</td></tr>"
    plot = ""
    if column.kind == "numeric" and column.histogram:
        plot = _histogram_plot(column.histogram, before.histogram if before else {}, column.name)
    elif column.kind in ("categorical", "boolean") and column.top:
        plot = _bar_plot(_category_shares(column), _category_shares(before), column.name)
    return (
        f'<section class="column">\n<h3>{_text(column.name)}</h3>\n<table>{cells}</table>\n'
        + (f"<div class=plot>{plot}</div>\n" if plot else "")
        + "</section>"
    )


def _rejects_section(profile: Profile, samples: Sequence[Mapping[str, Any]]) -> str:
    parts = [
        "<h2>Rejected rows</h2>",
        f"<p>{_text(profile.rejected)} rows broke the schema or gave a non-finite feature.</p>",
    ]
    if profile.reject_reasons:
        reasons = "".join(
            f"<tr><td>{_text(entry['reason'])}</td><td class=number>{_text(entry['rows'])}</td>"
            f"<td>{_text(entry.get('example') or '')}</td></tr>"
            for entry in profile.reject_reasons
        )
        parts.append(
            f"<table><tr><th>reason</th><th>rows</th><th>first value</th></tr>{reasons}</table>"
        )
    if samples:
        fields = list(dict.fromkeys(key for sample in samples for key in sample))
        head = "".join(f"<th>{_text(name)}</th>" for name in fields)
        body = "".join(
            "<tr>" + "".join(f"<td>{_text(sample.get(name, ''))}</td>" for name in fields) + "</tr>"
            for sample in samples
        )
        parts.append(f"<h3>The first rejected rows</h3>\n<table><tr>{head}</tr>{body}</table>")
    return "\n".join(parts)


# --- plots ----------------------------------------------------------------------------------


def _histogram_plot(
    current: Mapping[str, list[float]], before: Mapping[str, list[float]], name: str | None
) -> str:
    """Density histograms, so snapshots of different sizes compare; previous as an outline."""
    with matplotlib.rc_context(PLOT_STYLE):
        figure = new_figure(2.4)
        axes = figure.subplots()
        for histogram, colour, label, fill in (
            (current, _CURRENT_COLOUR, "current", True),
            (before, _PREVIOUS_COLOUR, "previous", False),
        ):
            if not histogram or not histogram.get("counts"):
                continue
            total = sum(histogram["counts"]) or 1.0
            shares = [count / total for count in histogram["counts"]]
            axes.stairs(
                shares,
                histogram["edges"],
                fill=fill,
                alpha=0.6 if fill else 1.0,
                color=colour,
                label=label,
                linewidth=1.5,
            )
        axes.set_ylabel("share of rows")
        axes.set_title(_label(name or ""))
        if before:
            axes.legend()
        return figure_svg(figure)


def _bar_plot(current: Mapping[str, float], before: Mapping[str, float], name: str | None) -> str:
    """Shares per category, current beside previous."""
    categories = list(dict.fromkeys([*current, *before]))[:20]
    positions = range(len(categories))
    crowded = len(categories) > 5
    with matplotlib.rc_context(PLOT_STYLE):
        figure = new_figure(2.4)
        axes = figure.subplots()
        width = 0.4 if before else 0.8
        axes.bar(
            [p - (width / 2 if before else 0) for p in positions],
            [current.get(c, 0.0) for c in categories],
            width=width,
            color=_CURRENT_COLOUR,
            label="current",
        )
        if before:
            axes.bar(
                [p + width / 2 for p in positions],
                [before.get(c, 0.0) for c in categories],
                width=width,
                color=_PREVIOUS_COLOUR,
                label="previous",
            )
            axes.legend()
        axes.set_xticks(
            list(positions),
            [_label(c) for c in categories],
            rotation=30 if crowded else 0,
            ha="right" if crowded else "center",  # a slanted label ends under its bar
        )
        axes.set_ylabel("share of rows")
        axes.set_title(_label(name or ""))
        return figure_svg(figure)


def _category_shares(column: ColumnProfile | None) -> dict[str, float]:
    if column is None:
        return {}
    frequencies = column.reference.get("frequencies")
    if frequencies:
        return dict(sorted(frequencies.items(), key=lambda item: -item[1]))
    return _shares({str(entry["value"]): entry["count"] for entry in column.top})


def _shares(counts: Mapping[str, float]) -> dict[str, float]:
    total = float(sum(counts.values())) or 1.0
    return {label: count / total for label, count in counts.items()}


# --- formatting -----------------------------------------------------------------------------


def _previous_column(previous: Profile | None, name: str) -> ColumnProfile | None:
    return previous.columns.get(name) if previous else None


def _rfc3339(moment: datetime) -> str:
    """As status writes createdAt: UTC, whole seconds, a Z."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _number(value: Any, missing: str = "—") -> str:
    if value is None:
        return missing
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


def _mean_or_top(column: ColumnProfile) -> str:
    if column.mean is not None and column.kind == "numeric":
        return _number(column.mean)
    if column.top:
        first = column.top[0]
        return f"{first['value']} ({first['count']})"
    return "-"


def _shorten(text: str, width: int = _LABEL_WIDTH) -> str:
    text = re.sub(r"\s+", " ", text)
    return text if len(text) <= width else text[: width - 1] + "…"


def _label(text: str) -> str:
    return _shorten(str(text), 20)
