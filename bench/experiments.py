"""Benchmark: what comparing models costs — at training, and when a person compares them.

    .venv/bin/python bench/experiments.py

At training, each model card now carries ROC and precision-recall curves and the model's
predict latency (one row and 1,000 rows, on the ONNX path when there is one). This prints those
two figures beside the reference the run pays anyway — fitting the model and exporting it to
ONNX — for a logistic regression and a 100-tree random forest, on iris (150 rows) and on 20,000
synthetic rows of 20 features (a quarter held out, as the examples do).

Then `compare()` and the HTML report (`render_comparison_report`: the table, overlaid curves,
confusion matrices and importances as inline SVG) over 2, 10 and 30 such cards: the time
`conveyor compare --html` and the web page's FeatureSet page spend after reading the cards.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.datasets import load_iris, make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from conveyor.training.comparison import Candidate, compare
from conveyor.training.comparison_report import render_comparison_report
from conveyor.training.curves import classifier_curves
from conveyor.training.latency import measure_latency
from conveyor.training.metrics import evaluate
from conveyor.training.onnx import export_onnx
from conveyor.training.report import feature_importance

MODELS: dict[str, Callable[[], Any]] = {
    "LogisticRegression": lambda: LogisticRegression(max_iter=1000),
    "RandomForest(100)": lambda: RandomForestClassifier(n_estimators=100, random_state=0),
}


def timed(function: Callable[[], Any], repeats: int = 3) -> tuple[float, Any]:
    """(median seconds, the last result) over `repeats` calls."""
    seconds, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def datasets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    X, y = load_iris(return_X_y=True)
    big_X, big_y = make_classification(
        n_samples=20_000, n_features=20, n_informative=8, n_classes=3, random_state=0
    )
    return {"iris 150x4": (X, y), "synthetic 20k x 20": (big_X, big_y)}


def card(name: str, pipeline: Pipeline, X: np.ndarray, y: np.ndarray, index: int) -> dict[str, Any]:
    """The parts of a model card a comparison reads, as the training Job writes them."""
    report = evaluate("classification", pipeline, X, y)
    metrics = {k: v for k, v in report.items() if not isinstance(v, dict)}
    return {
        "model": name,
        "version": index,
        "task": "classification",
        "estimator": name,
        "metric": "f1_macro",
        "metrics": metrics,
        "baseline": {"f1_macro": 0.33},
        "pipeline": f"p{index}",
        "holdout": {"fingerprint": "0" * 16, "rows": len(y), "strategy": "holdout"},
        "footprint": {"training_seconds": 1.0, "model_bytes": 1000, "features": X.shape[1]},
        "evaluation": {
            "confusion_matrix": report["confusion_matrix"],
            **classifier_curves(pipeline, X, y),
            "feature_importance": feature_importance(
                pipeline, X, y, [f"f{i}" for i in range(X.shape[1])]
            ),
        },
    }


def measure(
    data_name: str,
    model_name: str,
    build: Callable[[], Any],
    X_train: np.ndarray,
    X_test: np.ndarray,
    y_train: np.ndarray,
    y_test: np.ndarray,
) -> Pipeline:
    """Print one row of the training figures; the fitted pipeline."""
    fit, estimator = timed(lambda: build().fit(X_train, y_train))
    pipeline = Pipeline([("features", "passthrough"), ("model", estimator)])
    export, exported = timed(lambda: export_onnx(pipeline, X_test), repeats=1)
    curves, _ = timed(lambda: classifier_curves(pipeline, X_test, y_test))
    latency, figures = timed(
        lambda: measure_latency(pipeline, exported.data, raw=None, features=X_test), repeats=1
    )
    share = (curves + latency) / fit
    row = (data_name, model_name, f"{fit:.3f}", f"{export:.3f}", f"{curves:.3f}")
    print(
        "  " + " | ".join(row) + f" | {latency:.3f} | {share:.2f}x"
        f"   (measured: {figures.runtime}, {figures.one_row_seconds * 1e6:.1f} µs a row, "
        f"{figures.rows_1000_seconds * 1e3:.2f} ms for 1,000)"
    )
    return pipeline


def main() -> None:
    print("At training (median of 3, seconds):")
    header = ("data", "model", "fit", "ONNX export", "curves", "latency", "curves+latency / fit")
    print("  " + " | ".join(header))
    cards = []
    for data_name, (X, y) in datasets().items():
        split = train_test_split(X, y, test_size=0.25, random_state=0)
        for model_name, build in MODELS.items():
            pipeline = measure(data_name, model_name, build, *split)
            if data_name.startswith("iris"):
                cards.append(card(model_name, pipeline, split[1], split[3], len(cards) + 1))
    print("\nComparing N iris cards (median of 3):")
    for count in (2, 10, 30):
        candidates = [
            Candidate(
                name=f"m{i}-v1",
                namespace="bench",
                pipeline=f"p{i}",
                model=f"m{i}",
                version=1,
                stage="Candidate",
                card={**cards[i % len(cards)], "pipeline": f"p{i}"},
                live=None,
                report_uri=None,
            )
            for i in range(count)
        ]
        table, comparison = timed(lambda c=candidates: compare(c))
        html, page = timed(lambda c=comparison: render_comparison_report(c, "bench"))
        print(
            f"  {count:>2} versions: compare {table * 1e3:.1f} ms, HTML report {html:.2f} s "
            f"({len(page) / 1024:.0f} KiB)"
        )


if __name__ == "__main__":
    main()
