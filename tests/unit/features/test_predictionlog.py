"""The prediction and feedback log: its format, the buffered writer, and the labelled join."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conveyor.clients.s3 import ObjectStorage, S3Settings
from conveyor.contracts.layouts import feedback_key, prediction_key
from conveyor.features.predictionlog import (
    FeedbackRecord,
    LogWriter,
    PredictionRecord,
    decode_records,
    encode_records,
    read_labelled,
)
from conveyor.sandbox.objectstore import ObjectStore

BUCKET = "conveyor"
NOON = datetime(2026, 3, 14, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObjectStore]:
    root = tmp_path_factory.mktemp("s3")
    with ObjectStore(data_dir=root, log_file=root / "s3.log", prefer="moto") as store:
        store.ensure_buckets(BUCKET)
        yield store


@pytest.fixture
def s3(store: ObjectStore) -> Iterator[Any]:
    """A plain boto3 client: how the tests look at what the writer wrote."""
    with closing(store.client()) as client:
        yield client


@pytest.fixture
def storage(store: ObjectStore) -> Iterator[ObjectStorage]:
    """The storage interface the writer and reader take."""
    settings = S3Settings(
        endpoint=store.endpoint,
        access_key=store.credentials.access_key,
        secret_key=store.credentials.secret_key,
    )
    with ObjectStorage(settings) as storage:
        yield storage


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


def test_keys_are_partitioned_by_model_version_and_date() -> None:
    assert prediction_key("iris", 3, NOON, "iris-serve-7f9c", 12) == (
        "logs/predictions/model=iris/version=3/date=2026-03-14/"
        "iris-serve-7f9c-120000123456-000012.jsonl.gz"
    )
    later = datetime(2026, 3, 15, 1, 0, tzinfo=UTC) - timedelta(hours=2)  # 23:00 UTC
    assert feedback_key("iris", later.astimezone(), "w", 1) == (
        "logs/feedback/model=iris/date=2026-03-14/w-230000000000-000001.jsonl.gz"
    )
    with pytest.raises(ValueError, match="writer 'a/b' must be letters, digits"):
        prediction_key("iris", 1, NOON, "a/b", 1)


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


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_writer_flushes_when_enough_records_are_buffered(
    s3: Any, storage: ObjectStorage
) -> None:
    writer = LogWriter(
        storage, BUCKET, writer="size", max_records=3, max_age_seconds=60, clock=Clock()
    )
    writer.add(prediction("a1"))
    writer.add(prediction("a2"))
    assert keys(s3, "logs/predictions/model=iris/version=1/date=2026-03-14/size-") == []
    writer.add(prediction("a3"))
    [key] = keys(s3, "logs/predictions/model=iris/version=1/date=2026-03-14/size-")
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"]
    with closing(body):
        records = decode_records(body.read(), PredictionRecord)
    assert [r.request_id for r in records] == ["a1", "a2", "a3"]
    assert writer.buffered == 0


def test_the_writer_flushes_when_the_oldest_record_is_old_enough(
    s3: Any, storage: ObjectStorage
) -> None:
    clock = Clock()
    writer = LogWriter(
        storage, BUCKET, writer="age", max_records=100, max_age_seconds=10, clock=clock
    )
    writer.add(prediction("b1", model="age"))
    clock.now += 9
    assert writer.flush_if_due() == []
    clock.now += 1
    written = writer.flush_if_due()
    assert written == keys(s3, "logs/predictions/model=age/")
    assert len(written) == 1


def test_one_object_per_kind_model_version_and_date(s3: Any, storage: ObjectStorage) -> None:
    writer = LogWriter(storage, BUCKET, writer="split", clock=Clock())
    writer.add(prediction("c1", model="split", version=1))
    writer.add(prediction("c2", model="split", version=2))
    writer.add(prediction("c3", model="split", version=2, when=NOON + timedelta(days=1)))
    writer.add(FeedbackRecord(request_id="c1", time=NOON, model="split", label="setosa"))
    written = writer.flush()
    assert [key.rsplit("/", 1)[0] for key in written] == [
        "logs/predictions/model=split/version=1/date=2026-03-14",
        "logs/predictions/model=split/version=2/date=2026-03-14",
        "logs/predictions/model=split/version=2/date=2026-03-15",
        "logs/feedback/model=split/date=2026-03-14",
    ]
    assert len(set(written)) == 4


def test_records_are_kept_while_storage_fails_and_written_when_it_recovers(
    store: ObjectStore, s3: Any, storage: ObjectStorage
) -> None:
    clock = Clock()
    writer = LogWriter(
        storage, "recovering", writer="w", max_records=2, max_age_seconds=5, clock=clock
    )
    writer.add(prediction("d1"))
    writer.add(prediction("d2"))  # due by size: the write fails, no such bucket yet
    assert writer.buffered == 2
    writer.add(prediction("d3"))  # not retried at once on every request
    assert writer.buffered == 3
    store.ensure_buckets("recovering")
    clock.now += 5
    written = writer.flush_if_due()
    assert writer.buffered == 0
    body = s3.get_object(Bucket="recovering", Key=written[0])["Body"]
    with closing(body):
        records = decode_records(body.read(), PredictionRecord)
    assert [r.request_id for r in records] == ["d1", "d2", "d3"]


def test_the_buffer_is_bounded_while_storage_is_down(s3: Any, storage: ObjectStorage) -> None:
    writer = LogWriter(
        storage, "never-created", writer="w", max_records=2, max_buffered=3, clock=Clock()
    )
    for number in range(5):
        writer.add(prediction(f"e{number}"))
    writer.flush()
    assert writer.buffered == 3
    assert writer.dropped == 2


def test_a_background_thread_flushes_an_idle_writer(s3: Any, storage: ObjectStorage) -> None:
    writer = LogWriter(storage, BUCKET, writer="idle", max_age_seconds=0.1)
    writer.start()
    try:
        writer.add(prediction("f1", model="idle"))
        for _ in range(100):
            if writer.buffered == 0:
                break
            time.sleep(0.05)
        assert writer.buffered == 0
    finally:
        writer.close()
    assert len(keys(s3, "logs/predictions/model=idle/")) == 1


def test_labelled_predictions_join_their_latest_feedback(s3: Any, storage: ObjectStorage) -> None:
    writer = LogWriter(storage, BUCKET, writer="join", clock=Clock())
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
        storage, BUCKET, "join", since=NOON - timedelta(days=30), target="species"
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
    table = read_labelled(storage, BUCKET, "nothing", since=NOON, target="species")
    assert table.num_rows == 0
    assert "request_id" in table.column_names


def test_an_unreadable_log_object_is_named(s3: Any, storage: ObjectStorage) -> None:
    key = "logs/feedback/model=broken/date=2026-03-14/w-000000000000-000001.jsonl.gz"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"not gzip")
    with pytest.raises(ValueError, match=f"s3://{BUCKET}/{key} is unreadable"):
        read_labelled(storage, BUCKET, "broken", since=NOON, target="species")
