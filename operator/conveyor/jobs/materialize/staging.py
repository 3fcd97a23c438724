"""The staged rows of a partitioned run, read back in the order a single Job would read them.

Each partition pod stages the conformed rows of its objects in its read order, and records in
stats.json how many rows each *segment* gave: an object, or one row group of a lone Parquet
object split across partitions, and the prediction logs (read by partition 0, last). Sorting all
partitions' segments by their place in the sources' listing gives the single Job's read order;
taking each segment's rows from its partition's staged stream in that order rebuilds it, one
batch at a time. Same rows, same order: the combine pod's profile (whose sample is seeded by
row order) and spill are those of a single Job.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ...clients.s3 import ObjectStorage, S3Object
from .rejects import RejectTally

__all__ = [
    "Segment",
    "in_read_order",
    "in_segment_order",
    "partition_stats",
    "read_partition_stats",
    "staged_batches",
    "staged_parts",
]


@dataclass(frozen=True, order=True)
class Segment:
    """Rows one partition staged from one place of the listing."""

    position: int
    """The object's place among the read plans (their count, for the prediction logs)."""
    group: int
    """The row group, for a lone Parquet object split across partitions; else 0."""
    partition: int
    rows: int

    def to_state(self) -> list[int]:
        return [self.position, self.group, self.rows]


def partition_stats(
    *,
    index: int,
    partitions: int,
    rows: int,
    tally: RejectTally,
    objects: Sequence[str],
    segments: Sequence[Segment],
) -> dict[str, Any]:
    """A partition's stats.json (written last: it marks the partition complete)."""
    return {
        "index": index,
        "partitions": partitions,
        "rows": rows,
        "rejected": tally.rejected,
        "samples": tally.samples,
        "reasons": tally.reasons,
        "examples": tally.examples,
        "objects": list(objects),
        "segments": [segment.to_state() for segment in segments],
    }


def read_partition_stats(
    stats: Mapping[str, Any], index: int, tally: RejectTally
) -> tuple[int, list[list[int]]]:
    """The partition's rows and segments; its rejects join `tally`. Stats staged without
    segments (an older version) read as one segment in partition order."""
    rows = int(stats["rows"])
    tally.add(
        int(stats["rejected"]),
        stats.get("samples", []),
        stats.get("reasons", {}),
        stats.get("examples", {}),
    )
    return rows, stats.get("segments") or [[index, 0, rows]]


def staged_parts(staged: Iterable[S3Object], prefixes: Mapping[int, str]) -> dict[int, list[str]]:
    """Each partition's staged Parquet keys (under its prefix), in the order it wrote them."""
    keys = [item.key for item in staged if item.key.endswith(".parquet")]
    return {
        index: sorted(key for key in keys if key.startswith(prefix))
        for index, prefix in prefixes.items()
    }


def in_read_order(staged: Mapping[int, Sequence[Sequence[int]]]) -> list[Segment]:
    """Every partition's segments (stats.json "segments": [position, group, rows] in its own
    read order), in the single Job's read order."""
    segments = [
        Segment(position, group, partition, rows)
        for partition, entries in staged.items()
        for position, group, rows in entries
    ]
    return sorted(segments)


def staged_batches(
    storage: ObjectStorage,
    bucket: str,
    parts: Mapping[int, Sequence[str]],
    segments: Sequence[Segment],
    batch_rows: int,
) -> Iterator[pa.RecordBatch]:
    """The staged rows in the order of `segments`; `parts`: each partition's staged Parquet
    keys, in the order it wrote them."""
    streams = {
        partition: _read_parts(storage, bucket, keys, batch_rows)
        for partition, keys in parts.items()
    }
    return in_segment_order(streams, segments)


def in_segment_order(
    streams: Mapping[int, Iterator[pa.RecordBatch]], segments: Sequence[Segment]
) -> Iterator[pa.RecordBatch]:
    """Each segment's rows taken from its partition's stream, segment after segment."""
    rows = {partition: _RowStream(stream) for partition, stream in streams.items()}
    for segment in segments:
        yield from rows[segment.partition].take(segment.rows)
    for partition, stream in rows.items():
        if not stream.exhausted():
            raise ValueError(
                f"Partition {partition} staged more rows than its stats.json accounts for"
            )


def _read_parts(
    storage: ObjectStorage, bucket: str, keys: Sequence[str], batch_rows: int
) -> Iterator[pa.RecordBatch]:
    for key in keys:
        parquet = pq.ParquetFile(storage.open_input_file(bucket, key))
        yield from parquet.iter_batches(batch_size=batch_rows)


class _RowStream:
    """One partition's staged rows, consumed a given number of rows at a time."""

    def __init__(self, batches: Iterator[pa.RecordBatch]) -> None:
        self._batches = (batch for batch in batches if batch.num_rows)
        self._rest: pa.RecordBatch | None = None

    def take(self, rows: int) -> Iterator[pa.RecordBatch]:
        """The next `rows` rows (fewer only when the stream ends)."""
        while rows > 0:
            batch = self._rest if self._rest is not None else next(self._batches, None)
            if batch is None:
                return
            self._rest = batch.slice(rows) if batch.num_rows > rows else None
            head = batch.slice(0, rows)
            rows -= head.num_rows
            yield head

    def exhausted(self) -> bool:
        if self._rest is None:
            self._rest = next(self._batches, None)
        return self._rest is None
