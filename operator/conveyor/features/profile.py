"""Streaming, bounded-memory data profiles of a snapshot's columns.

A ``ProfileBuilder`` sees the snapshot one record batch at a time (``add``), partitions profiled
by the pods of an Indexed Job are combined with ``merge``, and ``finish`` produces a ``Profile``.
Memory depends on the number of columns, ``sample_size`` and the category cap, never on rows.

Exact (and exactly mergeable): row and null counts, min, max, mean, std (population, ddof=0;
streaming moments combined with Chan's formula), category counts up to ``DISTINCT_CAP`` distinct
values, and the correlation with the target (streaming co-moments).

Approximate: quantiles, histogram counts and the drift reference come from a uniform sample of
``sample_size`` values per column, chosen by a seeded random key per row (bottom-k sampling, so
two samples merge into a sample of the union). Below ``sample_size`` non-null values they are
exact. Histogram edges always span the exact min and max. Beyond ``DISTINCT_CAP`` distinct values
only the most frequent categories are kept, so counts of rare categories and ``distinct`` are lost.
The same data in the same batches always gives the same profile (snapshots are reproducible).

Correlation with the target: Pearson's r when both are numeric (booleans count as 0/1); the
correlation ratio eta (0..1, how much of the numeric variable's variance the categories explain)
when one side is categorical; none between two categorical columns or for text and timestamps.
NaN counts as null.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from .drift import category_key, has_data, ks_statistic, psi, total_variation
from .profile_columns import (
    DISTINCT_CAP,
    ColumnAccumulator,
    ColumnKind,
    ColumnProfile,
    TargetBatch,
    as_floats,
    encode_categories,
    kind_of,
)

__all__ = [
    "DISTINCT_CAP",
    "ColumnKind",
    "ColumnProfile",
    "Profile",
    "ProfileBuilder",
    "drift_scores",
]


FORMAT_VERSION = 1
_TARGET_KINDS = {
    "numeric": "regression",
    "categorical": "classification",
    "boolean": "classification",
    "text": "classification",
}


@dataclass
class Profile:
    """The profile of a whole snapshot; stored beside it as JSON."""

    rows: int
    columns: dict[str, ColumnProfile]
    target: str | None = None
    target_kind: str | None = None  # "classification", "regression", or None without a target
    target_distribution: dict[str, Any] = field(default_factory=dict)
    created_from: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "rows": self.rows,
            "target": self.target,
            "target_kind": self.target_kind,
            "target_distribution": self.target_distribution,
            "created_from": self.created_from,
            "columns": [dataclasses.asdict(column) for column in self.columns.values()],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Profile:
        version = data.get("version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise ValueError(f"Profile format version {version} is not supported; expected 1")
        columns = [ColumnProfile(**column) for column in data["columns"]]
        return cls(
            rows=data["rows"],
            columns={column.name: column for column in columns},
            target=data.get("target"),
            target_kind=data.get("target_kind"),
            target_distribution=dict(data.get("target_distribution") or {}),
            created_from=data.get("created_from"),
        )

    def summary(self, drift_alert: float = 0.2) -> dict[str, Any]:
        """The FeatureSetStatus.profile fields (camelCase); the caller sets ``rejectedRows``."""
        scores = {
            name: column.drift_score
            for name, column in self.columns.items()
            if column.drift_score is not None
        }
        return {
            "columns": len(self.columns),
            "rejectedRows": 0,
            "nullCells": sum(column.nulls for column in self.columns.values()),
            "maxDriftScore": max(scores.values()) if scores else None,
            "driftedColumns": [name for name, score in scores.items() if score > drift_alert],
        }


class ProfileBuilder:
    """Accumulates a profile batch by batch; see the module docstring for what is exact."""

    def __init__(
        self,
        *,
        target: str | None,
        categorical: Collection[str] = (),
        bins: int = 20,
        top: int = 10,
        sample_size: int = 100_000,
        seed: int = 0,
    ) -> None:
        if bins < 1 or top < 1 or sample_size < 1:
            raise ValueError("bins, top and sample_size must each be at least 1")
        self.target = target
        self.categorical = frozenset(categorical)
        self.bins, self.top, self.sample_size = bins, top, sample_size
        self.rows = 0
        self._rng = np.random.default_rng(seed)
        self._columns: dict[str, ColumnAccumulator] = {}

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Profile one more batch of rows (a Table is taken chunk by chunk)."""
        if isinstance(batch, pa.Table):
            for part in batch.to_batches():
                self.add(part)
            return
        keys = self._rng.random(batch.num_rows)
        target = self._target_values(batch)
        candidates = self._sample_candidates(keys)
        for name, array in zip(batch.schema.names, batch.columns, strict=True):
            accumulator = self._columns.get(name)
            if accumulator is None:
                kind = kind_of(name, array.type, self.categorical)
                accumulator = ColumnAccumulator(name, kind, self.sample_size, nulls=self.rows)
                self._columns[name] = accumulator
                candidates = None  # a new column's sample takes every row
            accumulator.add(array, keys, target if name != self.target else None, candidates)
        for name, accumulator in self._columns.items():
            if name not in batch.schema.names:
                accumulator.nulls += batch.num_rows
        self.rows += batch.num_rows

    def _sample_candidates(self, keys: np.ndarray) -> np.ndarray | None:
        """The rows whose key could enter any column's sample; None: every row could.

        One comparison per batch instead of one per column: once the samples are full, only a
        few rows per batch beat the largest key kept, so each column looks at those alone.
        """
        samples = [c.sample for c in self._columns.values() if c.kind == "numeric"]
        if not samples:
            return None
        limit = max(sample.threshold for sample in samples)
        return None if limit == math.inf else np.flatnonzero(keys < limit)

    def merge(self, other: ProfileBuilder) -> None:
        """Fold in a builder that profiled other rows (another partition).

        Give each partition its own ``seed`` (its index): the samples stay independent.
        """
        if (self.target, self.sample_size) != (other.target, other.sample_size):
            raise ValueError("Only builders with the same target and sample_size can be merged")
        for name, accumulator in self._columns.items():
            if name not in other._columns:
                accumulator.nulls += other.rows
        for name, theirs in other._columns.items():
            mine = self._columns.get(name)
            if mine is None:
                mine = ColumnAccumulator(name, theirs.kind, self.sample_size, nulls=self.rows)
                self._columns[name] = mine
            mine.merge(theirs)
        self.rows += other.rows

    def to_state(self) -> dict[str, Any]:
        """Everything accumulated so far as JSON-friendly data (no pickle).

        A partition's pod writes it; the pod that combines the partitions reads each back with
        ``from_state`` and merges them.
        """
        return {
            "version": FORMAT_VERSION,
            "target": self.target,
            "categorical": sorted(self.categorical),
            "bins": self.bins,
            "top": self.top,
            "sample_size": self.sample_size,
            "rows": self.rows,
            "rng": self._rng.bit_generator.state,
            "columns": [column.to_state() for column in self._columns.values()],
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ProfileBuilder:
        if state.get("version") != FORMAT_VERSION:
            raise ValueError(f"Profile state version {state.get('version')} is not supported")
        builder = cls(
            target=state["target"],
            categorical=state["categorical"],
            bins=state["bins"],
            top=state["top"],
            sample_size=state["sample_size"],
        )
        builder.rows = state["rows"]
        builder._rng.bit_generator.state = state["rng"]
        for column_state in state["columns"]:
            column = ColumnAccumulator.from_state(column_state, builder.sample_size)
            builder._columns[column.name] = column
        return builder

    def finish(self, *, previous: Profile | None = None, snapshot_id: str | None = None) -> Profile:
        """The profile; with ``previous``, each column's drift score (PSI) against it."""
        target = self._columns.get(self.target) if self.target else None
        target_kind = _TARGET_KINDS.get(target.kind) if target is not None else None
        if target_kind is None:
            target = None  # a timestamp is no target
        columns = {
            name: accumulator.profile(self.bins, self.top)
            for name, accumulator in self._columns.items()
        }
        distribution: dict[str, Any] = {}
        if target is not None and target_kind == "classification":
            classes = target._ranked_counts()
            distribution = {"classes": {category_key(label): n for label, n in classes}}
        elif target is not None:
            column = columns[target.name]
            distribution = {
                key: getattr(column, key)
                for key in ("count", "nulls", "min", "max", "mean", "std", "quantiles", "histogram")
            }
        profile = Profile(
            rows=self.rows,
            columns=columns,
            target=self.target if target is not None else None,
            target_kind=target_kind,
            target_distribution=distribution,
            created_from=snapshot_id,
        )
        if previous is not None:
            for name, score in drift_scores(previous, profile).items():
                columns[name].drift_score = score
        return profile

    def _target_values(self, batch: pa.RecordBatch) -> TargetBatch | None:
        if self.target is None or self.target not in batch.schema.names:
            return None
        array = batch.column(self.target)
        kind = kind_of(self.target, array.type, self.categorical)
        if kind == "timestamp":
            return None
        if kind == "numeric":
            return TargetBatch(values=as_floats(array))
        codes, labels = encode_categories(array)
        return TargetBatch(codes=codes, labels=labels)


def drift_scores(
    previous: Profile,
    current: Profile,
    method: Literal["psi", "ks"] = "psi",
    columns: Collection[str] | None = None,
) -> dict[str, float]:
    """Per column drift of ``current`` against ``previous``.

    Only columns present in both, of the same comparable kind, with data on both sides are
    scored; timestamps are skipped (time always moves). With ``method="ks"`` categorical columns
    get the total variation distance, which shares KS's 0..1 scale.
    """
    if method not in ("psi", "ks"):
        raise ValueError(f"Unknown drift method {method!r}; use 'psi' or 'ks'")
    names = list(current.columns) if columns is None else list(columns)
    scores: dict[str, float] = {}
    for name in names:
        before, after = previous.columns.get(name), current.columns.get(name)
        if before is None or after is None:
            continue
        if not (has_data(before.reference) and has_data(after.reference)):
            continue
        if before.reference.get("kind") != after.reference.get("kind"):
            continue
        if method == "psi":
            scores[name] = psi(before.reference, after.reference)
        elif after.reference["kind"] == "numeric":
            scores[name] = ks_statistic(before.reference, after.reference)
        else:
            scores[name] = total_variation(before.reference, after.reference)
    return scores
