"""The outcomes of a training run a person can act on; each error names its outcome (reason,
exit code, retryable) in the table of `conveyor.contracts.outcomes`.

JobError (jobs/common.py)               outcome
├── TrainError                          (none: unclassified, reason TrainFailed)
│   ├── InvalidSpec                     INVALID_SPEC
│   ├── SnapshotNotFound                SNAPSHOT_NOT_FOUND
│   ├── NonNumericFeatures              NON_NUMERIC_FEATURES
│   ├── SearchFailed                    SEARCH_FAILED
│   ├── TrialsIncomplete                TRIALS_INCOMPLETE (retryable)
│   ├── ChampionUnavailable             CHAMPION_UNAVAILABLE (retryable)
│   └── TrainingTimeExceeded            TRAINING_TIME_EXCEEDED
├── StorageAccessDenied (shared)        STORAGE_ACCESS_DENIED (retryable)
├── StorageUnavailable (shared)         STORAGE_UNAVAILABLE (retryable)
└── InvalidConfiguration (shared)       INVALID_CONFIGURATION
Anything else is a bug: INTERNAL_ERROR.

The shared outcomes are the same classes `conveyor materialize` raises (jobs/common.py); they
are re-exported here so training code names all its outcomes from one module.

A run whose model fails a validation gate is not an error: it ends with exit code 0 and
`"passed": false` in the result, and the operator registers the version as Rejected.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...clients.s3 import StorageError
from ...contracts.outcomes import (
    CHAMPION_UNAVAILABLE,
    INVALID_SPEC,
    NON_NUMERIC_FEATURES,
    SEARCH_FAILED,
    SNAPSHOT_NOT_FOUND,
    TRAINING_TIME_EXCEEDED,
    TRIALS_INCOMPLETE,
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
    "ChampionUnavailable",
    "InvalidConfiguration",
    "InvalidSpec",
    "NonNumericFeatures",
    "SearchFailed",
    "SnapshotNotFound",
    "StorageAccessDenied",
    "StorageUnavailable",
    "TrainError",
    "TrainingTimeExceeded",
    "TrialsIncomplete",
    "from_storage_error",
]


class TrainError(JobError):
    """A failed run: `reason` goes into the run's status, the message to a person."""

    reason = "TrainFailed"


class InvalidSpec(TrainError):
    """The TrainingPipeline cannot be trained as written; every problem names its field."""

    outcome = INVALID_SPEC

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        heading = (
            "The TrainingPipeline has a problem"
            if count == 1
            else (f"The TrainingPipeline has {count} problems")
        )
        super().__init__(f"{heading}: " + "; ".join(self.problems))


class SnapshotNotFound(TrainError):
    outcome = SNAPSHOT_NOT_FOUND


class NonNumericFeatures(TrainError):
    outcome = NON_NUMERIC_FEATURES


class SearchFailed(TrainError):
    outcome = SEARCH_FAILED


class TrainingTimeExceeded(TrainError):
    """Training (search and refit) ran past spec.gates.maxTrainingSeconds and was stopped."""

    outcome = TRAINING_TIME_EXCEEDED

    def __init__(self, limit: float) -> None:
        super().__init__(
            f"Training was stopped at spec.gates.maxTrainingSeconds ({limit:g} s) before it "
            "finished: raise the limit, or train less (fewer or smaller estimators in "
            "spec.model.params, fewer trials or a spec.search.timeoutSeconds below the limit)"
        )


class TrialsIncomplete(TrainError):
    outcome = TRIALS_INCOMPLETE


class ChampionUnavailable(TrainError):
    outcome = CHAMPION_UNAVAILABLE


def from_storage_error(error: StorageError) -> JobError:
    """The job-level outcome of a storage failure that no phase handled itself."""
    return _translate_storage_error(error, not_found=SnapshotNotFound)
