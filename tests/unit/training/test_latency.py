"""Predict latency at training, on the path the server takes."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from conveyor.training.latency import measure_latency
from conveyor.training.onnx import export_onnx


def _pipeline() -> tuple[Pipeline, np.ndarray]:
    X, y = load_iris(return_X_y=True)
    return Pipeline(
        [("features", "passthrough"), ("model", LogisticRegression(max_iter=500).fit(X, y))]
    ), X


def test_without_raw_rows_only_the_estimator_is_timed() -> None:
    pipeline, X = _pipeline()
    latency = measure_latency(pipeline, None, raw=None, features=X)
    assert latency.runtime == "sklearn" and latency.input == "features"
    assert 0 < latency.one_row_seconds < latency.rows_1000_seconds


def test_the_onnx_file_is_timed_when_there_is_one() -> None:
    pipeline, X = _pipeline()
    exported = export_onnx(pipeline, X)
    assert exported.data is not None
    latency = measure_latency(pipeline, exported.data, raw=None, features=X)
    assert latency.runtime == "onnx"
    assert 0 < latency.one_row_seconds < latency.rows_1000_seconds
