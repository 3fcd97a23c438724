"""ROC and precision-recall curves kept in the card: what a comparison overlays."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeRegressor

from conveyor.training.curves import MAX_POINTS, classifier_curves


def test_a_multiclass_model_has_one_curve_per_class() -> None:
    X, y = load_iris(return_X_y=True, as_frame=False)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    model = LogisticRegression(max_iter=500).fit(X, names)
    curves = classifier_curves(model, X, names)
    assert [curve["label"] for curve in curves["roc"]] == ["setosa", "versicolor", "virginica"]
    for roc, pr in zip(curves["roc"], curves["precision_recall"], strict=True):
        assert roc["fpr"][0] == 0.0 and roc["tpr"][-1] == 1.0
        assert 0.5 < roc["auc"] <= 1.0 and 0.5 < pr["average_precision"] <= 1.0
        assert len(pr["recall"]) == len(pr["precision"])


def test_a_binary_model_has_the_positive_class_curve_thinned_to_the_cap() -> None:
    X, y = load_breast_cancer(return_X_y=True)
    model = LinearSVC(C=0.01, max_iter=5000).fit(X, y)  # decision_function only
    curves = classifier_curves(model, X, y)
    (roc,) = curves["roc"]
    assert roc["label"] == 1
    assert abs(roc["auc"] - roc_auc_score(y, model.decision_function(X))) < 1e-9
    (pr,) = curves["precision_recall"]
    assert len(pr["recall"]) <= MAX_POINTS and pr["recall"][0] == 1.0


def test_no_scores_or_one_class_gives_no_curves() -> None:
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    assert classifier_curves(model, X[:10], y[:10]) == {"roc": [], "precision_recall": []}
    regressor = DecisionTreeRegressor().fit(X, y)
    regressor.classes_ = np.array([0, 1, 2])  # a model without predict_proba/decision_function
    assert classifier_curves(regressor, X, y) == {"roc": [], "precision_recall": []}
