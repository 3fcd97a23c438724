"""CRD validation rules (`x-kubernetes-validations`), evaluated as a real API server does.

Every node of the object that has rules and a non-null value is checked: each rule's CEL
expression sees `self` (the value, typed by its schema) and, on an update, `oldSelf` (the old
value at the same place). A transition rule — one that mentions `oldSelf` — runs only on an
update and only where an old value correlates: through object properties, map entries, and the
items of `x-kubernetes-list-type: map` lists (matched by their keys); items of other lists never
correlate. A rule that is not true is a field error at the node, or at the rule's `fieldPath`,
worded as Kubernetes 1.32 words it:

    spec.artifact: Invalid value: "object": is immutable: a registry entry never changes

The detail is the `messageExpression`'s result (when it is a non-empty one-line string), else
`message`, else `failed rule: <rule>`; `reason` picks the error type (`FieldValueForbidden`,
`FieldValueRequired`, `FieldValueDuplicate`, default `FieldValueInvalid`). An expression that
fails to evaluate is an error too (`no such key: x evaluating rule: <rule>`).

Known differences from a real server: no cost budget (a real server refuses a CRD whose rules
could cost too much), no ratcheting (an unchanged invalid value still fails), and
`optionalOldSelf` rules, like the others, run only where an old value exists.
"""

from __future__ import annotations

import re
from typing import Any

from conveyor.sandbox.apiserver.cel import (
    CelError,
    compile_expression,
    evaluate,
    evaluate_bool,
    to_cel,
)
from conveyor.sandbox.apiserver.field_errors import (
    FieldError,
    duplicate,
    forbidden,
    invalid,
    required,
)
from conveyor.sandbox.apiserver.schema_keywords import LIST_MAP_KEYS, LIST_TYPE, Schema

__all__ = ["VALIDATIONS", "rule_errors"]

VALIDATIONS = "x-kubernetes-validations"
_ROOT = "<nil>"  # how a real server names the path of the object itself
_MISSING = object()  # no old value correlates with this node
_FIELD_PATH = re.compile(r"\.([A-Za-z0-9_$-]+)|\['((?:[^'\\]|\\.)*)'\]")


def rule_errors(
    schema: Schema, obj: dict[str, Any], old: dict[str, Any] | None
) -> list[FieldError]:
    """The errors of every rule in the schema on obj (an update when old is given)."""
    return _node_errors(obj, _MISSING if old is None else old, schema or {}, "")


def _node_errors(value: Any, old: Any, schema: Schema, path: str) -> list[FieldError]:
    if value is None or not isinstance(schema, dict):
        return []
    errors = [
        error
        for rule in schema.get(VALIDATIONS) or []
        if (error := _rule_error(rule, value, old, schema, path or _ROOT)) is not None
    ]
    if isinstance(value, dict):
        errors += _property_errors(value, old, schema, path)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        olds = _correlated_items(value, old, schema)
        for index, item in enumerate(value):
            errors += _node_errors(item, olds[index], schema["items"], f"{path}[{index}]")
    return errors


def _property_errors(
    value: dict[str, Any], old: Any, schema: Schema, path: str
) -> list[FieldError]:
    properties = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    errors = []
    for key, item in value.items():
        if key in properties:
            sub, child = properties[key], f"{path}.{key}" if path else key
        elif isinstance(extra, dict):
            sub, child = extra, f"{path}[{key}]"
        else:
            continue
        old_item = old.get(key, _MISSING) if isinstance(old, dict) else _MISSING
        errors += _node_errors(item, old_item, sub, child)
    return errors


def _correlated_items(value: list[Any], old: Any, schema: Schema) -> list[Any]:
    """The old item of each new item: by key in list-type map lists, none otherwise."""
    keys = schema.get(LIST_MAP_KEYS) or []
    if schema.get(LIST_TYPE) != "map" or not keys or not isinstance(old, list):
        return [_MISSING] * len(value)

    def identity(item: Any) -> Any:
        return tuple(repr(item.get(key)) for key in keys) if isinstance(item, dict) else None

    by_key = {identity(item): item for item in old}
    return [by_key.get(identity(item), _MISSING) for item in value]


def _rule_error(
    rule: dict[str, Any], value: Any, old: Any, schema: Schema, path: str
) -> FieldError | None:
    text = str(rule.get("rule", "")).strip()
    kind = str(schema.get("type", ""))
    if not text:
        return None
    try:
        expression = compile_expression(text)
    except CelError as error:
        return invalid(path, kind, f"rule compile error: {error}")
    if "oldSelf" in expression.names and old is _MISSING:
        return None  # a transition rule: nothing to compare with
    variables = {"self": to_cel(value, schema)}
    if old is not _MISSING:
        variables["oldSelf"] = to_cel(old, schema)
    try:
        if evaluate_bool(expression, variables):
            return None
    except CelError as error:
        return invalid(path, kind, _evaluation_failure(str(error), rule))
    target = _field_path(path, rule.get("fieldPath"), schema)
    detail = _message_expression(rule, variables) or _message_or_default(rule)
    return _error_for_reason(rule.get("reason"), target, kind, detail)


def _evaluation_failure(error: str, rule: dict[str, Any]) -> str:
    if error.startswith("no such overload"):
        return (
            f"'{error}': call arguments did not match a supported operator, function or macro "
            f"signature for rule: {_rule_error_string(rule)}"
        )
    return f"{error} evaluating rule: {_rule_error_string(rule)}"


def _message_expression(rule: dict[str, Any], variables: dict[str, Any]) -> str:
    """The messageExpression's result, or "" when it fails or is unusable (the fallback)."""
    source = str(rule.get("messageExpression") or "").strip()
    if not source:
        return ""
    try:
        result = evaluate(compile_expression(source), variables)
    except CelError:
        return ""
    message = str(result).strip() if isinstance(result, str) else ""
    return "" if "\n" in message else message


def _message_or_default(rule: dict[str, Any]) -> str:
    message = str(rule.get("message") or "").strip()
    return message or f"failed rule: {_rule_error_string(rule)}"


def _rule_error_string(rule: dict[str, Any]) -> str:
    return str(rule.get("message") or "").strip() or str(rule.get("rule", "")).strip()


def _error_for_reason(reason: Any, path: str, kind: str, detail: str) -> FieldError:
    if reason == "FieldValueForbidden":
        return forbidden(path, detail)
    if reason == "FieldValueRequired":
        return required(path, detail)
    if reason == "FieldValueDuplicate":
        return duplicate(path, kind)
    return invalid(path, kind, detail)


def _field_path(path: str, field_path: Any, schema: Schema) -> str:
    """The node's path extended by a rule's `fieldPath` (`.name`, `['key']`)."""
    if not field_path:
        return path
    base = "" if path == _ROOT else path
    node: Any = schema
    for match in _FIELD_PATH.finditer(str(field_path)):
        name = match.group(1) if match.group(1) is not None else match.group(2)
        properties = (node or {}).get("properties") or {}
        if name in properties:
            base, node = (f"{base}.{name}" if base else name), properties[name]
        else:
            base, node = f"{base}[{name}]", (node or {}).get("additionalProperties")
    return base or _ROOT
