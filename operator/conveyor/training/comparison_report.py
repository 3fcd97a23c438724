"""The comparison as HTML: the table with the best cells highlighted, then the models' curves
overlaid, one plot per question.

Classification: ROC and precision-recall curves (one line per model; a multiclass model's
one-vs-rest curves as one small plot per class, every model in each), and the confusion
matrices side by side on one colour scale. Regression: predicted against actual, and the
residuals, every model overlaid. Then the feature importances side by side, each model's
scaled to sum to 1 (a forest's impurity importances and a linear model's |coef| are on
different scales; their shares are comparable).

Plots are drawn from what the cards record under `evaluation`; a card without it (trained
before cards recorded curves) is named under the plot instead. Everything that comes from a
card or a name is escaped (html.escape in the page, the SVG writer in plots); matplotlib's
object API only (no pyplot), no script, nothing fetched.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..features.htmlpage import PLOT_STYLE, figure_svg, page
from .comparison import Column, Comparison, Row

__all__ = ["BEST_CELL_STYLE", "comparison_sections", "render_comparison_report"]

BEST_CELL_STYLE = "background: #c6f6d5; font-weight: bold;"
"""Inline, so the table keeps its highlight inside another page (the ui) too."""
_WARNING_STYLE = "background: #fefcbf; border-left: 4px solid #d69e2e; padding: 0.5em 1em;"
_PALETTE = (
    "#2b6cb0",
    "#dd6b20",
    "#38a169",
    "#c53030",
    "#805ad5",
    "#975a16",
    "#d53f8c",
    "#4a5568",
    "#b7791f",
    "#319795",
)
_MAX_CLASSES = 12
_MAX_FEATURES = 15
_PANELS_PER_ROW = 3


def render_comparison_report(comparison: Comparison, title: str) -> str:
    """A whole self-contained HTML page: the comparison's sections under `title`."""
    return page(title, comparison_sections(comparison))


def comparison_sections(comparison: Comparison) -> list[str]:
    """HTML fragments: the summary and table, then one section per plot (each one <svg>)."""
    rows = [row for row in comparison.rows if row.candidate.card]
    if comparison.task == "regression":
        plots = [_predicted_section(rows), _residuals_section(rows)]
    elif comparison.task == "classification":
        plots = [
            _curves_section(rows, "roc"),
            _curves_section(rows, "precision_recall"),
            _confusion_section(rows),
        ]
    else:
        plots = []
    return [_summary(comparison), _table(comparison), *plots, _importance_section(rows)]


# --- summary and table -----------------------------------------------------------------------


def _summary(comparison: Comparison) -> str:
    pipelines = sorted({row.candidate.pipeline for row in comparison.rows})
    count = len(comparison.rows)
    what = f"{count} version{'s' if count != 1 else ''} of {_listed(pipelines)}"
    if comparison.task:
        what += f" ({comparison.task})"
    parts = [f"<p>{_text(what)}, ranked by {_text(comparison.metric or 'name')}.</p>"]
    if comparison.same_holdout and comparison.holdouts:
        fingerprint = next(iter(comparison.holdouts))
        details = comparison.holdout_details.get(str(fingerprint), {})
        rows = f", {details['rows']} rows" if details.get("rows") is not None else ""
        parts.append(
            f"<p>Every version was judged on the same holdout ({_text(fingerprint)}{_text(rows)})"
            ": the holdout metrics are comparable.</p>"
        )
    parts += [
        f'<p class="warning" style="{_WARNING_STYLE}"><strong>Warning:</strong> '
        f"{_text(warning)}</p>"
        for warning in comparison.warnings
    ]
    parts += [f'<p class="note">{_text(note)}</p>' for note in comparison.notes]
    return "<h2>Versions compared</h2>\n" + "\n".join(parts)


def _table(comparison: Comparison) -> str:
    columns = list(comparison.columns)
    problems = any(row.candidate.problem for row in comparison.rows)
    head = "".join(
        f'<th title="{_text(column.description)}">{_text(column.heading.lower())}</th>'
        for column in columns
    ) + ("<th>problem</th>" if problems else "")
    body = [
        "<tr>"
        + "".join(_cell(row, column) for column in columns)
        + (f"<td>{_text(row.candidate.problem or '')}</td>" if problems else "")
        + "</tr>"
        for row in comparison.rows
    ]
    legend = (
        f'<p><span style="{BEST_CELL_STYLE}">highlighted</span>: the best value of its column'
        + ("" if comparison.same_holdout else " (holdout metrics: within one holdout)")
        + f"; sorted by {_text(comparison.sort)}.</p>"
    )
    return (
        '<div style="overflow-x: auto">\n'
        f'<table class="comparison" style="white-space: nowrap">\n<tr>{head}</tr>\n'
        + "\n".join(body)
        + "\n</table>\n</div>\n"
        + legend
    )


def _cell(row: Row, column: Column) -> str:
    classes = ["number"] if column.numeric else []
    style = ""
    if column.name in row.best:
        classes.append("best")
        style = f' style="{BEST_CELL_STYLE}" title="best"'
    attribute = f' class="{" ".join(classes)}"' if classes else ""
    return f"<td{attribute}{style}>{_text(row.text(column))}</td>"


# --- classification --------------------------------------------------------------------------

_CURVES = {
    # key in evaluation: (title, x key, y key, x label, y label, area key, area name)
    "roc": ("ROC curves", "fpr", "tpr", "false positive rate", "true positive rate", "auc", "AUC"),
    "precision_recall": (
        "Precision-recall curves",
        "recall",
        "precision",
        "recall",
        "precision",
        "average_precision",
        "AP",
    ),
}


_LEGEND_IN_PANEL = 6
"""Models whose names fit in each plot's own legend; more get one legend under the plots."""


def _curves_section(rows: Sequence[Row], key: str) -> str:
    title, x_key, y_key, x_label, y_label, area_key, area_name = _CURVES[key]
    curves = {row.candidate.name: _evaluation(row).get(key) for row in rows}
    drawn = [row for row in rows if curves[row.candidate.name]]
    missing = [row.candidate.name for row in rows if not curves[row.candidate.name]]
    if not drawn:
        return _section(title, "", _missing_note(missing, "no such curves"))
    labels = list(dict.fromkeys(str(c.get("label")) for r in drawn for c in _curve_list(r, key)))
    shown = labels[:_MAX_CLASSES]
    heading = title + (" (one-vs-rest, one plot per class)" if len(labels) > 1 else "")
    if len(labels) > _MAX_CLASSES:
        heading += f" — the first {_MAX_CLASSES} of {len(labels)} classes"

    def draw(axes: Axes, label: str) -> None:
        for row in drawn:
            curve = next((c for c in _curve_list(row, key) if str(c.get("label")) == label), None)
            if curve is None:
                continue
            area = curve.get(area_key)
            name = _label(row.candidate.name)
            legend = f"{name} ({area_name} {area:.3f})" if _finite(area) and in_panel else name
            xs, ys = _floats(curve.get(x_key)), _floats(curve.get(y_key))
            if len(xs) == len(ys) and xs:
                axes.plot(xs, ys, color=_colour(rows, row), label=legend, linewidth=1.4)
        if key == "roc":
            axes.plot([0, 1], [0, 1], color="#a0aec0", linestyle="--", linewidth=0.8)
        axes.set_xlim(-0.02, 1.02)
        axes.set_ylim(-0.02, 1.02)
        axes.set_xlabel(x_label)
        axes.set_ylabel(y_label)
        axes.set_title(_label(label) if len(labels) > 1 else "")
        if in_panel:
            axes.legend(loc="lower right" if key == "roc" else "lower left", fontsize=7)

    # Many models' legends would fill each small plot: one legend under them all instead.
    in_panel = len(drawn) <= _LEGEND_IN_PANEL
    plot = _panels(shown, draw, panel_height=3.0, legend_below=not in_panel)
    return _section(heading, plot, _missing_note(missing, "no such curves"))


def _confusion_section(rows: Sequence[Row]) -> str:
    title = "Confusion matrices (holdout; rows: actual, columns: predicted)"
    matrices = {
        row.candidate.name: _mapping(_evaluation(row).get("confusion_matrix")) for row in rows
    }
    drawn = [row for row in rows if matrices[row.candidate.name].get("matrix")]
    missing = [row.candidate.name for row in rows if row not in drawn]
    if not drawn:
        return _section(title, "", _missing_note(missing, "no confusion matrix"))
    top = max(float(np.max(np.asarray(matrices[r.candidate.name]["matrix"]))) for r in drawn)

    def draw(axes: Axes, row: Row) -> None:
        matrix = matrices[row.candidate.name]
        counts = np.asarray(matrix["matrix"], dtype=np.float64)
        names = [_label(label) for label in matrix.get("labels") or range(len(counts))]
        axes.imshow(counts, cmap="Blues", vmin=0, vmax=max(top, 1.0))
        if len(names) <= 20:
            for (r, c), value in np.ndenumerate(counts):
                colour = "white" if value > top / 2 else "black"
                axes.text(c, r, f"{value:g}", ha="center", va="center", color=colour, fontsize=7)
        ticks = range(len(names))
        axes.set_xticks(ticks, names, rotation=45 if len(names) > 3 else 0, ha="right")
        axes.set_yticks(ticks, names)
        axes.set_title(_label(row.candidate.name), color=_colour(rows, row))

    plot = _panels(drawn, draw, panel_height=2.8)
    return _section(title, plot, _missing_note(missing, "no confusion matrix"))


# --- regression ------------------------------------------------------------------------------


def _residual_pairs(
    rows: Sequence[Row],
) -> tuple[list[tuple[Row, np.ndarray, np.ndarray]], list[str]]:
    """(row, predicted, actual) of every card with residuals; the names of those without."""
    pairs, missing = [], []
    for row in rows:
        residuals = _mapping(_evaluation(row).get("residuals"))
        predicted, actual = residuals.get("predicted") or [], residuals.get("actual") or []
        points = [
            (float(p), float(a))
            for p, a in zip(predicted, actual, strict=False)
            if _finite(p) and _finite(a)
        ]
        if points:
            values = np.asarray(points)
            pairs.append((row, values[:, 0], values[:, 1]))
        else:
            missing.append(row.candidate.name)
    return pairs, missing


def _predicted_section(rows: Sequence[Row]) -> str:
    title = "Predicted against actual (holdout)"
    pairs, missing = _residual_pairs(rows)
    if not pairs:
        return _section(title, "", _missing_note(missing, "no residuals"))
    with matplotlib.rc_context(PLOT_STYLE):
        figure = Figure(figsize=(5.6, 4.6), layout="constrained")
        axes = figure.subplots()
        for row, predicted, actual in pairs:
            axes.scatter(
                actual,
                predicted,
                s=9,
                alpha=0.55,
                color=_colour(rows, row),
                label=_label(row.candidate.name),
            )
        low = min(float(min(a.min(), p.min())) for _, p, a in pairs)
        high = max(float(max(a.max(), p.max())) for _, p, a in pairs)
        axes.plot([low, high], [low, high], color="#a0aec0", linestyle="--", linewidth=0.8)
        axes.set_xlabel("actual")
        axes.set_ylabel("predicted")
        axes.legend(fontsize=7)
        plot = figure_svg(figure)
    return _section(title, plot, _missing_note(missing, "no residuals"))


def _residuals_section(rows: Sequence[Row]) -> str:
    title = "Residuals (predicted - actual, holdout)"
    pairs, missing = _residual_pairs(rows)
    if not pairs:
        return _section(title, "", _missing_note(missing, "no residuals"))
    with matplotlib.rc_context(PLOT_STYLE):
        figure = Figure(figsize=(9.0, 3.6), layout="constrained")
        scatter, histogram = figure.subplots(1, 2, width_ratios=(3, 2))
        bins = np.histogram_bin_edges(np.concatenate([p - a for _, p, a in pairs]), bins=30)
        for row, predicted, actual in pairs:
            colour, name = _colour(rows, row), _label(row.candidate.name)
            scatter.scatter(
                predicted, predicted - actual, s=9, alpha=0.55, color=colour, label=name
            )
            histogram.hist(predicted - actual, bins=bins, histtype="step", color=colour, label=name)
        scatter.axhline(0, color="#a0aec0", linestyle="--", linewidth=0.8)
        scatter.set_xlabel("predicted")
        scatter.set_ylabel("residual")
        scatter.legend(fontsize=7)
        histogram.set_xlabel("residual")
        histogram.set_ylabel("rows")
        plot = figure_svg(figure)
    return _section(title, plot, _missing_note(missing, "no residuals"))


# --- feature importance ----------------------------------------------------------------------


def _importance_section(rows: Sequence[Row]) -> str:
    title = "Feature importance (each model's scaled to sum to 1)"
    shares = {
        row.candidate.name: _shares(_evaluation(row).get("feature_importance")) for row in rows
    }
    drawn = [row for row in rows if shares[row.candidate.name]]
    missing = [row.candidate.name for row in rows if row not in drawn]
    if not drawn:
        return _section(title, "", _missing_note(missing, "no feature importance"))
    features = sorted(
        {feature for row in drawn for feature in shares[row.candidate.name]},
        key=lambda f: -max(shares[r.candidate.name].get(f, 0.0) for r in drawn),
    )
    shown = features[:_MAX_FEATURES]
    if len(features) > _MAX_FEATURES:
        title += f" — the top {_MAX_FEATURES} of {len(features)} features"
    height = 0.8 / len(drawn)
    with matplotlib.rc_context(PLOT_STYLE):
        figure = Figure(
            figsize=(6.4, 1.2 + 0.28 * len(shown) * max(1, len(drawn) / 2)), layout="constrained"
        )
        axes = figure.subplots()
        positions = np.arange(len(shown))
        for i, row in enumerate(drawn):
            values = [shares[row.candidate.name].get(feature, 0.0) for feature in shown]
            axes.barh(
                positions - 0.4 + height * (i + 0.5),
                values,
                height=height,
                color=_colour(rows, row),
                label=_label(row.candidate.name),
            )
        axes.set_yticks(positions, [_label(feature) for feature in shown])
        axes.invert_yaxis()
        axes.set_xlabel("share of the model's total importance")
        axes.legend(fontsize=7, loc="lower right")
        plot = figure_svg(figure)
    return _section(title, plot, _missing_note(missing, "no feature importance"))


def _shares(importance: Any) -> dict[str, float]:
    values = {
        str(name): abs(float(value))
        for name, value in _mapping(importance).items()
        if _finite(value)
    }
    total = sum(values.values())
    return {name: value / total for name, value in values.items()} if total > 0 else {}


# --- helpers ---------------------------------------------------------------------------------


def _panels(
    items: Sequence[Any],
    draw: Callable[[Axes, Any], None],
    *,
    panel_height: float,
    legend_below: bool = False,
) -> str:
    """One figure, one small plot per item (at most three a row): one <svg>. `legend_below`:
    one legend for all the plots, under them, from the first plot's lines."""
    columns = min(len(items), _PANELS_PER_ROW)
    rows = math.ceil(len(items) / columns)
    width = 5.6 if columns == 1 else 3.3 * columns
    with matplotlib.rc_context(PLOT_STYLE):
        figure = Figure(figsize=(width, panel_height * rows + 0.3), layout="constrained")
        grid = np.atleast_1d(figure.subplots(rows, columns, squeeze=False).ravel())
        for axes, item in zip(grid, items, strict=False):
            draw(axes, item)
        for axes in grid[len(items) :]:
            axes.set_visible(False)
        if legend_below:
            handles, names = grid[0].get_legend_handles_labels()
            figure.legend(handles, names, loc="outside lower center", ncols=3, fontsize=7)
        return figure_svg(figure)


def _section(title: str, plot: str, note: str) -> str:
    body = f'<div class="plot">{plot}</div>' if plot else ""
    return "\n".join(part for part in (f"<h2>{_text(title)}</h2>", body, note) if part)


def _missing_note(names: Sequence[str], what: str) -> str:
    if not names:
        return ""
    return (
        f"<p>{_text(_listed(names))}: {_text(what)} in the card (trained before cards recorded "
        "them, or the estimator gives no scores).</p>"
    )


def _evaluation(row: Row) -> Mapping[str, Any]:
    return _mapping(row.candidate.card.get("evaluation"))


def _curve_list(row: Row, key: str) -> list[Mapping[str, Any]]:
    curves = _evaluation(row).get(key)
    return [c for c in curves if isinstance(c, Mapping)] if isinstance(curves, list) else []


def _colour(rows: Sequence[Row], row: Row) -> str:
    """Each version keeps its colour in every plot: its place in the table."""
    return _PALETTE[list(rows).index(row) % len(_PALETTE)]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _floats(values: Any) -> list[float]:
    return [float(v) for v in values if _finite(v)] if isinstance(values, list) else []


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _listed(names: Sequence[str]) -> str:
    return ", ".join(names)


def _label(text: Any) -> str:
    text = re.sub(r"\s+", " ", str(text))
    return text if len(text) <= 28 else text[:27] + "…"


def _text(value: Any) -> str:
    return html.escape(str(value))
