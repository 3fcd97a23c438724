"""The operator's settings: one typed object, loaded once at start-up from flags and environment.

Every program reads its configuration here and nowhere else. Errors name the key to fix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .errors import SettingsError

__all__ = ["ALLOCATOR_ENV", "DEFAULT_IMAGE", "Settings"]

DEFAULT_IMAGE = "conveyor:0.1.0"
PREFIX = "CONVEYOR_"
ALLOCATOR_ENV = {"MIMALLOC_PURGE_DELAY": "0", "MALLOC_MMAP_THRESHOLD_": "131072"}
"""The operator's allocators give memory back as soon as it is freed: the live-quality monitor
decodes log objects of megabytes on reader threads, and by default Arrow's mimalloc and glibc's
per-thread arenas keep those pages (bench/monitor.py: peak RSS 558 MB without, 436 MB with,
at the same speed). Read when the libraries load, so set in the process environment: the
operator's Deployment (manifests/manager/manager.yaml) and the sandbox do."""


@dataclass(frozen=True)
class Settings:
    """Settings of `conveyor operator`; each field is read from CONVEYOR_<FIELD NAME>."""

    namespaces: tuple[str, ...] = ()
    """Namespaces to watch (comma-separated); empty means every namespace."""
    operator_namespace: str = "conveyor-system"
    """The namespace the operator runs in; its Secrets are read from there."""
    image: str = DEFAULT_IMAGE
    """The Conveyor image that Jobs and serving Deployments run."""
    s3_endpoint: str = ""
    """S3 API endpoint (MinIO: http://minio.conveyor-system.svc:9000); empty means AWS."""
    s3_region: str = "us-east-1"
    """S3 region."""
    s3_bucket: str = "conveyor"
    """Bucket for snapshots, models, logs and reports."""
    s3_credentials_secret: str = "conveyor-s3-credentials"
    """Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, in the operator namespace."""
    webhook_token_secret: str = "conveyor-webhook-token"
    """Secret whose key `token` Alertmanager must send as a bearer token."""
    http_host: str = "0.0.0.0"
    """Address of the health, metrics and webhook endpoint."""
    port_http: int = 8080
    """Port of the health, metrics and webhook endpoint."""
    resync_seconds: float = 30.0
    """Every object is reconciled at least this often, even without changes."""
    policy_interval_seconds: float = 10.0
    """How often each RetrainPolicy is evaluated (its schedule's precision; performance and
    drift also wait for the policy's checkIntervalSeconds). Alerts and manual requests act at
    once."""
    monitor_interval_seconds: float = 30.0
    """How often the live-quality monitor reads each served model's new prediction and
    feedback logs."""
    monitor_window_seconds: float = 86_400.0
    """How far back live metrics and drift look (predictions by their time)."""
    log_level: str = "INFO"
    """DEBUG, INFO, WARNING or ERROR."""
    kubeconfig: str = field(default="", metadata={"env": "KUBECONFIG"})
    """A kubeconfig file; empty means in-cluster configuration, then ~/.kube/config."""
    leader_election: bool = True
    """Reconcile only while holding the Lease `lease_name` in the operator namespace, so that
    replicas (a rolling upgrade, the Deployment's two) never reconcile at once; the others
    stand by, serving health, metrics and the webhook."""
    lease_name: str = "conveyor-operator"
    """The coordination.k8s.io/v1 Lease the replicas compete for."""
    lease_duration_seconds: float = 15.0
    """How long a leader that stopped renewing keeps the Lease: the longest a takeover waits."""
    lease_renew_deadline_seconds: float = 10.0
    """A leader that could not renew for this long stops reconciling and exits."""
    lease_retry_seconds: float = 2.0
    """How often the leader renews and the others try to take the Lease."""
    pod_name: str = field(default="", metadata={"env": "POD_NAME"})
    """This replica's identity in the Lease (the downward API's metadata.name); empty means
    the host name and process id. A restarted container of the same pod takes its Lease back
    at once."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every field from the environment, then apply explicit overrides (flags)."""
        source = os.environ if env is None else env
        values: dict[str, Any] = {}
        for spec in fields(cls):
            key = spec.metadata.get("env", PREFIX + spec.name.upper())
            if key in source:
                values[spec.name] = _parse(key, source[key], spec.default)
        settings = cls(**values)
        settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
        settings.check()
        return settings

    def check(self) -> None:
        if not 0 < self.port_http < 65536:
            raise SettingsError(
                f"Setting 'CONVEYOR_PORT_HTTP' must be 1-65535, not {self.port_http}."
            )
        if self.resync_seconds <= 0:
            raise SettingsError("Setting 'CONVEYOR_RESYNC_SECONDS' must be greater than 0.")
        for key in (
            "monitor_interval_seconds",
            "monitor_window_seconds",
            "policy_interval_seconds",
        ):
            if getattr(self, key) <= 0:
                raise SettingsError(f"Setting 'CONVEYOR_{key.upper()}' must be greater than 0.")
        lease = (
            self.lease_retry_seconds,
            self.lease_renew_deadline_seconds,
            self.lease_duration_seconds,
        )
        if not 0 < lease[0] < lease[1] < lease[2]:
            raise SettingsError(
                "Settings 'CONVEYOR_LEASE_RETRY_SECONDS' < 'CONVEYOR_LEASE_RENEW_DEADLINE_SECONDS'"
                " < 'CONVEYOR_LEASE_DURATION_SECONDS' must hold, all greater than 0 "
                f"(they are {lease[0]:g}, {lease[1]:g}, {lease[2]:g})."
            )
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise SettingsError(
                f"Setting 'CONVEYOR_LOG_LEVEL' must be DEBUG, INFO, WARNING or ERROR, "
                f"not {self.log_level!r}."
            )
        if not self.image:
            raise SettingsError("Setting 'CONVEYOR_IMAGE' is empty; name the Conveyor image.")

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces


def _parse(key: str, raw: str, default: Any) -> Any:
    if isinstance(default, tuple):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if isinstance(default, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    for kind in (int, float):
        if isinstance(default, kind):
            try:
                return kind(raw)
            except ValueError:
                raise SettingsError(f"Setting {key!r} must be a number, not {raw!r}.") from None
    return raw
