"""CRD `x-kubernetes-validations`: where rules run, what they see, how failures read."""

from __future__ import annotations

from typing import Any

from conveyor.sandbox.apiserver.schema import admit

IMMUTABLE = [{"rule": "self == oldSelf", "message": "is immutable"}]
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.mode) || self.mode != 'fixed' || has(self.size)",
                    "fieldPath": ".size",
                    "reason": "FieldValueRequired",
                    "messageExpression": "'required when mode is ' + self.mode",
                },
                {"rule": "!has(self.size) || self.size < 100"},
            ],
            "properties": {
                "mode": {"type": "string"},
                "size": {"type": "integer"},
                "name": {"type": "string", "x-kubernetes-validations": IMMUTABLE},
                "settings": {
                    "type": "object",
                    "additionalProperties": {"type": "number"},
                    "x-kubernetes-validations": IMMUTABLE,
                },
                "ports": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "number": {
                                "type": "integer",
                                "x-kubernetes-validations": [
                                    {
                                        "rule": "self >= oldSelf",
                                        "message": "may only grow",
                                        "reason": "FieldValueForbidden",
                                    }
                                ],
                            },
                        },
                    },
                },
                "tags": {
                    "type": "array",
                    "items": {"type": "string", "x-kubernetes-validations": IMMUTABLE},
                },
                "limit": {
                    "type": "integer",
                    "x-kubernetes-validations": [{"rule": "self.missing > 1"}],
                },
            },
        },
    },
}


def obj(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "x"}, "spec": spec}


def messages(new: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    return [error.message for error in admit(SCHEMA, new, old)[1]]


def test_a_rule_that_holds_is_silent() -> None:
    assert messages(obj(mode="fixed", size=3, name="a")) == []


def test_field_path_reason_and_message_expression() -> None:
    assert messages(obj(mode="fixed")) == ["spec.size: Required value: required when mode is fixed"]


def test_without_a_message_the_rule_is_quoted() -> None:
    assert messages(obj(mode="auto", size=500)) == [
        'spec: Invalid value: "object": failed rule: !has(self.size) || self.size < 100'
    ]


def test_transition_rules_run_only_on_updates() -> None:
    assert messages(obj(name="a")) == []
    assert messages(obj(name="b"), old=obj(name="a")) == [
        'spec.name: Invalid value: "string": is immutable'
    ]
    assert messages(obj(name="a"), old=obj(name="a")) == []


def test_transition_rules_compare_numbers_by_their_schema_type() -> None:
    assert messages(obj(settings={"a": 1}), old=obj(settings={"a": 1.0})) == []
    assert messages(obj(settings={"a": 2}), old=obj(settings={"a": 1.0})) == [
        'spec.settings: Invalid value: "object": is immutable'
    ]


def test_a_field_added_on_update_has_no_old_value_to_compare() -> None:
    assert messages(obj(name="new"), old=obj()) == []


def test_list_map_items_correlate_by_key_other_lists_never() -> None:
    old = obj(ports=[{"name": "http", "number": 80}], tags=["a"])
    shrunk = obj(ports=[{"name": "http", "number": 70}, {"name": "new", "number": 1}], tags=["b"])
    assert messages(shrunk, old) == ["spec.ports[0].number: Forbidden: may only grow"]


def test_an_expression_that_fails_is_an_invalid_value() -> None:
    assert messages(obj(limit=3)) == [
        "spec.limit: Invalid value: \"integer\": type 'int' does not support field selection "
        "evaluating rule: self.missing > 1"
    ]


def test_rules_wait_for_a_valid_schema() -> None:
    assert messages(obj(mode="fixed", size="big")) == [
        'spec.size: Invalid value: "string": spec.size in body must be of type integer: "string"'
    ]
