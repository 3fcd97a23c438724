"""The outcomes of a training run a person can act on, each with its exit code.

TrainError                          reason (run message)        exit code
├── InvalidSpec                     InvalidSpec                 2
├── SnapshotNotFound                SnapshotNotFound            3
├── NonNumericFeatures              NonNumericFeatures          4
├── SearchFailed                    SearchFailed                5
├── StorageAccessDenied             StorageAccessDenied         6
├── StorageUnavailable              StorageUnavailable          7
├── InvalidConfiguration            InvalidConfiguration        8
├── TrialsIncomplete                TrialsIncomplete            9
└── ChampionUnavailable             ChampionUnavailable         10
Anything else is a bug: exit code 1, reason InternalError.

A run whose model fails a validation gate is not an error: it ends with exit code 0 and
`"passed": false` in the result, and the operator registers the version as Rejected.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...clients.s3 import StorageError

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
    "TrialsIncomplete",
    "from_storage_error",
]

EXIT_INTERNAL_ERROR = 1


class TrainError(Exception):
    """A failed run: `reason` goes into the run's status, the message to a person."""

    reason = "TrainFailed"
    exit_code = EXIT_INTERNAL_ERROR
    retryable = False

    @property
    def message(self) -> str:
        return str(self)


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


class StorageAccessDenied(TrainError):
    reason = "StorageAccessDenied"
    exit_code = 6


class StorageUnavailable(TrainError):
    reason = "StorageUnavailable"
    exit_code = 7
    retryable = True


class InvalidConfiguration(TrainError):
    reason = "InvalidConfiguration"
    exit_code = 8


class TrialsIncomplete(TrainError):
    reason = "TrialsIncomplete"
    exit_code = 9
    retryable = True


class ChampionUnavailable(TrainError):
    reason = "ChampionUnavailable"
    exit_code = 10
    retryable = True


def from_storage_error(error: StorageError) -> TrainError:
    """The job-level outcome of a storage failure that no phase handled itself."""
    kinds: dict[str, type[TrainError]] = {
        "StorageAccessDenied": StorageAccessDenied,
        "StorageUnavailable": StorageUnavailable,
        "ObjectNotFound": SnapshotNotFound,
    }
    return kinds.get(error.reason, StorageUnavailable)(str(error))
