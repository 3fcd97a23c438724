"""Streaming profiles: exact statistics, merging partitions, determinism and bounded memory."""

from __future__ import annotations

import collections
import datetime as dt
import json
import math
import tracemalloc
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from conveyor.features.profile import (
    DISTINCT_CAP,
    FEATURE_SAMPLE_BUDGET,
    Profile,
    ProfileBuilder,
    drift_scores,
    feature_sample_size,
)

ROWS = 12_345


def raw_columns(rows: int = ROWS, seed: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "length": rng.normal(10, 3, rows),
        "count": rng.integers(-50, 50, rows),
        "colour": rng.choice(["red", "green", "blue", "violet"], rows, p=[0.4, 0.3, 0.2, 0.1]),
        "flag": rng.random(rows) < 0.25,
        "price": rng.lognormal(3, 1, rows),
    }


def with_nulls(values: np.ndarray, every: int) -> pa.Array:
    mask = np.zeros(values.size, dtype=bool)
    mask[::every] = True
    return pa.array(values, mask=mask)


def table_of(columns: dict[str, np.ndarray]) -> pa.Table:
    return pa.table(
        {
            "length": with_nulls(columns["length"], 7),
            "count": pa.array(columns["count"]),
            "colour": with_nulls(columns["colour"], 11),
            "flag": pa.array(columns["flag"]),
            "price": pa.array(columns["price"]),
        }
    )


def uneven_batches(table: pa.Table, seed: int = 0) -> Iterator[pa.RecordBatch]:
    rng = np.random.default_rng(seed)
    start = 0
    while start < table.num_rows:
        size = int(rng.integers(1, 3000))
        yield from table.slice(start, size).to_batches()
        start += size


def profile_of(table: pa.Table, **options: Any) -> Profile:
    options.setdefault("target", "price")
    options.setdefault("categorical", ["colour"])
    builder = ProfileBuilder(**options)
    for batch in uneven_batches(table):
        builder.add(batch)
    return builder.finish()


def test_numeric_statistics_are_exact() -> None:
    columns = raw_columns()
    profile = profile_of(table_of(columns))
    length = profile.columns["length"]
    present = np.delete(columns["length"], np.arange(0, ROWS, 7))

    assert profile.rows == ROWS
    assert (length.kind, length.count, length.nulls) == (
        "numeric",
        present.size,
        ROWS - present.size,
    )
    assert length.min == present.min()
    assert length.max == present.max()
    assert length.mean == pytest.approx(present.mean(), rel=1e-12)
    assert length.std == pytest.approx(present.std(), rel=1e-12)
    # Fewer values than the sample size: quantiles and histogram are exact too.
    for key, percent in {"p01": 1, "p25": 25, "p50": 50, "p95": 95, "p99": 99}.items():
        assert length.quantiles[key] == pytest.approx(np.percentile(present, percent), rel=1e-12)
    expected_counts, expected_edges = np.histogram(present, bins=20)
    assert length.histogram["edges"] == pytest.approx(expected_edges.tolist(), rel=1e-12)
    assert length.histogram["counts"] == expected_counts.tolist()
    assert len(length.reference["quantiles"]) == 101


def test_categories_and_booleans_are_counted_exactly() -> None:
    columns = raw_columns()
    profile = profile_of(table_of(columns))
    colours = collections.Counter(np.delete(columns["colour"], np.arange(0, ROWS, 11)).tolist())
    colour, flag = profile.columns["colour"], profile.columns["flag"]

    assert colour.kind == "categorical"
    assert colour.top == [{"value": value, "count": n} for value, n in colours.most_common()]
    assert colour.distinct == 4
    assert colour.nulls == len(range(0, ROWS, 11))
    assert colour.reference["frequencies"]["red"] == pytest.approx(colours["red"] / colour.count)
    assert flag.kind == "boolean"
    assert {entry["value"]: entry["count"] for entry in flag.top} == {
        True: int(columns["flag"].sum()),
        False: int((~columns["flag"]).sum()),
    }
    assert flag.mean == pytest.approx(columns["flag"].mean())


def test_correlations_with_a_numeric_target() -> None:
    columns = raw_columns()
    columns["price"] = 2 * columns["count"] + np.random.default_rng(1).normal(0, 20, ROWS)
    profile = profile_of(table_of(columns))
    colour_present = np.arange(ROWS) % 11 != 0

    expected_r = np.corrcoef(columns["count"], columns["price"])[0, 1]
    # eta of price across colours: sqrt(between-group / total sum of squares)
    price, colour = columns["price"][colour_present], columns["colour"][colour_present]
    between = sum(
        (colour == c).sum() * (price[colour == c].mean() - price.mean()) ** 2 for c in set(colour)
    )
    expected_eta = math.sqrt(between / ((price - price.mean()) ** 2).sum())

    assert profile.target_kind == "regression"
    assert profile.columns["count"].correlation_with_target == pytest.approx(expected_r, rel=1e-9)
    assert profile.columns["colour"].correlation_with_target == pytest.approx(
        expected_eta, rel=1e-9
    )
    assert profile.columns["price"].correlation_with_target is None
    assert profile.target_distribution["count"] == ROWS
    assert sum(profile.target_distribution["histogram"]["counts"]) == ROWS


def test_a_categorical_target_gives_class_counts_and_eta() -> None:
    columns = raw_columns()
    columns["length"] = np.where(columns["colour"] == "red", 20.0, 5.0)  # fully explained
    profile = profile_of(pa.table(columns), target="colour")

    assert profile.target_kind == "classification"
    assert profile.target_distribution["classes"] == dict(
        collections.Counter(columns["colour"].tolist()).most_common()
    )
    assert profile.columns["length"].correlation_with_target == pytest.approx(1.0)
    assert profile.columns["flag"].correlation_with_target < 0.05


def test_merged_partitions_equal_one_pass_over_all_rows() -> None:
    table = table_of(raw_columns())
    left, right = table.slice(0, 5000), table.slice(5000)
    whole = profile_of(table)
    first, second = (
        ProfileBuilder(target="price", categorical=["colour"]),
        ProfileBuilder(target="price", categorical=["colour"], seed=1),
    )
    for batch in uneven_batches(left):
        first.add(batch)
    for batch in uneven_batches(right):
        second.add(batch)
    first.merge(second)

    assert_same_json(first.finish().to_json(), whole.to_json())


def test_partitions_merge_through_their_saved_state() -> None:
    """Pods of an Indexed Job save their builders as JSON; one pod merges them."""
    table = table_of(raw_columns())
    times = pa.array(np.arange(ROWS) * 60, pa.timestamp("s", tz="UTC"))
    table = table.append_column("seen", times)
    whole = profile_of(table, sample_size=500)
    saved = []
    for index, start in enumerate(range(0, ROWS, 4000)):
        builder = ProfileBuilder(
            target="price", categorical=["colour"], sample_size=500, seed=index
        )
        for batch in uneven_batches(table.slice(start, 4000)):
            builder.add(batch)
        saved.append(json.dumps(builder.to_state()))
    combined = ProfileBuilder.from_state(json.loads(saved[0]))
    for state in saved[1:]:
        combined.merge(ProfileBuilder.from_state(json.loads(state)))
    merged = combined.finish()

    for name, column in whole.columns.items():
        other = merged.columns[name]
        assert (other.count, other.nulls, other.top, other.distinct) == (
            column.count,
            column.nulls,
            column.top,
            column.distinct,
        )
        assert (other.min, other.max) == (column.min, column.max)
        assert other.mean == (column.mean and pytest.approx(column.mean, rel=1e-9))
        assert other.correlation_with_target == pytest.approx(column.correlation_with_target)
    assert (merged.columns["seen"].min, merged.columns["seen"].max) == (
        "1970-01-01 00:00:00Z",
        "1970-01-09 13:44:00Z",
    )
    assert merged.columns["length"].quantiles["p50"] == pytest.approx(10, abs=0.5)


def test_merged_samples_estimate_quantiles_of_the_union() -> None:
    rng = np.random.default_rng(5)
    low, high = rng.uniform(0, 1, 40_000), rng.uniform(1, 3, 40_000)
    parts = [ProfileBuilder(target=None, sample_size=2_000, seed=seed) for seed in (0, 1)]
    for builder, values in zip(parts, (low, high), strict=True):
        for chunk in np.array_split(values, 7):
            builder.add(pa.table({"x": chunk}))
    parts[0].merge(parts[1])
    merged = parts[0].finish().columns["x"]
    union = np.concatenate((low, high))

    assert merged.count == 80_000
    assert merged.mean == pytest.approx(union.mean(), rel=1e-12)
    for key, percent in {"p05": 5, "p25": 25, "p50": 50, "p75": 75, "p95": 95}.items():
        assert merged.quantiles[key] == pytest.approx(np.percentile(union, percent), abs=0.06)
    assert sum(merged.histogram["counts"]) == pytest.approx(80_000, abs=20)


def test_the_same_batches_give_the_same_profile() -> None:
    table = table_of(raw_columns(rows=30_000))

    first = profile_of(table, sample_size=1_000)  # sampling is active
    second = profile_of(table, sample_size=1_000)

    assert json.dumps(first.to_json(), allow_nan=False) == json.dumps(second.to_json())
    assert Profile.from_json(json.loads(json.dumps(first.to_json()))).to_json() == first.to_json()


def test_columns_missing_from_a_batch_count_as_nulls_and_nan_is_null() -> None:
    builder = ProfileBuilder(target=None)
    builder.add(pa.table({"a": [1.0, math.nan]}))
    builder.add(pa.table({"b": ["x", "y", "x"]}))
    profile = builder.finish()

    assert (profile.columns["a"].count, profile.columns["a"].nulls) == (1, 4)
    assert (profile.columns["b"].count, profile.columns["b"].nulls) == (3, 2)
    assert profile.columns["b"].kind == "text"


def test_timestamps_report_their_range() -> None:
    start = dt.datetime(2026, 3, 1, 12, 0)
    times = pa.array([start + dt.timedelta(minutes=m) for m in range(90)] + [None])
    builder = ProfileBuilder(target=None)
    builder.add(pa.table({"seen": times, "day": pa.array([start.date()] * 91, pa.date32())}))
    seen = builder.finish().columns["seen"]

    assert (seen.kind, seen.count, seen.nulls) == ("timestamp", 90, 1)
    assert (seen.min, seen.max) == ("2026-03-01 12:00:00", "2026-03-01 13:29:00")
    assert seen.drift_score is None


def test_very_many_distinct_values_keep_the_frequent_ones() -> None:
    values = [f"user-{i}" for i in range(DISTINCT_CAP + 5_000)] + ["frequent"] * 50
    builder = ProfileBuilder(target=None)
    for chunk in range(0, len(values), 4096):
        builder.add(pa.table({"user": values[chunk : chunk + 4096]}))
    user = builder.finish().columns["user"]

    assert user.distinct is None  # beyond the cap: not known exactly
    assert user.count == len(values)
    assert user.top[0] == {"value": "frequent", "count": 50}


def test_summary_reports_nulls_and_drifted_columns() -> None:
    rng = np.random.default_rng(9)

    def build(shift: float, previous: Profile | None = None) -> Profile:
        builder = ProfileBuilder(target=None)
        builder.add(
            pa.table(
                {
                    "calm": with_nulls(rng.normal(0, 1, 5000), 10),
                    "shifting": rng.normal(shift, 1, 5000),
                }
            )
        )
        return builder.finish(previous=previous, snapshot_id=f"snap-{shift}")

    previous = build(0.0)
    current = build(1.5, previous)
    summary = current.summary()

    assert previous.summary()["maxDriftScore"] is None
    assert current.created_from == "snap-1.5"
    assert summary["columns"] == 2
    assert summary["rejectedRows"] == 0
    assert summary["nullCells"] == 500
    assert summary["driftedColumns"] == ["shifting"]
    assert summary["maxDriftScore"] == current.columns["shifting"].drift_score > 1.0
    assert current.columns["calm"].drift_score < 0.05


def peak_allocation(rows: int, batch_rows: int = 65_536) -> int:
    """Peak traced allocation while profiling ``rows`` rows produced batch by batch."""
    rng = np.random.default_rng(0)
    colours = pa.array(["red", "green", "blue"])
    builder = ProfileBuilder(target="y", categorical=["colour"])
    tracemalloc.start()
    try:
        for start in range(0, rows, batch_rows):
            size = min(batch_rows, rows - start)
            builder.add(
                pa.record_batch(
                    {
                        "x": rng.normal(0, 1, size),
                        "colour": colours.take(rng.integers(0, 3, size)),
                        "y": rng.normal(0, 1, size),
                    }
                )
            )
        builder.finish()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_bounded_when_the_rows_double() -> None:
    two_million = peak_allocation(2_000_000)
    four_million = peak_allocation(4_000_000)

    assert two_million < 32 * 2**20  # the rows themselves are ~50 MB; the profile keeps far less
    assert four_million < two_million * 1.25 + 2**20


def assert_same_json(actual: Any, expected: Any, path: str = "$") -> None:
    """Equal JSON, with floats equal up to rounding (merging adds in another order)."""
    if isinstance(expected, float):
        assert actual == pytest.approx(expected, rel=1e-9, abs=1e-12), path
    elif isinstance(expected, dict):
        assert list(actual) == list(expected), path
        for key in expected:
            assert_same_json(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), path
        for index, (left, right) in enumerate(zip(actual, expected, strict=True)):
            assert_same_json(left, right, f"{path}[{index}]")
    else:
        assert actual == expected, path


def keyed_snapshot(first_id: int, rng: np.random.Generator) -> pa.Table:
    """5,000 rows of new entities (ids from `first_id`), seen at new times; calm features."""
    ids = np.arange(first_id, first_id + 5000)
    return pa.table(
        {
            "entity_id": ids,
            "seen_at": ids * 60,  # an event time stored as epoch seconds: a number, not a time
            "x": rng.normal(0, 1, 5000),
            "y": rng.normal(0, 1, 5000) + np.arange(5000) / 2500,  # as the ids grow, y grows
        }
    )


def keyed_profile(table: pa.Table, previous: Profile | None = None) -> Profile:
    builder = ProfileBuilder(target="y", entity_key="entity_id", event_time="seen_at")
    builder.add(table)
    return builder.finish(previous=previous)


def test_entity_keys_and_event_times_are_counted_and_ranged_but_never_drift() -> None:
    rng = np.random.default_rng(4)
    first = keyed_profile(keyed_snapshot(1, rng))
    second = keyed_profile(keyed_snapshot(1_000_000, rng), previous=first)
    key, seen = second.columns["entity_id"], second.columns["seen_at"]

    assert (key.role, seen.role, second.columns["x"].role) == ("entityKey", "eventTime", "feature")
    assert (key.count, key.min, key.max) == (5000, 1_000_000, 1_004_999)
    assert (seen.min, seen.max) == (60_000_000, 60_299_940)
    assert key.drift_score is None and seen.drift_score is None
    assert key.reference == {} and seen.reference == {}
    assert key.correlation_with_target is None  # an id carries no signal, whatever it seems
    summary = second.summary()
    assert summary["maxDriftScore"] == second.columns["x"].drift_score < 0.05
    assert summary["driftedColumns"] == []
    assert drift_scores(first, second).keys() == {"x", "y"}


def test_a_version_1_profile_still_serves_as_the_previous_one() -> None:
    rng = np.random.default_rng(6)
    first = keyed_profile(keyed_snapshot(1, rng)).to_json()
    for column in first["columns"]:
        del column["role"]
        column["reference"] = column["reference"] or {"kind": "numeric", "count": 1}
    old = {**first, "version": 1}
    del old["features"], old["rejects"]

    second = keyed_profile(keyed_snapshot(9_000, rng), previous=Profile.from_json(old))

    assert second.columns["entity_id"].drift_score is None
    assert second.columns["x"].drift_score is not None


def features_of(table: pa.Table) -> pa.Table:
    """What a FeatureSet's transforms might make of keyed_snapshot: scaled x, a product."""
    x = table.column("x").to_numpy()
    return pa.table(
        {"x_scaled": (x - x.mean()) / x.std(), "x_y": x * table.column("y").to_numpy()}
    ).append_column("y", table.column("y"))


def test_features_after_transforms_are_profiled_beside_the_raw_columns() -> None:
    rng = np.random.default_rng(8)

    def profile(table: pa.Table, previous: Profile | None = None) -> Profile:
        raw = ProfileBuilder(target="y", entity_key="entity_id", event_time="seen_at")
        features = ProfileBuilder(target="y", include_target=False, seed=1)
        for batch in uneven_batches(table):
            raw.add(batch)
        for batch in uneven_batches(features_of(table)):
            features.add(batch)
        return raw.finish(previous=previous, features=features)

    first = profile(keyed_snapshot(1, rng))
    shifted = keyed_snapshot(1, rng)
    shifted = shifted.set_column(3, "y", pa.array(shifted.column("y").to_numpy() * 4))
    second = profile(shifted, previous=first)

    assert first.features is not None and second.features is not None
    assert list(second.features.columns) == ["x_scaled", "x_y"]  # the target only correlates
    product = second.features.columns["x_y"]
    assert product.count == 5000 and product.correlation_with_target is not None
    assert product.drift_score > 0.2  # x * y spread with y
    assert second.features.columns["x_scaled"].drift_score < 0.05
    summary = second.summary()
    assert summary["columns"] == 2  # the model's inputs
    assert set(summary["driftedColumns"]) == {"y", "x_y"}
    assert summary["maxDriftScore"] == max(product.drift_score, second.columns["y"].drift_score)
    stored = json.loads(json.dumps(second.to_json(), allow_nan=False))
    assert [c["name"] for c in stored["features"]["columns"]] == ["x_scaled", "x_y"]
    assert Profile.from_json(stored).to_json() == second.to_json()


def test_the_features_sample_shares_a_budget_however_many_columns_there_are() -> None:
    assert feature_sample_size(5) == 100_000
    assert feature_sample_size(400) == FEATURE_SAMPLE_BUDGET // 400
    assert feature_sample_size(50_000) == 1_000  # quantiles stay meaningful
    assert feature_sample_size(400) * 400 <= FEATURE_SAMPLE_BUDGET


def test_values_near_the_float_limit_are_profiled_without_failing() -> None:
    """A derived feature may be finite yet huge (7.5 ** 350): its sums of squares overflow."""
    huge = pa.table({"x": [1e306, 5e306, 1.0, 2.0], "label": ["a", "b", "a", "b"]})
    builder = ProfileBuilder(target="label", categorical=["label"])
    builder.add(huge)
    first = builder.finish()

    x = builder.finish(previous=first).columns["x"]

    assert (x.count, x.min, x.max) == (4, 1.0, 5e306)
    assert x.std is None and x.correlation_with_target is None  # overflowed: not known
    assert x.drift_score == 0.0
    json.dumps(first.to_json(), allow_nan=False)


def test_values_on_a_bin_edge_land_in_the_same_bin_despite_rounding_noise() -> None:
    """Scaled discrete data sits on edges; parameters fitted in another order move it by ulps."""
    exact = np.linspace(0.0, 1.0, 21)  # every value on an edge of the 20 bins
    noisy = exact.copy()
    noisy[1:-1] = np.nextafter(exact[1:-1], -np.inf)  # a last-bit difference below each

    def histogram(values: np.ndarray) -> list[float]:
        builder = ProfileBuilder(target=None)
        builder.add(pa.table({"x": values}))
        return builder.finish().columns["x"].histogram["counts"]

    assert np.histogram(noisy, bins=20)[0].tolist() != np.histogram(exact, bins=20)[0].tolist()
    assert histogram(noisy) == histogram(exact) == [1.0] * 19 + [2.0]


def test_a_feature_transformed_in_place_counts_its_own_drift_under_its_name() -> None:
    rng = np.random.default_rng(12)

    def profile(spread: float, previous: Profile | None = None) -> Profile:
        raw = ProfileBuilder(target=None)
        features = ProfileBuilder(target=None, include_target=False, seed=1)
        raw.add(pa.table({"x": rng.normal(0, 1, 4000)}))  # the raw column keeps its shape
        features.add(pa.table({"x": rng.normal(0, spread, 4000)}))  # x after, say, a clip
        return raw.finish(previous=previous, features=features)

    second = profile(3.0, previous=profile(1.0))
    summary = second.summary()

    assert second.features is not None
    assert second.columns["x"].drift_score < 0.05 < 0.2 < second.features.columns["x"].drift_score
    assert summary["maxDriftScore"] == second.features.columns["x"].drift_score
    assert summary["driftedColumns"] == ["x"]
