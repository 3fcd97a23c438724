"""The row path's conform: each JSON value typed and checked as conform() types and checks it."""

from __future__ import annotations

import math
from typing import Any

import pytest

from conveyor.api.v1alpha1.featureset import FeatureSchema
from conveyor.features.conform import conform, rows_to_batch
from conveyor.features.row_conform import RowsRejected, compile_row_conform
from conveyor.features.row_values import OffRowPath

SCHEMA = FeatureSchema.model_validate(
    {
        "columns": [
            {"name": "at", "type": "timestamp"},
            {"name": "x", "type": "float", "sourceColumn": "raw_x"},
            {"name": "n", "type": "int"},
            {"name": "ok", "type": "bool"},
            {"name": "c", "type": "category"},
            {"name": "s", "type": "string"},
        ]
    }
)

VALUES: dict[str, list[Any]] = {
    "at": [
        "2026-01-01",
        "2026-01-01T00:00",
        "2026-01-01 23:59:59",
        "2026-01-01T10:00:00.123456",
        "2026-01-01T10:00:00.1",
        "2026-01-01T10:00:00-05:30",
        "2026-01-01T10:00:00+14:00",
        "2026-12-31T23:59:59Z",
        "0001-01-01",
        "9999-12-31T23:59:59.999999",
        "2024-02-29",
        " 2026-01-01T08:00:00Z ",
        "null",
        "",
        None,
    ],
    "raw_x": [0.0, -0.0, 1, -(2**53), 5e-324, 1e308, math.nan, None],
    "n": [0, -1, 2**63 - 1, -(2**63), None],
    "ok": [True, False, None],
    "c": ["a", " a ", "", "  ", "ǅ x\u2003", 3, 2.5, True, None],
    "s": ["", " a ", "é", 7, False, None],
}
# Values conform parses from text or refuses: the row path hands them to the batch path.
HANDED_BACK: dict[str, list[Any]] = {
    "at": ["2026-02-30", "2026-01-01T24:00:00", "2026-01-01T10", "yesterday", 1767225600],
    "raw_x": ["1.5", True, 2**53 + 1],
    "n": [1.0, "3", True, 2**63],
    "ok": [1, "true"],
    "c": [[1], "\ud800"],
}


def batch_value(column: str, value: Any) -> Any:
    batch = conform(rows_to_batch([{column: value}], SCHEMA), SCHEMA, serving=True)
    assert batch.rejected == 0
    name = "x" if column == "raw_x" else column
    return batch.batch.column(name)[0].as_py()


@pytest.mark.parametrize(
    ("column", "value"), [(column, value) for column, values in VALUES.items() for value in values]
)
def test_each_json_value_is_typed_as_conform_types_it(column: str, value: Any) -> None:
    [row] = compile_row_conform(SCHEMA)([{column: value}])
    got, want = row["x" if column == "raw_x" else column], batch_value(column, value)
    assert type(got) is type(want)
    if isinstance(want, float):
        assert math.copysign(1.0, got) == math.copysign(1.0, want)
    assert got == want  # a timestamp: the same instant, in UTC


@pytest.mark.parametrize(
    ("column", "value"),
    [(column, value) for column, values in HANDED_BACK.items() for value in values],
)
def test_a_value_conform_reads_as_text_is_handed_to_the_batch_path(column: str, value: Any) -> None:
    with pytest.raises(OffRowPath):
        compile_row_conform(SCHEMA)([{column: value}])


def test_a_column_is_read_by_its_source_name_before_its_feature_name() -> None:
    conform_rows = compile_row_conform(SCHEMA)
    assert conform_rows([{"raw_x": 1.0, "x": 2.0}])[0]["x"] == 1.0
    assert conform_rows([{"x": 2.0}])[0]["x"] == 2.0
    assert conform_rows([{"raw_x": None, "x": 2.0}])[0]["x"] is None


def test_rejections_count_rows_and_quote_the_first_five() -> None:
    schema = FeatureSchema.model_validate(
        {"columns": [{"name": "x", "type": "float", "nullable": False, "max": 1}]}
    )
    rows: list[dict[str, Any]] = [{"x": 2.0 + i} for i in range(6)] + [{"x": 0.5}, {}]
    with pytest.raises(RowsRejected) as refused:
        compile_row_conform(schema)(rows)
    result = conform(rows_to_batch(rows, schema), schema, serving=True)
    assert (refused.value.rejected, refused.value.total) == (result.rejected, 8)
    assert refused.value.reasons == [sample.reason for sample in result.samples[:5]]
