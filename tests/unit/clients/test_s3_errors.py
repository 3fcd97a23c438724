"""pyarrow's S3 errors as StorageErrors: an outage is StorageUnavailable (retried), never a
problem with the data (which no retry would fix)."""

from __future__ import annotations

import pytest

from conveyor.clients.s3 import ObjectStorage, S3Settings, StorageUnavailable


@pytest.mark.parametrize(
    "text",
    [
        "When reading information for key 'iris/iris.csv' in bucket 'conveyor-raw': AWS Error "
        "UNKNOWN (HTTP status 503) during HeadObject operation: No response body.",
        "AWS Error SLOW_DOWN during GetObject operation: Please reduce your request rate.",
        "AWS Error SERVICE_UNAVAILABLE during PutObject operation: unavailable",
        "AWS Error NETWORK_CONNECTION during CreateMultipartUpload operation: curlCode: 7, "
        "Couldn't connect to server",
    ],
)
def test_an_s3_outage_is_storage_unavailable(text: str) -> None:
    storage = ObjectStorage(S3Settings(endpoint="http://127.0.0.1:9"))
    try:
        translated = storage.translate_arrow_error("read s3://b/k", OSError(text))
    finally:
        storage.close()
    assert isinstance(translated, StorageUnavailable), translated


def test_a_parse_error_stays_what_it_is() -> None:
    storage = ObjectStorage(S3Settings(endpoint="http://127.0.0.1:9"))
    try:
        error = OSError("CSV parse error: Expected 5 columns, got 3")
        assert storage.translate_arrow_error("read s3://b/k", error) is error
    finally:
        storage.close()
