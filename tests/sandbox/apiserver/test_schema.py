"""CRD admission as a real API server does it: pruning, defaulting, validation messages."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.sandbox.apiserver.schema import (
    FieldError,
    admit,
    apply_defaults,
    invalid_status,
    prune,
    validate,
)

REPOSITORY = Path(__file__).resolve().parents[3]

PIPELINE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["spec"],
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["featureSet", "model"],
            "x-kubernetes-validations": [{"rule": "self.replicas < 5", "message": "CEL"}],
            "properties": {
                "featureSet": {
                    "type": "string",
                    "maxLength": 63,
                    "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                },
                "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                "model": {
                    "type": "object",
                    "required": ["estimator"],
                    "properties": {
                        "estimator": {
                            "type": "string",
                            "enum": ["random_forest", "logistic_regression"],
                        },
                        "params": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    },
                },
                "split": {
                    "type": "object",
                    "default": {},
                    "properties": {
                        "testSize": {
                            "type": "number",
                            "minimum": 0.05,
                            "maximum": 0.9,
                            "default": 0.2,
                        },
                        "seed": {"type": "integer", "default": 42},
                        "shuffle": {"type": "boolean", "default": True},
                    },
                },
                "search": {
                    "type": "object",
                    "properties": {
                        "strategy": {"type": "string", "default": "grid"},
                        "trials": {"type": "integer", "default": 10, "multipleOf": 5},
                    },
                },
                "gates": {
                    "type": "array",
                    "maxItems": 3,
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["metric"],
                    "items": {
                        "type": "object",
                        "required": ["metric", "threshold"],
                        "properties": {
                            "metric": {"type": "string"},
                            "threshold": {"type": "number", "minimum": 0, "maximum": 1},
                            "direction": {
                                "type": "string",
                                "enum": ["above", "below"],
                                "default": "above",
                            },
                        },
                    },
                },
                "tags": {
                    "type": "array",
                    "x-kubernetes-list-type": "set",
                    "items": {"type": "string"},
                },
                "labels": {
                    "type": "object",
                    "additionalProperties": {"type": "string", "maxLength": 8},
                },
                "resources": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {
                            "cpu": {"x-kubernetes-int-or-string": True},
                            "memory": {"type": "string", "default": "256Mi"},
                        },
                    },
                },
                "schedule": {"type": "string", "format": "date-time"},
                "template": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "x-kubernetes-preserve-unknown-fields": True,
                },
                "note": {"type": "string", "nullable": True},
            },
        },
        "status": {
            "type": "object",
            "properties": {
                "observedGeneration": {"type": "integer"},
                "productionVersion": {"type": "string"},
                "conditions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "type": {"type": "string"},
                            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                            "lastTransitionTime": {"type": "string", "format": "date-time"},
                        },
                    },
                },
            },
        },
    },
}


def pipeline(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "conveyor.dev/v1alpha1",
        "kind": "TrainingPipeline",
        "metadata": {"name": "iris", "namespace": "default"},
        "spec": {"featureSet": "iris", "model": {"estimator": "random_forest"}, **spec},
    }


def messages(obj: dict[str, Any], schema: dict[str, Any] = PIPELINE_SCHEMA) -> list[str]:
    return [error.message for error in admit(schema, obj)[1]]


# --- pruning ---------------------------------------------------------------------------------


def test_a_status_field_the_schema_forgets_is_pruned() -> None:
    obj = pipeline()
    obj["status"] = {
        "observedGeneration": 3,
        "lastRun": "run-7",
        "conditions": [{"type": "Ready", "status": "True", "reason": "Trained"}],
    }

    stored, errors = admit(PIPELINE_SCHEMA, obj)

    assert errors == []
    assert stored["status"] == {
        "observedGeneration": 3,
        "conditions": [{"type": "Ready", "status": "True"}],
    }


def test_unknown_spec_fields_are_pruned_at_every_depth() -> None:
    obj = pipeline(typo=1, gates=[{"metric": "accuracy", "threshold": 0.9, "extra": True}])
    obj["spec"]["model"]["estimatr"] = "svc"
    obj["spec"]["resources"] = {"train": {"cpu": 2, "gpu": 1}}
    obj["unknownTopLevel"] = {}

    stored = prune(PIPELINE_SCHEMA, obj)

    assert "typo" not in stored["spec"] and "unknownTopLevel" not in stored
    assert stored["spec"]["model"] == {"estimator": "random_forest"}
    assert stored["spec"]["gates"] == [{"metric": "accuracy", "threshold": 0.9}]
    assert stored["spec"]["resources"] == {"train": {"cpu": 2}}  # map keys kept, values pruned


def test_root_type_meta_and_metadata_are_kept_intact() -> None:
    obj = pipeline()
    obj["metadata"] = {
        "generateName": "iris-",
        "annotations": {"kopf.zalando.org/last": "{}"},
        "finalizers": ["kopf.zalando.org/KopfFinalizerMarker"],
    }

    stored = prune(PIPELINE_SCHEMA, obj)

    assert stored["metadata"] == obj["metadata"]
    assert (stored["apiVersion"], stored["kind"]) == ("conveyor.dev/v1alpha1", "TrainingPipeline")


def test_a_preserve_unknown_fields_subtree_keeps_everything() -> None:
    params = {"n_estimators": 100, "nested": {"deep": [1, {"x": None}]}}

    obj = pipeline(model={"estimator": "random_forest", "params": params})

    stored = prune(PIPELINE_SCHEMA, obj)

    assert stored["spec"]["model"]["params"] == params


def test_preserve_unknown_fields_still_prunes_the_specified_properties() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "properties": {
                    "known": {"type": "object", "properties": {"a": {"type": "integer"}}}
                },
            }
        },
    }
    obj = {"metadata": {"name": "x"}, "spec": {"anything": {"b": 1}, "known": {"a": 1, "b": 2}}}

    assert prune(schema, obj)["spec"] == {"anything": {"b": 1}, "known": {"a": 1}}


def test_an_embedded_resource_keeps_its_api_version_kind_and_metadata() -> None:
    schema = {
        "type": "object",
        "properties": {
            "template": {
                "type": "object",
                "x-kubernetes-embedded-resource": True,
                "properties": {
                    "spec": {"type": "object", "properties": {"image": {"type": "string"}}}
                },
            }
        },
    }
    template = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"labels": {"a": "b"}},
        "spec": {"image": "conveyor:1", "command": ["sh"]},
        "status": {},
    }

    stored = prune(schema, {"metadata": {"name": "x"}, "template": template})

    assert stored["template"] == {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"labels": {"a": "b"}},
        "spec": {"image": "conveyor:1"},
    }


# --- defaulting ------------------------------------------------------------------------------


def test_defaults_are_applied_at_depth_and_inside_defaults() -> None:
    stored, errors = admit(
        PIPELINE_SCHEMA,
        pipeline(
            gates=[{"metric": "accuracy", "threshold": 0.8}],
            resources={"train": {"cpu": "500m"}},
        ),
    )

    assert errors == []
    spec = stored["spec"]
    assert spec["replicas"] == 1
    assert spec["split"] == {"testSize": 0.2, "seed": 42, "shuffle": True}  # {} then its defaults
    assert spec["gates"] == [{"metric": "accuracy", "threshold": 0.8, "direction": "above"}]
    assert spec["resources"] == {"train": {"cpu": "500m", "memory": "256Mi"}}


def test_an_absent_parent_is_not_materialized_but_a_present_one_is_filled() -> None:
    assert "search" not in apply_defaults(PIPELINE_SCHEMA, pipeline())["spec"]

    filled = apply_defaults(PIPELINE_SCHEMA, pipeline(search={}))["spec"]["search"]

    assert filled == {"strategy": "grid", "trials": 10}


def test_nulls_are_defaulted_or_dropped_unless_nullable() -> None:
    obj = pipeline(replicas=None, schedule=None, note=None)

    spec = apply_defaults(PIPELINE_SCHEMA, obj)["spec"]

    assert spec["replicas"] == 1
    assert "schedule" not in spec
    assert spec["note"] is None


def test_admit_does_not_touch_its_input() -> None:
    obj = pipeline(typo=True, replicas="many", gates=[{"metric": "f1", "threshold": 2}])
    obj["status"] = {"lastRun": "x"}
    before = copy.deepcopy(obj)

    stored, errors = admit(PIPELINE_SCHEMA, obj)

    assert obj == before
    assert errors and stored is not obj


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"model": {"estimator": "foo"}},
            'spec.model.estimator: Unsupported value: "foo": supported values: "random_forest", '
            '"logistic_regression"',
        ),
        (
            {"split": {"testSize": 2}},
            "spec.split.testSize: Invalid value: 2: spec.split.testSize in body should be less than or "
            "equal to 0.9",
        ),
        (
            {"split": {"testSize": 0.01}},
            "spec.split.testSize: Invalid value: 0.01: spec.split.testSize in body should be greater "
            "than or equal to 0.05",
        ),
        (
            {"replicas": "string"},
            'spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: '
            '"string"',
        ),
        (
            {"replicas": 0},
            "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
        ),
        (
            {"featureSet": "Iris_Data"},
            'spec.featureSet: Invalid value: "Iris_Data": spec.featureSet in body should match '
            "'^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'",
        ),
        ({"featureSet": "x" * 64}, "spec.featureSet: Too long: may not be more than 63 bytes"),
        (
            {"labels": {"team": "data-science"}},
            "spec.labels[team]: Too long: may not be more than 8 bytes",
        ),
        (
            {"search": {"trials": 7}},
            "spec.search.trials: Invalid value: 7: spec.search.trials in body should be a multiple of 5",
        ),
        (
            {"gates": [{"metric": m, "threshold": 0.5} for m in ("a", "b", "c", "d")]},
            "spec.gates: Too many: 4: must have at most 3 items",
        ),
        (
            {
                "gates": [
                    {"metric": "accuracy", "threshold": 0.5},
                    {"metric": "accuracy", "threshold": 1},
                ]
            },
            'spec.gates[1]: Duplicate value: map[string]interface {}{"metric":"accuracy"}',
        ),
        (
            {"gates": [{"metric": "accuracy", "threshold": "high"}]},
            'spec.gates[0].threshold: Invalid value: "string": spec.gates[0].threshold in body must be '
            'of type number: "string"',
        ),
        ({"gates": [{"metric": "accuracy"}]}, "spec.gates[0].threshold: Required value"),
        ({"tags": ["a", "b", "a", "a"]}, 'spec.tags[2]: Duplicate value: "a"'),
        (
            {"schedule": "tomorrow"},
            'spec.schedule: Invalid value: "tomorrow": spec.schedule in body must be of type date-time: '
            '"tomorrow"',
        ),
        (
            {"resources": {"train": {"cpu": True}}},
            'spec.resources[train].cpu: Invalid value: "boolean": spec.resources[train].cpu in body must '
            'be of type integer,string: "boolean"',
        ),
        (
            {"template": {"apiVersion": "batch/v1", "spec": {}}},
            "spec.template.kind: Required value: must not be empty",
        ),
        (
            {"model": {"estimator": "random_forest", "params": "deep"}},
            'spec.model.params: Invalid value: "string": spec.model.params in body must be of type '
            'object: "string"',
        ),
        (
            {"split": {"shuffle": {"yes": 1}}},
            'spec.split.shuffle: Invalid value: "object": spec.split.shuffle in body must be of type '
            'boolean: "object"',
        ),
    ],
)
def test_invalid_values_are_rejected_with_the_real_servers_message(
    spec: dict[str, Any], expected: str
) -> None:
    assert messages(pipeline(**spec)) == [expected]


def test_a_missing_required_field_is_reported_as_required() -> None:
    obj = pipeline()
    del obj["spec"]["featureSet"]

    errors = admit(PIPELINE_SCHEMA, obj)[1]

    assert errors == [FieldError("spec.featureSet", "Required", "spec.featureSet: Required value")]


def test_all_errors_are_reported_at_once() -> None:
    obj = pipeline(replicas=11, tags=["x", "x"], model={"estimator": "svm"})
    del obj["spec"]["featureSet"]

    assert messages(obj) == [
        "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal "
        "to 10",
        'spec.model.estimator: Unsupported value: "svm": supported values: "random_forest", '
        '"logistic_regression"',
        "spec.featureSet: Required value",
        'spec.tags[1]: Duplicate value: "x"',
    ]


def test_a_nameless_object_is_rejected_unless_it_has_a_generate_name() -> None:
    obj = pipeline()
    obj["metadata"] = {"namespace": "default"}

    assert messages(obj) == ["metadata.name: Required value: name or generateName is required"]

    obj["metadata"]["generateName"] = "iris-"
    assert messages(obj) == []


def test_a_non_nullable_null_is_a_type_error_when_validated_as_is() -> None:
    errors = validate(PIPELINE_SCHEMA, pipeline(schedule=None, note=None))

    assert [e.message for e in errors] == [
        'spec.schedule: Invalid value: "null": spec.schedule in body must be of type string: "null"'
    ]


def test_whole_floats_are_integers_and_integers_are_numbers() -> None:
    assert messages(
        pipeline(replicas=3.0, split={"testSize": 0}, gates=[{"metric": "f1", "threshold": 1}])
    ) == [
        "spec.split.testSize: Invalid value: 0: spec.split.testSize in body should be greater "
        "than or equal to 0.05"
    ]


def test_cel_rules_are_evaluated_once_the_schema_holds() -> None:
    assert messages(pipeline(replicas=9)) == ['spec: Invalid value: "object": CEL']
    assert messages(pipeline(replicas=11)) == [
        "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"
    ]


def test_value_validations_of_composition_keywords() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "port": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                    "mode": {"type": "string", "oneOf": [{"pattern": "^a"}, {"pattern": "b$"}]},
                    "size": {"type": "integer", "allOf": [{"minimum": 1}, {"maximum": 5}]},
                    "name": {"type": "string", "not": {"enum": ["admin"]}},
                },
            }
        },
    }
    obj = {
        "metadata": {"name": "x"},
        "spec": {"port": True, "mode": "ab", "size": 9, "name": "admin"},
    }

    assert messages(obj, schema) == [
        'spec.port: Invalid value: "": "spec.port" must validate at least one schema (anyOf)',
        'spec.port: Invalid value: "boolean": spec.port in body must be of type integer: "boolean"',
        'spec.mode: Invalid value: "": "spec.mode" must validate one and only one schema (oneOf). '
        "Found 2 valid alternatives",
        "spec.size: Invalid value: 9: spec.size in body should be less than or equal to 5",
        'spec.size: Invalid value: "": "spec.size" must validate all the schemas (allOf)',
        'spec.name: Invalid value: "": "spec.name" must not validate the schema (not)',
    ]


def test_item_and_property_counts_and_exclusive_bounds() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "rate": {"type": "number", "exclusiveMinimum": True, "minimum": 0},
                    "steps": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                    "env": {
                        "type": "object",
                        "minProperties": 1,
                        "additionalProperties": {"type": "string"},
                    },
                    "limits": {
                        "type": "object",
                        "maxProperties": 1,
                        "additionalProperties": {"type": "integer"},
                    },
                    "ids": {"type": "array", "uniqueItems": True, "items": {"type": "integer"}},
                    "short": {"type": "string", "minLength": 3},
                },
            }
        },
    }
    obj = {
        "metadata": {"name": "x"},
        "spec": {
            "rate": 0,
            "steps": [],
            "env": {},
            "limits": {"a": 1, "b": 2},
            "ids": [1, 1],
            "short": "ab",
        },
    }

    assert messages(obj, schema) == [
        "spec.rate: Invalid value: 0: spec.rate in body should be greater than 0",
        "spec.steps: Invalid value: 0: spec.steps in body should have at least 1 items",
        "spec.env: Invalid value: 0: spec.env in body should have at least 1 properties",
        "spec.limits: Too many: 2: must have at most 1 item",
        'spec.ids: Invalid value: "": spec.ids in body shouldn\'t contain duplicates',
        'spec.short: Invalid value: "ab": spec.short in body should be at least 3 chars long',
    ]


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("2026-11-27T04:46:05Z", True),
        ("2026-11-27T04:46:05.123456+02:00", True),
        ("2026-11-27t04:46:05z", True),
        ("2026-11-27", False),
        ("2026-02-30T00:00:00Z", False),
        ("2026-11-27T24:00:00Z", False),
        ("2026-11-27 04:46:05Z", False),
    ],
)
def test_date_time_format_follows_kube_openapi(text: str, valid: bool) -> None:
    assert (messages(pipeline(schedule=text)) == []) is valid


# --- the 422 Status --------------------------------------------------------------------------


def test_invalid_status_for_one_error_has_no_brackets() -> None:
    errors = [FieldError("spec.featureSet", "Required", "spec.featureSet: Required value")]

    status = invalid_status("TrainingPipeline", "conveyor.dev", "iris", errors)

    assert status == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'TrainingPipeline.conveyor.dev "iris" is invalid: spec.featureSet: Required value',
        "reason": "Invalid",
        "details": {
            "name": "iris",
            "group": "conveyor.dev",
            "kind": "TrainingPipeline",
            "causes": [
                {
                    "reason": "FieldValueRequired",
                    "message": "Required value",
                    "field": "spec.featureSet",
                }
            ],
        },
        "code": 422,
    }


def test_invalid_status_lists_every_error_with_its_cause_reason() -> None:
    obj = pipeline(
        replicas="x", model={"estimator": "svm"}, tags=["a", "a"], labels={"team": "data-science"}
    )

    errors = admit(PIPELINE_SCHEMA, obj)[1]

    status = invalid_status("TrainingPipeline", "conveyor.dev", "iris", errors)

    assert status["message"].startswith(
        'TrainingPipeline.conveyor.dev "iris" is invalid: [spec.replicas: Invalid value: "string"'
    )
    assert status["message"].endswith('spec.tags[1]: Duplicate value: "a"]')
    assert [(c["reason"], c["field"]) for c in status["details"]["causes"]] == [
        ("FieldValueTypeInvalid", "spec.replicas"),
        ("FieldValueNotSupported", "spec.model.estimator"),
        ("FieldValueTooLong", "spec.labels[team]"),
        ("FieldValueDuplicate", "spec.tags[1]"),
    ]
    assert status["details"]["causes"][2]["message"] == "Too long: may not be more than 8 bytes"


def test_invalid_status_of_a_core_kind_has_no_group_and_deduplicates_the_message() -> None:
    error = FieldError("data", "Invalid", "data: Invalid value: 1: bad")

    status = invalid_status("ConfigMap", "", "cm", [error, error])

    assert status["message"] == 'ConfigMap "cm" is invalid: data: Invalid value: 1: bad'
    assert "group" not in status["details"] and len(status["details"]["causes"]) == 2


# --- the project's own CRDs ------------------------------------------------------------------


def _crd_schemas() -> dict[str, dict[str, Any]]:
    schemas = {}
    for path in sorted((REPOSITORY / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            schemas[crd["spec"]["names"]["kind"]] = version["schema"]["openAPIV3Schema"]
    return schemas


def _examples() -> list[Path]:
    return sorted((REPOSITORY / "examples").glob("*/*.yaml"))


@pytest.mark.parametrize("example", _examples(), ids=lambda path: f"{path.parent.name}/{path.name}")
def test_every_example_is_admitted_by_its_crd(example: Path) -> None:
    schemas = _crd_schemas()
    for document in yaml.safe_load_all(example.read_text()):
        if not document or document.get("kind") not in schemas:
            continue
        stored, errors = admit(schemas[document["kind"]], document)
        assert errors == [], f"{example}: {[e.message for e in errors]}"
        assert prune(schemas[document["kind"]], stored) == stored  # nothing left to prune
