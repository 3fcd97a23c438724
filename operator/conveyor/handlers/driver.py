"""The one driver of every controller: kopf registration, the lock, the fresh read, the timer,
metrics, and carrying a plan out through `clients/`.

A controller is three functions over one kind (`Controller`): `parse` the body into the typed
object (or `Invalid`: what to fix), `observe` the world that object needs, `reconcile` the two
into a `Plan`. The driver runs them on create, update, resume and a timer, under the object's
lock with the object read afresh, and applies the plan's actions in order. A dependent kind
registers the watches of what it references (`watch_children`, `watch_references`), as
controller-runtime's `Owns` and `Watches` do, so no handler module calls another.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import kopf

from ..api.v1alpha1 import GROUP, VERSION, CustomResource
from ..clients.s3 import StorageError
from ..contracts.labels import FINALIZER
from ..errors import AlreadyExists, ClusterUnavailable, Conflict
from ..metrics import reconcile_timer
from ..reconcile import Invalid, Plan, status_patch
from ..reconcile.common import (
    Create,
    Delete,
    DeleteFiles,
    GrantWorkloadAccess,
    Patch,
    SetFinalizer,
    WriteStatus,
)
from ..resources.kinds import SECRETS, SERVICE_ACCOUNTS, Resource, custom
from ..resources.workloads import (
    build_credentials_secret,
    build_workload_service_account,
    copies_credentials,
)
from .context import Context

__all__ = ["Controller"]

logger = logging.getLogger(__name__)

T = TypeVar("T", bound=CustomResource)
W = TypeVar("W")


class Controller(Generic[T, W]):
    """One kind's reconcile, wired to kopf and carried out through `context`."""

    def __init__(
        self,
        context: Context,
        kind: type[T],
        *,
        parse: Callable[[Mapping[str, Any]], T | Invalid],
        observe: Callable[[T], W],
        reconcile: Callable[[T, W], Plan],
        while_deleting: bool = False,
    ) -> None:
        """`while_deleting`: objects being deleted are reconciled too (their deletion may
        wait on what the reconcile reports), not skipped."""
        self.context = context
        self.kind = kind
        self.resource = custom(kind)
        self._parse = parse
        self._observe = observe
        self._reconcile = reconcile
        self._while_deleting = while_deleting

    # kopf -------------------------------------------------------------------------------------

    def register(self, registry: kopf.OperatorRegistry) -> None:
        """One reconcile for create, update, resume, and a timer of the kind."""

        def reconcile(namespace: str, name: str, **_: Any) -> None:
            self.reconcile(namespace, name)

        plural, interval = self.kind.plural, self.context.settings.resync_seconds
        for decorator in (kopf.on.create, kopf.on.update, kopf.on.resume):
            decorator(GROUP, VERSION, plural, registry=registry, id="reconcile")(reconcile)
        kopf.timer(
            GROUP,
            VERSION,
            plural,
            registry=registry,
            id="resync",
            interval=interval,
            initial_delay=interval,
        )(reconcile)

    def watch_children(
        self,
        registry: kopf.OperatorRegistry,
        child: Resource,
        label: str,
        *,
        spec_changes_only: bool = False,
    ) -> None:
        """A child's change (a Job's progress, a version's stage) reconciles the object that
        `label` on the child names. `spec_changes_only`: only its arrival, its departure and
        a new metadata.generation (a spec change) do, not its status moving."""
        generations: dict[tuple[str, str], int] = {}

        def spec_changed(namespace: str, name: str, meta: kopf.Meta, type: str, **_: Any) -> bool:
            """Filtered before kopf calls (and logs) the handler: a status write is no news."""
            key, generation = (namespace, name), int(meta.get("generation") or 0)
            if type == "DELETED":
                generations.pop(key, None)
                return True
            seen = generations.get(key)
            generations[key] = generation
            return seen != generation

        def child_changed(namespace: str, labels: kopf.Labels, **_: Any) -> None:
            self.reconcile(namespace, labels[label])

        group, _, version = child.api_version.rpartition("/")
        kopf.on.event(
            group,
            version,
            child.plural,
            registry=registry,
            id=f"{self.kind.plural}-owning-{child.plural}",
            labels={label: kopf.PRESENT},
            when=spec_changed if spec_changes_only else None,
        )(child_changed)

    def watch_deletions(self, registry: kopf.OperatorRegistry) -> None:
        """Reconcile an object of this kind as soon as its deletion is requested, and at each
        change while it waits (kopf runs neither handlers nor timers for it then)."""

        def deleting(namespace: str, name: str, **_: Any) -> None:
            self.reconcile(namespace, name)

        kopf.on.event(
            GROUP,
            VERSION,
            self.kind.plural,
            registry=registry,
            id=f"{self.kind.plural}-deleting",
            when=lambda meta, **_: bool(meta.get("deletionTimestamp")),
        )(deleting)

    def watch_labelled_by(
        self, registry: kopf.OperatorRegistry, owner: type[CustomResource], label: str
    ) -> None:
        """A change of an `owner` object reconciles every object of this kind whose `label`
        names it (a pipeline's status moves: its versions report what serves)."""

        def owner_changed(namespace: str, name: str, **_: Any) -> None:
            selector = f"{label}={name}"
            for item in self.context.kube.list(self.resource, namespace, selector=selector):
                self.reconcile(namespace, item["metadata"]["name"])

        kopf.on.event(
            GROUP,
            VERSION,
            owner.plural,
            registry=registry,
            id=f"{self.kind.plural}-labelled-by-{owner.plural}",
        )(owner_changed)

    def watch_references(
        self, registry: kopf.OperatorRegistry, referenced: type[CustomResource], field: str
    ) -> None:
        """A change of the `referenced` object that `spec.<field>` names reconciles every
        object of this kind that names it (found through a kopf index)."""
        index_id = f"{self.kind.plural}_by_{field}"

        def index(namespace: str, name: str, spec: kopf.Spec, **_: Any) -> Any:
            return {(namespace, spec.get(field, "")): name}

        def referenced_changed(namespace: str, name: str, **kwargs: Any) -> None:
            for dependent in list(kwargs[index_id].get((namespace, name), [])):
                self.reconcile(namespace, dependent)

        kopf.index(GROUP, VERSION, self.kind.plural, registry=registry, id=index_id)(index)
        kopf.on.event(
            GROUP, VERSION, referenced.plural, registry=registry, id=f"{index_id}-changed"
        )(referenced_changed)

    # The reconcile ----------------------------------------------------------------------------

    def reconcile(self, namespace: str, name: str) -> bool:
        """Reconcile the object as it is now, holding its lock; False when there was nothing
        to reconcile (it is gone, or being deleted and this kind skips those)."""
        context = self.context
        with context.object_lock(self.kind, namespace, name):
            body = context.kube.get(self.resource, namespace, name)
            if body is None or (
                body["metadata"].get("deletionTimestamp") and not self._while_deleting
            ):
                return False
            with reconcile_timer(self.kind.kind_name):
                parsed = self._parse(body)
                if isinstance(parsed, Invalid):
                    plan = parsed.plan()
                else:
                    plan = self._reconcile(parsed, self._observe(parsed))
                self._apply(body, plan)
                if isinstance(parsed, Invalid) and body["metadata"].get("deletionTimestamp"):
                    self._set_finalizer(body, False)  # not a valid object: nothing to protect
        return True

    def _apply(self, body: Mapping[str, Any], plan: Plan) -> None:
        namespace = body["metadata"]["namespace"]
        kube = self.context.kube
        for action in plan.actions():
            if isinstance(action, Create):
                self._create(action)
            elif isinstance(action, Patch):
                kube.patch(action.resource, namespace, action.name, action.body)
            elif isinstance(action, Delete):
                kube.delete(action.resource, namespace, action.name)
            elif isinstance(action, GrantWorkloadAccess):
                self._grant_workload_access(namespace)
            elif isinstance(action, WriteStatus):
                self._write_status(body, plan)
            elif isinstance(action, DeleteFiles):
                self._delete_files(action)
            elif isinstance(action, SetFinalizer):
                self._set_finalizer(body, action.present)

    def _delete_files(self, action: DeleteFiles) -> None:
        where = f"s3://{action.bucket}/{action.prefix}"
        try:
            removed = self.context.storage().delete_prefix(action.bucket, action.prefix)
        except StorageError as error:
            raise ClusterUnavailable(f"Could not delete {where}: {error}", delay=30) from error
        logger.info("Deleted %d objects under %s", removed, where)

    def _set_finalizer(self, body: Mapping[str, Any], present: bool) -> None:
        """Add or remove the operator's finalizer as the object was read; a change since
        that read makes the server refuse, and the object is reconciled again."""
        metadata = body["metadata"]
        finalizers = [f for f in metadata.get("finalizers") or [] if f != FINALIZER]
        if present:
            finalizers.append(FINALIZER)
        if finalizers == list(metadata.get("finalizers") or []):
            return
        patch = {
            "metadata": {"finalizers": finalizers, "resourceVersion": metadata["resourceVersion"]}
        }
        try:
            self.context.kube.patch(self.resource, metadata["namespace"], metadata["name"], patch)
        except Conflict as error:
            raise ClusterUnavailable(
                f"{self.kind.kind_name} {metadata['name']} changed meanwhile; looking again",
                delay=1,
            ) from error

    def _create(self, action: Create) -> None:
        try:
            self.context.kube.create(action.resource, action.body)
        except AlreadyExists as error:
            if action.on_conflict == "keep":  # a repeated reconcile made it: success
                return
            name = action.body["metadata"]["name"]
            raise ClusterUnavailable(
                f"{action.resource.kind} {name} already exists; planning again", delay=1
            ) from error

    def _grant_workload_access(self, namespace: str) -> None:
        context, kube = self.context, self.context.kube
        settings = context.settings
        if copies_credentials(
            namespace,
            operator_namespace=settings.operator_namespace,
            secret_name=settings.s3_credentials_secret,
        ):
            try:
                credentials = context.credentials()
            except StorageError as error:
                raise kopf.TemporaryError(str(error), delay=30) from error
            secret = build_credentials_secret(namespace, credentials)
            kube.ensure(SECRETS, secret, keep_current=("data",))
        kube.ensure(SERVICE_ACCOUNTS, build_workload_service_account(namespace))

    def _write_status(self, body: Mapping[str, Any], plan: Plan) -> None:
        """The status that changed, then the Events; a no-op when nothing changed."""
        metadata = body["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        patch, events = status_patch(
            body.get("status") or {},
            plan.outcome,
            generation=int(metadata.get("generation") or 0),
            now=self.context.clock(),
        )
        if patch:
            self.context.kube.patch(self.resource, namespace, name, {"status": patch}, status=True)
        for event in events:
            log = logger.info if event.type == "Normal" else logger.warning
            log(
                "%s %s/%s: %s: %s",
                self.kind.kind_name,
                namespace,
                name,
                event.reason,
                event.message,
            )
            kopf.event(dict(body), type=event.type, reason=event.reason, message=event.message)
