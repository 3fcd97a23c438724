"""Shadow: the newest Candidate predicts a copy of Production's requests inside the serving
pods, and promotion.policy live promotes it on the live figures alone."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.contracts.invocations import ServeArgs
from conveyor.reconcile.common import Patch
from conveyor.reconcile.pipeline_world import RegisteredVersion, ServingWorld
from tests.unit.reconcile.test_serving import (
    DONE,
    SERVICE,
    _deployment,
    _pipeline,
    _plan,
    _version,
    _with_status,
)

V1, V2 = "iris-classifier-v1", "iris-classifier-v2"


def live(
    version: RegisteredVersion, labelled: int, same: dict[str, Any] | None = None, **metrics: float
) -> RegisteredVersion:
    """`version` with whole-window live figures, and `same`: its sameRequests entry."""
    body: dict[str, Any] = dict(version.body)
    block = {"windowSeconds": 86400, "labelledSamples": labelled, "metrics": metrics}
    body["status"] = {"liveMetrics": {**block, "sameRequests": [same] if same else []}}
    return RegisteredVersion.from_body(body)


def compared(
    labelled: int, ours: dict[str, float], theirs: dict[str, float]
) -> tuple[RegisteredVersion, RegisteredVersion]:
    """v1 serving, v2 its shadow: on `labelled` requests both answered, v2 scored `ours` and v1
    `theirs`; their whole windows (v1's from before the shadow too) say otherwise."""
    v1 = live(_version(1), labelled * 10, accuracy=0.5, rmse=99.0)
    same = {"version": 1, "labelledSamples": labelled, "metrics": ours, "otherMetrics": theirs}
    v2 = live(_version(2, "Candidate"), labelled, same, accuracy=0.99, rmse=0.1)
    return v1, v2


def shadowing(promotion: dict[str, Any] | None = None, **rollout: Any) -> dict[str, Any]:
    body = _pipeline(rollout={"strategy": "Shadow", **rollout})
    body["spec"]["promotion"] = {"policy": "live", **(promotion or {})}
    return _with_status(body, version=V1)


def serving_world(v1: RegisteredVersion) -> ServingWorld:
    return ServingWorld(deployment=_deployment(v1, **DONE), service=SERVICE)


def test_the_newest_candidate_is_loaded_beside_production_as_its_shadow() -> None:
    v1, v2 = _version(1), _version(2, "Candidate")
    decision = _plan(shadowing(shadowShare=0.5), [v1, v2], serving_world(v1))
    [patch] = decision.writes
    assert isinstance(patch, Patch)
    (container,) = patch.body["spec"]["template"]["spec"]["containers"]
    args = ServeArgs.parse(container["args"][1:])
    assert (args.version, args.shadow_version, args.shadow_share) == (1, 2, 0.5)
    assert args.shadow_artifact_uri is not None and "iris-r2" in args.shadow_artifact_uri
    assert decision.state.version == V1 and decision.state.rolling_out is None
    shadow = decision.state.shadow
    assert shadow is not None and (shadow.version, shadow.production) == (V2, V1)
    assert "waiting for 100 labelled live requests" in shadow.message
    assert decision.condition.reason == "Shadow" and decision.promote is None


def test_without_a_newer_candidate_nothing_is_shadowed() -> None:
    v1, v2 = _version(1, "Archived"), _version(2)
    decision = _plan(shadowing(), [v1, v2], serving_world(v1))  # v2 is Production: rolls out
    assert decision.state.shadow is None and decision.state.rolling_out == V2
    assert "RollingOut" in [e.reason for e in decision.events]


def test_a_better_candidate_is_promoted_on_live_figures() -> None:
    v1, v2 = compared(300, {"accuracy": 0.95}, {"accuracy": 0.80})
    decision = _plan(shadowing({"beatProductionBy": 0.05}), [v1, v2], serving_world(v1))
    assert decision.promote == V2
    shadow = decision.state.shadow
    assert shadow is not None and (shadow.candidate_score, shadow.production_score) == (0.95, 0.8)
    assert shadow.labelled == 300
    assert "promoted over iris-classifier-v1 (policy live)" in shadow.message
    assert "on the same 300 labelled requests" in shadow.message
    assert "Promoted" in [e.reason for e in decision.events]


@pytest.mark.parametrize(
    ("promotion", "ours", "theirs", "says"),
    [
        ({"beatProductionBy": 0.05}, 0.83, 0.80, "does not beat iris-classifier-v1 by 0.05"),
        ({}, 0.80, 0.80, "does not beat"),  # a tie is no win
        ({"policy": "manual"}, 0.95, 0.80, "promotion.policy is manual"),
        ({"minLabelledSamples": 500}, 0.95, 0.80, "waiting for 500 labelled"),
    ],
)
def test_a_candidate_that_is_not_better_or_not_measured_enough_stays_a_candidate(
    promotion: dict[str, Any], ours: float, theirs: float, says: str
) -> None:
    v1, v2 = compared(300, {"accuracy": ours}, {"accuracy": theirs})
    decision = _plan(shadowing(promotion), [v1, v2], serving_world(v1))
    assert decision.promote is None
    shadow = decision.state.shadow
    assert shadow is not None and says in shadow.message


def test_an_error_metric_is_better_lower() -> None:
    body = shadowing()
    body["spec"]["metric"] = "rmse"
    v1, v2 = compared(200, {"rmse": 10.0}, {"rmse": 12.0})
    assert _plan(body, [v1, v2], serving_world(v1)).promote == V2
    v1, worse = compared(200, {"rmse": 14.0}, {"rmse": 12.0})
    assert _plan(body, [v1, worse], serving_world(v1)).promote is None


def test_only_the_requests_both_answered_count() -> None:
    # Whole windows: v2 0.99 against v1 0.5; on the requests both answered, no better.
    v1, v2 = compared(300, {"accuracy": 0.90}, {"accuracy": 0.91})
    decision = _plan(shadowing(), [v1, v2], serving_world(v1))
    shadow = decision.state.shadow
    assert decision.promote is None and shadow is not None and "does not beat" in shadow.message
    unmeasured = live(_version(2, "Candidate"), 500, accuracy=0.99)  # no shared requests yet
    decision = _plan(shadowing(), [v1, unmeasured], serving_world(v1))
    shadow = decision.state.shadow
    assert decision.promote is None and shadow is not None
    assert "waiting for 100 labelled live requests both answered (0 so far)" in shadow.message


def test_policy_live_without_a_shadow_is_refused_with_what_to_fix() -> None:
    from conveyor.reconcile import parse_trainingpipeline
    from conveyor.reconcile.common import Invalid

    body = _pipeline()
    body["spec"]["promotion"] = {"policy": "live"}
    parsed = parse_trainingpipeline(body)
    assert isinstance(parsed, Invalid)
    assert "set spec.serving.rollout.strategy to Shadow" in str(parsed.outcome.conditions)
