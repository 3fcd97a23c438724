"""A small, safe expression language over the columns of a record batch.

Used by the `derive` and `filter` transforms. The text is parsed with `ast.parse(text, mode="eval")`
and only a whitelist of node types is accepted (expression_grammar.py, shared by both compilers);
the tree is then compiled into a tree of closures over `pyarrow.compute`, evaluated a whole batch
at a time. expression_rows.py compiles the same tree into closures over one row, with the same
results, for serving a few rows without pyarrow's per-call overhead. User text is never handed
to `eval`, `exec` or `compile`.

The language:

- literals: numbers, strings, True, False, None; column names; parentheses;
- arithmetic `+ - * / // % **`, unary `-` and `+`;
- comparisons `== != < <= > >=`, chained (`0 < x <= 5`), and `x in ("a", "b")` / `not in`
  against a literal tuple or list;
- logic `and`, `or`, `not` (SQL's three-valued logic: `null and False` is False);
- functions: see FUNCTIONS.

Semantics that differ from Python, chosen so that one bad row never fails a whole batch:

- nulls propagate: any operation on a null gives null (except `and`/`or`, `coalesce`, `is_null`);
- division, floor division and modulo by zero give null;
- `/` and `**` always give float; `log`, `log1p` and `sqrt` outside their domain give null;
- `floor`, `ceil` and `round` keep the float type; `round(x, n)` rounds half to even on the scaled
  value (`round(2.675, 2)` is 2.68 here, 2.67 in Python);
- `%` and `//` on integers go through float64: exact up to 2**53;
- a string literal compared with a timestamp column is read as an ISO-8601 timestamp (naive = UTC).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

from .expression_grammar import FUNCTION_ARITY, MAX_DEPTH, MAX_NODES, ExpressionError, walk

__all__ = [
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_NODES",
    "TIMESTAMP_TYPE",
    "ArrowTarget",
    "Evaluator",
    "Expression",
    "ExpressionError",
    "Value",
    "compile_expression",
]

# A compiled node: batch -> array (or chunked array) of the batch's length, or a scalar.
Value: TypeAlias = pa.Array | pa.ChunkedArray | pa.Scalar
Evaluator: TypeAlias = Callable[[pa.Table], Value]

TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class _Function:
    arity: tuple[int, int]  # smallest and largest number of arguments
    build: Callable[[list[Value]], Value]


def _float(value: Value) -> Value:
    return pc.cast(value, pa.float64())


def _null_where(condition: Value, value: Value) -> Value:
    """`value`, with null where `condition` is true (and where `condition` is null)."""
    return pc.if_else(condition, pa.scalar(None, _value_type(value)), value)


def _value_type(value: Value) -> pa.DataType:
    return value.type


def _in_domain(function: Callable[[Value], Value], lowest: float, inclusive: bool):
    def build(args: list[Value]) -> Value:
        x = _float(args[0])
        outside = pc.less(x, lowest) if inclusive else pc.less_equal(x, lowest)
        # Masking the argument first keeps arrow from computing nan for a value that becomes null.
        return function(_null_where(outside, x))

    return build


def _round(args: list[Value]) -> Value:
    digits = 0
    if len(args) == 2:
        if not isinstance(args[1], pa.Scalar) or not pa.types.is_integer(args[1].type):
            raise ExpressionError("round(x, n): n must be an integer literal")
        digits = args[1].as_py()
    return pc.round(_float(args[0]), digits, round_mode="half_to_even")


def _clip(args: list[Value]) -> Value:
    x, low, high = args
    capped = pc.min_element_wise(x, high, skip_nulls=False)
    return pc.max_element_wise(capped, low, skip_nulls=False)


_BUILDERS: dict[str, Callable[[list[Value]], Value]] = {
    "log": _in_domain(pc.ln, 0.0, inclusive=False),
    "log1p": _in_domain(pc.log1p, -1.0, inclusive=False),
    "exp": lambda a: pc.exp(_float(a[0])),
    "sqrt": _in_domain(pc.sqrt, 0.0, inclusive=True),
    "abs": lambda a: pc.abs(a[0]),
    "round": _round,
    "floor": lambda a: pc.floor(_float(a[0])),
    "ceil": lambda a: pc.ceil(_float(a[0])),
    "min": lambda a: pc.min_element_wise(a[0], a[1], skip_nulls=False),
    "max": lambda a: pc.max_element_wise(a[0], a[1], skip_nulls=False),
    "clip": _clip,
    "coalesce": lambda a: pc.coalesce(*a),
    "is_null": lambda a: pc.is_null(a[0], nan_is_null=True),
    "if_else": lambda a: pc.if_else(a[0], a[1], a[2]),
    "lower": lambda a: pc.utf8_lower(a[0]),
    "upper": lambda a: pc.utf8_upper(a[0]),
    "length": lambda a: pc.utf8_length(a[0]),
    "year": lambda a: pc.year(a[0]),
    "month": lambda a: pc.month(a[0]),
    "day": lambda a: pc.day(a[0]),
    "hour": lambda a: pc.hour(a[0]),
    "dayofweek": lambda a: pc.day_of_week(a[0]),  # Monday = 0
}

FUNCTIONS: dict[str, _Function] = {
    name: _Function(arity, _BUILDERS[name]) for name, arity in FUNCTION_ARITY.items()
}


def _divide(a: Value, b: Value) -> Value:
    divisor = _float(b)
    return pc.divide(_float(a), _null_where(pc.equal(divisor, 0.0), divisor))


def _floor_divide(a: Value, b: Value) -> Value:
    quotient = pc.floor(_divide(a, b))
    if _is_integer(a) and _is_integer(b):
        return pc.cast(quotient, pa.int64())
    return quotient


def _modulo(a: Value, b: Value) -> Value:
    # Python's sign convention: the result has the sign of the divisor.
    remainder = pc.subtract(_float(a), pc.multiply(_float(b), pc.floor(_divide(a, b))))
    if _is_integer(a) and _is_integer(b):
        return pc.cast(remainder, pa.int64())
    return remainder


def _is_integer(value: Value) -> bool:
    return pa.types.is_integer(value.type)


_BINARY_OPERATORS: dict[str, Callable[[Value, Value], Value]] = {
    "+": pc.add_checked,
    "-": pc.subtract_checked,
    "*": pc.multiply_checked,
    "/": _divide,
    "//": _floor_divide,
    "%": _modulo,
    "**": lambda a, b: pc.power(_float(a), _float(b)),
}

_COMPARISONS: dict[str, Callable[[Value, Value], Value]] = {
    "==": pc.equal,
    "!=": pc.not_equal,
    "<": pc.less,
    "<=": pc.less_equal,
    ">": pc.greater,
    ">=": pc.greater_equal,
}


@dataclass
class Expression:
    """A compiled expression; evaluate it on any batch that has its columns."""

    text: str
    columns: frozenset[str]
    _evaluator: Evaluator = field(repr=False, compare=False)

    def evaluate(self, batch: pa.RecordBatch | pa.Table) -> pa.Array:
        """The expression's value for each row of `batch` (same length, nulls propagated)."""
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        missing = sorted(self.columns - set(table.schema.names))
        if missing:
            raise ExpressionError(
                f"expression {self.text!r} needs column(s) {', '.join(missing)}, "
                f"which the batch does not have (it has: {', '.join(table.column_names)})"
            )
        try:
            value = self._evaluator(table)
        except (
            pa.ArrowInvalid,
            pa.ArrowNotImplementedError,
            pa.ArrowTypeError,
            OverflowError,  # a literal arrow cannot convert: ts in (9.3e18,)
        ) as error:
            raise ExpressionError(
                f"expression {self.text!r} cannot be evaluated: {error}"
            ) from error
        return _as_array(value, table.num_rows)


def _as_array(value: Value, rows: int) -> pa.Array:
    if isinstance(value, pa.ChunkedArray):
        if value.num_chunks == 0:
            return pa.array([], type=value.type)
        return value.combine_chunks()
    if isinstance(value, pa.Scalar):
        if value.type == pa.null():
            return pa.nulls(rows)
        return pa.repeat(value, rows)
    return value


def compile_expression(text: str, columns: Iterable[str] | None) -> Expression:
    """Compile `text`; every name must be one of `columns` (any name when None: the grammar
    alone is checked), every function one of FUNCTIONS."""
    known = None if columns is None else list(columns)
    evaluator, used = walk(text, known, ArrowTarget())
    return Expression(text=text, columns=frozenset(used), _evaluator=evaluator)


class ArrowTarget:
    """Compiles the walker's nodes into closures over `pyarrow.compute`, a batch at a time."""

    def constant(self, value: Any) -> Evaluator:
        scalar = pa.scalar(value)
        return lambda table: scalar

    def column(self, name: str) -> Evaluator:
        return lambda table: table.column(name)

    def binary(self, symbol: str, left: Evaluator, right: Evaluator) -> Evaluator:
        operation = _BINARY_OPERATORS[symbol]
        return lambda table: operation(left(table), right(table))

    def negate(self, operand: Evaluator) -> Evaluator:
        return lambda table: pc.negate_checked(operand(table))

    def invert(self, operand: Evaluator) -> Evaluator:
        return lambda table: pc.invert(operand(table))

    def boolean(self, conjunction: bool, operands: list[Evaluator]) -> Evaluator:
        combine = pc.and_kleene if conjunction else pc.or_kleene

        def evaluate(table: pa.Table) -> Value:
            result = operands[0](table)
            for operand in operands[1:]:
                result = combine(result, operand(table))
            return result

        return evaluate

    def comparison(self, symbol: str, left: Evaluator, right: Evaluator) -> Evaluator:
        compare = _COMPARISONS[symbol]

        def evaluate(table: pa.Table) -> Value:
            a, b = align_timestamps(left(table), right(table))
            return compare(a, b)

        return evaluate

    def membership(self, left: Evaluator, values: list[Any], negate: bool) -> Evaluator:
        def evaluate(table: pa.Table) -> Value:
            value = left(table)
            value_set = pa.array(values, type=value.type) if values else pa.array([], value.type)
            found = pc.is_in(value, value_set=value_set)
            # is_in says False for null; keep null as null like every other comparison.
            found = _null_where(pc.is_null(value), found)
            return pc.invert(found) if negate else found

        return evaluate

    def chain(self, comparisons: list[Evaluator]) -> Evaluator:
        def evaluate(table: pa.Table) -> Value:
            result = comparisons[0](table)
            for pair in comparisons[1:]:
                result = pc.and_kleene(result, pair(table))
            return result

        return evaluate

    def call(self, name: str, arguments: list[Evaluator]) -> Evaluator:
        build = FUNCTIONS[name].build
        return lambda table: build([argument(table) for argument in arguments])


def align_timestamps(a: Value, b: Value) -> tuple[Value, Value]:
    """A string literal compared with a timestamp is read as a timestamp (naive = UTC)."""
    if pa.types.is_timestamp(a.type) and isinstance(b, pa.Scalar) and pa.types.is_string(b.type):
        return a, _timestamp_literal(b)
    if pa.types.is_timestamp(b.type) and isinstance(a, pa.Scalar) and pa.types.is_string(a.type):
        return _timestamp_literal(a), b
    return a, b


def _timestamp_literal(value: pa.Scalar) -> pa.Scalar:
    text = value.as_py()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as error:
        raise ExpressionError(f"{text!r} is not an ISO-8601 timestamp") from error
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return pa.scalar(parsed, type=TIMESTAMP_TYPE)
