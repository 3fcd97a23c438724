"""The row path's numeric lane: the row path's matrix bit for bit on rows of finite numbers, and
no answer of its own (the row path then answers, in the batch path's words) on anything else."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from conveyor.features.rowpath import RowPath
from tests.unit.features.test_transforms import SCHEMA, csv_bytes, materialize, raw_rows, spec_with
from tests.unit.training.test_row_path import batch_outcome, feature_step, json_rows, outcome

AT = "2026-01-01T00:00:00Z"
NUMBERS = {  # the key, time and target, and two float features; y bounded
    **SCHEMA,
    "columns": [
        {"name": "id", "type": "int", "nullable": False},
        {"name": "at", "type": "timestamp", "nullable": False},
        {"name": "x", "type": "float"},
        {"name": "y", "type": "float", "min": -8, "max": 12},
        {"name": "label", "type": "category", "nullable": False},
    ],
}
LANES = {
    "standardScale": [{"op": "standardScale", "columns": ["x", "y"]}],
    "minMaxScale": [{"op": "minMaxScale", "columns": ["x", "y"]}],
    "impute-then-scale": [
        {"op": "impute", "columns": ["x"], "strategy": "median"},
        {"op": "impute", "columns": ["y"], "strategy": "mean"},
        {"op": "standardScale", "columns": ["x"]},
    ],
    "filter-and-chain": [
        {"op": "filter", "expression": "x > 0.3"},
        {"op": "standardScale", "columns": ["y", "x"]},
        {"op": "minMaxScale", "columns": ["x"]},
    ],
    "none": [],
}
# Rows the lane must leave to the row path: each gives the batch path's answer all the same.
DECLINED: list[dict[str, Any]] = [
    {"id": 1, "at": AT, "x": None, "y": 1.0},
    {"id": 2, "at": AT, "y": 1.0},
    {"id": 3, "at": AT, "x": math.nan, "y": 1.0},
    {"id": 4, "at": AT, "x": math.inf, "y": 1.0},
    {"id": 5, "at": AT, "x": "0.5", "y": 1.0},
    {"id": 6, "at": AT, "x": True, "y": 1.0},
    {"id": 7, "at": AT, "x": 2**60, "y": 1.0},
    {"id": 8, "at": AT, "x": 0.5, "y": 12.5},  # above max
    {"id": 9, "at": AT, "x": 0.5, "y": -9},  # below min
    {"id": "10", "at": AT, "x": 0.5, "y": 1.0},  # the key as text: conform parses it
    {"id": 11, "at": "yesterday", "x": 0.5, "y": 1.0},
]
# Scaled, these go beyond float64 or not, by the kind's parameters.
HUGE = [{"id": 12, "at": AT, "x": 1.79e308, "y": 1.0}, {"id": 13, "at": AT, "x": -1.79e308, "y": 1}]
# Rows it answers: ints, -0.0, the bounds themselves, no key or time, names by source.
ANSWERED: list[dict[str, Any]] = [
    {"id": 20, "at": AT, "x": 3, "y": -8},
    {"id": 21, "at": AT, "x": -0.0, "y": 12},
    {"x": 5e-324, "y": 0.0},
    {"id": 2**62, "at": "2026-01-01", "x": 2**53, "y": 11.999},
]


def _path(kind: str) -> tuple[Any, RowPath]:
    spec = spec_with(*LANES[kind], schema=NUMBERS)
    fitted, _ = materialize(spec, csv_bytes(raw_rows()))
    step = feature_step(spec, fitted)
    schema, parsed = step._parsed()
    path = parsed.row_path(schema)
    assert path is not None and path.lane is not None, kind
    return step, path


def _ordinary() -> list[dict[str, Any]]:
    rows = [row for row in json_rows(raw_rows()) if row["x"] is not None and row["y"] is not None]
    return [{key: row[key] for key in ("id", "at", "x", "y")} for row in rows]


@pytest.mark.parametrize("kind", list(LANES))
def test_the_lane_gives_the_row_paths_matrix_bit_for_bit(kind: str) -> None:
    step, path = _path(kind)
    assert path.lane is not None
    rows = [*_ordinary(), *ANSWERED]
    for row in rows:
        lane = path.lane.features([row])
        assert lane is not None, (kind, row)
        assert lane.tobytes() == path.every_row([row]).tobytes(), (kind, row)
        assert outcome(step, [row]) == batch_outcome(step, [row]), (kind, row)
    together = path.lane.features(rows)
    assert together is not None and together.shape == (len(rows), 2)
    assert together.tobytes() == path.every_row(rows).tobytes()
    assert np.isfinite(together).all()


@pytest.mark.parametrize("kind", list(LANES))
def test_the_lane_leaves_every_other_row_to_the_row_path(kind: str) -> None:
    step, path = _path(kind)
    assert path.lane is not None
    for row in DECLINED:
        assert path.lane.features([row]) is None, (kind, row)
        assert path.lane.features([*_ordinary()[:3], row]) is None, (kind, row)
        assert outcome(step, [row]) == batch_outcome(step, [row]), (kind, row)


@pytest.mark.parametrize("kind", list(LANES))
def test_a_value_scaled_beyond_float64_is_left_to_the_row_path(kind: str) -> None:
    step, path = _path(kind)
    assert path.lane is not None
    for row in HUGE:
        try:
            expected = path.every_row([row]).tobytes()
        except ValueError:  # NonFiniteResult
            expected = None
        lane = path.lane.features([row])
        assert (None if lane is None else lane.tobytes()) == expected, (kind, row)
        assert outcome(step, [row]) == batch_outcome(step, [row]), (kind, row)
    if kind == "standardScale":  # the uniform x has a scale below 1: both rows overflow
        refused = outcome(step, HUGE)
        assert refused[0] == "FeatureError" and "not a finite number" in refused[1]


@pytest.mark.parametrize(
    "schema, transforms",
    [
        (SCHEMA, [{"op": "ordinal", "columns": ["colour"]}]),  # an int and a category feature
        (NUMBERS, [{"op": "log", "columns": ["x"]}]),
        (NUMBERS, [{"op": "clip", "columns": ["x"], "min": 0.2}]),
        (NUMBERS, [{"op": "derive", "output": "xy", "expression": "x * y"}]),
    ],
    ids=["int-and-category-features", "log", "clip", "derive"],
)
def test_feature_sets_beyond_scaled_numbers_have_no_lane(
    schema: dict[str, Any], transforms: list[dict[str, Any]]
) -> None:
    spec = spec_with(*transforms, schema=schema)
    fitted, _ = materialize(spec, csv_bytes(raw_rows()))
    parsed_schema, parsed = feature_step(spec, fitted)._parsed()
    path = parsed.row_path(parsed_schema)
    assert path is not None and path.lane is None


def test_a_min_max_scale_of_a_constant_column_gives_zero_on_both_paths() -> None:
    spec = spec_with({"op": "minMaxScale", "columns": ["x", "y"]}, schema=NUMBERS)
    data = [{**row, "y": 2.5} for row in raw_rows()]
    fitted, _ = materialize(spec, csv_bytes(data))
    step = feature_step(spec, fitted)
    schema, parsed = step._parsed()
    path = parsed.row_path(schema)
    assert path is not None and path.lane is not None
    rows = [*_ordinary(), *ANSWERED]
    lane = path.lane.features(rows)
    assert lane is not None and not lane[:, 1].any()
    assert lane.tobytes() == path.every_row(rows).tobytes()
    assert outcome(step, rows) == batch_outcome(step, rows)


def _table(rows: list[dict[str, Any]], **types: pa.DataType) -> pa.Table:
    """The rows as the server builds a batch: one column per input sent, floats as float64."""
    names = [name for name in ("id", "at", "x", "y") if any(name in row for row in rows)]
    return pa.table(
        {
            name: pa.array([row.get(name) for row in rows], types.get(name, pa.float64()))
            for name in names
        }
    )


def _numbers(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"x": row["x"], "y": row["y"]} for row in rows]


@pytest.mark.parametrize("kind", list(LANES))
def test_a_table_of_numbers_takes_the_lane_and_gets_the_batch_paths_matrix(kind: str) -> None:
    step, path = _path(kind)
    assert path.lane is not None
    rows = _numbers([*_ordinary(), *ANSWERED] * 20)
    matrix = path.lane.table_features(_table(rows))
    assert matrix is not None and matrix.shape == (len(rows), 2)
    assert (matrix.shape, matrix.tobytes()) == batch_outcome(step, rows)
    assert outcome(step, _table(rows)) == batch_outcome(step, rows)


TABLES_DECLINED = {
    "a null": [{"x": None, "y": 1.0}],
    "NaN": [{"x": math.nan, "y": 1.0}],
    "infinity": [{"x": 0.5, "y": -math.inf}],
    "above max": [{"x": 0.5, "y": 12.5}],
    "below min": [{"x": 0.5, "y": -9.0}],
    "the key sent along": [{"id": 4, "x": 0.5, "y": 1.0}],
    "a missing column": [{"x": 0.5}],
}


@pytest.mark.parametrize("kind", list(LANES))
def test_a_table_the_lane_cannot_answer_gets_the_batch_paths_answer(kind: str) -> None:
    step, path = _path(kind)
    assert path.lane is not None
    ordinary = _numbers(_ordinary())
    for what, broken in TABLES_DECLINED.items():
        rows = [*ordinary, *broken]
        table = _table(rows, id=pa.int64())
        assert path.lane.table_features(table) is None, (kind, what)
        assert outcome(step, table) == batch_outcome(step, rows), (kind, what)
    as_ints = _table([{"x": 1, "y": 2}, {"x": 3, "y": 4}], x=pa.int64())
    assert path.lane.table_features(as_ints) is None
    for row in HUGE:
        rows = [*ordinary, _numbers([row])[0]]
        try:
            expected = (len(rows), 2), path.every_row(rows).tobytes()
        except ValueError:  # NonFiniteResult
            expected = None
        lane = path.lane.table_features(_table(rows))
        assert (None if lane is None else (lane.shape, lane.tobytes())) == expected, (kind, row)
        assert outcome(step, _table(rows)) == batch_outcome(step, rows), (kind, row)
