"""Writes prediction and feedback records to S3 as log objects, off the request path.

A serving pod adds records (or a callable that makes their encoded lines, so a request pays for
an append, not for encoding) to a bounded in-memory buffer; a background thread turns them into
objects of about `max_records` records (a request's rows stay in one object), in the format of
`predictionlog`, when that many are buffered or the oldest is `max_age_seconds` old. Objects
waiting for a retry are kept compressed.

Nothing is lost silently:
- a write that fails keeps its object, key included, and is retried with exponential back-off;
  a retry that succeeds after all writes the same key with the same bytes, so a write that
  reached S3 before its answer was lost is not duplicated;
- records that do not fit in the buffer (`max_buffered`, counting those waiting for a retry)
  are dropped at once, counted by reason in `dropped`, and reported in a warning at most once
  per `warn_seconds`; the request that made them is never blocked;
- `close()` (on SIGTERM) makes one last attempt; what it cannot write is counted as dropped
  with reason "shutdown".
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ..clients.s3 import ObjectStorage, StorageError
from ..contracts.layouts import check_writer, feedback_key, prediction_key
from .predictionlog import LogLines, Record, compress_lines, record_lines

__all__ = ["BUFFER_FULL", "SHUTDOWN", "LogStats", "LogWriter"]

logger = logging.getLogger(__name__)

BUFFER_FULL = "buffer_full"
"""Dropped on arrival: the buffer held `max_buffered` records (storage slow or down)."""
SHUTDOWN = "shutdown"
"""Dropped at exit: the last write before the process ended failed."""

Entry = Record | Callable[[], LogLines]
"""One record, or a callable the background thread calls for a request's encoded lines."""


@dataclass
class LogStats:
    """What the writer did, for metrics and the shutdown report."""

    records_written: int = 0
    objects_written: int = 0
    failed_writes: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "recordsWritten": self.records_written,
            "objectsWritten": self.objects_written,
            "failedWrites": self.failed_writes,
            "dropped": dict(self.dropped),
        }


class LogWriter:
    """The buffer and its background writer; `add*()` never blocks on storage. Thread-safe."""

    def __init__(
        self,
        storage: ObjectStorage,
        bucket: str,
        *,
        namespace: str,
        writer: str,
        max_records: int = 1000,
        max_age_seconds: float = 5.0,
        max_buffered: int = 100_000,
        backoff_seconds: tuple[float, float] = (0.5, 30.0),
        warn_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_writer(writer)  # now, not at the first flush
        if max_records < 1 or max_age_seconds <= 0:
            raise ValueError("max_records must be 1 or more and max_age_seconds above 0")
        self.storage = storage
        self.bucket = bucket
        self.namespace = namespace
        self.writer = writer
        self.max_records = max_records
        self.max_age_seconds = max_age_seconds
        self.max_buffered = max(max_buffered, max_records)
        self.first_backoff, self.last_backoff = backoff_seconds
        self.warn_seconds = warn_seconds
        self.clock = clock
        self.stats = LogStats()
        self._entries: list[Entry] = []
        self._entry_records = 0
        self._oldest: float | None = None  # clock() when the oldest entry was added
        self._pending: list[tuple[str, bytes, int]] = []  # (key, gzip body, records) to write
        self._pending_records = 0
        self._seq = 0
        self._backoff = 0.0
        self._retry_at = 0.0
        self._last_warning = -float("inf")
        self._last_drop_warning = -float("inf")
        self._unreported: dict[str, int] = {}  # dropped since the last warning
        self._lock = threading.Lock()  # guards the entries and the counts
        self._flushing = threading.Lock()  # one flush at a time
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the request side --------------------------------------------------------------------------

    def add(self, record: Record) -> bool:
        return self.add_many(1, record)

    def add_many(self, count: int, entry: Entry) -> bool:
        """Buffer `count` records (`entry` is one record or a callable making their lines);
        False when they were dropped because the buffer is full."""
        with self._lock:
            if self._entry_records + self._pending_records + count > self.max_buffered:
                self._count_drop(BUFFER_FULL, count)
                return False
            self._entries.append(entry)
            self._entry_records += count
            if self._oldest is None:
                self._oldest = self.clock()
            full = self._entry_records >= self.max_records
        if full and not self._wake.is_set():  # is_set reads a flag; set takes a lock
            self._wake.set()
        return True

    @property
    def buffered(self) -> int:
        """Records not written yet: buffered, and waiting for a retry."""
        with self._lock:
            return self._entry_records + self._pending_records

    @property
    def dropped(self) -> int:
        with self._lock:
            return sum(self.stats.dropped.values())

    # -- the writing side --------------------------------------------------------------------------

    def start(self) -> None:
        """Write from a background thread: when enough records are buffered, else every tick."""
        if self._thread is not None:
            return
        tick = min(self.max_age_seconds / 4, 0.5)

        def run() -> None:
            while not self._stop.is_set():
                self._wake.wait(tick)
                self._wake.clear()
                self.flush_if_due()

        self._thread = threading.Thread(target=run, name=f"log-writer-{self.writer}", daemon=True)
        self._thread.start()

    def flush_if_due(self) -> list[str]:
        written = self._flush() if self._due() else []
        self._report_drops()
        return written

    def flush(self) -> list[str]:
        """Write every buffered record now, back-off or not; returns the keys written."""
        return self._flush()

    def close(self) -> list[str]:
        """Stop the background thread, write what is buffered, and count what cannot be."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        written = self._flush()
        with self._lock:
            lost, self._pending, self._pending_records = self._pending_records, [], 0
            if lost:
                self._count_drop(SHUTDOWN, lost)
        self._report_drops(now=True)
        return written

    def _due(self) -> bool:
        with self._lock:
            now = self.clock()
            if now < self._retry_at:
                return False
            if self._pending:
                return True
            if not self._entries:
                return False
            age = now - (self._oldest if self._oldest is not None else now)
            return self._entry_records >= self.max_records or age >= self.max_age_seconds

    def _flush(self) -> list[str]:
        with self._flushing:
            with self._lock:
                entries, self._entries = self._entries, []
                self._entry_records, self._oldest = 0, None
            objects = list(self._objects(_lines(entries)))
            with self._lock:
                self._pending += objects
                self._pending_records += sum(count for _, _, count in objects)
            return self._write_pending()

    def _write_pending(self) -> list[str]:
        written: list[str] = []
        while True:
            with self._lock:
                if not self._pending:
                    self._backoff = 0.0
                    return written
                key, body, count = self._pending[0]
            try:
                self.storage.put_bytes(
                    self.bucket, key, body, "application/x-ndjson", content_encoding="gzip"
                )
            except StorageError as error:
                self._failed(error)
                return written
            with self._lock:
                self._pending.pop(0)
                self._pending_records -= count
                self.stats.records_written += count
                self.stats.objects_written += 1
            written.append(key)

    def _failed(self, error: StorageError) -> None:
        with self._lock:
            self.stats.failed_writes += 1
            self._backoff = min(
                self.last_backoff, self._backoff * 2 if self._backoff else self.first_backoff
            )
            self._retry_at = self.clock() + self._backoff
            held = self._entry_records + self._pending_records
        self._warn(
            f"Could not write prediction logs to s3://{self.bucket} ({error}); {held} records "
            f"held, retrying in {self._backoff:.1f} s"
        )

    def _objects(self, batches: Iterator[LogLines]) -> Iterator[tuple[str, bytes, int]]:
        """Objects of about max_records records, one kind, model, version and date each."""
        groups: dict[tuple[str, int | None, date], list[LogLines]] = {}
        for batch in batches:
            groups.setdefault((batch.model, batch.version, batch.time.date()), []).append(batch)
        for (model, version, _), group in groups.items():
            chunk: list[LogLines] = []
            records = 0
            for batch in group:
                chunk.append(batch)
                records += batch.records
                if records >= self.max_records:
                    yield self._object(model, version, chunk)
                    chunk, records = [], 0
            if chunk:
                yield self._object(model, version, chunk)

    def _object(
        self, model: str, version: int | None, chunk: list[LogLines]
    ) -> tuple[str, bytes, int]:
        earliest = min(batch.time for batch in chunk)
        self._seq += 1
        if version is None:
            key = feedback_key(self.namespace, model, earliest, self.writer, self._seq)
        else:
            key = prediction_key(self.namespace, model, version, earliest, self.writer, self._seq)
        body = compress_lines(b"".join(batch.lines for batch in chunk))
        return key, body, sum(batch.records for batch in chunk)

    def _count_drop(self, reason: str, count: int) -> None:
        """Count dropped records; the caller holds the lock, and the writer reports them."""
        self.stats.dropped[reason] = self.stats.dropped.get(reason, 0) + count
        self._unreported[reason] = self._unreported.get(reason, 0) + count

    def _report_drops(self, *, now: bool = False) -> None:
        """One warning for the records dropped since the last one, at most every warn_seconds."""
        with self._lock:
            if not self._unreported:
                return
            if not now and self.clock() - self._last_drop_warning < self.warn_seconds:
                return
            dropped = ", ".join(f"{n} ({why})" for why, n in self._unreported.items())
            self._unreported = {}
            self._last_drop_warning = self.clock()
        logger.warning(
            "Dropped prediction log records: %s; the buffer holds at most %d records while "
            "storage is slow or down (conveyor_serving_log_records_dropped_total counts them)",
            dropped,
            self.max_buffered,
        )

    def _warn(self, message: str) -> None:
        with self._lock:
            if self.clock() - self._last_warning < self.warn_seconds:
                return
            self._last_warning = self.clock()
        logger.warning("%s", message)


def _lines(entries: list[Entry]) -> Iterator[LogLines]:
    for entry in entries:
        if callable(entry):
            yield entry()
        else:
            yield from record_lines([entry])
