"""Pure builders of the Jobs that run `conveyor materialize` and `conveyor train`.

A Job's name is deterministic (the snapshot id, the run id), so a repeated reconcile or a
restart finds the Job it created instead of creating a second one. A Job fails at its first pod
whose program exits with a code no retry can fix (`contracts.outcomes`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..api.v1alpha1 import FeatureSet, TrainingPipeline
from ..contracts.invocations import (
    ENV_FEATURESET,
    ENV_PIPELINE,
    MaterializeArgs,
    MaterializePhase,
    TrainArgs,
    TrainPhase,
    object_json,
)
from ..contracts.labels import (
    LABEL_FEATURESET,
    LABEL_MODEL,
    LABEL_PHASE,
    LABEL_PIPELINE,
    LABEL_RUN,
    LABEL_SNAPSHOT,
    component_labels,
)
from ..contracts.outcomes import MATERIALIZE_OUTCOMES, TRAIN_OUTCOMES, permanent_exit_codes
from .workloads import JobSettings, build_job

__all__ = [
    "build_materialize_job",
    "build_training_job",
    "materialize_job_name",
    "training_deadline_seconds",
    "training_job_name",
]


def materialize_job_name(featureset: str, snapshot: str, phase: str) -> str:
    """Deterministic and at most 63 characters (the job-name label's limit)."""
    suffix = {"all": "", "partition": "-p", "combine": "-c"}[phase]
    return f"{featureset[:40].rstrip('-')}-mat-{snapshot[:12]}{suffix}"


def training_job_name(run: str, phase: str) -> str:
    return run + {"all": "", "trials": "-t", "final": "-f"}[phase]


DEFAULT_TRAINING_DEADLINE = 7200
TRAINING_DEADLINE_MARGIN = 600
"""Beyond spec.gates.maxTrainingSeconds: reading the snapshot, evaluating, writing."""


def training_deadline_seconds(pipeline: TrainingPipeline) -> int:
    """The training Job's activeDeadlineSeconds: spec.runs.activeDeadlineSeconds, else what
    follows from spec.gates.maxTrainingSeconds, else two hours."""
    spec = pipeline.spec
    if spec.runs.active_deadline_seconds is not None:
        return spec.runs.active_deadline_seconds
    if spec.gates.max_training_seconds is not None:
        return spec.gates.max_training_seconds + TRAINING_DEADLINE_MARGIN
    return DEFAULT_TRAINING_DEADLINE


def _owner(obj: FeatureSet | TrainingPipeline) -> dict[str, Any]:
    return {"apiVersion": obj.api_version, "kind": obj.kind, "metadata": obj.metadata}


def build_materialize_job(
    featureset: FeatureSet,
    snapshot: str,
    phase: MaterializePhase,
    settings: JobSettings,
    logs_until: datetime | None = None,
) -> dict[str, Any]:
    """`logs_until`: the bound of the prediction logs the operator listed; the Job reads the
    same objects, so it computes the same snapshot id."""
    spec = featureset.spec
    partitions = spec.materialization.parallelism
    latest = featureset.status.latest_snapshot
    args = MaterializeArgs(
        phase=phase,
        partitions=partitions,
        previous_snapshot=latest.id if latest is not None else None,
        logs_until=logs_until.isoformat() if logs_until is not None else None,
    )
    resources = spec.materialization.resources
    return build_job(
        name=materialize_job_name(featureset.name, snapshot, phase),
        owner=_owner(featureset),
        args=args.to_argv(),
        settings=settings,
        labels={
            LABEL_FEATURESET: featureset.name,
            LABEL_SNAPSHOT: snapshot,
            LABEL_PHASE: phase,
            **component_labels("materialize"),
        },
        env={
            args.featureset_env: object_json(featureset.name, featureset.namespace, spec.to_wire())
        },
        resources=resources.to_wire() if resources else None,
        backoff_limit=spec.materialization.backoff_limit,
        active_deadline_seconds=spec.materialization.active_deadline_seconds,
        completions=partitions if phase == "partition" else None,
        fail_on_exit_codes=permanent_exit_codes(MATERIALIZE_OUTCOMES),
    )


def build_training_job(
    pipeline: TrainingPipeline,
    *,
    run: str,
    snapshot: str,
    phase: TrainPhase,
    featureset: Mapping[str, Any],
    champion: tuple[str, str] | None,
    settings: JobSettings,
) -> dict[str, Any]:
    """`featureset` is the FeatureSet object the run trains on; `champion` the Production
    version's (artifact URI, digest), scored on the same holdout when there is one."""
    spec = pipeline.spec
    parallelism = spec.search.parallelism
    args = TrainArgs(
        run=run,
        snapshot=snapshot,
        phase=phase,
        partitions=parallelism if phase != "all" else None,
        champion_uri=champion[0] if champion else None,
        champion_digest=champion[1] if champion else None,
    )
    env = {
        ENV_PIPELINE: object_json(pipeline.name, pipeline.namespace, spec.to_wire()),
        ENV_FEATURESET: object_json(
            str(featureset.get("metadata", {}).get("name")),
            pipeline.namespace,
            featureset.get("spec") or {},
        ),
    }
    resources = spec.runs.resources
    return build_job(
        name=training_job_name(run, phase),
        owner=_owner(pipeline),
        args=args.to_argv(),
        settings=settings,
        labels={
            LABEL_PIPELINE: pipeline.name,
            LABEL_RUN: run,
            LABEL_PHASE: phase,
            LABEL_MODEL: spec.model.name,
            **component_labels("train"),
        },
        env=env,
        resources=resources.to_wire() if resources else None,
        backoff_limit=spec.runs.backoff_limit,
        active_deadline_seconds=training_deadline_seconds(pipeline),
        completions=parallelism if phase == "trials" else None,
        fail_on_exit_codes=permanent_exit_codes(TRAIN_OUTCOMES),
    )
