"""What the profile keeps about one column while batches stream past, and what it reports.

``ColumnAccumulator`` holds a column's exact moments, counts and correlation co-moments and its
seeded sample; ``ColumnProfile`` is its finished, JSON-ready summary. See ``profile`` for what is
exact and what is approximate.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .drift import PERCENTILES, categorical_reference, category_key, numeric_reference
from .profile_stats import CoMoments, GroupedMoments, Moments, Reservoir

__all__ = [
    "DISTINCT_CAP",
    "KEY_ROLES",
    "ColumnAccumulator",
    "ColumnKind",
    "ColumnProfile",
    "ColumnRole",
    "TargetBatch",
    "as_floats",
    "encode_categories",
    "kind_of",
]

ColumnKind = Literal["numeric", "categorical", "boolean", "timestamp", "text"]
ColumnRole = Literal["feature", "target", "entityKey", "eventTime"]

KEY_ROLES: frozenset[str] = frozenset({"entityKey", "eventTime"})
"""Roles that name rows rather than describe them: counted and ranged, never drift-scored or
correlated (a new batch of entities is not drift, and ids carry no signal)."""

DISTINCT_CAP = 10_000
"""Distinct values counted exactly per column; beyond it only the most frequent are kept."""
_QUANTILE_POINTS = {"p01": 1, "p05": 5, "p25": 25, "p50": 50, "p75": 75, "p95": 95, "p99": 99}
_GROUPED_KINDS = ("categorical", "boolean", "text")


@dataclass
class ColumnProfile:
    """What one column of a snapshot looks like."""

    name: str
    kind: ColumnKind
    count: int
    nulls: int
    min: float | str | None = None
    max: float | str | None = None
    mean: float | None = None
    std: float | None = None
    quantiles: dict[str, float] = field(default_factory=dict)
    histogram: dict[str, list[float]] = field(default_factory=dict)
    top: list[dict[str, Any]] = field(default_factory=list)
    distinct: int | None = None
    correlation_with_target: float | None = None
    drift_score: float | None = None
    reference: dict[str, Any] = field(default_factory=dict)
    """The drift reference (drift.py's payload); empty for entity keys and event times."""
    role: ColumnRole = "feature"


@dataclass
class TargetBatch:
    """The target column of one batch, in the form correlations need."""

    values: np.ndarray | None = None  # floats, NaN for null (numeric target)
    codes: np.ndarray | None = None  # category codes, -1 for null (categorical target)
    labels: list[Any] = field(default_factory=list)


def kind_of(name: str, arrow_type: pa.DataType, categorical: frozenset[str]) -> ColumnKind:
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_dictionary(arrow_type) or name in categorical:
        return "categorical"
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return "numeric"
    if pa.types.is_decimal(arrow_type):
        return "numeric"
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        return "timestamp"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "text"
    raise TypeError(
        f"Column {name!r} has type {arrow_type}, which cannot be profiled; "
        "cast it to a number, bool, string or timestamp first"
    )


def as_floats(array: pa.Array) -> np.ndarray:
    """The values as float64, with NaN for nulls."""
    if not pa.types.is_floating(array.type):
        array = pc.cast(array, pa.float64())
    if array.null_count:
        array = pc.fill_null(array, math.nan)
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=float)


def encode_categories(array: pa.Array) -> tuple[np.ndarray, list[Any]]:
    """Category codes (-1 for null) and the labels they index."""
    encoded = array if pa.types.is_dictionary(array.type) else pc.dictionary_encode(array)
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, encoded.dictionary.to_pylist()


def _plain(value: Any) -> Any:
    """A JSON-friendly Python value (no numpy scalars, no NaN)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class ColumnAccumulator:
    """Everything kept about one column while batches stream past."""

    def __init__(
        self,
        name: str,
        kind: ColumnKind,
        sample_size: int,
        nulls: int = 0,
        role: ColumnRole = "feature",
    ) -> None:
        self.name, self.kind, self.nulls, self.role = name, kind, nulls, role
        self.count = 0
        self.moments = Moments()
        self.sample = Reservoir(sample_size)
        self.counts: dict[Any, int] = {}
        self.counts_overflowed = False
        self.pearson = CoMoments()
        self.grouped = GroupedMoments()
        self.time_type: pa.DataType | None = None
        self.time_min: int | None = None  # timestamps as their stored integers
        self.time_max: int | None = None

    def add(
        self,
        array: pa.Array,
        keys: np.ndarray,
        target: TargetBatch | None,
        candidates: np.ndarray | None = None,
    ) -> None:
        """One batch of this column; `candidates`: the only rows that may enter the sample."""
        self.nulls += array.null_count
        self.count += len(array) - array.null_count
        if self.kind == "timestamp":
            self._add_timestamps(array)
            return
        codes: np.ndarray | None = None
        labels: list[Any] = []
        if self.kind in _GROUPED_KINDS:
            codes, labels = encode_categories(array)
            self._count(codes, labels)
        values: np.ndarray | None = None
        if self.kind in ("numeric", "boolean"):
            values = as_floats(array)
            missing = np.isnan(values)
            # NaN is missing data, not a number: count it with the nulls.
            nans = int(missing.sum()) - array.null_count
            self.nulls, self.count = self.nulls + nans, self.count - nans
            present = values[~missing] if nans or array.null_count else values
            self.moments.add(present)
            if self.kind == "numeric":
                self._sample(values, keys, candidates)
        if target is not None and self.role not in KEY_ROLES:
            self._correlate(values, codes, labels, target)

    def _sample(self, values: np.ndarray, keys: np.ndarray, candidates: np.ndarray | None) -> None:
        if candidates is not None:
            values, keys = values[candidates], keys[candidates]
        present = ~np.isnan(values)
        self.sample.add(values[present], keys[present])

    def _correlate(
        self,
        values: np.ndarray | None,
        codes: np.ndarray | None,
        labels: list[Any],
        target: TargetBatch,
    ) -> None:
        if target.values is not None and values is not None:
            self.pearson.add(values, target.values)
        elif target.values is not None and codes is not None and self.kind == "categorical":
            self.grouped.add(codes, labels, target.values)
        elif target.codes is not None and values is not None:
            self.grouped.add(target.codes, target.labels, values)

    def _count(self, codes: np.ndarray, labels: list[Any]) -> None:
        counts = np.bincount(codes[codes >= 0], minlength=len(labels))
        for code in np.flatnonzero(counts):
            label = labels[code]
            self.counts[label] = self.counts.get(label, 0) + int(counts[code])
        self._prune()

    def _prune(self) -> None:
        if len(self.counts) <= DISTINCT_CAP:
            return
        self.counts_overflowed = True
        frequent = self._ranked_counts()[:DISTINCT_CAP]
        self.counts = dict(frequent)

    def _ranked_counts(self) -> list[tuple[Any, int]]:
        return sorted(self.counts.items(), key=lambda item: (-item[1], category_key(item[0])))

    def _add_timestamps(self, array: pa.Array) -> None:
        self.time_type = array.type
        bounds = pc.min_max(array)
        if bounds["min"].is_valid:
            self._extend_time_range(bounds["min"].value, bounds["max"].value)

    def _extend_time_range(self, low: int | None, high: int | None) -> None:
        if low is None or high is None:
            return
        self.time_min = low if self.time_min is None else min(self.time_min, low)
        self.time_max = high if self.time_max is None else max(self.time_max, high)

    def merge(self, other: ColumnAccumulator) -> None:
        if other.kind != self.kind:
            raise ValueError(
                f"Column {self.name!r} is {self.kind} in one partition and {other.kind} in "
                "another; give it one type in the FeatureSet schema"
            )
        self.nulls += other.nulls
        self.count += other.count
        self.time_type = self.time_type or other.time_type
        self._extend_time_range(other.time_min, other.time_max)
        self.moments.merge(other.moments)
        self.sample.merge(other.sample)
        for label, count in other.counts.items():
            self.counts[label] = self.counts.get(label, 0) + count
        self.counts_overflowed |= other.counts_overflowed
        self._prune()
        self.pearson.merge(other.pearson)
        self.grouped.merge(other.grouped)

    def profile(self, bins: int, top: int) -> ColumnProfile:
        column = ColumnProfile(
            name=self.name, kind=self.kind, count=self.count, nulls=self.nulls, role=self.role
        )
        if self.kind in _GROUPED_KINDS:
            ranked = self._ranked_counts()
            column.top = [{"value": _plain(v), "count": n} for v, n in ranked[:top]]
            column.distinct = None if self.counts_overflowed else len(self.counts)
            if self.kind != "text":
                column.reference = categorical_reference(dict(ranked))
        if self.kind in ("numeric", "boolean") and self.moments.n:
            column.mean, column.std = _plain(self.moments.mean), _plain(self.moments.std)
        if self.kind == "numeric" and self.moments.n:
            self._describe_numbers(column, bins)
        if self.time_min is not None and self.time_max is not None:
            column.min, column.max = (
                self._format_time(self.time_min),
                self._format_time(self.time_max),
            )
        if self.pearson.n:
            column.correlation_with_target = _plain(self.pearson.correlation())
        elif self.grouped.groups:
            column.correlation_with_target = _plain(self.grouped.eta())
        if self.role in KEY_ROLES:
            column.reference = {}  # nothing to compare a key against
        return column

    def _describe_numbers(self, column: ColumnProfile, bins: int) -> None:
        low, high = self.moments.min, self.moments.max
        column.min, column.max = _plain(low), _plain(high)
        quantiles = np.quantile(self.sample.values, PERCENTILES)
        quantiles[0], quantiles[-1] = low, high  # the ends are known exactly
        quantiles = np.clip(quantiles, low, high)
        column.quantiles = {key: float(quantiles[i]) for key, i in _QUANTILE_POINTS.items()}
        column.reference = numeric_reference(quantiles, self.moments.n)
        edges = np.linspace(low, high, bins + 1) if high > low else np.array([low - 0.5, low + 0.5])
        counts = _bin_counts(self.sample.values, low, high, len(edges) - 1)
        scale = self.moments.n / self.sample.values.size
        column.histogram = {
            "edges": [float(edge) for edge in edges],
            "counts": [float(round(count * scale)) for count in counts],
        }

    def _format_time(self, value: int) -> str:
        assert self.time_type is not None
        text = pc.cast(pa.array([value], type=self.time_type), pa.string())[0].as_py()
        return re.sub(r"\.0+$", "", str(text))  # whole seconds need no fraction

    def to_state(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "role": self.role,
            "nulls": self.nulls,
            "count": self.count,
            "moments": self.moments.to_state(),
            "sample": self.sample.to_state(),
            "counts": [[label, count] for label, count in self.counts.items()],
            "counts_overflowed": self.counts_overflowed,
            "pearson": self.pearson.to_state(),
            "grouped": self.grouped.to_state(),
            "time": [_time_type_name(self.time_type), self.time_min, self.time_max],
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], sample_size: int) -> ColumnAccumulator:
        column = cls(
            state["name"],
            state["kind"],
            sample_size,
            nulls=state["nulls"],
            role=state.get("role", "feature"),
        )
        column.count = state["count"]
        column.moments = Moments.from_state(state["moments"])
        column.sample = Reservoir.from_state(state["sample"], sample_size)
        column.counts = {label: count for label, count in state["counts"]}
        column.counts_overflowed = state["counts_overflowed"]
        column.pearson = CoMoments.from_state(state["pearson"])
        column.grouped = GroupedMoments.from_state(state["grouped"])
        type_name, column.time_min, column.time_max = state["time"]
        column.time_type = _time_type_from_name(type_name)
        return column


def _bin_counts(values: np.ndarray, low: float, high: float, bins: int) -> np.ndarray:
    """Counts in `bins` equal bins over [low, high], as np.histogram counts them, except that a
    value within rounding noise of an edge counts where the exact value would: the same data
    transformed with parameters fitted in another order (a partitioned run) lands in the same
    bins. Values that sit on an edge are common (discrete data, then scaled)."""
    if not high > low:
        return np.array([values.size] + [0] * (bins - 1))
    with np.errstate(over="ignore", invalid="ignore"):
        position = np.round((values - low) / (high - low) * bins, 9)
    index = np.clip(np.nan_to_num(np.floor(position), nan=0.0), 0, bins - 1).astype(np.int64)
    return np.bincount(index, minlength=bins)


def _time_type_name(arrow_type: pa.DataType | None) -> list[Any] | None:
    if arrow_type is None:
        return None
    if pa.types.is_timestamp(arrow_type):
        return ["timestamp", arrow_type.unit, arrow_type.tz]
    return [str(arrow_type)]  # date32, date64


def _time_type_from_name(name: list[Any] | None) -> pa.DataType | None:
    if name is None:
        return None
    if name[0] == "timestamp":
        return pa.timestamp(name[1], tz=name[2])
    return {"date32[day]": pa.date32(), "date64[ms]": pa.date64()}[name[0]]
