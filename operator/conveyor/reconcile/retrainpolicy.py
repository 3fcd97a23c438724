"""Reconcile a RetrainPolicy: check it and its TrainingPipeline; triggers build on this."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import ValidationError

from ..api.v1alpha1 import RetrainPolicy
from ..resources.conditions import ConditionUpdate, rfc3339
from .common import Invalid, Outcome, Plan, describe_validation_error, invalid_spec

__all__ = ["PolicyWorld", "next_schedule_time", "parse_retrainpolicy", "reconcile_retrainpolicy"]


@dataclass(frozen=True)
class PolicyWorld:
    now: datetime
    pipeline: Mapping[str, Any] | None = None
    """The referenced TrainingPipeline, or None when it does not exist."""


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


def _matcher_problems(policy: RetrainPolicy) -> list[str]:
    """Every =~ and !~ value compiles, anchored as Alertmanager anchors it (^(?:value)$)."""
    alert = policy.spec.triggers.alert
    if alert is None:
        return []
    problems = []
    for index, matcher in enumerate(alert.matchers):
        if matcher.operator not in ("=~", "!~"):
            continue
        try:
            re.compile(f"^(?:{matcher.value})$")
        except re.error as error:
            problems.append(
                f"spec.triggers.alert.matchers[{index}].value: {matcher.value!r} is not a "
                f"regular expression: {error}"
            )
    return problems


def parse_retrainpolicy(body: Mapping[str, Any]) -> RetrainPolicy | Invalid:
    """The policy, or why it cannot trigger anything."""
    try:
        policy = RetrainPolicy.from_body(body)
    except ValidationError as error:
        return Invalid(invalid_spec(describe_validation_error(error)))
    triggers = policy.spec.triggers
    if not any((triggers.schedule, triggers.performance, triggers.drift, triggers.alert)):
        return Invalid(
            invalid_spec("spec.triggers: set at least one of schedule, performance, drift or alert")
        )
    problems = _schedule_problems(policy) + _matcher_problems(policy)
    if problems:
        return Invalid(invalid_spec("; ".join(problems)))
    return policy


def reconcile_retrainpolicy(policy: RetrainPolicy, world: PolicyWorld) -> Plan:
    if world.pipeline is None:
        return Plan(
            invalid_spec(
                f'TrainingPipeline "{policy.spec.pipeline}" not found in namespace '
                f'"{policy.namespace}": create it, or fix spec.pipeline',
                reason="PipelineNotFound",
            )
        )
    triggers = policy.spec.triggers
    fields: dict[str, Any] = {}
    if triggers.schedule is not None:
        upcoming = next_schedule_time(
            triggers.schedule.cron, triggers.schedule.time_zone, world.now
        )
        fields["nextScheduledTime"] = rfc3339(upcoming)
    declared = [
        name for name in ("schedule", "performance", "drift", "alert") if getattr(triggers, name)
    ]
    # Ready says the policy was checked; it must not promise runs this operator does not start.
    return Plan(
        Outcome(
            conditions=[
                ConditionUpdate(
                    "Ready",
                    "True",
                    "Accepted",
                    f'The policy for "{policy.spec.pipeline}" is valid ({", ".join(declared)}), '
                    "but this version of Conveyor does not evaluate retrain triggers yet: no run "
                    f"starts from it; use `conveyor run {policy.spec.pipeline}`",
                )
            ],
            fields=fields,
        )
    )
