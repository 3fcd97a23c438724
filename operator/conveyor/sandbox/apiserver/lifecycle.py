"""Deletion as a real cluster performs it, done synchronously (there are no controllers here).

- An object with finalizers gets a deletionTimestamp and stays until its finalizers are gone;
  then it is removed (one DELETED event).
- Garbage collection (background propagation): when an owner is removed, each dependent that
  has no other existing owner is deleted (recursively, honouring its finalizers); a dependent
  that still has another owner only loses the dangling ownerReference.
  `propagationPolicy: Orphan` removes the ownerReferences to the owner instead. `Foreground`
  is treated as `Background`.
- Deleting a namespace marks it Terminating, deletes everything in it, and removes it when
  it is empty. Deleting a CRD deletes its custom resources the same way, then unregisters it.
- Pods are removed at once (no grace period: no kubelet needs to confirm the stop).
"""

from __future__ import annotations

import copy
import logging
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from conveyor.sandbox.apiserver import objectmeta
from conveyor.sandbox.apiserver.errors import ApiError, bad_request, conflict, not_found
from conveyor.sandbox.apiserver.identity import GARBAGE_COLLECTOR, NAMESPACE_CONTROLLER, UserInfo
from conveyor.sandbox.apiserver.policy_matching import Attributes
from conveyor.sandbox.apiserver.resources import ResourceType
from conveyor.sandbox.apiserver.selectors import Selector

if TYPE_CHECKING:
    from conveyor.sandbox.apiserver.policies import PolicyAdmission
    from conveyor.sandbox.apiserver.resources import Registry
    from conveyor.sandbox.apiserver.store import StorageKey, Store

__all__ = ["Lifecycle", "deletion_options"]

logger = logging.getLogger(__name__)

_NAMESPACES: StorageKey = ("", "namespaces")
_CRDS: StorageKey = ("apiextensions.k8s.io", "customresourcedefinitions")
_ADMISSION_POLICIES: StorageKey = ("admissionregistration.k8s.io", "validatingadmissionpolicies")
_POLICY_BINDINGS: StorageKey = ("admissionregistration.k8s.io", "validatingadmissionpolicybindings")
_POLICIES = ("Background", "Foreground", "Orphan")


def deletion_options(body: Any, query: dict[str, str]) -> dict[str, Any]:
    """DeleteOptions from the body (kubectl, the client) and the query string."""
    options = dict(body) if isinstance(body, dict) else {}
    if "propagationPolicy" in query:
        options["propagationPolicy"] = query["propagationPolicy"]
    if query.get("orphanDependents") == "true" or options.get("orphanDependents") is True:
        options.setdefault("propagationPolicy", "Orphan")
    policy = options.get("propagationPolicy") or "Background"
    if policy not in _POLICIES:
        raise bad_request(
            f"invalid propagationPolicy {policy!r}: use one of {', '.join(_POLICIES)}"
        )
    options["propagationPolicy"] = policy
    return options


class Lifecycle(ABC):
    """Deletion for the cluster that extends it, which provides `present`."""

    registry: Registry
    store: Store
    policies: PolicyAdmission

    @abstractmethod
    def present(self, resource_type: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """The object as served by this resource type's version."""

    def delete(
        self,
        resource_type: ResourceType,
        namespace: str | None,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        dry_run: bool = False,
        user: UserInfo | None = None,
        warnings: list[str] | None = None,
    ) -> dict[str, Any]:
        """`user` None is the server itself: admission policies do not apply."""
        options = options or {"propagationPolicy": "Background"}
        current = self.store.get(resource_type.storage_key, namespace or "", name)
        if current is None:
            raise not_found(resource_type.qualified, name)
        self._check_preconditions(resource_type, current, options.get("preconditions") or {})
        if user is not None:
            attributes = Attributes(
                "DELETE", resource_type, name, namespace or "", user, None,
                self.present(resource_type, current), dry_run=dry_run,
                options={"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1", **options},
            )  # fmt: skip
            self.run_admission_policies(attributes, warnings)
        if dry_run:
            return self.present(resource_type, current)
        if current["metadata"].get("deletionTimestamp"):
            return self.present(resource_type, current)  # already being deleted
        if options.get("propagationPolicy") == "Orphan":
            self._orphan_dependents(current["metadata"]["uid"])
        storage_key = resource_type.storage_key
        if current["metadata"].get("finalizers") or storage_key in (_NAMESPACES, _CRDS):
            marked = self._mark_deleted(storage_key, current)
            if storage_key == _NAMESPACES:
                self._empty_namespace(name)
            elif storage_key == _CRDS:
                self._delete_custom_resources(marked)
            self._settle_terminations()
            latest = self.store.get(storage_key, namespace or "", name) or marked
            return self.present(resource_type, latest)
        self._remove(storage_key, current)
        return self.present(resource_type, current)

    def delete_collection(
        self,
        resource_type: ResourceType,
        namespace: str | None,
        labels: Selector,
        fields: Selector,
        options: dict[str, Any] | None = None,
        *,
        user: UserInfo | None = None,
    ) -> list[dict[str, Any]]:
        """Each item is deleted as by its own request: a refused one ends the collection."""
        deleted = []
        for obj in self.store.items(resource_type.storage_key, namespace):
            if labels.matches(obj) and fields.matches(obj):
                metadata = obj["metadata"]
                deleted.append(
                    self.delete(
                        resource_type,
                        metadata.get("namespace"),
                        metadata["name"],
                        options,
                        user=user,
                    )
                )
        return deleted

    def run_admission_policies(self, attributes: Attributes, warnings: list[str] | None) -> None:
        """ApiError when a ValidatingAdmissionPolicy denies the request; Warn bindings' warnings."""
        policies = self.store.items(_ADMISSION_POLICIES)
        if not policies:
            return
        namespace = (
            self.store.get(_NAMESPACES, "", attributes.namespace) if attributes.namespace else None
        )
        found = self.policies.validate(
            attributes, policies, self.store.items(_POLICY_BINDINGS), namespace
        )
        if warnings is not None:
            warnings.extend(found)

    def finish_deletion_if_released(self, resource_type: ResourceType, obj: dict) -> None:
        """After a write: an object being deleted whose last finalizer went is removed now."""
        metadata = obj["metadata"]
        if metadata.get("deletionTimestamp") and not metadata.get("finalizers"):
            if resource_type.storage_key in (_NAMESPACES, _CRDS):
                self._settle_terminations()
            else:
                self._remove(resource_type.storage_key, obj)

    # -- internals ------------------------------------------------------------------------

    def _check_preconditions(
        self, resource_type: ResourceType, current: dict, preconditions: dict[str, Any]
    ) -> None:
        metadata = current["metadata"]
        for field in ("uid", "resourceVersion"):
            wanted = preconditions.get(field)
            if wanted and wanted != metadata.get(field):
                raise conflict(
                    resource_type.qualified,
                    metadata["name"],
                    f"Precondition failed: {field} in precondition: {wanted}, "
                    f"{field} in object meta: {metadata.get(field)}",
                )

    def _mark_deleted(self, storage_key: StorageKey, current: dict) -> dict[str, Any]:
        marked = copy.deepcopy(current)
        marked["metadata"]["deletionTimestamp"] = objectmeta.now_timestamp()
        marked["metadata"]["deletionGracePeriodSeconds"] = 0
        if storage_key == _NAMESPACES:
            marked["status"] = {"phase": "Terminating"}
        self.store.put(storage_key, marked)
        return marked

    def _remove(self, storage_key: StorageKey, obj: dict[str, Any]) -> None:
        metadata = obj["metadata"]
        if self.store.remove(storage_key, metadata.get("namespace", ""), metadata["name"]):
            self._collect_dependents(metadata["uid"])
            self._settle_terminations()

    def _dependents(self, owner_uid: str) -> list[tuple[StorageKey, dict[str, Any]]]:
        return [
            (storage_key, obj)
            for storage_key, obj in self.store.all_objects()
            if any(
                ref.get("uid") == owner_uid for ref in obj["metadata"].get("ownerReferences") or []
            )
        ]

    def _without_owner(self, storage_key: StorageKey, obj: dict, owner_uid: str) -> None:
        updated = copy.deepcopy(obj)
        references = [
            ref for ref in updated["metadata"]["ownerReferences"] if ref.get("uid") != owner_uid
        ]
        if references:
            updated["metadata"]["ownerReferences"] = references
        else:
            del updated["metadata"]["ownerReferences"]
        self.store.put(storage_key, updated)

    def _orphan_dependents(self, owner_uid: str) -> None:
        for storage_key, obj in self._dependents(owner_uid):
            self._without_owner(storage_key, obj, owner_uid)

    def _owner_exists(self, uid: str) -> bool:
        return any(obj["metadata"].get("uid") == uid for _, obj in self.store.all_objects())

    def _collect_dependents(self, owner_uid: str) -> None:
        for storage_key, obj in self._dependents(owner_uid):
            metadata = obj["metadata"]
            stored = self.store.get(storage_key, metadata.get("namespace", ""), metadata["name"])
            if stored is not obj:
                continue  # already removed or changed by an earlier step of this collection
            others = [
                ref["uid"]
                for ref in metadata["ownerReferences"]
                if ref.get("uid") != owner_uid and self._owner_exists(ref["uid"])
            ]
            if others:
                self._without_owner(storage_key, obj, owner_uid)
            else:
                self._delete_object(storage_key, obj, GARBAGE_COLLECTOR)

    def _delete_object(
        self, storage_key: StorageKey, obj: dict[str, Any], user: UserInfo | None = None
    ) -> None:
        """A controller's delete: as `user`, whose admission may refuse it (then it stays)."""
        resource_type = self.registry.any_version(*storage_key)
        metadata = obj["metadata"]
        if resource_type is None:  # its CRD is gone already: nothing can serve it
            self._remove(storage_key, obj)
        elif not metadata.get("deletionTimestamp"):
            try:
                self.delete(resource_type, metadata.get("namespace"), metadata["name"], user=user)
            except ApiError as error:
                logger.warning("%s could not delete: %s", user.username if user else "", error)

    def _empty_namespace(self, namespace: str) -> None:
        for storage_key, obj in self.store.all_objects():
            if obj["metadata"].get("namespace") == namespace and storage_key != _NAMESPACES:
                self._delete_object(storage_key, obj, NAMESPACE_CONTROLLER)

    def _delete_custom_resources(self, crd: dict[str, Any]) -> None:
        storage_key = (crd["spec"]["group"], crd["spec"]["names"]["plural"])
        for obj in self.store.items(storage_key):
            self._delete_object(storage_key, obj)

    def _settle_terminations(self) -> None:
        """Remove terminating namespaces and CRDs whose contents are all gone."""
        for namespace in self.store.items(_NAMESPACES):
            metadata = namespace["metadata"]
            if not metadata.get("deletionTimestamp") or metadata.get("finalizers"):
                continue
            if not any(
                obj["metadata"].get("namespace") == metadata["name"]
                for key, obj in self.store.all_objects()
                if key != _NAMESPACES
            ):
                self.store.remove(_NAMESPACES, "", metadata["name"])
        for crd in self.store.items(_CRDS):
            metadata = crd["metadata"]
            if not metadata.get("deletionTimestamp") or metadata.get("finalizers"):
                continue
            storage_key = (crd["spec"]["group"], crd["spec"]["names"]["plural"])
            if not self.store.items(storage_key):
                self.store.remove(_CRDS, "", metadata["name"])
                self.registry.remove_group_plural(*storage_key)
                self.store.drop_storage(storage_key)
                self.store.close_subscriptions(storage_key)
