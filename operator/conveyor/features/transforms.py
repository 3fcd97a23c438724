"""Transforms: fitted once at materialization, applied identically there and at serving.

`fit_transforms()` walks the spec's steps over streamed batches and learns the parameters of the
stateful ones; `FittedTransforms.apply()` is the one function that turns conformed rows into
features, used by the materialize Job on every batch and by the model server on request rows.
A serving request of a few rows takes `FittedTransforms.row_path()` instead (rowpath.py): the
same computation compiled once into plain-Python closures over a row, equal to `apply()` bit for
bit and error for error, without pyarrow's per-call overhead (which costs more than the model on
one row); what it cannot promise to reproduce exactly, it hands back to `apply()`.

Fitting streams: each pass over `scan()` collects the statistics of every stateful step whose
input is already final, so `impute` then `standardScale` of the same column takes two passes.
Memory is bounded by the batch size and the accumulators (see accumulators.py), not the row count.

What each op does (numeric ops produce float64; nulls stay null unless the op fills them):

- derive: the expression's value, cast to outputType (float when omitted; int truncates);
- filter: keeps the rows where the expression is true (null counts as false); skipped at serving,
  where every request row is answered;
- impute: mean or median (int columns become float), mostFrequent (ties: smallest value), or the
  constant `value`; fills nulls and NaN;
- clip: bounds to [min, max] (either may be omitted);
- standardScale: (x - mean) / std, population std; std 0 divides by 1;
- minMaxScale: (x - min) / (max - min); a range of 0 gives 0;
- oneHot: one float column `<col>_<category>` per category (sorted; the name sanitised to
  [A-Za-z0-9_]); with maxCategories the most frequent are kept and the rest go to `<col>_other`;
  an unseen or null value is all zeros (other = 1 for an unseen value when `_other` exists);
- ordinal: sorted categories to 0..k-1; unseen -1; null stays null;
- log: log1p(x); a negative x is null.

The entity key, event time and target pass through untouched: steps may not transform them, and a
derived feature may not read the target (serving has none).

Non-finite results: when a step gives inf, -inf or NaN for a row (a derive that overflows, such as
`x ** 10 ** 10 ** 10`; a scaling of an extreme value), that row is rejected with a reason naming
the step and its output, e.g. `spec.transforms[1] (derive 'big' = x ** 10 ** 10 ** 10): inf is
not a finite number`. At materialization the row leaves the snapshot and is counted and sampled
with the schema's rejects, so `validation.maxRejectRatio` decides whether the snapshot fails
(TooManyRejects); at serving the request row is refused with the same reason (`NonFiniteResult`).

Why reject the row rather than refuse the snapshot: a non-finite result is a property of one row's
values (an outlier the expression does not survive), like a value outside a column's range, and
rejects already have what such a row needs: a reason, a sample, and a threshold the user chose.
Refusing the snapshot at the first such row would let one outlier stop the pipeline; passing it on
(as before) made training fail late, naming the wrong field, and would make serving answer from an
infinite feature. A definition that is wrong for every row still fails: all its rows are rejected.
While fitting, such rows are left out as a filter leaves rows out, so the fitted parameters
describe the rows the snapshot keeps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from conveyor.api.v1alpha1.featureset import FeatureSchema, FeatureSetSpec, Transform

from .conform import parse_value
from .expressions import Expression, ExpressionError, compile_expression
from .nonfinite import NonFinite, NonFiniteResult, TransformRejects, broken_rows, row_reason
from .rowpath import RowPath, RowUnsupported, compile_row_path
from .transform_checks import (
    advance,
    check_step,
    protected_columns,
    step_reads,
)
from .transform_steps import (
    MAX_DISTINCT_CATEGORIES,
    StepStatistics,
    TransformError,
    apply_step,
)

__all__ = [
    "MAX_DISTINCT_CATEGORIES",
    "Applied",
    "FittedTransforms",
    "NonFiniteResult",
    "TransformError",
    "TransformRejects",
    "deduplicate_latest",
    "fit_transforms",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
_ROW = "__conveyor_row__"  # carries input positions through the steps (never a column name)
# Steps that may remove rows: filters, and those whose results may be non-finite (rejected).
_ROW_DROPPING_OPS = ("filter", "derive", "impute", "standardScale", "minMaxScale")


class Applied(NamedTuple):
    """`FittedTransforms.apply_with_rows()`: the features and what became of each input row."""

    features: pa.Table
    kept: pa.Array
    """The input positions of the feature rows, in order."""
    rejected: TransformRejects


@dataclass
class FittedTransforms:
    steps: list[dict[str, Any]]
    """The spec's steps (wire form), each with its fitted parameters under "fitted"."""
    input_columns: list[str]
    """The typed raw columns expected (conform() output)."""
    feature_columns: list[str]
    """The model's input columns after transforms, in order."""
    passthrough: list[str]
    """Entity key, event time and target: carried through untouched when present."""
    _parsed: list[tuple[Transform, dict[str, Any]]] = field(
        init=False, repr=False, compare=False, default_factory=list
    )
    _expressions: dict[tuple[int, tuple[str, ...]], Expression] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _row_path: tuple[FeatureSchema, RowPath | None] | None = field(
        init=False, repr=False, compare=False, default=None
    )

    def __post_init__(self) -> None:
        self._parsed = [
            (
                Transform.model_validate({k: v for k, v in step.items() if k != "fitted"}),
                step.get("fitted", {}),
            )
            for step in self.steps
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "steps": self.steps,
            "input_columns": self.input_columns,
            "feature_columns": self.feature_columns,
            "passthrough": self.passthrough,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FittedTransforms:
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(
                f"fitted transforms of format {data.get('format')!r} cannot be read by this "
                f"version (format {FORMAT_VERSION}); re-materialize the FeatureSet"
            )
        return cls(
            steps=list(data["steps"]),
            input_columns=list(data["input_columns"]),
            feature_columns=list(data["feature_columns"]),
            passthrough=list(data["passthrough"]),
        )

    def apply(self, batch: pa.RecordBatch | pa.Table, *, serving: bool = False) -> pa.Table:
        """Every step in order; output columns: the present passthrough, then feature_columns.

        Rows with a non-finite result are left out; at serving they raise NonFiniteResult.
        """
        table = self._run_steps(self._checked(batch), serving, None)
        names = set(table.schema.names)
        present = [c for c in self.passthrough if c in names]
        return table.select([*present, *self.feature_columns])

    def row_path(self, schema: FeatureSchema) -> RowPath | None:
        """`apply(conform(rows_to_batch(rows), schema).batch, serving=True)` for a few request
        rows without pyarrow (rowpath.py), compiled once; None when some step has no row form
        and every request must take the batch path."""
        if self._row_path is None or self._row_path[0] is not schema:
            try:
                path: RowPath | None = compile_row_path(
                    schema, self._parsed, self.feature_columns, self._expression
                )
            except RowUnsupported as error:
                logger.info("Serving these transforms on the batch path only: %s", error)
                path = None
            self._row_path = (schema, path)
        return self._row_path[1]

    def apply_with_rows(
        self, batch: pa.RecordBatch | pa.Table, *, max_reasons: int = 100
    ) -> Applied:
        """`apply()` at materialization, the positions of the input rows that survived (the
        snapshot keeps those raw rows beside the features, row for row), and the rows rejected
        for a non-finite result, with the reasons of the first `max_reasons`."""
        table = self._checked(batch)
        positions = pa.array(np.arange(table.num_rows, dtype=np.int64))  # not a Python range
        rejected = TransformRejects()
        table = self._run_steps(
            table.append_column(_ROW, positions), False, (rejected, max_reasons)
        )
        names = set(table.schema.names)
        present = [c for c in self.passthrough if c in names]
        features = table.select([*present, *self.feature_columns])
        return Applied(features, table.column(_ROW).combine_chunks(), rejected)

    def _checked(self, batch: pa.RecordBatch | pa.Table) -> pa.Table:
        table = _as_table(batch)
        present = set(table.schema.names)
        missing = [c for c in self.input_columns if c not in present and c not in self.passthrough]
        if missing:
            raise ValueError(
                f"the batch lacks the input column(s) {', '.join(missing)} "
                f"(it has: {', '.join(table.column_names)}); conform the rows first"
            )
        return table

    def _run_steps(
        self, table: pa.Table, serving: bool, record: tuple[TransformRejects, int] | None
    ) -> pa.Table:
        for index, (step, fitted) in enumerate(self._parsed):
            table, broken = apply_step(index, step, fitted, table, serving, self._expression)
            if not broken:
                continue
            mask = broken_rows(broken)
            if serving:
                rows = np.flatnonzero(mask).tolist()
                raise NonFiniteResult(rows, [row_reason(broken, row) for row in rows[:5]])
            if record is not None:
                _record(record[0], table, broken, mask, record[1])
            table = table.filter(pa.array(~mask))
        return table

    def _expression(self, index: int, text: str, columns: list[str]) -> Expression:
        key = (index, tuple(columns))
        if key not in self._expressions:
            self._expressions[key] = _compile(index, text, columns)
        return self._expressions[key]


def fit_transforms(
    spec: FeatureSetSpec, scan: Callable[[], Iterable[pa.RecordBatch]]
) -> FittedTransforms:
    """Fit the spec's transforms over `scan()` (conformed batches, afresh on each call)."""
    steps = spec.transforms
    params: list[dict[str, Any] | None] = [None if _stateful(step) else {} for step in steps]
    compiled: dict[tuple[int, tuple[str, ...]], Expression] = {}

    def expression(index: int, text: str, columns: list[str]) -> Expression:
        key = (index, tuple(columns))
        if key not in compiled:
            compiled[key] = _compile(index, text, columns)
        return compiled[key]

    while True:
        walk = _walk(spec, params)
        if not walk.to_fit:
            break
        stats = {i: StepStatistics(i, steps[i], walk.types_before[i]) for i in walk.to_fit}
        for batch in scan():
            table = _as_table(batch)
            for i in range(walk.stop):
                if i in stats:
                    stats[i].update(table)
                elif i not in walk.skip:
                    step = steps[i]
                    table, broken = apply_step(i, step, params[i] or {}, table, False, expression)
                    if broken:  # rejected rows: they will not be in the snapshot
                        table = table.filter(pa.array(~broken_rows(broken)))
        for i, statistics in stats.items():
            params[i] = statistics.finish()
    protected = protected_columns(spec)
    return FittedTransforms(
        steps=[
            {**step.to_wire(), "fitted": fitted} for step, fitted in zip(steps, params, strict=True)
        ],
        input_columns=[column.name for column in spec.schema_.columns],
        feature_columns=[name for name in walk.types if name not in protected],
        passthrough=protected,
    )


def deduplicate_latest(table: pa.Table, entity_key: str, event_time: str) -> pa.Table:
    """The latest row per entity key (ties: the last seen); rows keep their order.

    A row without a key cannot be matched to others and is kept; a null event time is older
    than any time.
    """
    if table.num_rows == 0:
        return table
    order = pa.table(
        {
            "key": table.column(entity_key),
            "time": table.column(event_time),
            "row": pa.array(np.arange(table.num_rows)),
        }
    )
    indices = pc.sort_indices(
        order,
        sort_keys=[
            ("key", "ascending", "at_start"),
            ("time", "ascending", "at_start"),
            ("row", "ascending", "at_start"),
        ],
    )
    keys = pc.take(order.column("key"), indices)
    # The last row of each run of equal keys; every row with a null key.
    different_next = pc.fill_null(pc.not_equal(keys[:-1], keys[1:]), True)
    last = np.append(np.asarray(different_next.to_numpy(zero_copy_only=False), dtype=bool), True)
    last |= np.asarray(pc.is_null(keys).to_numpy(zero_copy_only=False), dtype=bool)
    kept = np.sort(indices.to_numpy()[last])
    return table.take(pa.array(kept))


# --- the walk: validate the steps, track column types, plan a fitting pass ----------------------


@dataclass
class _Walk:
    types: dict[str, str]
    """Columns (name → type) after the last step walked, in order."""
    types_before: dict[int, dict[str, str]] = field(default_factory=dict)
    to_fit: list[int] = field(default_factory=list)
    """Unfitted stateful steps whose input is final: the next pass collects their statistics."""
    stop: int = 0
    """The pass runs steps [0, stop)."""
    skip: set[int] = field(default_factory=set)
    """Steps before `stop` whose input depends on a step not fitted yet."""


def _walk(spec: FeatureSetSpec, params: list[dict[str, Any] | None]) -> _Walk:
    types: dict[str, str] = {column.name: column.type for column in spec.schema_.columns}
    walk = _Walk(types=types, stop=len(spec.transforms))
    dirty: set[str] = set()  # columns whose values depend on an unfitted step
    rows_dirty = False  # a skipped filter: every later statistic would see the wrong rows
    pending = False  # an unfitted oneHot: columns it will create are not known yet
    for index, step in enumerate(spec.transforms):
        reads = step_reads(index, step, types, unknown_ok=pending)
        unfitted = params[index] is None
        depends = reads is None or bool(reads & dirty)
        if unfitted and (depends or rows_dirty):
            walk.stop = index
            break
        walk.types_before[index] = dict(types)
        if unfitted:
            walk.to_fit.append(index)
            dirty |= set(step.columns or [])
            pending |= step.op == "oneHot"
        elif depends:
            walk.skip.add(index)
            dirty |= {step.output or ""} if step.op == "derive" else set(step.columns or [])
            # It may remove rows (a filter, or a non-finite result) the next statistics must
            # not see. An unfitted scaling step may too, but only for values near the float
            # limits (1e308): that rarity is not worth a pass, so it does not stop the pass.
            rows_dirty |= step.op in _ROW_DROPPING_OPS
        if reads is not None:  # a step reading columns not created yet is checked in a later walk
            check_step(index, step, types, spec)
            if step.op == "impute" and step.strategy == "constant":
                # Stateless, but its value's type is the column's type at this step.
                params[index] = {
                    "fill": {
                        name: parse_value(step.value or "", types[name])
                        for name in step.columns or []
                    }
                }
        types = advance(step, params[index], types)
    walk.types = types
    return walk


def _stateful(step: Transform) -> bool:
    if step.op == "impute":
        return step.strategy != "constant"
    return step.op in ("standardScale", "minMaxScale", "oneHot", "ordinal")


def _compile(index: int, text: str, columns: list[str]) -> Expression:
    try:
        return compile_expression(text, columns)
    except ExpressionError as error:
        raise TransformError(f"spec.transforms[{index}].expression", str(error)) from error


def _record(
    rejects: TransformRejects,
    table: pa.Table,
    broken: list[NonFinite],
    mask: np.ndarray,
    max_reasons: int,
) -> None:
    rows = np.flatnonzero(mask)
    positions = table.column(_ROW).take(pa.array(rows)).to_pylist()
    for row in rows[: max(0, max_reasons - len(rejects.reasons))]:
        rejects.reasons.append(row_reason(broken, int(row)))
    rejects.rows.extend(positions)
    for item in broken:
        rejects.rules[item.rule] += int(item.broken.sum())
        rejects.examples.setdefault(item.rule, item.value(int(np.argmax(item.broken))))


def _as_table(batch: pa.RecordBatch | pa.Table) -> pa.Table:
    return batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
