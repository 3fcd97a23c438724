"""The row compiler of the expression language gives, row by row, exactly the batch compiler's values."""

from __future__ import annotations

import math
import struct
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.features.expression_grammar import FUNCTION_ARITY, ExpressionError
from conveyor.features.expression_row_functions import ROW_FUNCTIONS
from conveyor.features.expression_rows import compile_row_expression
from conveyor.features.expressions import FUNCTIONS, compile_expression
from conveyor.features.row_values import OffRowPath, RowUnsupported
from tests.unit.features.test_expressions import CASES, FORBIDDEN, TABLE

FLOAT_EDGES = (0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324, 1e308, -2.5, 0.5, None)
# Values where Python and pyarrow part ways: signed zeros, NaN, infinities, subnormals, integers
# past 2**53 and at the int64 limits, non-ASCII and empty text, timestamps at the edges of a day.
EDGES = pa.table(
    {
        "a": pa.array(
            [*FLOAT_EDGES, 2.675, 1.5, -0.4, -0.5],
            pa.float64(),
        ),
        "b": pa.array(
            [0, -1, 2**53 + 1, 2**63 - 1, -(2**63), 7, -7, None, 3, 2**53, 1, -3, 5, -5],
            pa.int64(),
        ),
        "s": pa.array(
            ["", " x ", "Straße", "ǅ", None, "ab", "İ", "a\u00a0", "X", "é", "ab", "B", "ab", "-"],
            pa.string(),
        ),
        "flag": pa.array(
            [
                True,
                False,
                None,
                True,
                False,
                None,
                True,
                True,
                False,
                False,
                True,
                None,
                True,
                False,
            ]
        ),
        "t": pa.array(
            [
                datetime(1970, 1, 1, tzinfo=UTC),
                datetime(2026, 3, 14, 23, 59, 59, 999999, tzinfo=UTC),
                None,
                datetime(2024, 2, 29, tzinfo=UTC),
                datetime(1900, 1, 1, 12, tzinfo=UTC),
                datetime(2026, 1, 1, tzinfo=UTC),
                datetime(2025, 12, 31, 23, tzinfo=UTC),
                datetime(2000, 6, 15, 6, 30, tzinfo=UTC),
                datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
                datetime(9999, 12, 31, tzinfo=UTC),
                datetime(2026, 7, 4, tzinfo=UTC),
                None,
                datetime(2026, 7, 5, tzinfo=UTC),
                datetime(2026, 7, 6, tzinfo=UTC),
            ],
            pa.timestamp("us", tz="UTC"),
        ),
    }
)

# Beyond CASES: each function and operator on mixed types, literals folded, and the edge rules.
MORE = [
    "coalesce(a, b, 0)",
    "coalesce(s, 'none')",
    "b in (1.5, 2)",
    "a in (0.0, 1, 2.5)",
    "a not in (0.0, 5e-324)",
    "s in ('', 'ab')",
    "clip(b, 0, 5)",
    "clip(a, -1, 0.0)",
    "min(a, 0.0)",
    "max(a, -0.0)",
    "min(b, a)",
    "max(b, 3)",
    "not flag or a > 1",
    "flag and a > 0 and b < 3",
    "None",
    "1 + 2 * 3",
    "10 ** 10 ** 10",
    "length(s) * 2",
    "length(s) + b",
    "t >= '2026-01-01' and flag",
    "t < '2026-01-01T00:00:00+02:00'",
    "'2025-06-01' <= t",
    "if_else(flag, b, a)",
    "if_else(flag, s, 'other')",
    "round(a * 1.2345, 3)",
    "round(a, 12)",
    "round(b, 1)",
    "abs(a)",
    "abs(b)",
    "b % -3",
    "a % 0.7",
    "b // 0",
    "a // -0.0",
    "-b",
    "-a ** 0.5",
    "a ** b",
    "b ** -1",
    "a * b",
    "b * 2 + 1",
    "b - 1",
    "a + b",
    "a / b",
    "b / a",
    "exp(a)",
    "exp(b)",
    "log(a) + log1p(a) + sqrt(a)",
    "log(b)",
    "floor(a) + ceil(a)",
    "round(a, 1)",
    "floor(b)",
    "upper(s) == 'AB'",
    "lower(s)",
    "is_null(a) or is_null(s)",
    "is_null(b)",
    "is_null(None)",
    "a == a",
    "a != a",
    "s < 'b'",
    "flag == True",
    "-3 < b <= 2 < a",
    "year(t) * 10000 + month(t) * 100 + day(t)",
    "hour(t) + dayofweek(t)",
    "+s",
]
TEXTS = [text for text, _ in CASES] + MORE


def bits(value: Any) -> Any:
    """A value compared bit for bit: floats by their IEEE bytes (so -0.0 is not 0.0)."""
    if isinstance(value, float):
        return ("float", struct.pack("<d", value) if value == value else "nan")
    return (type(value).__name__, value)


def row_outcomes(text: str, table: pa.Table) -> list[Any]:
    expression = compile_row_expression(text, table.schema)
    outcomes = []
    for row in table.to_pylist():
        try:
            outcomes.append(bits(expression.run(row)))
        except OffRowPath:
            outcomes.append("off")
    return outcomes


def batch_outcomes(text: str, table: pa.Table) -> list[Any]:
    """Each row alone through the batch path: its value, or the error it raises."""
    expression = compile_expression(text, table.column_names)
    outcomes = []
    for position in range(table.num_rows):
        try:
            outcomes.append(bits(expression.evaluate(table.slice(position, 1))[0].as_py()))
        except ExpressionError:
            outcomes.append("error")
    return outcomes


@pytest.mark.parametrize("text", TEXTS)
def test_each_construct_gives_the_batch_values_and_type_on_ordinary_rows(text: str) -> None:
    expected = batch_outcomes(text, TABLE)
    assert compile_row_expression(text, TABLE.schema).type == (
        compile_expression(text, TABLE.column_names).evaluate(TABLE).type
    )
    assert row_outcomes(text, TABLE) == expected  # never handed back: ordinary values


@pytest.mark.parametrize("text", TEXTS)
def test_each_construct_agrees_on_edge_values_or_hands_the_row_back(text: str) -> None:
    try:
        rows = row_outcomes(text, EDGES)
    except RowUnsupported:
        with pytest.raises(ExpressionError):  # only what the batch path cannot compute either
            compile_expression(text, EDGES.column_names).evaluate(EDGES.slice(0, 0))
        return
    for position, (got, want) in enumerate(zip(rows, batch_outcomes(text, EDGES), strict=True)):
        if want == "error":  # the batch path raises for this row: the row path must not answer
            assert got == "off", (text, position)
        elif got != "off":
            assert got == want, (text, position)


def test_the_row_path_hands_back_only_the_documented_edge_cases() -> None:
    handed_back = {
        text
        for text in MORE
        if "off" in row_outcomes(text, EDGES) and "error" not in batch_outcomes(text, EDGES)
    }
    # ±0 ties in min/max (pyarrow's answer depends on scalar or array operands) and non-ASCII
    # case mappings; everything else the row path answers itself.
    assert handed_back == {
        "clip(a, -1, 0.0)",
        "min(a, 0.0)",
        "max(a, -0.0)",
        "upper(s) == 'AB'",
        "lower(s)",
    }


def test_a_value_the_batch_path_refuses_is_handed_back_not_answered() -> None:
    table = pa.table({"a": [1.5], "b": [2**62]})
    for text in ("round(a, 400)", "b * 4", "b + a * 0 + 2**53"):
        with pytest.raises(ExpressionError):
            compile_expression(text, table.column_names).evaluate(table)
        with pytest.raises(OffRowPath):
            compile_row_expression(text, table.schema).run(table.to_pylist()[0])


def test_both_compilers_implement_every_function_of_the_grammar() -> None:
    assert set(ROW_FUNCTIONS) == set(FUNCTION_ARITY) == set(FUNCTIONS)


@pytest.mark.parametrize(("text", "message"), FORBIDDEN, ids=[case[0] for case in FORBIDDEN])
def test_the_row_compiler_refuses_what_the_grammar_refuses_with_the_same_message(
    text: str, message: str
) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_row_expression(text, TABLE.schema)
    with pytest.raises(ExpressionError) as batch:
        compile_expression(text, TABLE.column_names)
    assert str(caught.value) == str(batch.value)
    assert message in str(caught.value)


def test_a_type_the_batch_path_refuses_has_no_row_form() -> None:
    with pytest.raises(RowUnsupported):
        compile_row_expression("s + 1", TABLE.schema)
    with pytest.raises(RowUnsupported):  # text read as a number: pyarrow's parser decides
        compile_row_expression("s / 2", TABLE.schema)


NUMBERS = pa.schema([("x", pa.float64()), ("y", pa.float64()), ("n", pa.int64())])
FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, 0.5, -0.5, 1.5, 2.5, 2.675, 1e-320, 1e308]
)
INTS = st.integers(-(2**63), 2**63 - 1) | st.integers(-1000, 1000)
GENERATED = [
    "x + y",
    "x - y * n",
    "x / y",
    "x // y",
    "x % y",
    "n % 7",
    "n // -3",
    "x ** y",
    "n * n",
    "-n",
    "abs(n)",
    "round(x, 2)",
    "round(x)",
    "round(x, 15)",
    "round(x, 17)",
    "floor(x) - ceil(y)",
    "floor(x)",
    "ceil(x)",
    "round(x * 0.9)",
    "exp(x)",
    "log(x)",
    "log1p(y)",
    "sqrt(x)",
    "min(x, y)",
    "max(x, n)",
    "clip(x, y, 1)",
    "coalesce(x, n)",
    "x in (0.0, 1.5)",
    "x < y",
    "n == x",
]


@settings(max_examples=300, deadline=None)
@given(x=FLOATS, y=FLOATS, n=INTS, which=st.sampled_from(GENERATED))
def test_generated_numbers_agree_bit_for_bit(x: float, y: float, n: int, which: str) -> None:
    table = pa.table({"x": [x], "y": [y], "n": [n]}, schema=NUMBERS)
    [want] = batch_outcomes(which, table)
    [got] = row_outcomes(which, table)
    if want == "error":
        assert got == "off"
    elif got != "off":
        assert got == want
