"""The log writer against a real S3 server (moto's): batching by size and age, back-off while
storage fails, the bounded buffer and its drop counts, and the last write at shutdown."""

from __future__ import annotations

import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conveyor.clients.s3 import ObjectStorage
from conveyor.features.logwriter import BUFFER_FULL, SHUTDOWN, LogWriter
from conveyor.features.predictionlog import (
    FeedbackRecord,
    LogLines,
    PredictionRecord,
    decode_records,
    record_lines,
)
from conveyor.sandbox.objectstore import ObjectStore

BUCKET = "conveyor"
NOON = datetime(2026, 3, 14, 12, 0, 0, 123456, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def prediction(
    request_id: str, when: datetime = NOON, version: int = 1, model: str = "iris"
) -> PredictionRecord:
    return PredictionRecord(request_id, when, model, version, {"x": 1.5}, "setosa")


def keys(client: Any, prefix: str, bucket: str = BUCKET) -> list[str]:
    listing = client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [entry["Key"] for entry in listing.get("Contents", [])]


def read_ids(client: Any, key: str, bucket: str = BUCKET) -> list[str]:
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    with closing(body):
        return [record.request_id for record in decode_records(body.read(), PredictionRecord)]


def test_adding_never_writes_and_a_full_batch_is_due(s3: Any, storage: ObjectStorage) -> None:
    writer = LogWriter(
        storage,
        BUCKET,
        namespace="ml",
        writer="size",
        max_records=3,
        max_age_seconds=60,
        clock=Clock(),
    )
    prefix = "logs/ml/predictions/model=size/"
    writer.add(prediction("a1", model="size"))
    writer.add(prediction("a2", model="size"))
    assert writer.flush_if_due() == []
    writer.add(prediction("a3", model="size"))
    assert keys(s3, prefix) == []  # the request path never writes
    [key] = writer.flush_if_due()
    assert key.startswith(f"{prefix}version=1/date=2026-03-14/size-")
    assert read_ids(s3, key) == ["a1", "a2", "a3"]
    assert writer.buffered == 0
    assert writer.stats.records_written == 3


def test_the_oldest_record_makes_a_batch_due(s3: Any, storage: ObjectStorage) -> None:
    clock = Clock()
    writer = LogWriter(
        storage,
        BUCKET,
        namespace="ml",
        writer="age",
        max_records=100,
        max_age_seconds=10,
        clock=clock,
    )
    writer.add(prediction("b1", model="age"))
    clock.now += 9
    assert writer.flush_if_due() == []
    clock.now += 1
    assert writer.flush_if_due() == keys(s3, "logs/ml/predictions/model=age/")


def test_objects_split_by_kind_version_date_and_size(s3: Any, storage: ObjectStorage) -> None:
    writer = LogWriter(
        storage, BUCKET, namespace="ml", writer="split", max_records=2, clock=Clock()
    )
    for number in range(3):
        writer.add(prediction(f"c{number}", model="split", version=1))
    writer.add(prediction("c3", model="split", version=2))
    writer.add(prediction("c4", model="split", version=2, when=NOON + timedelta(days=1)))
    writer.add(FeedbackRecord(request_id="c1", time=NOON, model="split", label="setosa"))
    written = writer.flush()
    assert [key.rsplit("/", 1)[0] for key in written] == [
        "logs/ml/predictions/model=split/version=1/date=2026-03-14",
        "logs/ml/predictions/model=split/version=1/date=2026-03-14",
        "logs/ml/predictions/model=split/version=2/date=2026-03-14",
        "logs/ml/predictions/model=split/version=2/date=2026-03-15",
        "logs/ml/feedback/model=split/date=2026-03-14",
    ]
    assert [read_ids(s3, key) for key in written[:2]] == [["c0", "c1"], ["c2"]]


def test_a_callable_entry_is_made_into_records_by_the_writer(
    s3: Any, storage: ObjectStorage
) -> None:
    writer = LogWriter(storage, BUCKET, namespace="ml", writer="lazy", clock=Clock())
    made: list[int] = []

    def records() -> LogLines:
        made.append(1)
        [lines] = record_lines([prediction("l0", model="lazy"), prediction("l1", model="lazy")])
        return lines

    writer.add_many(2, records)
    assert made == [] and writer.buffered == 2
    [key] = writer.flush()
    assert read_ids(s3, key) == ["l0", "l1"]


def test_a_failed_write_is_retried_with_back_off_under_the_same_key(
    store: ObjectStore, s3: Any, storage: ObjectStorage
) -> None:
    clock = Clock()
    writer = LogWriter(
        storage,
        "recovering",
        namespace="ml",
        writer="w",
        max_records=2,
        backoff_seconds=(1.0, 4.0),
        clock=clock,
    )
    writer.add(prediction("d1"))
    writer.add(prediction("d2"))
    assert writer.flush_if_due() == []  # no such bucket yet: the write fails
    assert writer.buffered == 2 and writer.stats.failed_writes == 1
    writer.add(prediction("d3"))
    writer.add(prediction("d4"))
    assert writer.flush_if_due() == []  # backing off: not retried at once
    clock.now += 1
    assert writer.flush_if_due() == []  # fails again; the back-off doubles
    assert writer.stats.failed_writes == 2
    store.ensure_buckets("recovering")
    clock.now += 1.5
    assert writer.flush_if_due() == []
    clock.now += 0.5
    first, second = writer.flush_if_due()
    assert read_ids(s3, first, "recovering") == ["d1", "d2"]
    assert read_ids(s3, second, "recovering") == ["d3", "d4"]
    assert first.endswith("-000001.jsonl.gz")  # the key chosen at the first attempt
    assert writer.buffered == 0 and writer.dropped == 0


def test_a_full_buffer_drops_new_records_and_counts_them(
    s3: Any, storage: ObjectStorage, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    writer = LogWriter(
        storage,
        "never-created",
        namespace="ml",
        writer="w",
        max_records=2,
        max_buffered=3,
        clock=clock,
    )
    accepted = [writer.add(prediction(f"e{number}")) for number in range(5)]
    assert accepted == [True, True, True, False, False]
    writer.flush_if_due()
    assert writer.buffered == 3
    assert writer.stats.dropped == {BUFFER_FULL: 2}
    warnings = [r.getMessage() for r in caplog.records if "Dropped" in r.getMessage()]
    assert len(warnings) == 1 and "2 (buffer_full)" in warnings[0]
    writer.add(prediction("e5"))
    writer.flush_if_due()  # within warn_seconds of the last warning: counted, not logged again
    assert len([r for r in caplog.records if "Dropped" in r.getMessage()]) == 1
    writer.close()
    assert writer.stats.dropped == {BUFFER_FULL: 3, SHUTDOWN: 3}
    assert writer.buffered == 0
    assert "1 (buffer_full), 3 (shutdown)" in caplog.records[-1].getMessage()


def test_the_background_thread_writes_an_idle_writer_and_close_writes_the_rest(
    s3: Any, storage: ObjectStorage
) -> None:
    writer = LogWriter(storage, BUCKET, namespace="ml", writer="idle", max_age_seconds=0.1)
    writer.start()
    try:
        writer.add(prediction("f1", model="idle"))
        deadline = time.monotonic() + 30
        while writer.buffered and time.monotonic() < deadline:
            time.sleep(0.02)
        assert writer.buffered == 0
    finally:
        writer.add(prediction("f2", model="idle"))
        writer.close()
    assert len(keys(s3, "logs/ml/predictions/model=idle/")) == 2
    assert writer.stats.records_written == 2
