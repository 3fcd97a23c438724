"""Status patches are minimal and stable; Events mark the moments that matter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from conveyor.reconcile import Outcome, status_patch
from conveyor.reconcile.common import Event, invalid_spec
from conveyor.resources.conditions import ConditionUpdate

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _outcome(status: str = "True", reason: str = "SpecValid") -> Outcome:
    return Outcome(conditions=[ConditionUpdate("Ready", status, reason, "m")])  # type: ignore[arg-type]


def test_first_reconcile_writes_conditions_and_posts_an_event() -> None:
    patch, events = status_patch({}, _outcome(), generation=3, now=T0)
    assert patch["observedGeneration"] == 3
    ready, reconciling, stalled = patch["conditions"]
    assert ready == {
        "type": "Ready",
        "status": "True",
        "reason": "SpecValid",
        "message": "m",
        "lastTransitionTime": "2026-11-27T12:00:00Z",
        "observedGeneration": 3,
    }
    assert (reconciling["type"], reconciling["status"]) == ("Reconciling", "False")
    assert (stalled["type"], stalled["status"]) == ("Stalled", "False")
    assert [(e.type, e.reason) for e in events] == [("Normal", "SpecValid")]


def test_same_outcome_again_is_a_no_op() -> None:
    first, _ = status_patch({}, _outcome(), generation=1, now=T0)
    again, events = status_patch(first, _outcome(), generation=1, now=T0 + timedelta(hours=1))
    assert again == {} and events == []


def test_transition_time_moves_only_when_status_changes() -> None:
    first, _ = status_patch({}, _outcome(), generation=1, now=T0)
    later = T0 + timedelta(minutes=5)
    patch, events = status_patch(
        first, _outcome("False", "FeatureSetNotFound"), generation=1, now=later
    )
    assert patch["conditions"][0]["lastTransitionTime"] == "2026-11-27T12:05:00Z"
    assert [(e.type, e.reason) for e in events] == [("Warning", "FeatureSetNotFound")]
    # A new generation with the same status keeps the transition time.
    patch, _ = status_patch(first, _outcome(), generation=2, now=later)
    assert patch["conditions"][0]["lastTransitionTime"] == "2026-11-27T12:00:00Z"
    assert patch["observedGeneration"] == 2


def test_not_ready_while_in_progress_is_normal_not_a_warning() -> None:
    outcome = Outcome(
        conditions=[
            ConditionUpdate("Ready", "False", "Materializing", "Job x is materializing"),
            ConditionUpdate("Progressing", "True", "Materializing", "Job x is materializing"),
        ]
    )
    _, events = status_patch({}, outcome, generation=1, now=T0)
    assert [(e.type, e.reason) for e in events] == [("Normal", "Materializing")]
    outcome.conditions[1] = ConditionUpdate("Progressing", "False", "SourceNotFound", "")
    outcome.conditions[0] = ConditionUpdate("Ready", "False", "SourceNotFound", "upload data")
    _, events = status_patch({}, outcome, generation=1, now=T0)
    assert [(e.type, e.reason) for e in events] == [("Warning", "SourceNotFound")]


def test_an_outcome_that_announces_itself_gets_no_second_event() -> None:
    outcome = Outcome(
        conditions=[ConditionUpdate("Ready", "True", "SnapshotReady", "150 rows")],
        events=[Event("Normal", "Materialized", "Snapshot s1: 150 rows")],
        announced=True,
    )
    _, events = status_patch({}, outcome, generation=1, now=T0)
    assert [(e.type, e.reason) for e in events] == [("Normal", "Materialized")]


def test_a_key_set_to_none_is_absent_not_a_change() -> None:
    # A merge patch deletes what it sets to null; the next reconcile must not write it again.
    outcome = _outcome()
    outcome.fields["serving"] = {"version": "v2", "rollingOut": None}
    current = {
        "observedGeneration": 3,
        "conditions": status_patch({}, _outcome(), generation=3, now=T0)[0]["conditions"],
        "serving": {"version": "v2"},
    }
    patch, _ = status_patch(current, outcome, generation=3, now=T0)
    assert patch == {}
    outcome.fields["serving"] = {"version": "v2", "rollingOut": "v3"}
    patch, _ = status_patch(current, outcome, generation=3, now=T0)
    assert patch == {"serving": {"version": "v2", "rollingOut": "v3"}}


def _kstatus(patch: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in patch["conditions"]}


def test_work_in_flight_is_reconciling_not_stalled() -> None:
    outcome = Outcome(
        conditions=[
            ConditionUpdate("Ready", "False", "Materializing", "Job fs-1 runs"),
            ConditionUpdate("Progressing", "True", "Materializing", "Job fs-1 runs"),
        ]
    )
    patch, _ = status_patch({}, outcome, generation=2, now=T0)
    assert _kstatus(patch)["Reconciling"] == ("True", "Materializing")
    assert _kstatus(patch)["Stalled"] == ("False", "NotStalled")
    assert all(c["observedGeneration"] == 2 for c in patch["conditions"])


def test_ready_again_stops_reconciling() -> None:
    busy = Outcome(conditions=[ConditionUpdate("Ready", "False", "Waiting", "m")])
    first, _ = status_patch({}, busy, generation=1, now=T0)
    assert _kstatus(first)["Reconciling"] == ("True", "Waiting")
    done, _ = status_patch(first, _outcome(), generation=1, now=T0)
    assert _kstatus({"conditions": done["conditions"]})["Reconciling"] == ("False", "Reconciled")


def test_an_invalid_spec_is_stalled_with_its_reason() -> None:
    patch, _ = status_patch({}, invalid_spec("spec.x: bad"), generation=4, now=T0)
    kstatus = _kstatus(patch)
    assert kstatus["Stalled"] == ("True", "InvalidSpec")
    assert kstatus["Reconciling"] == ("False", "Stalled")
    stalled = next(c for c in patch["conditions"] if c["type"] == "Stalled")
    assert stalled["message"] == "spec.x: bad"


def test_a_missing_dependency_waits_instead_of_stalling() -> None:
    outcome = invalid_spec("FeatureSet x not found", reason="FeatureSetNotFound", stalled=False)
    kstatus = _kstatus(status_patch({}, outcome, generation=1, now=T0)[0])
    assert kstatus["Reconciling"] == ("True", "FeatureSetNotFound")
    assert kstatus["Stalled"] == ("False", "NotStalled")


def test_stalled_while_ready_names_what_degraded() -> None:
    """An older snapshot still serves, but the newest definition fails for good."""
    outcome = Outcome(
        conditions=[
            ConditionUpdate("Ready", "True", "SnapshotReady", "previous snapshot"),
            ConditionUpdate("Degraded", "True", "BadData", "column x is missing"),
        ],
        stalled=True,
    )
    stalled = next(
        c
        for c in status_patch({}, outcome, generation=1, now=T0)[0]["conditions"]
        if c["type"] == "Stalled"
    )
    assert (stalled["status"], stalled["reason"], stalled["message"]) == (
        "True",
        "BadData",
        "column x is missing",
    )
