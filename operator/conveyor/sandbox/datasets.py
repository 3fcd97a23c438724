"""Raw data for the examples, seeded into the sandbox's raw bucket.

The data ships with scikit-learn (no download at run time) and is written as plain CSV, the
way raw event data arrives: one row per entity with an event timestamp. Timestamps start at
2026-01-01T00:00:00Z and advance one hour per row in a fixed pseudo-random order, so a
time-based split sees every class. Rows are written in time order.

The bytes are identical on every run, so the object's ETag is stable and re-seeding a store
that already holds the data uploads nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from botocore.exceptions import ClientError
from sklearn.datasets import load_diabetes, load_iris

from conveyor.sandbox.objectstore import RAW_BUCKET

__all__ = ["DATASETS", "Dataset", "render_csv", "seed_datasets"]

logger = logging.getLogger(__name__)

_FIRST_OBSERVATION = datetime(2026, 1, 1, tzinfo=UTC)
_OBSERVATION_STEP = timedelta(hours=1)


@dataclass(frozen=True)
class Dataset:
    name: str
    key: str
    """Object key in the raw bucket."""
    columns: list[str]
    target: str
    entity: str
    event_time: str


DATASETS: dict[str, Dataset] = {
    "iris": Dataset(
        name="iris",
        key="iris/iris.csv",
        columns=[
            "flower_id",
            "observed_at",
            "sepal_length_cm",
            "sepal_width_cm",
            "petal_length_cm",
            "petal_width_cm",
            "species",
        ],
        target="species",
        entity="flower_id",
        event_time="observed_at",
    ),
    "diabetes": Dataset(
        name="diabetes",
        key="diabetes/diabetes.csv",
        columns=[
            "patient_id",
            "observed_at",
            "age",
            "sex",
            "bmi",
            "bp",
            "s1",
            "s2",
            "s3",
            "s4",
            "s5",
            "s6",
            "progression",
        ],
        target="progression",
        entity="patient_id",
        event_time="observed_at",
    ),
}


def render_csv(name: str) -> bytes:
    """The CSV bytes of dataset `name` (a key of DATASETS); the same bytes on every call."""
    if name not in _ROW_SOURCES:
        raise KeyError(f"Unknown dataset {name!r}; known datasets: {', '.join(sorted(DATASETS))}.")
    dataset = DATASETS[name]
    rows = _ROW_SOURCES[name]()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(dataset.columns)
    for entity_id, observed_at, values in _in_time_order(name, rows):
        writer.writerow([entity_id, observed_at, *values])
    return buffer.getvalue().encode("utf-8")


def seed_datasets(s3_client: Any, bucket: str = RAW_BUCKET) -> list[str]:
    """Upload every dataset to `bucket`, skipping objects whose ETag already matches.

    Returns the keys now in place (written or already there). The bucket must exist.
    """
    keys = []
    for dataset in DATASETS.values():
        body = render_csv(dataset.name)
        if _stored_etag(s3_client, bucket, dataset.key) == hashlib.md5(body).hexdigest():
            logger.info("Dataset s3://%s/%s is up to date", bucket, dataset.key)
        else:
            _put(s3_client, bucket, dataset.key, body)
            logger.info("Seeded dataset s3://%s/%s (%d bytes)", bucket, dataset.key, len(body))
        keys.append(dataset.key)
    return keys


def labelled_requests(
    name: str, first_id: int | None = None
) -> list[tuple[dict[str, float | int], str | float]]:
    """A dataset's rows as a client sends them (no event time or target), each with its target:
    traffic and its ground truth, for the demo's feedback. With `first_id` each row carries a
    new entity key from there on, so a FeatureSet reading the prediction logs keeps the rows."""
    dataset = DATASETS[name]
    columns = [c for c in dataset.columns if c not in (dataset.entity, dataset.event_time)]
    labelled: list[tuple[dict[str, float | int], str | float]] = []
    for n, row in enumerate(_ROW_SOURCES[name]()):
        values = dict(zip(columns, row, strict=True))
        label = values.pop(dataset.target)
        request: dict[str, float | int] = {c: float(value) for c, value in values.items()}
        if first_id is not None:
            request[dataset.entity] = first_id + n
        labelled.append((request, _number_or_text(label)))
    return labelled


def _number_or_text(value: str) -> str | float:
    try:
        return float(value)
    except ValueError:  # a class
        return value


def _iris_rows() -> list[list[str]]:
    data = load_iris()
    species = [str(name) for name in data.target_names]
    measurements = _format_columns(data.data)
    return [
        [*values, species[int(label)]]
        for values, label in zip(measurements, data.target, strict=True)
    ]


def _diabetes_rows() -> list[list[str]]:
    data = load_diabetes(scaled=False)
    table = np.column_stack([data.data, data.target])
    return _format_columns(table)


_ROW_SOURCES: dict[str, Callable[[], list[list[str]]]] = {
    "iris": _iris_rows,
    "diabetes": _diabetes_rows,
}


def _format_columns(table: np.ndarray) -> list[list[str]]:
    """Cells as text: a column of whole numbers as integers (sex is 1 or 2, not 2.0),
    any other column as floats written to round-trip exactly."""
    whole = [bool(np.all(np.equal(np.mod(column, 1), 0))) for column in table.T]
    return [
        [
            str(int(value)) if is_whole else repr(float(value))
            for value, is_whole in zip(row, whole, strict=True)
        ]
        for row in table
    ]


def _in_time_order(name: str, rows: Sequence[list[str]]) -> list[tuple[int, str, list[str]]]:
    """(entity id, timestamp, values) per row, sorted by timestamp.

    Entity ids follow the source order (1..n). The observation order is a shuffle keyed by a
    hash of the dataset name and id, not by a random generator whose stream may change between
    library versions.
    """

    def shuffle_key(entity_id: int) -> str:
        return hashlib.sha256(f"{name}:{entity_id}".encode()).hexdigest()

    shuffled = sorted(range(1, len(rows) + 1), key=shuffle_key)
    ordered = []
    for position, entity_id in enumerate(shuffled):
        observed_at = _FIRST_OBSERVATION + position * _OBSERVATION_STEP
        ordered.append((entity_id, observed_at.strftime("%Y-%m-%dT%H:%M:%SZ"), rows[entity_id - 1]))
    return ordered


def _stored_etag(s3_client: Any, bucket: str, key: str) -> str | None:
    try:
        head = s3_client.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if _status(error) == 404:
            return None
        raise
    return str(head["ETag"]).strip('"')


def _put(s3_client: Any, bucket: str, key: str, body: bytes) -> None:
    try:
        s3_client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="text/csv")
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "NoSuchBucket":
            raise RuntimeError(
                f"Cannot seed s3://{bucket}/{key}: bucket {bucket!r} does not exist; "
                f"create it first (ObjectStore.ensure_buckets({bucket!r}))."
            ) from error
        raise


def _status(error: ClientError) -> int | None:
    return error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
