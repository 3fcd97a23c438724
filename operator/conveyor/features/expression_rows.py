"""The expression language compiled to Python closures over one row, for serving a few rows.

Same grammar as expressions.py (expression_grammar.walk), same results: a row's value here is the
value pyarrow computes for that row in a batch, bit for bit. The semantics are pyarrow's, which
is where they differ from Python's:

- types are the batch's: each node's arrow type is found by running the batch compiler's closure
  on an empty table of the step's schema (so promotion, `length()` being int32, `//` on ints
  giving int64 are pyarrow's own answers), and a subtree of literals is folded to pyarrow's value;
- an int64 is converted to float only when exact (|x| <= 2**53), an integer result must fit its
  type, and `abs` of the smallest int64 wraps, as in pyarrow;
- floats follow C: `floor(-0.5)` is -0.0, `exp(800)` is inf, `(-8) ** (1/3)` is nan, `round` is
  pyarrow's (scale by a power of ten, half to even only at an exact .5, then unscale);
- `min`/`max` prefer a number to NaN; `in` on floats tells -0.0 from 0.0 and finds NaN.

What a row cannot promise to reproduce exactly raises `OffRowPath`, and the caller answers that
request on the batch path instead: an error pyarrow raises for a value (an int64 overflow, an
inexact int-to-float cast, a rounding overflow), a tie between 0.0 and -0.0 in `min`/`max` (which
one pyarrow returns depends on scalar or array operands), non-ASCII text in `lower`/`upper`
(Unicode case rules differ). A node whose types pyarrow refuses, or that reads text as numbers,
cannot be compiled for rows at all (`RowUnsupported`): such a plan always takes the batch path.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from .expression_grammar import ExpressionError, walk
from .expression_row_functions import build_function
from .expressions import ArrowTarget, Evaluator, Value, align_timestamps
from .row_values import (
    Row,
    RowFunction,
    RowUnsupported,
    c_floor,
    c_pow,
    checked_int,
    converted,
    float_key,
    float_to_int64,
    integer_bounds,
    kind,
    promote,
    to_float,
)

__all__ = ["RowExpression", "compile_row_expression"]


@dataclass(frozen=True)
class RowExpression:
    text: str
    columns: frozenset[str]
    type: pa.DataType
    """The arrow type of the value, as the batch path gives it."""
    run: RowFunction


def compile_row_expression(text: str, schema: pa.Schema) -> RowExpression:
    """Compile `text` over rows with the columns of `schema` (the table the step sees)."""
    empty = schema.empty_table()
    node, used = walk(text, list(schema.names), _RowTarget(empty))
    value_type = node.sample.type
    return RowExpression(text, frozenset(used), value_type, node.run)


# --- the target ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Node:
    arrow: Evaluator
    """The batch compiler's closure for the same node."""
    sample: Value
    """Its value on the empty table: the node's arrow type, and its value when a literal."""
    run: RowFunction

    @property
    def kind(self) -> str:
        return kind(self.sample.type)


_ARITHMETIC = {"+": operator.add, "-": operator.sub, "*": operator.mul}
_COMPARE = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class _RowTarget:
    def __init__(self, empty: pa.Table) -> None:
        self.empty = empty
        self.arrow = ArrowTarget()

    def node(self, arrow: Evaluator, build: Callable[[pa.DataType], RowFunction]) -> _Node:
        try:
            sample = arrow(self.empty)
        except (pa.ArrowException, ExpressionError, OverflowError, TypeError) as error:
            raise RowUnsupported(str(error)) from error
        try:
            if isinstance(sample, pa.Scalar):  # literals only: pyarrow's value is the value
                constant = sample.as_py()
                return _Node(arrow, sample, lambda row: constant)
            return _Node(arrow, sample, build(sample.type))
        except (pa.ArrowException, OverflowError) as error:  # ts in (2.5e17,): out of range
            raise RowUnsupported(str(error)) from error

    def constant(self, value: Any) -> _Node:
        return self.node(self.arrow.constant(value), lambda _: lambda row: value)

    def column(self, name: str) -> _Node:
        return self.node(self.arrow.column(name), lambda _: operator.itemgetter(name))

    def binary(self, symbol: str, left: _Node, right: _Node) -> _Node:
        arrow = self.arrow.binary(symbol, left.arrow, right.arrow)
        return self.node(arrow, lambda result: _binary(symbol, left, right, result))

    def negate(self, operand: _Node) -> _Node:
        def build(result: pa.DataType) -> RowFunction:
            run = operand.run
            if kind(result) == "int":
                low, high = integer_bounds(result)
                return lambda row: None if (v := run(row)) is None else checked_int(-v, low, high)
            if kind(result) == "float":
                return lambda row: None if (v := run(row)) is None else -v
            return _nothing(result)

        return self.node(self.arrow.negate(operand.arrow), build)

    def invert(self, operand: _Node) -> _Node:
        run = operand.run

        def build(result: pa.DataType) -> RowFunction:
            if kind(result) == "bool":
                return lambda row: None if (v := run(row)) is None else not v
            return _nothing(result)

        return self.node(self.arrow.invert(operand.arrow), build)

    def boolean(self, conjunction: bool, operands: list[_Node]) -> _Node:
        arrow = self.arrow.boolean(conjunction, [operand.arrow for operand in operands])
        runs = [operand.run for operand in operands]
        return self.node(arrow, lambda _: _kleene(conjunction, runs))

    def comparison(self, symbol: str, left: _Node, right: _Node) -> _Node:
        arrow = self.arrow.comparison(symbol, left.arrow, right.arrow)
        return self.node(arrow, lambda _: self._compare(_COMPARE[symbol], left, right))

    def _compare(self, compare: Callable[[Any, Any], bool], left: _Node, right: _Node):
        a_sample, b_sample = align_timestamps(left.sample, right.sample)
        a = _literal(a_sample) if a_sample is not left.sample else left.run
        b = _literal(b_sample) if b_sample is not right.sample else right.run
        kinds = {kind(a_sample.type), kind(b_sample.type)} - {"null"}
        common = "float" if kinds == {"int", "float"} else next(iter(kinds), "null")
        a = converted(a, promote(kind(a_sample.type), common))
        b = converted(b, promote(kind(b_sample.type), common))

        def run(row: Row) -> Any:
            x, y = a(row), b(row)
            return None if x is None or y is None else compare(x, y)

        return run

    def membership(self, left: _Node, values: list[Any], negate: bool) -> _Node:
        arrow = self.arrow.membership(left.arrow, values, negate)

        def build(_: pa.DataType) -> RowFunction:
            members = pa.array(values, type=left.sample.type).to_pylist()
            run = left.run
            if left.kind == "float":
                keys = {float_key(member) for member in members}
                return lambda row: (
                    None if (v := run(row)) is None else (float_key(v) in keys) != negate
                )
            found = set(members)
            return lambda row: None if (v := run(row)) is None else (v in found) != negate

        return self.node(arrow, build)

    def chain(self, comparisons: list[_Node]) -> _Node:
        arrow = self.arrow.chain([comparison.arrow for comparison in comparisons])
        runs = [comparison.run for comparison in comparisons]
        return self.node(arrow, lambda _: _kleene(True, runs))

    def call(self, name: str, arguments: list[_Node]) -> _Node:
        if name == "clip":  # max(min(x, high), low), as pyarrow computes it
            x, low, high = arguments
            return self.call("max", [self.call("min", [x, high]), low])
        arrow = self.arrow.call(name, [argument.arrow for argument in arguments])
        return self.node(arrow, lambda result: build_function(name, arguments, result))


def _literal(sample: Value) -> RowFunction:
    constant = sample.as_py()
    return lambda row: constant


def _nothing(result: pa.DataType) -> RowFunction:
    if kind(result) == "null":
        return lambda row: None
    raise RowUnsupported(f"a value of type {result}")


def _kleene(conjunction: bool, runs: list[RowFunction]) -> RowFunction:
    """SQL's and/or over every operand (all are evaluated, as the batch path does)."""
    decisive = not conjunction  # False decides an and, True an or

    def run(row: Row) -> Any:
        values = [operand(row) for operand in runs]
        if decisive in values:
            return decisive
        return None if None in values else not decisive

    return run


def _binary(symbol: str, left: _Node, right: _Node, result: pa.DataType) -> RowFunction:
    if kind(result) == "null":
        return lambda row: None
    if symbol in _ARITHMETIC:
        compute = _ARITHMETIC[symbol]
        a = converted(left.run, promote(left.kind, kind(result)))
        b = converted(right.run, promote(right.kind, kind(result)))
        if kind(result) == "int":
            low, high = integer_bounds(result)

            def integer(row: Row) -> Any:
                x, y = a(row), b(row)
                return None if x is None or y is None else checked_int(compute(x, y), low, high)

            return integer
        if kind(result) != "float":
            raise RowUnsupported(f"{symbol} giving {result}")

        def floating(row: Row) -> Any:
            x, y = a(row), b(row)
            return None if x is None or y is None else compute(x, y)

        return floating
    a = converted(left.run, to_float(left.kind))
    b = converted(right.run, to_float(right.kind))
    whole = left.kind == "int" and right.kind == "int"
    return _FLOAT_OPERATIONS[symbol](a, b, whole)


def _divide_run(a: RowFunction, b: RowFunction, whole: bool) -> RowFunction:
    def run(row: Row) -> Any:
        x, y = a(row), b(row)
        return None if x is None or y is None or y == 0.0 else x / y

    return run


def _floor_divide_run(a: RowFunction, b: RowFunction, whole: bool) -> RowFunction:
    def run(row: Row) -> Any:
        x, y = a(row), b(row)
        if x is None or y is None or y == 0.0:
            return None
        quotient = c_floor(x / y)
        return float_to_int64(quotient) if whole else quotient

    return run


def _modulo_run(a: RowFunction, b: RowFunction, whole: bool) -> RowFunction:
    def run(row: Row) -> Any:
        x, y = a(row), b(row)
        if x is None or y is None or y == 0.0:
            return None
        remainder = x - y * c_floor(x / y)
        return float_to_int64(remainder) if whole else remainder

    return run


def _power_run(a: RowFunction, b: RowFunction, whole: bool) -> RowFunction:
    def run(row: Row) -> Any:
        x, y = a(row), b(row)
        return None if x is None or y is None else c_pow(x, y)

    return run


_FLOAT_OPERATIONS = {
    "/": _divide_run,
    "//": _floor_divide_run,
    "%": _modulo_run,
    "**": _power_run,
}
