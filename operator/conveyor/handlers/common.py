"""What every handler shares: the context, applying an outcome, registering a reconcile."""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes.client import ApiException, CoreV1Api

from ..api.v1alpha1 import GROUP, VERSION, CustomResource
from ..clients.kube import Kube
from ..clients.s3 import ObjectStorage, S3Settings, StorageError
from ..errors import ClusterUnavailable
from ..reconcile import Outcome, status_patch
from ..resources.workloads import S3_CREDENTIALS_SECRET, WORKLOAD_SERVICE_ACCOUNT, JobSettings
from ..settings import Settings

__all__ = ["Context", "apply_outcome", "on_every_change", "reconcile_fresh"]

logger = logging.getLogger(__name__)


class CredentialsMissing(StorageError):
    """The operator's S3 credentials Secret does not exist or lacks a key."""

    reason = "StorageCredentialsMissing"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Context:
    """What every handler needs: settings, the API client, storage and a clock (injectable)."""

    settings: Settings
    kube: Kube
    clock: Callable[[], datetime] = field(default=_utcnow)
    _storage: ObjectStorage | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _prepared: set[str] = field(default_factory=set, init=False, repr=False)
    _object_locks: dict[tuple[str, str, str], threading.Lock] = field(
        default_factory=dict, init=False, repr=False
    )

    def object_lock(self, kind: type[CustomResource], namespace: str, name: str) -> threading.Lock:
        """The lock of one object's reconcile.

        Handlers of different resources (the object itself, its Jobs) may reconcile the same
        object at once; reading the object afresh while holding its lock means every reconcile
        sees the status the previous one wrote, so a trigger is never acted on twice.
        """
        with self._lock:
            return self._object_locks.setdefault((kind.plural, namespace, name), threading.Lock())

    @property
    def job_settings(self) -> JobSettings:
        s = self.settings
        return JobSettings(
            image=s.image, s3_endpoint=s.s3_endpoint, s3_region=s.s3_region, s3_bucket=s.s3_bucket
        )

    def storage(self) -> ObjectStorage:
        """S3 with the credentials from the operator's Secret (read once, on first use)."""
        with self._lock:
            if self._storage is None:
                credentials = self._credentials()
                self._storage = ObjectStorage(
                    S3Settings(
                        endpoint=self.settings.s3_endpoint,
                        region=self.settings.s3_region,
                        bucket=self.settings.s3_bucket,
                        access_key=credentials.get("AWS_ACCESS_KEY_ID"),
                        secret_key=credentials.get("AWS_SECRET_ACCESS_KEY"),
                    )
                )
            return self._storage

    def _credentials(self) -> dict[str, str]:
        namespace = self.settings.operator_namespace
        name = self.settings.s3_credentials_secret
        secret = self._read_secret(namespace, name)
        if not secret or not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(secret):
            # Not cached: the next reconcile looks again, so creating the Secret is enough.
            raise CredentialsMissing(
                f"Secret {namespace}/{name} with the keys AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY is missing: create it (see docs/install.md), or name "
                "another one in CONVEYOR_S3_CREDENTIALS_SECRET"
            )
        return secret

    def _read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        core = CoreV1Api(self.kube.api_client)
        try:
            secret = core.read_namespaced_secret(name, namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise ClusterUnavailable(
                f"Could not read Secret {namespace}/{name}: {error.reason}", delay=5
            ) from error
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

    def prepare_namespace(self, namespace: str) -> None:
        """Give a namespace what Jobs and serving pods need: the S3 credentials Secret (copied
        from the operator's namespace) and the workload ServiceAccount. Once per process."""
        if namespace in self._prepared:
            return
        core = CoreV1Api(self.kube.api_client)
        if namespace != self.settings.operator_namespace or (
            self.settings.s3_credentials_secret != S3_CREDENTIALS_SECRET
        ):
            data = {
                k: base64.b64encode(v.encode()).decode() for k, v in self._credentials().items()
            }
            _create_or_patch(
                lambda: core.create_namespaced_secret(
                    namespace,
                    {
                        "metadata": {
                            "name": S3_CREDENTIALS_SECRET,
                            "namespace": namespace,
                            "labels": {"app.kubernetes.io/managed-by": "conveyor"},
                        },
                        "type": "Opaque",
                        "data": data,
                    },
                ),
                lambda: core.patch_namespaced_secret(
                    S3_CREDENTIALS_SECRET, namespace, {"data": data}
                ),
            )
        _create_or_patch(
            lambda: core.create_namespaced_service_account(
                namespace,
                {
                    "metadata": {
                        "name": WORKLOAD_SERVICE_ACCOUNT,
                        "namespace": namespace,
                        "labels": {"app.kubernetes.io/managed-by": "conveyor"},
                    },
                    "automountServiceAccountToken": False,
                },
            ),
            None,
        )
        self._prepared.add(namespace)


def reconcile_fresh(
    context: Context,
    kind: type[CustomResource],
    namespace: str,
    name: str,
    reconcile: Callable[[Context, Mapping[str, Any]], None],
    *,
    deleting: bool = False,
) -> bool:
    """Run `reconcile` on the object as it is now, holding its lock (see `object_lock`).

    Objects being deleted are skipped unless `deleting`; False when there was nothing to do.
    """
    with context.object_lock(kind, namespace, name):
        body = context.kube.get(kind, namespace, name)
        if body is None or (body["metadata"].get("deletionTimestamp") and not deleting):
            return False
        reconcile(context, body)
        return True


def _create_or_patch(create: Callable[[], Any], patch: Callable[[], Any] | None) -> None:
    try:
        create()
    except ApiException as error:
        if error.status != 409:
            raise
        if patch is not None:
            patch()


def apply_outcome(
    context: Context, kind: type[CustomResource], body: Mapping[str, Any], outcome: Outcome
) -> None:
    """Write the status that changed and post the Events; a no-op when nothing changed."""
    metadata = body["metadata"]
    patch, events = status_patch(
        body.get("status") or {},
        outcome,
        generation=int(metadata.get("generation") or 0),
        now=context.clock(),
    )
    if patch:
        context.kube.patch_status(kind, metadata["namespace"], metadata["name"], patch)
    for event in events:
        log = logger.info if event.type == "Normal" else logger.warning
        log(
            "%s %s/%s: %s: %s",
            kind.kind_name,
            metadata["namespace"],
            metadata["name"],
            event.reason,
            event.message,
        )
        kopf.event(dict(body), type=event.type, reason=event.reason, message=event.message)


def on_every_change(
    registry: kopf.OperatorRegistry, kind: type[CustomResource], interval: float
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register one reconcile for create, update, resume and a timer of the kind."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in (kopf.on.create, kopf.on.update, kopf.on.resume):
            decorator(GROUP, VERSION, kind.plural, registry=registry, id="reconcile")(fn)
        kopf.timer(
            GROUP,
            VERSION,
            kind.plural,
            registry=registry,
            id="resync",
            interval=interval,
            initial_delay=interval,
        )(fn)
        return fn

    return decorate
