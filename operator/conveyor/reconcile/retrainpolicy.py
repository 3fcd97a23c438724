"""Reconcile a RetrainPolicy: check it and its TrainingPipeline; triggers build on this."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import ValidationError

from ..api.v1alpha1 import RetrainPolicy
from ..resources.conditions import ConditionUpdate, rfc3339
from .common import Outcome, describe_validation_error, invalid_spec

__all__ = ["next_schedule_time", "reconcile_retrainpolicy"]


def next_schedule_time(cron: str, time_zone: str, after: datetime) -> datetime:
    """The first fire time of the schedule strictly after `after`."""
    start = after.astimezone(ZoneInfo(time_zone))
    fire: datetime = croniter(cron, start).get_next(datetime)
    return fire


def _schedule_problems(policy: RetrainPolicy) -> list[str]:
    schedule = policy.spec.triggers.schedule
    if schedule is None:
        return []
    problems = []
    if not croniter.is_valid(schedule.cron):
        problems.append(
            f"spec.triggers.schedule.cron: {schedule.cron!r} is not a five-field cron expression"
        )
    try:
        ZoneInfo(schedule.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(
            f"spec.triggers.schedule.timeZone: {schedule.time_zone!r} is not an IANA time zone"
        )
    return problems


def reconcile_retrainpolicy(
    body: Mapping[str, Any], pipeline_body: Mapping[str, Any] | None, *, now: datetime
) -> Outcome:
    """`pipeline_body` is the referenced TrainingPipeline, or None when it does not exist."""
    try:
        policy = RetrainPolicy.from_body(body)
    except ValidationError as error:
        return invalid_spec(describe_validation_error(error))
    triggers = policy.spec.triggers
    if not any((triggers.schedule, triggers.performance, triggers.drift, triggers.alert)):
        return invalid_spec(
            "spec.triggers: set at least one of schedule, performance, drift or alert"
        )
    problems = _schedule_problems(policy)
    if problems:
        return invalid_spec("; ".join(problems))
    if pipeline_body is None:
        return invalid_spec(
            f'TrainingPipeline "{policy.spec.pipeline}" not found in namespace '
            f'"{policy.namespace}": create it, or fix spec.pipeline',
            reason="PipelineNotFound",
        )
    fields: dict[str, Any] = {}
    if triggers.schedule is not None:
        upcoming = next_schedule_time(triggers.schedule.cron, triggers.schedule.time_zone, now)
        fields["nextScheduledTime"] = rfc3339(upcoming)
    active = [
        name for name in ("schedule", "performance", "drift", "alert") if getattr(triggers, name)
    ]
    return Outcome(
        conditions=[
            ConditionUpdate(
                "Ready",
                "True",
                "SpecValid",
                f'Retrains "{policy.spec.pipeline}" on {", ".join(active)}',
            )
        ],
        fields=fields,
    )
