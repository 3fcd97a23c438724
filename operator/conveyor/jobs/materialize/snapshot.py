"""The manifest a materialize run writes last, and the JSON encoding of its outputs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from ...api.v1alpha1 import FeatureSetSpec
from ...contracts.layouts import SnapshotLayout
from ...contracts.manifest import DataFile, ManifestColumn, ManifestSource, SnapshotManifest
from ...features.listing import PREDICTION_LOGS_SOURCE, SourceObject
from ...features.snapshots import code_version, spec_hash

__all__ = ["json_bytes", "manifest_document"]


def manifest_document(
    layout: SnapshotLayout,
    spec: FeatureSetSpec,
    *,
    created: datetime,
    listing: Sequence[SourceObject],
    source_fingerprint: str,
    output_schema: pa.Schema,
    feature_columns: list[str],
    rows: int,
    input_rows: int,
    rejected: int,
    transforms_json: bytes,
    profile_summary: dict[str, Any],
    previous_snapshot: str | None,
    data_files: list[dict[str, Any]],
) -> SnapshotManifest:
    """manifest.json: everything a reader needs to trust and use the snapshot.

    `created` is the time the report shows too (status reports it as createdAt).
    """
    schema = spec.schema_
    return SnapshotManifest(
        id=layout.id,
        featureset=layout.featureset,
        namespace=layout.namespace,
        uri=layout.uri(layout.manifest),
        created=created,
        rows=rows,
        input_rows=input_rows,
        columns=[ManifestColumn(name=field.name, type=str(field.type)) for field in output_schema],
        feature_columns=feature_columns,
        target=schema.target,
        entity_key=schema.entity_key,
        event_time=schema.event_time,
        sources=[_source(item) for item in listing],
        source_fingerprint=source_fingerprint,
        spec_hash=spec_hash(spec),
        rejected=rejected,
        reject_ratio=rejected / input_rows if input_rows else 0.0,
        transforms=layout.uri(layout.transforms),
        transforms_digest="sha256:" + hashlib.sha256(transforms_json).hexdigest(),
        profile=layout.uri(layout.profile),
        profile_summary=profile_summary,
        previous_snapshot=previous_snapshot,
        report=layout.uri(layout.report),
        rejects=layout.uri(layout.rejects),
        code_version=code_version(),
        data=[DataFile.model_validate(item) for item in data_files],
    )


def json_bytes(value: Any, indent: int | None = 2) -> bytes:
    """JSON of outputs that may hold datetimes and numpy scalars (reject samples, profiles)."""
    return json.dumps(value, indent=indent, default=_json_default).encode()


def _source(item: SourceObject) -> ManifestSource:
    return ManifestSource(
        source=item.source,
        uri=item.uri,
        key=item.key,
        size=item.size,
        etag=item.etag,
        kind="predictionLogs" if item.source == PREDICTION_LOGS_SOURCE else "source",
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
