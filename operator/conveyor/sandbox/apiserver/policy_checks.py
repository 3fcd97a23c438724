"""What a real server checks when a ValidatingAdmissionPolicy or its binding is written.

The checks a person needs to find a mistake at `kubectl apply` rather than at the first refused
request: required fields, the allowed values of operations, failure policies, reasons and
validation actions, and every CEL expression compiled. Parameter resources are refused with a
message saying the sandbox does not support them.
"""

from __future__ import annotations

from typing import Any

from conveyor.sandbox.apiserver.cel import CelError, compile_expression
from conveyor.sandbox.apiserver.errors import ApiError
from conveyor.sandbox.apiserver.field_errors import (
    FieldError,
    forbidden,
    invalid,
    invalid_status,
    required,
    unsupported,
)

__all__ = ["FAILURE_POLICIES", "check_binding", "check_policy"]

GROUP = "admissionregistration.k8s.io"
FAILURE_POLICIES = ("Fail", "Ignore")
_OPERATIONS = ("*", "CONNECT", "CREATE", "DELETE", "UPDATE")
_REASONS = ("Forbidden", "Invalid", "RequestEntityTooLarge", "Unauthorized")
_ACTIONS = ("Audit", "Deny", "Warn")
_NO_PARAMS = (
    "parameter resources are not supported by the sandbox API server; write the values into "
    "the policy's expressions or variables instead"
)


def check_policy(policy: dict[str, Any]) -> None:
    """ApiError 422 naming each field to fix, as a real server refuses a bad policy."""
    spec = _spec(policy)
    errors: list[FieldError] = []
    if spec.get("paramKind"):
        errors.append(forbidden("spec.paramKind", _NO_PARAMS))
    constraints = spec.get("matchConstraints")
    if not isinstance(constraints, dict):
        errors.append(required("spec.matchConstraints"))
    else:
        errors += _match_errors(constraints, "spec.matchConstraints", rules_required=True)
    failure_policy = spec.get("failurePolicy")
    if failure_policy is not None and failure_policy not in FAILURE_POLICIES:
        errors.append(unsupported("spec.failurePolicy", failure_policy, list(FAILURE_POLICIES)))
    if not spec.get("validations") and not spec.get("auditAnnotations"):
        errors.append(
            required(
                "spec.validations", "validations or auditAnnotations must contain at least one item"
            )
        )
    for index, validation in enumerate(spec.get("validations") or []):
        path = f"spec.validations[{index}]"
        errors += _expression_errors(validation, "expression", path, needed=True)
        errors += _expression_errors(validation, "messageExpression", path, needed=False)
        reason = validation.get("reason")
        if reason is not None and reason not in _REASONS:
            errors.append(unsupported(f"{path}.reason", reason, list(_REASONS)))
    for field in ("matchConditions", "variables"):
        for index, item in enumerate(spec.get(field) or []):
            path = f"spec.{field}[{index}]"
            if not item.get("name"):
                errors.append(required(f"{path}.name"))
            errors += _expression_errors(item, "expression", path, needed=True)
    _raise(errors, "ValidatingAdmissionPolicy", policy)


def check_binding(binding: dict[str, Any]) -> None:
    """ApiError 422 naming each field to fix, as a real server refuses a bad binding."""
    spec = _spec(binding)
    errors: list[FieldError] = []
    if not spec.get("policyName"):
        errors.append(required("spec.policyName"))
    if spec.get("paramRef"):
        errors.append(forbidden("spec.paramRef", _NO_PARAMS))
    actions = spec.get("validationActions") or []
    if not actions:
        errors.append(
            required("spec.validationActions", "at least one validation action is required")
        )
    for index, action in enumerate(actions):
        if action not in _ACTIONS:
            errors.append(unsupported(f"spec.validationActions[{index}]", action, list(_ACTIONS)))
    if "Deny" in actions and "Warn" in actions:
        errors.append(
            invalid(
                "spec.validationActions",
                actions,
                "must not contain both Deny and Warn (repeating the same validation failure "
                "information in the API response and headers serves no purpose)",
            )
        )
    if isinstance(spec.get("matchResources"), dict):
        errors += _match_errors(spec["matchResources"], "spec.matchResources", rules_required=False)
    _raise(errors, "ValidatingAdmissionPolicyBinding", binding)


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def _match_errors(match: dict[str, Any], path: str, *, rules_required: bool) -> list[FieldError]:
    errors = []
    rules = match.get("resourceRules") or []
    if rules_required and not rules:
        errors.append(required(f"{path}.resourceRules"))
    for field in ("resourceRules", "excludeResourceRules"):
        for index, rule in enumerate(match.get(field) or []):
            where = f"{path}.{field}[{index}]"
            for key in ("apiGroups", "apiVersions", "operations", "resources"):
                if not rule.get(key):
                    errors.append(required(f"{where}.{key}"))
            for position, operation in enumerate(rule.get("operations") or []):
                if operation not in _OPERATIONS:
                    operations = list(_OPERATIONS)
                    errors.append(
                        unsupported(f"{where}.operations[{position}]", operation, operations)
                    )
    return errors


def _expression_errors(
    item: dict[str, Any], key: str, path: str, *, needed: bool
) -> list[FieldError]:
    source = item.get(key)
    if not source:
        return [required(f"{path}.{key}")] if needed else []
    try:
        compile_expression(str(source))
    except CelError as error:
        return [invalid(f"{path}.{key}", source, f"compilation failed: {error}")]
    return []


def _raise(errors: list[FieldError], kind: str, obj: dict[str, Any]) -> None:
    if errors:
        name = (obj.get("metadata") or {}).get("name", "")
        status = invalid_status(kind, GROUP, name, errors)
        raise ApiError(422, "Invalid", status["message"], body=status)
