"""The row path: a serving request of a few rows turned into the model's matrix in plain Python.

The batch path (`conform(rows_to_batch(rows), schema, serving=True)`, then
`FittedTransforms.apply(serving=True)`, then a float64 matrix) makes a few dozen pyarrow calls per
step, each costing microseconds whatever the number of rows: ~0.75 ms for one iris row, more than
the model. `compile_row_path()` compiles the same computation once per FittedTransforms into
closures over a row (a dict), with the batch path's results bit for bit and its errors word for
word: a rejected row raises RowsRejected with conform()'s reasons, a non-finite result
NonFiniteResult with the same rows and reasons.

Where the row path cannot promise that (row_values.py, row_conform.py, expression_rows.py list
the cases: text sent for numbers, an int64 overflow, ...) it raises OffRowPath and the caller
answers on the batch path, which is the reference. A step it cannot compile at all (one whose
types pyarrow refuses, or a derive that reads text as a number) makes `compile_row_path` raise
RowUnsupported: that FeatureSet is always served on the batch path.

How each step's types are known: the plan runs the batch path's own `apply_step` on an empty table
of the conformed schema, so every step sees the columns and arrow types it sees in a batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from conveyor.api.v1alpha1.featureset import FeatureSchema, Transform

from .conform import ARROW_TYPES, raw_arrow_schema
from .expression_grammar import ExpressionError
from .expression_rows import compile_row_expression
from .nonfinite import NonFiniteResult
from .row_conform import RowsRejected, compile_row_conform
from .row_lane import RowLane, compile_row_lane
from .row_values import (
    OffRowPath,
    Row,
    RowUnsupported,
    fitted_float,
    float_max,
    float_min,
    float_to_int64,
    kind,
    to_float,
)
from .transform_steps import CompileExpression, TransformError, apply_step

__all__ = ["OffRowPath", "RowPath", "RowUnsupported", "RowsRejected", "compile_row_path"]

# A step over one row: updates the row in place; the reasons it gives a non-finite result, if any.
RowStep = Callable[[Row], str | None]
Convert = Callable[[Any], Any]


@dataclass(frozen=True)
class RowPath:
    conform: Callable[[Sequence[Mapping[str, Any]]], list[Row]]
    steps: list[RowStep]
    outputs: list[tuple[str, Convert]]
    """Each feature column and how its value becomes a float (null: NaN)."""
    lane: RowLane | None = None
    """The same matrix for rows of finite numbers, in one loop (row_lane.py)."""

    def features(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The feature matrix of `rows`; RowsRejected, NonFiniteResult or OffRowPath."""
        if self.lane is not None:
            matrix = self.lane.features(rows)
            if matrix is not None:
                return matrix
        return self.every_row(rows)

    def every_row(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """`features()` without the lane: the row path's own matrix, rejections and errors."""
        typed = self.conform(rows)
        broken: dict[int, tuple[int, str]] = {}  # row -> (first step that broke it, reasons)
        for position, row in enumerate(typed):
            for index, step in enumerate(self.steps):
                reasons = step(row)
                if reasons is not None:
                    broken[position] = (index, reasons)
                    break
        if broken:
            _refuse(broken)
        return np.array(
            [[convert(row[name]) for name, convert in self.outputs] for row in typed],
            dtype=np.float64,
        ).reshape(len(typed), len(self.outputs))


def _refuse(broken: dict[int, tuple[int, str]]) -> None:
    """NonFiniteResult as the batch path raises it: for the first step any row broke in."""
    first = min(step for step, _ in broken.values())
    rows = sorted(row for row, (step, _) in broken.items() if step == first)
    raise NonFiniteResult(rows, [broken[row][1] for row in rows[:5]])


def compile_row_path(
    schema: FeatureSchema,
    fitted: Sequence[tuple[Transform, dict[str, Any]]],
    feature_columns: list[str],
    expression: CompileExpression,
) -> RowPath:
    """The row path of fitted transforms (FittedTransforms' steps with their parameters, its
    feature columns and expression cache) over rows of `schema`; RowUnsupported if some step
    has none."""
    table = raw_arrow_schema(schema).empty_table()
    steps = []
    for index, (step, parameters) in enumerate(fitted):
        try:
            row_step = _compile_step(index, step, parameters, table.schema)
        except (pa.ArrowException, ValueError, TypeError, KeyError) as error:
            raise RowUnsupported(f"spec.transforms[{index}]: {error}") from error
        if row_step is not None:
            steps.append(row_step)
        try:
            table, _ = apply_step(index, step, parameters, table, True, expression)
        except (TransformError, ExpressionError, pa.ArrowException) as error:
            raise RowUnsupported(str(error)) from error
    outputs = []
    for name in feature_columns:
        if name not in table.column_names:
            raise RowUnsupported(f"feature column {name!r} is not among the step outputs")
        outputs.append((name, _feature_float(table.schema.field(name).type)))
    lane = compile_row_lane(schema, fitted, feature_columns)
    return RowPath(compile_row_conform(schema), steps, outputs, lane)


def _feature_float(value_type: pa.DataType) -> Convert:
    """pc.cast(column, float64).to_numpy(), one value."""
    source = kind(value_type)
    if source not in ("float", "int", "bool", "null"):  # the batch path refuses the column
        raise RowUnsupported(f"a feature column of type {value_type}")
    convert = to_float(source) or (lambda value: value)
    return lambda value: math.nan if value is None else convert(value)


def _compile_step(
    index: int, step: Transform, fitted: dict[str, Any], schema: pa.Schema
) -> RowStep | None:
    if step.op == "filter":
        return None  # serving answers every row
    if step.op == "derive":
        return _derive(index, step, schema)
    if step.op == "oneHot":
        return _one_hot(step, fitted, schema)
    columns = []
    for name in step.columns or []:
        convert = _COLUMN_STEPS[step.op](step, fitted, name, schema.field(name).type)
        columns.append((name, convert, f"spec.transforms[{index}] ({step.op} of {name!r})"))

    def run(row: Row) -> str | None:
        reasons = None
        for name, convert, label in columns:
            value = row[name] = convert(row[name])
            if value is not None and type(value) is float and not math.isfinite(value):
                reason = f"{label}: {_float_text(value)} is not a finite number"
                reasons = reason if reasons is None else f"{reasons}; {reason}"
        return reasons

    return run


def _float_text(value: float) -> str:
    return "nan" if math.isnan(value) else repr(value)


def _derive(index: int, step: Transform, schema: pa.Schema) -> RowStep:
    try:
        expression = compile_row_expression(step.expression or "", schema)
    except ExpressionError as error:
        raise RowUnsupported(str(error)) from error
    evaluate, output = expression.run, step.output or ""
    label = f"spec.transforms[{index}] (derive {step.output!r} = {step.expression})"
    floating = kind(expression.type) == "float"
    keep_broken = (step.output_type or "float") == "float"
    cast = _derive_cast(kind(expression.type), step.output_type or "float")

    def run(row: Row) -> str | None:
        value = evaluate(row)
        reason = None
        if floating and value is not None and not math.isfinite(value):
            reason = f"{label}: {_float_text(value)} is not a finite number"
            if not keep_broken:
                value = None  # the row is refused; its value must not fail the cast
        row[output] = cast(value)
        return reason

    return run


def _derive_cast(source: str, output_type: str) -> Convert:
    """pc.cast of the expression's value to the output type (an int truncates a float)."""
    target = kind(ARROW_TYPES[output_type])
    if source == "null" or source == target:
        return lambda value: value
    if target == "float":
        convert = to_float(source)
        if convert is not None:
            return convert
    if target == "int" and source == "float":
        return lambda value: None if value is None else float_to_int64(math.trunc(value))
    if target == "int" and source == "bool":
        return lambda value: None if value is None else int(value)
    raise RowUnsupported(f"a derive of {source} as {output_type}")


# --- column steps: each gives, for one column, a function of its value -------------------------


def _to_float(value_type: pa.DataType) -> Convert:
    convert = to_float(kind(value_type))
    return convert if convert is not None else (lambda value: value)


def _impute(step: Transform, fitted: dict[str, Any], name: str, value_type: pa.DataType):
    cast = _to_float(value_type) if step.strategy in ("mean", "median") else (lambda v: v)
    output_type = pa.float64() if step.strategy in ("mean", "median") else value_type
    fill = fitted["fill"].get(name)
    if fill is None:
        return cast
    filler = pa.scalar(fill, type=output_type).as_py()
    nan_is_null = kind(output_type) == "float"

    def impute(value: Any) -> Any:
        value = cast(value)
        if value is None or (nan_is_null and value != value):
            return filler
        return value

    return impute


def _clip(step: Transform, fitted: dict[str, Any], name: str, value_type: pa.DataType):
    cast = _to_float(value_type)
    high, low = step.max, step.min

    def clip(value: Any) -> Any:
        value = cast(value)
        if value is None:
            return None
        if high is not None:
            value = float_min(value, high)
        if low is not None:
            value = float_max(value, low)
        return value

    return clip


def _standard_scale(step: Transform, fitted: dict[str, Any], name: str, value_type: pa.DataType):
    cast = _to_float(value_type)
    mean, scale = fitted_float(fitted["mean"][name]), fitted_float(fitted["scale"][name])

    def scale_value(value: Any) -> Any:
        value = cast(value)
        if value is None or mean is None or scale is None:
            return None
        return (value - mean) / scale

    return scale_value


def _min_max_scale(step: Transform, fitted: dict[str, Any], name: str, value_type: pa.DataType):
    cast = _to_float(value_type)
    low, high = fitted["min"][name], fitted["max"][name]
    if high == low:
        return lambda value: None if cast(value) is None else 0.0
    start, span = fitted_float(low), fitted_float(high - low)

    def rescale(value: Any) -> Any:
        value = cast(value)
        if value is None or start is None or span is None:
            return None
        return (value - start) / span

    return rescale


def _log(step: Transform, fitted: dict[str, Any], name: str, value_type: pa.DataType):
    cast = _to_float(value_type)

    def log(value: Any) -> Any:
        value = cast(value)
        return None if value is None or value < 0.0 else math.log1p(value)

    return log


def _as_text(value_type: pa.DataType) -> Convert:
    """pc.cast(values, string) for the categorical types."""
    source = kind(value_type)
    if source == "str":
        return lambda value: value
    if source == "int":
        return lambda value: None if value is None else str(value)
    if source == "bool":
        return lambda value: None if value is None else ("true" if value else "false")
    raise RowUnsupported(f"categories of {value_type}")


def _codes(categories: list[str]) -> dict[str, int]:
    codes: dict[str, int] = {}
    for position, category in enumerate(categories):
        codes.setdefault(category, position)  # index_in: the first position
    return codes


def _ordinal(step: Transform, fitted: dict[str, Any], name: str, value_type: pa.DataType):
    text, codes = _as_text(value_type), _codes(fitted["categories"][name])

    def ordinal(value: Any) -> Any:
        value = text(value)
        return None if value is None else codes.get(value, -1)

    return ordinal


_COLUMN_STEPS: dict[str, Callable[..., Convert]] = {
    "impute": _impute,
    "clip": _clip,
    "standardScale": _standard_scale,
    "minMaxScale": _min_max_scale,
    "log": _log,
    "ordinal": _ordinal,
}


def _one_hot(step: Transform, fitted: dict[str, Any], schema: pa.Schema) -> RowStep:
    columns = []
    for name in step.columns or []:
        categories, outputs = fitted["categories"][name], fitted["outputs"][name]
        indicators = outputs[: len(categories)]
        other = outputs[-1] if fitted["other"][name] else None
        text = _as_text(schema.field(name).type)
        columns.append((name, text, _codes(categories), indicators, other))

    def run(row: Row) -> None:
        for name, text, codes, indicators, other in columns:
            value = text(row.pop(name))
            code = None if value is None else codes.get(value)
            for position, output in enumerate(indicators):
                row[output] = 1.0 if code == position else 0.0
            if other is not None:
                row[other] = 1.0 if value is not None and code is None else 0.0
        return None

    return run
