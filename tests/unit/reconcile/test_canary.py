"""The canary's step machine: pods per step, pause, judgement against the stable version,
advance, promotion and abort — and how a serving plan carries it out."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from conveyor.api.v1alpha1 import TrainingPipeline
from conveyor.api.v1alpha1.rollout import CanaryStep, Rollout, RolloutState
from conveyor.reconcile.canary import CanaryWorld, LiveScore, split_replicas, step_canary
from conveyor.reconcile.common import Create, Delete, Patch
from conveyor.reconcile.pipeline_world import ServingWorld
from conveyor.reconcile.serving_figures import ServingFigures, parse_serving_metrics, quantile
from conveyor.resources.serving import build_serving_deployment
from tests.unit.reconcile.test_serving import (
    DONE,
    NOW,
    SERVICE,
    SETTINGS,
    _deployment,
    _pipeline,
    _plan,
    _version,
    _with_status,
)

CONFIG = Rollout(
    strategy="Canary",
    steps=[CanaryStep(weight=10, pause_seconds=60), CanaryStep(weight=50, pause_seconds=30)],
    min_requests=20,
)
V1, V2 = "iris-classifier-v1", "iris-classifier-v2"


def _figures(requests: int, errors: int = 0, p99_bucket: float = 0.005) -> ServingFigures:
    """`requests` answered, all within `p99_bucket` seconds."""
    return ServingFigures(requests, errors, {p99_bucket: requests, float("inf"): requests}, 1)


HEALTHY = {"canary": _figures(100), "stable": _figures(900)}


def _world(**overrides: Any) -> CanaryWorld:
    base: dict[str, Any] = {
        "now": NOW,
        "total_replicas": 10,
        "canary_ready": 1,
        "stable_ready": 9,
        "step_ready": True,
        **HEALTHY,
    }
    return CanaryWorld(**{**base, **overrides})


def _paused(step: int = 0, held: float = 0) -> RolloutState:
    return RolloutState(
        canary_version=V2,
        stable_version=V1,
        phase="Paused",
        step=step,
        step_started=NOW - timedelta(seconds=held),
    )


# Replicas: the share moves in steps of 1/N ------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "weight", "split"),
    [(10, 10, (9, 1)), (10, 50, (5, 5)), (4, 10, (3, 1)), (4, 50, (2, 2)), (1, 10, (1, 1))],
)
def test_a_weight_is_a_share_of_pods_with_one_of_each_at_least(
    total: int, weight: int, split: tuple[int, int]
) -> None:
    assert split_replicas(total, weight) == split


# Figures from the pods' own /metrics -------------------------------------------------------------

EXPOSITION = """\
# TYPE conveyor_serving_requests counter
conveyor_serving_requests_total{code="200",endpoint="predict"} 90.0
conveyor_serving_requests_total{code="500",endpoint="predict"} 6.0
conveyor_serving_requests_total{code="422",endpoint="infer"} 4.0
conveyor_serving_requests_total{code="200",endpoint="ready"} 500.0
# TYPE conveyor_serving_request_duration_seconds histogram
conveyor_serving_request_duration_seconds_bucket{endpoint="predict",le="0.001"} 50.0
conveyor_serving_request_duration_seconds_bucket{endpoint="predict",le="0.01"} 96.0
conveyor_serving_request_duration_seconds_bucket{endpoint="predict",le="+Inf"} 96.0
conveyor_serving_request_duration_seconds_sum{endpoint="predict"} 0.3
conveyor_serving_request_duration_seconds_count{endpoint="predict"} 96.0
conveyor_serving_request_duration_seconds_bucket{endpoint="ready",le="0.001"} 500.0
conveyor_serving_request_duration_seconds_bucket{endpoint="ready",le="+Inf"} 500.0
"""


def test_only_prediction_requests_count_and_only_5xx_are_errors() -> None:
    figures = parse_serving_metrics(EXPOSITION)
    assert (figures.requests, figures.errors) == (100, 6)
    assert figures.error_rate == pytest.approx(0.06)
    # 99% of 96 is the 95.04th answer: in the 1-10 ms bucket, interpolated as Prometheus does.
    assert figures.p99 == pytest.approx(0.001 + 0.009 * (95.04 - 50) / 46)
    both = figures + figures
    assert (both.requests, both.pods, both.buckets[0.01]) == (200, 2, 192)


def test_a_quantile_in_the_inf_bucket_is_the_largest_bound_and_none_without_answers() -> None:
    assert quantile(0.99, {0.1: 1, float("inf"): 10}) == 0.1
    assert quantile(0.99, {0.1: 0, float("inf"): 0}) is None
    assert quantile(0.99, {}) is None


# The step machine --------------------------------------------------------------------------------


def test_a_new_canary_starts_at_its_first_step_and_says_so() -> None:
    decision = step_canary(CONFIG, None, V1, V2, _world(step_ready=False, canary_ready=0))
    assert decision.verdict == "hold"
    assert (decision.stable_replicas, decision.canary_replicas) == (9, 1)
    state = decision.state
    assert (state.phase, state.step, state.weight, state.step_started) == (
        "Progressing",
        0,
        10,
        None,
    )
    assert [e.reason for e in decision.events] == ["CanaryStarted"]


def test_a_step_whose_pods_are_ready_is_paused_and_held_for_its_pause() -> None:
    started = RolloutState(canary_version=V2, stable_version=V1)
    decision = step_canary(CONFIG, started, V1, V2, _world())
    assert decision.verdict == "hold" and decision.events == []
    assert (decision.state.phase, decision.state.step_started) == ("Paused", NOW)
    assert decision.state.actual_weight == 10.0
    assert "held 0/60 s" in decision.state.message
    assert decision.state.judgement is not None and decision.state.judgement.verdict == "Pass"


def test_a_step_advances_once_its_pause_is_over_and_its_figures_pass() -> None:
    decision = step_canary(CONFIG, _paused(held=61), V1, V2, _world())
    assert decision.verdict == "hold"
    assert (decision.state.step, decision.state.phase, decision.state.weight) == (
        1,
        "Progressing",
        50,
    )
    assert (decision.stable_replicas, decision.canary_replicas) == (5, 5)
    assert [e.reason for e in decision.events] == ["CanaryStepPassed"]


def test_a_step_without_enough_requests_holds_past_its_pause() -> None:
    decision = step_canary(CONFIG, _paused(held=600), V1, V2, _world(canary=_figures(5)))
    assert (decision.verdict, decision.state.phase, decision.state.step) == ("hold", "Paused", 0)
    assert "5 of the 20 prediction requests" in decision.state.message


def test_an_error_rate_above_the_bound_aborts_at_once() -> None:
    decision = step_canary(CONFIG, _paused(held=1), V1, V2, _world(canary=_figures(100, 30)))
    assert decision.verdict == "abort"
    assert (decision.state.phase, decision.state.reason) == ("Aborted", "CanaryErrorRate")
    assert "30.0% of the canary's 100 prediction requests answered 5xx" in decision.state.message
    assert f"{V1} serves every pod again" in decision.state.message
    assert [e.reason for e in decision.events] == ["CanaryAborted"]


def test_a_p99_latency_beyond_the_ratio_aborts() -> None:
    slow = _figures(100, p99_bucket=0.5)
    decision = step_canary(CONFIG, _paused(held=1), V1, V2, _world(canary=slow))
    assert (decision.verdict, decision.state.reason) == ("abort", "CanaryLatency")
    judgement = decision.state.judgement
    assert judgement is not None and judgement.latency_ratio == pytest.approx(100)


def test_a_live_score_that_drops_aborts_once_both_have_enough_labels() -> None:
    few = _world(canary_live=LiveScore(0.5, 10), stable_live=LiveScore(0.9, 10))
    assert step_canary(CONFIG, _paused(held=1), V1, V2, few).verdict == "hold"
    enough = _world(canary_live=LiveScore(0.5, 500), stable_live=LiveScore(0.9, 500))
    decision = step_canary(CONFIG, _paused(held=1), V1, V2, enough)
    assert (decision.verdict, decision.state.reason) == ("abort", "CanaryLiveScore")


def test_the_last_step_passed_promotes_the_canary() -> None:
    decision = step_canary(CONFIG, _paused(step=1, held=31), V1, V2, _world())
    assert decision.verdict == "promote"
    assert (decision.state.step, decision.state.weight, decision.state.phase) == (
        2,
        100,
        "Progressing",
    )
    assert [e.reason for e in decision.events] == ["CanaryStepPassed", "CanaryPromoting"]


# Carried out by the serving plan -----------------------------------------------------------------

CANARY_SPEC = {
    "rollout": {
        "strategy": "Canary",
        "steps": [{"weight": 50, "pauseSeconds": 30}],
        "minRequests": 20,
    }
}


ONE_READY = {**DONE, "replicas": 1, "readyReplicas": 1}


def _built(version: int, *, canary: bool) -> dict[str, Any]:
    """A Deployment of one pod of `version`, every pod ready."""
    built = build_serving_deployment(
        TrainingPipeline.from_body(_pipeline(**CANARY_SPEC)),
        _version(version).body,
        SETTINGS,
        replicas=1,
        canary=canary,
    )
    built["metadata"]["generation"] = 1
    built["status"] = {"observedGeneration": 1, **ONE_READY}
    return built


def _serving_v1(**status: Any) -> dict[str, Any]:
    return _with_status(_pipeline(**CANARY_SPEC), version=V1, **status)


def test_promoting_with_canary_starts_a_canary_deployment_beside_the_stable_one() -> None:
    v1, v2 = _version(1, "Archived"), _version(2)
    world = ServingWorld(deployment=_deployment(v1, **DONE), service=SERVICE)
    decision = _plan(_serving_v1(), [v1, v2], world)
    created = [w for w in decision.writes if isinstance(w, Create)]
    assert [c.body["metadata"]["name"] for c in created] == ["iris-classifier-canary"]
    canary = created[0].body
    assert canary["spec"]["replicas"] == 1
    assert canary["spec"]["selector"]["matchLabels"]["conveyor.dev/track"] == "canary"
    patched = [w for w in decision.writes if isinstance(w, Patch)]
    assert patched[0].body["spec"]["replicas"] == 1  # 2 pods: one stable, one canary
    assert patched[0].body["metadata"]["annotations"]["conveyor.dev/version"] == V1
    assert decision.state.version == V1 and decision.state.rolling_out == V2
    assert decision.state.rollout is not None and decision.state.rollout.weight == 50
    assert (decision.condition.reason, decision.condition.status) == ("Canary", "True")


def test_an_aborted_canary_goes_and_the_stable_version_takes_every_pod_again() -> None:
    v1, v2 = _version(1, "Archived"), _version(2)
    stable = _built(1, canary=False)
    state = _paused().model_copy(update={"step": 0}).model_dump(mode="json", by_alias=True)
    world = ServingWorld(
        deployment=stable,
        service=SERVICE,
        canary=_built(2, canary=True),
        figures={V2: _figures(50, 25), V1: _figures(50)},
    )
    decision = _plan(_serving_v1(rollout=state), [v1, v2], world)
    assert [f.reason for f in decision.state.failures] == ["CanaryErrorRate"]
    deleted = [w for w in decision.writes if isinstance(w, Delete)]
    assert [d.name for d in deleted] == ["iris-classifier-canary"]
    patched = [w for w in decision.writes if isinstance(w, Patch)]
    assert patched[0].body["spec"]["replicas"] == 2
    assert decision.state.rollout is not None and decision.state.rollout.phase == "Aborted"
    assert decision.state.rolling_out is None and decision.state.version == V1
    assert decision.condition.reason == "RolledBack"
    assert "CanaryAborted" in [e.reason for e in decision.events]


def test_a_promoted_canary_rolls_out_on_the_stable_deployment_then_its_deployment_goes() -> None:
    v1, v2 = _version(1, "Archived"), _version(2)
    stable = _built(1, canary=False)
    state = _paused(held=31).model_dump(mode="json", by_alias=True)
    canary = _built(2, canary=True)
    world = ServingWorld(
        deployment=stable,
        service=SERVICE,
        canary=canary,
        figures={V2: _figures(50), V1: _figures(50)},
    )
    decision = _plan(_serving_v1(rollout=state), [v1, v2], world)
    patched = [w for w in decision.writes if isinstance(w, Patch)]
    assert patched[0].body["metadata"]["annotations"]["conveyor.dev/version"] == V2
    assert patched[0].body["spec"]["replicas"] == 2
    assert not [w for w in decision.writes if isinstance(w, Delete)]  # canary kept meanwhile

    promoting = decision.state.rollout
    assert promoting is not None and promoting.weight == 100
    status = promoting.model_dump(mode="json", by_alias=True)
    world = ServingWorld(deployment=_deployment(v2, **DONE), service=SERVICE, canary=canary)
    done = _plan(_serving_v1(rollout=status), [v1, v2], world)
    assert done.state.version == V2 and done.state.rolling_out is None
    assert done.state.rollout is not None and done.state.rollout.phase == "Completed"
    assert next(w for w in done.writes if isinstance(w, Delete)).name == "iris-classifier-canary"
    assert "CanaryCompleted" in [e.reason for e in done.events]


def test_steps_whose_weights_do_not_increase_are_refused_with_what_to_fix() -> None:
    from conveyor.reconcile import parse_trainingpipeline
    from conveyor.reconcile.common import Invalid

    body = _pipeline(rollout={"strategy": "Canary", "steps": [{"weight": 50}, {"weight": 10}]})
    parsed = parse_trainingpipeline(body)
    assert isinstance(parsed, Invalid)
    message = parsed.outcome.conditions[0].message
    assert "spec.serving.rollout.steps: the weights must increase, not [50, 10]" in message


def test_a_promotion_that_cannot_roll_out_ends_the_canary_as_aborted() -> None:
    v1, v2 = _version(1, "Archived"), _version(2)
    promoting = RolloutState(
        canary_version=V2, stable_version=V1, phase="Progressing", step=1, weight=100
    ).model_dump(mode="json", by_alias=True)
    stable = _deployment(v2)
    stable["status"]["conditions"] = [
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
    ]
    world = ServingWorld(deployment=stable, service=SERVICE, canary=_built(2, canary=True))
    decision = _plan(_serving_v1(rollout=promoting), [v1, v2], world)
    assert [f.reason for f in decision.state.failures] == ["ProgressDeadlineExceeded"]
    rollout = decision.state.rollout
    assert rollout is not None and rollout.phase == "Aborted"
    assert [w.name for w in decision.writes if isinstance(w, Delete)] == ["iris-classifier-canary"]
