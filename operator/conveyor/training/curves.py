"""ROC and precision-recall curves of a classifier on the holdout, small enough for a model card.

The card keeps the curves so a comparison of many models can overlay them without loading any
model or reading the snapshot again. A binary classifier has one curve (its positive class, the
second of `classes_`, as scikit-learn's metrics take it); a multiclass one has one per class,
one-vs-rest. Each curve keeps at most MAX_POINTS points (evenly chosen, ends kept).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .metrics import json_float, json_value, quiet_metric_warnings

__all__ = ["MAX_POINTS", "classifier_curves"]

MAX_POINTS = 200


def classifier_curves(model: Any, X: Any, y: Any) -> dict[str, list[dict[str, Any]]]:
    """{"roc": [...], "precision_recall": [...]}, one entry per curve (see the module docstring);
    both empty when the model gives no scores or the rows hold a single class."""
    scores = _scores(model, X)
    y = np.asarray(y)
    classes = np.asarray(model.classes_)
    if scores is None or len(classes) < 2 or len(np.unique(y)) < 2:
        return {"roc": [], "precision_recall": []}
    if scores.ndim == 1:  # a binary decision_function: the positive class's score
        scores = np.column_stack([-scores, scores])
    shown = [1] if len(classes) == 2 else range(len(classes))
    roc, pr = [], []
    with quiet_metric_warnings():
        for column in shown:
            actual = y == classes[column]
            if actual.all() or not actual.any():
                continue  # a class absent from the holdout has no curve
            roc.append(_roc(classes[column], actual, scores[:, column]))
            pr.append(_precision_recall(classes[column], actual, scores[:, column]))
    return {"roc": roc, "precision_recall": pr}


def _scores(model: Any, X: Any) -> np.ndarray | None:
    for method in ("predict_proba", "decision_function"):
        if hasattr(model, method):
            return np.asarray(getattr(model, method)(X), dtype=np.float64)
    return None


def _roc(label: Any, actual: np.ndarray, score: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(actual, score)
    keep = _thinned(len(fpr))
    return {
        "label": json_value(label),
        "fpr": _rounded(fpr[keep]),
        "tpr": _rounded(tpr[keep]),
        "auc": json_float(roc_auc_score(actual, score)),
    }


def _precision_recall(label: Any, actual: np.ndarray, score: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    precision, recall, _ = precision_recall_curve(actual, score)
    keep = _thinned(len(recall))
    return {
        "label": json_value(label),
        "recall": _rounded(recall[keep]),
        "precision": _rounded(precision[keep]),
        "average_precision": json_float(average_precision_score(actual, score)),
    }


def _thinned(points: int) -> np.ndarray:
    if points <= MAX_POINTS:
        return np.arange(points)
    return np.unique(np.linspace(0, points - 1, MAX_POINTS).round().astype(int))


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(value), 6) for value in values]
