"""A TrainingPipeline is ready only with a usable FeatureSet, and says what is missing."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from conveyor.reconcile import (
    Invalid,
    Outcome,
    parse_trainingpipeline,
    reconcile_trainingpipeline,
)
from conveyor.reconcile.pipeline_world import PipelineWorld
from conveyor.resources.workloads import JobSettings
from tests.conftest import EXAMPLES, load_yaml_documents


def _load(name: str) -> dict[str, Any]:
    body = load_yaml_documents(EXAMPLES / "iris" / name)[0]
    body["metadata"].update(namespace="default", generation=1)
    return body


@pytest.fixture
def pipeline() -> dict[str, Any]:
    return _load("trainingpipeline.yaml")


@pytest.fixture
def featureset() -> dict[str, Any]:
    return _load("featureset.yaml")


SETTINGS = JobSettings("conveyor:0.1.0", "http://s3:9000", "us-east-1", "conveyor")


def _check(body: dict[str, Any], featureset: dict[str, Any] | None) -> Outcome:
    """Parse, then reconcile against `featureset`: what the handler's driver does."""
    pipeline = parse_trainingpipeline(body)
    if isinstance(pipeline, Invalid):
        return pipeline.outcome
    world = PipelineWorld(now=datetime(2026, 11, 27, tzinfo=UTC), featureset=featureset)
    return reconcile_trainingpipeline(pipeline, world, SETTINGS).outcome


def _ready(outcome: Any) -> Any:
    return next(c for c in outcome.conditions if c.type == "Ready")


def test_ready_with_its_featureset(pipeline: dict[str, Any], featureset: dict[str, Any]) -> None:
    outcome = _check(pipeline, featureset)
    assert _ready(outcome).status == "True"
    assert outcome.fields["target"] == "species"


def test_missing_featureset_names_it_and_the_field(pipeline: dict[str, Any]) -> None:
    ready = _ready(_check(pipeline, None))
    assert (ready.status, ready.reason) == ("False", "FeatureSetNotFound")
    assert 'FeatureSet "iris" not found in namespace "default"' in ready.message
    assert "spec.featureSet" in ready.message


def test_featureset_without_target(pipeline: dict[str, Any], featureset: dict[str, Any]) -> None:
    del featureset["spec"]["schema"]["target"]
    ready = _ready(_check(pipeline, featureset))
    assert (ready.status, ready.reason) == ("False", "FeatureSetIncompatible")
    assert "no spec.schema.target" in ready.message


def test_metric_must_fit_the_task(pipeline: dict[str, Any], featureset: dict[str, Any]) -> None:
    body = copy.deepcopy(pipeline)
    body["spec"]["metric"] = "rmse"
    ready = _ready(_check(body, featureset))
    assert ready.reason == "InvalidSpec"
    expected = "spec.metric: rmse is a regression metric but the task is classification"
    assert expected in ready.message


def test_unknown_feature_columns(pipeline: dict[str, Any], featureset: dict[str, Any]) -> None:
    body = copy.deepcopy(pipeline)
    body["spec"]["features"] = ["petal_area_cm2", "stem_length"]
    ready = _ready(_check(body, featureset))
    assert "spec.features[1]: stem_length is not a column of FeatureSet" in ready.message
    assert "spec.features[0]" not in ready.message  # petal_area_cm2 is derived: known


def test_features_a_one_hot_step_creates_are_known(
    pipeline: dict[str, Any], featureset: dict[str, Any]
) -> None:
    fs = copy.deepcopy(featureset)
    fs["spec"]["schema"]["columns"].append({"name": "colour", "type": "category"})
    fs["spec"]["transforms"].append({"op": "oneHot", "columns": ["colour"]})
    body = copy.deepcopy(pipeline)
    body["spec"]["features"] = ["colour_red", "petal_area_cm2"]
    assert _ready(_check(body, fs)).status == "True"


def test_a_time_split_needs_the_featuresets_event_time(
    pipeline: dict[str, Any], featureset: dict[str, Any]
) -> None:
    fs = copy.deepcopy(featureset)
    fs["spec"]["schema"].pop("eventTime", None)
    body = copy.deepcopy(pipeline)
    body["spec"]["split"] = {"strategy": "time"}
    ready = _ready(_check(body, fs))
    assert (
        ready.status == "False" and "spec.split.strategy: time needs an event time" in ready.message
    )
