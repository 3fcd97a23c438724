"""The expression language's functions over one row, as pyarrow computes them (see
expression_rows.py for the rules; expressions.py for what each function means)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import pyarrow as pa

from .row_values import (
    OffRowPath,
    Row,
    RowFunction,
    RowUnsupported,
    arrow_round,
    c_ceil,
    c_exp,
    c_floor,
    converted,
    float_max,
    float_min,
    integer_bounds,
    kind,
    promote,
    to_float,
)

__all__ = ["ROW_FUNCTIONS", "Operand", "build_function"]


class Operand(Protocol):
    """A compiled argument: its row function and its value on the empty table."""

    @property
    def run(self) -> RowFunction: ...
    @property
    def sample(self) -> Any: ...
    @property
    def kind(self) -> str: ...


Builder = Callable[[Sequence[Operand], pa.DataType], RowFunction]


def build_function(name: str, arguments: Sequence[Operand], result: pa.DataType) -> RowFunction:
    if kind(result) == "null":
        return lambda row: None
    return ROW_FUNCTIONS[name](arguments, result)


def _float_argument(arguments: Sequence[Operand]) -> RowFunction:
    return converted(arguments[0].run, to_float(arguments[0].kind))


def _unary_float(function: Callable[[float], float]) -> Builder:
    def build(arguments: Sequence[Operand], result: pa.DataType) -> RowFunction:
        x = _float_argument(arguments)
        return lambda row: None if (v := x(row)) is None else function(v)

    return build


def _in_domain(function: Callable[[float], float], lowest: float, inclusive: bool) -> Builder:
    """Null outside the domain: below `lowest` (inclusive) or at or below it."""

    def build(arguments: Sequence[Operand], result: pa.DataType) -> RowFunction:
        x = _float_argument(arguments)
        if inclusive:
            return lambda row: None if (v := x(row)) is None or v < lowest else function(v)
        return lambda row: None if (v := x(row)) is None or v <= lowest else function(v)

    return build


def _abs(arguments: Sequence[Operand], result: pa.DataType) -> RowFunction:
    run = arguments[0].run
    if kind(result) == "int":  # unchecked in pyarrow: the smallest integer stays itself
        _, high = integer_bounds(result)
        return lambda row: None if (v := run(row)) is None else (abs(v) if -v <= high else v)
    if kind(result) == "float":
        return lambda row: None if (v := run(row)) is None else abs(v)
    raise RowUnsupported(f"abs of {result}")


def _round(arguments: Sequence[Operand], result: pa.DataType) -> RowFunction:
    x = _float_argument(arguments)
    digits = arguments[1].sample.as_py() if len(arguments) == 2 else 0
    return lambda row: None if (v := x(row)) is None else arrow_round(v, digits)


def _extreme(floats: Callable[[float, float], float], others: Callable[..., Any]) -> Builder:
    def build(arguments: Sequence[Operand], result: pa.DataType) -> RowFunction:
        a, b = (converted(arg.run, promote(arg.kind, kind(result))) for arg in arguments)
        pick = floats if kind(result) == "float" else others

        def run(row: Row) -> Any:
            x, y = a(row), b(row)
            return None if x is None or y is None else pick(x, y)

        return run

    return build


def _coalesce(arguments: Sequence[Operand], result: pa.DataType) -> RowFunction:
    runs = [converted(arg.run, promote(arg.kind, kind(result))) for arg in arguments]

    def run(row: Row) -> Any:
        values = [argument(row) for argument in runs]  # each is cast, as pyarrow casts each
        return next((value for value in values if value is not None), None)

    return run


def _is_null(arguments: Sequence[Operand], result: pa.DataType) -> RowFunction:
    run = arguments[0].run
    if arguments[0].kind == "float":
        return lambda row: (v := run(row)) is None or v != v
    return lambda row: run(row) is None


def _if_else(arguments: Sequence[Operand], result: pa.DataType) -> RowFunction:
    condition = arguments[0].run
    a, b = (converted(arg.run, promote(arg.kind, kind(result))) for arg in arguments[1:])

    def run(row: Row) -> Any:
        test, x, y = condition(row), a(row), b(row)
        return None if test is None else (x if test else y)

    return run


def _text(function: Callable[[str], Any], ascii_only: bool) -> Builder:
    def build(arguments: Sequence[Operand], result: pa.DataType) -> RowFunction:
        if arguments[0].kind != "str":
            raise RowUnsupported(f"a text function of {arguments[0].sample.type}")
        run = arguments[0].run

        def apply(row: Row) -> Any:
            value = run(row)
            if value is None:
                return None
            if ascii_only and not value.isascii():
                raise OffRowPath  # Unicode case mappings differ between Python and pyarrow
            return function(value)

        return apply

    return build


def _field(read: Callable[[Any], int]) -> Builder:
    def build(arguments: Sequence[Operand], result: pa.DataType) -> RowFunction:
        if arguments[0].kind != "timestamp":
            raise RowUnsupported(f"a timestamp field of {arguments[0].sample.type}")
        run = arguments[0].run
        return lambda row: None if (v := run(row)) is None else read(v)

    return build


def _clip(arguments: Sequence[Operand], result: pa.DataType) -> RowFunction:
    raise RowUnsupported("clip is compiled as max(min(x, high), low)")


ROW_FUNCTIONS: dict[str, Builder] = {
    "log": _in_domain(math.log, 0.0, inclusive=False),
    "log1p": _in_domain(math.log1p, -1.0, inclusive=False),
    "exp": _unary_float(c_exp),
    "sqrt": _in_domain(math.sqrt, 0.0, inclusive=True),
    "abs": _abs,
    "round": _round,
    "floor": _unary_float(c_floor),
    "ceil": _unary_float(c_ceil),
    "min": _extreme(float_min, min),
    "max": _extreme(float_max, max),
    "clip": _clip,
    "coalesce": _coalesce,
    "is_null": _is_null,
    "if_else": _if_else,
    "lower": _text(str.lower, ascii_only=True),
    "upper": _text(str.upper, ascii_only=True),
    "length": _text(len, ascii_only=False),
    "year": _field(lambda t: t.year),
    "month": _field(lambda t: t.month),
    "day": _field(lambda t: t.day),
    "hour": _field(lambda t: t.hour),
    "dayofweek": _field(lambda t: t.weekday()),  # Monday = 0
}
