"""CRD structural-schema admission: prune, default and validate a custom resource.

A real kube-apiserver runs three steps on every create, update and patch of a custom resource,
against the `openAPIV3Schema` of the CRD version, and `admit` runs them in the same order:

1. prune (apiextensions `structural/pruning`): every field the schema does not specify is
   dropped, except below `x-kubernetes-preserve-unknown-fields: true`; `apiVersion`, `kind` and
   `metadata` survive at the root and in `x-kubernetes-embedded-resource` objects;
2. default (`structural/defaulting`): non-nullable nulls without a default are dropped, then
   `default` values fill absent fields (and non-nullable nulls), recursively, but never
   materialize an absent parent;
3. validate: the kube-openapi schema validator, then the apiextensions checks of embedded
   resources and of `x-kubernetes-list-type` set/map, with the real server's messages; then
   the CEL rules of `x-kubernetes-validations` (transition rules on updates only).

Pruning and defaulting live here; validation in `schema_validation` (string formats in
`schema_formats`), the CEL rules in `validation_rules`, the field errors and the 422 Status
they make in `field_errors`.

Known differences from a real server, on purpose:
- CEL rules run only when the schema validation found nothing (a real server skips them only
  after errors that make the data unsafe to evaluate: types, required fields, sizes).
- Map keys appear as `spec.labels[app]` in every path; kube-openapi writes `spec.labels.app`
  in its schema messages (the list-type checks of the real server use brackets too).
- Numeric bounds are compared exactly; kube-openapi truncates a fractional bound to an integer
  when the value is an integer (so `0` would pass `minimum: 0.1` on a real server).
- anyOf/oneOf/allOf/not failures carry the path of the node; a real server reports them at
  `<nil>`. An update is validated like a create (no ratcheting of unchanged invalid fields).
- Patterns that Python's `re` cannot compile (RE2-only syntax) are not enforced.
"""

from __future__ import annotations

import copy
from typing import Any

from conveyor.sandbox.apiserver.field_errors import FieldError, invalid_status
from conveyor.sandbox.apiserver.schema_keywords import (
    EMBEDDED_RESOURCE,
    PRESERVE_UNKNOWN,
    TYPE_META_FIELDS,
    Schema,
)
from conveyor.sandbox.apiserver.schema_validation import validate
from conveyor.sandbox.apiserver.validation_rules import rule_errors

__all__ = ["FieldError", "admit", "apply_defaults", "invalid_status", "prune", "validate"]


def admit(
    schema: Schema, obj: dict[str, Any], old: dict[str, Any] | None = None
) -> tuple[dict[str, Any], list[FieldError]]:
    """The object pruned and defaulted as a real server stores it, and its validation errors;
    `old` is the stored object when this is an update (for transition rules)."""
    admitted = apply_defaults(schema, prune(schema, obj))
    errors = validate(schema, admitted)
    return admitted, errors or rule_errors(schema, admitted, old)


# --- pruning ---------------------------------------------------------------------------------

_DROP = object()  # a key that neither `properties` nor `additionalProperties` specifies


def prune(schema: Schema, obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of obj without the fields the schema does not specify."""
    # The root is an embedded resource: its apiVersion, kind and metadata always survive.
    pruned: dict[str, Any] = _prune(obj, {**(schema or {}), EMBEDDED_RESOURCE: True})
    return pruned


def _prune(value: Any, schema: Schema | None) -> Any:
    if schema is not None and schema.get(PRESERVE_UNKNOWN):
        return _prune_specified_only(value, schema)
    if isinstance(value, dict):
        if schema is None:
            return {}
        kept = {}
        for key, item in value.items():
            if schema.get(EMBEDDED_RESOURCE) and _is_type_meta(key, item):
                kept[key] = copy.deepcopy(item)
            elif (sub := _schema_for_key(schema, key)) is not _DROP:
                kept[key] = _prune(item, sub)
        return kept
    if isinstance(value, list):
        items = schema.get("items") if schema is not None else None
        return [_prune(item, items if isinstance(items, dict) else None) for item in value]
    return value


def _prune_specified_only(value: Any, schema: Schema) -> Any:
    """Below preserve-unknown-fields: keep unknown fields, still prune the specified ones."""
    if isinstance(value, dict):
        kept = {}
        for key, item in value.items():
            sub = _schema_for_key(schema, key)
            if sub is _DROP or (schema.get(EMBEDDED_RESOURCE) and key in TYPE_META_FIELDS):
                kept[key] = copy.deepcopy(item)
            else:
                kept[key] = _prune(item, sub)
        return kept
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_prune_specified_only(item, schema["items"]) for item in value]
    return copy.deepcopy(value)


def _schema_for_key(schema: Schema, key: str) -> Any:
    properties = schema.get("properties") or {}
    if key in properties:
        return properties[key]
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        return extra
    return None if extra is True else _DROP  # `true` specifies the key but nothing below it


def _is_type_meta(key: str, value: Any) -> bool:
    if key in ("apiVersion", "kind"):
        return isinstance(value, str)
    return key == "metadata" and isinstance(value, dict)


# --- defaulting ------------------------------------------------------------------------------


def apply_defaults(schema: Schema, obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of obj with the schema's defaults applied where fields are absent."""
    defaulted = copy.deepcopy(obj)
    _drop_nulls_without_default(defaulted, schema)
    _default(defaulted, schema)
    return defaulted


def _value_schema(schema: Schema, key: str) -> Schema | None:
    properties = schema.get("properties") or {}
    if key in properties:
        return properties[key]  # type: ignore[no-any-return]
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def _replaces_null(schema: Schema) -> bool:
    return not schema.get("nullable")


def _drop_nulls_without_default(value: Any, schema: Schema | None) -> None:
    if schema is None:
        return
    if isinstance(value, dict):
        for key in list(value):
            sub = _value_schema(schema, key)
            if sub is None:
                continue
            if value[key] is None and _replaces_null(sub) and sub.get("default") is None:
                del value[key]
            else:
                _drop_nulls_without_default(value[key], sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _drop_nulls_without_default(item, schema["items"])


def _default(value: Any, schema: Schema | None) -> None:
    if schema is None:
        return
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for key, sub in properties.items():
            missing = key not in value or (value[key] is None and _replaces_null(sub))
            if missing and sub.get("default") is not None:
                value[key] = copy.deepcopy(sub["default"])
        for key in list(value):
            sub = _value_schema(schema, key)
            if sub is None:
                continue
            if value[key] is None and _replaces_null(sub) and sub.get("default") is not None:
                value[key] = copy.deepcopy(sub["default"])
            _default(value[key], sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        items = schema["items"]
        for index, item in enumerate(value):
            if item is None and _replaces_null(items) and items.get("default") is not None:
                value[index] = copy.deepcopy(items["default"])
            _default(value[index], items)
