"""The catalog reads files only where a cluster object points, and only under that object's
own place in the bucket."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conveyor.clients.s3 import ObjectStorage
from conveyor.ui.catalog import Catalog, NotFound, Unavailable
from tests.unit.ui.world import (
    BUCKET,
    CARD,
    NAMESPACE,
    RegistryKube,
    featureset,
    pipeline,
    registry,
    run_layout,
    snapshot_layout,
    version,
)


@pytest.fixture
def stored(storage: ObjectStorage) -> ObjectStorage:
    storage.put_bytes(BUCKET, snapshot_layout().report, b"<h1>data report</h1>")
    run = run_layout()
    storage.put_bytes(BUCKET, run.report, b"<h1>training report</h1>")
    storage.put_bytes(BUCKET, run.card, json.dumps(CARD).encode())
    return storage


def _catalog(storage: ObjectStorage, objects: list[dict[str, Any]] | None = None) -> Catalog:
    return Catalog(RegistryKube(registry() if objects is None else objects), storage)  # type: ignore[arg-type]


def test_the_overview_groups_objects_by_namespace(stored: ObjectStorage) -> None:
    other = pipeline("elsewhere")
    other["metadata"]["namespace"] = "team-b"
    [ml, team_b] = _catalog(stored, [*registry(), other]).overview()
    assert ml.name == NAMESPACE and team_b.name == "team-b"
    assert [p["metadata"]["name"] for p in ml.pipelines] == ["iris", "iris-logistic"]
    assert [v["metadata"]["name"] for v in ml.versions] == [
        "iris-classifier-v1",
        "iris-logistic-v1",
    ]
    assert [p["metadata"]["name"] for p in team_b.pipelines] == ["elsewhere"]


def test_one_namespace_only_when_asked(stored: ObjectStorage) -> None:
    kube = RegistryKube(registry())
    catalog = Catalog(kube, stored, namespace="empty")  # type: ignore[arg-type]
    [view] = catalog.overview()
    assert view.name == "empty" and not view.featuresets
    assert {namespace for _, namespace, _ in kube.calls} == {"empty"}
    with pytest.raises(NotFound, match="outside namespace empty"):
        catalog.featureset(NAMESPACE, "iris")


def test_reports_and_cards_are_read_where_the_objects_point(stored: ObjectStorage) -> None:
    catalog = _catalog(stored)
    assert catalog.data_report(catalog.featureset(NAMESPACE, "iris")) == b"<h1>data report</h1>"
    mv = catalog.version(NAMESPACE, "iris-classifier-v1")
    assert catalog.training_report(mv) == b"<h1>training report</h1>"
    assert catalog.card(mv) == (CARD, None)
    assert catalog.pipelines_on(NAMESPACE, "iris")[1]["metadata"]["name"] == "iris-logistic"


def test_a_uri_outside_the_objects_own_place_is_refused(stored: ObjectStorage) -> None:
    foreign = f"s3://{BUCKET}/models/other-team/secret/runs/r/report.html"
    stored.put_bytes(BUCKET, "models/other-team/secret/runs/r/report.html", b"not yours")
    catalog = _catalog(stored, [version(report_uri=foreign, card_uri=foreign)])
    mv = catalog.version(NAMESPACE, "iris-classifier-v1")
    with pytest.raises(Unavailable, match="not under the path of its run"):
        catalog.training_report(mv)
    card, problem = catalog.card(mv)
    assert card == {} and "not under the path of its run" in (problem or "")
    moved = featureset()
    moved["status"]["latestSnapshot"]["reportUrl"] = foreign
    with pytest.raises(Unavailable, match="not where its snapshot's report is written"):
        catalog.data_report(moved)


def test_missing_objects_and_files_are_not_found(storage: ObjectStorage) -> None:
    catalog = _catalog(storage)
    with pytest.raises(NotFound, match="FeatureSet ml/nope does not exist"):
        catalog.featureset(NAMESPACE, "nope")
    with pytest.raises(NotFound, match="is not in the object store"):
        catalog.training_report(catalog.version(NAMESPACE, "iris-logistic-v1"))
    unmaterialized = featureset()
    unmaterialized["status"] = {}
    with pytest.raises(NotFound, match="no snapshot with a data report"):
        catalog.data_report(unmaterialized)
    card, problem = catalog.card(catalog.version(NAMESPACE, "iris-logistic-v1"))
    assert card == {} and "is not in the object store" in (problem or "")
