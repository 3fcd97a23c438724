"""The outcomes of a materialize run a person can act on, each with its exit code.

MaterializeError                      reason (condition reason)  exit code
├── TooManyRejects                    TooManyRejects             2
├── SourceNotFound                    SourceNotFound             3
├── SourceUnreadable                  SourceUnreadable           4
├── SchemaMismatch                    SchemaMismatch             5
├── StorageAccessDenied               StorageAccessDenied        6
├── StorageUnavailable                StorageUnavailable         7
├── InvalidConfiguration              InvalidConfiguration       8
└── PartitionsIncomplete              PartitionsIncomplete       9
Anything else is a bug: exit code 1, reason InternalError.
"""

from __future__ import annotations

from ...clients.s3 import StorageError

__all__ = [
    "EXIT_INTERNAL_ERROR",
    "InvalidConfiguration",
    "MaterializeError",
    "PartitionsIncomplete",
    "SchemaMismatch",
    "SourceNotFound",
    "SourceUnreadable",
    "StorageAccessDenied",
    "StorageUnavailable",
    "TooManyRejects",
    "from_storage_error",
]

EXIT_INTERNAL_ERROR = 1


class MaterializeError(Exception):
    """A failed run: `reason` goes into the FeatureSet's condition, the message to a person."""

    reason = "MaterializeFailed"
    exit_code = EXIT_INTERNAL_ERROR
    retryable = False

    @property
    def message(self) -> str:
        return str(self)


class TooManyRejects(MaterializeError):
    reason = "TooManyRejects"
    exit_code = 2


class SourceNotFound(MaterializeError):
    reason = "SourceNotFound"
    exit_code = 3


class SourceUnreadable(MaterializeError):
    reason = "SourceUnreadable"
    exit_code = 4


class SchemaMismatch(MaterializeError):
    reason = "SchemaMismatch"
    exit_code = 5


class StorageAccessDenied(MaterializeError):
    reason = "StorageAccessDenied"
    exit_code = 6


class StorageUnavailable(MaterializeError):
    reason = "StorageUnavailable"
    exit_code = 7
    retryable = True


class InvalidConfiguration(MaterializeError):
    reason = "InvalidConfiguration"
    exit_code = 8


class PartitionsIncomplete(MaterializeError):
    reason = "PartitionsIncomplete"
    exit_code = 9
    retryable = True


def from_storage_error(error: StorageError) -> MaterializeError:
    """The job-level outcome of a storage failure; a missing object or bucket: missing source."""
    kinds: dict[str, type[MaterializeError]] = {
        "StorageAccessDenied": StorageAccessDenied,
        "StorageUnavailable": StorageUnavailable,
        "ObjectNotFound": SourceNotFound,
    }
    return kinds.get(error.reason, StorageUnavailable)(str(error))
