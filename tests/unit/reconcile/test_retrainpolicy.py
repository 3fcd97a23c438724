"""RetrainPolicy checks and the next schedule time it reports."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from conveyor.reconcile import Invalid, Outcome, parse_retrainpolicy, reconcile_retrainpolicy
from conveyor.reconcile.retrainpolicy import PolicyWorld
from tests.conftest import EXAMPLES, load_yaml_documents

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # a Friday


def _load(example: str, name: str) -> dict[str, Any]:
    body = load_yaml_documents(EXAMPLES / example / name)[0]
    body["metadata"].update(namespace="default", generation=1)
    return body


def _outcome(body: dict[str, Any], pipeline: dict[str, Any] | None, *, now: datetime) -> Outcome:
    """Parse, then reconcile against `pipeline`: what the handler's driver does."""
    policy = parse_retrainpolicy(body)
    if isinstance(policy, Invalid):
        return policy.outcome
    return reconcile_retrainpolicy(policy, PolicyWorld(now=now, pipeline=pipeline)).outcome


def _ready(outcome: Any) -> Any:
    return next(c for c in outcome.conditions if c.type == "Ready")


def test_ready_and_next_monday_scheduled() -> None:
    policy = _load("iris", "retrainpolicy.yaml")
    outcome = _outcome(policy, _load("iris", "trainingpipeline.yaml"), now=NOW)
    assert _ready(outcome).status == "True"
    assert outcome.fields["nextScheduledTime"] == "2026-11-30T03:00:00Z"


def test_schedule_in_a_time_zone() -> None:
    policy = _load("diabetes", "retrainpolicy.yaml")  # 02:30 Europe/Berlin = 01:30 UTC in winter
    outcome = _outcome(policy, _load("diabetes", "trainingpipeline.yaml"), now=NOW)
    assert outcome.fields["nextScheduledTime"] == "2026-11-28T01:30:00Z"


def test_missing_pipeline() -> None:
    ready = _ready(_outcome(_load("iris", "retrainpolicy.yaml"), None, now=NOW))
    assert (ready.status, ready.reason) == ("False", "PipelineNotFound")
    assert "spec.pipeline" in ready.message


def test_no_trigger_and_bad_cron_and_zone() -> None:
    policy = _load("iris", "retrainpolicy.yaml")
    policy["spec"]["triggers"] = {}
    ready = _ready(_outcome(policy, {}, now=NOW))
    assert "spec.triggers: set at least one" in ready.message
    policy["spec"]["triggers"] = {"schedule": {"cron": "at noon ok", "timeZone": "Mars/Olympus"}}
    ready = _ready(_outcome(policy, {}, now=NOW))
    assert "spec.triggers.schedule.cron" in ready.message
    assert "spec.triggers.schedule.timeZone" in ready.message


def test_a_matcher_that_is_not_a_regular_expression_is_refused() -> None:
    policy = _load("iris", "retrainpolicy.yaml")
    policy["spec"]["triggers"]["alert"] = {
        "matchers": [
            {"label": "alertname", "operator": "=~", "value": "Iris.*"},
            {"label": "severity", "operator": "!~", "value": "(["},
            {"label": "team", "operator": "=", "value": "(["},  # a plain value: not a regex
        ]
    }
    ready = _ready(_outcome(policy, _load("iris", "trainingpipeline.yaml"), now=NOW))
    assert (ready.status, ready.reason) == ("False", "InvalidSpec")
    assert ready.message.startswith("spec.triggers.alert.matchers[1].value: '([' is not a regular")
    assert "matchers[2]" not in ready.message and "matchers[0]" not in ready.message


def test_ready_does_not_promise_retraining_that_does_not_happen() -> None:
    outcome = _outcome(
        _load("iris", "retrainpolicy.yaml"), _load("iris", "trainingpipeline.yaml"), now=NOW
    )
    ready = _ready(outcome)
    assert ready.reason == "Accepted"
    assert "does not evaluate retrain triggers yet" in ready.message
    assert "Retrains" not in ready.message
