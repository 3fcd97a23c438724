"""One transform step: how it is applied to a table and how its parameters are fitted.

Private to transforms.py (split out for size); the semantics of each op are documented there.
`apply_step` also reports the rows whose values the step made inf, -inf or NaN (`NonFinite`,
see nonfinite.py); transforms.py decides what becomes of them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from conveyor.api.v1alpha1.featureset import Transform

from .accumulators import Counts, MinMax, Moments, Quantiles, TooManyDistinctValues, finite_values
from .conform import ARROW_TYPES
from .expressions import Expression
from .nonfinite import NonFinite, non_finite

__all__ = ["MAX_DISTINCT_CATEGORIES", "StepStatistics", "TransformError", "apply_step"]

logger = logging.getLogger(__name__)

MAX_DISTINCT_CATEGORIES = 10_000
"""oneHot, ordinal and mostFrequent keep at most this many distinct values per column."""

# (step index, expression text, current columns) -> compiled expression, cached by the caller.
CompileExpression = Callable[[int, str, list[str]], Expression]


class TransformError(ValueError):
    """A transform step cannot be used as written; `field` names it (spec.transforms[i].columns)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def apply_step(
    index: int,
    step: Transform,
    fitted: dict[str, Any],
    table: pa.Table,
    serving: bool,
    expression: CompileExpression,
) -> tuple[pa.Table, list[NonFinite]]:
    """The table after the step, and the non-finite values the step wrote (per column)."""
    if step.op == "filter":
        return (table if serving else _filter(index, step, table, expression)), []
    if step.op == "derive":
        return _derive(index, step, table, expression)
    if step.op == "oneHot":
        return _one_hot(step, fitted, table), []  # indicators: always 0 or 1
    transform = _COLUMN_TRANSFORMS[step.op]
    broken = []
    for name in step.columns or []:
        values = transform(table.column(name), name, step, fitted)
        broken.extend(non_finite(values, f"spec.transforms[{index}] ({step.op} of {name!r})"))
        table = _replace(table, name, values)
    return table, broken


def _filter(
    index: int, step: Transform, table: pa.Table, expression: CompileExpression
) -> pa.Table:
    keep = expression(index, step.expression or "", table.schema.names).evaluate(table)
    if not pa.types.is_boolean(keep.type):
        raise TransformError(
            f"spec.transforms[{index}].expression",
            f"a filter must be true or false, but {step.expression!r} gives {keep.type}",
        )
    return table.filter(keep, null_selection_behavior="drop")


def _derive(
    index: int, step: Transform, table: pa.Table, expression: CompileExpression
) -> tuple[pa.Table, list[NonFinite]]:
    value = expression(index, step.expression or "", table.schema.names).evaluate(table)
    output_type = step.output_type or "float"
    target = ARROW_TYPES[output_type]
    where = f"spec.transforms[{index}] (derive {step.output!r}"
    broken = non_finite(value, where + ")", f"{where} = {step.expression})")
    if broken and output_type != "float":
        # The row is rejected: its value must not fail the cast of the others.
        value = pc.if_else(pa.array(broken[0].broken), pa.scalar(None, value.type), value)
    try:
        if output_type == "int" and pa.types.is_floating(value.type):
            value = pc.trunc(value)
        value = pc.cast(value, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise TransformError(
            f"spec.transforms[{index}].outputType",
            f"{step.expression!r} gives {value.type}, which cannot be {output_type}: {error}",
        ) from error
    return _replace(table, step.output or "", value), broken


def _impute(
    values: pa.ChunkedArray, name: str, step: Transform, fitted: dict[str, Any]
) -> pa.ChunkedArray:
    if step.strategy in ("mean", "median"):
        values = pc.cast(values, pa.float64())
    fill = fitted["fill"].get(name)
    if fill is None:
        return values
    missing = pc.is_null(values, nan_is_null=True)
    return pc.if_else(missing, pa.scalar(fill, type=values.type), values)


def _clip(
    values: pa.ChunkedArray, name: str, step: Transform, fitted: dict[str, Any]
) -> pa.ChunkedArray:
    numbers = pc.cast(values, pa.float64())
    if step.max is not None:
        numbers = pc.min_element_wise(numbers, pa.scalar(step.max), skip_nulls=False)
    if step.min is not None:
        numbers = pc.max_element_wise(numbers, pa.scalar(step.min), skip_nulls=False)
    return numbers


def _standard_scale(
    values: pa.ChunkedArray, name: str, step: Transform, fitted: dict[str, Any]
) -> pa.ChunkedArray:
    centred = pc.subtract(pc.cast(values, pa.float64()), fitted["mean"][name])
    return pc.divide(centred, fitted["scale"][name])


def _min_max_scale(
    values: pa.ChunkedArray, name: str, step: Transform, fitted: dict[str, Any]
) -> pa.ChunkedArray:
    numbers = pc.cast(values, pa.float64())
    low, high = fitted["min"][name], fitted["max"][name]
    if high == low:
        return pc.if_else(pc.is_valid(numbers), pa.scalar(0.0), pa.scalar(None, pa.float64()))
    return pc.divide(pc.subtract(numbers, low), high - low)


def _log(
    values: pa.ChunkedArray, name: str, step: Transform, fitted: dict[str, Any]
) -> pa.ChunkedArray:
    numbers = pc.cast(values, pa.float64())
    negative = pc.less(numbers, 0.0)
    return pc.log1p(pc.if_else(negative, pa.scalar(None, pa.float64()), numbers))


def _ordinal(
    values: pa.ChunkedArray, name: str, step: Transform, fitted: dict[str, Any]
) -> pa.ChunkedArray:
    text = _as_text(values)
    categories = pa.array(fitted["categories"][name], pa.string())
    codes = pc.cast(pc.fill_null(pc.index_in(text, value_set=categories), -1), pa.int64())
    return pc.if_else(pc.is_null(text), pa.scalar(None, pa.int64()), codes)


_COLUMN_TRANSFORMS = {
    "impute": _impute,
    "clip": _clip,
    "standardScale": _standard_scale,
    "minMaxScale": _min_max_scale,
    "log": _log,
    "ordinal": _ordinal,
}


def _one_hot(step: Transform, fitted: dict[str, Any], table: pa.Table) -> pa.Table:
    for name in step.columns or []:
        text = _as_text(table.column(name))
        categories = fitted["categories"][name]
        outputs = fitted["outputs"][name]
        # Each cell's category position, found once; comparing integers per category is far
        # cheaper than comparing the text (null: a null or unseen value).
        codes = pc.index_in(text, value_set=pa.array(categories, pa.string()))
        columns = [_indicator(pc.equal(codes, code)) for code in range(len(categories))]
        if fitted["other"][name]:
            columns.append(_indicator(pc.and_(pc.is_valid(text), pc.is_null(codes))))
        position = table.schema.names.index(name)
        table = table.remove_column(position)
        for offset, (output, column) in enumerate(zip(outputs, columns, strict=True)):
            table = table.add_column(position + offset, output, column)
    return table


def _indicator(condition: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.cast(pc.fill_null(condition, False), pa.float64())


def _as_text(values: pa.ChunkedArray) -> pa.ChunkedArray:
    return values if pa.types.is_string(values.type) else pc.cast(values, pa.string())


def _replace(table: pa.Table, name: str, values: pa.ChunkedArray | pa.Array) -> pa.Table:
    names = table.schema.names  # not table.schema.names: that costs microseconds a column
    if name in names:
        return table.set_column(names.index(name), name, values)
    return table.append_column(name, values)


class StepStatistics:
    """The statistics one stateful step needs, accumulated over batches."""

    def __init__(self, index: int, step: Transform, types: dict[str, str]) -> None:
        self.index = index
        self.step = step
        self.types = types
        self.columns = list(step.columns or [])
        self.accumulators = {name: self._accumulator() for name in self.columns}

    def _accumulator(self) -> Any:
        op, strategy = self.step.op, self.step.strategy
        if op == "standardScale" or (op == "impute" and strategy == "mean"):
            return Moments()
        if op == "impute" and strategy == "median":
            return Quantiles()
        if op == "minMaxScale":
            return MinMax()
        return Counts(limit=MAX_DISTINCT_CATEGORIES)

    def update(self, table: pa.Table) -> None:
        for name, accumulator in self.accumulators.items():
            values = table.column(name)
            if not isinstance(accumulator, Counts):
                accumulator.update(finite_values(values))
                continue
            if self.step.op in ("oneHot", "ordinal"):
                values = _as_text(values)
            try:
                accumulator.update(values)
            except TooManyDistinctValues as error:
                raise TransformError(
                    f"spec.transforms[{self.index}].columns",
                    f"column {name!r} has {error}; {self.step.op} needs a column with at most "
                    f"{MAX_DISTINCT_CATEGORIES} categories",
                ) from error

    def finish(self) -> dict[str, Any]:
        op = self.step.op
        if op == "impute":
            return {"fill": {name: self._fill(name) for name in self.columns}}
        if op == "standardScale":
            moments = self.accumulators
            return {
                "mean": {name: moments[name].mean for name in self.columns},
                "scale": {name: moments[name].std or 1.0 for name in self.columns},
            }
        if op == "minMaxScale":
            ranges = self.accumulators
            return {
                "min": {name: ranges[name].low or 0.0 for name in self.columns},
                "max": {name: ranges[name].high or 0.0 for name in self.columns},
            }
        categories = {name: self._categories(name) for name in self.columns}
        if op == "ordinal":
            return {"categories": {name: kept for name, (kept, _) in categories.items()}}
        return self._one_hot(categories)

    def _fill(self, name: str) -> Any:
        accumulator = self.accumulators[name]
        if isinstance(accumulator, Moments):
            value: Any = accumulator.mean if accumulator.count else None
        elif isinstance(accumulator, Quantiles):
            value = accumulator.median()
        else:
            value = accumulator.most_frequent()
        if value is None:
            logger.warning(
                "Impute of column %r (spec.transforms[%d]) saw no values; its nulls stay null",
                name,
                self.index,
            )
        return value

    def _categories(self, name: str) -> tuple[list[str], bool]:
        """The kept categories, sorted, and whether others exist beyond maxCategories."""
        counts = self.accumulators[name].counts
        numeric = self.types[name] == "int"

        def order(value: str) -> Any:
            return (int(value), "") if numeric else (0, value)

        kept = list(counts)
        limit = self.step.max_categories
        if limit is not None and len(kept) > limit:
            kept = sorted(kept, key=lambda value: (-counts[value], order(value)))[:limit]
        return sorted(kept, key=order), len(kept) < len(counts)

    def _one_hot(self, categories: dict[str, tuple[list[str], bool]]) -> dict[str, Any]:
        taken = {name for name in self.types if name not in self.columns}
        outputs: dict[str, list[str]] = {}
        for name, (kept, other) in categories.items():
            labels = [*kept, "other"] if other else kept
            outputs[name] = [_unique_name(f"{name}_{label}", taken) for label in labels]
        return {
            "categories": {name: kept for name, (kept, _) in categories.items()},
            "other": {name: other for name, (_, other) in categories.items()},
            "outputs": outputs,
        }


def _unique_name(wanted: str, taken: set[str]) -> str:
    """`wanted` sanitised to [A-Za-z0-9_], with _2, _3, ... appended if already taken."""
    base = re.sub(r"[^A-Za-z0-9_]", "_", wanted)
    name, counter = base, 1
    while name in taken:
        counter += 1
        name = f"{base}_{counter}"
    taken.add(name)
    return name
