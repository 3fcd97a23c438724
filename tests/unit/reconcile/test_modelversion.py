"""Stages in effect, one Production per model, and Rejected versions never served."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from conveyor.api.v1alpha1 import ModelVersion
from conveyor.reconcile import (
    Invalid,
    Plan,
    parse_modelversion,
    plan_deletion,
    reconcile_modelversion,
)
from conveyor.reconcile.common import WriteStatus
from conveyor.reconcile.modelversion import DeletionPlan, Sibling, VersionWorld

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
DIGEST = "sha256:" + "0" * 64


def _version(
    number: int,
    stage: str = "Candidate",
    passed: bool = True,
    status: dict[str, Any] | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    annotations = {"conveyor.dev/stage-reason": reason} if reason else {}
    return {
        "metadata": {
            "name": f"iris-v{number}",
            "namespace": "default",
            "generation": 1,
            "annotations": annotations,
        },
        "spec": {
            "model": "iris",
            "version": number,
            "stage": stage,
            "task": "classification",
            "metric": "accuracy",
            "metrics": {"accuracy": 0.95},
            "artifact": {
                "uri": f"s3://conveyor/models/default/iris/runs/r{number}/model.skops",
                "digest": DIGEST,
            },
            "lineage": {
                "pipeline": "iris",
                "run": f"r{number}",
                "featureSet": "iris",
                "snapshot": "s",
                "image": "conveyor:0.1.0",
            },
            "gates": [
                {
                    "name": "threshold:accuracy:min",
                    "passed": passed,
                    "message": "accuracy 0.95 >= 0.9" if passed else "accuracy 0.5 < 0.9",
                }
            ],
        },
        "status": status or {},
    }


def _plan(body: dict[str, Any], siblings: Sequence[Sibling] = (), *, now: datetime) -> Any:
    """Parse, then reconcile against `siblings`: what the handler's driver does."""
    version = parse_modelversion(body)
    if isinstance(version, Invalid):
        plan: Plan = version.plan()
        return plan
    return reconcile_modelversion(version, VersionWorld(now=now, siblings=siblings))


def test_registered_candidate_records_its_stage() -> None:
    plan = _plan(_version(1), now=NOW)
    assert plan.outcome.fields["stage"] == "Candidate"
    assert plan.outcome.fields["stageHistory"] == [
        {"stage": "Candidate", "time": "2026-11-27T12:00:00Z", "reason": "registered"}
    ]
    assert plan.archive == []


def test_promotion_archives_the_other_production_version() -> None:
    body = _version(
        2, "Production", status={"stage": "Candidate"}, reason="Production: promoted by alice"
    )
    siblings = [
        Sibling("iris-v1", "Production"),
        Sibling("iris-v2", "Production"),
        Sibling("iris-v3", "Candidate"),
    ]
    plan = _plan(body, siblings, now=NOW)
    assert plan.archive == ["iris-v1"]
    assert plan.outcome.fields["stageHistory"][-1]["reason"] == "promoted by alice"


def test_a_stale_reason_for_another_stage_is_not_reused() -> None:
    body = _version(
        1, "Production", status={"stage": "Archived"}, reason="Archived: replaced by iris-v2"
    )
    plan = _plan(body, now=NOW)
    assert plan.outcome.fields["stageHistory"][-1]["reason"] == "promoted"


def test_a_rejected_version_is_never_put_in_production() -> None:
    plan = _plan(_version(4, "Production", passed=False, status={"stage": "Rejected"}), now=NOW)
    ready = plan.outcome.conditions[0]
    assert (ready.status, ready.reason) == ("False", "RejectedByGates")
    assert "accuracy 0.5 < 0.9" in ready.message
    assert "stage" not in plan.outcome.fields and plan.archive == []


def test_name_must_follow_model_and_version() -> None:
    body = _version(1)
    body["metadata"]["name"] = "something-else"
    ready = _plan(body, now=NOW).outcome.conditions[0]
    assert ready.status == "False" and "iris-v1" in ready.message


def test_promotion_patches_the_replaced_version_before_its_own_status() -> None:
    body = _version(2, "Production", status={"stage": "Candidate"})
    plan = _plan(body, [Sibling("iris-v1", "Production")], now=NOW)
    patch, write = plan.actions()
    assert (patch.name, patch.body["spec"]) == ("iris-v1", {"stage": "Archived"})
    assert patch.body["metadata"]["annotations"] == {
        "conveyor.dev/stage-reason": "Archived: replaced by iris-v2"
    }
    assert isinstance(write, WriteStatus)


def test_a_production_version_cannot_be_deleted() -> None:
    version = ModelVersion.from_body(_version(1, "Production", status={"stage": "Production"}))
    plan = plan_deletion(version, "conveyor")
    assert "is the Production version of model iris" in plan.blocked
    assert plan.delete_prefix == ""


def test_deleting_keeps_the_artifacts_unless_asked() -> None:
    version = ModelVersion.from_body(_version(1, status={"stage": "Archived"}))
    assert plan_deletion(version, "conveyor") == DeletionPlan()


def test_deleting_artifacts_removes_the_runs_path_from_the_run_layout() -> None:
    body = _version(1, status={"stage": "Archived"})
    body["spec"]["deleteArtifacts"] = True
    plan = plan_deletion(ModelVersion.from_body(body), "conveyor")
    assert (plan.bucket, plan.delete_prefix) == ("conveyor", "models/default/iris/runs/r1/")
    assert not plan.blocked and not plan.warning


def test_an_artifact_outside_its_run_is_never_deleted() -> None:
    body = _version(1, status={"stage": "Archived"})
    body["spec"]["deleteArtifacts"] = True
    body["spec"]["artifact"]["uri"] = "s3://other-bucket/models/default/iris/runs/r1/model.skops"
    plan = plan_deletion(ModelVersion.from_body(body), "conveyor")
    assert plan.delete_prefix == ""
    assert "s3://other-bucket/" in plan.warning and "does not delete it" in plan.warning
