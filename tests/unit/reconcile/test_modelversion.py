"""Stages in effect, one Production per model, and Rejected versions never served."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from conveyor.reconcile.modelversion import Sibling, reconcile_modelversion

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


def test_registered_candidate_records_its_stage() -> None:
    plan = reconcile_modelversion(_version(1), now=NOW)
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
    plan = reconcile_modelversion(body, siblings, now=NOW)
    assert plan.archive == ["iris-v1"]
    assert plan.outcome.fields["stageHistory"][-1]["reason"] == "promoted by alice"


def test_a_stale_reason_for_another_stage_is_not_reused() -> None:
    body = _version(
        1, "Production", status={"stage": "Archived"}, reason="Archived: replaced by iris-v2"
    )
    plan = reconcile_modelversion(body, now=NOW)
    assert plan.outcome.fields["stageHistory"][-1]["reason"] == "promoted"


def test_a_rejected_version_is_never_put_in_production() -> None:
    plan = reconcile_modelversion(
        _version(4, "Production", passed=False, status={"stage": "Rejected"}), now=NOW
    )
    ready = plan.outcome.conditions[0]
    assert (ready.status, ready.reason) == ("False", "RejectedByGates")
    assert "accuracy 0.5 < 0.9" in ready.message
    assert "stage" not in plan.outcome.fields and plan.archive == []


def test_name_must_follow_model_and_version() -> None:
    body = _version(1)
    body["metadata"]["name"] = "something-else"
    ready = reconcile_modelversion(body, now=NOW).outcome.conditions[0]
    assert ready.status == "False" and "iris-v1" in ready.message
