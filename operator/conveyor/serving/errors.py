"""Why `conveyor serve` cannot serve its version: the outcomes of `SERVE_OUTCOMES`.

They are the Job programs' errors (`conveyor.jobs.common.JobError`), so a server that cannot
start reports the way a Job does — one JSON line on stdout and in the termination message, and
the outcome's exit code — and the operator reads the reason from the crashed pod:

ServeError
├── DigestMismatch          the file's sha256 is not the one the registry recorded
├── ArtifactUnreadable      not found, not a readable skops/ONNX file, a type outside the
│                           allowlist, or a pipeline without the FeatureSet step
└── WarmupFailed            the model card's sample row got no answer
plus the shared StorageAccessDenied, StorageUnavailable (both retryable) and
InvalidConfiguration (a SettingsError).

Request errors are not here: a bad request is the caller's, answered with a 4xx
(`protocol.RequestError`), and never stops the server.
"""

from __future__ import annotations

from ..contracts.outcomes import ARTIFACT_UNREADABLE, DIGEST_MISMATCH, WARMUP_FAILED
from ..jobs.common import JobError

__all__ = ["ArtifactUnreadable", "DigestMismatch", "ServeError", "WarmupFailed"]


class ServeError(JobError):
    """The server cannot serve its version."""


class DigestMismatch(ServeError):
    outcome = DIGEST_MISMATCH


class ArtifactUnreadable(ServeError):
    outcome = ARTIFACT_UNREADABLE


class WarmupFailed(ServeError):
    outcome = WARMUP_FAILED
