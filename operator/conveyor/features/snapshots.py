"""Snapshot ids, the storage layout, and the manifest that makes a snapshot exist.

    s3://<bucket>/features/<namespace>/<featureset>/
        snapshots/<id>/data/part-00000.parquet   the features (Parquet, one or more parts)
        snapshots/<id>/transforms.json           fitted transform parameters (serving loads them)
        snapshots/<id>/profile.json              the data profile (drift reference of the next one)
        snapshots/<id>/report.html               the data report for people
        snapshots/<id>/rejects.jsonl             a sample of rejected rows with reasons
        snapshots/<id>/manifest.json             written LAST: a snapshot without one does not exist
        staging/<id>/part-<i>/...                partitions of an Indexed Job, removed by combine

The id is the first 16 hex digits of sha256 over the canonical JSON of the definition fields
that decide the data, the source fingerprint and the code version: the same inputs and
definition give the same id, and a re-run finds the manifest and writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from ..api.v1alpha1.featureset import FeatureSetSpec

__all__ = [
    "DATA_FIELDS",
    "MANIFEST_KIND",
    "SnapshotLayout",
    "canonical_json",
    "code_version",
    "definition",
    "snapshot_id",
    "snapshot_summary",
    "spec_hash",
    "utc_now",
]

MANIFEST_KIND = "FeatureSnapshot"
# The spec fields that change the data; materialization settings (schedule, parallelism,
# batch size, resources) and the history limit do not.
DATA_FIELDS = frozenset(
    {"sources", "prediction_logs", "schema_", "transforms", "deduplicate", "validation"}
)


def code_version() -> str:
    """conveyor.__version__ when set, else the installed distribution's version."""
    version = getattr(sys.modules.get("conveyor"), "__version__", None)
    if version:
        return str(version)
    try:
        return metadata.version("conveyor")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def definition(spec: FeatureSetSpec) -> dict[str, Any]:
    """The data-deciding part of the spec, in wire form (camelCase, no nulls)."""
    return spec.model_dump(mode="json", by_alias=True, exclude_none=True, include=set(DATA_FIELDS))


def spec_hash(spec: FeatureSetSpec) -> str:
    """sha256 of the data-deciding definition (FeatureSetStatus.specHash)."""
    return hashlib.sha256(canonical_json(definition(spec))).hexdigest()


def snapshot_id(spec: FeatureSetSpec, source_fingerprint: str, version: str | None = None) -> str:
    payload = {
        "definition": definition(spec),
        "sources": source_fingerprint,
        "code": version or code_version(),
    }
    return hashlib.sha256(canonical_json(payload)).hexdigest()[:16]


@dataclass(frozen=True)
class SnapshotLayout:
    """Keys of one snapshot (and its staging area) in the Conveyor bucket."""

    bucket: str
    namespace: str
    featureset: str
    id: str

    @property
    def root(self) -> str:
        return f"features/{self.namespace}/{self.featureset}/"

    @property
    def prefix(self) -> str:
        return f"{self.root}snapshots/{self.id}/"

    @property
    def manifest(self) -> str:
        return self.prefix + "manifest.json"

    @property
    def transforms(self) -> str:
        return self.prefix + "transforms.json"

    @property
    def profile(self) -> str:
        return self.prefix + "profile.json"

    @property
    def report(self) -> str:
        return self.prefix + "report.html"

    @property
    def rejects(self) -> str:
        return self.prefix + "rejects.jsonl"

    def data_part(self, number: int) -> str:
        return f"{self.prefix}data/part-{number:05d}.parquet"

    @property
    def staging(self) -> str:
        return f"{self.root}staging/{self.id}/"

    def staging_part(self, index: int) -> str:
        return f"{self.staging}part-{index:05d}/"

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def sibling(self, snapshot: str) -> SnapshotLayout:
        """The layout of another snapshot of the same FeatureSet (the previous one)."""
        return SnapshotLayout(self.bucket, self.namespace, self.featureset, snapshot)


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def snapshot_summary(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """What the operator records in status (SnapshotRef fields, camelCase) plus the profile."""
    return {
        "id": manifest["id"],
        "uri": manifest["uri"],
        "rows": manifest["rows"],
        "createdAt": manifest["created"],
        "reportUrl": manifest.get("report"),
        "profile": manifest.get("profile_summary"),
        "rejected": manifest.get("rejected", 0),
        "rejectRatio": manifest.get("reject_ratio", 0.0),
        "sourceFingerprint": manifest.get("source_fingerprint"),
        "specHash": manifest.get("spec_hash"),
        "featureColumns": manifest.get("feature_columns", []),
    }
