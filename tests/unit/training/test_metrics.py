"""Metrics: natural signs, scorer directions, JSON-safe evaluations and the dummy baseline."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import f1_score
from sklearn.svm import SVC

from conveyor.training.metrics import (
    CLASSIFICATION,
    REGRESSION,
    baseline,
    check_metric,
    default_metric,
    evaluate,
    greater_is_better,
    score,
    scorer,
)

LOSSES = {"log_loss", "rmse", "mae", "mape"}


@pytest.fixture(scope="module")
def iris_model() -> tuple[RandomForestClassifier, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    X, y = load_iris(return_X_y=True)
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(X[::2], y[::2])
    return model, X[::2], y[::2], X[1::2], y[1::2]


@pytest.fixture(scope="module")
def diabetes_model() -> tuple[LinearRegression, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    X, y = load_diabetes(return_X_y=True)
    return LinearRegression().fit(X[::2], y[::2]), X[::2], y[::2], X[1::2], y[1::2]


@pytest.mark.parametrize("metric", CLASSIFICATION + REGRESSION)
def test_direction_of_every_metric(metric: str) -> None:
    assert greater_is_better(metric) is (metric not in LOSSES)


@pytest.mark.parametrize("metric", CLASSIFICATION)
def test_classification_scorers_are_higher_is_better(metric: str, iris_model: tuple) -> None:
    model, *_, X_test, y_test = iris_model
    natural = score(metric, model, X_test, y_test)
    sign = 1 if greater_is_better(metric) else -1
    assert scorer(metric)(model, X_test, y_test) == pytest.approx(sign * natural)
    assert natural >= 0


@pytest.mark.parametrize("metric", REGRESSION)
def test_regression_scorers_are_higher_is_better(metric: str, diabetes_model: tuple) -> None:
    model, *_, X_test, y_test = diabetes_model
    natural = score(metric, model, X_test, y_test)
    sign = 1 if greater_is_better(metric) else -1
    assert scorer(metric)(model, X_test, y_test) == pytest.approx(sign * natural)
    if metric != "r2":
        assert natural > 0, "errors are reported positive"


def test_f1_is_binary_on_two_classes_and_macro_on_more(iris_model: tuple) -> None:
    model, *_, X_test, y_test = iris_model
    assert score("f1", model, X_test, y_test) == pytest.approx(
        f1_score(y_test, model.predict(X_test), average="macro")
    )
    X, y = load_breast_cancer(return_X_y=True)
    binary = LogisticRegression(max_iter=5000).fit(X[::2], y[::2])
    assert score("f1", binary, X[1::2], y[1::2]) == pytest.approx(
        f1_score(y[1::2], binary.predict(X[1::2]))
    )


def test_roc_auc_uses_decision_function_without_probabilities() -> None:
    X, y = load_breast_cancer(return_X_y=True)
    model = SVC().fit(X[::2], y[::2])
    assert 0.9 < score("roc_auc", model, X[1::2], y[1::2]) <= 1
    report = evaluate("classification", model, X[1::2], y[1::2])
    assert "roc_auc" in report and "log_loss" not in report


def test_classification_evaluation_is_json_safe(iris_model: tuple) -> None:
    model, *_, X_test, y_test = iris_model
    report = evaluate("classification", model, X_test, y_test)
    json.dumps(report, allow_nan=False)
    assert set(CLASSIFICATION) <= set(report)
    confusion = report["confusion_matrix"]
    assert confusion["labels"] == [0, 1, 2]
    assert np.array(confusion["matrix"]).sum() == len(y_test)
    assert np.trace(confusion["matrix"]) / len(y_test) == pytest.approx(report["accuracy"])


def test_string_labels_are_kept_in_the_confusion_matrix() -> None:
    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    model = LogisticRegression(max_iter=1000).fit(X, names)
    report = evaluate("classification", model, X, names)
    json.dumps(report, allow_nan=False)
    assert report["confusion_matrix"]["labels"] == ["setosa", "versicolor", "virginica"]


def test_regression_evaluation_is_json_safe_with_sampled_residuals() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1500, 3))
    y = X @ np.array([1.0, 2.0, -1.0]) + rng.normal(scale=0.1, size=1500)
    report = evaluate("regression", LinearRegression().fit(X, y), X, y)
    json.dumps(report, allow_nan=False)
    assert set(REGRESSION) <= set(report)
    assert report["r2"] > 0.99
    assert len(report["residuals"]["predicted"]) == len(report["residuals"]["actual"]) == 1000


def test_undefined_metrics_become_null_not_nan() -> None:
    X = np.arange(4.0).reshape(-1, 1)
    model = LinearRegression().fit(X, np.arange(4.0))
    report = evaluate("regression", model, X[:1], np.array([0.0]))  # r2 on one row: undefined
    assert report["r2"] is None
    json.dumps(report, allow_nan=False)


def test_a_real_model_beats_the_dummy_baseline(iris_model: tuple) -> None:
    model, X_train, y_train, X_test, y_test = iris_model
    dummy = baseline("classification", X_train, y_train, X_test, y_test)
    real = evaluate("classification", model, X_test, y_test)
    assert dummy["accuracy"] == pytest.approx(1 / 3)
    assert real["accuracy"] > dummy["accuracy"] + 0.5
    assert all(not isinstance(value, dict) for value in dummy.values())
    json.dumps(dummy, allow_nan=False)


def test_regression_baseline_predicts_the_mean(diabetes_model: tuple) -> None:
    model, X_train, y_train, X_test, y_test = diabetes_model
    dummy = baseline("regression", X_train, y_train, X_test, y_test)
    assert dummy["rmse"] > score("rmse", model, X_test, y_test)
    assert dummy["r2"] < 0.05


def test_metric_must_fit_the_task_and_estimator() -> None:
    assert check_metric("classification", "f1_macro") == []
    assert check_metric("regression", "f1_macro") == [
        "spec.metric: f1_macro is a classification metric but the task is regression; "
        "use rmse, mae, r2, mape"
    ]
    assert check_metric("classification", "log_loss", estimator=SVC()) == [
        "spec.metric: log_loss needs probabilities but SVC has no predict_proba"
    ]
    assert check_metric("classification", "roc_auc", estimator=SVC()) == []
    assert check_metric("regression", "r3")[0].startswith('spec.metric: unknown metric "r3"')
    assert (default_metric("classification"), default_metric("regression")) == ("accuracy", "rmse")
    with pytest.raises(ValueError, match='unknown metric "auc"'):
        greater_is_better("auc")
