"""Admission of objects before they are stored: defaults of built-in kinds, CRD schemas, CRDs.

Custom resources are pruned, defaulted and validated against their CRD version's
`openAPIV3Schema`, CEL rules included (by `schema.admit`), as a real API server does; the whole
object is checked after every change, so an invalid create, update or patch leaves the stored
object unchanged. ValidatingAdmissionPolicies run after this, in `policies`.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from conveyor.sandbox.apiserver import schema as crd_schema
from conveyor.sandbox.apiserver.errors import ApiError, bad_request, invalid
from conveyor.sandbox.apiserver.resources import ResourceType

__all__ = ["FIELD_VALIDATIONS", "admit", "apply_builtin_defaults", "check_crd", "unknown_fields"]

# `?fieldValidation=`: what to do about fields the schema does not know (they are pruned anyway).
FIELD_VALIDATIONS = ("Ignore", "Warn", "Strict")

_cluster_ips = itertools.count(10)


def admit(
    resource_type: ResourceType,
    obj: dict[str, Any],
    *,
    field_validation: str = "Ignore",
    warnings: list[str] | None = None,
    old: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The object as it will be stored, or ApiError 422 with the real server's causes.

    Unknown fields are pruned; with `Strict` they are a 400 error, with `Warn` a warning.
    `old` is the stored object of an update: the CRD's transition rules compare with it.
    """
    if not resource_type.custom or not resource_type.schema:
        return obj
    admitted, errors = crd_schema.admit(resource_type.schema, obj, old)
    # Compared with the pruned object only: defaulting drops nulls, which are not unknown fields.
    pruned = crd_schema.prune(resource_type.schema, obj) if field_validation != "Ignore" else obj
    unknown = unknown_fields(obj, pruned) if field_validation != "Ignore" else []
    if unknown and field_validation == "Strict":
        kind, version = resource_type.kind, resource_type.version
        raise bad_request(
            f'{kind} in version "{version}" cannot be handled as a {kind}: strict decoding '
            "error: " + ", ".join(f'unknown field "{path}"' for path in unknown)
        )
    if warnings is not None:
        warnings.extend(f'unknown field "{path}"' for path in unknown)
    if errors:
        name = obj.get("metadata", {}).get("name", "")
        status = crd_schema.invalid_status(resource_type.kind, resource_type.group, name, errors)
        raise ApiError(422, "Invalid", status.get("message", "invalid object"), body=status)
    # Metadata belongs to the server, not to the schema: never let pruning touch it.
    admitted = dict(admitted)
    admitted["metadata"] = obj["metadata"]
    admitted["apiVersion"], admitted["kind"] = obj["apiVersion"], obj["kind"]
    return admitted


def unknown_fields(before: Any, after: Any, path: str = "") -> list[str]:
    """Paths of the fields in `before` that pruning removed from `after`."""
    if isinstance(before, dict) and isinstance(after, dict):
        found = []
        for key, value in before.items():
            child = f"{path}.{key}" if path else key
            if key not in after:
                found.append(child)
            else:
                found.extend(unknown_fields(value, after[key], child))
        return found
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [
            p
            for i, (b, a) in enumerate(zip(before, after, strict=True))
            for p in unknown_fields(b, a, f"{path}[{i}]")
        ]
    return []


def apply_builtin_defaults(resource_type: ResourceType, obj: dict[str, Any]) -> None:
    """The few defaults of built-in kinds that clients and the node agent rely on."""
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else None
    key = (resource_type.group, resource_type.plural)
    if key == ("", "namespaces"):
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj["status"] = {"phase": "Active"}
        labels = obj["metadata"].setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    elif key == ("", "pods"):
        obj["status"] = {"phase": "Pending"}
    elif key == ("", "services") and spec is not None:
        spec.setdefault("type", "ClusterIP")
        if spec["type"] != "ExternalName" and "clusterIP" not in spec:
            index = next(_cluster_ips)
            spec["clusterIP"] = f"10.96.{index // 250}.{index % 250 + 1}"
            spec["clusterIPs"] = [spec["clusterIP"]]
    elif key in (("apps", "deployments"), ("apps", "replicasets")) and spec is not None:
        spec.setdefault("replicas", 1)
    elif key == ("batch", "jobs") and spec is not None:
        spec.setdefault("parallelism", 1)
        spec.setdefault("backoffLimit", 6)
        if spec.get("completionMode") != "Indexed" or "completions" in spec:
            spec.setdefault("completions", spec.get("parallelism", 1))


def check_crd(crd: dict[str, Any]) -> dict[str, Any]:
    """Validate what the server needs of a CRD and fill its status as if it were established."""
    name = crd.get("metadata", {}).get("name", "")
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    causes = []
    for field, value in (
        ("spec.group", spec.get("group")),
        ("spec.names.plural", names.get("plural")),
        ("spec.names.kind", names.get("kind")),
    ):
        if not value:
            causes.append((field, "FieldValueRequired", f"{field}: Required value"))
    if not spec.get("versions"):
        causes.append(("spec.versions", "FieldValueRequired", "spec.versions: Required value"))
    expected = f"{names.get('plural')}.{spec.get('group')}"
    if not causes and name != expected:
        causes.append(
            (
                "metadata.name",
                "FieldValueInvalid",
                f'metadata.name: Invalid value: "{name}": must be spec.names.plural'
                f'+"."+spec.group (expected "{expected}")',
            )
        )
    if causes:
        raise invalid("CustomResourceDefinition", "apiextensions.k8s.io", name, causes)
    crd = copy.deepcopy(crd)
    accepted = dict(names)
    accepted.setdefault("singular", names["kind"].lower())
    accepted.setdefault("listKind", f"{names['kind']}List")
    conditions = [
        {
            "type": kind,
            "status": "True",
            "reason": reason,
            "message": message,
            "lastTransitionTime": crd["metadata"].get("creationTimestamp"),
        }
        for kind, reason, message in (
            ("NamesAccepted", "NoConflicts", "no conflicts found"),
            ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        )
    ]
    crd["status"] = {
        "acceptedNames": accepted,
        "conditions": conditions,
        "storedVersions": [v["name"] for v in spec["versions"] if v.get("storage", True)][:1],
    }
    return crd
