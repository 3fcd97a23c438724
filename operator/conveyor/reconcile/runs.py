"""Plan a TrainingPipeline's runs: start on a trigger, pin a snapshot, follow the Jobs,
register the ModelVersion, promote by policy. Pure: the handler observes and acts.

Restarts never lose or duplicate work: a run is recorded in status before its Job exists, the
Job is named after the run (create-or-get), and a run's ModelVersion is found by the run's label
before a new version number is taken. `PipelinePlan.actions` keeps that order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, get_args

from ..api.v1alpha1 import TrainingPipeline
from ..api.v1alpha1.trainingpipeline import TriggerType
from ..contracts.invocations import TrainPhase
from ..contracts.labels import POLICY_RUN_REQUEST, RUN_REQUEST
from ..contracts.results import RunResult
from ..resources.conditions import ConditionUpdate, rfc3339
from ..resources.jobs import build_training_job, training_job_name
from ..resources.kinds import JOBS, MODEL_VERSIONS
from ..resources.modelversion import build_model_version
from ..resources.workloads import JobSettings
from .common import (
    Action,
    Create,
    Delete,
    Event,
    GrantWorkloadAccess,
    Outcome,
    Patch,
    Plan,
    WriteStatus,
)
from .pinning import Pin, pin_decision
from .pipeline_world import PipelineWorld, RegisteredVersion, RunJob, split_registered

__all__ = ["PipelinePlan", "plan_runs", "policy_request", "spec_hash"]

ACTIVE_PHASES = ("Pending", "Running")
RUN_RETRIES = 3
RUN_RETRY_BACKOFF = timedelta(seconds=30)
RETRIED_REASONS = frozenset({"StorageUnavailable", "StorageAccessDenied"})
"""Failures that pass by themselves (an outage, a Secret fixed meanwhile): the run is run
again. Others — a bug, a bad estimator — would fail again."""


@dataclass
class PipelinePlan(Plan):
    create_jobs: list[dict[str, Any]] = field(default_factory=list)
    delete_jobs: list[str] = field(default_factory=list)
    create_versions: list[dict[str, Any]] = field(default_factory=list)
    promote: list[str] = field(default_factory=list)
    """ModelVersions whose spec.stage becomes Production (the policy is auto)."""
    workloads: bool = False
    """Jobs or serving pods run or start: the namespace needs its credentials and workload
    ServiceAccount."""
    registered: list[RegisteredVersion] = field(default_factory=list)
    """The model's versions the operator registered, as observed."""
    serving_writes: list[Action] = field(default_factory=list)
    """The serving Deployment, Service and autoscaler to create or patch (serving.py)."""

    def actions(self) -> list[Action]:
        """Versions first (found again by their run label), then the status that records the
        runs (and a failed rollout), then the Jobs named after those runs, then serving."""
        access: list[Action] = [GrantWorkloadAccess()] if self.workloads else []
        return [
            *(Create(MODEL_VERSIONS, body, on_conflict="replan") for body in self.create_versions),
            *(
                Patch(MODEL_VERSIONS, name, {"spec": {"stage": "Production"}})
                for name in self.promote
            ),
            WriteStatus(),
            *(Delete(JOBS, name) for name in self.delete_jobs),
            *access,
            *(Create(JOBS, job) for job in self.create_jobs),
            *self.serving_writes,
        ]


def spec_hash(spec: Mapping[str, Any]) -> str:
    """What runOnSpecChange compares. A pin (spec.promotion.version) chooses among trained
    versions: moving it in Git rolls out, it never retrains (and an unpinned spec hashes as
    before pins existed, so no pipeline retrains on an upgrade)."""
    promotion = {k: v for k, v in (spec.get("promotion") or {}).items() if k != "version"}
    trained = {**spec, "promotion": promotion} if "promotion" in spec else spec
    return hashlib.sha256(json.dumps(trained, sort_keys=True).encode()).hexdigest()[:16]


def _run_id(pipeline: str, now: datetime, taken: set[str]) -> str:
    base = f"{pipeline[:40].rstrip('-')}-{now:%Y%m%d-%H%M%S}"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def policy_request(pipeline: TrainingPipeline) -> dict[str, str] | None:
    """A RetrainPolicy's run request on the pipeline, or None (absent or not one)."""
    raw = (pipeline.metadata.get("annotations") or {}).get(POLICY_RUN_REQUEST)
    try:
        request = json.loads(raw) if raw else None
    except ValueError:
        return None
    if not isinstance(request, dict) or not all(
        isinstance(request.get(key), str) for key in ("id", "trigger", "reason", "policy")
    ):
        return None
    return request if request["trigger"] in get_args(TriggerType) else None


def _triggers(pipeline: TrainingPipeline) -> list[tuple[str, str, str | None]]:
    """(type, reason, source) of each trigger that fires now."""
    fired: list[tuple[str, str, str | None]] = []
    request = (pipeline.metadata.get("annotations") or {}).get(RUN_REQUEST)
    if request and request != pipeline.status.last_run_request:
        fired.append(("manual", f"{RUN_REQUEST}={request}", None))
    retrain = policy_request(pipeline)
    if retrain and retrain["id"] != pipeline.status.last_policy_request:
        reason = f"{retrain['reason']} [request {retrain['id']}]"
        fired.append((retrain["trigger"], reason, retrain["policy"]))
    current = spec_hash(pipeline.body.get("spec") or {})
    if pipeline.spec.runs.run_on_spec_change and current != pipeline.status.spec_hash:
        what = "created" if pipeline.status.spec_hash is None else "changed"
        fired.append(("specChange", f"the spec {what} (generation {pipeline.generation})", None))
    return fired


def plan_runs(
    pipeline: TrainingPipeline, world: PipelineWorld, settings: JobSettings
) -> PipelinePlan:
    world = split_registered(pipeline, world, settings.s3_bucket)
    runs = [run.to_wire() for run in pipeline.status.runs]
    fields: dict[str, Any] = {"specHash": spec_hash(pipeline.body.get("spec") or {})}
    events: list[Event] = []
    plan = PipelinePlan(Outcome(conditions=[], fields=fields, events=events))
    plan.registered = list(world.versions)
    request = (pipeline.metadata.get("annotations") or {}).get(RUN_REQUEST)
    if request:
        fields["lastRunRequest"] = request
    retrain = policy_request(pipeline)
    if retrain:
        fields["lastPolicyRequest"] = retrain["id"]

    for trigger, reason, source in _triggers(pipeline):
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
                "trigger": {"type": trigger, "reason": reason}
                | ({"source": source} if source else {}),
                "phase": "Pending",
                "startTime": rfc3339(world.now),
            },
        )
        events.append(Event("Normal", "RunStarted", f"Run {run_id} started: {reason}"))

    for run in runs:
        if run["phase"] in ACTIVE_PHASES:
            _advance(pipeline, run, world, settings, plan)
    pin = pin_decision(pipeline, world.versions)
    if pin is None:
        fields.update(pinnedVersion=None, betterCandidate=None)
        _promote_by_policy(pipeline, world, plan)
    else:
        _follow_pin(pipeline, pin, plan)

    limit = pipeline.spec.runs.history_limit
    fields["runs"] = [
        run for i, run in enumerate(runs) if i < limit or run["phase"] in ACTIVE_PHASES
    ]
    active = next((run["id"] for run in runs if run["phase"] in ACTIVE_PHASES), None)
    fields["activeRun"] = active
    fields.update(_registry_fields(world, plan))
    plan.outcome.conditions = _conditions(pipeline, runs, world)
    if pin is not None and pin.problem is not None:
        reason, message = pin.problem
        plan.outcome.conditions[0] = ConditionUpdate("Ready", "False", reason, message)
        plan.outcome.stalled = True
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
        problems = _split_problems(pipeline, world)
        if problems:
            message = "; ".join(problems)
            _finish(run, "Failed", world.now, f"Not started: {message}")
            plan.outcome.events.append(
                Event("Warning", "RunFailed", f"Run {run_id} not started: {message}")
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
            plan.create_jobs.append(_training_job(pipeline, run, phase, world, settings))
            plan.workloads = True
            run["job"] = training_job_name(run_id, phase)
            return
        if job.state == "Active":
            plan.workloads = True
            run["job"] = job.name
            run["message"] = f"Training on snapshot {run.get('snapshot')}{job.retry_note}"
            return
        if job.state == "Failed":
            if _retry_later(run, job, world.now, plan):
                return
            _finish(run, "Failed", world.now, f"Job {job.name} failed: {job.reason}: {job.message}")
            plan.outcome.events.append(
                Event("Warning", "RunFailed", f"Run {run_id}: {job.reason}: {job.message}")
            )
            return
    if run_id in world.unreadable_results:
        problem = world.unreadable_results[run_id]
        _finish(run, "Failed", world.now, f"The run's result cannot be read: {problem}")
        plan.outcome.events.append(Event("Warning", "RunFailed", f"Run {run_id}: {problem}"))
        return
    result = world.results.get(run_id)
    if result is None:
        run["message"] = "Training finished; waiting for its result in storage"
        return
    _register(pipeline, run, result, world, plan)


def _retry_later(run: dict[str, Any], job: RunJob, now: datetime, plan: PipelinePlan) -> bool:
    """A Job that failed for a reason that passes (S3 unavailable) after its own pod retries
    runs again, after 30 s, 60 s, 120 s: its deterministic name is freed first (the Job is
    deleted), and the next reconcile creates it anew. False when the run fails for good."""
    retries = int(run.get("retries") or 0)
    if not job.retryable or job.reason not in RETRIED_REASONS or retries >= RUN_RETRIES:
        return False
    why = f"Job {job.name} failed: {job.reason}: {job.message}"
    due = (job.finished_at or now) + RUN_RETRY_BACKOFF * (2**retries)
    if now < due:
        again = f"running it again at {rfc3339(due)} ({retries + 1} of {RUN_RETRIES})"
        run["message"] = f"{why}; {again}"
        return True
    run.update(retries=retries + 1, message=f"Running again after: {why}")
    plan.delete_jobs.append(job.name)
    plan.outcome.events.append(
        Event("Normal", "RunRetried", f"Run {run['id']}: running again after {job.reason}")
    )
    return True


def _split_problems(pipeline: TrainingPipeline, world: PipelineWorld) -> list[str]:
    """Why the latest snapshot cannot be split as spec.split says (the trainer would fail
    on it): checked before the run's Job exists."""
    from ..training.splits import split_problems

    latest = ((world.featureset or {}).get("status") or {}).get("latestSnapshot") or {}
    rows = latest.get("rows")
    if latest.get("id") != world.snapshot or not isinstance(rows, int):
        return []  # unknown here: the trainer checks on the rows it reads
    split = pipeline.spec.split
    return split_problems(
        rows, test_size=split.test_size, folds=split.folds, classes=world.target_classes
    )


def _training_job(
    pipeline: TrainingPipeline,
    run: Mapping[str, Any],
    phase: TrainPhase,
    world: PipelineWorld,
    settings: JobSettings,
) -> dict[str, Any]:
    champion = next((v for v in world.versions if v.stage == "Production"), None)
    return build_training_job(
        pipeline,
        run=run["id"],
        snapshot=run["snapshot"],
        phase=phase,
        featureset=world.featureset or {},
        champion=(champion.artifact_uri, champion.digest)
        if champion is not None and champion.artifact_uri
        else None,
        settings=settings,
    )


def _phases(pipeline: TrainingPipeline) -> list[TrainPhase]:
    search = pipeline.spec.search
    parallel = search.parallelism > 1 and search.strategy in ("grid", "random", "bayesian")
    return ["trials", "final"] if parallel else ["all"]


def _finish(run: dict[str, Any], phase: str, now: datetime, message: str) -> None:
    run.update(phase=phase, completionTime=rfc3339(now), message=message[:2000])


def _register(
    pipeline: TrainingPipeline,
    run: dict[str, Any],
    result: RunResult,
    world: PipelineWorld,
    plan: PipelinePlan,
) -> None:
    reasons = "; ".join(result.rejection_reasons)
    existing = next((v for v in world.versions if v.run == run["id"]), None)
    if existing is not None:
        name = existing.name
    else:
        taken = [v.version for v in (*world.versions, *world.unregistered)]
        taken += [int(body["spec"]["version"]) for body in plan.create_versions]
        # Numbers this pipeline registered before count too, even if their versions were
        # deleted since: a number is never given twice.
        taken += _numbers_in_status(pipeline)
        number = max(taken, default=0) + 1
        version = build_model_version(pipeline, run["id"], result, number)
        plan.create_versions.append(version)
        name = version["metadata"]["name"]
        stage = "Candidate" if result.passed else "Rejected"
        plan.outcome.events.append(
            Event(
                "Normal" if result.passed else "Warning",
                "VersionRegistered",
                f"Run {run['id']} registered {name} as {stage}"
                + ("" if result.passed else f": {reasons}"),
            )
        )
    score = result.score
    run.update(modelVersion=name, bestScore=score)
    if result.passed:
        _finish(
            run,
            "Succeeded",
            world.now,
            f"{result.metric} {score:.4g} on the holdout; registered {name}"
            if score is not None
            else f"Registered {name}",
        )
    else:
        _finish(run, "Rejected", world.now, f"Gates failed: {reasons}")


def _numbers_in_status(pipeline: TrainingPipeline) -> list[int]:
    model = pipeline.spec.model.name
    names = [pipeline.status.latest_version, *(run.model_version for run in pipeline.status.runs)]
    prefix = f"{model}-v"
    return [
        int(name[len(prefix) :])
        for name in names
        if name and name.startswith(prefix) and name[len(prefix) :].isdigit()
    ]


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


def _follow_pin(pipeline: TrainingPipeline, pin: Pin, plan: PipelinePlan) -> None:
    """The pinned version becomes Production (again, after a hand promotion); a better
    Candidate is reported, once, for a person to pin."""
    fields, events = plan.outcome.fields, plan.outcome.events
    fields["pinnedVersion"] = pin.version.name if pin.version is not None else None
    fields["betterCandidate"] = pin.better
    number = pipeline.spec.promotion.version
    if pin.version is not None and pin.promote:
        plan.promote.append(pin.version.name)
        events.append(
            Event(
                "Normal",
                "Pinned",
                f"{pin.version.name} promoted to Production (spec.promotion.version {number})",
            )
        )
    before = pipeline.status.better_candidate
    if pin.better is not None and (before is None or before.name != pin.better["name"]):
        events.append(Event("Normal", "BetterCandidateWaiting", pin.better["message"]))


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
