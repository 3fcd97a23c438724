"""De-duplication on local disk: hash partitions give the same rows as one in-memory pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from conveyor.features.transforms import deduplicate_latest
from conveyor.jobs.materialize.spill import SpillWriter, deduplicate_spill, key_buckets, scan_spill

SCHEMA = pa.schema(
    [
        ("key", pa.int64()),
        ("name", pa.string()),
        ("at", pa.timestamp("us", tz="UTC")),
        ("value", pa.float64()),
    ]
)


def _rows(count: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, count // 4, count)
    return pa.table(
        {
            "key": keys,
            "name": [f"entity-{key}" for key in keys],
            "at": pa.array(rng.permutation(count) * 1_000_000, pa.timestamp("us", tz="UTC")),
            "value": rng.normal(size=count),
        },
        schema=SCHEMA,
    )


def _spill(path: Path, table: pa.Table) -> Path:
    with SpillWriter(path, SCHEMA) as writer:
        for batch in table.to_batches(max_chunksize=1000):
            writer.write(batch)
    return path


def test_partitioned_deduplication_equals_one_pass_in_memory(tmp_path: Path) -> None:
    table = _rows(20_000)
    spill = _spill(tmp_path / "typed.arrow", table)

    def latest(part: pa.Table) -> pa.Table:
        return deduplicate_latest(part, "key", "at")

    # A tiny partition size forces many key partitions on disk.
    path, rows = deduplicate_spill(spill, SCHEMA, "key", latest, tmp_path, partition_bytes=50_000)
    result = pa.Table.from_batches(list(scan_spill(path)), schema=SCHEMA).sort_by("key")
    expected = latest(table).sort_by("key")
    assert rows == expected.num_rows == len(set(table.column("key").to_pylist()))
    assert result.equals(expected)
    assert not list(tmp_path.glob("dedupe-*.arrow"))  # partitions are removed as they are used


def test_key_buckets_are_stable_and_spread_for_ints_and_strings() -> None:
    ids = pa.array(range(100_000), pa.int64())
    names = pa.array([f"user-{value}" for value in range(100_000)])
    for keys in (ids, names):
        buckets = key_buckets(keys, 8)
        assert np.array_equal(buckets, key_buckets(keys, 8))  # the same key, the same bucket
        counts = np.bincount(buckets.astype(np.int64), minlength=8)
        assert counts.min() > 100_000 / 8 * 0.8
    # A key's bucket does not depend on which batch it arrives in.
    assert key_buckets(names.slice(500, 10), 8).tolist() == key_buckets(names, 8)[500:510].tolist()
