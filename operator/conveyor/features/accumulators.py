"""Streaming statistics for fitting transforms: memory bounded independent of the row count.

Every accumulator takes batches one at a time (`update`) and gives its result at the end. Nulls,
NaN and infinities are left out of the statistics.

- Moments: count, mean and population variance, merged batch by batch with Chan et al.'s
  parallel formula (numerically stable; the result does not depend on how rows are batched
  beyond floating-point rounding).
- MinMax: smallest and largest value.
- Counts: how often each distinct value occurs, capped at `limit` distinct values.
- Quantiles: exact while at most EXACT_DISTINCT distinct values have been seen; beyond that each
  value is replaced by the centre of its logarithmic bucket (the DDSketch scheme), so a quantile
  is within a relative error of SKETCH_RELATIVE_ERROR and memory stays bounded (about 2 * 28,000
  buckets for magnitudes between 1e-12 and 1e12). Both modes are independent of row order.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "EXACT_DISTINCT",
    "SKETCH_RELATIVE_ERROR",
    "Counts",
    "MinMax",
    "Moments",
    "Quantiles",
    "TooManyDistinctValues",
    "finite_values",
]

EXACT_DISTINCT = 100_000
SKETCH_RELATIVE_ERROR = 1e-3
_GAMMA = (1 + SKETCH_RELATIVE_ERROR) / (1 - SKETCH_RELATIVE_ERROR)
_LOG_GAMMA = math.log(_GAMMA)
_SMALLEST = 1e-12  # magnitudes below this count as zero in the sketch


class TooManyDistinctValues(ValueError):
    """More distinct values than the accumulator keeps."""


def finite_values(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The finite values of a numeric array as float64 (no nulls, NaN or infinities)."""
    numbers = pc.drop_null(pc.cast(values, pa.float64()))
    if isinstance(numbers, pa.ChunkedArray):
        numbers = numbers.combine_chunks() if numbers.num_chunks else pa.array([], pa.float64())
    array = numbers.to_numpy(zero_copy_only=False)
    return array[np.isfinite(array)]


@dataclass
class Moments:
    count: int = 0
    mean: float = 0.0
    m2: float = 0.0  # sum of squared deviations from the mean

    def update(self, values: np.ndarray) -> None:
        n = len(values)
        if n == 0:
            return
        batch_mean = float(values.mean())
        batch_m2 = float(np.square(values - batch_mean).sum())
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * n / total
        self.m2 += batch_m2 + delta * delta * self.count * n / total
        self.count = total

    @property
    def std(self) -> float:
        """Population standard deviation (ddof=0, as scikit-learn's StandardScaler)."""
        return math.sqrt(self.m2 / self.count) if self.count else 0.0


@dataclass
class MinMax:
    low: float | None = None
    high: float | None = None

    def update(self, values: np.ndarray) -> None:
        if len(values) == 0:
            return
        low, high = float(values.min()), float(values.max())
        self.low = low if self.low is None else min(self.low, low)
        self.high = high if self.high is None else max(self.high, high)


@dataclass
class Counts:
    limit: int
    counts: dict[Hashable, int] = field(default_factory=dict)

    def update(self, values: pa.Array | pa.ChunkedArray) -> None:
        for entry in pc.value_counts(pc.drop_null(values)).to_pylist():
            value = entry["values"]
            self.counts[value] = self.counts.get(value, 0) + entry["counts"]
        if len(self.counts) > self.limit:
            raise TooManyDistinctValues(f"more than {self.limit} distinct values")

    def most_frequent(self) -> Hashable | None:
        """The most frequent value; ties go to the smallest value, so the result is stable."""
        if not self.counts:
            return None
        return min(self.counts, key=lambda value: (-self.counts[value], value))


@dataclass
class Quantiles:
    keys: np.ndarray = field(default_factory=lambda: np.empty(0))
    weights: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    sketched: bool = False

    def update(self, values: np.ndarray) -> None:
        if len(values) == 0:
            return
        if self.sketched:
            values = _bucket_centres(values)
        keys, weights = np.unique(values, return_counts=True)
        self._merge(keys, weights)
        if not self.sketched and len(self.keys) > EXACT_DISTINCT:
            self.sketched = True
            self._merge(_bucket_centres(self.keys), self.weights, replace=True)

    def _merge(self, keys: np.ndarray, weights: np.ndarray, *, replace: bool = False) -> None:
        if not replace:
            keys = np.concatenate([self.keys, keys])
            weights = np.concatenate([self.weights, weights])
        unique, inverse = np.unique(keys, return_inverse=True)
        self.keys = unique
        self.weights = np.bincount(inverse, weights=weights).astype(np.int64)

    @property
    def count(self) -> int:
        return int(self.weights.sum())

    def median(self) -> float | None:
        """numpy's median (the mean of the two middle values for an even count)."""
        total = self.count
        if total == 0:
            return None
        cumulative = np.cumsum(self.weights)
        lower = self.keys[np.searchsorted(cumulative, (total - 1) // 2, side="right")]
        upper = self.keys[np.searchsorted(cumulative, total // 2, side="right")]
        return float(lower) if lower == upper else float((lower + upper) / 2)


def _bucket_centres(values: np.ndarray) -> np.ndarray:
    magnitude = np.abs(values)
    small = magnitude < _SMALLEST
    index = np.ceil(np.log(np.where(small, 1.0, magnitude)) / _LOG_GAMMA)
    centre = 2 * np.power(_GAMMA, index) / (_GAMMA + 1)
    return np.where(small, 0.0, np.sign(values) * centre)
