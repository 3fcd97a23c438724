"""Raw rows to the typed schema: every valid row kept, every bad one rejected with its reason."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from conveyor.api.v1alpha1.featureset import FeatureSchema
from conveyor.features.conform import (
    ARROW_TYPES,
    SchemaMismatch,
    conform,
    parse_value,
    raw_arrow_schema,
    rows_to_batch,
)

SCHEMA = FeatureSchema.model_validate(
    {
        "entityKey": "flower_id",
        "eventTime": "observed_at",
        "target": "species",
        "columns": [
            {"name": "flower_id", "type": "int", "nullable": False},
            {"name": "observed_at", "type": "timestamp", "nullable": False},
            {"name": "sepal_length_cm", "type": "float", "min": 0, "max": 20},
            {"name": "fresh", "type": "bool"},
            {"name": "colour", "type": "category", "categories": ["blue", "white"]},
            {"name": "note", "type": "string"},
            {
                "name": "species",
                "type": "category",
                "nullable": False,
                "categories": ["setosa", "versicolor", "virginica"],
            },
        ],
    }
)
HEADER = "flower_id,observed_at,sepal_length_cm,fresh,colour,note,species\n"
GOOD = "1,2026-01-01T00:00:00Z,5.1,true,blue,hello,setosa\n"


def read_csv(text: str) -> pa.Table:
    """How materialization reads CSV: every column as text."""
    names = HEADER.strip().split(",")
    return pacsv.read_csv(
        io.BytesIO(text.encode()),
        convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string())),
    )


def test_the_typed_schema_lists_the_spec_columns_in_order() -> None:
    schema = raw_arrow_schema(SCHEMA)
    assert schema.names == [column.name for column in SCHEMA.columns]
    assert schema.field("observed_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("colour").type == pa.string()
    assert ARROW_TYPES["int"] == pa.int64()


def test_valid_text_rows_are_typed_and_all_kept() -> None:
    text = (
        HEADER
        + GOOD
        + (
            "2, 2026-01-01 02:30:00+02:00 , 1e1 ,YES,white,,virginica\n"
            "3,2026-01-02,NA,0,,  spaced  ,versicolor\n"
            "+4,2026-01-03T04:05:06.789,,No,blue,x,setosa\n"
        )
    )
    result = conform(read_csv(text), SCHEMA)
    assert result.rejected == 0
    assert result.batch.schema == raw_arrow_schema(SCHEMA)
    assert result.batch.to_pylist() == [
        {
            "flower_id": 1,
            "observed_at": datetime(2026, 1, 1, tzinfo=UTC),
            "sepal_length_cm": 5.1,
            "fresh": True,
            "colour": "blue",
            "note": "hello",
            "species": "setosa",
        },
        {
            "flower_id": 2,
            "observed_at": datetime(2026, 1, 1, 0, 30, tzinfo=UTC),
            "sepal_length_cm": 10.0,
            "fresh": True,
            "colour": "white",
            "note": "",
            "species": "virginica",
        },
        {
            "flower_id": 3,
            "observed_at": datetime(2026, 1, 2, tzinfo=UTC),
            "sepal_length_cm": None,
            "fresh": False,
            "colour": None,
            "note": "  spaced  ",
            "species": "versicolor",
        },
        {
            "flower_id": 4,
            "observed_at": datetime(2026, 1, 3, 4, 5, 6, 789000, tzinfo=UTC),
            "sepal_length_cm": None,
            "fresh": False,
            "colour": "blue",
            "note": "x",
            "species": "setosa",
        },
    ]


BAD_ROWS = [
    ("x,2026-01-01T00:00:00Z,5.1,true,blue,n,setosa", "flower_id: 'x' is not a valid int"),
    (
        ",2026-01-01T00:00:00Z,5.1,true,blue,n,setosa",
        "flower_id: missing value, the column is not nullable",
    ),
    ("1,yesterday,5.1,true,blue,n,setosa", "observed_at: 'yesterday' is not a valid timestamp"),
    (
        "1,2026-01-01T00:00:00Z,five,true,blue,n,setosa",
        "sepal_length_cm: 'five' is not a valid float",
    ),
    ("1,2026-01-01T00:00:00Z,-3,true,blue,n,setosa", "sepal_length_cm: -3.0 is below min 0"),
    ("1,2026-01-01T00:00:00Z,20.5,true,blue,n,setosa", "sepal_length_cm: 20.5 is above max 20"),
    ("1,2026-01-01T00:00:00Z,5.1,maybe,blue,n,setosa", "fresh: 'maybe' is not a valid bool"),
    (
        "1,2026-01-01T00:00:00Z,5.1,true,red,n,setosa",
        "colour: 'red' is not one of the categories blue, white",
    ),
    (
        "1,2026-01-01T00:00:00Z,5.1,true,blue,n,",
        "species: missing value, the column is not nullable",
    ),
]


@pytest.mark.parametrize(("line", "reason"), BAD_ROWS, ids=[reason for _, reason in BAD_ROWS])
def test_each_kind_of_bad_value_rejects_its_row_with_the_reason(line: str, reason: str) -> None:
    result = conform(read_csv(HEADER + GOOD + line + "\n" + GOOD), SCHEMA)
    assert result.rejected == 1
    assert result.batch.num_rows == 2
    [sample] = result.samples
    assert sample.reason == reason
    assert sample.row == dict(zip(HEADER.strip().split(","), line.split(","), strict=True))


def test_a_row_broken_in_several_columns_names_them_all() -> None:
    result = conform(read_csv(HEADER + "x,2026-01-01,-1,true,red,n,setosa\n"), SCHEMA)
    assert result.samples[0].reason == (
        "flower_id: 'x' is not a valid int; sepal_length_cm: -1.0 is below min 0; "
        "colour: 'red' is not one of the categories blue, white"
    )


def test_no_valid_row_is_lost_among_many_bad_ones_and_samples_are_capped() -> None:
    lines = [f"{i},2026-01-01T00:00:00Z,{i % 30},true,blue,n,setosa" for i in range(1000)]
    result = conform(read_csv(HEADER + "\n".join(lines) + "\n"), SCHEMA, max_samples=5)
    assert result.rejected == sum(1 for i in range(1000) if i % 30 > 20)
    assert result.batch.num_rows + result.rejected == 1000
    assert [r["flower_id"] for r in result.batch.to_pylist()] == [
        i for i in range(1000) if i % 30 <= 20
    ]
    assert len(result.samples) == 5
    assert result.samples[0].reason == "sepal_length_cm: 21.0 is above max 20"


def test_typed_sources_are_cast_and_checked_like_text() -> None:
    raw = pa.table(
        {
            "flower_id": pa.array([1.0, 2.5, 3.0], pa.float64()),
            "observed_at": pa.array([0, 1, 2], pa.timestamp("s")),
            "sepal_length_cm": pa.array([5, 6, float("nan")], pa.float32()),
            "fresh": pa.array([1, 0, 7], pa.int8()),
            "colour": pa.array(["blue", "white", "blue"]).dictionary_encode(),
            "note": pa.array(["a", None, "c"], pa.large_string()),
            "species": pa.array(["setosa"] * 3),
        }
    )
    result = conform(raw, SCHEMA)
    assert result.rejected == 2
    assert [s.reason for s in result.samples] == [
        "flower_id: 2.5 is not a whole number",
        "fresh: 7 is not a valid bool",
    ]
    [row] = result.batch.to_pylist()
    assert row["flower_id"] == 1
    assert row["observed_at"] == datetime(1970, 1, 1, tzinfo=UTC)
    assert row["sepal_length_cm"] == 5.0
    assert row["fresh"] is True


def test_a_nan_in_a_typed_source_is_a_null() -> None:
    raw = read_csv(HEADER + GOOD).set_column(
        2, "sepal_length_cm", pa.array([float("nan")], pa.float64())
    )
    result = conform(raw, SCHEMA)
    assert result.rejected == 0
    assert result.batch.column("sepal_length_cm").to_pylist() == [None]


def test_a_missing_source_column_names_what_the_source_has() -> None:
    raw = read_csv(HEADER + GOOD).drop_columns(["sepal_length_cm"])
    with pytest.raises(
        SchemaMismatch,
        match=(
            "source column 'sepal_length_cm' not found; the source has: flower_id, observed_at, "
            "fresh, colour, note, species"
        ),
    ):
        conform(raw, SCHEMA)


def test_a_source_column_of_an_unusable_type_is_a_schema_mismatch() -> None:
    raw = read_csv(HEADER + GOOD).set_column(
        3, "fresh", pa.array([datetime(2026, 1, 1)], pa.timestamp("us"))
    )
    with pytest.raises(
        SchemaMismatch,
        match=r"'fresh' has type timestamp\[us\], which cannot be "
        "read as bool",
    ):
        conform(raw, SCHEMA)


def test_a_renamed_source_column_is_read_under_its_feature_name() -> None:
    schema = FeatureSchema.model_validate(
        {"columns": [{"name": "length", "type": "float", "sourceColumn": "Sepal Length"}]}
    )
    result = conform(pa.table({"Sepal Length": ["1.5"], "other": ["x"]}), schema)
    assert result.batch.to_pylist() == [{"length": 1.5}]


def request_rows() -> list[dict[str, Any]]:
    return [
        {
            "flower_id": 1,
            "observed_at": "2026-01-01T00:00:00Z",
            "sepal_length_cm": 5,
            "fresh": True,
            "colour": "blue",
            "note": "n",
            "species": "setosa",
            "extra": [1],
        },
        {"sepal_length_cm": 4.2},
    ]


def test_request_rows_become_a_batch_with_every_schema_column() -> None:
    batch = rows_to_batch(request_rows(), SCHEMA)
    assert batch.schema.names == [column.name for column in SCHEMA.columns]
    assert batch.column(batch.schema.get_field_index("sepal_length_cm")).to_pylist() == [5.0, 4.2]
    assert batch.column(batch.schema.get_field_index("colour")).to_pylist() == ["blue", None]


def test_request_rows_may_leave_the_keys_and_the_target_empty() -> None:
    result = conform(rows_to_batch(request_rows(), SCHEMA), SCHEMA)
    assert result.rejected == 0
    second = result.batch.to_pylist()[1]
    assert second["flower_id"] is None and second["species"] is None
    assert second["sepal_length_cm"] == 4.2


def test_request_values_of_the_wrong_json_type_are_parsed_or_rejected() -> None:
    rows = [
        {"sepal_length_cm": "5.5", "fresh": "yes"},
        {"sepal_length_cm": {"a": 1}},
        {"sepal_length_cm": 50},
    ]
    result = conform(rows_to_batch(rows, SCHEMA), SCHEMA)
    assert result.batch.column("sepal_length_cm").to_pylist() == [5.5]
    assert result.batch.column("fresh").to_pylist() == [True]
    assert [s.reason for s in result.samples] == [
        "sepal_length_cm: \"{'a': 1}\" is not a valid float",
        "sepal_length_cm: 50.0 is above max 20",
    ]


def test_request_rows_and_the_same_rows_as_csv_conform_to_identical_values() -> None:
    text = HEADER + GOOD + "2,2026-01-01T01:00:00Z,0.1,false,white,x,virginica\n"
    from_csv = conform(read_csv(text), SCHEMA).batch
    rows = [
        {
            "flower_id": 1,
            "observed_at": "2026-01-01T00:00:00Z",
            "sepal_length_cm": 5.1,
            "fresh": True,
            "colour": "blue",
            "note": "hello",
            "species": "setosa",
        },
        {
            "flower_id": 2,
            "observed_at": "2026-01-01T01:00:00Z",
            "sepal_length_cm": 0.1,
            "fresh": False,
            "colour": "white",
            "note": "x",
            "species": "virginica",
        },
    ]
    assert conform(rows_to_batch(rows, SCHEMA), SCHEMA).batch.equals(from_csv)


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("3", "int", 3),
        (" 2.5 ", "float", 2.5),
        ("No", "bool", False),
        ("x", "category", "x"),
        ("2026-01-01", "timestamp", datetime(2026, 1, 1, tzinfo=UTC)),
    ],
)
def test_a_single_value_parses_as_a_cell_would(text: str, kind: str, value: Any) -> None:
    assert parse_value(text, kind) == value


def test_a_single_value_that_cannot_parse_says_so() -> None:
    with pytest.raises(ValueError, match="'abc' is not a valid float"):
        parse_value("abc", "float")


@pytest.mark.parametrize("text", ["inf", "-inf", "1e400", "Infinity"])
def test_an_infinite_number_is_rejected_not_passed_on(text: str) -> None:
    line = f"1,2026-01-01T00:00:00Z,{text},true,blue,n,setosa\n"
    unbounded = FeatureSchema.model_validate(
        {"columns": [{"name": "x", "type": "float"}, {"name": "y", "type": "float"}]}
    )

    bounded = conform(read_csv(HEADER + GOOD + line), SCHEMA)
    free = conform(pa.table({"x": [text, "2.5"], "y": ["1", "1"]}), unbounded)

    value = "-inf" if text.startswith("-") else "inf"
    [sample] = bounded.samples
    assert sample.reason == f"sepal_length_cm: {value} is not a finite number"  # one reason
    assert free.batch.column("x").to_pylist() == [2.5]
    assert free.samples[0].reason == f"x: {value} is not a finite number"


def test_rejects_are_counted_per_rule_with_the_first_offending_value() -> None:
    lines = [
        "1,2026-01-01T00:00:00Z,25,true,blue,n,setosa",
        "2,2026-01-01T00:00:00Z,30,true,red,n,setosa",
        "3,2026-01-01T00:00:00Z,5,true,red,n,setosa",
        ",2026-01-01T00:00:00Z,5,true,blue,n,setosa",
    ]
    result = conform(read_csv(HEADER + "\n".join(lines) + "\n"), SCHEMA)

    assert result.rejected == 4
    assert result.reasons == {
        "sepal_length_cm: above max 20": 2,
        "colour: not one of the categories blue, white": 2,  # row 2 counts under both rules
        "flower_id: missing value, the column is not nullable": 1,
    }
    assert result.examples == {
        "sepal_length_cm: above max 20": "25.0",
        "colour: not one of the categories blue, white": "'red'",
    }
