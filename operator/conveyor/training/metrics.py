"""Metrics: the pipeline's score, the standard evaluation set and the dummy baseline.

Every metric is reported in its natural sign (rmse is positive); `greater_is_better` tells which
way is better. Scorers for search and cross-validation follow scikit-learn's convention instead:
higher is always better, so losses are negated there.

Binary and multiclass problems are told apart by the fitted model's `classes_`: on more than two
classes f1, precision and recall are macro averages and roc_auc is one-vs-rest.
"""

from __future__ import annotations

import contextlib
import functools
import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

__all__ = [
    "CLASSIFICATION",
    "REGRESSION",
    "MetricScorer",
    "baseline",
    "check_metric",
    "default_metric",
    "evaluate",
    "greater_is_better",
    "json_float",
    "json_value",
    "live_metric_name",
    "metric_task",
    "quiet_metric_warnings",
    "score",
    "scorer",
]

CLASSIFICATION = (
    "accuracy",
    "balanced_accuracy",
    "f1",
    "f1_macro",
    "f1_weighted",
    "precision",
    "recall",
    "roc_auc",
    "log_loss",
)
REGRESSION = ("rmse", "mae", "r2", "mape")
LOSSES = frozenset({"log_loss", "rmse", "mae", "mape"})
PROBABILITY_METRICS = frozenset({"roc_auc", "log_loss"})
RESIDUAL_SAMPLE = 1000


def greater_is_better(metric: str) -> bool:
    """Whether a larger value of `metric` is better (False for losses and errors)."""
    metric_task(metric)
    return metric not in LOSSES


def live_metric_name(metrics: Mapping[str, Any], preferred: str | None) -> str | None:
    """The live metric a version is judged on: the pipeline's when the monitor computes it
    live, else accuracy (classifiers) or rmse (regressors); None without live metrics."""
    return next((m for m in (preferred, "accuracy", "rmse") if m and m in metrics), None)


def metric_task(metric: str) -> str:
    """The task a metric belongs to; ValueError for an unknown metric."""
    if metric in CLASSIFICATION:
        return "classification"
    if metric in REGRESSION:
        return "regression"
    known = ", ".join(CLASSIFICATION + REGRESSION)
    raise ValueError(f'unknown metric "{metric}"; use one of {known}')


def default_metric(task: str) -> str:
    """The metric used when a pipeline names none: accuracy or rmse."""
    return "accuracy" if task == "classification" else "rmse"


def check_metric(
    task: str, metric: str, *, estimator: Any = None, field: str = "spec.metric"
) -> list[str]:
    """Problems with using `metric` for `task` (and `estimator`, when given)."""
    try:
        belongs_to = metric_task(metric)
    except ValueError as error:
        return [f"{field}: {error}"]
    if belongs_to != task:
        choices = ", ".join(CLASSIFICATION if task == "classification" else REGRESSION)
        return [f"{field}: {metric} is a {belongs_to} metric but the task is {task}; use {choices}"]
    if metric == "log_loss" and estimator is not None and not hasattr(estimator, "predict_proba"):
        name = type(estimator).__name__
        return [f"{field}: log_loss needs probabilities but {name} has no predict_proba"]
    if metric == "roc_auc" and estimator is not None and not _can_rank(estimator):
        name = type(estimator).__name__
        return [f"{field}: roc_auc needs predict_proba or decision_function, {name} has neither"]
    return []


class MetricScorer:
    """A scikit-learn scorer, `scorer(estimator, X, y) -> float`, where higher is better."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.sign = 1.0 if greater_is_better(metric) else -1.0

    def __call__(self, estimator: Any, X: Any, y: Any) -> float:
        return self.sign * score(self.metric, estimator, X, y)

    def __repr__(self) -> str:
        return f"MetricScorer({self.metric!r})"


def scorer(metric: str) -> MetricScorer:
    """The scorer for search and cross-validation (higher is better: losses negated)."""
    return MetricScorer(metric)


def score(metric: str, model: Any, X: Any, y: Any) -> float:
    """`metric` of a fitted `model` on (X, y), in the metric's natural sign."""
    metric_task(metric)  # raises, listing the metrics, for an unknown one
    compute = _metric_table()[metric]
    with quiet_metric_warnings():
        return float(compute(model, X, np.asarray(y)))


def evaluate(task: str, model: Any, X: Any, y: Any) -> dict[str, Any]:
    """The standard metrics of a fitted model on (X, y), JSON-serialisable (NaN becomes None).

    classification: every classification metric that applies (roc_auc and log_loss need
    probabilities and two classes or more), plus "confusion_matrix": {"labels", "matrix"}.
    regression: rmse, mae, r2, mape, plus "residuals": {"predicted", "actual"} (a seeded sample
    of at most 1000 rows, for plots).
    """
    y = np.asarray(y)
    metrics: dict[str, Any] = {
        name: json_float(score(name, model, X, y)) for name in _applicable(task, model, y)
    }
    predicted = model.predict(X)
    if task == "classification":
        metrics["confusion_matrix"] = _confusion(model, y, predicted)
    else:
        metrics["residuals"] = _residuals(y, predicted)
    return metrics


def baseline(task: str, X_train: Any, y_train: Any, X_test: Any, y_test: Any) -> dict[str, float]:
    """The standard metrics of a dummy model (most frequent class, or mean) on the holdout.

    A trained model that does not clearly beat this has learned nothing from the features.
    """
    from sklearn.dummy import DummyClassifier, DummyRegressor

    dummy = (
        DummyClassifier(strategy="most_frequent")
        if task == "classification"
        else DummyRegressor(strategy="mean")
    )
    dummy.fit(X_train, y_train)
    report = evaluate(task, dummy, X_test, y_test)
    return {name: value for name, value in report.items() if not isinstance(value, dict)}


# --- the metrics themselves ------------------------------------------------------------------


def _classes(model: Any) -> np.ndarray:
    return np.asarray(model.classes_)


def _average(model: Any) -> str:
    return "binary" if len(_classes(model)) == 2 else "macro"


def _averaged(function: Callable[..., float]) -> Callable[[Any, Any, np.ndarray], float]:
    def compute(model: Any, X: Any, y: np.ndarray) -> float:
        average = _average(model)
        options: dict[str, Any] = {"average": average, "zero_division": 0}
        if average == "binary":
            options["pos_label"] = _classes(model)[1]
        else:
            options["labels"] = _classes(model)
        return function(y, model.predict(X), **options)

    return compute


def _roc_auc(model: Any, X: Any, y: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    classes = _classes(model)
    if len(np.unique(y)) < 2:
        return math.nan  # undefined on one class
    if hasattr(model, "predict_proba"):
        scores = model.predict_proba(X)
    else:
        scores = model.decision_function(X)
    if len(classes) == 2:
        positive = scores[:, 1] if scores.ndim == 2 else scores
        return roc_auc_score(y == classes[1], positive)
    if len(np.unique(y)) < len(classes):
        return math.nan  # one-vs-rest needs every class in the rows
    return roc_auc_score(y, scores, multi_class="ovr", labels=classes)


def _log_loss(model: Any, X: Any, y: np.ndarray) -> float:
    from sklearn.metrics import log_loss

    return log_loss(y, model.predict_proba(X), labels=_classes(model))


@functools.cache
def _metric_table() -> dict[str, Callable[[Any, Any, np.ndarray], float]]:
    from sklearn import metrics as m

    def plain(function: Callable[..., float]) -> Callable[[Any, Any, np.ndarray], float]:
        return lambda model, X, y: function(y, model.predict(X))

    def weighted_f1(model: Any, X: Any, y: np.ndarray) -> float:
        return m.f1_score(y, model.predict(X), average="weighted", zero_division=0)

    def macro_f1(model: Any, X: Any, y: np.ndarray) -> float:
        return m.f1_score(y, model.predict(X), average="macro", zero_division=0)

    return {
        "accuracy": plain(m.accuracy_score),
        "balanced_accuracy": plain(m.balanced_accuracy_score),
        "f1": _averaged(m.f1_score),
        "f1_macro": macro_f1,
        "f1_weighted": weighted_f1,
        "precision": _averaged(m.precision_score),
        "recall": _averaged(m.recall_score),
        "roc_auc": _roc_auc,
        "log_loss": _log_loss,
        "rmse": plain(m.root_mean_squared_error),
        "mae": plain(m.mean_absolute_error),
        "r2": plain(m.r2_score),
        "mape": plain(m.mean_absolute_percentage_error),
    }


def _applicable(task: str, model: Any, y: np.ndarray) -> list[str]:
    if task == "regression":
        return list(REGRESSION)
    names = [name for name in CLASSIFICATION if name not in PROBABILITY_METRICS]
    if len(_classes(model)) > 1:
        if _can_rank(model):
            names.append("roc_auc")
        if hasattr(model, "predict_proba"):
            names.append("log_loss")
    return names


def _can_rank(model: Any) -> bool:
    return hasattr(model, "predict_proba") or hasattr(model, "decision_function")


def _confusion(model: Any, y: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import confusion_matrix

    labels = np.unique(np.concatenate([_classes(model), y, predicted]))
    matrix = confusion_matrix(y, predicted, labels=labels)
    return {"labels": [json_value(label) for label in labels], "matrix": matrix.tolist()}


def _residuals(y: np.ndarray, predicted: np.ndarray) -> dict[str, list[float | None]]:
    rows = np.arange(len(y))
    if len(rows) > RESIDUAL_SAMPLE:
        rows = np.sort(np.random.default_rng(0).choice(rows, RESIDUAL_SAMPLE, replace=False))
    return {
        "predicted": [json_float(value) for value in np.asarray(predicted, dtype=float)[rows]],
        "actual": [json_float(value) for value in np.asarray(y, dtype=float)[rows]],
    }


def json_float(value: Any) -> float | None:
    """A number as JSON takes it: None for NaN and infinities."""
    number = float(value)
    return number if math.isfinite(number) else None


def json_value(value: Any) -> Any:
    """A numpy scalar as the Python value JSON takes (labels, class names)."""
    return value.item() if isinstance(value, np.generic) else value


@contextlib.contextmanager
def quiet_metric_warnings() -> Iterator[None]:
    """Silence scikit-learn's warnings about ill-defined metrics (one class in a small holdout,
    a dummy predicting a class the rows lack): the value returned (0, or NaN → None) says so."""
    from sklearn.exceptions import UndefinedMetricWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.filterwarnings("ignore", message=".*y_pred contains classes not in y_true.*")
        yield
