"""Status conditions as the Kubernetes API conventions describe them.

`lastTransitionTime` changes only when a condition's status changes, so re-running a reconcile
with the same outcome yields the same status (and no patch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = ["ConditionUpdate", "find_condition", "merge_conditions", "rfc3339"]

Status = Literal["True", "False", "Unknown"]


@dataclass(frozen=True)
class ConditionUpdate:
    """The wanted state of one condition."""

    type: str
    status: Status
    reason: str
    message: str = ""


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def find_condition(conditions: Sequence[Mapping[str, Any]], type_: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def merge_conditions(
    current: Sequence[dict[str, Any]],
    updates: Sequence[ConditionUpdate],
    *,
    generation: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """Apply the updates to the current conditions; untouched conditions are kept as they are."""
    merged = [dict(c) for c in current]
    for update in updates:
        existing = find_condition(merged, update.type)
        changed = existing is None or existing.get("status") != update.status
        condition = {
            "type": update.type,
            "status": update.status,
            "reason": update.reason,
            "message": update.message,
            "lastTransitionTime": (
                rfc3339(now)
                if changed or existing is None
                else existing.get("lastTransitionTime", rfc3339(now))
            ),
            "observedGeneration": generation,
        }
        if existing is None:
            merged.append(condition)
        else:
            merged[merged.index(dict(existing))] = condition
    return merged
