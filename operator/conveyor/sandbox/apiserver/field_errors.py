"""Field errors (`field.Error` of the Kubernetes API machinery) and the 422 Status they make.

The constructors word each message as the real server does, for example
`spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conveyor.sandbox.apiserver.go_values import go_bad_value, go_quote

__all__ = [
    "FieldError",
    "duplicate",
    "forbidden",
    "invalid",
    "invalid_status",
    "required",
    "too_long",
    "too_many",
    "unsupported",
]


@dataclass(frozen=True)
class FieldError:
    """One validation failure, as a `field.Error` of the Kubernetes API machinery."""

    path: str  # "spec.model.estimator"
    kind: str  # "Required" | "Invalid" | "Unsupported value" | "Duplicate value" | ...
    message: str  # 'spec.model.estimator: Unsupported value: "foo": supported values: "a"'


def _error(path: str, kind: str, body: str) -> FieldError:
    return FieldError(path, kind, f"{path}: {body}")


def required(path: str, detail: str = "") -> FieldError:
    return _error(path, "Required", "Required value" + (f": {detail}" if detail else ""))


def invalid(path: str, value: Any, detail: str) -> FieldError:
    return _error(path, "Invalid", f"Invalid value: {go_bad_value(value)}: {detail}")


def forbidden(path: str, detail: str = "") -> FieldError:
    return _error(path, "Forbidden", "Forbidden" + (f": {detail}" if detail else ""))


def unsupported(path: str, value: Any, allowed: list[str]) -> FieldError:
    body = f"Unsupported value: {go_bad_value(value)}"
    if allowed:
        body += ": supported values: " + ", ".join(go_quote(name) for name in allowed)
    return _error(path, "Unsupported value", body)


def duplicate(path: str, value: Any) -> FieldError:
    return _error(path, "Duplicate value", f"Duplicate value: {go_bad_value(value)}")


def too_long(path: str, limit: int) -> FieldError:
    unit = "byte" if limit == 1 else "bytes"
    return _error(path, "Too long", f"Too long: may not be more than {limit} {unit}")


def too_many(path: str, actual: int, limit: int) -> FieldError:
    unit = "item" if limit == 1 else "items"
    return _error(path, "Too many", f"Too many: {actual}: must have at most {limit} {unit}")


_CAUSE_REASONS = {
    "Required": "FieldValueRequired",
    "Invalid": "FieldValueInvalid",
    "Unsupported value": "FieldValueNotSupported",
    "Duplicate value": "FieldValueDuplicate",
    "Forbidden": "FieldValueForbidden",
    "Too many": "FieldValueTooMany",
    "Too long": "FieldValueTooLong",
}


def invalid_status(kind: str, group: str, name: str, errors: list[FieldError]) -> dict[str, Any]:
    """The 422 Status body a real server returns for an invalid object (`errors.NewInvalid`)."""
    qualified = f"{kind}.{group}" if group else kind
    messages = list(dict.fromkeys(error.message for error in errors))  # aggregated, deduplicated
    message = f"{qualified} {go_quote(name)} is invalid"
    if messages:
        message += ": " + (messages[0] if len(messages) == 1 else f"[{', '.join(messages)}]")
    details: dict[str, Any] = {
        "name": name,
        "group": group,
        "kind": kind,
        "causes": [_cause(error) for error in errors],
    }
    if not group:
        del details["group"]
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Invalid",
        "details": details,
        "code": 422,
    }


def _cause(error: FieldError) -> dict[str, str]:
    prefix = f"{error.path}: "
    body = error.message[len(prefix) :] if error.message.startswith(prefix) else error.message
    reason = _CAUSE_REASONS.get(error.kind, "FieldValueInvalid")
    if error.kind == "Invalid" and " in body must be of type " in body:
        reason = "FieldValueTypeInvalid"
    return {"reason": reason, "message": body, "field": error.path}
