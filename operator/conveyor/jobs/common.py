"""What the Job programs (`conveyor materialize`, `conveyor train`) share.

Errors: every outcome a person can act on is a `JobError` whose `outcome` — a condition reason,
an exit code and whether a retry may help — comes from the one table in
`conveyor.contracts.outcomes`, which the Job builder also reads (a Job fails at once on an exit
code no retry can fix). Each program roots its own errors at a subclass (MaterializeError,
TrainError, in its errors.py); the ones both can end in live here:

JobError                            outcome
├── StorageAccessDenied             STORAGE_ACCESS_DENIED (retryable: a fixed Secret)
├── StorageUnavailable              STORAGE_UNAVAILABLE (retryable)
└── InvalidConfiguration            INVALID_CONFIGURATION
Anything else is a bug: INTERNAL_ERROR (exit code 1, retryable); so is a JobError that names
no outcome of its own.

Reporting: `run_program` runs a program's body and turns its outcome into one JSON line on stdout
— `{"ok": true, ...}` or a `conveyor.contracts.results.JobFailure` — also written to
`--output-json` and, in a pod, to its termination message, where the operator reads it, and into
the exit code.

Settings: the Indexed Job's partition from the environment. The module stays light: `conveyor
--help` should not pay for boto3 and pyarrow.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..contracts.outcomes import (
    INTERNAL_ERROR,
    INVALID_CONFIGURATION,
    STORAGE_ACCESS_DENIED,
    STORAGE_UNAVAILABLE,
    Outcome,
)
from ..contracts.results import (
    TERMINATION_MESSAGE_PATH,
    TERMINATION_MESSAGE_PATH_ENV,
    JobFailure,
)
from ..errors import SettingsError

if TYPE_CHECKING:
    from pydantic import ValidationError

    from ..clients.s3 import StorageError

__all__ = [
    "EXIT_INTERNAL_ERROR",
    "InvalidConfiguration",
    "JobError",
    "StorageAccessDenied",
    "StorageUnavailable",
    "from_storage_error",
    "partition_index",
    "run_program",
    "spec_problems",
]

logger = logging.getLogger(__name__)

EXIT_INTERNAL_ERROR = INTERNAL_ERROR.exit_code

# Kubernetes keeps at most 4096 bytes of a termination message.
_TERMINATION_LIMIT = 4000
# When a shortened result keeps a list, it keeps this many items, strings cut to this length.
_LIST_ITEMS = 5
_ITEM_CHARS = 200


# -- errors ------------------------------------------------------------------------------------


class JobError(Exception):
    """A failed run: `reason` goes into the object's status, the message to a person.

    A subclass names its `outcome`, which sets its `reason`, `exit_code` and `retryable`.
    """

    outcome: ClassVar[Outcome | None] = None
    reason: ClassVar[str] = "JobFailed"
    exit_code: ClassVar[int] = INTERNAL_ERROR.exit_code
    retryable: ClassVar[bool] = INTERNAL_ERROR.retryable  # unclassified: a retry may pass

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        outcome = cls.__dict__.get("outcome")
        if outcome is not None:
            cls.reason, cls.exit_code, cls.retryable = (
                outcome.reason,
                outcome.exit_code,
                outcome.retryable,
            )

    @property
    def message(self) -> str:
        return str(self)


class StorageAccessDenied(JobError):
    outcome = STORAGE_ACCESS_DENIED  # the Secret may be fixed meanwhile; a retry picks it up


class StorageUnavailable(JobError):
    outcome = STORAGE_UNAVAILABLE


class InvalidConfiguration(JobError):
    outcome = INVALID_CONFIGURATION


def from_storage_error(error: StorageError, *, not_found: type[JobError]) -> JobError:
    """The job-level outcome of a storage failure; a missing object or bucket is `not_found`,
    whatever the program calls missing input; anything unrecognised may pass with a retry."""
    kinds: dict[str, type[JobError]] = {
        "StorageAccessDenied": StorageAccessDenied,
        "StorageUnavailable": StorageUnavailable,
        "ObjectNotFound": not_found,
    }
    return kinds.get(error.reason, StorageUnavailable)(str(error))


# -- running and reporting ---------------------------------------------------------------------


def run_program(
    body: Callable[[], Mapping[str, Any]],
    *,
    output_json: Path | None,
    keep: Mapping[str, Sequence[str]],
    activity: str,
    env: Mapping[str, str] | None = None,
) -> int:
    """Run `body` (settings, then the work), report its outcome and return the exit code.

    `body` returns the success payload; a SettingsError is InvalidConfiguration, a JobError its
    own outcome, any other exception a bug that is still reported as one JSON line. `keep` names,
    per section of the payload, the keys worth keeping when the termination message must shrink;
    `activity` names the work in the log ("Training failed unexpectedly"); `env` is where the
    termination message path is read from (the process environment by default).
    """
    _configure_logging()
    try:
        result: dict[str, Any] = {"ok": True, **body()}
        code = 0
    except SettingsError as error:
        result, code = _failure(InvalidConfiguration(str(error)))
    except JobError as error:
        result, code = _failure(error)
    except Exception as error:  # a bug: still one JSON line, so the operator can report it
        logger.exception("%s failed unexpectedly", activity)
        failure = JobFailure(
            reason=INTERNAL_ERROR.reason, message=f"{type(error).__name__}: {error}"
        )
        result, code = failure.to_json(), EXIT_INTERNAL_ERROR
    _report(result, output_json, keep, termination_message_path(os.environ if env is None else env))
    _release_arrow_s3()
    return code


def termination_message_path(env: Mapping[str, str]) -> Path:
    """Where this container's termination message goes (see `contracts.results`)."""
    return Path(env.get(TERMINATION_MESSAGE_PATH_ENV) or TERMINATION_MESSAGE_PATH)


def _release_arrow_s3() -> None:
    """Shut pyarrow's S3 client down before the interpreter does. Left to static destructors,
    its threads can abort the process after the result was reported ("terminate called without
    an active exception"), and a finished run would end as a failed pod."""
    arrow_fs = sys.modules.get("pyarrow.fs")
    if arrow_fs is not None:
        gc.collect()  # S3FileSystem objects the work left behind go first
        arrow_fs.finalize_s3()


def _failure(error: JobError) -> tuple[dict[str, Any], int]:
    """The JSON result and exit code of a JobError."""
    logger.error("%s: %s", error.reason, error.message)
    failure = JobFailure(reason=error.reason, message=error.message, retryable=error.retryable)
    return failure.to_json(), error.exit_code


def _report(
    result: dict[str, Any],
    output_json: Path | None,
    keep: Mapping[str, Sequence[str]],
    termination_log: Path,
) -> None:
    line = json.dumps(result, separators=(",", ":"), default=str)
    if output_json is not None:
        output_json.parent.mkdir(parents=True, exist_ok=True)
        output_json.write_text(line + "\n")
    if termination_log.exists() and os.access(termination_log, os.W_OK):
        termination_log.write_text(_termination_message(result, keep))
    print(line, flush=True)


def _termination_message(result: dict[str, Any], keep: Mapping[str, Sequence[str]]) -> str:
    """The result, cut to what Kubernetes keeps: the message shrinks, each section in `keep`
    keeps only the keys named there, and the JSON stays valid."""
    text = json.dumps(result, separators=(",", ":"), default=str)
    if len(text.encode()) <= _TERMINATION_LIMIT:
        return text
    short = dict(result)
    if "message" in short:
        short["message"] = str(short["message"])[: _TERMINATION_LIMIT // 2] + "…"
    for section, keys in keep.items():
        full = short.get(section)
        if isinstance(full, dict):
            short[section] = {key: _shortened(full[key]) for key in keys if key in full}
    return json.dumps(short, separators=(",", ":"), default=str)[:_TERMINATION_LIMIT]


def _shortened(value: Any) -> Any:
    """A kept value; a list keeps its first items, each string of it cut."""
    if not isinstance(value, list):
        return value
    return [item[:_ITEM_CHARS] if isinstance(item, str) else item for item in value[:_LIST_ITEMS]]


def _configure_logging() -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=logging.INFO,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )


# -- settings ----------------------------------------------------------------------------------


def spec_problems(error: ValidationError, prefix: str) -> list[str]:
    """Each problem pydantic found in a spec, named by its field: `<prefix>spec.a.b: message`."""
    return [
        f"{prefix}spec.{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
        for item in error.errors()
    ]


def partition_index(
    env: Mapping[str, str],
    *,
    partitions: int,
    index: int | None,
    phase: str,
    indexed_phase: str,
) -> int:
    """This pod's index among `partitions`, both checked. In `indexed_phase` the pod runs in an
    Indexed Job, so a missing `--index` is read from JOB_COMPLETION_INDEX; otherwise it is 0."""
    if partitions < 1:
        raise SettingsError(f"Argument '--partitions' must be at least 1, not {partitions}.")
    if phase == indexed_phase and index is None:
        index = _index_from_env(env, indexed_phase)
    position = index or 0
    if not 0 <= position < partitions:
        raise SettingsError(
            f"Argument '--index' (or JOB_COMPLETION_INDEX) must be in 0..{partitions - 1} "
            f"for {partitions} partitions, not {position}."
        )
    return position


def _index_from_env(env: Mapping[str, str], indexed_phase: str) -> int:
    raw = env.get("JOB_COMPLETION_INDEX")
    if raw is None:
        raise SettingsError(
            f"Setting 'JOB_COMPLETION_INDEX' is missing: --phase {indexed_phase} runs in an "
            "Indexed Job, or pass --index."
        )
    try:
        return int(raw)
    except ValueError as error:
        raise SettingsError(
            f"Setting 'JOB_COMPLETION_INDEX' must be an integer, not {raw!r}."
        ) from error
