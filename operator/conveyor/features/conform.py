"""Raw rows to the typed schema of a FeatureSet, with a reason for every rejected row.

Materialization reads raw files (CSV as strings, Parquet and JSON Lines already typed) and serving
receives JSON request rows; both go through `conform()`, so a value means the same thing in both.

Parsing rules, for text cells:

- surrounding whitespace is ignored;
- in every column but `string`, an empty cell is null; in float, int, bool and timestamp columns
  so are NULL_TOKENS (NA, N/A, NaN, null, None, ...);
- float NaN is null (a NaN can neither be range-checked nor imputed consistently); inf and -inf
  (also from a number too large for a float, 1e400) are rejected: no model can read them;
- bool accepts true/false, 1/0, yes/no in any case;
- timestamps are ISO-8601 with or without an offset; a naive timestamp is UTC.

A row is rejected when any of its values cannot be parsed, is null in a non-nullable column, lies
outside [min, max], or is not one of the column's categories. The rejected row's reason names every
broken column, its value and the rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conveyor.api.v1alpha1.featureset import Column, FeatureSchema

__all__ = [
    "ARROW_TYPES",
    "NULL_TOKENS",
    "REQUEST_ROWS_METADATA",
    "ConformResult",
    "RejectedRow",
    "SchemaMismatch",
    "conform",
    "parse_value",
    "raw_arrow_schema",
    "rows_to_batch",
]

ARROW_TYPES: dict[str, pa.DataType] = {
    "float": pa.float64(),
    "int": pa.int64(),
    "bool": pa.bool_(),
    "category": pa.string(),
    "string": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}

NULL_TOKENS = frozenset({"", "NA", "N/A", "NaN", "nan", "NAN", "null", "NULL", "Null", "None"})
_TRUE_TOKENS = ("true", "1", "yes")
_FALSE_TOKENS = ("false", "0", "no")
_ZONED = r"(?:[Zz]|[+-]\d\d(?::?\d\d)?)$"

REQUEST_ROWS_METADATA = b"conveyor.request_rows"
"""Schema metadata key `rows_to_batch()` sets: conform() then lets keys and target be null."""


class SchemaMismatch(ValueError):
    """The raw data does not have the shape the spec describes: fix the spec or the source."""


@dataclass(frozen=True)
class RejectedRow:
    row: dict[str, Any]
    """The raw row as read (all raw columns)."""
    reason: str
    """Every broken column with its value and rule, e.g. "sepal_length_cm: -3.0 is below min 0"."""


@dataclass
class ConformResult:
    batch: pa.RecordBatch
    """The valid rows, typed, in spec column order (raw_arrow_schema)."""
    rejected: int
    """How many rows broke the schema."""
    samples: list[RejectedRow] = field(default_factory=list)
    """The first rejected rows (at most max_samples), with reasons."""
    reasons: dict[str, int] = field(default_factory=dict)
    """Rejected rows per broken rule, the rule without the value ("x: above max 5"); a row that
    breaks two rules counts under both."""
    examples: dict[str, str] = field(default_factory=dict)
    """The value of the first row that broke each rule (repr), for rules about a value."""


# A check: which rows break a rule (True = broken, never null), the rule, how to say why for one
# row, and the offending value of one row (None: the rule is not about a value).
@dataclass(frozen=True)
class _Check:
    broken: np.ndarray
    rule: str
    reason: Callable[[int], str]
    value: Callable[[int], str] | None = None


def raw_arrow_schema(schema: FeatureSchema) -> pa.Schema:
    """The typed columns, in spec order; all nullable in Arrow (conform() enforces nullability)."""
    return pa.schema([pa.field(column.name, ARROW_TYPES[column.type]) for column in schema.columns])


def conform(
    batch: pa.RecordBatch | pa.Table,
    schema: FeatureSchema,
    *,
    max_samples: int = 100,
    serving: bool | None = None,
) -> ConformResult:
    """Select, type and check the schema's columns of a raw batch; see the module docstring.

    `serving`: request rows may leave the entity key, event time and target empty. None means:
    true when the batch was built by `rows_to_batch()`.
    """
    table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    if serving is None:
        serving = (table.schema.metadata or {}).get(REQUEST_ROWS_METADATA) == b"true"
    optional = {schema.entity_key, schema.event_time, schema.target} if serving else set()
    arrays: list[pa.Array] = []
    checks: list[_Check] = []
    for column in schema.columns:
        raw = _raw_column(table, column, optional=column.name in optional)
        typed, column_checks = _conform_column(raw, column, relaxed=column.name in optional)
        arrays.append(typed)
        checks.extend(column_checks)
    typed_table = pa.Table.from_arrays(arrays, schema=raw_arrow_schema(schema))
    broken = np.zeros(table.num_rows, dtype=bool)
    for check in checks:
        broken |= check.broken
    rejected_rows = np.flatnonzero(broken)
    samples = [
        RejectedRow(row=table.slice(int(row), 1).to_pylist()[0], reason=_reasons(checks, row))
        for row in rejected_rows[:max_samples]
    ]
    valid = typed_table.filter(pa.array(~broken)) if len(rejected_rows) else typed_table
    reasons: dict[str, int] = {}
    examples: dict[str, str] = {}
    for check in checks:
        reasons[check.rule] = reasons.get(check.rule, 0) + int(check.broken.sum())
        if check.value is not None and check.rule not in examples:
            examples[check.rule] = check.value(int(np.argmax(check.broken)))
    return ConformResult(
        batch=_one_batch(valid),
        rejected=len(rejected_rows),
        samples=samples,
        reasons=reasons,
        examples=examples,
    )


def rows_to_batch(rows: Sequence[Mapping[str, Any]], schema: FeatureSchema) -> pa.RecordBatch:
    """Request rows (JSON values) to a raw batch for conform(); absent columns are null.

    Each row is read by the column's source name (or, failing that, its feature name). A column
    whose values all have the natural JSON type is built typed; otherwise as text, so that conform()
    parses it and rejects what it cannot read, with a reason.
    """
    arrays = []
    names = []
    for column in schema.columns:
        source = column.source_column or column.name
        values = [_lookup(row, source, column.name) for row in rows]
        arrays.append(_request_array(values, column))
        names.append(source)
    metadata = {REQUEST_ROWS_METADATA: b"true"}
    return pa.RecordBatch.from_arrays(
        arrays,
        schema=pa.schema(
            [pa.field(name, array.type) for name, array in zip(names, arrays, strict=True)],
            metadata=metadata,
        ),
    )


def parse_value(text: str, column_type: str) -> Any:
    """One text value parsed as conform() parses a `column_type` cell; ValueError if it cannot."""
    column = Column(name="value", type=column_type)  # type: ignore[arg-type]
    raw = pa.array([text], pa.string())
    typed = _parse_text(_clean_text(raw, column), column)
    if typed[0].is_valid:
        return typed[0].as_py()
    raise ValueError(f"{text!r} is not a valid {column_type}")


def _lookup(row: Mapping[str, Any], source: str, name: str) -> Any:
    if source in row:
        return row[source]
    return row.get(name)


def _request_array(values: list[Any], column: Column) -> pa.Array:
    present = [value for value in values if value is not None]
    natural = {
        "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "category": lambda v: isinstance(v, str),
        "string": lambda v: isinstance(v, str),
        "timestamp": lambda v: isinstance(v, str),
    }[column.type]
    if all(natural(value) for value in present):
        arrow_type = pa.string() if column.type == "timestamp" else ARROW_TYPES[column.type]
        try:
            return pa.array(values, type=arrow_type)
        except (pa.ArrowInvalid, OverflowError):
            pass  # e.g. an int beyond int64: let conform() reject it as text
    return pa.array([None if value is None else _as_text(value) for value in values], pa.string())


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _one_batch(table: pa.Table) -> pa.RecordBatch:
    table = table.combine_chunks()
    batches = table.to_batches()
    if not batches:
        return pa.RecordBatch.from_pylist([], schema=table.schema)
    return batches[0]


def _raw_column(table: pa.Table, column: Column, *, optional: bool) -> pa.Array:
    source = column.source_column or column.name
    if source not in table.schema.names:
        if optional:
            return pa.nulls(table.num_rows)
        renamed = f" (the source column of {column.name!r})" if column.source_column else ""
        raise SchemaMismatch(
            f"source column {source!r}{renamed} not found; the source has: "
            f"{', '.join(table.column_names)}"
        )
    chunked = table.column(source)
    if chunked.num_chunks == 1:
        return chunked.chunk(0)
    if chunked.num_chunks == 0:
        return pa.array([], type=chunked.type)
    return chunked.combine_chunks()


def _conform_column(
    raw: pa.Array, column: Column, *, relaxed: bool
) -> tuple[pa.Array, list[_Check]]:
    if pa.types.is_dictionary(raw.type):
        raw = raw.dictionary_decode()
    if pa.types.is_large_string(raw.type) or pa.types.is_string_view(raw.type):
        raw = raw.cast(pa.string())
    if pa.types.is_string(raw.type):
        clean = _parse_clean_text(raw, column)
        cleaned = raw if clean is not None else _clean_text(raw, column)
        typed = clean if clean is not None else _parse_text(cleaned, column)
    else:
        cleaned = raw
        typed = _convert_typed(raw, column)
    if pa.types.is_floating(typed.type) and _has_nan(typed):
        typed = pc.if_else(pc.is_nan(typed), pa.scalar(None, typed.type), typed)
    checks = []
    # A null cell stays null when typed, so as many nulls in both means none failed to parse.
    if typed.null_count != cleaned.null_count:
        checks.append(_check_parsed(raw, cleaned, typed, column))
    if not column.nullable and not relaxed:
        checks.append(_check_not_null(cleaned, typed, column))
    checks.extend(_check_values(typed, column))
    return typed, [check for check in checks if check.broken.any()]


def _parse_clean_text(raw: pa.Array, column: Column) -> pa.Array | None:
    """The typed values when no cell needs cleaning, else None (then clean, then parse).

    The common case, and several times cheaper: a number cast straight from the text (the cast
    fails on surrounding whitespace and on every null token but NaN, which is checked for), or
    category cells that are all exactly one of the categories.
    """
    if column.type in ("float", "int"):
        try:
            typed = pc.cast(raw, ARROW_TYPES[column.type])
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        return None if pa.types.is_floating(typed.type) and _has_nan(typed) else typed
    if column.type == "category" and column.categories:
        allowed = pa.array(column.categories, pa.string())
        trimmed = pc.utf8_trim_whitespace(allowed)
        if pc.all(pc.equal(trimmed, allowed)).as_py() and "" not in column.categories:
            return raw if _all_valid_in(raw, allowed) else None
    return None


def _has_nan(values: pa.Array) -> bool:
    return bool(pc.is_nan(values).true_count)


def _all_valid_in(values: pa.Array, allowed: pa.Array) -> bool:
    """Whether every non-null value is one of `allowed`."""
    return bool(pc.is_in(values, value_set=allowed).true_count == len(values) - values.null_count)


def _clean_text(raw: pa.Array, column: Column) -> pa.Array:
    if column.type == "string":
        return raw
    trimmed = pc.utf8_trim_whitespace(raw)
    tokens = {""} if column.type == "category" else NULL_TOKENS
    is_null_token = pc.is_in(trimmed, value_set=pa.array(sorted(tokens)))
    return pc.if_else(is_null_token, pa.scalar(None, pa.string()), trimmed)


def _parse_text(text: pa.Array, column: Column) -> pa.Array:
    target = ARROW_TYPES[column.type]
    if column.type in ("category", "string"):
        return text
    if column.type == "bool":
        lowered = pc.utf8_lower(text)
        true = pc.is_in(lowered, value_set=pa.array(_TRUE_TOKENS))
        false = pc.is_in(lowered, value_set=pa.array(_FALSE_TOKENS))
        return pc.if_else(pc.or_(true, false), true, pa.scalar(None, pa.bool_()))
    if column.type == "timestamp":
        return _parse_timestamps(text)
    try:
        return pc.cast(text, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # Some cell is not a number: parse one by one, so the others survive.
        parse = float if column.type == "float" else _int64
        return pa.array([_try(parse, value) for value in text.to_pylist()], type=target)


def _int64(text: str) -> int:
    """An int an int column can hold; a larger one is no valid value (not a crash)."""
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise OverflowError(f"{text} does not fit in 64 bits")
    return value


def _parse_timestamps(text: pa.Array) -> pa.Array:
    target = ARROW_TYPES["timestamp"]
    zoned = pc.match_substring_regex(text, _ZONED)
    no_string = pa.scalar(None, pa.string())
    try:
        with_offset = pc.cast(pc.if_else(zoned, text, no_string), target)
        naive = pc.cast(pc.cast(pc.if_else(zoned, no_string, text), pa.timestamp("us")), target)
        return pc.coalesce(with_offset, naive)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([_try(_parse_timestamp, value) for value in text.to_pylist()], target)


def _parse_timestamp(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _try(parse: Callable[[str], Any], value: str | None) -> Any:
    if value is None:
        return None
    try:
        return parse(value)
    except (ValueError, OverflowError):
        return None


def _convert_typed(raw: pa.Array, column: Column) -> pa.Array:
    """A typed source (Parquet, JSON Lines, request rows) cast to the column's type."""
    target = ARROW_TYPES[column.type]
    kind = raw.type
    if pa.types.is_null(kind):
        return pa.nulls(len(raw), target)
    if column.type == "int" and pa.types.is_floating(kind):
        whole = pc.equal(raw, pc.trunc(raw))
        return pc.cast(pc.if_else(whole, raw, pa.scalar(None, kind)), target)
    if column.type == "bool" and pa.types.is_integer(kind):
        return pc.if_else(
            pc.is_in(raw, value_set=pa.array([0, 1], kind)),
            pc.equal(raw, 1),
            pa.scalar(None, pa.bool_()),
        )
    if not _castable(kind, column.type):
        raise SchemaMismatch(
            f"source column {column.source_column or column.name!r} has type {kind}, which "
            f"cannot be read as {column.type}; change the column's type or the source"
        )
    try:
        return pc.cast(raw, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        values = [_try(lambda v: pa.scalar(v, target).as_py(), v) for v in raw.to_pylist()]
        return pa.array(values, type=target)


def _castable(kind: pa.DataType, column_type: str) -> bool:
    numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
    if column_type in ("float", "int"):
        return numeric
    if column_type == "bool":
        return pa.types.is_boolean(kind)
    if column_type in ("category", "string"):
        return numeric or pa.types.is_boolean(kind) or pa.types.is_string(kind)
    return pa.types.is_timestamp(kind) or pa.types.is_date(kind)


def _check_parsed(raw: pa.Array, cleaned: pa.Array, typed: pa.Array, column: Column) -> _Check:
    broken = _mask(pc.and_(pc.is_valid(cleaned), pc.is_null(typed)))
    # A NaN in a typed float source is null, not a parse failure.
    if pa.types.is_floating(raw.type):
        broken &= ~_mask(pc.is_nan(raw))
    values = raw.to_pylist() if broken.any() else []
    whole = column.type == "int" and pa.types.is_floating(raw.type)
    expected = "a whole number" if whole else f"a valid {column.type}"
    return _Check(
        broken,
        f"{column.name}: not {expected}",
        lambda row: f"{column.name}: {values[row]!r} is not {expected}",
        lambda row: repr(values[row]),
    )


def _check_not_null(cleaned: pa.Array, typed: pa.Array, column: Column) -> _Check:
    # A cell that failed to parse is reported as such, not also as missing.
    broken = _mask(pc.is_null(typed)) & ~_mask(pc.is_valid(cleaned))
    if pa.types.is_floating(cleaned.type):
        broken |= _mask(pc.is_nan(cleaned))
    reason = f"{column.name}: missing value, the column is not nullable"
    return _Check(broken, reason, lambda row: reason)


def _check_values(typed: pa.Array, column: Column) -> list[_Check]:
    checks = []
    numeric = column.type in ("float", "int")
    if column.type == "float" and not pc.all(pc.fill_null(pc.is_finite(typed), True)).as_py():
        infinite = pc.is_inf(typed)
        values = typed.to_pylist()
        checks.append(
            _Check(
                _mask(infinite),
                f"{column.name}: not a finite number",
                lambda row: f"{column.name}: {values[row]!r} is not a finite number",
                lambda row: repr(values[row]),
            )
        )
        typed = pc.if_else(infinite, pa.scalar(None, typed.type), typed)  # one reason is enough
    if numeric and (column.min is not None or column.max is not None):
        # One pass for the extremes; a row-by-row comparison only when a bound is broken.
        extremes = pc.min_max(typed)
        low, high = extremes["min"].as_py(), extremes["max"].as_py()
        if column.min is not None and low is not None and low < column.min:
            checks.append(_bound_check(typed, column, pc.less, column.min, "below min"))
        if column.max is not None and high is not None and high > column.max:
            checks.append(_bound_check(typed, column, pc.greater, column.max, "above max"))
    if column.type in ("category", "string") and column.categories is not None:
        allowed = pa.array(column.categories, pa.string())
        if _all_valid_in(typed, allowed):
            return checks
        broken = _mask(pc.and_(pc.is_valid(typed), pc.invert(pc.is_in(typed, value_set=allowed))))
        values = typed.to_pylist() if broken.any() else []
        listed = ", ".join(column.categories)
        checks.append(
            _Check(
                broken,
                f"{column.name}: not one of the categories {listed}",
                lambda row: f"{column.name}: {values[row]!r} is not one of the categories {listed}",
                lambda row: repr(values[row]),
            )
        )
    return checks


def _bound_check(
    typed: pa.Array, column: Column, compare: Callable[..., pa.Array], bound: float, words: str
) -> _Check:
    broken = _mask(compare(typed, pa.scalar(bound)))
    values = typed.to_pylist() if broken.any() else []
    return _Check(
        broken,
        f"{column.name}: {words} {_number(bound)}",
        lambda row: f"{column.name}: {values[row]!r} is {words} {_number(bound)}",
        lambda row: repr(values[row]),
    )


def _mask(condition: pa.Array) -> np.ndarray:
    """A boolean array as numpy, null counted as False."""
    return np.asarray(pc.fill_null(condition, False).to_numpy(zero_copy_only=False), dtype=bool)


def _number(value: float) -> str:
    if math.isfinite(value) and value == int(value):
        return str(int(value))
    return repr(value)


def _reasons(checks: list[_Check], row: int) -> str:
    return "; ".join(check.reason(row) for check in checks if check.broken[row])
