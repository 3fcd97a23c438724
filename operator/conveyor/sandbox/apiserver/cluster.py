"""The API semantics of object operations, independent of HTTP.

`Cluster` creates, reads, replaces, patches and deletes objects as a real API server does:
server-owned metadata, the status subresource, resourceVersion preconditions, generation,
admission (CRD schemas), no-op writes that change nothing. Deletion, finalizers, garbage
collection and namespace/CRD termination live in `lifecycle.Lifecycle`, which it extends.
"""

from __future__ import annotations

import copy
from typing import Any

from conveyor.sandbox.apiserver import admission, objectmeta, patching
from conveyor.sandbox.apiserver.errors import (
    ApiError,
    already_exists,
    bad_request,
    conflict,
    forbidden,
    invalid,
    not_found,
    unsupported_media_type,
)
from conveyor.sandbox.apiserver.identity import UserInfo
from conveyor.sandbox.apiserver.lifecycle import Lifecycle
from conveyor.sandbox.apiserver.policies import PolicyAdmission
from conveyor.sandbox.apiserver.policy_checks import check_binding, check_policy
from conveyor.sandbox.apiserver.policy_matching import Attributes
from conveyor.sandbox.apiserver.resources import (
    Registry,
    ResourceType,
    resource_types_from_crd,
)
from conveyor.sandbox.apiserver.selectors import Selector
from conveyor.sandbox.apiserver.store import Store

__all__ = ["PATCH_TYPES", "Cluster"]

PATCH_TYPES = {
    "application/merge-patch+json": "merge",
    "application/json-patch+json": "json",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+cbor": "apply",
}
_IMMUTABLE_METADATA = (
    "name",
    "namespace",
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "resourceVersion",
)
_INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_CRD = ("apiextensions.k8s.io", "customresourcedefinitions")
_CHECKS = {
    ("admissionregistration.k8s.io", "validatingadmissionpolicies"): check_policy,
    ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"): check_binding,
}


class Cluster(Lifecycle):
    def __init__(self, *, event_log_size: int = 10_000) -> None:
        self.registry = Registry()
        self.store = Store(event_log_size=event_log_size)
        self.policies = PolicyAdmission()
        namespaces = self.registry.find("", "v1", "namespaces")
        assert namespaces is not None
        for name in _INITIAL_NAMESPACES:
            self.create(namespaces, None, {"metadata": {"name": name}})

    # -- reading --------------------------------------------------------------------------

    def get(self, resource_type: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self.store.get(resource_type.storage_key, namespace or "", name)
        if obj is None:
            raise not_found(resource_type.qualified, name)
        return self.present(resource_type, obj)

    def list_objects(
        self,
        resource_type: ResourceType,
        namespace: str | None,
        labels: Selector,
        fields: Selector,
    ) -> list[dict[str, Any]]:
        objects = self.store.items(resource_type.storage_key, namespace)
        objects.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return [
            self.present(resource_type, obj)
            for obj in objects
            if labels.matches(obj) and fields.matches(obj)
        ]

    @staticmethod
    def present(resource_type: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """The object as served by this version (one stored object serves every version)."""
        return {**obj, "apiVersion": resource_type.api_version, "kind": resource_type.kind}

    # -- writing --------------------------------------------------------------------------

    def create(
        self,
        resource_type: ResourceType,
        namespace: str | None,
        body: Any,
        *,
        dry_run: bool = False,
        field_validation: str = "Ignore",
        warnings: list[str] | None = None,
        user: UserInfo | None = None,
    ) -> dict[str, Any]:
        """`user` None is the server itself: admission policies do not apply."""
        obj = self._new_object(resource_type, namespace, body)
        name, namespace = obj["metadata"]["name"], obj["metadata"].get("namespace", "")
        if self.store.get(resource_type.storage_key, namespace, name) is not None:
            raise already_exists(resource_type.qualified, name)
        if resource_type.storage_key == _CRD:
            obj = admission.check_crd(obj)
        obj = admission.admit(
            resource_type, obj, field_validation=field_validation, warnings=warnings
        )
        if check := _CHECKS.get(resource_type.storage_key):
            check(obj)
        if user is not None:
            options = {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
            attributes = Attributes(
                "CREATE", resource_type, name, namespace, user, self.present(resource_type, obj),
                None, dry_run=dry_run, options=options,
            )  # fmt: skip
            self.run_admission_policies(attributes, warnings)
        if dry_run:
            return self.present(resource_type, obj)
        self.store.put(resource_type.storage_key, obj)
        if resource_type.storage_key == _CRD:
            self._register_crd(obj)
        return self.present(resource_type, obj)

    def replace(
        self,
        resource_type: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str = "Ignore",
        warnings: list[str] | None = None,
        user: UserInfo | None = None,
    ) -> dict[str, Any]:
        current = self._current(resource_type, namespace, name)
        if not isinstance(body, dict):
            raise bad_request("the body of an update must be a JSON object")
        body_name = (body.get("metadata") or {}).get("name")
        if body_name and body_name != name:
            raise bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )
        self._check_resource_version(resource_type, current, body)
        return self._write(
            resource_type,
            current,
            copy.deepcopy(body),
            subresource,
            dry_run,
            field_validation,
            warnings,
            user,
        )

    def patch(
        self,
        resource_type: ResourceType,
        namespace: str | None,
        name: str,
        patch: Any,
        content_type: str,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str = "Ignore",
        warnings: list[str] | None = None,
        user: UserInfo | None = None,
    ) -> dict[str, Any]:
        patch_type = PATCH_TYPES.get(content_type)
        if patch_type is None or patch_type == "apply":
            raise unsupported_media_type(
                content_type,
                "PATCH (this sandbox has no server-side apply; use client-side "
                "'kubectl apply' or a merge patch)"
                if patch_type
                else "PATCH",
            )
        if patch_type == "strategic" and resource_type.custom:
            raise unsupported_media_type(
                content_type,
                f"custom resources like {resource_type.qualified} (use "
                "'--type merge' or '--type json')",
            )
        current = self._current(resource_type, namespace, name)
        try:
            if patch_type == "json":
                patched = patching.json_patch(current, patch)
            elif patch_type == "strategic":
                patched = patching.strategic_merge_patch(current, patch)
            else:
                patched = patching.merge_patch(current, patch)
        except patching.PatchError as error:
            raise ApiError(422, "Invalid", str(error)) from None
        if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
            raise ApiError(422, "Invalid", "the patched object must keep its metadata object")
        self._check_resource_version(resource_type, current, patched)
        return self._write(
            resource_type, current, patched, subresource, dry_run, field_validation, warnings, user
        )

    # -- internals ------------------------------------------------------------------------

    def _current(
        self, resource_type: ResourceType, namespace: str | None, name: str
    ) -> dict[str, Any]:
        obj = self.store.get(resource_type.storage_key, namespace or "", name)
        if obj is None:
            raise not_found(resource_type.qualified, name)
        return obj

    def _check_resource_version(
        self, resource_type: ResourceType, current: dict[str, Any], new: dict[str, Any]
    ) -> None:
        wanted = (new.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != current["metadata"]["resourceVersion"]:
            raise conflict(resource_type.qualified, current["metadata"]["name"])

    def _new_object(
        self, resource_type: ResourceType, namespace: str | None, body: Any
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request(f"the body of a {resource_type.kind} must be a JSON object")
        obj = copy.deepcopy(body)
        self._check_type(resource_type, obj)
        metadata = obj.setdefault("metadata", {})
        if not isinstance(metadata, dict):
            raise bad_request("metadata must be a JSON object")
        if resource_type.namespaced:
            body_namespace = metadata.get("namespace")
            if body_namespace and namespace and body_namespace != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    f"the request ({body_namespace!r} in the object, {namespace!r} in the URL)"
                )
            metadata["namespace"] = namespace or body_namespace or ""
            self._check_namespace_open(metadata["namespace"])
        else:
            metadata.pop("namespace", None)
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = objectmeta.generate_name(metadata["generateName"])
        self._check_name(resource_type, metadata.get("name", ""))
        self._check_owner_references(resource_type, metadata)
        for key in ("uid", "resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            metadata.pop(key, None)
        metadata["uid"] = objectmeta.new_uid()
        metadata["creationTimestamp"] = objectmeta.now_timestamp()
        metadata["generation"] = 1
        if resource_type.has_status:
            obj.pop("status", None)
        admission.apply_builtin_defaults(resource_type, obj)
        return obj

    def _check_type(self, resource_type: ResourceType, obj: dict[str, Any]) -> None:
        api_version = obj.setdefault("apiVersion", resource_type.api_version)
        kind = obj.setdefault("kind", resource_type.kind)
        group = api_version.rpartition("/")[0]
        if kind != resource_type.kind or group != resource_type.group:
            raise bad_request(
                f"the API version in the data ({api_version}, kind {kind}) does not match the "
                f"expected API version ({resource_type.api_version}, kind {resource_type.kind})"
            )
        obj["apiVersion"] = resource_type.api_version

    def _check_namespace_open(self, namespace: str) -> None:
        if not namespace:
            raise bad_request("a namespace is required for namespaced resources")
        obj = self.store.get(("", "namespaces"), "", namespace)
        if obj is None:
            raise not_found("namespaces", namespace)
        if obj["metadata"].get("deletionTimestamp"):
            raise forbidden(
                f"unable to create new content in namespace {namespace} because it is being "
                "terminated"
            )

    def _check_name(self, resource_type: ResourceType, name: str) -> None:
        group = resource_type.group
        if not name:
            raise invalid(
                resource_type.kind,
                group,
                name,
                [
                    (
                        "metadata.name",
                        "FieldValueRequired",
                        "metadata.name: Required value: name or generateName is required",
                    )
                ],
            )
        errors = objectmeta.name_errors(resource_type, name)
        if errors:
            raise invalid(
                resource_type.kind,
                group,
                name,
                [
                    (
                        "metadata.name",
                        "FieldValueInvalid",
                        f'metadata.name: Invalid value: "{name}": {error}',
                    )
                    for error in errors
                ],
            )

    def _check_owner_references(self, resource_type: ResourceType, metadata: dict) -> None:
        causes = []
        for index, reference in enumerate(metadata.get("ownerReferences") or []):
            for field in ("apiVersion", "kind", "name", "uid"):
                if not (isinstance(reference, dict) and reference.get(field)):
                    path = f"metadata.ownerReferences[{index}].{field}"
                    causes.append((path, "FieldValueRequired", f"{path}: Required value"))
        if causes:
            raise invalid(resource_type.kind, resource_type.group, metadata.get("name", ""), causes)

    def _write(
        self,
        resource_type: ResourceType,
        current: dict[str, Any],
        new: dict[str, Any],
        subresource: str | None,
        dry_run: bool,
        field_validation: str = "Ignore",
        warnings: list[str] | None = None,
        user: UserInfo | None = None,
    ) -> dict[str, Any]:
        """Store `new` as the next state of `current` if anything changed; return the state.
        Admission runs even when nothing changes, as on a real server."""
        if subresource == "status":
            status_only = copy.deepcopy(current)
            if "status" in new:
                status_only["status"] = new["status"]
            else:
                status_only.pop("status", None)
            new = status_only
        elif subresource:
            raise not_found(f"{resource_type.qualified}/{subresource}", current["metadata"]["name"])
        elif resource_type.has_status:
            new["status"] = copy.deepcopy(current.get("status"))
            if new["status"] is None:
                new.pop("status")
        new = self._keep_server_fields(resource_type, current, new)
        if resource_type.storage_key == _CRD and subresource != "status":
            new = admission.check_crd(new)
        new = admission.admit(
            resource_type, new, field_validation=field_validation, warnings=warnings, old=current
        )
        if (check := _CHECKS.get(resource_type.storage_key)) and subresource != "status":
            check(new)
        if user is not None:
            metadata = current["metadata"]
            attributes = Attributes(
                "UPDATE", resource_type, metadata["name"], metadata.get("namespace", ""), user,
                self.present(resource_type, new), self.present(resource_type, current),
                subresource=subresource or "", dry_run=dry_run,
                options={"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"},
            )  # fmt: skip
            self.run_admission_policies(attributes, warnings)
        if objectmeta.spec_changed(current, new, resource_type):
            new["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
        if new == current:
            return self.present(resource_type, current)  # a no-op: no new version, no event
        if dry_run:
            return self.present(resource_type, new)
        self.store.put(resource_type.storage_key, new)
        if resource_type.storage_key == _CRD:
            self._register_crd(new)
        self.finish_deletion_if_released(resource_type, new)
        return self.present(resource_type, new)

    def _keep_server_fields(
        self, resource_type: ResourceType, current: dict[str, Any], new: dict[str, Any]
    ) -> dict[str, Any]:
        metadata = new.get("metadata")
        # A copy: a merge patch shares the stored object's metadata, which a refused or
        # dry-run write must leave untouched (the generation is bumped in here).
        metadata = new["metadata"] = dict(metadata) if isinstance(metadata, dict) else {}
        for key in _IMMUTABLE_METADATA:
            if key in current["metadata"]:
                metadata[key] = current["metadata"][key]
            else:
                metadata.pop(key, None)
        new["apiVersion"], new["kind"] = current["apiVersion"], current["kind"]
        self._check_owner_references(resource_type, metadata)
        if current["metadata"].get("deletionTimestamp"):
            added = set(metadata.get("finalizers") or []) - set(
                current["metadata"].get("finalizers") or []
            )
            if added:
                raise invalid(
                    resource_type.kind,
                    resource_type.group,
                    metadata["name"],
                    [
                        (
                            "metadata.finalizers",
                            "FieldValueForbidden",
                            "metadata.finalizers: Forbidden: no new finalizers can be added if the "
                            f"object is being deleted, found new finalizers {sorted(added)}",
                        )
                    ],
                )
        if not metadata.get("finalizers"):
            metadata.pop("finalizers", None)
        return new

    def _register_crd(self, crd: dict[str, Any]) -> None:
        spec = crd["spec"]
        self.registry.remove_group_plural(spec["group"], spec["names"]["plural"])
        for resource_type in resource_types_from_crd(crd):
            self.registry.add(resource_type)
