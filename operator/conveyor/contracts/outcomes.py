"""How a Job program can end: the reason a person sees, the exit code, and whether a retry may
help. The one table both sides read:

- the programs (`jobs/`) raise errors whose reason, exit code and verdict are these outcomes;
- the Job builder (`resources/`) turns the exit codes of the outcomes no retry can fix into the
  Job's `podFailurePolicy`, so Kubernetes fails the Job at the first such pod instead of
  running the same doomed program `backoffLimit` more times.

outcome                  exit code  retryable  raised by
InternalError            1          yes        either (a bug, or an error nobody classified)
TooManyRejects           2          no         materialize
SourceNotFound           3          no         materialize
SourceUnreadable         4          no         materialize
SchemaMismatch           5          no         materialize
InvalidSpec              2          no         train
SnapshotNotFound         3          no         train
NonNumericFeatures       4          no         train
SearchFailed             5          no         train
StorageAccessDenied      6          yes        either (a fixed Secret is picked up by a retry)
StorageUnavailable       7          yes        either
InvalidConfiguration     8          no         either
PartitionsIncomplete     9          yes        materialize
TrialsIncomplete         9          yes        train
ChampionUnavailable      10         yes        train
TrainingTimeExceeded     11         no         train
DigestMismatch           2          no         serve
ArtifactUnreadable       3          no         serve (not found, not a readable file, a type
                                               outside the allowlist)
WarmupFailed             4          no         serve

Codes are per program (2 is TooManyRejects from materialize, InvalidSpec from train); 1 is also
Python's own exit code for an uncaught exception, so it never fails a Job at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ARTIFACT_UNREADABLE",
    "CHAMPION_UNAVAILABLE",
    "DIGEST_MISMATCH",
    "INTERNAL_ERROR",
    "INVALID_CONFIGURATION",
    "INVALID_SPEC",
    "MATERIALIZE_OUTCOMES",
    "NON_NUMERIC_FEATURES",
    "PARTITIONS_INCOMPLETE",
    "SCHEMA_MISMATCH",
    "SEARCH_FAILED",
    "SERVE_OUTCOMES",
    "SNAPSHOT_NOT_FOUND",
    "SOURCE_NOT_FOUND",
    "SOURCE_UNREADABLE",
    "STORAGE_ACCESS_DENIED",
    "STORAGE_UNAVAILABLE",
    "TOO_MANY_REJECTS",
    "TRAINING_TIME_EXCEEDED",
    "TRAIN_OUTCOMES",
    "TRIALS_INCOMPLETE",
    "WARMUP_FAILED",
    "Outcome",
    "permanent_exit_codes",
]


@dataclass(frozen=True)
class Outcome:
    reason: str
    """The condition reason a person sees (CamelCase)."""
    exit_code: int
    retryable: bool
    """Whether the same program, run again unchanged, may succeed."""

    def __post_init__(self) -> None:
        # 0 is success; from 128 on, shells and runtimes report signals (137 = SIGKILL).
        if not 1 <= self.exit_code <= 127:
            raise ValueError(f"Outcome {self.reason}: exit code {self.exit_code} is not in 1..127.")


INTERNAL_ERROR = Outcome("InternalError", 1, retryable=True)

STORAGE_ACCESS_DENIED = Outcome("StorageAccessDenied", 6, retryable=True)
STORAGE_UNAVAILABLE = Outcome("StorageUnavailable", 7, retryable=True)
INVALID_CONFIGURATION = Outcome("InvalidConfiguration", 8, retryable=False)
_SHARED = (INTERNAL_ERROR, STORAGE_ACCESS_DENIED, STORAGE_UNAVAILABLE, INVALID_CONFIGURATION)

TOO_MANY_REJECTS = Outcome("TooManyRejects", 2, retryable=False)
SOURCE_NOT_FOUND = Outcome("SourceNotFound", 3, retryable=False)
SOURCE_UNREADABLE = Outcome("SourceUnreadable", 4, retryable=False)
SCHEMA_MISMATCH = Outcome("SchemaMismatch", 5, retryable=False)
PARTITIONS_INCOMPLETE = Outcome("PartitionsIncomplete", 9, retryable=True)

INVALID_SPEC = Outcome("InvalidSpec", 2, retryable=False)
SNAPSHOT_NOT_FOUND = Outcome("SnapshotNotFound", 3, retryable=False)
NON_NUMERIC_FEATURES = Outcome("NonNumericFeatures", 4, retryable=False)
SEARCH_FAILED = Outcome("SearchFailed", 5, retryable=False)
TRIALS_INCOMPLETE = Outcome("TrialsIncomplete", 9, retryable=True)
CHAMPION_UNAVAILABLE = Outcome("ChampionUnavailable", 10, retryable=True)
TRAINING_TIME_EXCEEDED = Outcome("TrainingTimeExceeded", 11, retryable=False)

DIGEST_MISMATCH = Outcome("DigestMismatch", 2, retryable=False)
ARTIFACT_UNREADABLE = Outcome("ArtifactUnreadable", 3, retryable=False)
WARMUP_FAILED = Outcome("WarmupFailed", 4, retryable=False)

MATERIALIZE_OUTCOMES: tuple[Outcome, ...] = (
    *_SHARED,
    TOO_MANY_REJECTS,
    SOURCE_NOT_FOUND,
    SOURCE_UNREADABLE,
    SCHEMA_MISMATCH,
    PARTITIONS_INCOMPLETE,
)
TRAIN_OUTCOMES: tuple[Outcome, ...] = (
    *_SHARED,
    INVALID_SPEC,
    SNAPSHOT_NOT_FOUND,
    NON_NUMERIC_FEATURES,
    SEARCH_FAILED,
    TRIALS_INCOMPLETE,
    CHAMPION_UNAVAILABLE,
    TRAINING_TIME_EXCEEDED,
)


SERVE_OUTCOMES: tuple[Outcome, ...] = (
    *_SHARED,
    DIGEST_MISMATCH,
    ARTIFACT_UNREADABLE,
    WARMUP_FAILED,
)
"""How `conveyor serve` ends when it cannot serve its version: the reason the operator reports
on the ModelVersion (condition Serving=False) when its rollout fails."""


def permanent_exit_codes(outcomes: Iterable[Outcome]) -> list[int]:
    """The exit codes that mean, whichever outcome they stand for, that no retry can help;
    ascending, as a podFailurePolicy's `values` must be. Refuses a table in which one code
    stands for two outcomes: the exit code alone would not say which one happened."""
    by_code: dict[int, Outcome] = {}
    for outcome in outcomes:
        seen = by_code.setdefault(outcome.exit_code, outcome)
        if seen != outcome:
            raise ValueError(
                f"Exit code {outcome.exit_code} stands for both {seen.reason} and "
                f"{outcome.reason}; give one of them a code of its own."
            )
    return sorted(code for code, outcome in by_code.items() if not outcome.retryable)
