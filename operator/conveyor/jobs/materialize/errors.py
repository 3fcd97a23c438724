"""The outcomes of a materialize run a person can act on; each error names its outcome (reason,
exit code, retryable) in the table of `conveyor.contracts.outcomes`.

JobError (jobs/common.py)               outcome
├── MaterializeError                    (none: unclassified, reason MaterializeFailed)
│   ├── TooManyRejects                  TOO_MANY_REJECTS
│   ├── SourceNotFound                  SOURCE_NOT_FOUND
│   ├── SourceUnreadable                SOURCE_UNREADABLE
│   ├── SchemaMismatch                  SCHEMA_MISMATCH
│   └── PartitionsIncomplete            PARTITIONS_INCOMPLETE (retryable)
├── StorageAccessDenied (shared)        STORAGE_ACCESS_DENIED (retryable)
├── StorageUnavailable (shared)         STORAGE_UNAVAILABLE (retryable)
└── InvalidConfiguration (shared)       INVALID_CONFIGURATION
Anything else is a bug: INTERNAL_ERROR.

The shared outcomes are the same classes `conveyor train` raises (jobs/common.py); they are
re-exported here so materialize code names all its outcomes from one module.
"""

from __future__ import annotations

from ...clients.s3 import StorageError
from ...contracts.outcomes import (
    PARTITIONS_INCOMPLETE,
    SCHEMA_MISMATCH,
    SOURCE_NOT_FOUND,
    SOURCE_UNREADABLE,
    TOO_MANY_REJECTS,
)
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
    outcome = TOO_MANY_REJECTS


class SourceNotFound(MaterializeError):
    outcome = SOURCE_NOT_FOUND


class SourceUnreadable(MaterializeError):
    outcome = SOURCE_UNREADABLE


class SchemaMismatch(MaterializeError):
    outcome = SCHEMA_MISMATCH


class PartitionsIncomplete(MaterializeError):
    outcome = PARTITIONS_INCOMPLETE


def from_storage_error(error: StorageError) -> JobError:
    """The job-level outcome of a storage failure; a missing object or bucket: missing source."""
    return _translate_storage_error(error, not_found=SourceNotFound)
