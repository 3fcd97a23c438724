"""Fixtures the unit tests share: an S3 server of their own (moto, in process memory)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest

from conveyor.clients.s3 import ObjectStorage, S3Settings
from conveyor.sandbox.objectstore import ObjectStore

BUCKET = "conveyor"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObjectStore]:
    """One S3 server per test module, with the Conveyor bucket."""
    root = tmp_path_factory.mktemp("s3")
    with ObjectStore(data_dir=root, log_file=root / "s3.log", prefer="moto") as store:
        store.ensure_buckets(BUCKET)
        yield store


@pytest.fixture
def s3(store: ObjectStore) -> Iterator[Any]:
    """A plain boto3 client: how the tests look at what was written."""
    with closing(store.client()) as client:
        yield client


@pytest.fixture
def storage(store: ObjectStore) -> Iterator[ObjectStorage]:
    """The storage interface Conveyor's writers and readers take."""
    settings = S3Settings(
        endpoint=store.endpoint,
        access_key=store.credentials.access_key,
        secret_key=store.credentials.secret_key,
    )
    with ObjectStorage(settings) as storage:
        yield storage
