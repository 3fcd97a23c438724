"""What a Job program reports, and what a training run leaves behind.

A program ends with one JSON line on stdout, also written to its termination message (the file
at `$TERMINATION_MESSAGE_PATH`, else /dev/termination-log), where the operator reads it:

    {"ok": true, ...the program's payload...}
    {"ok": false, "reason": "TooManyRejects", "message": "...", "retryable": false}

`retryable` is the program's verdict: whether running it again, unchanged, may succeed (storage
was down, a partition was missing). The operator retries a failed materialization only then;
anything else waits for a change or a request.

A training run writes `result.json` last under its run path (`RunResult`): the operator
registers its ModelVersion from it, and `build_card` writes the model card from it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from ..api.v1alpha1.modelversion import Artifact, GateResult
from .wire import WireModel

__all__ = [
    "TERMINATION_MESSAGE_PATH",
    "TERMINATION_MESSAGE_PATH_ENV",
    "JobFailure",
    "RunResult",
    "parse_failure",
]

TERMINATION_MESSAGE_PATH = "/dev/termination-log"
"""Where Kubernetes reads a container's termination message (terminationMessagePath's default)."""
TERMINATION_MESSAGE_PATH_ENV = "TERMINATION_MESSAGE_PATH"
"""Names another file for it where the runtime cannot mount one there (the sandbox)."""


class JobFailure(WireModel):
    """A program's failure, as it reports it (or as the operator reads it from the Job)."""

    ok: Literal[False] = False
    reason: str
    """The condition reason a person sees (CamelCase)."""
    message: str = ""
    retryable: bool = True
    """Whether the same run, repeated, may succeed; when unsure (no verdict), it may."""


def parse_failure(text: str) -> JobFailure | None:
    """The failure reported in the last JSON line of `text` (a termination message or a log
    tail); None when no line is a failure report."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and document.get("ok") is False:
            return JobFailure(
                reason=str(document.get("reason") or "Failed"),
                message=str(document.get("message") or ""),
                retryable=bool(document.get("retryable", True)),
            )
    return None


class RunResult(WireModel):
    """result.json of a training run: lineage, the evaluation, the gates and the artifact."""

    run: str
    model: str
    pipeline: str
    featureset: str
    snapshot: str
    """The snapshot trained on."""
    image: str
    """The image that trained it."""
    task: Literal["classification", "regression"]
    target: str
    """The column it predicts."""
    estimator: str
    params: dict[str, Any] = Field(default_factory=dict)
    """The estimator parameters of the fitted model."""
    metric: str
    """The pipeline metric."""
    score: float | None
    """Its value on the holdout."""
    metrics: dict[str, float | None] = Field(default_factory=dict)
    """Every holdout metric (null where it is not finite)."""
    baseline: dict[str, float | None] = Field(default_factory=dict)
    """The same metrics of the dummy-estimator baseline."""
    gates: list[GateResult] = Field(default_factory=list)
    passed: bool
    """Whether every gate passed: the version is a Candidate, else Rejected."""
    rejection_reasons: list[str] = Field(default_factory=list)
    champion_score: float | None = Field(default=None, alias="championScore")
    """The Production model's score on the same holdout rows, when it was compared."""
    champion_input: Literal["raw", "features"] | None = Field(default=None, alias="championInput")
    """What the Production model scored: the raw rows, or the stored features."""
    artifact: Artifact
    holdout: str | None = None
    """The fingerprint of the holdout rows the metrics were computed on (training/splits.py)."""
    training_seconds: float = Field(alias="trainingSeconds")
    started_at: datetime = Field(alias="startedAt")
    finished_at: datetime = Field(alias="finishedAt")
