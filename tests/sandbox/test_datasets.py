"""The examples' raw data: exact CSV layout, determinism, and idempotent seeding into real S3."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.csv as pacsv
import pyarrow.types as patypes
import pytest
from sklearn.datasets import load_diabetes, load_iris

from conveyor.sandbox.datasets import DATASETS, render_csv, seed_datasets
from conveyor.sandbox.objectstore import RAW_BUCKET, ObjectStore

IRIS_HEADER = (
    "flower_id,observed_at,sepal_length_cm,sepal_width_cm,petal_length_cm,petal_width_cm,species"
)
DIABETES_HEADER = "patient_id,observed_at,age,sex,bmi,bp,s1,s2,s3,s4,s5,s6,progression"


def rows(name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(render_csv(name).decode())))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObjectStore]:
    tmp_path = tmp_path_factory.mktemp("datasets")
    with ObjectStore(
        data_dir=tmp_path / "s3", log_file=tmp_path / "s3.log", prefer="moto"
    ) as running:
        yield running


@pytest.fixture
def s3(store: ObjectStore, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A client and a fresh, versioned raw bucket per test (versions count the uploads)."""
    bucket = f"raw-{request.node.name.replace('_', '-')[:50]}"
    store.ensure_buckets(bucket)
    with closing(store.client()) as client:
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        yield client, bucket


def test_headers_and_metadata_match_what_the_examples_read() -> None:
    assert render_csv("iris").decode().splitlines()[0] == IRIS_HEADER
    assert render_csv("diabetes").decode().splitlines()[0] == DIABETES_HEADER
    for name, header in (("iris", IRIS_HEADER), ("diabetes", DIABETES_HEADER)):
        dataset = DATASETS[name]
        assert dataset.columns == header.split(",")
        assert {dataset.target, dataset.entity, dataset.event_time} <= set(dataset.columns)
    assert DATASETS["iris"].key == "iris/iris.csv"
    assert DATASETS["diabetes"].key == "diabetes/diabetes.csv"
    assert (DATASETS["iris"].target, DATASETS["diabetes"].target) == ("species", "progression")


# The S3 ETags of the seeded objects. A change here changes the data every example trains on:
# update it only on purpose.
EXPECTED_MD5 = {
    "iris": "1e2f85de212bae21f703b7cd6cd7ed43",
    "diabetes": "558ab19ab39b099dccbcd57cac98a652",
}


def test_rendering_is_byte_for_byte_deterministic() -> None:
    for name in DATASETS:
        assert hashlib.md5(render_csv(name)).hexdigest() == EXPECTED_MD5[name]


@pytest.mark.parametrize(
    ("name", "entity", "count"), [("iris", "flower_id", 150), ("diabetes", "patient_id", 442)]
)
def test_every_entity_once_one_hour_apart_in_time_order(name: str, entity: str, count: int) -> None:
    table = rows(name)
    assert sorted(int(row[entity]) for row in table) == list(range(1, count + 1))
    times = [datetime.fromisoformat(row["observed_at"]) for row in table]
    assert table[0]["observed_at"] == "2026-01-01T00:00:00Z"
    assert all(
        later - earlier == timedelta(hours=1) for earlier, later in itertools.pairwise(times)
    )
    # Shuffled: the time order is not the source order.
    assert [int(row[entity]) for row in table] != list(range(1, count + 1))


def test_iris_values_match_scikit_learn_and_a_time_split_sees_every_species() -> None:
    source = load_iris()
    table = rows("iris")
    by_id = {int(row["flower_id"]): row for row in table}
    for index in (0, 77, 149):
        row = by_id[index + 1]
        measured = [float(row[column]) for column in DATASETS["iris"].columns[2:6]]
        assert measured == source.data[index].tolist()
        assert row["species"] == source.target_names[source.target[index]]
    latest_fifth = table[-30:]
    earliest_half = table[:75]
    for part in (earliest_half, latest_fifth):
        assert {row["species"] for row in part} == {"setosa", "versicolor", "virginica"}


def test_diabetes_is_unscaled_with_sex_as_one_or_two() -> None:
    source = load_diabetes(scaled=False)
    table = rows("diabetes")
    assert {row["sex"] for row in table} == {"1", "2"}
    first = next(row for row in table if row["patient_id"] == "1")
    features = [float(first[column]) for column in DATASETS["diabetes"].columns[2:12]]
    assert features == source.data[0].tolist()
    assert float(first["progression"]) == source.target[0] == 151.0


def test_pyarrow_reads_typed_columns() -> None:
    iris = pacsv.read_csv(io.BytesIO(render_csv("iris")))
    diabetes = pacsv.read_csv(io.BytesIO(render_csv("diabetes")))
    assert patypes.is_timestamp(iris.schema.field("observed_at").type)
    assert patypes.is_floating(iris.schema.field("petal_width_cm").type)
    assert patypes.is_string(iris.schema.field("species").type)
    assert patypes.is_integer(diabetes.schema.field("sex").type)
    assert patypes.is_floating(diabetes.schema.field("s5").type)
    assert (iris.num_rows, diabetes.num_rows) == (150, 442)


def test_unknown_dataset_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="diabetes, iris"):
        render_csv("mnist")


def test_seeding_writes_the_csv_files(s3: tuple[Any, str]) -> None:
    client, bucket = s3
    assert seed_datasets(client, bucket) == ["iris/iris.csv", "diabetes/diabetes.csv"]
    for dataset in DATASETS.values():
        stored = client.get_object(Bucket=bucket, Key=dataset.key)
        assert stored["Body"].read() == render_csv(dataset.name)
        assert stored["ContentType"] == "text/csv"
        assert stored["ETag"].strip('"') == hashlib.md5(render_csv(dataset.name)).hexdigest()


def test_reseeding_uploads_only_what_changed(s3: tuple[Any, str]) -> None:
    client, bucket = s3
    seed_datasets(client, bucket)
    client.put_object(Bucket=bucket, Key="iris/iris.csv", Body=b"someone edited this\n")

    assert seed_datasets(client, bucket) == ["iris/iris.csv", "diabetes/diabetes.csv"]

    def versions(key: str) -> int:
        listing = client.list_object_versions(Bucket=bucket, Prefix=key)
        return len(listing.get("Versions", []))

    assert versions("diabetes/diabetes.csv") == 1  # unchanged: not uploaded again
    assert versions("iris/iris.csv") == 3  # seeded, edited, restored
    restored = client.get_object(Bucket=bucket, Key="iris/iris.csv")["Body"].read()
    assert restored == render_csv("iris")


def test_seeding_a_missing_bucket_says_to_create_it(store: ObjectStore) -> None:
    with closing(store.client()) as client, pytest.raises(RuntimeError, match="ensure_buckets"):
        seed_datasets(client, "no-such-bucket")


def test_default_bucket_is_the_raw_bucket(store: ObjectStore) -> None:
    store.ensure_buckets(RAW_BUCKET)
    with closing(store.client()) as client:
        seed_datasets(client)
        keys = [item["Key"] for item in client.list_objects_v2(Bucket=RAW_BUCKET)["Contents"]]
    assert sorted(keys) == ["diabetes/diabetes.csv", "iris/iris.csv"]
    assert Path(keys[0]).suffix == ".csv"
