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

Roles: each column is a ``feature``, the ``target``, the ``entityKey`` or the ``eventTime``.
Entity keys and event times name rows; they are counted and ranged but get no drift reference,
no drift score and no correlation (every new batch of entities would look like drift).

A snapshot's profile has two parts: ``columns``, the conformed raw columns, and ``features``, the
model's input columns after the transforms (the snapshot's data/), profiled by a second builder
(``include_target=False``: the target only feeds the correlations). ``finish(features=...)``
scores each part against the same part of the previous profile, which is right when both went
through the same fitted transforms (serving drift: live rows through the model's transforms).
Two snapshots each fit their own, so materialization scores the features differently (see
jobs/materialize/transform_pass.py). Features are profiled with ``feature_sample_size`` values
per column, so a oneHot with thousands of outputs stays within ``FEATURE_SAMPLE_BUDGET`` sampled
values.
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
    KEY_ROLES,
    ColumnAccumulator,
    ColumnKind,
    ColumnProfile,
    ColumnRole,
    TargetBatch,
    as_floats,
    encode_categories,
    kind_of,
)

__all__ = [
    "DISTINCT_CAP",
    "FEATURE_SAMPLE_BUDGET",
    "KEY_ROLES",
    "ColumnKind",
    "ColumnProfile",
    "ColumnRole",
    "Profile",
    "ProfileBuilder",
    "drift_scores",
    "feature_sample_size",
]


FORMAT_VERSION = 2
_READABLE_VERSIONS = (1, 2)  # version 1: no roles, no features, no rejects
DEFAULT_SAMPLE_SIZE = 100_000
FEATURE_SAMPLE_BUDGET = 2_000_000
"""Sampled values kept across all the columns of a features profile (16 bytes each)."""
_TARGET_KINDS = {
    "numeric": "regression",
    "categorical": "classification",
    "boolean": "classification",
    "text": "classification",
}


def feature_sample_size(columns: int, most: int = DEFAULT_SAMPLE_SIZE) -> int:
    """Values sampled per column when ``columns`` columns share ``FEATURE_SAMPLE_BUDGET``."""
    return max(1_000, min(most, FEATURE_SAMPLE_BUDGET // max(columns, 1)))


@dataclass
class Profile:
    """The profile of a whole snapshot; stored beside it as JSON."""

    rows: int
    columns: dict[str, ColumnProfile]
    target: str | None = None
    target_kind: str | None = None  # "classification", "regression", or None without a target
    target_distribution: dict[str, Any] = field(default_factory=dict)
    created_from: str | None = None
    features: Profile | None = None
    """The model's input columns after the transforms (rows and columns only), when profiled."""
    rejected: int = 0
    """Rows rejected by the schema or by a transform (a non-finite result)."""
    reject_reasons: list[dict[str, Any]] = field(default_factory=list)
    """Each rule broken, most rows first: {"reason", "rows", "example"} (the first offending
    value, or None); a row breaking two rules counts under both."""

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "rows": self.rows,
            "target": self.target,
            "target_kind": self.target_kind,
            "target_distribution": self.target_distribution,
            "created_from": self.created_from,
            "rejects": {"rows": self.rejected, "reasons": self.reject_reasons},
            "columns": _columns_json(self),
            "features": (
                {"rows": self.features.rows, "columns": _columns_json(self.features)}
                if self.features is not None
                else None
            ),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Profile:
        version = data.get("version", FORMAT_VERSION)
        if version not in _READABLE_VERSIONS:
            raise ValueError(
                f"Profile format version {version} is not supported; expected one of "
                f"{', '.join(map(str, _READABLE_VERSIONS))}"
            )
        features = data.get("features")
        rejects = data.get("rejects") or {}
        return cls(
            rows=data["rows"],
            columns=_columns_from_json(data["columns"]),
            target=data.get("target"),
            target_kind=data.get("target_kind"),
            target_distribution=dict(data.get("target_distribution") or {}),
            created_from=data.get("created_from"),
            features=(
                cls(rows=features["rows"], columns=_columns_from_json(features["columns"]))
                if features
                else None
            ),
            rejected=int(rejects.get("rows", 0)),
            reject_reasons=list(rejects.get("reasons") or []),
        )

    def drift_scored(self) -> list[tuple[str, float]]:
        """(name, drift score) of every scored column: the raw columns, then the features (a
        name may come twice: a raw column and the feature made from it in place)."""
        parts = [self, self.features] if self.features is not None else [self]
        return [
            (name, column.drift_score)
            for part in parts
            for name, column in part.columns.items()
            if column.drift_score is not None and column.role not in KEY_ROLES
        ]

    def summary(self, drift_alert: float = 0.2) -> dict[str, Any]:
        """The FeatureSetStatus.profile fields (camelCase); the caller sets ``rejectedRows``.

        ``columns`` and ``nullCells`` count the model's inputs (the features, after imputation)
        when they were profiled; drift covers raw columns and features, never the entity key or
        event time: the largest score of either, and every column over ``drift_alert``.
        """
        if self.features is not None:
            inputs = list(self.features.columns.values())
        else:
            inputs = [column for column in self.columns.values() if column.role == "feature"]
        scores = self.drift_scored()
        drifted = [name for name, score in scores if score > drift_alert]
        return {
            "columns": len(inputs),
            "rejectedRows": 0,
            "nullCells": sum(column.nulls for column in inputs),
            "maxDriftScore": max((score for _, score in scores), default=None),
            "driftedColumns": list(dict.fromkeys(drifted)),
        }


def _columns_json(profile: Profile) -> list[dict[str, Any]]:
    return [dataclasses.asdict(column) for column in profile.columns.values()]


def _columns_from_json(columns: list[Mapping[str, Any]]) -> dict[str, ColumnProfile]:
    parsed = [ColumnProfile(**column) for column in columns]
    return {column.name: column for column in parsed}


class ProfileBuilder:
    """Accumulates a profile batch by batch; see the module docstring for what is exact."""

    def __init__(
        self,
        *,
        target: str | None,
        categorical: Collection[str] = (),
        entity_key: str | None = None,
        event_time: str | None = None,
        include_target: bool = True,
        bins: int = 20,
        top: int = 10,
        sample_size: int = DEFAULT_SAMPLE_SIZE,
        seed: int = 0,
    ) -> None:
        """``include_target=False``: the target feeds the correlations but is not profiled."""
        if bins < 1 or top < 1 or sample_size < 1:
            raise ValueError("bins, top and sample_size must each be at least 1")
        self.target = target
        self.categorical = frozenset(categorical)
        self.entity_key, self.event_time = entity_key, event_time
        self.include_target = include_target
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
            if name == self.target and not self.include_target:
                continue
            accumulator = self._columns.get(name)
            if accumulator is None:
                kind = kind_of(name, array.type, self.categorical)
                accumulator = ColumnAccumulator(
                    name, kind, self.sample_size, nulls=self.rows, role=self.role_of(name)
                )
                self._columns[name] = accumulator
                candidates = None  # a new column's sample takes every row
            accumulator.add(array, keys, target if name != self.target else None, candidates)
        for name, accumulator in self._columns.items():
            if name not in batch.schema.names:
                accumulator.nulls += batch.num_rows
        self.rows += batch.num_rows

    def role_of(self, name: str) -> ColumnRole:
        if name == self.entity_key:
            return "entityKey"
        if name == self.event_time:
            return "eventTime"
        return "target" if name == self.target else "feature"

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
        settings = (self.target, self.sample_size, self.include_target)
        if settings != (other.target, other.sample_size, other.include_target):
            raise ValueError(
                "Only builders with the same target, include_target and sample_size can be merged"
            )
        for name, accumulator in self._columns.items():
            if name not in other._columns:
                accumulator.nulls += other.rows
        for name, theirs in other._columns.items():
            mine = self._columns.get(name)
            if mine is None:
                mine = ColumnAccumulator(
                    name, theirs.kind, self.sample_size, nulls=self.rows, role=theirs.role
                )
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
            "entity_key": self.entity_key,
            "event_time": self.event_time,
            "include_target": self.include_target,
            "bins": self.bins,
            "top": self.top,
            "sample_size": self.sample_size,
            "rows": self.rows,
            "rng": self._rng.bit_generator.state,
            "columns": [column.to_state() for column in self._columns.values()],
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ProfileBuilder:
        if state.get("version") not in _READABLE_VERSIONS:
            raise ValueError(f"Profile state version {state.get('version')} is not supported")
        builder = cls(
            target=state["target"],
            categorical=state["categorical"],
            entity_key=state.get("entity_key"),
            event_time=state.get("event_time"),
            include_target=state.get("include_target", True),
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

    def finish(
        self,
        *,
        previous: Profile | None = None,
        snapshot_id: str | None = None,
        features: ProfileBuilder | None = None,
    ) -> Profile:
        """The profile; with ``previous``, each column's drift score (PSI) against it.

        ``features``: the builder that profiled the transformed rows; its profile becomes
        ``Profile.features``, scored against ``previous.features``.
        """
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
        if features is not None:
            before = previous.features if previous is not None else None
            profile.features = features.finish(previous=before)
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
    scored; timestamps are skipped (time always moves), and so are entity keys and event times
    of any kind (they name rows). With ``method="ks"`` categorical columns get the total
    variation distance, which shares KS's 0..1 scale.
    """
    if method not in ("psi", "ks"):
        raise ValueError(f"Unknown drift method {method!r}; use 'psi' or 'ks'")
    names = list(current.columns) if columns is None else list(columns)
    scores: dict[str, float] = {}
    for name in names:
        before, after = previous.columns.get(name), current.columns.get(name)
        if before is None or after is None:
            continue
        if before.role in KEY_ROLES or after.role in KEY_ROLES:
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
