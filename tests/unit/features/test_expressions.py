"""The safe expression language: what it computes, and what it refuses to run."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from conveyor.features.expressions import FUNCTIONS, ExpressionError, compile_expression

TIMES = [
    datetime(2026, 3, 14, 15, 9, tzinfo=UTC),
    datetime(2025, 12, 31, 23, 59, tzinfo=UTC),
    None,
    datetime(2024, 2, 29, 0, 0, tzinfo=UTC),
]
ROWS = {
    "a": [1.5, -2.0, None, 9.0],
    "b": [2, 0, 3, -4],
    "s": ["Setosa", "ab", None, "X"],
    "flag": [True, False, True, None],
    "t": TIMES,
}
TABLE = pa.table(
    {
        "a": pa.array(ROWS["a"], pa.float64()),
        "b": pa.array(ROWS["b"], pa.int64()),
        "s": pa.array(ROWS["s"], pa.string()),
        "flag": pa.array(ROWS["flag"], pa.bool_()),
        "t": pa.array(TIMES, pa.timestamp("us", tz="UTC")),
    }
)


def rows() -> list[dict[str, Any]]:
    return [dict(zip(ROWS, values, strict=True)) for values in zip(*ROWS.values(), strict=True)]


class _Null(Exception):
    pass


class _Row(dict):
    """Reading a null value (with []) makes the whole result null, as in the language."""

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key)
        if value is None:
            raise _Null
        return value


def strict(function):
    """Python semantics, with nulls propagating and out-of-domain values (division by zero,
    log of a negative) giving null."""

    def wrapped(row: dict[str, Any]) -> Any:
        try:
            return function(_Row(row))
        except (_Null, ZeroDivisionError, ValueError):
            return None

    return wrapped


# (expression, the same computation in plain Python over one row)
CASES = [
    ("a + b", lambda r: r["a"] + r["b"]),
    ("a - b * 2", lambda r: r["a"] - r["b"] * 2),
    ("a / b", lambda r: r["a"] / r["b"]),
    ("b // 3", lambda r: r["b"] // 3),
    ("-7 // b", lambda r: -7 // r["b"]),
    ("b % 3", lambda r: r["b"] % 3),
    ("-7 % b", lambda r: -7 % r["b"]),
    ("a % 2", lambda r: r["a"] % 2),
    ("b ** 2", lambda r: float(r["b"] ** 2)),
    ("2 ** a", lambda r: 2 ** r["a"]),
    ("-a", lambda r: -r["a"]),
    ("+b", lambda r: +r["b"]),
    ("(a + 1) * (b - 1)", lambda r: (r["a"] + 1) * (r["b"] - 1)),
    ("not flag", lambda r: not r["flag"]),
    ("a > 1", lambda r: r["a"] > 1),
    ("a >= 1.5", lambda r: r["a"] >= 1.5),
    ("b < 0", lambda r: r["b"] < 0),
    ("b <= 0", lambda r: r["b"] <= 0),
    ("b == 2", lambda r: r["b"] == 2),
    ("s != 'ab'", lambda r: r["s"] != "ab"),
    ("-3 < b <= 2", lambda r: -3 < r["b"] <= 2),
    ("s in ('ab', 'X')", lambda r: r["s"] in ("ab", "X")),
    ("b not in [0, 2]", lambda r: r["b"] not in [0, 2]),
    ("b > 0 and a > 0", lambda r: r["b"] > 0 and r["a"] > 0),
    ("b < 0 or a > 1", lambda r: r["b"] < 0 or r["a"] > 1),
    ("log(a)", lambda r: math.log(r["a"])),
    ("log1p(a)", lambda r: math.log1p(r["a"])),
    ("exp(b)", lambda r: math.exp(r["b"])),
    ("sqrt(a)", lambda r: math.sqrt(r["a"])),
    ("abs(b)", lambda r: abs(r["b"])),
    ("round(a)", lambda r: float(round(r["a"]))),
    ("round(a / 3, 2)", lambda r: round(r["a"] / 3, 2)),
    ("floor(a)", lambda r: float(math.floor(r["a"]))),
    ("ceil(a)", lambda r: float(math.ceil(r["a"]))),
    ("min(a, b)", lambda r: min(r["a"], r["b"])),
    ("max(a, b)", lambda r: max(r["a"], r["b"])),
    ("clip(a, 0, 5)", lambda r: min(max(r["a"], 0), 5)),
    ("is_null(a)", lambda r: r.get("a") is None),
    ("if_else(b > 0, a, b)", lambda r: r["a"] if r["b"] > 0 else r["b"]),
    ("lower(s)", lambda r: r["s"].lower()),
    ("upper(s)", lambda r: r["s"].upper()),
    ("length(s)", lambda r: len(r["s"])),
    ("year(t)", lambda r: r["t"].year),
    ("month(t)", lambda r: r["t"].month),
    ("day(t)", lambda r: r["t"].day),
    ("hour(t)", lambda r: r["t"].hour),
    ("dayofweek(t)", lambda r: r["t"].weekday()),
    ("t >= '2026-01-01'", lambda r: r["t"] >= datetime(2026, 1, 1, tzinfo=UTC)),
    ("'x'", lambda r: "x"),
    ("True", lambda r: True),
]


@pytest.mark.parametrize(("text", "python"), CASES, ids=[case[0] for case in CASES])
def test_each_allowed_construct_computes_what_python_computes(text: str, python) -> None:
    expected = [strict(python)(row) for row in rows()]
    actual = compile_expression(text, TABLE.column_names).evaluate(TABLE).to_pylist()
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        if not isinstance(want, float) or got is None:
            assert got == want, (text, actual, expected)
        else:
            assert got == pytest.approx(want, rel=1e-12), (text, actual, expected)


def test_every_listed_function_is_covered_by_a_case() -> None:
    used = {name for text, _ in CASES for name in FUNCTIONS if f"{name}(" in text}
    assert used | {"coalesce"} == set(FUNCTIONS)


def test_coalesce_takes_the_first_value_that_is_not_null() -> None:
    result = compile_expression("coalesce(a, b, 0)", TABLE.column_names).evaluate(TABLE)
    assert result.to_pylist() == [1.5, -2.0, 3.0, 9.0]


def test_and_or_follow_three_valued_logic() -> None:
    table = pa.table({"p": pa.array([None, None, True], pa.bool_())})
    assert compile_expression("p and False", ["p"]).evaluate(table).to_pylist() == [
        False,
        False,
        False,
    ]
    assert compile_expression("p or True", ["p"]).evaluate(table).to_pylist() == [True] * 3
    assert compile_expression("p and True", ["p"]).evaluate(table).to_pylist() == [None, None, True]


def test_division_by_zero_and_out_of_domain_values_are_null_not_errors() -> None:
    table = pa.table({"x": [0.0, -1.0, 4.0], "n": [0, 1, 2]})
    assert compile_expression("1 / x", ["x", "n"]).evaluate(table).to_pylist() == [None, -1.0, 0.25]
    assert compile_expression("n // n", ["x", "n"]).evaluate(table).to_pylist() == [None, 1, 1]
    assert compile_expression("log(x)", ["x", "n"]).evaluate(table).to_pylist()[:2] == [None, None]
    assert compile_expression("sqrt(x)", ["x", "n"]).evaluate(table).to_pylist() == [0.0, None, 2.0]


def test_a_constant_has_one_value_per_row_and_chunked_tables_work() -> None:
    table = pa.concat_tables([TABLE.slice(0, 2), TABLE.slice(2)])
    assert table.column("a").num_chunks == 2
    assert compile_expression("1", ["a"]).evaluate(table).to_pylist() == [1, 1, 1, 1]
    assert compile_expression("None", ["a"]).evaluate(table).to_pylist() == [None] * 4
    result = compile_expression("a * 2", ["a"]).evaluate(table)
    assert isinstance(result, pa.Array)
    assert result.to_pylist() == [3.0, -4.0, None, 18.0]


def test_the_expression_knows_which_columns_it_reads() -> None:
    expression = compile_expression("log1p(a) + if_else(flag, b, 0)", TABLE.column_names)
    assert expression.columns == frozenset({"a", "flag", "b"})
    assert expression.text == "log1p(a) + if_else(flag, b, 0)"


FORBIDDEN = [
    ("__import__('os')", "position 1: function '__import__' is not allowed (allowed: log,"),
    ("().__class__", "attribute access ('.__class__') is not allowed"),
    ("a.real", "position 1: attribute access ('.real') is not allowed"),
    ("[1][0]", "position 1: subscript is not allowed"),
    ("lambda: 1", "position 1: lambda is not allowed"),
    ("open('f')", "position 1: function 'open' is not allowed"),
    ("a + (x for x in s)", "position 5: generator expression is not allowed"),
    ("[x for x in s]", "list comprehension is not allowed"),
    ("{'k': 1}", "dict literal is not allowed"),
    ("a if b else 1", "conditional expression (use if_else(cond, a, b)) is not allowed"),
    ("a is None", "'is' comparison (use is_null(x)) is not allowed"),
    ("b & 1", "bitwise operator is not allowed"),
    ("f'{a}'", "f-string is not allowed"),
    ("(y := 1)", "assignment expression is not allowed"),
    ("__builtins__", "name '__builtins__' is not allowed"),
    ("log(x=a)", "log() takes no keyword arguments"),
    ("log(a, b)", "log() takes 1 argument(s), 2 given"),
    ("b'bytes'", "literal b'bytes' is not allowed"),
    ("a +", "invalid syntax"),
    ("petal_lenght * 2", "column 'petal_lenght' is not defined (columns: a, b, s, flag, t)"),
]


@pytest.mark.parametrize(("text", "message"), FORBIDDEN, ids=[case[0] for case in FORBIDDEN])
def test_each_forbidden_construct_is_refused_with_a_useful_message(text: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(text, TABLE.column_names)
    assert message in str(caught.value)


def test_hostile_text_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f"__import__('os').system('touch {marker}')"
    with pytest.raises(ExpressionError):
        compile_expression(text, ["a"]).evaluate(TABLE)
    assert not marker.exists()


def test_a_type_error_at_evaluation_names_the_expression() -> None:
    expression = compile_expression("s + 1", TABLE.column_names)
    with pytest.raises(ExpressionError, match=r"expression 's \+ 1' cannot be evaluated"):
        expression.evaluate(TABLE)


def test_a_batch_without_the_columns_is_refused_by_name() -> None:
    expression = compile_expression("a + b", ["a", "b"])
    with pytest.raises(ExpressionError, match=r"needs column\(s\) b"):
        expression.evaluate(pa.table({"a": [1.0]}))


def test_nesting_is_bounded_with_a_message_not_a_recursion_error() -> None:
    # 4,000 unary minus signs fit in the 4,096-byte field; Python's parser runs out of stack.
    with pytest.raises(ExpressionError, match="nests more than 64 levels deep"):
        compile_expression("-" * 4000 + "x", ["x"])
    with pytest.raises(ExpressionError, match="nests more than 64 levels deep"):
        compile_expression("-" * 200 + "x", ["x"])
    table = pa.table({"x": [1.5]})
    deep = compile_expression("-" * 60 + "x", ["x"])  # within the bound: compiles and runs
    assert deep.evaluate(table).to_pylist() == [1.5]


def test_without_columns_only_the_grammar_is_checked() -> None:
    assert compile_expression("anything * 2", None).columns == {"anything"}
    with pytest.raises(ExpressionError, match="attribute access"):
        compile_expression("anything.real", None)
