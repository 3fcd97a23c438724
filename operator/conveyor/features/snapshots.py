"""Snapshot ids: the content address of a FeatureSet's data.

The id is the first 16 hex digits of sha256 over the canonical JSON of the definition fields
that decide the data, the source fingerprint and the code version: the same inputs and
definition give the same id, and a re-run finds the manifest and writes nothing. The operator
and the materialize Job both compute it; where a snapshot's files live is
`conveyor.contracts.layouts.SnapshotLayout`, its manifest `conveyor.contracts.manifest`.
"""

from __future__ import annotations

import hashlib
import json
import sys
from importlib import metadata
from typing import Any

from ..api.v1alpha1.featureset import FeatureSetSpec

__all__ = [
    "DATA_FIELDS",
    "canonical_json",
    "code_version",
    "definition",
    "snapshot_id",
    "spec_hash",
]

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
