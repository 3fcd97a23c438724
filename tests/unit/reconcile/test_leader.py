"""status.leader: the best model on a FeatureSet's data, among versions judged on one holdout."""

from __future__ import annotations

from typing import Any

from conveyor.api.v1alpha1 import ModelVersion
from conveyor.reconcile.leader import leading_version

DIGEST = "sha256:" + "0" * 64


def version(
    name: str,
    *,
    pipeline: str,
    score: float,
    holdout: str | None = "aaaa",
    metric: str = "f1_macro",
    minute: int = 0,
    stage: str = "Candidate",
    number: int = 1,
) -> ModelVersion:
    spec: dict[str, Any] = {
        "model": name.rsplit("-v", 1)[0],
        "version": number,
        "stage": stage,
        "task": "classification",
        "metric": metric,
        "metrics": {metric: score, "accuracy": score},
        "artifact": {"uri": f"s3://conveyor/{name}/model.skops", "digest": DIGEST},
        "lineage": {
            "pipeline": pipeline,
            "run": f"{name}-run",
            "featureSet": "iris",
            "snapshot": "snap1",
            "image": "conveyor:0.1.0",
            "trainedAt": f"2026-12-07T10:{minute:02d}:00Z",
            **({"holdout": holdout} if holdout else {}),
        },
    }
    return ModelVersion.from_body({"metadata": {"name": name, "namespace": "ml"}, "spec": spec})


def test_the_best_pipeline_metric_on_one_holdout_leads() -> None:
    leader = leading_version(
        [
            version("forest-v1", pipeline="iris", score=0.94, minute=1),
            version("logistic-v1", pipeline="iris-logistic", score=0.97, minute=2),
        ]
    )
    assert leader is not None
    assert (leader.version, leader.pipeline, leader.metric, leader.score) == (
        "logistic-v1",
        "iris-logistic",
        "f1_macro",
        0.97,
    )
    assert (leader.compared, leader.holdout, leader.snapshot) == (2, "aaaa", "snap1")
    assert leader.message == "f1_macro on holdout aaaa: logistic-v1 0.97, forest-v1 0.94"


def test_a_loss_leads_by_its_lowest_value() -> None:
    leader = leading_version(
        [
            version("a-v1", pipeline="a", score=3.0, metric="rmse"),
            version("b-v1", pipeline="b", score=2.5, metric="rmse"),
        ]
    )
    assert leader is not None and leader.version == "b-v1"


def test_versions_judged_on_another_holdout_are_not_ranked_but_named() -> None:
    """The newest version's holdout decides: an older, better score on other rows is not
    comparable."""
    leader = leading_version(
        [
            version("forest-v1", pipeline="iris", score=0.99, holdout="old", minute=1),
            version("forest-v2", pipeline="iris", score=0.93, holdout="new", minute=5, number=2),
            version("logistic-v1", pipeline="iris-logistic", score=0.91, holdout="new", minute=6),
        ]
    )
    assert leader is not None
    assert (leader.version, leader.compared, leader.holdout) == ("forest-v2", 2, "new")
    assert leader.message.endswith("not ranked (judged on another holdout): forest-v1")


def test_each_pipeline_competes_with_its_newest_version() -> None:
    leader = leading_version(
        [
            version("forest-v1", pipeline="iris", score=0.99, minute=1),
            version("forest-v2", pipeline="iris", score=0.90, minute=3, number=2),
            version("logistic-v1", pipeline="iris-logistic", score=0.95, minute=2),
        ]
    )
    assert leader is not None and leader.version == "logistic-v1" and leader.compared == 2


def test_rejected_archived_and_unfingerprinted_versions_never_lead() -> None:
    assert leading_version([version("a-v1", pipeline="a", score=0.9, holdout=None)]) is None
    leader = leading_version(
        [
            version("a-v1", pipeline="a", score=0.99, stage="Rejected"),
            version("b-v1", pipeline="b", score=0.95, stage="Archived"),
            version("c-v1", pipeline="c", score=0.80),
        ]
    )
    assert leader is not None and leader.version == "c-v1" and leader.compared == 1


def test_a_tie_keeps_the_version_trained_first() -> None:
    leader = leading_version(
        [
            version("late-v1", pipeline="late", score=0.95, minute=9),
            version("early-v1", pipeline="early", score=0.95, minute=1),
        ]
    )
    assert leader is not None and leader.version == "early-v1"


def test_the_metric_most_pipelines_use_ranks_them() -> None:
    leader = leading_version(
        [
            version("a-v1", pipeline="a", score=0.90, metric="accuracy", minute=1),
            version("b-v1", pipeline="b", score=0.92, metric="f1_macro", minute=2),
            version("c-v1", pipeline="c", score=0.95, metric="f1_macro", minute=3),
        ]
    )
    assert leader is not None and (leader.metric, leader.version) == ("f1_macro", "c-v1")
