"""How fast a trained model answers, measured at training so a comparison can weigh it.

The timed call is the server's: the pipeline's feature step on raw request rows (its row path
for one row as a JSON object, its batch path for a pyarrow table of 1,000 rows), then the
estimator in onnxruntime on one thread when an ONNX file was exported, else the scikit-learn
estimator — labels and, for a classifier, probabilities, as a prediction response carries.
Without raw rows the feature step is skipped and only the estimator is timed (`input`
says so). Figures are medians of repeated calls on the training pod: comparable between models
trained on the same kind of pod, not a promise of production latency.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from sklearn.base import is_classifier
from sklearn.pipeline import Pipeline

from .card import request_row
from .onnx_file import open_onnx, session_options

__all__ = ["BATCH_ROWS", "Latency", "measure_latency"]

BATCH_ROWS = 1000
_BUDGET_SECONDS = 0.25
"""Time spent on each figure at most (besides three calls), so a slow model costs half a
second; a fast one stops at _MAX_CALLS."""
_MAX_CALLS = {1: 100, BATCH_ROWS: 10}


@dataclass(frozen=True)
class Latency:
    runtime: str
    """"onnx" or "sklearn": the estimator's runtime, as the server would choose it."""
    input: str
    """"raw" (the feature step timed too) or "features" (no raw rows: the estimator alone)."""
    one_row_seconds: float
    rows_1000_seconds: float


def measure_latency(
    pipeline: Pipeline,
    onnx: bytes | None,
    *,
    raw: pa.Table | None,
    features: np.ndarray,
    leave_out: str | None = None,
) -> Latency:
    """Median seconds for one row and for BATCH_ROWS rows (holdout rows, repeated to fill the
    batch): `raw` the conformed raw holdout rows (None without), `features` the same rows
    transformed, `leave_out` the target column a request does not send."""
    step, estimator = pipeline.steps[0][1], pipeline.steps[-1][1]
    predict, runtime = _estimator_call(estimator, onnx)
    if raw is not None and raw.num_rows:
        if leave_out in raw.column_names:
            raw = raw.drop_columns([leave_out])
        record = [request_row(raw, 0)]  # as JSON brings it: timestamps as text
        batch = raw.take(np.arange(BATCH_ROWS) % raw.num_rows)
        one = _median(lambda: predict(step.matrix(record)), calls=_MAX_CALLS[1])
        many = _median(lambda: predict(step.matrix(batch)), calls=_MAX_CALLS[BATCH_ROWS])
        return Latency(runtime, "raw", one, many)
    rows = features[np.arange(BATCH_ROWS) % len(features)]
    one = _median(lambda: predict(rows[:1]), calls=_MAX_CALLS[1])
    many = _median(lambda: predict(rows), calls=_MAX_CALLS[BATCH_ROWS])
    return Latency(runtime, "features", one, many)


def _estimator_call(estimator: Any, onnx: bytes | None) -> tuple[Callable[[np.ndarray], Any], str]:
    """The estimator's predict as the server runs it, and the runtime's name."""
    if onnx is not None:
        session = open_onnx(onnx, options=session_options(threads=1))
        name = session.get_inputs()[0].name
        dtype = np.float32 if session.get_inputs()[0].type == "tensor(float)" else np.float64
        outputs = [output.name for output in session.get_outputs()[:2]]
        return lambda rows: session.run(outputs, {name: rows.astype(dtype, copy=False)}), "onnx"
    if is_classifier(estimator) and hasattr(estimator, "predict_proba"):
        return lambda rows: (estimator.predict(rows), estimator.predict_proba(rows)), "sklearn"
    return estimator.predict, "sklearn"


def _median(call: Callable[[], Any], *, calls: int) -> float:
    call()  # the first call pays for lazy setup (caches, allocations), as a server's warm-up does
    timings: list[float] = []
    budget = time.perf_counter() + _BUDGET_SECONDS
    while len(timings) < calls and (len(timings) < 3 or time.perf_counter() < budget):
        started = time.perf_counter()
        call()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)
