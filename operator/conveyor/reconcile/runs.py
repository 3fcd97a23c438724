"""Plan a TrainingPipeline's runs: start on a trigger, pin a snapshot, follow the Jobs,
register the ModelVersion, promote by policy. Pure: the handler observes and acts.

Restarts never lose or duplicate work: a run is recorded in status before its Job exists, the
Job is named after the run (create-or-get), and a run's ModelVersion is found by the run's label
before a new version number is taken.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..api.v1alpha1 import API_VERSION, TrainingPipeline
from ..resources.conditions import ConditionUpdate, rfc3339
from ..resources.workloads import JobSettings, build_job
from .common import Event, Outcome

__all__ = [
    "LABEL_MODEL",
    "LABEL_PIPELINE",
    "LABEL_RUN",
    "RUN_REQUEST",
    "PipelinePlan",
    "PipelineWorld",
    "RegisteredVersion",
    "RunJob",
    "plan_runs",
    "spec_hash",
]

RUN_REQUEST = "conveyor.dev/run-requested"
LABEL_PIPELINE = "conveyor.dev/pipeline"
LABEL_RUN = "conveyor.dev/run"
LABEL_MODEL = "conveyor.dev/model"
LABEL_PHASE = "conveyor.dev/phase"
ACTIVE_PHASES = ("Pending", "Running")


@dataclass(frozen=True)
class RunJob:
    """A training Job as observed."""

    name: str
    run: str
    phase: str  # all | trials | final
    state: str  # Active | Succeeded | Failed
    finished_at: datetime | None = None
    reason: str = ""
    message: str = ""


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


@dataclass(frozen=True)
class PipelineWorld:
    now: datetime
    snapshot: str | None = None
    """The FeatureSet's latest snapshot id, when it has one."""
    featureset: Mapping[str, Any] | None = None
    jobs: Sequence[RunJob] = ()
    results: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """run id → the run's result.json, once the trainer wrote it."""
    versions: Sequence[RegisteredVersion] = ()


@dataclass
class PipelinePlan:
    outcome: Outcome
    create_jobs: list[dict[str, Any]] = field(default_factory=list)
    delete_jobs: list[str] = field(default_factory=list)
    create_versions: list[dict[str, Any]] = field(default_factory=list)
    promote: list[str] = field(default_factory=list)
    """ModelVersions whose spec.stage becomes Production (the policy is auto)."""


def spec_hash(spec: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _run_id(pipeline: str, now: datetime, taken: set[str]) -> str:
    base = f"{pipeline[:40].rstrip('-')}-{now:%Y%m%d-%H%M%S}"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _job_name(run: str, phase: str) -> str:
    return run + {"all": "", "trials": "-t", "final": "-f"}[phase]


def _triggers(pipeline: TrainingPipeline, body: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(type, reason) of each trigger that fires now."""
    fired = []
    request = (pipeline.metadata.get("annotations") or {}).get(RUN_REQUEST)
    if request and request != pipeline.status.last_run_request:
        fired.append(("manual", f"{RUN_REQUEST}={request}"))
    current = spec_hash(body.get("spec") or {})
    if pipeline.spec.runs.run_on_spec_change and current != pipeline.status.spec_hash:
        what = "created" if pipeline.status.spec_hash is None else "changed"
        fired.append(("specChange", f"the spec {what} (generation {pipeline.generation})"))
    return fired


def plan_runs(body: Mapping[str, Any], world: PipelineWorld, settings: JobSettings) -> PipelinePlan:
    pipeline = TrainingPipeline.from_body(body)
    runs = [run.to_wire() for run in pipeline.status.runs]
    fields: dict[str, Any] = {"specHash": spec_hash(body.get("spec") or {})}
    events: list[Event] = []
    plan = PipelinePlan(Outcome(conditions=[], fields=fields, events=events))
    request = (pipeline.metadata.get("annotations") or {}).get(RUN_REQUEST)
    if request:
        fields["lastRunRequest"] = request

    for trigger, reason in _triggers(pipeline, body):
        active = next((run for run in runs if run["phase"] in ACTIVE_PHASES), None)
        if active is not None and pipeline.spec.runs.concurrency_policy == "Forbid":
            events.append(
                Event(
                    "Normal",
                    "RunSkipped",
                    f"{trigger} trigger ignored: run {active['id']} is active "
                    "(concurrencyPolicy Forbid)",
                )
            )
            continue
        if active is not None:
            active.update(
                phase="Cancelled",
                completionTime=rfc3339(world.now),
                message=f"Replaced by a {trigger} trigger",
            )
            plan.delete_jobs += [job.name for job in world.jobs if job.run == active["id"]]
        run_id = _run_id(pipeline.name, world.now, {run["id"] for run in runs})
        runs.insert(
            0,
            {
                "id": run_id,
                "trigger": {"type": trigger, "reason": reason},
                "phase": "Pending",
                "startTime": rfc3339(world.now),
            },
        )
        events.append(Event("Normal", "RunStarted", f"Run {run_id} started: {reason}"))

    for run in runs:
        if run["phase"] in ACTIVE_PHASES:
            _advance(pipeline, run, world, settings, plan)
    _promote_by_policy(pipeline, world, plan)

    limit = pipeline.spec.runs.history_limit
    fields["runs"] = [
        run for i, run in enumerate(runs) if i < limit or run["phase"] in ACTIVE_PHASES
    ]
    active = next((run["id"] for run in runs if run["phase"] in ACTIVE_PHASES), None)
    fields["activeRun"] = active
    fields.update(_registry_fields(world, plan))
    plan.outcome.conditions = _conditions(pipeline, runs, world)
    return plan


def _advance(
    pipeline: TrainingPipeline,
    run: dict[str, Any],
    world: PipelineWorld,
    settings: JobSettings,
    plan: PipelinePlan,
) -> None:
    run_id = run["id"]
    if run["phase"] == "Pending":
        if world.snapshot is None or world.featureset is None:
            run["message"] = (
                f'Waiting for FeatureSet "{pipeline.spec.feature_set}" to have a snapshot'
            )
            return
        run.update(
            phase="Running",
            snapshot=world.snapshot,
            message=f"Training on snapshot {world.snapshot}",
        )
    jobs = {job.phase: job for job in world.jobs if job.run == run_id}
    for phase in _phases(pipeline):
        job = jobs.get(phase)
        if job is None:
            plan.create_jobs.append(build_training_job(pipeline, run, phase, world, settings))
            run["job"] = _job_name(run_id, phase)
            return
        if job.state == "Active":
            run["job"] = job.name
            return
        if job.state == "Failed":
            _finish(run, "Failed", world.now, f"Job {job.name} failed: {job.reason}: {job.message}")
            plan.outcome.events.append(
                Event("Warning", "RunFailed", f"Run {run_id}: {job.reason}: {job.message}")
            )
            return
    result = world.results.get(run_id)
    if result is None:
        run["message"] = "Training finished; waiting for its result in storage"
        return
    _register(pipeline, run, result, world, plan, settings.image)


def _phases(pipeline: TrainingPipeline) -> list[str]:
    search = pipeline.spec.search
    parallel = search.parallelism > 1 and search.strategy in ("grid", "random", "bayesian")
    return ["trials", "final"] if parallel else ["all"]


def _finish(run: dict[str, Any], phase: str, now: datetime, message: str) -> None:
    run.update(phase=phase, completionTime=rfc3339(now), message=message[:2000])


def _register(
    pipeline: TrainingPipeline,
    run: dict[str, Any],
    result: Mapping[str, Any],
    world: PipelineWorld,
    plan: PipelinePlan,
    image: str,
) -> None:
    passed = bool(result.get("passed"))
    existing = next((v for v in world.versions if v.run == run["id"]), None)
    if existing is not None:
        name = existing.name
    else:
        taken = [v.version for v in world.versions]
        taken += [int(body["spec"]["version"]) for body in plan.create_versions]
        # Numbers this pipeline registered before count too, even if their versions were
        # deleted since: a number is never given twice.
        taken += _numbers_in_status(pipeline)
        number = max(taken, default=0) + 1
        version = build_model_version(pipeline, run, result, number, passed, image)
        plan.create_versions.append(version)
        name = version["metadata"]["name"]
        stage = "Candidate" if passed else "Rejected"
        plan.outcome.events.append(
            Event(
                "Normal" if passed else "Warning",
                "VersionRegistered",
                f"Run {run['id']} registered {name} as {stage}"
                + ("" if passed else f": {'; '.join(result.get('rejection_reasons', []))}"),
            )
        )
    score = result.get("score")
    run.update(modelVersion=name, bestScore=score)
    if passed:
        _finish(
            run,
            "Succeeded",
            world.now,
            f"{result.get('metric')} {score:.4g} on the holdout; registered {name}"
            if isinstance(score, int | float)
            else f"Registered {name}",
        )
    else:
        _finish(
            run,
            "Rejected",
            world.now,
            f"Gates failed: {'; '.join(result.get('rejection_reasons', []))}",
        )


def _numbers_in_status(pipeline: TrainingPipeline) -> list[int]:
    model = pipeline.spec.model.name
    names = [pipeline.status.latest_version, *(run.model_version for run in pipeline.status.runs)]
    prefix = f"{model}-v"
    return [
        int(name[len(prefix) :])
        for name in names
        if name and name.startswith(prefix) and name[len(prefix) :].isdigit()
    ]


def build_model_version(
    pipeline: TrainingPipeline,
    run: Mapping[str, Any],
    result: Mapping[str, Any],
    number: int,
    passed: bool,
    image: str,
) -> dict[str, Any]:
    model = pipeline.spec.model.name
    artifact = {k: v for k, v in dict(result["artifact"]).items() if v is not None}
    metrics = {
        k: float(v)
        for k, v in (result.get("metrics") or {}).items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    metrics.update(
        {
            f"baseline_{k}": float(v)
            for k, v in (result.get("baseline") or {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
    )
    return {
        "apiVersion": API_VERSION,
        "kind": "ModelVersion",
        "metadata": {
            "name": f"{model}-v{number}",
            "namespace": pipeline.namespace,
            "labels": {LABEL_MODEL: model, LABEL_PIPELINE: pipeline.name, LABEL_RUN: run["id"]},
        },
        "spec": {
            "model": model,
            "version": number,
            "stage": "Candidate" if passed else "Rejected",
            "artifact": artifact,
            "task": result["task"],
            "metric": result["metric"],
            "metrics": metrics,
            "params": result.get("params") or {},
            "lineage": {
                "pipeline": pipeline.name,
                "run": run["id"],
                "featureSet": pipeline.spec.feature_set,
                "snapshot": result.get("snapshot") or run.get("snapshot", ""),
                "image": result.get("image") or image,
                "trainedAt": result.get("finishedAt"),
            },
            "gates": [dict(g) for g in result.get("gates", [])],
        },
    }


def _promote_by_policy(
    pipeline: TrainingPipeline, world: PipelineWorld, plan: PipelinePlan
) -> None:
    """auto: the newest Candidate that was never anything else becomes Production."""
    if pipeline.spec.promotion.policy != "auto":
        return
    runs = {run.id for run in pipeline.status.runs}
    fresh = [
        v
        for v in world.versions
        if v.run in runs and v.stage == "Candidate" and set(v.stage_history) <= {"Candidate"}
    ]
    production = [v for v in world.versions if v.stage == "Production"]
    if not fresh:
        return
    newest = max(fresh, key=lambda v: v.version)
    if production and max(v.version for v in production) > newest.version:
        return
    plan.promote.append(newest.name)
    plan.outcome.events.append(
        Event("Normal", "Promoted", f"{newest.name} promoted to Production (policy auto)")
    )


def _registry_fields(world: PipelineWorld, plan: PipelinePlan) -> dict[str, Any]:
    versions = [(v.version, v.name, v.stage) for v in world.versions]
    versions += [
        (b["spec"]["version"], b["metadata"]["name"], b["spec"]["stage"])
        for b in plan.create_versions
    ]
    production = [name for _, name, stage in versions if stage == "Production"]
    production += plan.promote
    latest = max(versions, default=None)
    return {
        "productionVersion": production[-1] if production else None,
        "latestVersion": latest[1] if latest else None,
    }


def _conditions(
    pipeline: TrainingPipeline, runs: list[dict[str, Any]], world: PipelineWorld
) -> list[ConditionUpdate]:
    active = next((run for run in runs if run["phase"] in ACTIVE_PHASES), None)
    finished = next((run for run in runs if run["phase"] not in ACTIVE_PHASES), None)
    conditions = [
        ConditionUpdate(
            "Ready",
            "True",
            "SpecValid",
            f'Trains {pipeline.spec.model.estimator} on FeatureSet "{pipeline.spec.feature_set}"',
        ),
        ConditionUpdate(
            "Progressing",
            "True",
            "RunActive",
            f"Run {active['id']}: {active.get('message', active['phase'])}",
        )
        if active
        else ConditionUpdate("Progressing", "False", "Idle", "No run is active"),
    ]
    if finished is not None and finished["phase"] == "Failed":
        conditions.append(
            ConditionUpdate(
                "Degraded",
                "True",
                "RunFailed",
                f"Run {finished['id']}: {finished.get('message', '')}",
            )
        )
    else:
        conditions.append(ConditionUpdate("Degraded", "False", "LastRunHealthy", ""))
    return conditions


def build_training_job(
    pipeline: TrainingPipeline,
    run: Mapping[str, Any],
    phase: str,
    world: PipelineWorld,
    settings: JobSettings,
) -> dict[str, Any]:
    spec = pipeline.spec
    args = ["train", "--run", run["id"], "--snapshot", run["snapshot"], "--phase", phase]
    parallelism = spec.search.parallelism
    if phase != "all":
        args += ["--partitions", str(parallelism)]
    champion = next((v for v in world.versions if v.stage == "Production"), None)
    if champion is not None and champion.artifact_uri:
        args += ["--champion-uri", champion.artifact_uri, "--champion-digest", champion.digest]
    owner = {
        "apiVersion": pipeline.api_version,
        "kind": pipeline.kind,
        "metadata": pipeline.metadata,
    }
    featureset = world.featureset or {}
    env = {
        "CONVEYOR_PIPELINE": json.dumps(
            {
                "metadata": {"name": pipeline.name, "namespace": pipeline.namespace},
                "spec": spec.to_wire(),
            },
            separators=(",", ":"),
        ),
        "CONVEYOR_FEATURESET": json.dumps(
            {
                "metadata": {
                    "name": featureset.get("metadata", {}).get("name"),
                    "namespace": pipeline.namespace,
                },
                "spec": featureset.get("spec", {}),
            },
            separators=(",", ":"),
        ),
    }
    resources = spec.runs.resources
    return build_job(
        name=_job_name(run["id"], phase),
        owner=owner,
        args=args,
        settings=settings,
        labels={
            LABEL_PIPELINE: pipeline.name,
            LABEL_RUN: run["id"],
            LABEL_PHASE: phase,
            LABEL_MODEL: spec.model.name,
            "app.kubernetes.io/name": "conveyor",
            "app.kubernetes.io/component": "train",
        },
        env=env,
        resources=resources.to_wire() if resources else None,
        backoff_limit=spec.runs.backoff_limit,
        active_deadline_seconds=spec.runs.active_deadline_seconds,
        completions=parallelism if phase == "trials" else None,
    )
