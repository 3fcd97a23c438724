"""Staged partitions read back in the order a single Job reads the sources."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest

from conveyor.jobs.materialize.staging import in_read_order, in_segment_order


def stream(rows: list[int], batch: int) -> Iterator[pa.RecordBatch]:
    for start in range(0, len(rows), batch):
        yield pa.record_batch({"row": rows[start : start + batch]})


def test_segments_of_every_partition_are_put_back_in_listing_order() -> None:
    # Objects 0..3 hashed to partitions 1, 0, 1, 0; a lone Parquet object would give row groups
    # (object 4, groups 0 and 1 in partitions 0 and 1); the prediction logs (5) come last.
    staged = {
        0: [[1, 0, 2], [3, 0, 3], [4, 0, 1], [5, 0, 2]],
        1: [[0, 0, 3], [2, 0, 0], [4, 1, 2]],
    }
    single_job_order = [0, 0, 0, 1, 1, 3, 3, 3, 4, 4, 4, 5, 5]  # each row: its object (2: none)
    streams = {
        0: stream([1, 1, 3, 3, 3, 4, 5, 5], batch=3),  # a partition's rows, in its own order
        1: stream([0, 0, 0, 4, 4], batch=2),
    }

    batches = in_segment_order(streams, in_read_order(staged))

    assert [row for batch in batches for row in batch.column("row").to_pylist()] == (
        single_job_order
    )


def test_rows_the_stats_do_not_account_for_are_an_error() -> None:
    with pytest.raises(ValueError, match="Partition 0 staged more rows"):
        list(in_segment_order({0: stream([1, 1, 1], batch=2)}, in_read_order({0: [[0, 0, 2]]})))
