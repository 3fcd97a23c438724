"""ValidatingAdmissionPolicies (`admissionregistration.k8s.io/v1`), enforced as a real server does.

Every create, update (PUT, patch, the status subresource) and delete (each item of a delete
collection too) of any resource goes through `PolicyAdmission.validate` before it is stored.
For each policy whose `matchConstraints` select the request, each binding (`policyName`) whose
`matchResources` also do: the `matchConditions` must all be true, then every validation is
evaluated with `object`, `oldObject`, `request`, `namespaceObject`, `params` (null) and the
lazily computed `variables`. A false validation is a denial whose message is its
`messageExpression`'s result, else its `message`, else `failed expression: <expression>`; an
expression that fails denies with `expression '<e>' resulted in error: <why>` when the
`failurePolicy` is Fail (the default) and admits when it is Ignore. A binding's
`validationActions` decide: Deny refuses the request with the first denial,

    modelversions.conveyor.dev "x" is forbidden: ValidatingAdmissionPolicy 'p' with binding 'b'
    denied request: <message>

with the HTTP code of the validation's `reason` (Forbidden 403, Unauthorized 401,
RequestEntityTooLarge 413, otherwise Invalid 422 — a real server's default too); Warn adds a
`Validation failed for ValidatingAdmissionPolicy 'p' with binding 'b': <message>` warning;
Audit is ignored (there is no audit log).

Not supported, refused when a policy or binding is written: `paramKind` and `paramRef`.
`auditAnnotations` are accepted and ignored. There is no type checking (`status.typeChecking`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conveyor.sandbox.apiserver.cel import (
    CelError,
    Expression,
    LazyMap,
    compile_expression,
    evaluate,
    evaluate_bool,
    to_cel,
)
from conveyor.sandbox.apiserver.errors import ApiError
from conveyor.sandbox.apiserver.policy_checks import FAILURE_POLICIES
from conveyor.sandbox.apiserver.policy_matching import Attributes, resources_match

__all__ = ["Attributes", "PolicyAdmission"]

_CODES = {"Forbidden": 403, "Unauthorized": 401, "RequestEntityTooLarge": 413, "Invalid": 422}
_MESSAGE_LIMIT = 5000  # celconfig.MaxEvaluatedMessageExpressionSizeBytes


@dataclass(frozen=True)
class _Validation:
    expression: Expression | str  # the compiled expression, or why it does not compile
    source: str
    message: str
    message_expression: Expression | None
    reason: str


@dataclass(frozen=True)
class _Decision:
    """A validation that did not admit the request."""

    message: str
    reason: str  # "" for evaluation errors: the server answers Invalid


@dataclass(frozen=True)
class _CompiledPolicy:
    name: str
    match_conditions: list[tuple[str, Expression | str]]
    variables: list[tuple[str, Expression | str]]
    validations: list[_Validation]
    fails_closed: bool  # failurePolicy Fail

    @classmethod
    def of(cls, policy: dict[str, Any]) -> _CompiledPolicy:
        spec = policy.get("spec") or {}
        validations = [
            _Validation(
                _compiled(str(v.get("expression", ""))),
                str(v.get("expression", "")),
                str(v.get("message") or "").strip(),
                _message_expression(v.get("messageExpression")),
                str(v.get("reason") or "Invalid"),
            )
            for v in spec.get("validations") or []
        ]
        named = [
            [(str(c.get("name")), _compiled(str(c.get("expression", "")))) for c in items or []]
            for items in (spec.get("matchConditions"), spec.get("variables"))
        ]
        return cls(
            name=policy["metadata"]["name"],
            match_conditions=named[0],
            variables=named[1],
            validations=validations,
            fails_closed=(spec.get("failurePolicy") or FAILURE_POLICIES[0]) != "Ignore",
        )


def _compiled(source: str) -> Expression | str:
    try:
        return compile_expression(source)
    except CelError as error:
        return f"compilation error: {error}"


def _message_expression(source: Any) -> Expression | None:
    compiled = _compiled(str(source)) if source else None
    return compiled if isinstance(compiled, Expression) else None


class PolicyAdmission:
    """Evaluates the stored policies and bindings; compiled policies are cached by version."""

    def __init__(self) -> None:
        self._compiled: dict[tuple[str, str], _CompiledPolicy] = {}

    def validate(
        self,
        attributes: Attributes,
        policies: list[dict[str, Any]],
        bindings: list[dict[str, Any]],
        namespace: dict[str, Any] | None,
    ) -> list[str]:
        """The warnings of Warn bindings; ApiError for the first denial of a Deny binding."""
        warnings: list[str] = []
        denials: list[tuple[str, str, _Decision]] = []
        for policy in sorted(policies, key=lambda p: p["metadata"]["name"]):
            spec = policy.get("spec") or {}
            if not resources_match(
                spec.get("matchConstraints"), attributes, namespace, rules_required=True
            ):
                continue
            compiled = self._compile(policy)
            for binding in _bindings_of(compiled.name, bindings):
                binding_spec = binding.get("spec") or {}
                if not resources_match(
                    binding_spec.get("matchResources"), attributes, namespace, rules_required=False
                ):
                    continue
                binding_name = binding["metadata"]["name"]
                actions = binding_spec.get("validationActions") or []
                for decision in _decide(compiled, attributes, namespace):
                    if "Deny" in actions:
                        denials.append((compiled.name, binding_name, decision))
                    if "Warn" in actions:
                        warnings.append(
                            f"Validation failed for ValidatingAdmissionPolicy '{compiled.name}' "
                            f"with binding '{binding_name}': {decision.message}"
                        )
        if denials:
            raise _denial(attributes, *denials[0])
        return warnings

    def _compile(self, policy: dict[str, Any]) -> _CompiledPolicy:
        metadata = policy["metadata"]
        key = (metadata.get("uid", ""), metadata.get("resourceVersion", ""))
        if key not in self._compiled:
            self._compiled = {k: v for k, v in self._compiled.items() if k[0] != key[0]}
            self._compiled[key] = _CompiledPolicy.of(policy)
        return self._compiled[key]


def _bindings_of(policy: str, bindings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = [b for b in bindings if (b.get("spec") or {}).get("policyName") == policy]
    return sorted(found, key=lambda b: b["metadata"]["name"])


def _decide(
    policy: _CompiledPolicy, attributes: Attributes, namespace: dict[str, Any] | None
) -> list[_Decision]:
    """The denials of one policy for one request (empty: admitted or not applicable)."""
    activation = _activation(attributes, namespace)
    activation["variables"] = LazyMap(
        {name: _variable(expression, activation) for name, expression in policy.variables}
    )
    errors, matched = [], True
    for _, condition in policy.match_conditions:
        try:
            matched = matched and _true(condition, activation)
        except CelError as error:
            errors.append(str(error))
    if not matched:
        return []
    if errors:
        message = errors[0] if len(errors) == 1 else f"[{', '.join(errors)}]"
        return [_Decision(message, "")] if policy.fails_closed else []
    decisions = []
    for validation in policy.validations:
        try:
            if _true(validation.expression, activation):
                continue
        except CelError as error:
            if policy.fails_closed:
                decisions.append(_Decision(str(error), ""))
            continue
        message = _evaluated_message(validation, activation) or validation.message
        decisions.append(
            _Decision(
                message or f"failed expression: {validation.source.strip()}", validation.reason
            )
        )
    return decisions


def _true(expression: Expression | str, activation: dict[str, Any]) -> bool:
    if isinstance(expression, str):
        raise CelError(expression)  # the compile error, as a real server reports it
    try:
        return evaluate_bool(expression, activation)
    except CelError as error:
        raise CelError(f"expression '{expression.source}' resulted in error: {error}") from None


def _variable(expression: Expression | str, activation: dict[str, Any]) -> Callable[[], Any]:
    def value() -> Any:
        if isinstance(expression, str):
            raise CelError(expression)
        return evaluate(expression, activation)

    return value


def _evaluated_message(validation: _Validation, activation: dict[str, Any]) -> str:
    if validation.message_expression is None:
        return ""
    try:
        result = evaluate(validation.message_expression, activation)
    except CelError:
        return ""  # a real server logs it and falls back to the message
    message = str(result).strip() if isinstance(result, str) else ""
    return "" if "\n" in message or len(message) > _MESSAGE_LIMIT else message


def _activation(attributes: Attributes, namespace: dict[str, Any] | None) -> dict[str, Any]:
    schema = attributes.resource_type.schema
    return {
        "object": to_cel(attributes.object, schema),
        "oldObject": to_cel(attributes.old_object, schema),
        "request": to_cel(_request(attributes)),
        "namespaceObject": to_cel(_namespace_object(namespace)),
        "params": None,
    }


def _request(attributes: Attributes) -> dict[str, Any]:
    """The AdmissionRequest as CEL sees it: fields that are empty are absent (omitempty)."""
    resource_type = attributes.resource_type
    kind = {"group": resource_type.group, "version": resource_type.version}
    resource = {**kind, "resource": resource_type.plural}
    request: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "kind": {**kind, "kind": resource_type.kind},
        "resource": resource,
        "requestKind": {**kind, "kind": resource_type.kind},
        "requestResource": resource,
        "operation": attributes.operation,
        "userInfo": attributes.user.to_request(),
        "dryRun": attributes.dry_run,
        "options": attributes.options,
    }
    for key, value in (
        ("subResource", attributes.subresource),
        ("requestSubResource", attributes.subresource),
        ("name", attributes.name),
        ("namespace", attributes.namespace),
    ):
        if value:
            request[key] = value
    return request


def _namespace_object(namespace: dict[str, Any] | None) -> dict[str, Any] | None:
    """The fields of the namespace a policy may read (`cel.CreateNamespaceObject`)."""
    if namespace is None:
        return None
    kept = (
        "name",
        "generateName",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "finalizers",
    )
    metadata = namespace.get("metadata") or {}
    return {
        "metadata": {key: metadata[key] for key in kept if key in metadata},
        "spec": namespace.get("spec") or {},
        "status": namespace.get("status") or {},
    }


def _denial(attributes: Attributes, policy: str, binding: str, decision: _Decision) -> ApiError:
    """`admission.NewForbidden` with the code and reason of the validation."""
    resource_type = attributes.resource_type
    name = attributes.name or "Unknown"
    cause = (
        f"ValidatingAdmissionPolicy '{policy}' with binding '{binding}' denied request: "
        f"{decision.message}"
    )
    reason = decision.reason or "Invalid"
    details: dict[str, Any] = {"name": name, "kind": resource_type.plural, "causes": []}
    if resource_type.group:
        details["group"] = resource_type.group
    details["causes"].append({"message": cause})
    message = f'{resource_type.qualified} "{name}" is forbidden: {cause}'
    return ApiError(_CODES.get(reason, 422), reason, message, details)
