"""The training report: one self-contained, escaped HTML page with a plot per finding."""

from __future__ import annotations

import dataclasses
import math
import xml.etree.ElementTree as ElementTree
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier

from conveyor.contracts.results import RunResult
from conveyor.training.card import build_card
from conveyor.training.gates import GateOutcome
from conveyor.training.metrics import baseline, evaluate, scorer
from conveyor.training.report import PERMUTATION_ROWS, feature_importance, render_training_report

NASTY = "<b>x</b>"
VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr", "source"}


@dataclasses.dataclass
class Trial:
    """Shaped like conveyor.training.search.Trial."""

    number: int
    params: dict[str, Any]
    score: float | None
    seconds: float
    state: str
    error: str | None = None


class Structure(HTMLParser):
    """Checks that every element is closed in order and collects the <svg> elements' text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.problems: list[str] = []
        self.svgs = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "svg":
            self.svgs += 1
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass  # <path .../> inside SVG

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.open[-1:]}")
            return
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def structure(page: str) -> Structure:
    parser = Structure()
    parser.feed(page)
    parser.close()
    assert parser.problems == []
    assert parser.open == []
    return parser


def svg_elements(page: str) -> list[str]:
    parts = page.split("<svg")[1:]
    return ["<svg" + part[: part.index("</svg>") + len("</svg>")] for part in parts]


def make_card(
    task: str, metric: str, metrics: dict, base: dict, columns: list[str], gates: list[GateOutcome]
) -> dict[str, Any]:
    result = RunResult.model_validate(
        {
            "model": "<i>model</i>",
            "pipeline": "iris",
            "run": "iris-20260301-120000-1",
            "featureset": "iris",
            "snapshot": "3f2a9c",
            "image": "conveyor:dev",
            "task": task,
            "target": "species",
            "estimator": "RandomForestClassifier",
            "params": {"n_estimators": 20, "note": "<script>"},
            "metric": metric,
            "score": metrics.get(metric),
            "metrics": metrics,
            "baseline": base,
            "gates": [gate.to_wire() for gate in gates],
            "passed": all(gate.passed for gate in gates),
            "artifact": {"uri": "s3://conveyor/m/model.skops", "digest": "sha256:" + "0" * 64},
            "training_seconds": 3.2,
            "started_at": datetime(2026, 3, 1, tzinfo=UTC),
            "finished_at": datetime(2026, 3, 1, tzinfo=UTC),
        }
    )
    return build_card(
        result,
        version=2,
        feature_schema={},
        feature_columns=columns,
        reference_profile={},
        search={"strategy": "random", "trials": 4},
    )


@pytest.fixture(scope="module")
def iris_report() -> str:
    X, y = load_iris(return_X_y=True)
    names = ["sepal_length", "sepal_width", NASTY, "petal_width"]
    labels = np.array(["setosa", "<script>x</script>", "virginica"])[y]
    train, test = np.arange(0, 150, 2), np.arange(1, 150, 2)
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(X[train], labels[train])
    evaluation = evaluate("classification", model, X[test], labels[test])
    base = baseline("classification", X[train], labels[train], X[test], labels[test])
    metrics = {k: v for k, v in evaluation.items() if not isinstance(v, dict)}
    card = make_card(
        "classification",
        "f1_macro",
        metrics,
        base,
        names,
        [
            GateOutcome("threshold:accuracy:min", True, "accuracy 0.96 >= 0.85"),
            GateOutcome(
                "beatProduction", False, "f1_macro 0.9 does not beat Production 0.93 by 0.01"
            ),
        ],
    )
    trials = [
        Trial(0, {"max_depth": 2}, 0.91, 0.4, "complete"),
        {
            "number": 1,
            "params": {"max_depth": NASTY},
            "score": None,
            "seconds": 0.1,
            "state": "failed",
            "error": "ValueError: <bad>",
        },
        Trial(2, {"max_depth": 4}, 0.95, 0.5, "complete"),
        Trial(3, {"max_depth": 6}, None, 0.0, "timeout"),
    ]
    importance = feature_importance(model, X[test], labels[test], names)
    return render_training_report(
        card, trials=trials, evaluation=evaluation, feature_importance=importance
    )


def test_the_report_is_well_formed_html_with_an_svg_per_plot(iris_report: str) -> None:
    assert iris_report.startswith("<!DOCTYPE html>")
    parsed = structure(iris_report)
    svgs = svg_elements(iris_report)
    assert parsed.svgs == len(svgs) == 3  # score per trial, confusion matrix, importance
    for svg in svgs:
        ElementTree.fromstring(svg)  # each plot is well-formed SVG
    assert "<script" not in iris_report
    assert "<!--" not in iris_report


def test_the_report_escapes_every_user_text(iris_report: str) -> None:
    assert NASTY not in iris_report
    assert "&lt;b&gt;x&lt;/b&gt;" in iris_report  # the feature, in the importance plot
    assert "&lt;i&gt;model&lt;/i&gt;" in iris_report  # the model name, in the title
    text = "".join(structure(iris_report).text)
    assert "<script>x</script>" in text  # a class label, shown as text
    assert "ValueError: <bad>" in text


def test_the_report_summarises_the_model_gates_and_trials(iris_report: str) -> None:
    text = " ".join(structure(iris_report).text)
    for expected in (
        "iris-20260301-120000-1",
        "3f2a9c",
        "rejected by its gates",
        "does not beat Production",
        "beatProduction",
        "threshold:accuracy:min",
        "Score per trial",
        "2 complete",
        "1 failed",
        "1 timeout",
        "n_estimators",
        "scikit-learn",
        "dummy baseline",
    ):
        assert expected in text, expected
    assert iris_report.count('class="fail">fail<') == 1
    assert iris_report.count('class="pass">pass<') == 1


def test_a_regression_report_plots_residuals_and_renders_the_same_twice() -> None:
    X, y = load_diabetes(return_X_y=True)
    model = Ridge().fit(X[:300], y[:300])
    evaluation = evaluate("regression", model, X[300:], y[300:])
    names = [f"f{i}" for i in range(X.shape[1])]
    metrics = {k: v for k, v in evaluation.items() if not isinstance(v, dict)}
    card = make_card("regression", "rmse", metrics, {"rmse": 77.0}, names, [])
    importance = feature_importance(model, X[300:], y[300:], names)

    def render() -> str:
        return render_training_report(
            card, trials=[], evaluation=evaluation, feature_importance=importance
        )

    page = render()
    structure(page)
    assert len(svg_elements(page)) == 2  # residuals and importance; no trial has a score
    assert "Residuals (holdout)" in page
    assert "No trial has a score." in page
    assert "No gates are configured." in page
    assert page == render()  # stable output: reports of the same run are identical


def test_native_importances_come_from_the_estimator() -> None:
    X, y = load_iris(return_X_y=True)
    names = ["a", "b", "c", "d"]
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    importance = feature_importance(forest, X, y, names)
    assert math.isclose(sum(importance.values()), 1.0)
    assert list(importance.values()) == sorted(importance.values(), reverse=True)
    linear = LogisticRegression(max_iter=500).fit(X, y)
    from_coefficients = feature_importance(linear, X, y, names)
    assert from_coefficients == pytest.approx(
        dict(zip(names, np.abs(linear.coef_).mean(axis=0), strict=True))
    )


def test_permutation_importance_covers_models_without_their_own() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(PERMUTATION_ROWS * 2, 3))
    y = (X[:, 0] > 0).astype(int)  # only the first feature matters
    model = KNeighborsClassifier(n_neighbors=5).fit(X, y)
    importance = feature_importance(
        model, X, y, ["signal", "noise1", "noise2"], metric_scorer=scorer("accuracy"), seed=1
    )
    assert next(iter(importance)) == "signal"
    assert importance["signal"] > 0.2 > abs(importance["noise1"])
    assert importance == feature_importance(
        model, X, y, ["signal", "noise1", "noise2"], metric_scorer=scorer("accuracy"), seed=1
    )
