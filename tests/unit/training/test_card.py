"""The model card: every fact about a trained model, as plain JSON in a stable order."""

from __future__ import annotations

import json
import math
import platform
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import sklearn
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import Ridge

from conveyor.api.v1alpha1.featureset import FeatureSchema
from conveyor.contracts.results import RunResult
from conveyor.features.conform import conform, rows_to_batch
from conveyor.training.artifacts import build_pipeline
from conveyor.training.card import build_card, request_row, sample_answer
from conveyor.training.gates import GateOutcome
from tests.unit.training.test_artifacts import Iris

STARTED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
REFERENCE = {
    "format": 1,
    "columns": {
        "petal_area_cm2": {"kind": "numeric", "reference": {"percentiles": [0.1, 0.5, 0.9]}}
    },
}
SCHEMA = {
    "target": "species",
    "columns": [
        {"name": "petal_area_cm2", "type": "float"},
        {"name": "species", "type": "category"},
    ],
}


def card(**overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "model": "iris-classifier",
        "version": 3,
        "pipeline": "iris",
        "run": "iris-20260301-120000-1",
        "featureset": "iris",
        "snapshot": "3f2a9c",
        "image": "ghcr.io/conveyor/conveyor:0.1.0",
        "task": "classification",
        "estimator": "RandomForestClassifier",
        "params": {"n_estimators": 100, "max_depth": np.int64(4), "min_samples_leaf": None},
        "metric": "f1_macro",
        "metrics": {"f1_macro": np.float64(0.95), "accuracy": 0.96, "log_loss": math.nan},
        "baseline": {"f1_macro": 0.17, "accuracy": 0.33},
        "gates": [GateOutcome("threshold:accuracy:min", True, "accuracy 0.96 >= 0.85")],
        "feature_schema": SCHEMA,
        "feature_columns": ["petal_area_cm2"],
        "target": "species",
        "reference_profile": REFERENCE,
        "training_seconds": 4.5,
        "search": {"strategy": "random", "trials": 8, "best_params": {"max_depth": 4}},
        "started_at": STARTED,
        "finished_at": STARTED + timedelta(seconds=4.5),
    }
    arguments.update(overrides)
    return build_card(
        run_result(arguments),
        **{
            key: arguments[key]
            for key in (
                "feature_schema",
                "feature_columns",
                "reference_profile",
                "search",
                "version",
            )
        },
    )


def run_result(arguments: dict[str, Any]) -> RunResult:
    """The run record the card is built from: these arguments, as the trainer records them."""
    gates = [gate.to_wire() for gate in arguments["gates"]]
    return RunResult.model_validate(
        {
            **{key: value for key, value in arguments.items() if key != "gates"},
            "gates": gates,
            "passed": all(gate["passed"] for gate in gates),
            "score": arguments["metrics"].get(arguments["metric"]),
            "artifact": {"uri": "s3://conveyor/m/model.skops", "digest": "sha256:" + "0" * 64},
        }
    )


def test_the_card_records_what_trained_the_model_in_a_stable_order() -> None:
    result = card()
    assert list(result) == [
        "format",
        "kind",
        "model",
        "version",
        "task",
        "estimator",
        "params",
        "metric",
        "score",
        "metrics",
        "baseline",
        "gates",
        "passed",
        "pipeline",
        "run",
        "featureset",
        "snapshot",
        "image",
        "feature_schema",
        "feature_columns",
        "target",
        "sample_row",
        "sample_prediction",
        "onnx",
        "reference_profile",
        "holdout",
        "footprint",
        "evaluation",
        "training",
        "libraries",
    ]
    assert result["score"] == 0.95
    assert result["snapshot"] == "3f2a9c"
    assert result["image"] == "ghcr.io/conveyor/conveyor:0.1.0"
    assert result["feature_schema"] == SCHEMA
    assert result["reference_profile"] == REFERENCE
    assert result["gates"] == [
        {"name": "threshold:accuracy:min", "passed": True, "message": "accuracy 0.96 >= 0.85"}
    ]
    assert result["passed"] is True
    assert result["training"] == {
        "seconds": 4.5,
        "search": {"strategy": "random", "trials": 8, "best_params": {"max_depth": 4}},
        "started_at": "2026-03-01T12:00:00Z",
        "finished_at": "2026-03-01T12:00:04.500000Z",
    }


def test_the_card_is_strict_json_with_numpy_values_and_nan_made_plain() -> None:
    result = card()
    text = json.dumps(result, allow_nan=False)
    assert json.loads(text) == result
    assert result["params"]["max_depth"] == 4 and type(result["params"]["max_depth"]) is int
    assert result["metrics"]["log_loss"] is None


def test_the_card_records_library_versions() -> None:
    libraries = card()["libraries"]
    assert set(libraries) == {
        "python",
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
    }
    assert libraries["python"] == platform.python_version()
    assert libraries["scikit-learn"] == sklearn.__version__
    assert libraries["numpy"] == np.__version__


def test_a_failed_gate_marks_the_card_not_passed_and_times_become_utc() -> None:
    east = timezone(timedelta(hours=2))
    result = card(
        gates=[
            GateOutcome(
                "beatProduction", False, "f1_macro 0.9 does not beat Production 0.93 by 0.01"
            )
        ],
        version=None,
        started_at=datetime(2026, 3, 1, 14, 0, tzinfo=east),
    )
    assert result["passed"] is False
    assert result["version"] is None
    assert result["training"]["started_at"] == "2026-03-01T12:00:00Z"


def test_the_sample_row_is_a_request_row_that_conforms_back_to_the_raw_row() -> None:
    iris = Iris()
    schema = FeatureSchema.model_validate(iris.schema)
    raw = pa.Table.from_batches([conform(pa.Table.from_pylist(iris.rows), schema).batch])
    row = request_row(raw, 3, leave_out=("species",))
    assert row == {
        "flower_id": 3,
        "observed_at": "2026-01-01T03:00:00Z",
        "sepal_length_cm": 4.6,
        "sepal_width_cm": 3.1,
        "petal_length_cm": 1.5,
        "petal_width_cm": None,  # a null, as a client sends it
    }
    assert json.loads(json.dumps(row)) == row
    again = conform(rows_to_batch([row], schema), schema).batch.to_pylist()[0]
    assert again == {**raw.slice(3, 1).to_pylist()[0], "species": None}


def test_the_sample_answer_is_what_the_served_pipeline_says() -> None:
    iris = Iris()
    forest = iris.pipeline(RandomForestClassifier(n_estimators=10, random_state=0))
    request = {k: v for k, v in iris.rows[0].items() if k != "species"}
    answer = sample_answer(forest, request)
    assert answer["label"] == "setosa"
    assert answer["probabilities"] == forest.predict_proba([request])[0].tolist()
    assert math.isclose(sum(answer["probabilities"]), 1.0)

    ridge = build_pipeline(Ridge(), schema=iris.schema, transforms=iris.transforms)
    ridge.fit(iris.X, iris.X[:, 0] * 2.0)
    expected = ridge.predict(iris.X[:1])[0]  # the same row, as the snapshot's features
    assert sample_answer(ridge, request) == {"prediction": pytest.approx(expected, rel=1e-12)}
