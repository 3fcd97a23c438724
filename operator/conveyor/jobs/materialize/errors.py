"""The outcomes of a materialize run a person can act on, each with its exit code.

JobError (jobs/common.py)               reason (condition reason)  exit code
├── MaterializeError                    MaterializeFailed          1
│   ├── TooManyRejects                  TooManyRejects             2
│   ├── SourceNotFound                  SourceNotFound             3
│   ├── SourceUnreadable                SourceUnreadable           4
│   ├── SchemaMismatch                  SchemaMismatch             5
│   └── PartitionsIncomplete            PartitionsIncomplete       9
├── StorageAccessDenied (shared)        StorageAccessDenied        6
├── StorageUnavailable (shared)         StorageUnavailable         7
└── InvalidConfiguration (shared)       InvalidConfiguration       8
Anything else is a bug: exit code 1, reason InternalError.

The shared outcomes are the same classes `conveyor train` raises (jobs/common.py); they are
re-exported here so materialize code names all its outcomes from one module.
"""

from __future__ import annotations

from ...clients.s3 import StorageError
from ..common import (
    EXIT_INTERNAL_ERROR,
    InvalidConfiguration,
    JobError,
    StorageAccessDenied,
    StorageUnavailable,
)
from ..common import from_storage_error as _translate_storage_error

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


class MaterializeError(JobError):
    """A failed run: `reason` goes into the FeatureSet's condition, the message to a person."""

    reason = "MaterializeFailed"


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


class PartitionsIncomplete(MaterializeError):
    reason = "PartitionsIncomplete"
    exit_code = 9
    retryable = True


def from_storage_error(error: StorageError) -> JobError:
    """The job-level outcome of a storage failure; a missing object or bucket: missing source."""
    return _translate_storage_error(error, not_found=SourceNotFound)
