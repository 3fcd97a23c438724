"""What the operator did to the API, judged from the sandbox's audit log.

Two questions, asked after every sandbox the integration, end-to-end and fault tests start:
- least privilege: is each call the operator's identity made allowed by `manifests/rbac/`
  (ClusterRoles bound cluster-wide, Roles in their namespace), and — over the whole run — is
  each granted (group, resource, verb) used by some call?
- ownership: did the operator write anything of a FeatureSet, TrainingPipeline or
  RetrainPolicy besides the status, its finalizers and annotations under its prefixes?
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from conveyor.sandbox.apiserver.audit import AuditRecord, read_audit

RBAC_DIR = Path(__file__).resolve().parents[1] / "manifests" / "rbac"
OPERATOR_ACCOUNT = ("conveyor-system", "conveyor-operator")
PERSON_OWNED = frozenset({"featuresets", "trainingpipelines", "retrainpolicies"})
ANNOTATION_PREFIXES = ("kopf.conveyor.dev/", "conveyor.dev/")
AUTHORIZATION_ONLY = {
    # Checked by the OwnerReferencesPermissionEnforcement admission plugin when a child's
    # ownerReference has blockOwnerDeletion: authorized, never called.
    ("conveyor.dev", f"{kind}/finalizers", "update")
    for kind in ("featuresets", "trainingpipelines", "modelversions")
}


@dataclass(frozen=True)
class Grant:
    """One RBAC rule as it applies to the operator: everywhere, or in one namespace."""

    namespace: str | None
    groups: frozenset[str]
    resources: frozenset[str]
    verbs: frozenset[str]
    names: frozenset[str]
    source: str

    def allows(self, call: AuditRecord) -> bool:
        return (
            (self.namespace is None or self.namespace == call.namespace)
            and call.group in self.groups
            and call.resource in self.resources
            and call.verb in self.verbs
            and (not self.names or call.name in self.names)
        )

    def triples(self) -> set[tuple[str, str, str]]:
        return {(g, r, v) for g in self.groups for r in self.resources for v in self.verbs}


def operator_grants(rbac_dir: Path = RBAC_DIR) -> list[Grant]:
    """The rules bound to the operator's ServiceAccount by the manifests."""
    documents = [
        doc
        for path in sorted(rbac_dir.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    roles = {
        (d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in documents
    }
    grants = []
    for binding in documents:
        if binding["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        if not any(_is_operator(subject) for subject in binding.get("subjects") or []):
            continue
        scope = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        ref = binding["roleRef"]
        role_namespace = scope if ref["kind"] == "Role" else None
        role = roles[(ref["kind"], role_namespace, ref["name"])]
        for rule in role.get("rules") or []:
            grants.append(
                Grant(
                    namespace=scope,
                    groups=frozenset(rule.get("apiGroups") or []),
                    resources=frozenset(rule.get("resources") or []),
                    verbs=frozenset(rule.get("verbs") or []),
                    names=frozenset(rule.get("resourceNames") or []),
                    source=f"{ref['kind']} {ref['name']}",
                )
            )
    return grants


def _is_operator(subject: Mapping[str, Any]) -> bool:
    return (
        subject.get("kind") == "ServiceAccount"
        and (
            subject.get("namespace"),
            subject.get("name"),
        )
        == OPERATOR_ACCOUNT
    )


def operator_calls(records: Iterable[AuditRecord], username: str) -> list[AuditRecord]:
    return [record for record in records if record.user == username]


def forbidden(calls: Iterable[AuditRecord], grants: Sequence[Grant]) -> list[str]:
    """The calls no grant allows, each once: a cluster would answer 403 Forbidden."""
    return sorted(
        {
            f"{c.verb} {c.group or 'core'}/{c.resource} in {c.namespace or 'the cluster'}"
            + (f" ({c.name})" if c.name else "")
            for c in calls
            if not any(grant.allows(c) for grant in grants)
        }
    )


def unused(calls: Iterable[AuditRecord], grants: Sequence[Grant]) -> list[tuple[str, str, str]]:
    """The granted (group, resource, verb) no call used: privileges to take away."""
    calls = list(calls)
    granted = set().union(*(grant.triples() for grant in grants)) - AUTHORIZATION_ONLY
    used = {
        triple
        for grant in grants
        for triple in grant.triples()
        if any(grant.allows(c) and (c.group, c.resource, c.verb) == triple for c in calls)
    }
    return sorted(granted - used)


def foreign_writes(calls: Iterable[AuditRecord]) -> list[str]:
    """Writes to objects a person or Git owns, beyond finalizers and prefixed annotations."""
    problems = []
    for call in calls:
        if call.group != "conveyor.dev" or call.resource not in PERSON_OWNED:
            continue
        if call.verb in ("create", "update", "delete", "deletecollection"):
            problems.append(f"{call.verb} {call.resource} {call.namespace}/{call.name}")
        elif call.verb == "patch":
            problems += [
                f"patch {call.resource} {call.namespace}/{call.name}: {what}"
                for what in _patch_problems(call.body)
            ]
    return problems


def _patch_problems(body: Any) -> list[str]:
    if isinstance(body, list):  # RFC 6902 JSON patch
        return [
            f"{op.get('op')} {op.get('path')}"
            for op in body
            if not isinstance(op, Mapping)
            or (op.get("op") != "test" and not _allowed_pointer(str(op.get("path", ""))))
        ]
    if not isinstance(body, Mapping):
        return [f"a body that is not a patch: {body!r:.80}"]
    problems = [f"sets {key}" for key in body if key not in ("metadata", "status")]
    if "status" in body:
        problems.append("sets status through the main endpoint")
    metadata = body.get("metadata") or {}
    problems += [f"sets metadata.{key}" for key in metadata if key not in _METADATA_KEYS]
    problems += [
        f"sets annotation {key}"
        for key in (metadata.get("annotations") or {})
        if not key.startswith(ANNOTATION_PREFIXES)
    ]
    return problems


_METADATA_KEYS = ("finalizers", "annotations", "resourceVersion")


def _allowed_pointer(path: str) -> bool:
    parts = [part.replace("~1", "/").replace("~0", "~") for part in path.split("/")[1:]]
    if parts[:2] == ["metadata", "finalizers"]:
        return True
    if parts[:2] == ["metadata", "annotations"]:
        return len(parts) == 3 and parts[2].startswith(ANNOTATION_PREFIXES)
    return False


OPERATOR_USER = f"system:serviceaccount:{OPERATOR_ACCOUNT[0]}:{OPERATOR_ACCOUNT[1]}"
SESSION_CALLS: list[AuditRecord] = []
"""Every operator call of this test session's sandboxes, for the unused-grant check."""


def check_operator_calls(log_dir: Path) -> int:
    """Fail on a forbidden call or a write to what a person owns; keep the calls for the
    session's unused-grant check. Returns how many calls the operator made."""
    calls = operator_calls(read_audit(log_dir), OPERATOR_USER)
    SESSION_CALLS.extend(calls)
    denied = forbidden(calls, operator_grants())
    assert not denied, f"manifests/rbac/ does not allow what the operator called: {denied}"
    writes = foreign_writes(calls)
    assert not writes, f"the operator wrote what a person owns: {writes}"
    return len(calls)
