"""Reconcile a ModelVersion: report the stage in effect, keep one Production version per model.

`spec.stage` is the desired stage (a person, or the pipeline's promotion policy); `status.stage`
is what is in effect. Promoting a version archives the model's other Production version; a
version that failed its gates is never put in effect as Production.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from ..api.v1alpha1 import ModelVersion
from ..resources.conditions import ConditionUpdate, rfc3339
from .common import Event, Outcome, describe_validation_error, invalid_spec

__all__ = ["STAGE_REASON", "Sibling", "StagePlan", "reconcile_modelversion"]

STAGE_REASON = "conveyor.dev/stage-reason"


@dataclass(frozen=True)
class Sibling:
    """Another version of the same model."""

    name: str
    stage: str


@dataclass
class StagePlan:
    outcome: Outcome
    archive: list[str] = field(default_factory=list)


def reconcile_modelversion(
    body: Mapping[str, Any], siblings: Sequence[Sibling] = (), *, now: datetime | None = None
) -> StagePlan:
    try:
        version = ModelVersion.from_body(body)
    except ValidationError as error:
        return StagePlan(invalid_spec(describe_validation_error(error)))
    expected = f"{version.spec.model}-v{version.spec.version}"
    if version.name != expected:
        return StagePlan(
            invalid_spec(
                f"metadata.name must be {expected!r} (<spec.model>-v<spec.version>), "
                f"not {version.name!r}"
            )
        )
    desired, current = version.spec.stage, version.status.stage
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
                ]
            )
        )
    plan = StagePlan(Outcome(conditions=[_ready(version)]))
    if desired != current:
        when = now or datetime.now().astimezone()
        reason = _stage_reason(version, desired)
        history = [entry.to_wire() for entry in version.status.stage_history]
        history.append({"stage": desired, "time": rfc3339(when), "reason": reason})
        plan.outcome.fields.update(stage=desired, stageHistory=history)
        plan.outcome.events.append(
            Event("Normal", f"Stage{desired}", f"{version.name} is now {desired}: {reason}")
        )
    if desired == "Production" and current != "Production":
        plan.archive = [
            s.name for s in siblings if s.stage == "Production" and s.name != version.name
        ]
    return plan


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
