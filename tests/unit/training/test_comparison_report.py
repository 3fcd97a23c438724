"""The comparison as one self-contained, escaped HTML page: the table with the best cells
highlighted, the fairness warning, and one <svg> per plot."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ElementTree
from typing import Any

import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier

from conveyor.training.comparison import Candidate, compare
from conveyor.training.comparison_report import (
    BEST_CELL_STYLE,
    comparison_sections,
    render_comparison_report,
)
from conveyor.training.metrics import evaluate
from tests.unit.training import test_comparison as cards
from tests.unit.training import test_report as report_checks

HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def iris() -> list[Candidate]:
    return cards.iris_candidates()


@pytest.fixture(scope="module")
def diabetes() -> list[Candidate]:
    return cards.diabetes_candidates()


def svgs(page: str) -> list[str]:
    found = report_checks.svg_elements(page)
    for svg in found:
        ElementTree.fromstring(svg)  # each plot is well-formed SVG
    return found


def test_a_classification_report_has_the_table_and_one_svg_per_plot(
    iris: list[Candidate],
) -> None:
    page = render_comparison_report(compare(iris), "Comparison: FeatureSet iris")
    assert page.startswith("<!DOCTYPE html>")
    parsed = report_checks.structure(page)
    # ROC, precision-recall, the confusion matrices and the feature importances
    assert parsed.svgs == len(svgs(page)) == 4
    text = " ".join(parsed.text)
    for expected in (
        "Versions compared",
        "ROC curves (one-vs-rest, one plot per class)",
        "Precision-recall curves",
        "Confusion matrices",
        "Feature importance",
        "iris-classifier-v1",
        "iris-logistic-v1",
        "the same holdout (5e0c4f8a9d1b2c3e, 38 rows)",
        "setosa",  # a class, in the curves' titles
        "petal_length_cm",  # a feature, in the importance chart
    ):
        assert expected in text, expected
    assert "Warning" not in text
    assert "<script" not in page and "<!--" not in page and "http" not in page.split("<svg")[0]


def test_the_best_cells_are_highlighted(iris: list[Candidate]) -> None:
    comparison = compare(iris)
    (table,) = [s for s in comparison_sections(comparison) if "<table" in s]
    marked = sum(len(row.best) for row in comparison.rows)
    assert marked > 0
    assert table.count(f'style="{BEST_CELL_STYLE}"') == marked + 1  # and once in the legend
    assert table.count('class="number best"') == marked


def test_a_regression_report_overlays_predictions_and_residuals(
    diabetes: list[Candidate],
) -> None:
    page = render_comparison_report(compare(diabetes), "Comparison: FeatureSet diabetes")
    parsed = report_checks.structure(page)
    # predicted against actual, the residuals, the feature importances
    assert parsed.svgs == len(svgs(page)) == 3
    text = " ".join(parsed.text)
    assert "Predicted against actual" in text and "Residuals" in text
    assert "ROC" not in text and "Confusion" not in text


def binary_curves(model: Any, X: Any, y: Any) -> dict[str, list[dict[str, Any]]]:
    """The positive class's curves only, as the card keeps a binary classifier's."""
    both = cards._curves(model, X, y)
    return {key: curves[1:] for key, curves in both.items()}


def test_a_binary_classifier_has_one_curve_per_model() -> None:
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    candidates = []
    for estimator in (DecisionTreeClassifier(max_depth=3), LogisticRegression(max_iter=5000)):
        model = estimator.fit(X_train, y_train)
        report = evaluate("classification", model, X_test, y_test)
        card = cards.literal_card(type(estimator).__name__.lower(), 1, {"f1": report["f1"]})
        card["metric"] = "f1"
        card["evaluation"] = {
            "confusion_matrix": report["confusion_matrix"],
            **binary_curves(model, X_test, y_test),
            "feature_importance": None,
        }
        candidates.append(cards.candidate(card))
    page = render_comparison_report(compare(candidates), "binary")
    parsed = report_checks.structure(page)
    assert parsed.svgs == 3  # ROC, precision-recall, confusion; no importance recorded
    text = " ".join(parsed.text)
    assert "one plot per class" not in text
    assert "no feature importance in the card" in text


def test_hostile_names_are_escaped_everywhere(iris: list[Candidate]) -> None:
    hostile = []
    for c in iris:
        card: dict[str, Any] = {**c.card, "estimator": HOSTILE, "pipeline": HOSTILE}
        evaluation = dict(card["evaluation"])
        evaluation["roc"] = [{**curve, "label": HOSTILE} for curve in evaluation["roc"][:1]]
        evaluation["feature_importance"] = {HOSTILE: 1.0}
        card["evaluation"] = evaluation
        hostile.append(
            dataclasses.replace(
                c,
                name=f"{c.name}{HOSTILE}",
                pipeline=HOSTILE,
                stage=HOSTILE,
                card=card,
                problem=HOSTILE,
            )
        )
    comparison = compare(hostile)
    page = render_comparison_report(comparison, f"Comparison {HOSTILE}")
    assert HOSTILE not in page
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    text = " ".join(report_checks.structure(page).text)
    assert HOSTILE in text  # shown as text, in the table, the title and the plots


def test_different_holdouts_are_a_visible_warning() -> None:
    candidates = [
        cards.candidate(cards.literal_card("forest", 1, {"f1_macro": 0.97}, fingerprint="a" * 16)),
        cards.candidate(cards.literal_card("logistic", 1, {"f1_macro": 0.9}, fingerprint="b" * 16)),
    ]
    page = render_comparison_report(compare(candidates), "t")
    text = " ".join(report_checks.structure(page).text)
    assert "Warning:" in text
    assert f"holdout {'a' * 16} (rows 38): forest-v1" in text
    assert "within one holdout" in text
    assert 'class="number best"' not in page  # one version per holdout: none ranked


def test_cards_without_evaluation_say_so_instead_of_a_plot() -> None:
    candidates = [
        cards.candidate(cards.literal_card(name, 1, {"f1_macro": score}))
        for name, score in (("a", 0.9), ("b", 0.8))
    ]
    broken = dataclasses.replace(candidates[0], name="c-v1", card={}, problem="card not found")
    page = render_comparison_report(compare([*candidates, broken]), "old cards")
    parsed = report_checks.structure(page)
    assert parsed.svgs == 0
    text = " ".join(parsed.text)
    assert "a-v1, b-v1: no such curves in the card" in text
    assert "card not found" in text


def test_thirty_versions_share_one_legend_under_the_curves(iris: list[Candidate]) -> None:
    """Found by bench/experiments.py: thirty names in each small plot's legend left matplotlib
    no room for the axes (a UserWarning, an error here)."""
    many = [
        dataclasses.replace(
            iris[i % len(iris)], name=f"model-{i}-v1", pipeline=f"p{i}", model=f"model-{i}"
        )
        for i in range(30)
    ]
    page = render_comparison_report(compare(many), "thirty")
    assert len(svgs(page)) == 4
    assert page.count("model-29-v1") >= 3  # the table, and each curve figure's one legend
