"""THE prediction and feedback log format: serving writes it, materialization reads it.

Append-only JSON Lines objects, gzip-compressed, partitioned by model, version and date (UTC)
as `conveyor.contracts.layouts.PredictionLogLayout` lays them out. One line per record, fields
in a fixed order, times as ISO-8601 in UTC with a trailing Z:

    {"request_id": "...", "time": "2026-01-01T12:00:00.000000Z", "model": "iris", "version": 3,
     "inputs": {...}, "prediction": "setosa", "scores": {"setosa": 0.9, ...}}
    {"request_id": "...", "time": "...", "model": "iris", "label": "setosa"}
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
import time as time_module
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import pyarrow as pa

from ..clients.s3 import ObjectStorage, StorageError
from ..contracts.layouts import (
    PredictionLogLayout,
    check_writer,
    feedback_key,
    log_object_date,
    prediction_key,
)

__all__ = [
    "FeedbackRecord",
    "LogWriter",
    "PredictionRecord",
    "decode_records",
    "encode_records",
    "read_labelled",
]

logger = logging.getLogger(__name__)


@dataclass
class PredictionRecord:
    request_id: str
    time: datetime
    model: str
    version: int
    inputs: dict[str, Any]
    prediction: Any
    scores: dict[str, float] | None = None


@dataclass
class FeedbackRecord:
    request_id: str
    time: datetime
    model: str
    label: Any


Record = PredictionRecord | FeedbackRecord
T = TypeVar("T", PredictionRecord, FeedbackRecord)


def encode_records(records: Sequence[Record]) -> bytes:
    """gzip JSON Lines, fields in declaration order; the same records give the same bytes."""
    lines = [
        json.dumps(_to_json(record), default=_json_default, ensure_ascii=False)
        for record in records
    ]
    text = "".join(line + "\n" for line in lines)
    return gzip.compress(text.encode("utf-8"), mtime=0)


def decode_records(data: bytes, kind: type[T]) -> list[T]:
    """The records of one object; `kind` is PredictionRecord or FeedbackRecord."""
    records = []
    for number, line in enumerate(gzip.decompress(data).decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            fields = json.loads(line)
            fields["time"] = _parse_time(fields["time"])
            records.append(kind(**fields))
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"line {number} is not a {kind.__name__}: {error}") from error
    return records


def _to_json(record: Record) -> dict[str, Any]:
    fields = dict(vars(record))
    fields["time"] = _format_time(record.time)
    return fields


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return _format_time(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):  # numpy arrays
        return value.tolist()
    return str(value)


def _format_time(when: datetime) -> str:
    return _utc(when).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str) -> datetime:
    return _utc(datetime.fromisoformat(text))


def _utc(when: datetime) -> datetime:
    """Aware datetimes in UTC; a naive datetime is taken to be UTC."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


class LogWriter:
    """Buffers records and writes them to S3 as log objects; used by the serving pods.

    `add()` flushes when `max_records` are buffered or the oldest record is `max_age_seconds` old;
    call `flush_if_due()` from a timer (or `start()` a background thread) so an idle server
    flushes too, and `close()` at shutdown. A failed write keeps its records for the next flush,
    which is not due before another `max_age_seconds` (so an outage is not retried per request);
    beyond `max_buffered` records the oldest are dropped with a warning, so memory stays bounded
    while storage is down. Thread-safe.
    """

    def __init__(
        self,
        storage: ObjectStorage,
        bucket: str,
        *,
        writer: str,
        max_records: int = 1000,
        max_age_seconds: float = 10.0,
        clock: Callable[[], float] = time_module.time,
        max_buffered: int = 100_000,
    ) -> None:
        check_writer(writer)  # now, not at the first flush
        self.storage = storage
        self.bucket = bucket
        self.writer = writer
        self.max_records = max_records
        self.max_age_seconds = max_age_seconds
        self.max_buffered = max(max_buffered, max_records)
        self.clock = clock
        self.dropped = 0
        """Records dropped because the buffer was full while writes failed."""
        self._buffer: list[Record] = []
        self._oldest: float | None = None  # clock() when the oldest buffered record was added
        self._seq = 0
        self._retry_after = 0.0  # after a failed write, wait max_age_seconds before the next
        self._lock = threading.Lock()  # guards the buffer
        self._flushing = threading.Lock()  # one flush at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, record: Record) -> None:
        with self._lock:
            self._buffer.append(record)
            if self._oldest is None:
                self._oldest = self.clock()
        if self._due():
            self._flush(wait=False)

    def flush(self) -> list[str]:
        """Write every buffered record now; returns the keys written."""
        return self._flush(wait=True)

    def flush_if_due(self) -> list[str]:
        return self._flush(wait=False) if self._due() else []

    @property
    def buffered(self) -> int:
        with self._lock:
            return len(self._buffer)

    def start(self, interval_seconds: float | None = None) -> None:
        """Flush from a background thread every `interval_seconds` (default: max age / 2)."""
        if self._thread is not None:
            return
        interval = interval_seconds or max(self.max_age_seconds / 2, 0.05)

        def run() -> None:
            while not self._stop.wait(interval):
                self.flush_if_due()

        self._thread = threading.Thread(target=run, name=f"log-writer-{self.writer}", daemon=True)
        self._thread.start()

    def close(self) -> list[str]:
        """Stop the background thread and write what is buffered."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        return self.flush()

    def _due(self) -> bool:
        with self._lock:
            if not self._buffer or self.clock() < self._retry_after:
                return False
            age = self.clock() - (self._oldest or 0.0)
            return len(self._buffer) >= self.max_records or age >= self.max_age_seconds

    def _flush(self, *, wait: bool) -> list[str]:
        if not self._flushing.acquire(blocking=wait):
            return []  # another flush is writing; it or the next one takes these records
        try:
            with self._lock:
                records, self._buffer, self._oldest = self._buffer, [], None
            written: list[str] = []
            failed: list[Record] = []
            for key, group in self._objects(records):
                try:
                    self.storage.put_bytes(
                        self.bucket,
                        key,
                        encode_records(group),
                        "application/x-ndjson",
                        content_encoding="gzip",
                    )
                    written.append(key)
                except StorageError as error:
                    logger.warning(
                        "Could not write log object s3://%s/%s (%d records kept for "
                        "the next flush): %s",
                        self.bucket,
                        key,
                        len(group),
                        error,
                    )
                    failed.extend(group)
            if failed:
                self._keep(failed)
            return written
        finally:
            self._flushing.release()

    def _objects(self, records: list[Record]) -> Iterator[tuple[str, list[Record]]]:
        """One object per kind, model, version and date, in first-seen order."""
        groups: dict[tuple[Any, ...], list[Record]] = {}
        for record in records:
            day = _utc(record.time).date()
            if isinstance(record, PredictionRecord):
                partition: tuple[Any, ...] = ("p", record.model, record.version, day)
            else:
                partition = ("f", record.model, day)
            groups.setdefault(partition, []).append(record)
        for partition, group in groups.items():
            earliest = min(_utc(record.time) for record in group)
            self._seq += 1
            first = group[0]
            if partition[0] == "p":
                assert isinstance(first, PredictionRecord)
                key = prediction_key(first.model, first.version, earliest, self.writer, self._seq)
            else:
                key = feedback_key(first.model, earliest, self.writer, self._seq)
            yield key, group

    def _keep(self, failed: list[Record]) -> None:
        with self._lock:
            self._buffer = failed + self._buffer
            overflow = len(self._buffer) - self.max_buffered
            if overflow > 0:
                del self._buffer[:overflow]
                self.dropped += overflow
                logger.warning(
                    "Dropped the %d oldest log records: storage has been failing and "
                    "the buffer holds at most %d",
                    overflow,
                    self.max_buffered,
                )
            self._oldest = self.clock() if self._oldest is None else self._oldest
            self._retry_after = self.clock() + self.max_age_seconds


def read_labelled(
    storage: ObjectStorage, bucket: str, model: str, *, since: datetime, target: str
) -> pa.Table:
    """Predictions of `model` since `since` joined with their feedback by request_id.

    One row per labelled prediction (the latest feedback wins; a prediction logged twice counts
    once): the input columns, `target` (the label), "request_id" and "prediction_time".
    """
    since = _utc(since)
    layout = PredictionLogLayout(model)
    predictions: dict[str, PredictionRecord] = {}
    for record in _read(storage, bucket, layout.predictions, since, PredictionRecord):
        if _utc(record.time) >= since:
            predictions.setdefault(record.request_id, record)
    labels: dict[str, FeedbackRecord] = {}
    for feedback in _read(storage, bucket, layout.feedback, since, FeedbackRecord):
        known = labels.get(feedback.request_id)
        if known is None or _utc(feedback.time) >= _utc(known.time):
            labels[feedback.request_id] = feedback
    rows = []
    for request_id, prediction in predictions.items():
        if request_id in labels:
            row = dict(prediction.inputs)
            row[target] = labels[request_id].label
            row["request_id"] = request_id
            row["prediction_time"] = _utc(prediction.time)
            rows.append(row)
    return _rows_to_table(rows, target)


def _read(
    storage: ObjectStorage, bucket: str, prefix: str, since: datetime, kind: type[T]
) -> Iterator[T]:
    first_day = since.date()
    for item in storage.list_objects(bucket, prefix):
        day = log_object_date(item.key)
        if day is None or day < first_day:
            continue
        data = storage.get_bytes(bucket, item.key)
        try:
            yield from decode_records(data, kind)
        except (ValueError, OSError) as error:
            raise ValueError(f"log object {item.uri} is unreadable: {error}") from error


def _rows_to_table(rows: list[dict[str, Any]], target: str) -> pa.Table:
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    ordered = [name for name in names if name not in (target, "request_id", "prediction_time")]
    columns: dict[str, pa.Array] = {}
    for name in [*ordered, target]:
        columns[name] = _column([row.get(name) for row in rows])
    columns["request_id"] = pa.array([row["request_id"] for row in rows], pa.string())
    columns["prediction_time"] = pa.array(
        [row["prediction_time"] for row in rows], pa.timestamp("us", tz="UTC")
    )
    return pa.table(columns)


def _column(values: list[Any]) -> pa.Array:
    """Typed when the JSON values agree on a type, else text (conform() parses it)."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array(
            [
                None if v is None else json.dumps(v) if isinstance(v, dict | list) else str(v)
                for v in values
            ],
            pa.string(),
        )
