"""FeatureSet definitions the CRD schema accepts but the operator must refuse, and why."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from conveyor.reconcile import Invalid, parse_featureset
from tests.conftest import EXAMPLES, load_yaml_documents


@pytest.fixture
def iris() -> dict[str, Any]:
    body = load_yaml_documents(EXAMPLES / "iris" / "featureset.yaml")[0]
    body["metadata"].update(namespace="default", generation=1)
    return body


def _ready(body: dict[str, Any]) -> tuple[str, str, str]:
    """("True", "", "") for a definition the operator can materialize, else why not."""
    parsed = parse_featureset(body)
    if not isinstance(parsed, Invalid):
        return "True", "", ""
    (ready,) = [c for c in parsed.outcome.conditions if c.type == "Ready"]
    return ready.status, ready.reason, ready.message


def test_iris_example_is_ready(iris: dict[str, Any]) -> None:
    assert _ready(iris)[0] == "True"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda s: s["schema"].update(target="colour"), "spec.schema.target"),
        (lambda s: s["schema"].update(eventTime="flower_id"), "spec.schema.eventTime"),
        (
            lambda s: s["schema"]["columns"].append({"name": "species", "type": "string"}),
            "spec.schema.columns: duplicate",
        ),
        (
            lambda s: s["transforms"].append({"op": "derive", "output": "z"}),
            "spec.transforms[3].expression",
        ),
        (
            lambda s: s["transforms"].append({"op": "log", "columns": ["height"]}),
            "spec.transforms[3].columns: column(s) height not defined at this step",
        ),
        (
            lambda s: s["transforms"].append(
                {"op": "impute", "columns": ["sepal_width_cm"], "strategy": "constant"}
            ),
            "spec.transforms[3].value",
        ),
        (
            lambda s: s["materialization"].update(schedule="every monday"),
            "spec.materialization.schedule",
        ),
        (lambda s: s["schema"]["columns"][2].update(min=5, max=1), "spec.schema.columns[2].min"),
    ],
)
def test_inconsistent_definition_is_not_ready(
    iris: dict[str, Any], change: Any, field: str
) -> None:
    body = copy.deepcopy(iris)
    body["spec"].setdefault("materialization", {})
    change(body["spec"])
    status, reason, message = _ready(body)
    assert (status, reason) == ("False", "InvalidSpec")
    assert field in message


def test_derived_column_can_be_used_by_later_steps(iris: dict[str, Any]) -> None:
    # petal_area_cm2 is derived in step 1 and scaled in step 2 of the example.
    assert "petal_area_cm2" in iris["spec"]["transforms"][2]["columns"]
    assert _ready(iris)[0] == "True"


@pytest.mark.parametrize(
    ("expression", "output", "message"),
    [
        ("__import__('os').system('id')", "x", "only calls of the allowed functions by name"),
        ("sepal_length_cm.__class__.__bases__", "x", "attribute access"),
        ("lambda: 1", "x", "lambda is not allowed"),
        ("sepal_length_cm * nope", "x", "column 'nope' is not defined"),
        ("sepal_length_cm * 2", "species", "'species' is the target (spec.schema.target)"),
        ("sepal_length_cm * 2", "flower_id", "is the entity key (spec.schema.entityKey)"),
        ("species == 'setosa'", "x", "cannot read the target"),
        ("-" * 4000 + "sepal_length_cm", "x", "nests more than 64 levels deep"),
        ("abs(" * 70 + "sepal_length_cm" + ")" * 70, "x", "nests more than 64 levels deep"),
        ("sepal_length_cm in (" + "1," * 1500 + ")", "x", "has more than 1000 parts"),
    ],
)
def test_a_bad_expression_is_refused_before_any_job(
    iris: dict[str, Any], expression: str, output: str, message: str
) -> None:
    body = copy.deepcopy(iris)
    body["spec"]["transforms"].insert(
        0, {"op": "derive", "output": output, "expression": expression}
    )
    status, reason, text = _ready(body)
    assert (status, reason) == ("False", "InvalidSpec")
    assert text.startswith("spec.transforms[0]."), text
    assert message in text


def test_a_filter_is_checked_like_a_derive(iris: dict[str, Any]) -> None:
    body = copy.deepcopy(iris)
    body["spec"]["transforms"].append({"op": "filter", "expression": "petal_area_cm2 > ("})
    status, _, text = _ready(body)
    assert status == "False"
    assert text.startswith("spec.transforms[3].expression: position"), text


def test_after_a_one_hot_only_the_grammar_is_checked(iris: dict[str, Any]) -> None:
    # The columns a oneHot creates are known once the data is; the Job checks them then.
    body = copy.deepcopy(iris)
    body["spec"]["schema"]["columns"].append({"name": "colour", "type": "category"})
    body["spec"]["transforms"] += [
        {"op": "oneHot", "columns": ["colour"]},
        {"op": "derive", "output": "red_area", "expression": "colour_red * petal_area_cm2"},
    ]
    assert _ready(body)[0] == "True"
    body["spec"]["transforms"][-1]["expression"] = "colour_red.real"
    assert "attribute access" in _ready(body)[2]
