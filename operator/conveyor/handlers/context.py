"""What every handler shares: the settings, the doors to Kubernetes and S3, a clock, and the
per-object locks that serialize reconciles."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from ..api.v1alpha1 import CustomResource
from ..clients.kube import Kube
from ..clients.s3 import ObjectStorage, S3Settings, StorageError
from ..contracts.invocations import CREDENTIAL_KEYS
from ..resources.workloads import JobSettings
from ..settings import Settings

__all__ = ["Context", "CredentialsMissing"]

T = TypeVar("T")
MEMO_ENTRIES = 512


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
    _object_locks: dict[tuple[str, str, str], threading.Lock] = field(
        default_factory=dict, init=False, repr=False
    )
    _memo: OrderedDict[Hashable, Any] = field(default_factory=OrderedDict, init=False, repr=False)

    def remember(self, key: Hashable, compute: Callable[[], T | None]) -> T | None:
        """`compute()`, kept for `key` once it is not None: for what is read from an object
        that never changes once written (a run's result, a snapshot's profile), so a resync
        does not read it again. The least recently used of MEMO_ENTRIES entries goes first."""
        with self._lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                found: T = self._memo[key]
                return found
        value = compute()
        if value is not None:
            with self._lock:
                self._memo[key] = value
                while len(self._memo) > MEMO_ENTRIES:
                    self._memo.popitem(last=False)
        return value

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
                credentials = self.credentials()
                self._storage = ObjectStorage(
                    S3Settings(
                        endpoint=self.settings.s3_endpoint,
                        region=self.settings.s3_region,
                        bucket=self.settings.s3_bucket,
                        access_key=credentials["AWS_ACCESS_KEY_ID"],
                        secret_key=credentials["AWS_SECRET_ACCESS_KEY"],
                    )
                )
            return self._storage

    def credentials(self) -> dict[str, str]:
        """The operator's S3 credentials, read from its Secret now (not cached: creating or
        fixing the Secret is enough for the next reconcile)."""
        namespace = self.settings.operator_namespace
        name = self.settings.s3_credentials_secret
        secret = self.kube.read_secret(namespace, name)
        if not secret or not set(CREDENTIAL_KEYS) <= set(secret):
            raise CredentialsMissing(
                f"Secret {namespace}/{name} with the keys {' and '.join(CREDENTIAL_KEYS)} is "
                "missing: create it (see docs/install.md), or name another one in "
                "CONVEYOR_S3_CREDENTIALS_SECRET"
            )
        return secret
