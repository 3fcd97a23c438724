"""The model card: everything known about one trained model, as JSON beside its file.

`build_card()` returns a JSON-ready dict whose keys come in a fixed order (the card of a model is
read by people and diffed between versions). NaN and infinite numbers become null, numpy values
plain Python, datetimes ISO 8601 text in UTC. Keys:

- format, kind: the card's own format (1) and "ModelCard";
- model, version, task, estimator, params: what was trained;
- metric, score, metrics, baseline: the pipeline metric and its holdout value, every holdout
  metric, and the same metrics of the dummy-estimator baseline;
- gates, passed: every gate outcome and whether all passed;
- pipeline, run, featureset, snapshot, image: lineage;
- feature_schema, feature_columns, target: what the model reads (the FeatureSet schema, wire form)
  and predicts;
- sample_row: one raw holdout row as a request sends it (a JSON object of the raw columns, by
  name, without the target), which a server answers before it reports ready; null when the
  snapshot keeps no raw rows; sample_prediction: what the skops pipeline answered it at
  training ({"label", "probabilities"} or {"prediction"});
- onnx: the estimator's ONNX export (training/onnx.py): exported, reason (why not), file, input,
  outputs, classes, opset, parity (on the complete holdout rows: rows, label_agreement,
  max_abs_diff, max_rel_diff, tolerance, passed, failure), missing_values (the same figures on
  rows with a missing value) and answers_missing_values (whether ONNX may answer such rows);
- reference_profile: the snapshot's profile.json that drift checks compare live inputs against:
  `columns` (the raw columns, as requests arrive) and `features` (the model's inputs after the
  transforms, as the model reads them), each column with its `role` (entity keys and event
  times carry no drift reference) and drift `reference`;
- holdout: the rows the metrics were computed on: strategy, test_size, seed, stratified,
  assigned_by (the entity key column, "row values", or the event time column), rows, and
  fingerprint (training/splits.holdout_fingerprint: equal fingerprints, same rows — comparable);
- footprint: what serving it costs besides accuracy: training_seconds, model_bytes, onnx_bytes,
  features (how many the estimator reads), runtime ("onnx" or "sklearn"), latency_input ("raw":
  the feature step timed too, or "features"), latency_one_row_seconds and
  latency_1000_rows_seconds (training/latency.py); null figures when they could not be measured;
- evaluation: confusion_matrix (classification) or residuals (regression: a seeded sample of at
  most 1,000 holdout rows), roc and precision_recall curves (training/curves.py), and
  feature_importance (feature → importance, or null) — what a comparison plots;
- training: seconds, search summary, started_at, finished_at;
- libraries: python, scikit-learn, numpy, scipy, pyarrow, skops, optuna, skl2onnx, onnx,
  onnxruntime and conveyor versions.
"""

from __future__ import annotations

import dataclasses
import math
import platform
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from importlib import metadata
from typing import Any

import numpy as np
import pyarrow as pa

from ..contracts.results import RunResult

__all__ = [
    "CARD_FORMAT",
    "LIBRARIES",
    "build_card",
    "json_safe",
    "library_versions",
    "request_row",
    "sample_answer",
]

CARD_FORMAT = 1
LIBRARIES = (
    "scikit-learn",
    "numpy",
    "scipy",
    "pyarrow",
    "skops",
    "optuna",
    "skl2onnx",
    "onnx",
    "onnxruntime",
    "conveyor",
)
"""Distributions whose versions every card records (besides Python)."""


def build_card(
    result: RunResult,
    *,
    feature_schema: Mapping[str, Any],
    feature_columns: Sequence[str],
    reference_profile: Mapping[str, Any],
    search: Mapping[str, Any],
    version: int | None = None,
    sample_row: Mapping[str, Any] | None = None,
    sample_prediction: Mapping[str, Any] | None = None,
    onnx: Mapping[str, Any] | None = None,
    holdout: Mapping[str, Any] | None = None,
    footprint: Mapping[str, Any] | None = None,
    evaluation: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The model card of the model a run trained (see the module docstring for its keys).

    `result` is the run's record; the rest is what a reader of the model needs besides it:
    what the model reads (the FeatureSet schema, wire form, and the feature columns), the
    profile drift checks compare live inputs against, the search summary, a sample request row
    with the answer it got, the ONNX export's record, and the holdout, footprint and evaluation
    blocks a comparison of models reads.
    """
    card = {
        "format": CARD_FORMAT,
        "kind": "ModelCard",
        "model": result.model,
        "version": version,
        "task": result.task,
        "estimator": result.estimator,
        "params": result.params,
        "metric": result.metric,
        "score": result.metrics.get(result.metric),
        "metrics": result.metrics,
        "baseline": result.baseline,
        "gates": [gate.to_wire() for gate in result.gates],
        "passed": all(gate.passed for gate in result.gates),
        "pipeline": result.pipeline,
        "run": result.run,
        "featureset": result.featureset,
        "snapshot": result.snapshot,
        "image": result.image,
        "feature_schema": feature_schema,
        "feature_columns": list(feature_columns),
        "target": result.target,
        "sample_row": sample_row,
        "sample_prediction": sample_prediction,
        "onnx": onnx,
        "reference_profile": reference_profile,
        "holdout": holdout,
        "footprint": footprint,
        "evaluation": evaluation,
        "training": {
            "seconds": result.training_seconds,
            "search": search,
            "started_at": result.started_at,
            "finished_at": result.finished_at,
        },
        "libraries": library_versions(),
    }
    return json_safe(card)


def request_row(raw: pa.Table, index: int, *, leave_out: Collection[str] = ()) -> dict[str, Any]:
    """Row `index` of conformed raw rows as a client sends it: a JSON object of the raw columns
    by name (timestamps as ISO 8601 text, nulls as null), without the columns in `leave_out`."""
    row = raw.slice(index, 1).to_pylist()[0]
    return {name: json_safe(value) for name, value in row.items() if name not in leave_out}


def sample_answer(model: Any, row: Mapping[str, Any]) -> dict[str, Any]:
    """What a fitted served pipeline answers one request row: {"label", "probabilities"} for a
    classifier ("probabilities" when it has predict_proba), {"prediction"} for a regressor."""
    if not hasattr(model, "classes_"):
        return json_safe({"prediction": np.asarray(model.predict([row])).ravel()[0]})
    answer = {"label": np.asarray(model.predict([row]))[0]}
    if hasattr(model, "predict_proba"):
        answer["probabilities"] = np.asarray(model.predict_proba([row]))[0]
    return json_safe(answer)


@cache
def library_versions() -> dict[str, str | None]:
    """Python and the LIBRARIES' installed versions (None for one not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def json_safe(value: Any) -> Any:
    """`value` with only JSON types: what json.dumps(..., allow_nan=False) accepts."""
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((json_safe(item) for item in value), key=str)
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, np.ndarray):
        return [json_safe(item) for item in value.tolist()]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json_safe(dataclasses.asdict(value))
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)
