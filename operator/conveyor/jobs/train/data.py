"""Read a feature snapshot from S3 into what training needs: numpy features, target, event times.

Training holds the snapshot in memory (scikit-learn does); the snapshot's Parquet parts are
read one object at a time. The optional `raw/` parts are the conformed raw rows, row-aligned
with `data/`: the Production model answers those through its own fitted transforms.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ...clients.s3 import ObjectNotFound, ObjectStorage
from ...contracts.layouts import SnapshotLayout
from ...contracts.manifest import SnapshotManifest
from ...contracts.wire import WireError
from .errors import InvalidSpec, NonNumericFeatures, SnapshotNotFound

__all__ = ["SnapshotData", "read_manifest", "read_snapshot"]

logger = logging.getLogger(__name__)


@dataclass
class SnapshotData:
    """One snapshot's rows (those with a target), as arrays; row i is the same row everywhere."""

    id: str
    manifest: SnapshotManifest
    feature_columns: list[str]
    """Every feature column of the snapshot: what the pipeline's feature step produces."""
    features: np.ndarray
    """rows by feature_columns, float64 (nulls are NaN)."""
    target_name: str
    target: np.ndarray
    event_times: np.ndarray | None
    """Event times as int64 microseconds since the epoch, when the FeatureSet has an event time."""
    keys: list[Any] | None
    """The entity key of each row (None where null), when the FeatureSet has an entity key."""
    transforms: dict[str, Any]
    profile: dict[str, Any]
    raw: pa.Table | None
    """The conformed raw rows, row-aligned; None when the snapshot does not keep them."""

    @property
    def rows(self) -> int:
        return int(self.target.shape[0])

    def columns(self, names: list[str]) -> np.ndarray:
        """The feature matrix restricted to `names` (spec.features), in that order."""
        positions = [self.feature_columns.index(name) for name in names]
        return self.features[:, positions]


def read_manifest(storage: ObjectStorage, layout: SnapshotLayout) -> SnapshotManifest:
    """The manifest makes a snapshot exist; without it there is nothing to train on."""
    uri = layout.uri(layout.manifest)
    try:
        document = json.loads(storage.get_bytes(layout.bucket, layout.manifest))
        return SnapshotManifest.from_json(document, source=uri)
    except ObjectNotFound as error:
        raise SnapshotNotFound(
            f"Snapshot {layout.id} of FeatureSet {layout.namespace}/{layout.featureset} does not "
            f"exist ({uri} is missing): materialize the FeatureSet, or "
            "start the run on one of the snapshots in its status."
        ) from error
    except (ValueError, WireError) as error:
        raise SnapshotNotFound(
            f"Snapshot {layout.id} cannot be trusted: {error}. Materialize the FeatureSet again."
        ) from error


def read_snapshot(
    storage: ObjectStorage, layout: SnapshotLayout, manifest: SnapshotManifest
) -> SnapshotData:
    if manifest.target is None:
        raise InvalidSpec(
            [
                f"spec.featureSet: snapshot {layout.id} has no target column; set the FeatureSet's "
                "spec.schema.target and materialize it again"
            ]
        )
    table = _read_parts(storage, layout.bucket, _data_keys(storage, layout, manifest))
    feature_columns = list(manifest.feature_columns)
    target_name = manifest.target
    _check_numeric(table, feature_columns, layout)
    keep = pc.is_valid(table.column(target_name))
    dropped = table.num_rows - pc.sum(keep).as_py() if table.num_rows else 0
    if dropped:
        logger.warning("Skipping %d rows without a target (%s)", dropped, target_name)
    raw = _read_raw(storage, layout, table, manifest)
    table = table.filter(keep)
    if raw is not None:
        raw = raw.filter(keep)
    return SnapshotData(
        id=layout.id,
        manifest=manifest,
        feature_columns=feature_columns,
        features=_feature_matrix(table, feature_columns),
        target_name=target_name,
        target=_target_array(table.column(target_name)),
        event_times=_event_times(table, manifest.event_time),
        keys=_keys(table, manifest.entity_key),
        transforms=_read_json(storage, layout.bucket, layout.transforms),
        profile=_read_json(storage, layout.bucket, layout.profile),
        raw=raw,
    )


def _data_keys(
    storage: ObjectStorage, layout: SnapshotLayout, manifest: SnapshotManifest
) -> list[str]:
    listed = [item.key for item in manifest.data]
    if listed:
        return listed
    return [
        item.key
        for item in storage.list_objects(layout.bucket, layout.data)
        if item.key.endswith(".parquet")
    ]


def _read_parts(storage: ObjectStorage, bucket: str, keys: list[str]) -> pa.Table:
    tables = [pq.read_table(io.BytesIO(storage.get_bytes(bucket, key))) for key in keys]
    if not tables:
        raise SnapshotNotFound(f"The snapshot has no data parts under s3://{bucket}/.")
    return pa.concat_tables(tables, promote_options="default")


def _read_json(storage: ObjectStorage, bucket: str, key: str) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(storage.get_bytes(bucket, key))
    except ObjectNotFound as error:
        raise SnapshotNotFound(
            f"The snapshot is incomplete: s3://{bucket}/{key} is missing; materialize again."
        ) from error
    return data


def _check_numeric(table: pa.Table, feature_columns: list[str], layout: SnapshotLayout) -> None:
    missing = [name for name in feature_columns if name not in table.column_names]
    if missing:
        raise SnapshotNotFound(
            f"Snapshot {layout.id} lacks the feature columns {', '.join(missing)} its manifest "
            "lists; materialize the FeatureSet again."
        )
    wrong = [
        f"{name} ({table.schema.field(name).type})"
        for name in feature_columns
        if not _numeric(table.schema.field(name).type)
    ]
    if wrong:
        raise NonNumericFeatures(
            f"Feature columns {', '.join(wrong)} of snapshot {layout.id} are not numeric; "
            "estimators need numbers: add a oneHot or ordinal transform for them to the "
            f"FeatureSet {layout.featureset} (spec.transforms), or leave them out of spec.features."
        )


def _numeric(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_decimal(kind)
    )


def _feature_matrix(table: pa.Table, columns: list[str]) -> np.ndarray:
    if not columns:
        return np.empty((table.num_rows, 0))
    arrays = [
        pc.cast(table.column(name), pa.float64()).to_numpy(zero_copy_only=False) for name in columns
    ]
    return np.column_stack(arrays).astype(np.float64, copy=False)


def _target_array(column: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_floating(column.type) or pa.types.is_integer(column.type):
        return column.to_numpy()
    return np.asarray(column.to_pylist())


def _event_times(table: pa.Table, name: str | None) -> np.ndarray | None:
    if not name or name not in table.column_names:
        return None
    column = table.column(name)
    if pa.types.is_timestamp(column.type):
        column = pc.cast(column, pa.timestamp("us", tz=column.type.tz))
    return pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False)


def _keys(table: pa.Table, name: str | None) -> list[Any] | None:
    if not name or name not in table.column_names:
        return None
    return table.column(name).to_pylist()


def _read_raw(
    storage: ObjectStorage, layout: SnapshotLayout, data: pa.Table, manifest: SnapshotManifest
) -> pa.Table | None:
    keys = [
        item.key
        for item in storage.list_objects(layout.bucket, layout.raw)
        if item.key.endswith(".parquet")
    ]
    if not keys:
        return None
    raw = _read_parts(storage, layout.bucket, keys)
    if raw.num_rows != data.num_rows:
        logger.warning(
            "Ignoring the raw rows of snapshot %s: %d raw rows for %d feature rows",
            layout.id,
            raw.num_rows,
            data.num_rows,
        )
        return None
    return _aligned(raw, data, manifest.entity_key, layout.id)


def _aligned(raw: pa.Table, data: pa.Table, key: str | None, snapshot: str) -> pa.Table | None:
    """The raw rows in the order of the feature rows, matched by entity key when both have it."""
    if not key or key not in raw.column_names or key not in data.column_names:
        return raw
    raw_keys = raw.column(key).to_pylist()
    data_keys = data.column(key).to_pylist()
    if raw_keys == data_keys:
        return raw
    position = {value: index for index, value in enumerate(raw_keys)}
    if len(position) != len(raw_keys) or set(position) != set(data_keys):
        logger.warning(
            "Ignoring the raw rows of snapshot %s: their %s values do not match the features",
            snapshot,
            key,
        )
        return None
    return raw.take(pa.array([position[value] for value in data_keys], pa.int64()))
