"""ValidatingAdmissionPolicy evaluation: matching, conditions, variables, messages, actions."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.sandbox.apiserver.errors import ApiError
from conveyor.sandbox.apiserver.identity import ANONYMOUS, UserInfo, service_account
from conveyor.sandbox.apiserver.policies import PolicyAdmission
from conveyor.sandbox.apiserver.policy_checks import check_binding, check_policy
from conveyor.sandbox.apiserver.policy_matching import Attributes, label_selector_matches
from conveyor.sandbox.apiserver.resources import ResourceType

WIDGETS = ResourceType("test.dev", "v1", "widgets", "Widget", subresources=("status",))
ALICE = UserInfo("alice", ("team-a", "system:authenticated"))
NAMESPACE = {"metadata": {"name": "ns", "labels": {"env": "prod"}}, "spec": {}, "status": {}}


def policy(name: str = "p", **spec: Any) -> dict[str, Any]:
    spec.setdefault(
        "matchConstraints",
        {
            "resourceRules": [
                {
                    "apiGroups": ["test.dev"],
                    "apiVersions": ["*"],
                    "operations": ["CREATE", "UPDATE", "DELETE"],
                    "resources": ["widgets"],
                }
            ]
        },
    )
    spec.setdefault("validations", [{"expression": "object.spec.size < 10"}])
    return {"metadata": {"name": name, "uid": name, "resourceVersion": "1"}, "spec": spec}


def binding(name: str = "b", policy_name: str = "p", **spec: Any) -> dict[str, Any]:
    spec.setdefault("validationActions", ["Deny"])
    return {"metadata": {"name": name}, "spec": {"policyName": policy_name, **spec}}


def widget(size: int = 1, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": "w", "namespace": "ns", "labels": labels}, "spec": {"size": size}}


def attributes(
    operation: str = "CREATE", obj: Any = None, old: Any = None, **kw: Any
) -> Attributes:
    if obj is None and operation != "DELETE":
        obj = widget()
    return Attributes(operation, WIDGETS, "w", "ns", kw.pop("user", ALICE), obj, old, **kw)


def run(
    request: Attributes,
    policies: list[dict[str, Any]],
    bindings: list[dict[str, Any]] | None = None,
) -> list[str]:
    return PolicyAdmission().validate(
        request, policies, [binding()] if bindings is None else bindings, NAMESPACE
    )


def refusal(request: Attributes, policies: list[dict[str, Any]], **kw: Any) -> ApiError:
    with pytest.raises(ApiError) as raised:
        run(request, policies, **kw)
    return raised.value


def test_a_denial_reads_as_the_real_servers_and_defaults_to_422_invalid() -> None:
    error = refusal(attributes(obj=widget(size=50)), [policy()])
    assert error.code == 422 and error.reason == "Invalid"
    cause = "ValidatingAdmissionPolicy 'p' with binding 'b' denied request: failed expression: object.spec.size < 10"
    assert error.message == f'widgets.test.dev "w" is forbidden: {cause}'
    assert error.details == {
        "name": "w",
        "group": "test.dev",
        "kind": "widgets",
        "causes": [{"message": cause}],
    }


@pytest.mark.parametrize(
    ("reason", "code"),
    [("Forbidden", 403), ("Unauthorized", 401), ("RequestEntityTooLarge", 413), ("Invalid", 422)],
)
def test_the_reason_of_a_validation_is_the_http_code(reason: str, code: int) -> None:
    validations = [{"expression": "false", "message": "no", "reason": reason}]
    error = refusal(attributes(), [policy(validations=validations)])
    assert (error.code, error.reason) == (code, reason)


def test_message_expression_then_message_then_the_expression() -> None:
    validations = [
        {"expression": "false", "messageExpression": "'size ' + string(object.spec.size)"},
        {"expression": "false", "messageExpression": "object.nope", "message": "fallback"},
    ]
    error = refusal(attributes(), [policy(validations=validations)])
    assert error.message.endswith("denied request: size 1")
    error = refusal(attributes(), [policy(validations=validations[1:])])
    assert error.message.endswith("denied request: fallback")


def test_failure_policy_decides_what_an_evaluation_error_does() -> None:
    validations = [{"expression": "object.spec.missing > 1"}]
    error = refusal(attributes(), [policy(validations=validations)])
    assert error.code == 422
    assert error.message.endswith(
        "denied request: expression 'object.spec.missing > 1' resulted in error: no such key: missing"
    )
    assert run(attributes(), [policy(validations=validations, failurePolicy="Ignore")]) == []


def test_resource_rules_select_operations_and_subresources() -> None:
    status_only = {
        "resourceRules": [
            {
                "apiGroups": ["*"],
                "apiVersions": ["*"],
                "operations": ["UPDATE"],
                "resources": ["widgets/status"],
            }
        ]
    }
    deny_all = [{"expression": "false"}]
    guarded = policy(matchConstraints=status_only, validations=deny_all)
    old = widget()
    assert run(attributes("UPDATE", widget(), old), [guarded]) == []
    assert refusal(attributes("UPDATE", widget(), old, subresource="status"), [guarded])
    assert run(attributes("CREATE"), [guarded]) == []


def test_namespace_and_object_selectors() -> None:
    deny_all = [{"expression": "false"}]
    prod_only = binding(matchResources={"namespaceSelector": {"matchLabels": {"env": "prod"}}})
    dev_only = binding(matchResources={"namespaceSelector": {"matchLabels": {"env": "dev"}}})
    assert refusal(attributes(), [policy(validations=deny_all)], bindings=[prod_only])
    assert run(attributes(), [policy(validations=deny_all)], [dev_only]) == []
    labelled = binding(matchResources={"objectSelector": {"matchLabels": {"tier": "gold"}}})
    assert run(attributes(), [policy(validations=deny_all)], [labelled]) == []
    gold = attributes("DELETE", None, widget(tier="gold"))
    assert refusal(gold, [policy(validations=deny_all)], bindings=[labelled])


def test_match_conditions_skip_the_policy_for_some_users() -> None:
    operator = service_account("conveyor-system", "conveyor-operator")
    conditions = [
        {
            "name": "not-the-operator",
            "expression": f"request.userInfo.username != '{operator.username}'",
        }
    ]
    guarded = policy(matchConditions=conditions, validations=[{"expression": "false"}])
    assert run(attributes(user=operator), [guarded]) == []
    assert refusal(attributes(user=ANONYMOUS), [guarded])


def test_what_expressions_see() -> None:
    validations = [
        {"expression": "oldObject == null && request.operation == 'CREATE'"},
        {
            "expression": "request.userInfo.username == 'alice' && 'team-a' in request.userInfo.groups"
        },
        {"expression": "request.kind.kind == 'Widget' && request.resource.resource == 'widgets'"},
        {"expression": "request.name == 'w' && request.namespace == 'ns'"},
        {"expression": "!has(request.subResource) && params == null"},
        {"expression": "namespaceObject.metadata.labels.env == 'prod'"},
        {"expression": "variables.doubled == 2 && variables.again == 4"},
    ]
    variables = [
        {"name": "doubled", "expression": "object.spec.size * 2"},
        {"name": "again", "expression": "variables.doubled * 2"},
    ]
    assert run(attributes(), [policy(validations=validations, variables=variables)]) == []


def test_delete_sees_the_stored_object_as_old_object() -> None:
    validations = [{"expression": "object == null && oldObject.spec.size < 10", "message": "big"}]
    assert run(attributes("DELETE", None, widget(size=3)), [policy(validations=validations)]) == []
    error = refusal(attributes("DELETE", None, widget(size=30)), [policy(validations=validations)])
    assert error.message.endswith("denied request: big")


def test_warn_bindings_warn_and_audit_is_ignored() -> None:
    bindings = [
        binding("w1", validationActions=["Warn"]),
        binding("a1", validationActions=["Audit"]),
    ]
    warnings = run(attributes(obj=widget(size=50)), [policy()], bindings)
    assert warnings == [
        "Validation failed for ValidatingAdmissionPolicy 'p' with binding 'w1': "
        "failed expression: object.spec.size < 10"
    ]


def test_a_policy_without_a_binding_does_nothing() -> None:
    assert run(attributes(obj=widget(size=50)), [policy()], []) == []


def test_label_selector_expressions() -> None:
    selector = {
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["gold", "silver"]},
            {"key": "legacy", "operator": "DoesNotExist"},
        ]
    }
    assert label_selector_matches(selector, {"tier": "gold"})
    assert not label_selector_matches(selector, {"tier": "gold", "legacy": "y"})
    assert not label_selector_matches(selector, {"tier": "bronze"})


def test_writing_a_policy_checks_it_as_a_real_server_would() -> None:
    with pytest.raises(ApiError) as raised:
        check_policy(
            policy(
                validations=[{"expression": "object.spec.size <", "reason": "Teapot"}],
                paramKind={"apiVersion": "v1", "kind": "ConfigMap"},
            )
        )
    causes = {c["field"]: c["message"] for c in raised.value.body["details"]["causes"]}
    assert raised.value.code == 422
    assert causes["spec.paramKind"].startswith("Forbidden: parameter resources are not supported")
    assert causes["spec.validations[0].expression"].startswith(
        'Invalid value: "object.spec.size <": compilation failed: ERROR: <input>:1:'
    )
    assert causes["spec.validations[0].reason"].startswith('Unsupported value: "Teapot"')


def test_writing_a_binding_checks_it() -> None:
    with pytest.raises(ApiError) as raised:
        check_binding(binding(policy_name="", validationActions=["Deny", "Warn"]))
    fields = [c["field"] for c in raised.value.body["details"]["causes"]]
    assert fields == ["spec.policyName", "spec.validationActions"]
