"""Pure builders of the Jobs that run Conveyor's programs (materialize, train).

Every Job runs the one Conveyor image with an argument list (never a shell string), as the
non-root, read-only-root-filesystem workload ServiceAccount, with S3 settings in its environment
and the credentials from the namespace's Secret.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "S3_CREDENTIALS_SECRET",
    "WORKLOAD_SERVICE_ACCOUNT",
    "JobSettings",
    "build_job",
    "owner_reference",
]

WORKLOAD_SERVICE_ACCOUNT = "conveyor-workload"
S3_CREDENTIALS_SECRET = "conveyor-s3-credentials"
UID = 65532


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
        {"name": "CONVEYOR_S3_ENDPOINT", "value": settings.s3_endpoint},
        {"name": "CONVEYOR_S3_REGION", "value": settings.s3_region},
        {"name": "CONVEYOR_S3_BUCKET", "value": settings.s3_bucket},
        {"name": "CONVEYOR_IMAGE", "value": settings.image},
    ]
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.append(
            {
                "name": key,
                "valueFrom": {"secretKeyRef": {"name": S3_CREDENTIALS_SECRET, "key": key}},
            }
        )
    env += [{"name": key, "value": value} for key, value in extra.items()]
    return env


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
) -> dict[str, Any]:
    """A batch/v1 Job running `conveyor <args>`; Indexed when `completions` is given."""
    container: dict[str, Any] = {
        "name": "main",
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
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    spec: dict[str, Any] = {
        "backoffLimit": backoff_limit,
        "activeDeadlineSeconds": active_deadline_seconds,
        "ttlSecondsAfterFinished": 7 * 24 * 3600,
        "template": {
            "metadata": {"labels": dict(labels)},
            "spec": {
                "restartPolicy": "Never",
                "serviceAccountName": WORKLOAD_SERVICE_ACCOUNT,
                "automountServiceAccountToken": False,
                "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [container],
                "volumes": [{"name": "tmp", "emptyDir": {}}],
            },
        },
    }
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
