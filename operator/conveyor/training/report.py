"""The training report of a model: one self-contained HTML page beside its card.

Plots are drawn with matplotlib's object API (`Figure` with the SVG canvas: no pyplot, no display,
no global state) and inlined as `<svg>`, so the page needs no script and no other file.
Everything that comes from the spec or the data (names, labels, parameters, messages) is
HTML-escaped; plot text is escaped by the SVG writer and never parsed as mathtext.

`feature_importance()` gives what the importance chart shows: the estimator's own importances
(`feature_importances_`, or the mean |coef_| of a linear model) when it has them, otherwise the
permutation importance on a bounded, seeded sample of the rows given.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from ..features.htmlpage import PLOT_STYLE, figure_svg, new_figure, page
from .metrics import greater_is_better

__all__ = ["PERMUTATION_ROWS", "feature_importance", "render_training_report"]

PERMUTATION_ROWS = 500
"""Rows permutation importance is computed on, at most (a seeded sample beyond that)."""

_PASS, _FAIL = '<span class="pass">pass</span>', '<span class="fail">fail</span>'
_MAX_BARS = 20
_MAX_TRIAL_ROWS = 50
_COLOUR, _BASELINE_COLOUR, _FAILED_COLOUR = "#2b6cb0", "#a0aec0", "#c53030"
_EXTRA_STYLE = """
.pass { color: #276749; font-weight: bold; }
.fail { color: #9b2c2c; font-weight: bold; }
.primary { font-weight: bold; }
"""


def render_training_report(
    card: Mapping[str, Any],
    *,
    trials: Sequence[Mapping[str, Any]],
    evaluation: Mapping[str, Any],
    feature_importance: Mapping[str, float] | None,
) -> str:
    """The HTML report of a trained model, from its card (card.build_card) and the run's data.

    `trials`: the search's trials (number, params, score, seconds, state, error), as mappings or
    dataclasses; `evaluation`: metrics.evaluate() on the holdout (its confusion_matrix or
    residuals are plotted); `feature_importance`: feature → importance, or None.
    """
    trial_rows = [_as_mapping(trial) for trial in trials]
    version = card.get("version")
    title = f"Training report: {card.get('model', '')}" + (f" v{version}" if version else "")
    sections = [
        _summary(card),
        _metrics_section(card),
        _gates_section(card),
        _search_section(card, trial_rows),
        _evaluation_section(card, evaluation),
        _importance_section(feature_importance),
        _params_section(card),
        _libraries_section(card),
    ]
    return page(title, sections, style=_EXTRA_STYLE)


def feature_importance(
    model: Any,
    X: Any,
    y: Any,
    feature_names: Sequence[str],
    *,
    metric_scorer: Any = None,
    seed: int = 0,
) -> dict[str, float]:
    """Importance per feature, largest first (see the module docstring for which kind)."""
    estimator = model.steps[-1][1] if hasattr(model, "steps") else model
    native = _native_importance(estimator, len(feature_names))
    if native is None:
        native = _permutation_importance(model, X, y, metric_scorer, seed)
    pairs = [
        (str(name), float(value) if math.isfinite(float(value)) else 0.0)
        for name, value in zip(feature_names, native, strict=True)
    ]
    return dict(sorted(pairs, key=lambda pair: -pair[1]))


def _native_importance(estimator: Any, width: int) -> np.ndarray | None:
    for attribute in ("feature_importances_", "coef_"):
        try:
            values = np.asarray(getattr(estimator, attribute), dtype=np.float64)
        except (AttributeError, TypeError, ValueError):
            continue
        if attribute == "coef_":
            values = np.abs(values)
            if values.ndim == 2:  # one row per class: the mean effect over classes
                values = values.mean(axis=0)
        if values.ndim == 1 and values.shape[0] == width:
            return values
    return None


def _permutation_importance(model: Any, X: Any, y: Any, scorer: Any, seed: int) -> np.ndarray:
    from sklearn.inspection import permutation_importance  # only models without their own

    rows = np.asarray(X)
    target = np.asarray(y)
    if len(rows) > PERMUTATION_ROWS:
        chosen = np.random.default_rng(seed).choice(len(rows), PERMUTATION_ROWS, replace=False)
        rows, target = rows[np.sort(chosen)], target[np.sort(chosen)]
    result = permutation_importance(
        model, rows, target, scoring=scorer, n_repeats=5, random_state=seed
    )
    return np.asarray(result.importances_mean, dtype=np.float64)


# --- sections -------------------------------------------------------------------------------


def _summary(card: Mapping[str, Any]) -> str:
    training = card.get("training") or {}
    passed = card.get("passed", True)
    verdict = (
        '<span class="pass">passed every gate</span>'
        if passed
        else '<span class="fail">rejected by its gates</span>'
    )
    rows = [
        ("Model", card.get("model")),
        ("Version", card.get("version")),
        ("Task", card.get("task")),
        ("Estimator", card.get("estimator")),
        ("Pipeline", card.get("pipeline")),
        ("Run", card.get("run")),
        ("FeatureSet", card.get("featureset")),
        ("Snapshot", card.get("snapshot")),
        ("Image", card.get("image")),
        ("Target", card.get("target")),
        ("Features", len(card.get("feature_columns") or [])),
        ("Training time", f"{_number(training.get('seconds'))} s"),
        ("Started", training.get("started_at")),
        ("Finished", training.get("finished_at")),
    ]
    metric = card.get("metric", "")
    score = _number(card.get("score"))
    baseline = _number((card.get("baseline") or {}).get(metric))
    table = _table(("", ""), [(_text(name), _text(_shown(value))) for name, value in rows])
    return (
        "<h2>Summary</h2>\n"
        f"<p>{_text(metric)} on the holdout: <strong>{_text(score)}</strong> "
        f"(dummy baseline {_text(baseline)}); the model {verdict}.</p>\n{table}"
    )


def _metrics_section(card: Mapping[str, Any]) -> str:
    metrics = card.get("metrics") or {}
    baseline = card.get("baseline") or {}
    primary = card.get("metric")
    rows = []
    for name in dict.fromkeys([*metrics, *baseline]):
        value = metrics.get(name)
        if isinstance(value, Mapping | list):
            continue  # the confusion matrix and residuals are plotted, not tabulated
        marker = ' class="primary"' if name == primary else ""
        rows.append(
            (
                f"<span{marker}>{_text(name)}</span>",
                _text(_number(value)),
                _text(_number(baseline.get(name))),
            )
        )
    return "<h2>Holdout metrics</h2>\n" + _table(("metric", "model", "dummy baseline"), rows)


def _gates_section(card: Mapping[str, Any]) -> str:
    gates = card.get("gates") or []
    if not gates:
        return "<h2>Validation gates</h2>\n<p>No gates are configured.</p>"
    rows = [
        (
            _text(gate.get("name", "")),
            _PASS if gate.get("passed") else _FAIL,
            _text(gate.get("message", "")),
        )
        for gate in gates
    ]
    return "<h2>Validation gates</h2>\n" + _table(("gate", "result", "measured"), rows)


def _search_section(card: Mapping[str, Any], trials: list[Mapping[str, Any]]) -> str:
    search = (card.get("training") or {}).get("search") or {}
    strategy = search.get("strategy", "none")
    metric = str(card.get("metric", ""))
    scored = [t for t in trials if _finite(t.get("score"))]
    states: dict[str, int] = {}
    for trial in trials:
        state = str(trial.get("state") or "complete")
        states[state] = states.get(state, 0) + 1
    counts = ", ".join(f"{count} {state}" for state, count in sorted(states.items()))
    heading = (
        f"<h2>Search</h2>\n<p>Strategy {_text(strategy)}: {len(trials)} trial(s)"
        f"{' (' + _text(counts) + ')' if counts else ''}, scored by cross-validated "
        f"{_text(metric)}.</p>"
    )
    plot = _trials_plot(scored, metric) if scored else "<p>No trial has a score.</p>"
    ranked = sorted(
        trials,
        key=lambda t: _rank_key(t.get("score"), metric),
    )[:_MAX_TRIAL_ROWS]
    rows = [
        (
            _text(trial.get("number", "")),
            _text(_number(trial.get("score"))),
            _text(trial.get("state", "")),
            _text(_number(trial.get("seconds"))),
            _text(_json(trial.get("params", {}))),
            _text(trial.get("error") or ""),
        )
        for trial in ranked
    ]
    table = _table(("trial", "score", "state", "seconds", "params", "error"), rows) if rows else ""
    return "\n".join(part for part in (heading, f'<div class="plot">{plot}</div>', table) if part)


def _evaluation_section(card: Mapping[str, Any], evaluation: Mapping[str, Any]) -> str:
    if card.get("task") == "classification":
        matrix = evaluation.get("confusion_matrix") or {}
        if matrix.get("matrix"):
            plot = _confusion_plot(matrix["labels"], matrix["matrix"])
        else:
            plot = "<p>No confusion matrix was computed.</p>"
        title = "Confusion matrix (holdout)"
    else:
        residuals = evaluation.get("residuals") or {}
        if residuals.get("predicted"):
            plot = _residuals_plot(residuals["predicted"], residuals["actual"])
        else:
            plot = "<p>No residuals were computed.</p>"
        title = "Residuals (holdout)"
    return f'<h2>{title}</h2>\n<div class="plot">{plot}</div>'


def _importance_section(importance: Mapping[str, float] | None) -> str:
    if not importance:
        return "<h2>Feature importance</h2>\n<p>Not computed for this model.</p>"
    ranked = sorted(importance.items(), key=lambda item: -item[1])[:_MAX_BARS]
    note = f" (the top {_MAX_BARS} of {len(importance)})" if len(importance) > _MAX_BARS else ""
    return f'<h2>Feature importance{note}</h2>\n<div class="plot">{_importance_plot(ranked)}</div>'


def _params_section(card: Mapping[str, Any]) -> str:
    params = card.get("params") or {}
    rows = [(_text(name), _text(_json(value))) for name, value in sorted(params.items())]
    if not rows:
        return "<h2>Parameters</h2>\n<p>The estimator's defaults.</p>"
    return "<h2>Parameters</h2>\n" + _table(("parameter", "value"), rows)


def _libraries_section(card: Mapping[str, Any]) -> str:
    libraries = card.get("libraries") or {}
    rows = [(_text(name), _text(_shown(version))) for name, version in libraries.items()]
    return "<h2>Library versions</h2>\n" + _table(("library", "version"), rows)


# --- plots ----------------------------------------------------------------------------------


def _trials_plot(scored: list[Mapping[str, Any]], metric: str) -> str:
    higher = _greater_is_better(metric)
    numbers = [int(t.get("number", i)) for i, t in enumerate(scored)]
    scores = [float(t["score"]) for t in scored]
    order = np.argsort(numbers, kind="stable")
    numbers = [numbers[i] for i in order]
    scores = [scores[i] for i in order]
    best = np.maximum.accumulate(scores) if higher else np.minimum.accumulate(scores)
    with matplotlib.rc_context(PLOT_STYLE):
        figure = new_figure(2.6)
        axes = figure.subplots()
        axes.scatter(numbers, scores, color=_COLOUR, s=18, label="trial")
        axes.step(numbers, best, where="post", color=_BASELINE_COLOUR, label="best so far")
        axes.set_xlabel("trial")
        axes.set_ylabel(_label(metric) + ("" if higher else " (lower is better)"))
        axes.set_title("Score per trial")
        axes.legend()
        return figure_svg(figure)


def _confusion_plot(labels: Sequence[Any], matrix: Sequence[Sequence[float]]) -> str:
    counts = np.asarray(matrix, dtype=np.float64)
    names = [_label(label) for label in labels]
    size = max(2.8, min(7.0, 1.2 + 0.5 * len(names)))
    with matplotlib.rc_context(PLOT_STYLE):
        figure = Figure(figsize=(size + 1.2, size), layout="constrained")
        axes = figure.subplots()
        image = axes.imshow(counts, cmap="Blues")
        figure.colorbar(image, ax=axes)
        if len(names) <= 20:
            threshold = counts.max() / 2 if counts.size else 0
            for (row, column), value in np.ndenumerate(counts):
                axes.text(
                    column,
                    row,
                    f"{value:g}",
                    ha="center",
                    va="center",
                    color="white" if value > threshold else "black",
                )
        ticks = list(range(len(names)))
        axes.set_xticks(ticks, names, rotation=30 if len(names) > 4 else 0, ha="right")
        axes.set_yticks(ticks, names)
        axes.set_xlabel("predicted")
        axes.set_ylabel("actual")
        return figure_svg(figure)


def _residuals_plot(predicted: Sequence[float], actual: Sequence[float]) -> str:
    guess = np.asarray(predicted, dtype=np.float64)
    residual = np.asarray(actual, dtype=np.float64) - guess
    with matplotlib.rc_context(PLOT_STYLE):
        figure = new_figure(2.6)
        axes = figure.subplots()
        axes.scatter(guess, residual, color=_COLOUR, s=10, alpha=0.7)
        axes.axhline(0.0, color=_FAILED_COLOUR, linewidth=1)
        axes.set_xlabel("predicted")
        axes.set_ylabel("actual - predicted")
        return figure_svg(figure)


def _importance_plot(ranked: list[tuple[str, float]]) -> str:
    names = [_label(name) for name, _ in reversed(ranked)]
    values = [value for _, value in reversed(ranked)]
    with matplotlib.rc_context(PLOT_STYLE):
        figure = new_figure(height=max(1.6, 0.25 * len(names) + 0.8))
        axes = figure.subplots()
        axes.barh(range(len(names)), values, color=_COLOUR)
        axes.set_yticks(list(range(len(names))), names)
        axes.set_xlabel("importance")
        return figure_svg(figure)


# --- formatting -----------------------------------------------------------------------------


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table of cells that are already HTML (escape before)."""
    head = "".join(f"<th>{cell}</th>" for cell in header) if any(header) else ""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table>{'<tr>' + head + '</tr>' if head else ''}{body}</table>"


def _text(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _shown(value: Any) -> str:
    return "—" if value is None or value == "" else str(value)


def _number(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _label(text: Any) -> str:
    text = re.sub(r"\s+", " ", str(text))
    return text if len(text) <= 24 else text[:23] + "…"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _greater_is_better(metric: str) -> bool:
    try:
        return greater_is_better(metric)
    except (KeyError, ValueError):
        return True


def _rank_key(score: Any, metric: str) -> tuple[int, float]:
    """Best trials first; trials without a score last."""
    if not _finite(score):
        return (1, 0.0)
    return (0, -float(score) if _greater_is_better(metric) else float(score))


def _as_mapping(trial: Any) -> Mapping[str, Any]:
    if dataclasses.is_dataclass(trial) and not isinstance(trial, type):
        return dataclasses.asdict(trial)
    return trial
