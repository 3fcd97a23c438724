"""The typed models read what users write and write what the API server stores."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from conveyor.api.v1alpha1 import FeatureSet, ModelVersion, TrainingPipeline
from tests.conftest import EXAMPLES, load_yaml_documents


def test_iris_pipeline_parses_with_defaults() -> None:
    body = load_yaml_documents(EXAMPLES / "iris" / "trainingpipeline.yaml")[0]
    pipeline = TrainingPipeline.from_body(body)
    assert pipeline.spec.model.estimator == "RandomForestClassifier"
    assert pipeline.spec.split.test_size == 0.25
    assert pipeline.spec.runs.concurrency_policy == "Forbid"  # a default
    assert pipeline.spec.search.space["min_samples_leaf"] == {"low": 1, "high": 8, "type": "int"}


def test_featureset_schema_field_keeps_its_wire_name() -> None:
    body = load_yaml_documents(EXAMPLES / "iris" / "featureset.yaml")[0]
    featureset = FeatureSet.from_body(body)
    assert featureset.spec.schema_.target == "species"
    wire = featureset.spec.to_wire()
    assert "schema" in wire and "schema_" not in wire
    assert wire["schema"]["entityKey"] == "flower_id"


def test_wire_form_is_camel_case_without_nulls() -> None:
    body = load_yaml_documents(EXAMPLES / "iris" / "trainingpipeline.yaml")[0]
    wire = TrainingPipeline.from_body(body).spec.to_wire()
    assert wire["split"]["testSize"] == 0.25
    assert "test_size" not in wire["split"]
    assert "timeoutSeconds" not in wire["search"]  # None is omitted


def test_invalid_digest_names_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        ModelVersion.model_validate(
            {
                "metadata": {"name": "m-v1"},
                "spec": {
                    "model": "m",
                    "version": 1,
                    "task": "regression",
                    "metric": "rmse",
                    "artifact": {"uri": "s3://b/k", "digest": "md5:1"},
                    "lineage": {
                        "pipeline": "p",
                        "run": "r",
                        "featureSet": "f",
                        "snapshot": "s",
                        "image": "i",
                    },
                },
            }
        )
    assert ("spec", "artifact", "digest") in [e["loc"] for e in caught.value.errors()]
