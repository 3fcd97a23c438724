"""Which requests a ValidatingAdmissionPolicy or its binding applies to (`MatchResources`).

As the real server matches them: `resourceRules` (API groups, versions, operations, resources
with subresources such as `modelversions/status`, `*`, `*/*`, `pods/*`, `*/status`, scope and
resource names), `excludeResourceRules`, `namespaceSelector` (the namespace's labels; a Namespace
is matched by its own labels; other cluster-scoped objects always match) and `objectSelector`
(the new or the old object's labels). `matchPolicy` is always Equivalent: each resource is served
in one version here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from conveyor.sandbox.apiserver.identity import UserInfo
from conveyor.sandbox.apiserver.resources import ResourceType

__all__ = ["Attributes", "label_selector_matches", "resources_match"]

OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT")


@dataclass(frozen=True)
class Attributes:
    """One request as admission sees it (`admission.Attributes` of the real server)."""

    operation: str  # CREATE, UPDATE, DELETE
    resource_type: ResourceType
    name: str
    namespace: str  # "" for cluster-scoped objects
    user: UserInfo
    object: dict[str, Any] | None  # None on DELETE
    old_object: dict[str, Any] | None  # None on CREATE
    subresource: str = ""
    dry_run: bool = False
    options: dict[str, Any] = field(default_factory=dict)


def resources_match(
    match: dict[str, Any] | None,
    attributes: Attributes,
    namespace: dict[str, Any] | None,
    *,
    rules_required: bool,
) -> bool:
    """Whether `match` (a policy's matchConstraints, a binding's matchResources) selects the
    request; a binding without resourceRules selects whatever its policy does."""
    match = match or {}
    rules = match.get("resourceRules") or []
    if (rules or rules_required) and not any(_rule_matches(r, attributes) for r in rules):
        return False
    if any(_rule_matches(rule, attributes) for rule in match.get("excludeResourceRules") or []):
        return False
    return _namespace_matches(match.get("namespaceSelector"), attributes, namespace) and (
        _object_matches(match.get("objectSelector"), attributes)
    )


def _rule_matches(rule: dict[str, Any], attributes: Attributes) -> bool:
    resource_type = attributes.resource_type
    scope = rule.get("scope") or "*"
    if scope == "Cluster" and resource_type.namespaced:
        return False
    if scope == "Namespaced" and not resource_type.namespaced:
        return False
    names = rule.get("resourceNames") or []
    return (
        _listed(rule.get("operations"), attributes.operation)
        and _listed(rule.get("apiGroups"), resource_type.group)
        and _listed(rule.get("apiVersions"), resource_type.version)
        and any(
            _resource_matches(pattern, resource_type.plural, attributes.subresource)
            for pattern in rule.get("resources") or []
        )
        and (not names or attributes.name in names)
    )


def _listed(values: Any, value: str) -> bool:
    return isinstance(values, list) and ("*" in values or value in values)


def _resource_matches(pattern: str, plural: str, subresource: str) -> bool:
    resource, _, sub = pattern.partition("/")
    if not sub:
        return not subresource and resource in ("*", plural)
    return bool(subresource) and resource in ("*", plural) and sub in ("*", subresource)


def _namespace_matches(
    selector: Any, attributes: Attributes, namespace: dict[str, Any] | None
) -> bool:
    if not selector:
        return True
    resource_type = attributes.resource_type
    if (resource_type.group, resource_type.plural) == ("", "namespaces"):
        subject = attributes.object or attributes.old_object or {}
        return label_selector_matches(selector, _labels(subject))
    if not resource_type.namespaced:
        return True  # other cluster-scoped objects are never skipped by a namespaceSelector
    return label_selector_matches(selector, _labels(namespace or {}))


def _object_matches(selector: Any, attributes: Attributes) -> bool:
    if not selector:
        return True
    subjects = [obj for obj in (attributes.object, attributes.old_object) if obj is not None]
    return any(label_selector_matches(selector, _labels(obj)) for obj in subjects)


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels if isinstance(labels, dict) else {}


def label_selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """metav1.LabelSelector: matchLabels and matchExpressions (In, NotIn, Exists,
    DoesNotExist), all of them; an empty selector matches everything."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key", ""), expression.get("operator", "")
        values = expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True
