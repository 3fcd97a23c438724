"""What every reconcile returns, and how it becomes a status patch and Events."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from ..resources.conditions import ConditionUpdate, find_condition, merge_conditions

__all__ = [
    "Event",
    "Outcome",
    "describe_validation_error",
    "invalid_spec",
    "parse_job_result",
    "status_patch",
]


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post about the reconciled object."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass
class Outcome:
    """The desired status of one object and what to tell people about it."""

    conditions: list[ConditionUpdate]
    fields: dict[str, Any] = field(default_factory=dict)
    """Other status fields (camelCase), replacing the current values."""
    events: list[Event] = field(default_factory=list)
    """Events to post whatever the conditions did (condition transitions add their own)."""

    @property
    def ready(self) -> bool:
        ready = next((c for c in self.conditions if c.type == "Ready"), None)
        return ready is not None and ready.status == "True"


def status_patch(
    current: Mapping[str, Any], outcome: Outcome, *, generation: int, now: datetime
) -> tuple[dict[str, Any], list[Event]]:
    """The status to write (empty when nothing changes) and the Events to post."""
    old_conditions = list(current.get("conditions") or [])
    conditions = merge_conditions(
        old_conditions, outcome.conditions, generation=generation, now=now
    )
    desired = {"observedGeneration": generation, "conditions": conditions, **outcome.fields}
    patch = {key: value for key, value in desired.items() if current.get(key) != value}
    return patch, _transition_events(old_conditions, outcome.conditions) + outcome.events


def _transition_events(
    old: Sequence[Mapping[str, Any]], updates: Sequence[ConditionUpdate]
) -> list[Event]:
    """An Event for each Ready change of status or reason: the moments a person cares about."""
    events = []
    for update in updates:
        if update.type != "Ready":
            continue
        before = find_condition(old, update.type) or {}
        if (before.get("status"), before.get("reason")) == (update.status, update.reason):
            continue
        kind: Literal["Normal", "Warning"] = "Normal" if update.status == "True" else "Warning"
        events.append(Event(kind, update.reason, update.message))
    return events


def describe_validation_error(error: ValidationError) -> str:
    """`spec.split.testSize: Input should be less than 1` — one line per problem."""
    lines = []
    for problem in error.errors():
        path = ".".join(str(part) for part in problem["loc"])
        lines.append(f"{path}: {problem['msg']}")
    return "; ".join(lines)


def invalid_spec(message: str, reason: str = "InvalidSpec") -> Outcome:
    return Outcome(
        conditions=[ConditionUpdate("Ready", "False", reason, message)],
    )


def parse_job_result(text: str) -> tuple[str, str]:
    """(reason, message) from the last JSON line a materialize pod printed."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                result = json.loads(line)
            except ValueError:
                continue
            if isinstance(result, dict) and result.get("ok") is False:
                return str(result.get("reason", "Failed")), str(result.get("message", ""))
    tail = text.strip().splitlines()[-1] if text.strip() else "no output"
    return "JobFailed", tail[-500:]
