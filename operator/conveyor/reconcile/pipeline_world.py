"""What a TrainingPipeline's reconcile observes: its runs' Jobs, the results they left, the
model's versions — and which of those versions the operator registered (registry.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from ..api.v1alpha1 import TrainingPipeline
from ..contracts.labels import LABEL_PHASE, LABEL_RUN
from ..contracts.layouts import RunLayout
from ..contracts.results import RunResult
from .canary import LiveScore
from .jobs import JobState, JobView
from .registry import RunRecord, recorded_version, registration_problem
from .serving_figures import ServingFigures

__all__ = [
    "PipelineWorld",
    "RegisteredVersion",
    "RunJob",
    "ServingWorld",
    "runs_to_collect",
    "split_registered",
]


@dataclass(frozen=True)
class RunJob:
    """A training Job as observed."""

    name: str
    run: str
    phase: str  # all | trials | final
    state: JobState
    finished_at: datetime | None = None
    reason: str = ""
    message: str = ""
    retry_note: str = ""
    """While the Job retries a failed pod: why it failed."""
    retryable: bool = True
    """A failed Job's verdict: whether running it again may succeed."""

    @classmethod
    def from_view(cls, job: JobView) -> RunJob:
        run, phase = job.labels.get(LABEL_RUN, ""), job.labels.get(LABEL_PHASE, "all")
        return cls(
            job.name,
            run,
            phase,
            job.state,
            job.finished_at,
            job.reason,
            job.message,
            job.retry_note,
            job.retryable,
        )


@dataclass(frozen=True)
class RegisteredVersion:
    """A ModelVersion of the pipeline's model, as observed."""

    name: str
    version: int
    run: str
    stage: str
    stage_history: tuple[str, ...] = ()
    artifact_uri: str = ""
    digest: str = ""
    body: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """The object as observed: what registration_problem checks."""

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> RegisteredVersion:
        spec, status = body.get("spec") or {}, body.get("status") or {}
        artifact = spec.get("artifact") or {}
        return cls(
            name=body["metadata"]["name"],
            version=int(spec.get("version", 0)),
            run=(body["metadata"].get("labels") or {}).get(LABEL_RUN, ""),
            stage=spec.get("stage", "Candidate"),
            stage_history=tuple(entry.get("stage", "") for entry in status.get("stageHistory", [])),
            artifact_uri=artifact.get("uri", ""),
            digest=artifact.get("digest", ""),
            body=body,
        )

    @property
    def model(self) -> str:
        return str((self.body.get("spec") or {}).get("model", ""))


@dataclass(frozen=True)
class ServingWorld:
    """The model's serving objects as observed (None: absent)."""

    deployment: Mapping[str, Any] | None = None
    service: Mapping[str, Any] | None = None
    autoscaler: Mapping[str, Any] | None = None
    pods: Sequence[Mapping[str, Any]] = ()
    """The serving pods, of every version."""
    canary: Mapping[str, Any] | None = None
    """The canary Deployment (`<model>-canary`), while there is one."""
    figures: Mapping[str, ServingFigures] = field(default_factory=dict)
    """Version → its ready pods' serving figures (read only while a canary runs)."""
    live: Mapping[str, LiveScore] = field(default_factory=dict)
    """Version → its live score from labelled feedback, when its status reports one."""


@dataclass(frozen=True)
class PipelineWorld:
    now: datetime
    snapshot: str | None = None
    """The FeatureSet's latest snapshot id, when it has one."""
    featureset: Mapping[str, Any] | None = None
    jobs: Sequence[RunJob] = ()
    results: Mapping[str, RunResult] = field(default_factory=dict)
    """run id → the run's result.json, once the trainer wrote it: of the runs whose Jobs
    succeeded, and of the runs the model's versions name."""
    unreadable_results: Mapping[str, str] = field(default_factory=dict)
    """run id → why its result.json cannot be read (not JSON, not a run result)."""
    versions: Sequence[RegisteredVersion] = ()
    """Every ModelVersion labelled with the model, as observed; plan_runs keeps here only
    those the operator registered and moves the others to `unregistered`."""
    serving: ServingWorld = field(default_factory=ServingWorld)
    """The model's serving Deployment, Service, autoscaler and pods."""
    unregistered: Sequence[RegisteredVersion] = ()
    """Versions with the model's label that the operator did not register: their numbers
    (names) are taken, nothing else about them counts."""
    target_classes: Mapping[str, int] | None = None
    """Rows per class of the latest snapshot's target (classification), when its profile was
    read; None when unknown."""


def runs_to_collect(jobs: Sequence[RunJob]) -> list[str]:
    """The runs whose every Job succeeded: their result.json is there to read (or soon)."""
    succeeded = {job.run for job in jobs if job.state == "Succeeded"}
    return sorted(succeeded - {job.run for job in jobs if job.state != "Succeeded"})


def split_registered(
    pipeline: TrainingPipeline, world: PipelineWorld, bucket: str
) -> PipelineWorld:
    """The world with only the versions the operator registered (see registry.py) in
    `versions`: the only ones it promotes, counts as Production, or passes to a run as the
    champion."""
    registered: list[RegisteredVersion] = []
    others: list[RegisteredVersion] = []
    for version in world.versions:
        record = _run_record(pipeline, world, bucket, version)
        trusted = registration_problem(version.body, record) is None
        (registered if trusted else others).append(version)
    return replace(world, versions=registered, unregistered=[*world.unregistered, *others])


def _run_record(
    pipeline: TrainingPipeline, world: PipelineWorld, bucket: str, version: RegisteredVersion
) -> RunRecord:
    return RunRecord.of(
        RunLayout(bucket, pipeline.namespace, version.model, version.run),
        result=world.results.get(version.run),
        unreadable=world.unreadable_results.get(version.run, ""),
        recorded_version=recorded_version(pipeline.body, version.run),
    )
