"""The outcomes of a training run a person can act on, each with its exit code.

JobError (jobs/common.py)               reason (run message)        exit code
├── TrainError                          TrainFailed                 1
│   ├── InvalidSpec                     InvalidSpec                 2
│   ├── SnapshotNotFound                SnapshotNotFound            3
│   ├── NonNumericFeatures              NonNumericFeatures          4
│   ├── SearchFailed                    SearchFailed                5
│   ├── TrialsIncomplete                TrialsIncomplete            9
│   ├── ChampionUnavailable             ChampionUnavailable         10
│   └── TrainingTimeExceeded            TrainingTimeExceeded        11
├── StorageAccessDenied (shared)        StorageAccessDenied         6
├── StorageUnavailable (shared)         StorageUnavailable          7
└── InvalidConfiguration (shared)       InvalidConfiguration        8
Anything else is a bug: exit code 1, reason InternalError.

The shared outcomes are the same classes `conveyor materialize` raises (jobs/common.py); they
are re-exported here so training code names all its outcomes from one module.

A run whose model fails a validation gate is not an error: it ends with exit code 0 and
`"passed": false` in the result, and the operator registers the version as Rejected.
"""

from __future__ import annotations

from collections.abc import Sequence

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

    reason = "InvalidSpec"
    exit_code = 2

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
    reason = "SnapshotNotFound"
    exit_code = 3


class NonNumericFeatures(TrainError):
    reason = "NonNumericFeatures"
    exit_code = 4


class SearchFailed(TrainError):
    reason = "SearchFailed"
    exit_code = 5


class TrainingTimeExceeded(TrainError):
    """Training (search and refit) ran past spec.gates.maxTrainingSeconds and was stopped."""

    reason = "TrainingTimeExceeded"
    exit_code = 11

    def __init__(self, limit: float) -> None:
        super().__init__(
            f"Training was stopped at spec.gates.maxTrainingSeconds ({limit:g} s) before it "
            "finished: raise the limit, or train less (fewer or smaller estimators in "
            "spec.model.params, fewer trials or a spec.search.timeoutSeconds below the limit)"
        )


class TrialsIncomplete(TrainError):
    reason = "TrialsIncomplete"
    exit_code = 9
    retryable = True


class ChampionUnavailable(TrainError):
    reason = "ChampionUnavailable"
    exit_code = 10
    retryable = True


def from_storage_error(error: StorageError) -> JobError:
    """The job-level outcome of a storage failure that no phase handled itself."""
    return _translate_storage_error(error, not_found=SnapshotNotFound)
