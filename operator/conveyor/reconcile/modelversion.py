"""Reconcile a ModelVersion: report the stage in effect, keep one Production version per model,
and decide what deleting a version means.

`spec.stage` is the desired stage (a person, or the pipeline's promotion policy); `status.stage`
is what is in effect. Promoting a version archives the model's other Production version; a
version that failed its gates is never put in effect as Production. A version in Production
cannot be deleted; deleting one with `spec.deleteArtifacts` removes its run's files — only
those, under its run's own path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from ..api.v1alpha1 import ModelVersion
from ..api.v1alpha1.trainingpipeline import ServingState
from ..contracts.labels import FINALIZER, STAGE_REASON
from ..contracts.layouts import RunLayout
from ..resources.conditions import ConditionUpdate, rfc3339
from ..resources.kinds import MODEL_VERSIONS
from .common import (
    Action,
    DeleteFiles,
    Event,
    Invalid,
    Outcome,
    Patch,
    Plan,
    SetFinalizer,
    WriteStatus,
    describe_validation_error,
    invalid_spec,
)
from .registry import RunRecord, registration_problem

__all__ = [
    "DeletionPlan",
    "Sibling",
    "StagePlan",
    "VersionWorld",
    "parse_modelversion",
    "plan_deletion",
    "reconcile_modelversion",
]


@dataclass(frozen=True)
class Sibling:
    """Another version of the same model."""

    name: str
    stage: str


@dataclass(frozen=True)
class VersionWorld:
    now: datetime
    record: RunRecord
    """What the version's run recorded: whether the operator registered this version."""
    bucket: str
    """The operator's bucket: runs write there; a deletion removes files only there."""
    siblings: Sequence[Sibling] = ()
    """The other versions of the same model."""
    serving: ServingState | None = None
    """What the model's pipeline serves (its status.serving); None: nothing."""


@dataclass
class StagePlan(Plan):
    archive: list[str] = field(default_factory=list)
    """Versions to archive: the Production version this one replaces."""
    replaced_by: str = ""
    delete_files: DeleteFiles | None = None
    """A deleted version's run files, removed before the version goes."""
    finalizer: bool | None = None
    """Put the operator's finalizer on (True: a registered version lacks it) or take it off
    (False: the version is being deleted and may go now)."""

    def actions(self) -> list[Action]:
        """Archive the replaced version, write the status; for a deletion that may complete,
        its files first, then the finalizer."""
        reason = f"Archived: replaced by {self.replaced_by}"
        archive = {
            "metadata": {"annotations": {STAGE_REASON: reason}},
            "spec": {"stage": "Archived"},
        }
        return [
            *(Patch(MODEL_VERSIONS, name, archive) for name in self.archive),
            WriteStatus(),
            *([self.delete_files] if self.delete_files else []),
            *([SetFinalizer(self.finalizer)] if self.finalizer is not None else []),
        ]


def parse_modelversion(body: Mapping[str, Any]) -> ModelVersion | Invalid:
    """The version, or why it is not a registry entry."""
    try:
        version = ModelVersion.from_body(body)
    except ValidationError as error:
        return Invalid(invalid_spec(describe_validation_error(error)))
    expected = f"{version.spec.model}-v{version.spec.version}"
    if version.name != expected:
        return Invalid(
            invalid_spec(
                f"metadata.name must be {expected!r} (<spec.model>-v<spec.version>), "
                f"not {version.name!r}"
            )
        )
    return version


def reconcile_modelversion(version: ModelVersion, world: VersionWorld) -> StagePlan:
    problem = registration_problem(version.body, world.record)
    plan = _not_registered(version, problem) if problem else _stages(version, world)
    if version.metadata.get("deletionTimestamp"):
        _deletion(version, world, problem, plan)
    elif problem is None and FINALIZER not in (version.metadata.get("finalizers") or []):
        plan.finalizer = True  # versions are born with it; put back one taken off
    return plan


def _stages(version: ModelVersion, world: VersionWorld) -> StagePlan:
    """The stage in effect — Production only while the version serves, the desired stage
    otherwise — unless gates forbid it; one Production; what serving says of it."""
    desired, current = version.spec.stage, _in_effect(version, world.serving)
    failed_gates = [gate for gate in version.spec.gates if not gate.passed]
    if desired == "Production" and failed_gates:
        reasons = "; ".join(f"{gate.name}: {gate.message}" for gate in failed_gates)
        return StagePlan(
            Outcome(
                conditions=[
                    ConditionUpdate(
                        "Ready",
                        "False",
                        "RejectedByGates",
                        f"{version.name} failed its gates and is never served ({reasons}); "
                        "promote a version that passed them",
                    )
                ],
                stalled=True,
            )
        )
    plan = StagePlan(Outcome(conditions=[_ready(version)]), replaced_by=version.name)
    if current != version.status.stage:
        reason = _stage_reason(version, current)
        history = [entry.to_wire() for entry in version.status.stage_history]
        history.append({"stage": current, "time": rfc3339(world.now), "reason": reason})
        plan.outcome.fields.update(stage=current, stageHistory=history)
        plan.outcome.events.append(
            Event("Normal", f"Stage{current}", f"{version.name} is now {current}: {reason}")
        )
    _serving(version, world.serving, plan.outcome)
    if desired == "Production" and version.status.stage != "Production":
        plan.archive = [
            s.name for s in world.siblings if s.stage == "Production" and s.name != version.name
        ]
    return plan


def _in_effect(version: ModelVersion, serving: ServingState | None) -> str:
    """Production while the pipeline serves this version (even one archived since: it answers
    until its successor is rolled out); the desired stage otherwise, except that a version
    waiting to serve keeps the stage it had."""
    if serving is not None and serving.version == version.name:
        return "Production"
    if version.spec.stage != "Production":
        return version.spec.stage
    before = version.status.stage
    return before if before not in (None, "Production") else "Candidate"


def _serving(version: ModelVersion, serving: ServingState | None, outcome: Outcome) -> None:
    """The Serving condition and status.serving: serving, being rolled out, failed to."""
    name = version.name
    state = serving or ServingState()
    failure = next((f for f in state.failures if f.version == name), None)
    served = state.version == name
    update: ConditionUpdate | None = None
    if served:
        update = ConditionUpdate(
            "Serving",
            "True",
            "Serving",
            f"{name} serves on {state.ready_replicas}/{state.replicas} ready pods",
        )
    elif state.rolling_out == name:
        meanwhile = f"{state.version} answers meanwhile" if state.version else "not yet served"
        update = ConditionUpdate("Serving", "False", "RollingOut", f"Rolling out; {meanwhile}")
    elif failure is not None and version.spec.stage == "Production":
        instead = f"; {state.version} serves instead" if state.version else ""
        update = ConditionUpdate(
            "Serving",
            "False",
            failure.reason,
            f"{name} cannot serve: {failure.message}{instead}. Fix it and set spec.stage anew "
            "to retry, or promote another version",
        )
    elif any(c.type == "Serving" for c in version.status.conditions):
        update = ConditionUpdate("Serving", "False", "NotServing", f"{name} is not served")
    if update is not None:
        outcome.conditions.append(update)
    outcome.fields["serving"] = (
        {
            "deployment": state.deployment,
            "service": state.deployment,
            "url": state.url,
            "replicas": state.replicas,
            "readyReplicas": state.ready_replicas,
        }
        if served
        else None
    )


def _not_registered(version: ModelVersion, problem: str) -> StagePlan:
    """Never promoted, served or a champion: no stage takes effect, no sibling is archived."""
    pipeline = version.spec.lineage.pipeline
    plan = StagePlan(
        Outcome(
            conditions=[
                ConditionUpdate(
                    "Ready",
                    "False",
                    "NotRegistered",
                    f"{version.name} was not registered by Conveyor: {problem}. It is never "
                    "promoted, served or used as a champion; delete it, and train versions "
                    f"with `conveyor run {pipeline}`",
                )
            ],
            stalled=True,
        )
    )
    if version.status.stage is not None:
        plan.outcome.fields["stage"] = None  # nothing of it is in effect
    return plan


def _deletion(
    version: ModelVersion, world: VersionWorld, problem: str | None, plan: StagePlan
) -> None:
    """A version being deleted waits while it is Production (the admission policy refuses
    that deletion up front where it is installed; this is the backstop), then goes — with its
    run's files when it asked, and only those."""
    in_effect = plan.outcome.fields.get("stage", version.status.stage)
    decision = plan_deletion(version, world.bucket, problem, in_effect=in_effect)
    was_blocked = any(c.type == "DeletionBlocked" for c in version.status.conditions)
    if decision.blocked:
        plan.outcome.conditions.append(
            ConditionUpdate("DeletionBlocked", "True", "ProductionVersion", decision.blocked)
        )
        if not was_blocked:
            plan.outcome.events.append(Event("Warning", "DeletionBlocked", decision.blocked))
        return
    if FINALIZER not in (version.metadata.get("finalizers") or []):
        return
    if decision.warning:
        plan.outcome.events.append(Event("Warning", "ArtifactsKept", decision.warning))
    if decision.delete_prefix:
        plan.delete_files = DeleteFiles(decision.bucket, decision.delete_prefix)
    if was_blocked:
        plan.outcome.events.append(
            Event(
                "Normal",
                "DeletionResumed",
                f"{version.name} is no longer the Production version: the deletion requested "
                f"at {version.metadata['deletionTimestamp']} completes now",
            )
        )
    plan.finalizer = False


@dataclass(frozen=True)
class DeletionPlan:
    """What deleting a version means now: wait (`blocked` says why), or go ahead, removing
    the objects under `delete_prefix` of `bucket` first when there are any to remove."""

    blocked: str = ""
    bucket: str = ""
    delete_prefix: str = ""
    warning: str = ""
    """Said as an Event when the artifacts are kept against the request (outside the run)."""


def plan_deletion(
    version: ModelVersion,
    bucket: str,
    not_registered: str | None = None,
    *,
    in_effect: str | None,
) -> DeletionPlan:
    """`bucket` is the operator's: runs write there, and nothing outside a run's path is
    deleted, whatever the version's artifact URI names. A version the operator did not
    register (`not_registered` says why) deletes nothing: the run it names is another's.
    `in_effect` is the stage in effect once this reconcile is written."""
    if in_effect == "Production":
        return DeletionPlan(
            blocked=(
                f"{version.name} is the Production version of model {version.spec.model}: "
                "promote another version (or set spec.stage to Archived) before deleting it"
            )
        )
    if not version.spec.delete_artifacts:
        return DeletionPlan()
    if not_registered is not None:
        return DeletionPlan(
            warning=(
                f"Kept the files of run {version.spec.lineage.run}: {version.name} was not "
                f"registered by Conveyor ({not_registered}), so it does not own them"
            )
        )
    layout = RunLayout(bucket, version.namespace, version.spec.model, version.spec.lineage.run)
    if not layout.holds(version.spec.artifact.uri):
        return DeletionPlan(
            warning=(
                f"Kept {version.spec.artifact.uri}: it is not under the path of run "
                f"{version.spec.lineage.run} ({layout.uri(layout.prefix)}), so Conveyor did "
                "not write it and does not delete it"
            )
        )
    return DeletionPlan(bucket=bucket, delete_prefix=layout.prefix)


def _stage_reason(version: ModelVersion, stage: str) -> str:
    """Why the stage changed: the "<stage>: <reason>" annotation set with the change (by the
    CLI or the operator), when it names this stage; otherwise a plain default."""
    note = (version.metadata.get("annotations") or {}).get(STAGE_REASON, "")
    noted_stage, _, reason = note.partition(": ")
    if noted_stage == stage and reason:
        return reason
    return {
        "Production": "promoted",
        "Archived": "archived",
        "Rejected": "failed its gates",
        "Candidate": "registered",
    }[stage]


def _ready(version: ModelVersion) -> ConditionUpdate:
    metric = version.spec.metric
    score = version.spec.metrics.get(metric)
    shown = f"{metric} {score:.4g}" if score is not None else metric
    return ConditionUpdate(
        "Ready", "True", "Registered", f"{version.name} ({shown}) is {version.spec.stage}"
    )
