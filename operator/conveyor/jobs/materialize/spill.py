"""Local spill files: typed rows on the pod's disk, so memory stays bounded by one batch.

The typed (conformed) rows are written once to an uncompressed Arrow IPC file — the cheapest
format to write and to scan again, which fitting the transforms does several times. Reading
goes batch by batch through a plain file handle (not a memory map, so resident memory does not
grow with the file).

De-duplication by entity key must see every row of a key together, which a stream cannot do in
bounded memory. So the spill is hash-partitioned by entity key into K files of about
`DEDUPE_PARTITION_BYTES` each (all rows of one key land in the same file), and each file is
de-duplicated in memory on its own: peak memory is one partition, whatever the input size.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...features.profile import ProfileBuilder
from ...features.transforms import deduplicate_latest
from .parts import InOrder, PartsWriter

__all__ = [
    "DEDUPE_PARTITION_BYTES",
    "ReadAlong",
    "SpillWriter",
    "deduplicate_spill",
    "keep_latest",
    "key_buckets",
    "scan_spill",
]

DEDUPE_PARTITION_BYTES = 256 << 20
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing spreads sequential ids evenly


class SpillWriter:
    """Appends batches of one schema to an Arrow IPC file; counts rows."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema
        self.rows = 0
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = pa.ipc.new_file(self._sink, schema)

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        if batch.num_rows == 0:
            return
        if isinstance(batch, pa.Table):
            self._writer.write_table(batch)
        else:
            self._writer.write_batch(batch)
        self.rows += batch.num_rows

    def close(self) -> None:
        if not self._sink.closed:
            self._writer.close()
            self._sink.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def scan_spill(path: Path) -> Iterator[pa.RecordBatch]:
    """The batches of a spill file, one at a time."""
    with pa.OSFile(str(path), "rb") as source:
        reader = pa.ipc.open_file(source)
        for index in range(reader.num_record_batches):
            yield reader.get_batch(index)


def key_buckets(keys: pa.Array | pa.ChunkedArray, buckets: int) -> np.ndarray:
    """A stable bucket in [0, buckets) per key: the same key always lands in the same bucket."""
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    if pa.types.is_integer(keys.type):
        values = keys.fill_null(0).to_numpy(zero_copy_only=False).astype(np.uint64)
        with np.errstate(over="ignore"):
            return ((values * _GOLDEN) >> np.uint64(32)) % np.uint64(buckets)
    text = keys if pa.types.is_string(keys.type) else pc.cast(keys, pa.string())
    text = text.fill_null("")
    # One Python hash per distinct key (not per row), then a vectorised lookup.
    uniques = pc.unique(text)
    codes = np.array(
        [zlib.crc32(value.encode()) % buckets for value in uniques.to_pylist()], dtype=np.uint64
    )
    positions = pc.index_in(text, value_set=uniques).to_numpy(zero_copy_only=False)
    return codes[positions]


def deduplicate_spill(
    path: Path,
    schema: pa.Schema,
    entity_key: str,
    deduplicate: Callable[[pa.Table], pa.Table],
    workdir: Path,
    partition_bytes: int = DEDUPE_PARTITION_BYTES,
) -> tuple[Path, int]:
    """A new spill with `deduplicate` applied per key partition; returns (path, rows)."""
    buckets = max(1, math.ceil(path.stat().st_size / partition_bytes))
    output = workdir / "deduplicated.arrow"
    with SpillWriter(output, schema) as writer:
        if buckets == 1:
            writer.write(deduplicate(_read_all(path, schema)))
            return output, writer.rows
        parts = [workdir / f"dedupe-{index:04d}.arrow" for index in range(buckets)]
        writers = [SpillWriter(part, schema) for part in parts]
        try:
            for batch in scan_spill(path):
                _scatter(batch, key_buckets(batch.column(entity_key), buckets), writers)
        finally:
            for part_writer in writers:
                part_writer.close()
        for part in parts:
            writer.write(deduplicate(_read_all(part, schema)))
            part.unlink()
        return output, writer.rows


def keep_latest(table: pa.Table, key: str, event_time: str | None) -> pa.Table:
    """The latest row of each key by event time; without one, the last row read wins."""
    if event_time is not None:
        return deduplicate_latest(table, key, event_time)
    numbered = table.append_column("__row", pa.array(np.arange(table.num_rows)))
    last = numbered.group_by(key, use_threads=False).aggregate([("__row", "max")])
    rows = last.column("__row_max")
    return table.take(pc.take(rows, pc.sort_indices(rows)))


def _scatter(batch: pa.RecordBatch, buckets: np.ndarray, writers: list[SpillWriter]) -> None:
    order = np.argsort(buckets, kind="stable")
    counts = np.bincount(buckets.astype(np.int64), minlength=len(writers))
    grouped = batch.take(pa.array(order))
    start = 0
    for writer, count in zip(writers, counts, strict=True):
        if count:
            writer.write(grouped.slice(start, int(count)))
        start += int(count)


def _read_all(path: Path, schema: pa.Schema) -> pa.Table:
    batches = list(scan_spill(path))
    return pa.Table.from_batches(batches, schema=schema)


class ReadAlong:
    """What is built from the rows while they are spilled (the profile, the raw/ parts), so the
    pass over the spill has less to do; None for what that pass must build itself."""

    def __init__(self, builder: ProfileBuilder | None, raw_parts: PartsWriter | None) -> None:
        self.builder, self.raw_parts = builder, raw_parts
        self._profiler = InOrder(builder.add, name="conveyor-profile") if builder else None

    def add(self, batch: pa.RecordBatch) -> None:
        if self._profiler is not None:
            self._profiler.submit(batch)
        if self.raw_parts is not None:
            self.raw_parts.write(batch)

    def finish(self) -> None:
        """Wait for the profile: it is complete."""
        if self._profiler is not None:
            self._profiler.finish()

    def __enter__(self) -> ReadAlong:
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        if self._profiler is not None:
            self._profiler.__exit__(exc_type, exc, traceback)
        if self.raw_parts is not None:
            # Closed by pass 2 on success; on a failure this stops the uploads, and the run
            # then removes the parts already uploaded.
            self.raw_parts.__exit__(exc_type or RuntimeError, exc, traceback)
