"""Live model quality: one model's prediction and feedback logs, read as they grow.

`ModelMonitor.refresh()` lists the date partitions the window covers, reads only the log objects
it has not seen (it remembers keys per partition and forgets partitions the window has left),
and keeps fixed-size summaries, never rows:

- per served version and time bucket (the window in `LiveLimits.buckets` slices), a histogram
  or category counts per raw input column with a drift reference in the version's model card
  (`livestats`): drift over the window is the sum of the buckets it still covers;
- predictions and labels waiting for each other, and the labelled pairs of the window
  (`livejoin`), each bounded by a row count.

Its report per version: live metrics over the labelled pairs of the window, their number, and
per-column drift against the card's reference. An object that cannot be read is skipped with a
warning and counted; one that storage failed to return is tried again at the next refresh.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..clients.s3 import ObjectStorage, StorageError
from ..contracts.layouts import PredictionLogLayout
from .drift import CATEGORICAL_KINDS, NUMERIC_KINDS, has_data
from .livejoin import LabelledPairs, Labels, PendingJoin
from .livelog import Feedback, Predictions, UnreadableLog, decode_feedback, decode_predictions
from .livestats import (
    CategoryCounts,
    NumericHistogram,
    categorical_drift,
    classification_metrics,
    numeric_drift,
    regression_metrics,
)

__all__ = [
    "LiveLimits",
    "ModelMonitor",
    "RefreshCounts",
    "SameRequests",
    "VersionReference",
    "VersionReport",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")
Sketch = NumericHistogram | CategoryCounts
Decoded = Predictions | Feedback


@dataclass(frozen=True)
class LiveLimits:
    """How far back the monitor looks and how much it may hold."""

    window_seconds: float = 86_400.0
    buckets: int = 24
    """Slices of the window that drift summaries are kept in (their memory is fixed)."""
    max_pending_predictions: int = 500_000
    max_pending_feedback: int = 500_000
    max_labelled: int = 1_000_000
    readers: int = 4
    """Objects fetched and decoded at once."""

    @property
    def bucket_us(self) -> int:
        return max(int(self.window_seconds * 1e6 / self.buckets), 1)


@dataclass(frozen=True)
class VersionReference:
    """What the monitor compares one served version with: its task and drift references."""

    version: int
    task: str
    references: Mapping[str, Mapping[str, Any]]
    """Raw input column → its drift reference (drift.py's payload)."""

    @classmethod
    def from_card(cls, version: int, task: str, card: Mapping[str, Any]) -> VersionReference:
        """The feature columns of the card's reference profile that have a reference."""
        columns = (card.get("reference_profile") or {}).get("columns") or []
        references = {
            column["name"]: column["reference"]
            for column in columns
            if column.get("role", "feature") == "feature"
            and has_data(column.get("reference") or {})
            and column["reference"].get("kind") in NUMERIC_KINDS | CATEGORICAL_KINDS
        }
        return cls(version, task, references)

    def sketch(self, name: str) -> Sketch:
        reference = self.references[name]
        if reference["kind"] in NUMERIC_KINDS:
            return NumericHistogram.for_reference(reference)
        return CategoryCounts(frozenset(reference["frequencies"]))


@dataclass
class VersionReport:
    """The latest figures of one served version."""

    version: int
    window_seconds: float
    served: int
    """Predictions in the window (read since the monitor started)."""
    labelled: int
    metrics: dict[str, float]
    drift: dict[str, dict[str, float]]
    """Column → method → value: psi and ks (numeric); psi, chi2, p_value, cramers_v."""
    updated: datetime
    same_requests: dict[int, SameRequests] = field(default_factory=dict)
    """Other version → both versions' figures on the labelled requests both answered (a
    shadow answers its champion's requests)."""


@dataclass(frozen=True)
class SameRequests:
    """Two versions' live metrics on the same labelled requests."""

    labelled: int
    metrics: dict[str, float]
    """This version's."""
    other_metrics: dict[str, float]
    """The other version's."""


@dataclass
class RefreshCounts:
    """What one refresh read: objects and records by kind, and what it skipped."""

    objects: dict[str, int] = field(default_factory=lambda: {"predictions": 0, "feedback": 0})
    unreadable: dict[str, int] = field(default_factory=lambda: {"predictions": 0, "feedback": 0})
    records: int = 0
    refused: int = 0
    failed: int = 0
    """Objects storage did not return: tried again next time."""


class ModelMonitor:
    """One model's live quality, refreshed from its logs; not thread-safe (one caller)."""

    def __init__(
        self,
        storage: ObjectStorage,
        bucket: str,
        layout: PredictionLogLayout,
        limits: LiveLimits | None = None,
    ) -> None:
        self.storage, self.bucket, self.layout = storage, bucket, layout
        self.model = f"{layout.namespace}/{layout.model}"
        self.limits = limits or LiveLimits()
        self.seen: dict[str, set[str]] = {}
        """Keys read, per date partition prefix."""
        self.sketches: dict[int, dict[int, dict[str, Sketch]]] = {}
        """version → time bucket → column → summary."""
        self.served: dict[int, dict[int, int]] = {}
        """version → time bucket → predictions."""
        self.labels = Labels()
        self.pending: PendingJoin | None = None
        self.pairs = LabelledPairs()
        self.totals = RefreshCounts()

    def refresh(
        self, references: Mapping[int, VersionReference], now: datetime
    ) -> tuple[list[VersionReport], RefreshCounts]:
        """Read the new log objects of `references`' versions; their reports and the counts.

        Raises StorageError when a listing fails (nothing is half-read: the next refresh
        lists again)."""
        counts = RefreshCounts()
        since_us = int((now.timestamp() - self.limits.window_seconds) * 1e6)
        days = _days(now, self.limits.window_seconds)
        self._forget_before(days[0])
        if self.pending is None and references:
            task = next(iter(references.values())).task
            self.pending = PendingJoin(task == "classification", self.labels)
        work = self._new_objects(references, days)
        for (kind, version, key), result in self._read(work, references):
            reference = references.get(version)
            self._take(kind, version, key, result, reference, since_us, counts)
            # A join trims the waiting predictions to the bound, and most never get a label:
            # join again only once half as many again have come, not after every object.
            bound = self.limits.max_pending_predictions
            if self.pending is not None and self.pending.waiting > bound + bound // 2:
                self._join(since_us)
        self._join(since_us)
        self.pairs.keep(since_us, self.limits.max_labelled)
        self._forget_buckets(since_us)
        reports = [self._report(ref, since_us, now) for ref in references.values()]
        reports = [r for r in reports if r.served or r.labelled]
        self._compare(reports, references)
        return reports, counts

    def _compare(
        self, reports: list[VersionReport], references: Mapping[int, VersionReference]
    ) -> None:
        """Each pair of reported versions' figures on the requests both answered."""
        for report in reports:
            task = references[report.version].task
            ours = self.pairs.of(report.version)
            for other in reports:
                if other.version == report.version:
                    continue
                theirs = self.pairs.of(other.version)
                shared_ours, shared_theirs = ours.shared(theirs), theirs.shared(ours)
                if len(shared_ours) and len(shared_theirs):
                    report.same_requests[other.version] = SameRequests(
                        labelled=min(len(shared_ours), len(shared_theirs)),
                        metrics=_metrics(task, shared_ours),
                        other_metrics=_metrics(task, shared_theirs),
                    )

    def _join(self, since_us: int) -> None:
        if self.pending is None:
            return
        limits = self.limits
        joined = self.pending.join(
            since_us, limits.max_pending_predictions, limits.max_pending_feedback
        )
        self.pairs.extend(joined)
        self.pairs.keep(since_us, limits.max_labelled)

    # Reading -----------------------------------------------------------------------------------

    def _new_objects(
        self, references: Mapping[int, VersionReference], days: list[date]
    ) -> list[tuple[str, int, str]]:
        # Labels first: predictions read next find theirs waiting and join at once.
        prefixes = [("feedback", 0, f"{self.layout.feedback}date={day}/") for day in days]
        prefixes += [
            ("predictions", version, f"{self.layout.predictions}version={version}/date={day}/")
            for version in sorted(references)
            for day in days
        ]
        work = []
        for kind, version, prefix in prefixes:
            seen = self.seen.setdefault(prefix, set())
            listed = self.storage.list_objects(self.bucket, prefix)
            work += [(kind, version, item.key) for item in listed if item.key not in seen]
        return work

    def _read(
        self, work: list[tuple[str, int, str]], references: Mapping[int, VersionReference]
    ) -> Iterator[tuple[tuple[str, int, str], Decoded | Exception]]:
        """Each object fetched and decoded on the reader threads (zlib and pyarrow let go of
        the GIL), in order."""

        def read(item: tuple[str, int, str]) -> Decoded:
            kind, version, key = item
            data = self.storage.get_bytes(self.bucket, key)
            if kind == "feedback":
                return decode_feedback(data)
            return decode_predictions(data, references[version].references)

        return _bounded_map(read, work, self.limits.readers)

    def _take(
        self,
        kind: str,
        version: int,
        key: str,
        result: Decoded | Exception,
        reference: VersionReference | None,
        since_us: int,
        counts: RefreshCounts,
    ) -> None:
        where = f"s3://{self.bucket}/{key}"
        if isinstance(result, StorageError):
            counts.failed += 1  # not marked seen: read again next time
            logger.warning("Model %s: could not read log object %s: %s", self.model, where, result)
            return
        self.seen[key[: key.rindex("/") + 1]].add(key)
        counts.objects[kind] += 1
        if isinstance(result, Exception):
            counts.unreadable[kind] += 1
            logger.warning(
                "Model %s: skipped unreadable log object %s: %s", self.model, where, result
            )
            return
        counts.records += len(result)
        if isinstance(result, Feedback):
            if self.pending is not None:
                self.pending.add_feedback(result)
            return
        counts.refused += result.refused
        if self.pending is not None:
            self.pending.add_predictions(version, result)
        if reference is not None:
            self._sketch(reference, result.time_us, result.inputs, since_us)

    def _sketch(
        self,
        reference: VersionReference,
        time_us: np.ndarray,
        inputs: Mapping[str, pa.Array],
        since_us: int,
    ) -> None:
        buckets = time_us // self.limits.bucket_us
        for bucket in np.unique(buckets[time_us >= since_us]).tolist():
            rows = None if (buckets == bucket).all() else pa.array(buckets == bucket)
            served = self.served.setdefault(reference.version, {})
            served[bucket] = served.get(bucket, 0) + int((buckets == bucket).sum())
            sketches = self.sketches.setdefault(reference.version, {}).setdefault(bucket, {})
            for name, values in inputs.items():
                values = values if rows is None else values.filter(rows)
                sketch = sketches.setdefault(name, reference.sketch(name))
                if isinstance(sketch, NumericHistogram):
                    sketch.add(_floats(values))
                else:
                    sketch.add(values)

    def _forget_before(self, first_day: date) -> None:
        for prefix in [p for p in self.seen if _prefix_day(p) < first_day]:
            del self.seen[prefix]

    def _forget_buckets(self, since_us: int) -> None:
        oldest = since_us // self.limits.bucket_us
        per_version: list[dict[int, Any]] = [*self.sketches.values(), *self.served.values()]
        for buckets in per_version:
            for bucket in [b for b in buckets if b < oldest]:
                del buckets[bucket]

    # Reporting ---------------------------------------------------------------------------------

    def _report(self, reference: VersionReference, since_us: int, now: datetime) -> VersionReport:
        version = reference.version
        oldest = since_us // self.limits.bucket_us
        pairs = self.pairs.of(version)
        metrics = _metrics(reference.task, pairs)
        buckets = [s for b, s in self.sketches.get(version, {}).items() if b >= oldest]
        drift = {}
        for name, payload in reference.references.items():
            merged = _merged(reference.sketch(name), (b[name] for b in buckets if name in b))
            if isinstance(merged, NumericHistogram):
                scores = numeric_drift(payload, merged)
            else:
                scores = categorical_drift(payload, merged)
            if scores:
                drift[name] = scores
        served = sum(n for b, n in self.served.get(version, {}).items() if b >= oldest)
        return VersionReport(
            version=version,
            window_seconds=self.limits.window_seconds,
            served=served,
            labelled=len(pairs),
            metrics=metrics,
            drift=drift,
            updated=now,
        )


def _metrics(task: str, pairs: LabelledPairs) -> dict[str, float]:
    if task == "classification":
        return classification_metrics(pairs.truth, pairs.predicted, pairs.probability)
    return regression_metrics(pairs.truth, pairs.predicted)


def _merged(into: Sketch, parts: Iterable[Sketch]) -> Sketch:
    for part in parts:
        into.merge(part)  # type: ignore[arg-type]  # one column's sketches share a type
    return into


def _floats(values: pa.Array) -> np.ndarray:
    """Numbers as float64, NaN for nulls and for text that is not a number."""
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return np.array([_to_float(v) for v in values.to_pylist()], dtype=np.float64)
    if pa.types.is_null(values.type):
        return np.full(len(values), np.nan)
    filled = pc.fill_null(pc.cast(values, pa.float64()), math.nan)
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=np.float64)


def _to_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _days(now: datetime, window_seconds: float) -> list[date]:
    first = (now - timedelta(seconds=window_seconds)).astimezone(UTC).date()
    last = now.astimezone(UTC).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _prefix_day(prefix: str) -> date:
    return date.fromisoformat(prefix.rstrip("/").rsplit("date=", 1)[1])


def _bounded_map(
    function: Callable[[T], Decoded], items: list[T], workers: int
) -> Iterator[tuple[T, Decoded | Exception]]:
    """`function` over `items` on `workers` threads, at most 2 * workers in flight, in order:
    a cold start over thousands of objects holds a few of them in memory, not all."""
    if not items:
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="monitor-read") as pool:
        flight: list[tuple[T, Future[Decoded]]] = []
        queue = iter(items)
        for item in queue:
            flight.append((item, pool.submit(function, item)))
            if len(flight) >= 2 * workers:
                yield _result(*flight.pop(0))
        for item, future in flight:
            yield _result(item, future)


def _result(item: T, future: Future[Decoded]) -> tuple[T, Decoded | Exception]:
    try:
        return item, future.result()
    except (StorageError, UnreadableLog, pa.ArrowException) as error:
        return item, error
