"""Drift scores between two distributions of one column: PSI and the Kolmogorov-Smirnov statistic.

Both work on compact *reference payloads* rather than raw rows, so a profile stored beside a
snapshot is enough to compare the next snapshot, or a window of served requests, against it:

- numeric: ``{"kind": "numeric", "count": n, "quantiles": [q0, q1, ..., q100]}`` — the 101
  percentiles, from which a piecewise-linear distribution function is rebuilt;
- categorical: ``{"kind": "categorical", "count": n, "frequencies": {category: share}}``.

PSI bins numeric values at the reference's deciles and reads both shares per bin off the two
distribution functions; empty bins count as ``EPSILON`` so the logarithm stays finite. Rules of
thumb: below 0.1 stable, 0.1-0.2 moderate, above 0.2 a real shift.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "EPSILON",
    "PERCENTILES",
    "categorical_reference",
    "category_key",
    "has_data",
    "ks_statistic",
    "numeric_reference",
    "psi",
    "reference_cdf",
    "reference_from_values",
    "total_variation",
]

EPSILON = 1e-4
"""The share an empty bin counts as, so PSI stays finite."""

PERCENTILES = np.linspace(0.0, 1.0, 101)
"""The probabilities of a numeric reference's quantiles: p0, p1, ..., p100."""

_DECILES = range(10, 100, 10)
NUMERIC_KINDS = frozenset({"numeric"})
CATEGORICAL_KINDS = frozenset({"categorical", "boolean", "text"})


def category_key(value: Any) -> str:
    """The text key a category has in frequency payloads (JSON object keys are strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def numeric_reference(quantiles: Collection[float], count: int) -> dict[str, Any]:
    """A numeric reference payload from the 101 percentiles p0..p100 of a column."""
    values = [float(q) for q in quantiles]
    if values and len(values) != len(PERCENTILES):
        raise ValueError(f"A numeric reference needs 101 quantiles (p0..p100), got {len(values)}")
    return {"kind": "numeric", "count": int(count), "quantiles": values}


def categorical_reference(counts: Mapping[Any, int | float]) -> dict[str, Any]:
    """A categorical reference payload from category counts (shares are stored, sorted by key)."""
    total = float(sum(counts.values()))
    frequencies = {
        category_key(value): (count / total if total else 0.0) for value, count in counts.items()
    }
    return {
        "kind": "categorical",
        "count": int(total),
        "frequencies": dict(sorted(frequencies.items())),
    }


def reference_from_values(values: pa.Array | pa.ChunkedArray, kind: str) -> dict[str, Any]:
    """Build a reference payload from raw values, e.g. a window of served requests.

    ``kind`` is a ColumnProfile kind: "numeric" gives percentiles, "categorical", "boolean" and
    "text" give category shares. Nulls (and NaN) are left out, as profiles do.
    """
    if kind in NUMERIC_KINDS:
        numbers = _to_float_numpy(values)
        numbers = numbers[~np.isnan(numbers)]
        if numbers.size == 0:
            return numeric_reference([], 0)
        return numeric_reference(np.quantile(numbers, PERCENTILES), numbers.size)
    if kind in CATEGORICAL_KINDS:
        counts = pc.value_counts(values.drop_null())
        return categorical_reference(
            {item["values"].as_py(): item["counts"].as_py() for item in counts}
        )
    raise ValueError(
        f"Cannot build a drift reference for kind {kind!r}; "
        "use numeric, categorical, boolean or text"
    )


def psi(reference: Mapping[str, Any], current: Mapping[str, Any]) -> float:
    """Population stability index of ``current`` against ``reference``: sum (c - r) ln(c / r)."""
    kind = _common_kind(reference, current)
    if kind == "numeric":
        reference_shares, current_shares = _decile_shares(reference, current)
    else:
        reference_shares, current_shares = _category_shares(reference, current)
    reference_shares = np.maximum(reference_shares, EPSILON)
    current_shares = np.maximum(current_shares, EPSILON)
    terms = (current_shares - reference_shares) * np.log(current_shares / reference_shares)
    return float(terms.sum())


def ks_statistic(reference: Mapping[str, Any], current: Mapping[str, Any]) -> float:
    """The Kolmogorov-Smirnov statistic: the largest gap between the two distribution functions.

    Both functions are rebuilt from the 101 percentiles, so the result approximates the
    two-sample KS statistic of the underlying data to within about a percentile.
    """
    if _common_kind(reference, current) != "numeric":
        raise ValueError("The KS statistic needs numeric references; use psi for categories")
    ref_q = _quantiles(reference)
    cur_q = _quantiles(current)
    knots = np.union1d(ref_q, cur_q)
    gaps = [
        np.abs(_cdf(ref_q, knots, side) - _cdf(cur_q, knots, side)).max()
        for side in ("left", "right")
    ]
    return float(max(gaps))


def total_variation(reference: Mapping[str, Any], current: Mapping[str, Any]) -> float:
    """Half the L1 distance between two category share vectors: KS's analogue for categories."""
    reference_shares, current_shares = _category_shares(reference, current)
    return float(np.abs(reference_shares - current_shares).sum() / 2)


def reference_cdf(
    reference: Mapping[str, Any], points: np.ndarray, side: Literal["left", "right"] = "right"
) -> np.ndarray:
    """A numeric reference's distribution function at ``points``: P(X <= x) ("right") or
    P(X < x) ("left"), rebuilt from its percentiles as ``ks_statistic`` and ``psi`` do."""
    return _cdf(_quantiles(reference), np.asarray(points, dtype=float), side)


def has_data(reference: Mapping[str, Any]) -> bool:
    return bool(reference.get("quantiles") or reference.get("frequencies"))


def _common_kind(reference: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    kinds = {reference.get("kind"), current.get("kind")}
    if len(kinds) != 1 or not kinds <= {"numeric", "categorical"}:
        raise ValueError(
            f"Cannot compare a {reference.get('kind')!r} reference with a "
            f"{current.get('kind')!r} one; both must be numeric or both categorical"
        )
    for payload in (reference, current):
        if not has_data(payload):
            raise ValueError("Cannot compute drift against an empty reference (no non-null values)")
    return str(kinds.pop())


def _quantiles(reference: Mapping[str, Any]) -> np.ndarray:
    quantiles = np.asarray(reference["quantiles"], dtype=float)
    if quantiles.shape != PERCENTILES.shape:
        raise ValueError(f"A numeric reference needs 101 quantiles, got {quantiles.size}")
    return quantiles


def _cdf(quantiles: np.ndarray, points: np.ndarray, side: Literal["left", "right"]) -> np.ndarray:
    """The distribution function rebuilt from percentiles, evaluated at ``points``.

    Between two distinct percentiles it is linear; at a run of equal percentiles (a value that
    many rows share) it jumps. ``side="right"`` gives P(X <= x), ``side="left"`` P(X < x).
    """
    upper = np.searchsorted(quantiles, points, side=side)
    result = np.empty(points.shape, dtype=float)
    below, above = upper == 0, upper == len(quantiles)
    result[below], result[above] = 0.0, 1.0
    inside = ~(below | above)
    hi = upper[inside]
    lo = hi - 1
    span = quantiles[hi] - quantiles[lo]
    weight = np.divide(
        points[inside] - quantiles[lo], span, out=np.zeros_like(span), where=span > 0
    )
    # At a run of equal percentiles "left" lands on its first (weight 1), "right" on its last.
    result[inside] = PERCENTILES[lo] + weight * (PERCENTILES[hi] - PERCENTILES[lo])
    return np.clip(result, 0.0, 1.0)


def _decile_shares(
    reference: Mapping[str, Any], current: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    ref_q = _quantiles(reference)
    cur_q = _quantiles(current)
    # Ties can make deciles coincide (a discrete column); equal edges would make empty bins.
    edges = np.unique(ref_q[list(_DECILES)])
    return _bin_shares(ref_q, edges), _bin_shares(cur_q, edges)


def _bin_shares(quantiles: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares of the bins (-inf, e1], (e1, e2], ..., (ek, inf) under the rebuilt distribution."""
    cumulative = _cdf(quantiles, edges, "right")
    return np.diff(np.concatenate(([0.0], cumulative, [1.0])))


def _category_shares(
    reference: Mapping[str, Any], current: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    ref_f: Mapping[str, float] = reference["frequencies"]
    cur_f: Mapping[str, float] = current["frequencies"]
    categories = sorted(set(ref_f) | set(cur_f))
    return (
        np.array([ref_f.get(c, 0.0) for c in categories], dtype=float),
        np.array([cur_f.get(c, 0.0) for c in categories], dtype=float),
    )


def _to_float_numpy(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if not pa.types.is_floating(values.type):
        values = pc.cast(values, pa.float64())
    filled = pc.fill_null(values, math.nan)
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=float)
