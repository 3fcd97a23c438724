"""Output helpers: Parquet parts streamed to S3, and overlapping I/O with computation.

Parts are written with zstd (level 1) and dictionary encoding for text columns only: on random
floats a dictionary is always abandoned after it was built, which made writing four times slower.
`prefetch` runs a producer (reading and parsing CSV from S3) in a thread while the consumer
(conform, profile) works: pyarrow releases the GIL, so both cores are busy.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Generic, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from ...clients.s3 import ObjectStorage

__all__ = ["PART_ROWS", "InOrder", "PartsWriter", "ordered_map", "prefetch"]

PART_ROWS = 1_000_000
"""Rows per output Parquet part (and staged part): large objects, yet uploads overlap encoding."""

T = TypeVar("T")
R = TypeVar("R")
_DONE = object()


def prefetch(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """The items of `items`, produced up to `depth` ahead in a thread; errors re-raised here."""
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(_DONE)
        except BaseException as error:  # handed to the consumer, raised there
            slots.put(error)

    worker = threading.Thread(target=produce, name="conveyor-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                slots.get_nowait()
        worker.join(timeout=5)


def ordered_map(
    function: Callable[[T], R], items: Iterator[T], *, workers: int, window: int | None = None
) -> Iterator[R]:
    """function(item) for each item, computed by `workers` threads, yielded in input order.

    At most `window` (default 2 x workers) results are in flight, so memory stays bounded.
    """
    limit = window or 2 * workers
    with ThreadPoolExecutor(workers, thread_name_prefix="conveyor-map") as pool:
        running: deque[Future[R]] = deque()
        try:
            for item in items:
                running.append(pool.submit(function, item))
                if len(running) >= limit:
                    yield running.popleft().result()
            while running:
                yield running.popleft().result()
        finally:
            for future in running:
                future.cancel()


class InOrder(Generic[T]):
    """Calls `function(item)` for each item given, in order, in one background thread.

    For work that must see the items in order (a seeded profile) but may run beside the
    caller's: `submit` only waits while `depth` items are already pending, and re-raises the
    first error; `finish` waits for every item.
    """

    def __init__(self, function: Callable[[T], Any], *, name: str, depth: int = 2) -> None:
        self._function = function
        self._depth = depth
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._pending: deque[Future[Any]] = deque()

    def submit(self, item: T) -> None:
        self._pending.append(self._pool.submit(self._function, item))
        while len(self._pending) > self._depth:
            self._pending.popleft().result()

    def finish(self) -> None:
        while self._pending:
            self._pending.popleft().result()

    def __enter__(self) -> InOrder:
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        for future in self._pending:
            future.cancel()
        self._pool.shutdown(wait=True)


def _dictionary_worthy(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_boolean(kind)


class PartsWriter:
    """Writes tables as numbered Parquet objects of at most `part_rows` rows.

    Each part is encoded into a local file by one background thread and uploaded by another
    (boto3's managed multipart upload) while the next part is encoded: the caller only waits
    when two tables are already queued. Local disk holds at most two parts at a time.
    """

    def __init__(
        self,
        storage: ObjectStorage,
        bucket: str,
        prefix: str,
        schema: pa.Schema,
        *,
        spool: Path,
        always_one: bool = False,
        part_rows: int = PART_ROWS,
    ) -> None:
        self.storage, self.bucket, self.prefix, self.schema = storage, bucket, prefix, schema
        self.rows = 0
        self.files: list[dict[str, Any]] = []
        self._spool = spool
        self._always_one = always_one
        self._part_rows_limit = part_rows
        self._path: Path | None = None
        self._writer: pq.ParquetWriter | None = None
        self._part_rows = 0
        self._encoder = ThreadPoolExecutor(1, thread_name_prefix="conveyor-parquet")
        self._uploader = ThreadPoolExecutor(1, thread_name_prefix="conveyor-upload")
        self._encoding: deque[Future[None]] = deque()
        self._uploads: deque[Future[None]] = deque()

    def write(self, data: pa.Table | pa.RecordBatch) -> None:
        if data.num_rows == 0:
            return
        table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
        if table.schema != self.schema:
            table = table.select(self.schema.names).cast(self.schema)
        self._encoding.append(self._encoder.submit(self._encode, table))
        while len(self._encoding) > 2:
            self._encoding.popleft().result()

    def close(self) -> None:
        """Finish every part and wait for every upload; errors surface here."""
        try:
            while self._encoding:  # the encoder thread finishes parts: let it be idle first
                self._encoding.popleft().result()
            if self._writer is None and self._always_one and not self.files:
                self._open()  # an empty snapshot still has one (empty) data file with the schema
            if self._writer is not None:
                self._finish_part()
            while self._uploads:
                self._uploads.popleft().result()
        finally:
            self._shutdown()

    def _encode(self, table: pa.Table) -> None:
        while table.num_rows:
            if self._writer is None:
                self._open()
            assert self._writer is not None
            room = self._part_rows_limit - self._part_rows
            piece, table = table.slice(0, room), table.slice(room)
            self._writer.write_table(piece)
            self._part_rows += piece.num_rows
            self.rows += piece.num_rows
            if self._part_rows >= self._part_rows_limit:
                self._finish_part()

    def _open(self) -> None:
        number = len(self.files)
        key = f"{self.prefix}{number:05d}.parquet"
        self._path = self._spool / f"part-{number:05d}.parquet"
        self._writer = pq.ParquetWriter(
            str(self._path),
            self.schema,
            compression="zstd",
            compression_level=1,
            # Dictionaries pay off for text only; on floats they cost 4x the write time.
            use_dictionary=[field.name for field in self.schema if _dictionary_worthy(field.type)],
        )
        self._part_rows = 0
        self.files.append({"key": key, "uri": f"s3://{self.bucket}/{key}", "rows": 0})

    def _finish_part(self) -> None:
        assert self._writer is not None and self._path is not None
        self._writer.close()
        entry, path = self.files[-1], self._path
        entry.update(rows=self._part_rows, bytes=path.stat().st_size)
        self._writer = self._path = None
        while len(self._uploads) > 1:  # bounds the local disk to two parts
            self._uploads.popleft().result()
        self._uploads.append(self._uploader.submit(self._upload, path, entry["key"]))

    def _upload(self, path: Path, key: str) -> None:
        try:
            self.storage.upload_file(path, self.bucket, key)
        finally:
            path.unlink(missing_ok=True)

    def _shutdown(self) -> None:
        for future in (*self._encoding, *self._uploads):
            future.cancel()
        self._encoder.shutdown(wait=True)
        self._uploader.shutdown(wait=True)
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None

    def __enter__(self) -> PartsWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self._shutdown()  # objects already uploaded are removed by the caller
