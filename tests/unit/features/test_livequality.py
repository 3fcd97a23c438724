"""The live-quality monitor over real log objects in a moto S3 server."""

from __future__ import annotations

import gzip
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pytest
from sklearn.metrics import accuracy_score, f1_score

from conveyor.clients.s3 import ObjectStorage
from conveyor.contracts.layouts import PredictionLogLayout, feedback_key, prediction_key
from conveyor.features.livejoin import LabelledPairs
from conveyor.features.livelog import decode_predictions
from conveyor.features.livequality import LiveLimits, ModelMonitor, VersionReference
from conveyor.features.predictionlog import FeedbackRecord, PredictionRecord, encode_records

BUCKET = "conveyor"
NOW = datetime(2026, 3, 14, 12, 0, 0, tzinfo=UTC)
CLASSES = ["setosa", "versicolor", "virginica"]
CARD = {
    "reference_profile": {
        "columns": [
            {
                "name": "width",
                "role": "feature",
                "reference": {
                    "kind": "numeric",
                    "count": 1000,
                    "quantiles": list(np.linspace(0.0, 10.0, 101)),
                },
            },
            {
                "name": "colour",
                "role": "feature",
                "reference": {
                    "kind": "categorical",
                    "count": 1000,
                    "frequencies": {"red": 0.5, "blue": 0.5},
                },
            },
            {"name": "id", "role": "entityKey", "reference": {}},
            {"name": "species", "role": "target", "reference": {"kind": "categorical"}},
        ]
    }
}


@pytest.fixture
def model(request: pytest.FixtureRequest) -> str:
    """A model name of its own per test: the bucket is shared."""
    return request.node.name.replace("_", "-")[:40].strip("-")


def predictions(model: str, start: int, count: int, when: datetime = NOW) -> list[PredictionRecord]:
    rng = np.random.default_rng(start)
    records = []
    for i in range(start, start + count):
        label = CLASSES[i % 3]
        scores = dict(zip(CLASSES, rng.dirichlet([1, 1, 1]).tolist(), strict=True))
        records.append(
            PredictionRecord(
                request_id=f"req-{i}/0",
                time=when - timedelta(seconds=60),
                model=model,
                version=1,
                inputs={"width": float(rng.uniform(0, 10)), "colour": ["red", "blue"][i % 2]},
                prediction=label if i % 4 else CLASSES[(i + 1) % 3],
                scores=scores,
            )
        )
    return records


def labels(model: str, start: int, count: int) -> list[FeedbackRecord]:
    return [
        FeedbackRecord(f"req-{i}/0", NOW - timedelta(seconds=30), model, CLASSES[i % 3])
        for i in range(start, start + count)
    ]


def put(storage: ObjectStorage, key: str, data: bytes) -> None:
    storage.put_bytes(BUCKET, key, data, content_encoding="gzip")


def reference(card: dict[str, Any] = CARD) -> dict[int, VersionReference]:
    return {1: VersionReference.from_card(1, "classification", card)}


def test_card_references_are_the_feature_columns_with_a_reference() -> None:
    assert sorted(reference()[1].references) == ["colour", "width"]


def test_metrics_join_predictions_with_feedback(storage: ObjectStorage, model: str) -> None:
    served = predictions(model, 0, 300)
    put(storage, prediction_key("ml", model, 1, NOW, "pod-a", 1), encode_records(served[:200]))
    put(storage, prediction_key("ml", model, 1, NOW, "pod-b", 1), encode_records(served[200:]))
    put(storage, feedback_key("ml", model, NOW, "pod-a", 1), encode_records(labels(model, 0, 150)))
    monitor = ModelMonitor(storage, BUCKET, PredictionLogLayout("ml", model))

    [report], counts = monitor.refresh(reference(), NOW)

    assert counts.objects == {"predictions": 2, "feedback": 1} and counts.records == 450
    assert report.served == 300 and report.labelled == 150
    truth = [CLASSES[i % 3] for i in range(150)]
    guesses = [r.prediction for r in served[:150]]
    assert report.metrics["accuracy"] == pytest.approx(accuracy_score(truth, guesses))
    assert report.metrics["f1"] == pytest.approx(f1_score(truth, guesses, average="macro"))
    probabilities = [r.scores[t] for r, t in zip(served, truth, strict=False) if r.scores]
    assert report.metrics["log_loss"] == pytest.approx(-np.mean(np.log(probabilities)))
    assert set(report.drift["width"]) == {"psi", "ks"}
    assert set(report.drift["colour"]) == {"psi", "chi2", "p_value", "cramers_v"}


def test_a_second_refresh_reads_only_new_objects(storage: ObjectStorage, model: str) -> None:
    put(
        storage,
        prediction_key("ml", model, 1, NOW, "pod-a", 1),
        encode_records(predictions(model, 0, 100)),
    )
    monitor = ModelMonitor(storage, BUCKET, PredictionLogLayout("ml", model))
    [first], _ = monitor.refresh(reference(), NOW)
    assert first.labelled == 0 and first.served == 100

    put(storage, feedback_key("ml", model, NOW, "pod-a", 1), encode_records(labels(model, 0, 40)))
    put(
        storage,
        prediction_key("ml", model, 1, NOW, "pod-a", 2),
        encode_records(predictions(model, 100, 50)),
    )
    [second], counts = monitor.refresh(reference(), NOW)

    assert counts.objects == {"predictions": 1, "feedback": 1}
    assert second.served == 150 and second.labelled == 40  # pending predictions met labels
    [third], counts = monitor.refresh(reference(), NOW)
    assert counts.objects == {"predictions": 0, "feedback": 0} and third.labelled == 40


def test_feedback_before_its_prediction_waits_for_it(storage: ObjectStorage, model: str) -> None:
    put(storage, feedback_key("ml", model, NOW, "pod-a", 1), encode_records(labels(model, 0, 10)))
    monitor = ModelMonitor(storage, BUCKET, PredictionLogLayout("ml", model))
    assert monitor.refresh(reference(), NOW)[0] == []
    put(
        storage,
        prediction_key("ml", model, 1, NOW, "pod-a", 1),
        encode_records(predictions(model, 0, 10)),
    )
    [report], _ = monitor.refresh(reference(), NOW)
    assert report.labelled == 10


def test_a_shadow_and_its_champion_each_join_the_label_of_a_shared_request(
    storage: ObjectStorage, model: str
) -> None:
    champion = predictions(model, 0, 90)
    shadow = [replace(r, version=2, prediction=CLASSES[0]) for r in champion]
    put(storage, feedback_key("ml", model, NOW, "pod-a", 1), encode_records(labels(model, 0, 90)))
    put(storage, prediction_key("ml", model, 1, NOW, "pod-a", 2), encode_records(champion))
    monitor = ModelMonitor(storage, BUCKET, PredictionLogLayout("ml", model))
    references = {**reference(), 2: VersionReference.from_card(2, "classification", CARD)}
    [first], _ = monitor.refresh(references, NOW)
    assert first.version == 1 and first.labelled == 90

    put(storage, prediction_key("ml", model, 2, NOW, "pod-a", 3), encode_records(shadow))  # later
    one, two = monitor.refresh(references, NOW)[0]

    assert (one.labelled, two.labelled) == (90, 90)
    assert two.metrics["accuracy"] == pytest.approx(1 / 3)  # always the first class
    assert one.metrics["accuracy"] == pytest.approx(first.metrics["accuracy"])
    same = two.same_requests[1]
    assert same.labelled == 90 and same.other_metrics == one.metrics


def test_two_versions_are_compared_on_the_requests_both_answered(
    storage: ObjectStorage, model: str
) -> None:
    before = predictions(model, 0, 60)  # the champion alone, before its shadow started
    after = predictions(model, 60, 30)
    shadow = [replace(r, version=2) for r in after]
    put(storage, feedback_key("ml", model, NOW, "pod-a", 1), encode_records(labels(model, 0, 90)))
    put(storage, prediction_key("ml", model, 1, NOW, "pod-a", 2), encode_records(before + after))
    put(storage, prediction_key("ml", model, 2, NOW, "pod-a", 3), encode_records(shadow))
    monitor = ModelMonitor(storage, BUCKET, PredictionLogLayout("ml", model))
    references = {**reference(), 2: VersionReference.from_card(2, "classification", CARD)}

    one, two = monitor.refresh(references, NOW)[0]

    assert (one.labelled, two.labelled) == (90, 30)
    assert one.same_requests[2].labelled == two.same_requests[1].labelled == 30
    truth = [CLASSES[i % 3] for i in range(60, 90)]
    on_shared = accuracy_score(truth, [r.prediction for r in after])
    assert two.same_requests[1].metrics["accuracy"] == pytest.approx(on_shared)
    assert two.same_requests[1].other_metrics["accuracy"] == pytest.approx(on_shared)
    assert one.metrics["accuracy"] != pytest.approx(on_shared)  # the whole window differs


def test_a_corrupted_object_is_skipped_and_counted(storage: ObjectStorage, model: str) -> None:
    put(storage, prediction_key("ml", model, 1, NOW, "pod-a", 1), b"not gzip at all")
    put(
        storage,
        prediction_key("ml", model, 1, NOW, "pod-a", 2),
        gzip.compress(b'{"request_id": 1\n'),
    )
    put(
        storage,
        prediction_key("ml", model, 1, NOW, "pod-a", 3),
        encode_records(predictions(model, 0, 5)),
    )
    monitor = ModelMonitor(storage, BUCKET, PredictionLogLayout("ml", model))

    [report], counts = monitor.refresh(reference(), NOW)

    assert counts.unreadable["predictions"] == 2 and counts.objects["predictions"] == 3
    assert report.served == 5
    assert monitor.refresh(reference(), NOW)[1].unreadable["predictions"] == 0  # not re-read


def test_the_window_forgets_old_partitions_and_rows(storage: ObjectStorage, model: str) -> None:
    yesterday = NOW - timedelta(days=1)
    put(
        storage,
        prediction_key("ml", model, 1, yesterday, "pod-a", 1),
        encode_records(predictions(model, 0, 5, yesterday)),
    )
    put(
        storage,
        prediction_key("ml", model, 1, NOW, "pod-a", 1),
        encode_records(predictions(model, 5, 5)),
    )
    monitor = ModelMonitor(
        storage,
        BUCKET,
        PredictionLogLayout("ml", model),
        LiveLimits(window_seconds=3600, buckets=4),
    )

    [report], counts = monitor.refresh(reference(), NOW)

    assert counts.objects["predictions"] == 1  # yesterday's partition is not listed
    assert report.served == 5
    monitor.refresh(reference(), NOW + timedelta(days=1))
    assert all("2026-03-14" not in prefix for prefix in monitor.seen)
    assert not any(monitor.sketches.get(1, {}).values())


def test_pending_rows_are_bounded(storage: ObjectStorage, model: str) -> None:
    put(
        storage,
        prediction_key("ml", model, 1, NOW, "pod-a", 1),
        encode_records(predictions(model, 0, 300)),
    )
    limits = LiveLimits(max_pending_predictions=100, max_labelled=20)
    monitor = ModelMonitor(storage, BUCKET, PredictionLogLayout("ml", model), limits)
    monitor.refresh(reference(), NOW)
    assert monitor.pending is not None and len(monitor.pending) == 100
    put(storage, feedback_key("ml", model, NOW, "pod-a", 1), encode_records(labels(model, 0, 300)))
    [report], _ = monitor.refresh(reference(), NOW)
    assert report.labelled == 20  # 100 could join; the latest 20 are kept


def test_mixed_types_and_refused_requests_are_read(storage: ObjectStorage, model: str) -> None:
    lines = [
        {
            "request_id": "a",
            "time": "2026-03-14T11:59:00.000000Z",
            "model": model,
            "version": 1,
            "inputs": {"width": 1.5, "colour": "red"},
            "prediction": "setosa",
            "scores": None,
        },
        {
            "request_id": "b",
            "time": "2026-03-14T11:59:01.000000Z",
            "model": model,
            "version": 1,
            "inputs": {"width": "2.5", "colour": 7},
            "prediction": "setosa",
            "scores": None,
        },
        {
            "request_id": "c",
            "time": "2026-03-14T11:59:02.000000Z",
            "model": model,
            "version": 1,
            "inputs": {"width": "wide"},
            "prediction": None,
            "scores": None,
            "error": "bad width",
        },
    ]
    data = gzip.compress(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    batch = decode_predictions(data, ["width", "colour"])
    assert batch.refused == 1 and batch.request_id.to_pylist() == ["a", "b"]
    assert batch.inputs["colour"].to_pylist() == ["red", "7"]
    put(storage, prediction_key("ml", model, 1, NOW, "pod-a", 1), data)
    [report], counts = ModelMonitor(storage, BUCKET, PredictionLogLayout("ml", model)).refresh(
        reference(), NOW
    )
    assert report.served == 2 and counts.refused == 1


def test_labelled_pairs_keep_the_window_and_the_latest() -> None:
    pairs = LabelledPairs(
        version=np.ones(5, np.int64),
        request=np.arange(5, dtype=np.int64),
        time_us=np.arange(5, dtype=np.int64),
        truth=np.zeros(5),
        predicted=np.zeros(5),
        probability=np.zeros(5),
    )
    pairs.keep(since_us=1, most=3)
    assert pairs.time_us.tolist() == [2, 3, 4]
