"""Status patches are minimal and stable; Events mark the moments that matter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from conveyor.reconcile import Outcome, status_patch
from conveyor.reconcile.common import Event
from conveyor.resources.conditions import ConditionUpdate

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _outcome(status: str = "True", reason: str = "SpecValid") -> Outcome:
    return Outcome(conditions=[ConditionUpdate("Ready", status, reason, "m")])  # type: ignore[arg-type]


def test_first_reconcile_writes_conditions_and_posts_an_event() -> None:
    patch, events = status_patch({}, _outcome(), generation=3, now=T0)
    assert patch["observedGeneration"] == 3
    (ready,) = patch["conditions"]
    assert ready == {
        "type": "Ready",
        "status": "True",
        "reason": "SpecValid",
        "message": "m",
        "lastTransitionTime": "2026-11-27T12:00:00Z",
        "observedGeneration": 3,
    }
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
