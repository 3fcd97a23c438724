"""RetrainPolicy: each trigger alone, each guard, the pending request carried to the pipeline
exactly once — driven by an injected clock, never by waiting."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conveyor.contracts.labels import (
    ALERT_ANNOTATION_PREFIX,
    MATERIALIZE_REQUEST,
    POLICY_RUN_REQUEST,
    RETRAIN_REQUEST,
)
from conveyor.reconcile import Invalid, Outcome, parse_retrainpolicy, reconcile_retrainpolicy
from conveyor.reconcile.common import Patch
from conveyor.reconcile.retrainpolicy import PolicyPlan, PolicyWorld
from conveyor.resources.conditions import rfc3339
from tests.conftest import EXAMPLES, load_yaml_documents

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # a Friday


def _load(example: str, name: str) -> dict[str, Any]:
    body = load_yaml_documents(EXAMPLES / example / name)[0]
    body["metadata"].update(
        namespace="default", generation=1, creationTimestamp="2026-11-27T11:00:00Z"
    )
    return body


def _policy(**spec: Any) -> dict[str, Any]:
    """A policy with only the triggers given (no schedule unless asked)."""
    body = _load("iris", "retrainpolicy.yaml")
    body["spec"] = {"pipeline": "iris", "cooldownSeconds": 600, **spec}
    return body


def _pipeline(**status: Any) -> dict[str, Any]:
    body = _load("iris", "trainingpipeline.yaml")
    body["status"] = {"productionVersion": "iris-classifier-v1", **status}
    return body


def _production(live: dict[str, Any] | None, snapshot: str = "snap-a") -> dict[str, Any]:
    return {
        "metadata": {"name": "iris-classifier-v1", "namespace": "default"},
        "spec": {"lineage": {"snapshot": snapshot}},
        "status": {"liveMetrics": live} if live else {},
    }


def _featureset(latest: str = "snap-b", rows: int = 450, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "iris", "namespace": "default"},
        "status": {
            "latestSnapshot": {"id": latest, "rows": rows},
            "snapshots": [{"id": latest, "rows": rows}, {"id": "snap-a", "rows": 150}],
            **status,
        },
    }


def _live(accuracy: float = 0.95, labelled: int = 100, **drift: dict[str, float]) -> dict:
    return {
        "windowSeconds": 86400,
        "predictions": 500,
        "labelledSamples": labelled,
        "metrics": {"accuracy": accuracy, "f1": accuracy},
        "drift": drift,
    }


def _reconcile(
    body: dict[str, Any],
    *,
    now: datetime = NOW,
    pipeline: dict[str, Any] | None = None,
    live: dict[str, Any] | None = None,
    featureset: dict[str, Any] | None = None,
) -> PolicyPlan:
    policy = parse_retrainpolicy(body)
    assert not isinstance(policy, Invalid), policy
    world = PolicyWorld(
        now=now,
        pipeline=pipeline if pipeline is not None else _pipeline(),
        production=_production(live),
        featureset=featureset if featureset is not None else _featureset(),
    )
    return reconcile_retrainpolicy(policy, world)


def _apply(body: dict[str, Any], plan: PolicyPlan) -> dict[str, Any]:
    """The policy after the status write and the annotation removals, as the server keeps it."""
    status = {**(body.get("status") or {})}
    for key, value in plan.outcome.fields.items():
        if value is None:
            status.pop(key, None)
        else:
            status[key] = value
    body = {**body, "status": status, "metadata": dict(body["metadata"])}
    for write in plan.writes:
        if isinstance(write, Patch) and write.resource.kind == "RetrainPolicy":
            annotations = dict(body["metadata"].get("annotations") or {})
            for key, value in write.body["metadata"]["annotations"].items():
                annotations.pop(key) if value is None else annotations.update({key: value})
            body["metadata"]["annotations"] = annotations
    return body


def _run_request(plan: PolicyPlan) -> dict[str, Any] | None:
    for write in plan.writes:
        if isinstance(write, Patch) and write.resource.kind == "TrainingPipeline":
            return dict(json.loads(write.body["metadata"]["annotations"][POLICY_RUN_REQUEST]))
    return None


def _ready(outcome: Outcome) -> Any:
    return next(c for c in outcome.conditions if c.type == "Ready")


# Checks ----------------------------------------------------------------------------------------


def test_the_example_is_ready_and_reports_the_next_monday() -> None:
    plan = _reconcile(_load("iris", "retrainpolicy.yaml"))
    assert _ready(plan.outcome).status == "True"
    assert plan.outcome.fields["nextScheduledTime"] == "2026-11-30T03:00:00Z"


def test_schedule_in_a_time_zone() -> None:
    policy = _load("diabetes", "retrainpolicy.yaml")  # 02:30 Europe/Berlin = 01:30 UTC in winter
    plan = _reconcile(policy, pipeline=_load("diabetes", "trainingpipeline.yaml"))
    assert plan.outcome.fields["nextScheduledTime"] == "2026-11-28T01:30:00Z"


def test_missing_pipeline() -> None:
    policy = parse_retrainpolicy(_load("iris", "retrainpolicy.yaml"))
    assert not isinstance(policy, Invalid)
    ready = _ready(reconcile_retrainpolicy(policy, PolicyWorld(now=NOW)).outcome)
    assert (ready.status, ready.reason) == ("False", "PipelineNotFound")
    assert "spec.pipeline" in ready.message


def test_no_trigger_and_bad_cron_and_zone() -> None:
    policy = _load("iris", "retrainpolicy.yaml")
    policy["spec"]["triggers"] = {}
    invalid = parse_retrainpolicy(policy)
    assert isinstance(invalid, Invalid)
    assert "spec.triggers: set at least one" in _ready(invalid.outcome).message
    policy["spec"]["triggers"] = {"schedule": {"cron": "at noon ok", "timeZone": "Mars/Olympus"}}
    invalid = parse_retrainpolicy(policy)
    assert isinstance(invalid, Invalid)
    message = _ready(invalid.outcome).message
    assert "spec.triggers.schedule.cron" in message and "spec.triggers.schedule.timeZone" in message


def test_a_matcher_that_is_not_a_regular_expression_is_refused() -> None:
    policy = _policy(
        triggers={
            "alert": {
                "matchers": [
                    {"label": "alertname", "operator": "=~", "value": "Iris.*"},
                    {"label": "severity", "operator": "!~", "value": "(["},
                    {"label": "team", "operator": "=", "value": "(["},  # a plain value
                ]
            }
        }
    )
    invalid = parse_retrainpolicy(policy)
    assert isinstance(invalid, Invalid)
    ready = _ready(invalid.outcome)
    assert ready.message.startswith("spec.triggers.alert.matchers[1].value: '([' is not a regular")
    assert "matchers[2]" not in ready.message


# Manual ----------------------------------------------------------------------------------------


def test_a_manual_request_fires_once_with_its_reason() -> None:
    body = _policy(triggers={"alert": {"matchers": []}})
    body["metadata"]["annotations"] = {RETRAIN_REQUEST: "2026-11-27T12:00:00Z by ana: new labels"}
    plan = _reconcile(body)
    decision = plan.decisions[0]
    assert (decision["trigger"], decision["fired"], decision["reason"]) == ("manual", True, "Fired")
    assert "by ana: new labels" in decision["message"]
    request = _run_request(plan)
    assert request is not None and request["trigger"] == "manual"
    assert request["policy"] == "iris" and "new labels" in request["reason"]
    # The status records the request before the pipeline is asked.
    assert type(plan.actions()[0]).__name__ == "WriteStatus"
    # The same annotation again (the next resync): no second decision.
    again = _reconcile(_apply(body, plan), now=NOW + timedelta(seconds=5))
    assert again.decisions == []


# Schedule --------------------------------------------------------------------------------------


def _scheduled(cron: str, zone: str = "UTC", **schedule: Any) -> dict[str, Any]:
    return _policy(triggers={"schedule": {"cron": cron, "timeZone": zone, **schedule}})


def test_schedule_fires_at_its_time_and_not_before() -> None:
    body = _scheduled("0 13 * * *")
    assert _reconcile(body).decisions == []
    plan = _reconcile(body, now=datetime(2026, 11, 27, 13, 0, 2, tzinfo=UTC))
    assert [(d["trigger"], d["fired"]) for d in plan.decisions] == [("schedule", True)]
    assert plan.outcome.fields["lastScheduledTime"] == "2026-11-27T13:00:00Z"
    assert plan.outcome.fields["nextScheduledTime"] == "2026-11-28T13:00:00Z"


def test_many_missed_fire_times_start_one_run() -> None:
    body = _scheduled("*/10 * * * *")
    body["status"] = {"lastScheduledTime": "2026-11-27T08:00:00Z"}
    plan = _reconcile(body)  # 12:00, four hours later: 24 fire times missed
    assert len(plan.decisions) == 1 and plan.decisions[0]["fired"]
    assert "24 fire times were due; one run for all" in plan.decisions[0]["message"]
    assert plan.outcome.fields["lastScheduledTime"] == "2026-11-27T12:00:00Z"


def test_a_fire_time_older_than_the_starting_deadline_is_skipped() -> None:
    body = _scheduled("0 11 * * *", startingDeadlineSeconds=300)
    body["status"] = {"lastScheduledTime": "2026-11-26T11:00:00Z"}
    plan = _reconcile(body)  # 11:00 today is an hour late
    decision = plan.decisions[0]
    assert (decision["fired"], decision["reason"]) == (False, "MissedDeadline")
    assert "past startingDeadlineSeconds (300)" in decision["message"]
    assert _run_request(plan) is None
    assert plan.outcome.fields["lastScheduledTime"] == "2026-11-27T11:00:00Z"


def test_a_policy_created_after_the_last_fire_time_waits_for_the_next() -> None:
    body = _scheduled("30 10 * * *")  # created 11:00, fire time 10:30 passed before that
    assert _reconcile(body).decisions == []


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        # Spring forward, 2026-03-29 in Berlin: 02:30 does not exist; it fires at 03:00 local.
        (
            "2026-03-28T12:00:00Z",
            "2026-03-30T12:00:00Z",
            ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"],
        ),
        # Fall back, 2026-10-25: 02:30 happens twice; it fires once, on the first pass.
        (
            "2026-10-24T12:00:00Z",
            "2026-10-26T12:00:00Z",
            ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"],
        ),
    ],
)
def test_schedule_across_daylight_saving_changes(start: str, end: str, expected: list[str]) -> None:
    body = _scheduled("30 2 * * *", "Europe/Berlin")
    body["metadata"]["creationTimestamp"] = start
    body["spec"]["cooldownSeconds"] = 0
    fired, now = [], datetime.fromisoformat(start)
    while now < datetime.fromisoformat(end):  # a reconcile every 10 minutes of injected time
        plan = _reconcile(body, now=now)
        fired += [plan.outcome.fields["lastScheduledTime"] for d in plan.decisions if d["fired"]]
        body = _apply(body, plan)
        body["status"].pop("pending", None)  # the pipeline took each request
        now += timedelta(minutes=10)
    assert fired == expected


# Performance -----------------------------------------------------------------------------------


def _performance(threshold: float = 0.9, **extra: Any) -> dict[str, Any]:
    return _policy(triggers={"performance": {"threshold": threshold, "minSamples": 50, **extra}})


def test_performance_fires_below_the_threshold_with_the_figures() -> None:
    plan = _reconcile(_performance(), live=_live(accuracy=0.7, labelled=120))
    decision = plan.decisions[0]
    assert (decision["trigger"], decision["fired"]) == ("performance", True)
    assert "live accuracy 0.7 on 120 labelled predictions; threshold 0.9" in decision["message"]
    assert plan.outcome.fields["lastPerformance"] == 0.7
    assert _run_request(plan)["trigger"] == "performance"  # type: ignore[index]


def test_performance_waits_for_enough_labelled_samples_and_stays_quiet_when_good() -> None:
    waiting = _reconcile(_performance(), live=_live(accuracy=0.5, labelled=10))
    assert waiting.decisions == []
    state = waiting.outcome.fields["triggers"][0]
    assert (state["state"], state["reason"]) == ("Waiting", "NotEnoughSamples")
    good = _reconcile(_performance(), live=_live(accuracy=0.97))
    assert good.decisions == []
    assert good.outcome.fields["triggers"][0]["state"] == "Quiet"


def test_an_error_metric_fires_above_its_threshold() -> None:
    live = {"predictions": 90, "labelledSamples": 90, "metrics": {"rmse": 70.0, "mae": 50.0}}
    plan = _reconcile(_performance(threshold=60, metric="rmse"), live=live)
    assert plan.decisions[0]["fired"]
    assert "live rmse 70" in plan.decisions[0]["message"]


def test_performance_is_checked_every_check_interval_only() -> None:
    body = _performance(threshold=0.5)
    body["spec"]["checkIntervalSeconds"] = 60
    body["status"] = {"lastCheckTime": rfc3339(NOW - timedelta(seconds=30))}
    plan = _reconcile(body, live=_live(accuracy=0.1))
    assert plan.decisions == [] and "lastCheckTime" not in plan.outcome.fields


# Drift -----------------------------------------------------------------------------------------


def _drifting(**drift: Any) -> dict[str, Any]:
    return _policy(triggers={"drift": {"threshold": 0.25, "minSamples": 100, **drift}})


DRIFT = {
    "sepal_length": {"psi": 0.9, "ks": 0.5},
    "sepal_width": {"psi": 0.05, "ks": 0.04},
    "petal_length": {"psi": 0.3, "ks": 0.2},
    "colour": {"psi": 0.02, "chi2": 40.0, "cramersV": 0.6},
}


def test_drift_fires_and_names_the_drifted_features() -> None:
    plan = _reconcile(_drifting(), live=_live(**DRIFT))
    decision = plan.decisions[0]
    assert (decision["trigger"], decision["fired"]) == ("drift", True)
    assert "psi over 0.25 on 2 of 4 watched features (50%" in decision["message"]
    assert "sepal_length 0.9, petal_length 0.3" in decision["message"]
    assert plan.outcome.fields["lastDriftScore"] == 0.9


def test_drift_share_and_watched_features() -> None:
    needs_most = _reconcile(_drifting(minDriftedShare=0.75), live=_live(**DRIFT))
    assert needs_most.decisions == []
    assert needs_most.outcome.fields["triggers"][0]["reason"] == "NoDrift"
    calm = _reconcile(_drifting(features=["sepal_width"]), live=_live(**DRIFT))
    assert calm.decisions == []


def test_ks_judges_numeric_features_and_chi2_the_categorical_ones() -> None:
    ks = _reconcile(_drifting(method="ks", threshold=0.3), live=_live(**DRIFT))
    # sepal_length by KS 0.5; colour has no KS: judged by Cramer's V 0.6.
    assert "2 of 4" in ks.decisions[0]["message"] and "colour 0.6" in ks.decisions[0]["message"]
    chi2 = _reconcile(_drifting(method="chi2", features=["colour"]), live=_live(**DRIFT))
    assert chi2.decisions[0]["fired"] and "colour 0.6" in chi2.decisions[0]["message"]


def test_drift_waits_for_enough_predictions() -> None:
    live = {**_live(**DRIFT), "predictions": 40}
    plan = _reconcile(_drifting(), live=live)
    assert plan.decisions == []
    assert plan.outcome.fields["triggers"][0]["reason"] == "NotEnoughSamples"


# Alerts ----------------------------------------------------------------------------------------


def _alerted(fingerprint: str = "a1b2c3d4e5f60718", **alert: Any) -> dict[str, Any]:
    body = _policy(
        triggers={"alert": {"matchers": [{"label": "alertname", "value": "X"}], **alert}}
    )
    notice = {"alertname": "IrisAccuracyLow", "startsAt": "2026-11-27T11:55:00Z", "receivedAt": "x"}
    body["metadata"]["annotations"] = {
        f"{ALERT_ANNOTATION_PREFIX}{fingerprint}": json.dumps(notice)
    }
    return body


def test_an_alert_fires_is_consumed_and_its_repeat_is_a_duplicate() -> None:
    body = _alerted()
    plan = _reconcile(body)
    decision = plan.decisions[0]
    assert (decision["trigger"], decision["fired"]) == ("alert", True)
    assert "alert IrisAccuracyLow (fingerprint a1b2c3d4e5f60718)" in decision["message"]
    after = _apply(body, plan)
    assert not any(k.startswith(ALERT_ANNOTATION_PREFIX) for k in after["metadata"]["annotations"])
    assert after["status"]["alerts"][0]["fingerprint"] == "a1b2c3d4e5f60718"
    # Alertmanager repeats it an hour later, within the 4 h repeat interval: a duplicate.
    after["status"].pop("pending")
    after["metadata"]["annotations"] = _alerted()["metadata"]["annotations"]
    repeat = _reconcile(after, now=NOW + timedelta(hours=1))
    assert [(d["fired"], d["reason"]) for d in repeat.decisions] == [(False, "DuplicateAlert")]
    # Past the repeat interval (and the cooldown) it is a new trigger.
    later = _reconcile(after, now=NOW + timedelta(hours=5))
    assert later.decisions[0]["fired"]


# Guards ----------------------------------------------------------------------------------------


def _manual(body: dict[str, Any], stamp: str = "2026-11-27T12:00:00Z by ana") -> dict[str, Any]:
    body["metadata"]["annotations"] = {RETRAIN_REQUEST: stamp}
    return body


def _suppressed(plan: PolicyPlan) -> tuple[str, str]:
    decision = plan.decisions[0]
    assert decision["fired"] is False and _run_request(plan) is None
    return decision["reason"], decision["message"]


def test_cooldown() -> None:
    body = _manual(_performance())
    body["status"] = {"lastTriggeredTime": rfc3339(NOW - timedelta(seconds=100))}
    reason, message = _suppressed(_reconcile(body, live=_live()))
    assert reason == "Cooldown" and "cooldown 600 s, 500 s left" in message


def test_suspend() -> None:
    body = _manual(_performance())
    body["spec"]["suspend"] = True
    plan = _reconcile(body, live=_live())
    assert _suppressed(plan)[0] == "Suspended"
    assert _ready(plan.outcome).reason == "Suspended"


def test_max_runs_per_day() -> None:
    body = _manual(_performance())
    body["spec"].update(maxRunsPerDay=2, cooldownSeconds=0)
    body["status"] = {
        "recentRuns": [rfc3339(NOW - timedelta(hours=h)) for h in (1, 5, 30)]  # 30 h: forgotten
    }
    reason, message = _suppressed(_reconcile(body, live=_live()))
    assert reason == "MaxRunsPerDay" and "2 runs requested in the last 24 h" in message


def test_an_active_run_suppresses_under_forbid_and_passes_under_replace() -> None:
    pipeline = _pipeline(activeRun="iris-20261127-115000")
    reason, message = _suppressed(_reconcile(_manual(_performance()), pipeline=pipeline))
    assert reason == "RunActive" and "iris-20261127-115000" in message
    replace = _manual(_performance())
    replace["spec"]["concurrencyPolicy"] = "Replace"
    assert _run_request(_reconcile(replace, pipeline=pipeline)) is not None


def test_not_enough_new_rows_since_the_production_snapshot() -> None:
    body = _manual(_performance())
    body["spec"]["minNewRows"] = 500
    reason, message = _suppressed(_reconcile(body, live=_live()))
    assert reason == "NotEnoughNewData"
    assert "snapshot snap-b has 300 rows more than snap-a (Production's)" in message
    same = _reconcile(body, featureset=_featureset(latest="snap-a", rows=150))
    assert "is the one Production was trained on" in _suppressed(same)[1]
    body["spec"]["minNewRows"] = 300
    assert _run_request(_reconcile(body, live=_live())) is not None


def test_a_persisting_condition_is_recorded_once_while_suppressed() -> None:
    body = _performance()
    body["status"] = {"lastTriggeredTime": rfc3339(NOW - timedelta(seconds=100))}
    body["spec"]["checkIntervalSeconds"] = 1
    first = _reconcile(body, live=_live(accuracy=0.5))
    assert _suppressed(first)[0] == "Cooldown"
    second = _reconcile(_apply(body, first), now=NOW + timedelta(seconds=10), live=_live(0.5))
    assert second.decisions == []


# The request, exactly once ---------------------------------------------------------------------


def test_the_request_is_asked_again_until_the_pipeline_honours_it_then_records_the_run() -> None:
    body = _manual(_performance())
    first = _reconcile(body, live=_live())
    request = _run_request(first)
    assert request is not None
    after = _apply(body, first)
    assert after["status"]["pending"]["phase"] == "Requested"
    # A restart before the pipeline saw it: the same request id again, no new decision.
    again = _reconcile(after, now=NOW + timedelta(seconds=3), live=_live())
    assert _run_request(again) == request and again.decisions == []
    # The pipeline started run iris-20261127-120003 for it.
    run = {"id": "iris-20261127-120003", "trigger": {"reason": f"x [request {request['id']}]"}}
    pipeline = _pipeline(lastPolicyRequest=request["id"], runs=[run])
    done = _reconcile(after, now=NOW + timedelta(seconds=6), pipeline=pipeline, live=_live())
    assert _run_request(done) is None
    assert done.outcome.fields["pending"] is None
    assert done.outcome.fields["decisions"][0]["run"] == "iris-20261127-120003"


def test_refresh_features_materializes_first_then_judges_new_rows() -> None:
    body = _manual(_performance())
    body["spec"].update(refreshFeatures=True, minNewRows=100)
    first = _reconcile(body, live=_live())
    assert _run_request(first) is None
    pending = first.outcome.fields["pending"]
    assert pending["phase"] == "Materializing"
    asked = [w for w in first.writes if isinstance(w, Patch) and w.resource.kind == "FeatureSet"]
    assert asked[0].body["metadata"]["annotations"][MATERIALIZE_REQUEST] == pending["request"]
    after = _apply(body, first)
    materialized = _featureset(lastMaterializeRequest=pending["request"])
    second = _reconcile(after, now=NOW + timedelta(seconds=20), featureset=materialized)
    assert _run_request(second)["id"] == pending["request"]  # type: ignore[index]
    # Had the refresh brought too few rows, the trigger is suppressed with the figures.
    few = _featureset(latest="snap-c", rows=180, lastMaterializeRequest=pending["request"])
    few["status"]["snapshots"].append({"id": "snap-a", "rows": 150})
    third = _reconcile(after, now=NOW + timedelta(seconds=20), featureset=few)
    assert _run_request(third) is None
    assert third.decisions[0]["reason"] == "NotEnoughNewData"
    assert "features refreshed" in third.decisions[0]["message"]


def test_a_second_trigger_while_a_request_is_pending_is_suppressed() -> None:
    body = _manual(_performance(threshold=0.99))
    plan = _reconcile(body, live=_live(accuracy=0.5))
    assert [(d["trigger"], d["fired"], d["reason"]) for d in plan.decisions] == [
        ("manual", True, "Fired"),
        ("performance", False, "RunPending"),
    ]
    assert len([w for w in plan.writes if w.resource.kind == "TrainingPipeline"]) == 1  # type: ignore[union-attr]


def test_an_alert_about_a_version_that_no_longer_serves_starts_nothing() -> None:
    """The monitor keeps reporting a replaced version while its logs are in the window, so its
    alert keeps firing: it names the old version, and is stale."""
    body = _alerted()
    notice = {
        "alertname": "ConveyorLiveScoreLow",
        "labels": {"model": "iris-classifier", "version": "1"},
        "startsAt": "2026-11-27T11:55:00Z",
    }
    key = f"{ALERT_ANNOTATION_PREFIX}a1b2c3d4e5f60718"
    body["metadata"]["annotations"] = {key: json.dumps(notice)}
    policy = parse_retrainpolicy(body)
    assert not isinstance(policy, Invalid)
    production = {
        "metadata": {"name": "iris-classifier-v2"},
        "spec": {"model": "iris-classifier", "version": 2, "lineage": {"snapshot": "snap-b"}},
    }
    world = PolicyWorld(now=NOW, pipeline=_pipeline(), production=production)
    plan = reconcile_retrainpolicy(policy, world)
    decision = plan.decisions[0]
    assert (decision["fired"], decision["reason"]) == (False, "NotProduction")
    assert (
        "version 1 of iris-classifier no longer serves (iris-classifier-v2 does)"
        in (decision["message"])
    )
    notice["labels"]["version"] = "2"  # type: ignore[index]
    body["metadata"]["annotations"] = {key: json.dumps(notice)}
    policy = parse_retrainpolicy(body)
    assert not isinstance(policy, Invalid)
    assert reconcile_retrainpolicy(policy, world).decisions[0]["fired"]
