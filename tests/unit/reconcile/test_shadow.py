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


def live(version: RegisteredVersion, labelled: int, **metrics: float) -> RegisteredVersion:
    body: dict[str, Any] = dict(version.body)
    body["status"] = {
        "liveMetrics": {"windowSeconds": 86400, "labelledSamples": labelled, "metrics": metrics}
    }
    return RegisteredVersion.from_body(body)


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
    v1 = live(_version(1), 300, accuracy=0.80)
    v2 = live(_version(2, "Candidate"), 300, accuracy=0.95)
    decision = _plan(shadowing({"beatProductionBy": 0.05}), [v1, v2], serving_world(v1))
    assert decision.promote == V2
    shadow = decision.state.shadow
    assert shadow is not None and shadow.candidate_score == 0.95
    assert "promoted over iris-classifier-v1 (policy live)" in shadow.message
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
    v1 = live(_version(1), 300, accuracy=theirs)
    v2 = live(_version(2, "Candidate"), 300, accuracy=ours)
    decision = _plan(shadowing(promotion), [v1, v2], serving_world(v1))
    assert decision.promote is None
    shadow = decision.state.shadow
    assert shadow is not None and says in shadow.message


def test_an_error_metric_is_better_lower() -> None:
    body = shadowing()
    body["spec"]["metric"] = "rmse"
    v1 = live(_version(1), 200, rmse=12.0)
    v2 = live(_version(2, "Candidate"), 200, rmse=10.0)
    assert _plan(body, [v1, v2], serving_world(v1)).promote == V2
    worse = live(_version(2, "Candidate"), 200, rmse=14.0)
    assert _plan(body, [v1, worse], serving_world(v1)).promote is None


def test_policy_live_without_a_shadow_is_refused_with_what_to_fix() -> None:
    from conveyor.reconcile import parse_trainingpipeline
    from conveyor.reconcile.common import Invalid

    body = _pipeline()
    body["spec"]["promotion"] = {"policy": "live"}
    parsed = parse_trainingpipeline(body)
    assert isinstance(parsed, Invalid)
    assert "set spec.serving.rollout.strategy to Shadow" in str(parsed.outcome.conditions)
