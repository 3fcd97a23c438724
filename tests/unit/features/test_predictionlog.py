"""The prediction and feedback log: its format, the buffered writer, and the labelled join."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conveyor.clients.s3 import ObjectStorage
from conveyor.contracts.layouts import PredictionLogLayout, feedback_key, prediction_key
from conveyor.features.logwriter import LogWriter
from conveyor.features.predictionlog import (
    FeedbackRecord,
    PredictionRecord,
    decode_records,
    encode_records,
    read_labelled,
)

BUCKET = "conveyor"
NOON = datetime(2026, 3, 14, 12, 0, 0, 123456, tzinfo=UTC)


def prediction(
    request_id: str, when: datetime = NOON, version: int = 1, model: str = "iris", **inputs: Any
) -> PredictionRecord:
    return PredictionRecord(
        request_id=request_id,
        time=when,
        model=model,
        version=version,
        inputs=inputs or {"x": 1.5},
        prediction="setosa",
        scores={"setosa": 0.75, "virginica": 0.25},
    )


def keys(client: Any, prefix: str) -> list[str]:
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [entry["Key"] for entry in listing.get("Contents", [])]


def test_keys_are_partitioned_by_namespace_model_version_and_date() -> None:
    assert prediction_key("ml", "iris", 3, NOON, "iris-serve-7f9c", 12) == (
        "logs/ml/predictions/model=iris/version=3/date=2026-03-14/"
        "iris-serve-7f9c-120000123456-000012.jsonl.gz"
    )
    later = datetime(2026, 3, 15, 1, 0, tzinfo=UTC) - timedelta(hours=2)  # 23:00 UTC
    assert feedback_key("ml", "iris", later.astimezone(), "w", 1) == (
        "logs/ml/feedback/model=iris/date=2026-03-14/w-230000000000-000001.jsonl.gz"
    )
    with pytest.raises(ValueError, match="writer 'a/b' must be letters, digits"):
        prediction_key("ml", "iris", 1, NOON, "a/b", 1)


def test_records_round_trip_through_stable_gzip_json_lines() -> None:
    records = [prediction("r1"), prediction("r2", when=NOON.replace(tzinfo=None))]
    data = encode_records(records)
    assert data == encode_records(records)  # same records, same bytes
    first = json.loads(gzip.decompress(data).decode().splitlines()[0])
    assert list(first) == [
        "request_id",
        "time",
        "model",
        "version",
        "inputs",
        "prediction",
        "scores",
        "error",
    ]
    assert first["time"] == "2026-03-14T12:00:00.123456Z"
    decoded = decode_records(data, PredictionRecord)
    assert decoded[0] == records[0]
    assert decoded[1].time == NOON  # a naive time is UTC
    feedback = [FeedbackRecord(request_id="r1", time=NOON, model="iris", label="setosa")]
    assert decode_records(encode_records(feedback), FeedbackRecord) == feedback


def test_a_corrupt_line_names_its_number() -> None:
    data = gzip.compress(b'{"request_id": "r"}\n')
    with pytest.raises(ValueError, match="line 1 is not a FeedbackRecord"):
        decode_records(data, FeedbackRecord)


def test_labelled_predictions_join_their_latest_feedback(s3: Any, storage: ObjectStorage) -> None:
    writer = LogWriter(storage, BUCKET, namespace="ml", writer="join")
    old = NOON - timedelta(days=40)
    for record in [
        prediction("g1", model="join", x=1.0, colour="blue"),
        prediction("g2", model="join", version=2, x=2.0, colour="red"),
        prediction("g3", model="join", x=3.0, colour="blue"),  # never labelled
        prediction("g4", model="join", when=old, x=4.0, colour="blue"),  # too old
        FeedbackRecord("g1", NOON + timedelta(minutes=1), "join", "setosa"),
        FeedbackRecord("g2", NOON + timedelta(minutes=2), "join", "versicolor"),
        FeedbackRecord("g2", NOON + timedelta(minutes=9), "join", "virginica"),  # correction
        FeedbackRecord("g4", old, "join", "setosa"),
    ]:
        writer.add(record)
    writer.flush()
    writer.add(prediction("g1", model="join", x=1.0, colour="blue"))  # logged twice
    writer.flush()
    table = read_labelled(
        storage,
        BUCKET,
        PredictionLogLayout("ml", "join"),
        since=NOON - timedelta(days=30),
        target="species",
    )
    assert table.column_names == ["x", "colour", "species", "request_id", "prediction_time"]
    rows = sorted(table.to_pylist(), key=lambda row: row["request_id"])
    assert rows == [
        {
            "x": 1.0,
            "colour": "blue",
            "species": "setosa",
            "request_id": "g1",
            "prediction_time": NOON,
        },
        {
            "x": 2.0,
            "colour": "red",
            "species": "virginica",
            "request_id": "g2",
            "prediction_time": NOON,
        },
    ]


def test_no_logs_give_an_empty_table(s3: Any, storage: ObjectStorage) -> None:
    table = read_labelled(
        storage, BUCKET, PredictionLogLayout("ml", "nothing"), since=NOON, target="species"
    )
    assert table.num_rows == 0
    assert "request_id" in table.column_names


def test_an_unreadable_log_object_is_named(s3: Any, storage: ObjectStorage) -> None:
    key = "logs/ml/feedback/model=broken/date=2026-03-14/w-000000000000-000001.jsonl.gz"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"not gzip")
    with pytest.raises(ValueError, match=f"s3://{BUCKET}/{key} is unreadable"):
        read_labelled(
            storage, BUCKET, PredictionLogLayout("ml", "broken"), since=NOON, target="species"
        )


def test_a_refused_request_is_logged_with_its_error_and_never_labelled(
    s3: Any, storage: ObjectStorage
) -> None:
    refused = PredictionRecord(
        request_id="h1",
        time=NOON,
        model="refused",
        version=1,
        inputs={"x": "not a number"},
        prediction=None,
        error="Input 'x' must be FP64",
    )
    line = json.loads(gzip.decompress(encode_records([refused])))
    assert line["error"] == "Input 'x' must be FP64"
    assert json.loads(gzip.decompress(encode_records([prediction("h0")])))["error"] is None
    writer = LogWriter(storage, BUCKET, namespace="ml", writer="refused")
    writer.add(refused)
    writer.add(FeedbackRecord("h1", NOON, "refused", "setosa"))
    writer.flush()
    table = read_labelled(
        storage, BUCKET, PredictionLogLayout("ml", "refused"), since=NOON, target="species"
    )
    assert table.num_rows == 0
