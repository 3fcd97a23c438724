"""manifest.json: the document that makes a feature snapshot exist.

The materialize Job writes it last; the operator reads it to report the snapshot, the train Job
to find the data, the feature columns and the keys. Every key is snake_case on the wire.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from .wire import WireModel

__all__ = ["MANIFEST_KIND", "DataFile", "ManifestColumn", "ManifestSource", "SnapshotManifest"]

MANIFEST_KIND = "FeatureSnapshot"


class ManifestColumn(WireModel):
    name: str
    type: str
    """The Arrow type, as text."""


class ManifestSource(WireModel):
    """One object the snapshot was read from."""

    source: str
    """The FeatureSet source that matched it (or `_predictionLogs`)."""
    uri: str
    key: str
    size: int
    etag: str
    kind: Literal["source", "predictionLogs"] = "source"


class DataFile(WireModel):
    """One Parquet part of the features."""

    key: str
    uri: str
    rows: int = 0


class SnapshotManifest(WireModel):
    kind: Literal["FeatureSnapshot"] = "FeatureSnapshot"
    id: str
    featureset: str
    namespace: str
    uri: str
    """This manifest's own URI."""
    created: datetime
    rows: int
    input_rows: int
    """Rows read, before rejects, filters and de-duplication."""
    columns: list[ManifestColumn] = Field(default_factory=list)
    feature_columns: list[str]
    target: str | None = None
    entity_key: str | None = None
    event_time: str | None = None
    sources: list[ManifestSource] = Field(default_factory=list)
    source_fingerprint: str
    spec_hash: str
    """sha256 of the data-deciding part of the definition (FeatureSetStatus.specHash)."""
    rejected: int = 0
    reject_ratio: float = 0.0
    transforms: str
    """URI of the fitted transforms."""
    transforms_digest: str
    profile: str
    """URI of the data profile."""
    profile_summary: dict[str, Any] = Field(default_factory=dict)
    previous_snapshot: str | None = None
    """The snapshot the drift scores compare against."""
    report: str | None = None
    """URI of the HTML data report."""
    rejects: str | None = None
    """URI of the sample of rejected rows."""
    code_version: str
    data: list[DataFile] = Field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """What the materialize Job reports on success (SnapshotRef fields, camelCase)."""
        return {
            "id": self.id,
            "uri": self.uri,
            "rows": self.rows,
            "createdAt": self.model_dump(mode="json", include={"created"})["created"],
            "reportUrl": self.report,
            "profile": self.profile_summary,
            "rejected": self.rejected,
            "rejectRatio": self.reject_ratio,
            "sourceFingerprint": self.source_fingerprint,
            "specHash": self.spec_hash,
            "featureColumns": self.feature_columns,
        }
