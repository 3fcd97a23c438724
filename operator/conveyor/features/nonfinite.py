"""Non-finite transform results: how they are found, described and counted.

A transform step that writes inf, -inf or NaN into a float column reports those rows as a
`NonFinite` (one per column); transforms.py rejects the rows (see "Non-finite results" there):
recorded in `TransformRejects` at materialization, refused with `NonFiniteResult` at serving.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "NonFinite",
    "NonFiniteResult",
    "TransformRejects",
    "broken_rows",
    "non_finite",
    "row_reason",
]


@dataclass(frozen=True)
class NonFinite:
    """The rows of a step's output whose value in one column it wrote is inf, -inf or NaN."""

    rule: str
    """What broke, without the value: rows are counted per rule, e.g.
    "spec.transforms[1] (derive 'big'): not a finite number"."""
    label: str
    """The step and column as a row's reason names them (a derive quotes its expression)."""
    broken: np.ndarray
    """True for the rows broken, over the rows of the step's output."""
    values: np.ndarray
    """The column as float64 (the values the reasons quote)."""

    def reason(self, row: int) -> str:
        return f"{self.label}: {self.value(row)} is not a finite number"

    def value(self, row: int) -> str:
        """The row's value as the reasons quote it: inf, -inf or nan."""
        return _float_text(self.values[row])


def non_finite(values: pa.Array | pa.ChunkedArray, what: str, label: str = "") -> list[NonFinite]:
    """The NonFinite of a float column a step wrote, if it holds inf, -inf or NaN (else none).

    `what` names the step and column ("spec.transforms[2] (standardScale of 'x')"); `label`, when
    given, is the longer name a row's reason uses.
    """
    if not pa.types.is_floating(values.type):
        return []
    finite = pc.fill_null(pc.is_finite(values), True)
    if pc.all(finite).as_py() is not False:
        return []
    broken = ~np.asarray(finite.to_numpy(zero_copy_only=False), dtype=bool)
    numbers = np.asarray(pc.fill_null(values, 0.0).to_numpy(zero_copy_only=False), dtype=float)
    return [
        NonFinite(
            rule=f"{what}: not a finite number", label=label or what, broken=broken, values=numbers
        )
    ]


def broken_rows(broken: list[NonFinite]) -> np.ndarray:
    """The rows broken in any of the columns."""
    mask = broken[0].broken.copy()
    for other in broken[1:]:
        mask |= other.broken
    return mask


def row_reason(broken: list[NonFinite], row: int) -> str:
    """Every column that broke in `row`, with its value."""
    return "; ".join(item.reason(row) for item in broken if item.broken[row])


class NonFiniteResult(ValueError):
    """At serving: a transform gave inf, -inf or NaN for request rows, which are refused."""

    def __init__(self, rows: list[int], reasons: list[str]) -> None:
        """`rows`: the refused rows' positions; `reasons`: those of the first five at least."""
        shown = zip(rows[:5], reasons[:5], strict=True)
        listed = "; ".join(f"row {row}: {reason}" for row, reason in shown)
        more = f"; and {len(rows) - 5} more" if len(rows) > 5 else ""
        super().__init__(f"{len(rows)} row(s) give a non-finite feature: {listed}{more}")
        self.rows, self.reasons = rows, reasons


@dataclass
class TransformRejects:
    """The input rows of a batch the transforms rejected (a non-finite result)."""

    rows: list[int] = field(default_factory=list)
    """Their positions in the input batch, in the order the steps rejected them."""
    reasons: list[str] = field(default_factory=list)
    """The reasons of the first of them (at most the limit asked for), in the same order."""
    rules: Counter[str] = field(default_factory=Counter)
    """Rows per broken rule."""
    examples: dict[str, str] = field(default_factory=dict)
    """The value of the first row that broke each rule."""

    @property
    def count(self) -> int:
        return len(self.rows)


def _float_text(value: float) -> str:
    return "nan" if math.isnan(value) else repr(float(value))
