"""Which versions a comparison takes per pipeline (conveyor.ui.comparisons.pick_versions and
candidate), on ModelVersion bodies as the API returns them."""

from __future__ import annotations

from typing import Any

from conveyor.ui.comparisons import candidate, pick_versions


def version(
    pipeline: str, number: int, stage: str = "Candidate", served: str | None = None
) -> dict[str, Any]:
    model = {"iris": "iris-classifier", "iris-logistic": "iris-logistic"}[pipeline]
    return {
        "metadata": {"name": f"{model}-v{number}", "namespace": "default"},
        "spec": {
            "model": model,
            "version": number,
            "stage": stage,
            "artifact": {
                "cardUri": f"s3://conveyor/models/{model}/{number}/card.json",
                "reportUri": f"s3://conveyor/models/{model}/{number}/report.html",
            },
            "lineage": {"pipeline": pipeline},
        },
        "status": {"stage": served or stage, "liveMetrics": {"metrics": {"accuracy": 0.9}}},
    }


ITEMS = [
    version("iris", 1, "Archived"),
    version("iris", 2, "Production"),
    version("iris", 3, "Rejected"),
    version("iris-logistic", 1),
    version("iris-logistic", 2),
]


def names(items: list[Any]) -> list[str]:
    return [item["metadata"]["name"] for item in items]


def test_per_pipeline_the_newest_and_the_production_version() -> None:
    assert names(pick_versions(ITEMS, ["iris", "iris-logistic"])) == [
        "iris-classifier-v2",
        "iris-classifier-v3",
        "iris-logistic-v2",
    ]


def test_every_version_when_asked_and_only_the_pipelines_named() -> None:
    assert names(pick_versions(ITEMS, ["iris"], every_version=True)) == [
        "iris-classifier-v1",
        "iris-classifier-v2",
        "iris-classifier-v3",
    ]
    assert pick_versions(ITEMS, ["roses"]) == []


def test_a_version_being_promoted_counts_as_production() -> None:
    items = [version("iris", 1, "Archived", served="Production"), version("iris", 2, "Production")]
    items[1]["status"]["stage"] = "Candidate"  # asked for, not served yet
    assert names(pick_versions(items, ["iris"])) == ["iris-classifier-v1", "iris-classifier-v2"]


def test_a_candidate_carries_the_served_stage_live_figures_and_the_reason_of_a_missing_card() -> (
    None
):
    item = version("iris", 2, "Production", served="Candidate")
    found = candidate(item, ({}, "card s3://conveyor/models/iris-classifier/2/card.json: gone"))
    assert (found.name, found.pipeline, found.model, found.version) == (
        "iris-classifier-v2",
        "iris",
        "iris-classifier",
        2,
    )
    assert found.stage == "Candidate"  # what is served
    assert found.live == {"metrics": {"accuracy": 0.9}}
    assert found.report_uri == "s3://conveyor/models/iris-classifier/2/report.html"
    assert found.card == {} and found.problem is not None and "gone" in found.problem
