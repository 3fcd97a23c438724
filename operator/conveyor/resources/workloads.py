"""Pure builders of what every workload needs: the Job shell, and the namespace's access.

Every Job runs the one Conveyor image with an argument list (never a shell string), as the
non-root, read-only-root-filesystem workload ServiceAccount, with S3 settings in its environment
and the credentials from the namespace's Secret (a copy of the operator's, kept by the operator).
Its podFailurePolicy fails it at the first pod whose program said no retry can help (by exit
code), and does not count a pod that was evicted or preempted against its backoffLimit.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..contracts.invocations import (
    CREDENTIAL_KEYS,
    ENV_IMAGE,
    ENV_S3_BUCKET,
    ENV_S3_ENDPOINT,
    ENV_S3_REGION,
)
from ..contracts.labels import LABEL_MANAGED_BY, MANAGED_BY

__all__ = [
    "CONTAINER",
    "S3_CREDENTIALS_SECRET",
    "WORKLOAD_SERVICE_ACCOUNT",
    "JobSettings",
    "build_container",
    "build_credentials_secret",
    "build_job",
    "build_workload_service_account",
    "copies_credentials",
    "owner_reference",
    "pod_failure_policy",
    "workload_pod_spec",
]

WORKLOAD_SERVICE_ACCOUNT = "conveyor-workload"
S3_CREDENTIALS_SECRET = "conveyor-s3-credentials"
UID = 65532
CONTAINER = "main"


@dataclass(frozen=True)
class JobSettings:
    """What every Job needs from the operator's settings."""

    image: str
    s3_endpoint: str
    s3_region: str
    s3_bucket: str


def owner_reference(owner: Mapping[str, Any]) -> dict[str, Any]:
    """A controller ownerReference: the child is garbage collected with its owner."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _env(settings: JobSettings, extra: Mapping[str, str]) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": ENV_S3_ENDPOINT, "value": settings.s3_endpoint},
        {"name": ENV_S3_REGION, "value": settings.s3_region},
        {"name": ENV_S3_BUCKET, "value": settings.s3_bucket},
        {"name": ENV_IMAGE, "value": settings.image},
    ]
    for key in CREDENTIAL_KEYS:
        env.append(
            {
                "name": key,
                "valueFrom": {"secretKeyRef": {"name": S3_CREDENTIALS_SECRET, "key": key}},
            }
        )
    env += [{"name": key, "value": value} for key, value in extra.items()]
    return env


def pod_failure_policy(exit_codes: Sequence[int]) -> dict[str, Any]:
    """Fail the Job at once when the container exits with one of `exit_codes` (failures no
    retry can fix); a pod disrupted from outside (eviction, preemption) is replaced without
    counting against backoffLimit; any other failure counts, as without a policy."""
    if not exit_codes or 0 in exit_codes:
        raise ValueError(f"pod_failure_policy needs non-zero exit codes, not {list(exit_codes)}.")
    return {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": CONTAINER,
                    "operator": "In",
                    "values": sorted(set(exit_codes)),
                },
            },
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
        ]
    }


def build_container(
    args: Sequence[str],
    settings: JobSettings,
    *,
    env: Mapping[str, str] | None = None,
    resources: Mapping[str, Any] | None = None,
    volumes: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The one container of a workload: `conveyor <args>` as a non-root user on a read-only
    root filesystem, with S3 in its environment; `volumes` (name → path) are writable, beside
    /tmp."""
    mounts = {"tmp": "/tmp", **(volumes or {})}
    return {
        "name": CONTAINER,
        "image": settings.image,
        "args": list(args),
        "env": _env(settings, env or {}),
        "resources": dict(resources or {"requests": {"cpu": "250m", "memory": "512Mi"}}),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": name, "mountPath": path} for name, path in mounts.items()],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def workload_pod_spec(containers: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A workload pod: the token-less workload ServiceAccount, the runtime's default seccomp
    profile, an emptyDir for every volume its containers mount."""
    volumes = sorted({m["name"] for c in containers for m in c.get("volumeMounts") or []})
    return {
        "serviceAccountName": WORKLOAD_SERVICE_ACCOUNT,
        "automountServiceAccountToken": False,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [dict(c) for c in containers],
        "volumes": [{"name": name, "emptyDir": {}} for name in volumes],
    }


def build_job(
    *,
    name: str,
    owner: Mapping[str, Any],
    args: Sequence[str],
    settings: JobSettings,
    labels: Mapping[str, str],
    env: Mapping[str, str] | None = None,
    resources: Mapping[str, Any] | None = None,
    backoff_limit: int = 1,
    active_deadline_seconds: int = 3600,
    completions: int | None = None,
    parallelism: int | None = None,
    fail_on_exit_codes: Sequence[int] = (),
) -> dict[str, Any]:
    """A batch/v1 Job running `conveyor <args>`; Indexed when `completions` is given; failed at
    the first pod that exits with one of `fail_on_exit_codes`."""
    container = build_container(args, settings, env=env, resources=resources)
    spec: dict[str, Any] = {
        "backoffLimit": backoff_limit,
        "activeDeadlineSeconds": active_deadline_seconds,
        "ttlSecondsAfterFinished": 7 * 24 * 3600,
        "template": {
            "metadata": {"labels": dict(labels)},
            "spec": {
                **workload_pod_spec([container]),
                "restartPolicy": "Never",  # what a podFailurePolicy requires
            },
        },
    }
    if fail_on_exit_codes:
        spec["podFailurePolicy"] = pod_failure_policy(fail_on_exit_codes)
    if completions is not None:
        spec.update(
            completionMode="Indexed",
            completions=completions,
            parallelism=parallelism or completions,
        )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": owner["metadata"]["namespace"],
            "labels": dict(labels),
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": spec,
    }


def copies_credentials(namespace: str, *, operator_namespace: str, secret_name: str) -> bool:
    """Whether workloads in `namespace` need a copy of the operator's credentials Secret: not
    when they run beside the operator and its Secret already has the workloads' name."""
    return namespace != operator_namespace or secret_name != S3_CREDENTIALS_SECRET


def build_credentials_secret(namespace: str, credentials: Mapping[str, str]) -> dict[str, Any]:
    """The namespace's copy of the operator's S3 credentials, which workloads mount."""
    data = {key: base64.b64encode(credentials[key].encode()).decode() for key in CREDENTIAL_KEYS}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": S3_CREDENTIALS_SECRET,
            "namespace": namespace,
            "labels": {LABEL_MANAGED_BY: MANAGED_BY},
        },
        "type": "Opaque",
        "data": data,
    }


def build_workload_service_account(namespace: str) -> dict[str, Any]:
    """The identity of Jobs and serving pods: no API token, no permissions."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": WORKLOAD_SERVICE_ACCOUNT,
            "namespace": namespace,
            "labels": {LABEL_MANAGED_BY: MANAGED_BY},
        },
        "automountServiceAccountToken": False,
    }
