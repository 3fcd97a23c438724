"""`conform(rows_to_batch(rows), schema, serving=True)` for a few request rows, in plain Python.

Part of the row path (rowpath.py). It types and checks each value exactly as conform.py does for
a value of its column's natural JSON type (a number for float and int, a bool, a string for
category, string and timestamp; a number or bool in a category or string column is written as
text as rows_to_batch() writes it), and gives a rejected row the same reason. Anything else raises
`OffRowPath` and the request goes to the batch path: a value conform.py parses from text (a number
sent as a string, a bool in a float column), an integer pyarrow cannot hold, a timestamp written
other than `YYYY-MM-DD[Thh:mm[:ss[.ffffff]]][Z|±hh:mm]`, a string that is not valid UTF-8.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from conveyor.api.v1alpha1.featureset import Column, FeatureSchema

from .conform import NULL_TOKENS
from .row_values import FLOAT_EXACT, OffRowPath

__all__ = [
    "CheckValue",
    "RowsRejected",
    "compile_row_conform",
    "compile_value_check",
    "served_optional",
]

# A column's check of one value: its typed value; why the row is rejected goes to the list.
CheckValue = Callable[[Any, list[str]], Any]
_ABSENT = object()

_TIMESTAMP = re.compile(
    r"\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d{1,6})?)?)?(?:Z|[+-]\d\d:\d\d)?"
)


class RowsRejected(ValueError):
    """Request rows that break the schema: how many of how many, and the first five reasons."""

    def __init__(self, rejected: int, total: int, reasons: list[str]) -> None:
        super().__init__(f"{rejected} of {total} row(s) break the FeatureSet schema")
        self.rejected, self.total, self.reasons = rejected, total, reasons


def compile_row_conform(schema: FeatureSchema) -> Callable[[Sequence[Mapping[str, Any]]], list]:
    """A function from request rows to typed rows (dicts by column name), raising RowsRejected
    with conform()'s reasons, or OffRowPath."""
    optional = served_optional(schema)
    plain, checked = [], []  # columns without checks only need typing
    for column in schema.columns:
        source = column.source_column or column.name
        check = _check_value(column, optional)
        if check is None:
            plain.append((source, column.name, _READERS[column.type]))
        else:
            checked.append((source, column.name, check))

    def conform_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        typed_rows, rejected = [], []
        for row in rows:
            get = row.get  # by source name, or failing that by feature name (rows_to_batch)
            typed: dict[str, Any] = {}
            for source, name, read in plain:
                raw = get(source, _ABSENT)
                typed[name] = read(get(name) if raw is _ABSENT else raw)
            reasons: list[str] = []
            for source, name, check in checked:  # in schema order: the reasons' order
                raw = get(source, _ABSENT)
                typed[name] = check(get(name) if raw is _ABSENT else raw, reasons)
            if reasons:
                rejected.append("; ".join(reasons))
            typed_rows.append(typed)
        if rejected:
            raise RowsRejected(len(rejected), len(rows), rejected[:5])
        return typed_rows

    return conform_rows


def compile_value_check(column: Column, schema: FeatureSchema) -> CheckValue:
    """conform's typing and checks of one value of `column`: the typed value, reasons appended
    when it rejects the row, or OffRowPath."""
    check = _check_value(column, served_optional(schema))
    if check is not None:
        return check
    read = _READERS[column.type]
    return lambda raw, reasons: read(raw)


def served_optional(schema: FeatureSchema) -> set[str | None]:
    """Columns a serving row may leave out whatever their nullability."""
    return {schema.entity_key, schema.event_time, schema.target}


def _check_value(column: Column, optional: set[str | None]) -> CheckValue | None:
    """Typing, then conform's checks in its order: not null, finite, min, max, categories; None
    when the column has no check."""
    read = _READERS[column.type]
    missing = f"{column.name}: missing value, the column is not nullable"
    required = not column.nullable and column.name not in optional
    bounds = _bounds(column)
    textual = column.type in ("category", "string") and column.categories is not None
    allowed = frozenset(column.categories or []) if textual else None
    listed = ", ".join(column.categories or [])
    if not required and bounds is None and allowed is None:
        return None

    def check(raw: Any, reasons: list[str]) -> Any:
        value = read(raw)
        if value is None:
            if required:
                reasons.append(missing)
        elif bounds is not None:
            bounds(value, reasons)
        elif allowed is not None and value not in allowed:
            reasons.append(f"{column.name}: {value!r} is not one of the categories {listed}")
        return value

    return check


def _bounds(column: Column) -> Callable[[Any, list[str]], None] | None:
    """Finite (float) and within [min, max]; None when there is nothing to check."""
    name, low, high = column.name, column.min, column.max
    floating = column.type == "float"
    if not floating and (column.type != "int" or (low is None and high is None)):
        return None

    def check(value: Any, reasons: list[str]) -> None:
        if floating and not math.isfinite(value):
            reasons.append(f"{name}: {value!r} is not a finite number")
            return
        if not floating and abs(value) > FLOAT_EXACT:
            raise OffRowPath  # pyarrow compares an int64 with a float bound through float
        if low is not None and value < low:
            reasons.append(f"{name}: {value!r} is below min {_number(low)}")
        if high is not None and value > high:
            reasons.append(f"{name}: {value!r} is above max {_number(high)}")

    return check


def _number(value: float) -> str:
    if math.isfinite(value) and value == int(value):
        return str(int(value))
    return repr(value)


def _read_float(raw: Any) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, float):
        return None if raw != raw else float(raw)  # NaN is null
    if isinstance(raw, int) and not isinstance(raw, bool) and -FLOAT_EXACT <= raw <= FLOAT_EXACT:
        return float(raw)
    raise OffRowPath  # conform reads it as text (or pyarrow refuses the int)


def _read_int(raw: Any) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, int) and not isinstance(raw, bool) and -(2**63) <= raw < 2**63:
        return int(raw)
    raise OffRowPath


def _read_bool(raw: Any) -> bool | None:
    if raw is None or isinstance(raw, bool):
        return raw
    raise OffRowPath


def _text(raw: Any) -> str:
    if not isinstance(raw, str):
        raise OffRowPath
    if not raw.isascii():
        try:
            raw.encode()
        except UnicodeEncodeError as error:  # a lone surrogate: pyarrow refuses the row
            raise OffRowPath from error
    return str(raw)


def _as_text(raw: Any) -> str:
    """A JSON value as rows_to_batch() writes it into a text column (a number in a category
    column makes the column text, which a string already is)."""
    if type(raw) is str:
        return _text(raw)
    if type(raw) is bool:
        return "true" if raw else "false"
    if type(raw) is int:
        return str(raw)
    if type(raw) is float:
        return repr(raw)
    raise OffRowPath


def _read_string(raw: Any) -> str | None:
    return None if raw is None else _as_text(raw)


def _read_category(raw: Any) -> str | None:
    if raw is None:
        return None
    return _as_text(raw).strip() or None  # str.strip() trims what utf8_trim_whitespace trims


def _read_timestamp(raw: Any) -> datetime | None:
    if raw is None:
        return None
    text = _text(raw).strip()
    if text in NULL_TOKENS:
        return None
    if _TIMESTAMP.fullmatch(text) is None:
        raise OffRowPath
    try:  # of the form above, read by Python as pyarrow reads it (the tests compare both)
        parsed = datetime.fromisoformat(text)
    except ValueError as error:  # e.g. February 30th: conform's own reason, on the batch path
        raise OffRowPath from error
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


_READERS: dict[str, Callable[[Any], Any]] = {
    "float": _read_float,
    "int": _read_int,
    "bool": _read_bool,
    "category": _read_category,
    "string": _read_string,
    "timestamp": _read_timestamp,
}
