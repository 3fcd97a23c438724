"""A version pinned in Git serves, whatever the policy says; a better Candidate is reported."""

from __future__ import annotations

from typing import Any

from conveyor.api.v1alpha1 import TrainingPipeline
from conveyor.contracts.results import RunResult
from conveyor.reconcile.common import status_patch
from conveyor.reconcile.pipeline_world import RegisteredVersion
from conveyor.reconcile.runs import PipelinePlan
from conveyor.resources.modelversion import build_model_version
from tests.conftest import EXAMPLES, load_yaml_documents
from tests.unit.reconcile.test_runs import NOW, SETTINGS, _result_of, _with_run, _world, plan_runs
from tests.unit.reconcile.test_runs import pipeline as pipeline


def _scored(
    number: int, f1: float, stage: str = "Candidate", passed: bool = True
) -> tuple[RegisteredVersion, RunResult]:
    run = f"iris-r{number}"
    wire = _result_of(run).to_json() | {
        "metrics": {"f1_macro": f1, "accuracy": f1},
        "gates": [{"name": "threshold:accuracy:min", "passed": passed, "message": "m"}],
        "passed": passed,
    }
    result = RunResult.from_json(wire)
    owner = TrainingPipeline.from_body(
        load_yaml_documents(EXAMPLES / "iris" / "trainingpipeline.yaml")[0]
        | {"metadata": {"name": "iris", "namespace": "default"}}
    )
    body = build_model_version(owner, run, result, number)
    body["spec"]["stage"] = stage
    return RegisteredVersion.from_body(body), result


def _plan(
    body: dict[str, Any], pin: int | None, *scored: tuple[RegisteredVersion, RunResult]
) -> PipelinePlan:
    body["spec"]["promotion"] = {"policy": "auto"} | ({"version": pin} if pin else {})
    _with_run(body, phase="Succeeded", run="iris-r9")
    versions = [version for version, _ in scored]
    results = {version.run: result for version, result in scored}
    return plan_runs(body, _world(versions=versions, results=results), SETTINGS)


def test_the_pin_serves_instead_of_the_auto_policy(pipeline: dict[str, Any]) -> None:
    plan = _plan(pipeline, 1, _scored(1, 0.90, "Archived"), _scored(2, 0.95, "Production"))
    assert plan.promote == ["iris-classifier-v1"]
    assert plan.outcome.fields["pinnedVersion"] == "iris-classifier-v1"
    assert plan.outcome.fields["productionVersion"] == "iris-classifier-v1"
    assert [e.reason for e in plan.outcome.events] == ["Pinned"]
    # Unpinned, the same world keeps v2 (auto promotes only fresh candidates).
    unpinned = _plan(pipeline, None, _scored(1, 0.90, "Archived"), _scored(2, 0.95, "Production"))
    assert unpinned.promote == [] and unpinned.outcome.fields["pinnedVersion"] is None


def test_a_pinned_version_in_production_is_left_alone(pipeline: dict[str, Any]) -> None:
    plan = _plan(pipeline, 1, _scored(1, 0.90, "Production"))
    assert plan.promote == [] and plan.outcome.events == []
    assert plan.outcome.fields["betterCandidate"] is None


def test_a_fresh_candidate_waits_and_is_reported(pipeline: dict[str, Any]) -> None:
    plan = _plan(
        pipeline,
        1,
        _scored(1, 0.90, "Production"),
        _scored(2, 0.97),
        _scored(3, 0.99, passed=False),  # failed its gates: never offered
        _scored(4, 0.80),  # worse: never offered
    )
    assert plan.promote == []
    better = plan.outcome.fields["betterCandidate"]
    assert (better["name"], better["score"], better["pinnedScore"]) == (
        "iris-classifier-v2",
        0.97,
        0.90,
    )
    assert "set spec.promotion.version to 2 in Git" in better["message"]
    assert [e.reason for e in plan.outcome.events] == ["BetterCandidateWaiting"]
    # Reported once: the next reconcile, with the status written, posts nothing new.
    pipeline["status"]["betterCandidate"] = better
    again = _plan(pipeline, 1, _scored(1, 0.90, "Production"), _scored(2, 0.97))
    assert again.outcome.events == []


def test_a_pin_to_a_missing_version_stalls_naming_the_field(pipeline: dict[str, Any]) -> None:
    plan = _plan(pipeline, 7, _scored(1, 0.90, "Production"), _scored(2, 0.95))
    assert plan.promote == []
    ready = plan.outcome.conditions[0]
    assert (ready.type, ready.status, ready.reason) == ("Ready", "False", "PinnedVersionNotFound")
    assert "spec.promotion.version 7" in ready.message and "registered: 1, 2" in ready.message
    patch, _ = status_patch({}, plan.outcome, generation=3, now=NOW)
    stalled = next(c for c in patch["conditions"] if c["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "PinnedVersionNotFound")


def test_a_pin_to_a_rejected_version_is_never_served(pipeline: dict[str, Any]) -> None:
    plan = _plan(pipeline, 2, _scored(1, 0.90, "Production"), _scored(2, 0.99, "Rejected", False))
    assert plan.promote == []
    ready = plan.outcome.conditions[0]
    assert ready.reason == "PinnedVersionRejected"
    assert "iris-classifier-v2 failed its gates" in ready.message


def test_moving_the_pin_never_retrains(pipeline: dict[str, Any]) -> None:
    pipeline["spec"]["runs"] = {"runOnSpecChange": True}
    _with_run(pipeline, phase="Succeeded", run="iris-r9")
    pipeline["spec"]["promotion"] = {"policy": "auto", "version": 3}
    plan = plan_runs(pipeline, _world(), SETTINGS)
    assert plan.create_jobs == [] and plan.outcome.fields["runs"][0]["id"] == "iris-r9"
    pipeline["spec"]["promotion"]["policy"] = "manual"  # any other change still retrains
    assert plan_runs(pipeline, _world(), SETTINGS).create_jobs
