"""Conveyor's errors.

    kopf.TemporaryError          worth retrying after a delay (kopf retries the handler)
    └── ClusterUnavailable       the API server or storage answered 429/5xx or was unreachable
    ConveyorError                shown to a person as it is (the CLI prints it, exit code 1)
    ├── ClusterUnavailable       (also: a CLI command against an unavailable cluster)
    ├── SettingsError            a setting is missing or malformed; the message names the key
    ├── ApiError                 the API server refused a request; the message is the server's
    │   └── AlreadyExists        409 on create: `Kube.ensure` takes it as success
    └── StorageError             S3 refused or failed a request (`clients.s3`, with its subtree)

A spec a person must fix is not an exception: reconciles report it as a condition (Ready=False
with a reason and a message naming the field) and an Event, and retry nothing until it changes.
The Job programs have their own outcomes, with exit codes: see `conveyor.jobs.common`.
"""

from __future__ import annotations

import kopf

__all__ = [
    "AlreadyExists",
    "ApiError",
    "ClusterUnavailable",
    "Conflict",
    "ConveyorError",
    "SettingsError",
]


class ConveyorError(Exception):
    """An error outside reconciliation, shown to a person as it is."""


class ClusterUnavailable(kopf.TemporaryError, ConveyorError):
    """The Kubernetes API (or the object store) answered with a retryable error."""


class Conflict(ClusterUnavailable):
    """A write the server refused with 409 Conflict: the object changed meanwhile (or the
    server says so under load). Read it again and retry; kopf retries the handler."""


class SettingsError(ConveyorError):
    """A setting is missing or malformed."""


class ApiError(ConveyorError):
    """The Kubernetes API refused a request: `status` is the HTTP status, the message the
    server's own (`admission webhook denied...`, `field is immutable`, ...)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class AlreadyExists(ApiError):
    """The object to create exists already (409)."""
