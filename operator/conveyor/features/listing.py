"""What a FeatureSet reads now: the listing of its sources, and the fingerprint of that listing.

The operator compares fingerprints to notice new or changed source objects without running a
Job, and the materialize Job hashes the same listing into the snapshot id, so both call this.
Prediction and feedback logs (`spec.predictionLogs`) are listed for the whole days of the
lookback, so the listing and the read agree.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..api.v1alpha1 import FeatureSetSpec
from ..clients.s3 import ObjectStorage, S3Object
from ..contracts.layouts import PredictionLogLayout, log_object_date, written_by

__all__ = [
    "PREDICTION_LOGS_SOURCE",
    "SourceObject",
    "fingerprint",
    "lookback_start",
    "source_listing",
]

PREDICTION_LOGS_SOURCE = "_predictionLogs"
"""The source name of prediction and feedback log objects in a listing."""


@dataclass(frozen=True)
class SourceObject(S3Object):
    """One object a FeatureSet reads now, with the name of the source that matched it."""

    source: str

    @classmethod
    def matched(cls, source: str, item: S3Object) -> SourceObject:
        return cls(item.bucket, item.key, item.size, item.etag, source=source)

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "uri": self.uri, "size": self.size, "etag": self.etag}


def lookback_start(lookback_days: int, now: datetime | None = None) -> datetime:
    """Midnight UTC of the first day read: whole days, so the listing and the read agree."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    first = today - timedelta(days=lookback_days - 1)
    return datetime(first.year, first.month, first.day, tzinfo=UTC)


def source_listing(
    storage: ObjectStorage,
    spec: FeatureSetSpec,
    namespace: str,
    *,
    now: datetime | None = None,
    logs_until: datetime | None = None,
) -> list[SourceObject]:
    """The objects the spec reads now, in source order then key order; spec.predictionLogs
    names a model of `namespace`, the FeatureSet's, and only its log objects written by
    `logs_until` count: logs arrive every few seconds, and a snapshot takes them in when a
    materialization is asked for, not at each arrival.

    A source whose glob matches nothing contributes nothing: the caller decides whether that is
    an error (the Job: SourceNotFound) or "no data yet" (the operator's poll).
    """
    listing = [
        SourceObject.matched(source.name, item)
        for source in spec.sources
        for item in storage.glob(source.uri)
    ]
    if spec.prediction_logs is not None:
        since = lookback_start(spec.prediction_logs.lookback_days, now).date()
        layout = PredictionLogLayout(namespace, spec.prediction_logs.model)
        for prefix in (layout.predictions, layout.feedback):
            for item in storage.list_objects(storage.settings.bucket, prefix):
                day = log_object_date(item.key)
                if (day is None or day >= since) and written_by(item.key, logs_until):
                    listing.append(SourceObject.matched(PREDICTION_LOGS_SOURCE, item))
    return listing


def fingerprint(listing: Sequence[SourceObject]) -> str:
    """sha256 over the sorted (source, uri, size, etag) listing: changes with any object."""
    rows = sorted((item.source, item.uri, item.size, item.etag) for item in listing)
    return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()
