"""What every reconcile returns — a Plan: the desired status, the Events, and the writes in the
order they must happen — and how an outcome becomes a status patch.

A reconcile never writes: it returns actions, and the handler's driver carries them out in
order. The order is part of the decision (a training run's version is registered before the
status that records the run, and that before the Job named after the run), so it is decided
here, where unit tests see it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from ..resources.conditions import ConditionUpdate, find_condition, merge_conditions
from ..resources.kinds import Resource

__all__ = [
    "Action",
    "Create",
    "Delete",
    "DeleteFiles",
    "Event",
    "GrantWorkloadAccess",
    "Invalid",
    "Outcome",
    "Patch",
    "Plan",
    "SetFinalizer",
    "WriteStatus",
    "describe_validation_error",
    "invalid_spec",
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
    announced: bool = False
    """`events` announce this moment themselves (a Job started, a snapshot published, a Job
    failed): a Ready transition adds no second Event saying the same."""
    stalled: bool = False
    """It cannot proceed without a change by a person (an invalid spec, a version its gates
    rejected, a definition the data keeps failing): kstatus's Stalled, which Flux and Argo CD
    report as failed instead of waiting on it."""

    @property
    def ready(self) -> bool:
        ready = next((c for c in self.conditions if c.type == "Ready"), None)
        return ready is not None and ready.status == "True"


# Actions: the writes of a plan, in the object's namespace ---------------------------------------


@dataclass(frozen=True)
class Create:
    """Create a child. `on_conflict` says what an existing object of that name means: "keep" —
    a repeated reconcile made it, success; "replan" — the name was taken meanwhile (a version
    number), so plan again after a moment."""

    resource: Resource
    body: Mapping[str, Any]
    on_conflict: Literal["keep", "replan"] = "keep"


@dataclass(frozen=True)
class Patch:
    """Merge-patch an object the operator owns (a ModelVersion's stage); gone is not an error."""

    resource: Resource
    name: str
    body: Mapping[str, Any]


@dataclass(frozen=True)
class Delete:
    """Delete a child in the background; already gone is not an error."""

    resource: Resource
    name: str


@dataclass(frozen=True)
class DeleteFiles:
    """Delete every object under `prefix` of `bucket` (a deleted version's run files)."""

    bucket: str
    prefix: str


@dataclass(frozen=True)
class SetFinalizer:
    """Put the operator's finalizer on the reconciled object (`present`), so that its
    deletion waits for the operator; or remove it from an object being deleted, so that the
    deletion completes."""

    present: bool


@dataclass(frozen=True)
class GrantWorkloadAccess:
    """Give the namespace what workloads need — the S3 credentials Secret (a copy of the
    operator's, kept equal) and the token-less workload ServiceAccount — before they start."""


@dataclass(frozen=True)
class WriteStatus:
    """Write the outcome here: the status that changed, then the Events."""


Action = Create | Patch | Delete | DeleteFiles | GrantWorkloadAccess | SetFinalizer | WriteStatus


@dataclass
class Plan:
    """A reconcile's decision: the outcome, and `actions()` in the order they must happen
    (the status is written last unless a WriteStatus says where)."""

    outcome: Outcome

    def actions(self) -> list[Action]:
        return [WriteStatus()]


@dataclass(frozen=True)
class Invalid:
    """A spec that cannot be acted on: the outcome says what to fix; nothing else happens."""

    outcome: Outcome

    def plan(self) -> Plan:
        return Plan(self.outcome)


def invalid_spec(message: str, reason: str = "InvalidSpec", *, stalled: bool = True) -> Outcome:
    """Not ready for a reason the spec states. `stalled=False` when the fix may come by itself
    (an object it names that Git has not applied yet)."""
    return Outcome(conditions=[ConditionUpdate("Ready", "False", reason, message)], stalled=stalled)


def describe_validation_error(error: ValidationError) -> str:
    """`spec.split.testSize: Input should be less than 1` — one line per problem."""
    lines = []
    for problem in error.errors():
        path = ".".join(str(part) for part in problem["loc"])
        lines.append(f"{path}: {problem['msg']}")
    return "; ".join(lines)


# Status ----------------------------------------------------------------------------------------


def status_patch(
    current: Mapping[str, Any], outcome: Outcome, *, generation: int, now: datetime
) -> tuple[dict[str, Any], list[Event]]:
    """The status to write (empty when nothing changes) and the Events to post."""
    old_conditions = list(current.get("conditions") or [])
    updates = outcome.conditions + _kstatus_conditions(old_conditions, outcome)
    conditions = merge_conditions(old_conditions, updates, generation=generation, now=now)
    desired = {"observedGeneration": generation, "conditions": conditions, **outcome.fields}
    patch = {key: value for key, value in desired.items() if current.get(key) != _present(value)}
    transitions = [] if outcome.announced else _transition_events(old_conditions, outcome)
    return patch, transitions + outcome.events


def _kstatus_conditions(
    old: Sequence[Mapping[str, Any]], outcome: Outcome
) -> list[ConditionUpdate]:
    """Reconciling and Stalled as kstatus defines them (what `kubectl wait`, Flux and Argo CD
    read), derived from the outcome so that every kind says them the same way: Reconciling
    while work is in flight or the object waits on something that comes by itself, Stalled
    when only a person's change lets it proceed."""
    wanted = {update.type: update for update in outcome.conditions}
    for type_ in ("Ready", "Progressing"):
        if type_ not in wanted and (kept := find_condition(old, type_)) is not None:
            wanted[type_] = ConditionUpdate(
                type_,
                kept.get("status", "Unknown"),
                kept.get("reason", ""),
                kept.get("message", ""),
            )
    ready, progressing = wanted.get("Ready"), wanted.get("Progressing")
    if ready is None:
        return []
    if outcome.stalled:
        why = ready if ready.status != "True" else (wanted.get("Degraded") or ready)
        return [
            ConditionUpdate("Reconciling", "False", "Stalled", "Waiting for a change to proceed"),
            ConditionUpdate("Stalled", "True", why.reason, why.message),
        ]
    not_stalled = ConditionUpdate("Stalled", "False", "NotStalled", "")
    if progressing is not None and progressing.status == "True":
        busy = progressing
    elif ready.status != "True":
        busy = ready
    else:
        return [ConditionUpdate("Reconciling", "False", "Reconciled", ""), not_stalled]
    return [ConditionUpdate("Reconciling", "True", busy.reason, busy.message), not_stalled]


def _present(value: Any) -> Any:
    """`value` as the server stores it after a merge patch: keys set to None are absent."""
    if isinstance(value, Mapping):
        return {k: _present(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_present(item) for item in value]
    return value


def _transition_events(old: Sequence[Mapping[str, Any]], outcome: Outcome) -> list[Event]:
    """An Event for each Ready change of status or reason: the moments a person cares about.
    Not ready while work is in progress (Progressing=True) is Normal; not ready otherwise is a
    Warning."""
    progressing = any(c.type == "Progressing" and c.status == "True" for c in outcome.conditions)
    events = []
    for update in outcome.conditions:
        if update.type != "Ready":
            continue
        before = find_condition(old, update.type) or {}
        if (before.get("status"), before.get("reason")) == (update.status, update.reason):
            continue
        fine = update.status == "True" or progressing
        kind: Literal["Normal", "Warning"] = "Normal" if fine else "Warning"
        events.append(Event(kind, update.reason, update.message))
    return events
