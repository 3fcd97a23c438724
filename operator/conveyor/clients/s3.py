"""The only door to S3, for the operator, the Job programs and the CLI: boto3 for listings and
small objects, pyarrow for streams.

Every failure leaves this module as a `StorageError` whose message says what to fix:
wrong credentials (`StorageAccessDenied`), storage unreachable (`StorageUnavailable`), a missing
bucket or object (`ObjectNotFound`).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeAlias
from urllib.parse import urlsplit

import boto3
import pyarrow as pa
import pyarrow.fs as pafs
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from ..contracts.invocations import (
    ENV_ACCESS_KEY,
    ENV_S3_BUCKET,
    ENV_S3_ENDPOINT,
    ENV_S3_REGION,
    ENV_SECRET_KEY,
)
from ..errors import ConveyorError, SettingsError

# boto3 generates client classes at run time; there is no S3Client type to name without stubs.
S3Client: TypeAlias = Any

__all__ = [
    "ObjectNotFound",
    "ObjectStorage",
    "S3Client",
    "S3Object",
    "S3Settings",
    "StorageAccessDenied",
    "StorageError",
    "StorageUnavailable",
    "glob_prefix",
    "split_uri",
]

_ACCESS_DENIED_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "AllAccessDisabled",
}
_NOT_FOUND_CODES = {"NoSuchBucket", "NoSuchKey", "404", "NotFound"}
# Files up to 256 MiB (every Parquet part) go as one PUT: measured faster than multipart on
# the sandbox S3 server (moto); larger files in 64 MiB chunks, 4 at a time (256 MiB buffered).
_TRANSFER = TransferConfig(
    multipart_threshold=256 << 20, multipart_chunksize=64 << 20, max_concurrency=4
)
_GLOB_CHARACTERS = re.compile(r"[*?\[]")
# pyarrow's S3 errors: unreachable, or a 5xx/throttling answer ("AWS Error UNKNOWN (HTTP status
# 503) during HeadObject operation", "AWS Error SLOW_DOWN during ...").
_ARROW_UNAVAILABLE = re.compile(
    r"NETWORK_CONNECTION|Could not connect|curlCode|HTTP status 5\d\d|SERVICE_UNAVAILABLE|"
    r"SLOW_DOWN|INTERNAL_FAILURE|THROTTLING"
)


class StorageError(ConveyorError):
    """S3 refused or failed a request; `reason` is the condition reason a person sees."""

    reason = "StorageError"


class StorageAccessDenied(StorageError):
    reason = "StorageAccessDenied"


class StorageUnavailable(StorageError):
    reason = "StorageUnavailable"


class ObjectNotFound(StorageError):
    reason = "ObjectNotFound"


@dataclass(frozen=True)
class S3Settings:
    """Where S3 is and who we are; read from the environment the operator gives its Jobs."""

    endpoint: str = ""
    """CONVEYOR_S3_ENDPOINT: http(s)://host:port; empty means AWS."""
    region: str = "us-east-1"
    """CONVEYOR_S3_REGION."""
    bucket: str = "conveyor"
    """CONVEYOR_S3_BUCKET: snapshots, models, logs and reports."""
    access_key: str | None = None
    """AWS_ACCESS_KEY_ID (from the credentials Secret); None uses boto3's default chain."""
    secret_key: str | None = None
    """AWS_SECRET_ACCESS_KEY."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> S3Settings:
        endpoint = env.get(ENV_S3_ENDPOINT, "").strip()
        if endpoint and urlsplit(endpoint).scheme not in ("http", "https"):
            raise SettingsError(
                f"Setting '{ENV_S3_ENDPOINT}' must start with http:// or https://, "
                f"not {endpoint!r}."
            )
        access_key = env.get(ENV_ACCESS_KEY) or None
        secret_key = env.get(ENV_SECRET_KEY) or None
        if (access_key is None) != (secret_key is None):
            missing = ENV_SECRET_KEY if secret_key is None else ENV_ACCESS_KEY
            raise SettingsError(
                f"Setting '{missing}' is missing while its pair is set; "
                "mount both keys of the S3 credentials Secret."
            )
        return cls(
            endpoint=endpoint,
            region=env.get(ENV_S3_REGION, "").strip() or cls.region,
            bucket=env.get(ENV_S3_BUCKET, "").strip() or cls.bucket,
            access_key=access_key,
            secret_key=secret_key,
        )


@dataclass(frozen=True)
class S3Object:
    """One listed object: what a source fingerprint and a snapshot manifest record."""

    bucket: str
    key: str
    size: int
    etag: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def to_json(self) -> dict[str, Any]:
        return {"uri": self.uri, "key": self.key, "size": self.size, "etag": self.etag}


def split_uri(uri: str) -> tuple[str, str]:
    """s3://bucket/key → (bucket, key)."""
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"{uri!r} is not an s3://bucket/key URI")
    return parts.netloc, parts.path.lstrip("/")


def glob_prefix(pattern: str) -> str:
    """The longest key prefix before the first glob character: the listing's Prefix."""
    match = _GLOB_CHARACTERS.search(pattern)
    return pattern if match is None else pattern[: match.start()]


class ObjectStorage:
    """One S3 endpoint through boto3 (listings, small objects) and pyarrow (streams).

    Close it when done (or use it as a context manager): it owns the boto3 connection pool.
    """

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self.client: S3Client = boto3.client(
            "s3",
            endpoint_url=settings.endpoint or None,
            aws_access_key_id=settings.access_key,
            aws_secret_access_key=settings.secret_key,
            region_name=settings.region,
            config=Config(
                s3={"addressing_style": "path"},
                signature_version="s3v4",
                connect_timeout=5,
                read_timeout=60,
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        )
        self._filesystem: pafs.S3FileSystem | None = None

    @property
    def filesystem(self) -> pafs.S3FileSystem:
        """pyarrow's S3 filesystem on the same endpoint: streaming reads and multipart writes."""
        if self._filesystem is None:
            options: dict[str, Any] = {"region": self.settings.region}
            if self.settings.access_key is not None:
                options["access_key"] = self.settings.access_key
                options["secret_key"] = self.settings.secret_key
            if self.settings.endpoint:
                parts = urlsplit(self.settings.endpoint)
                options["endpoint_override"] = parts.netloc
                options["scheme"] = parts.scheme
            self._filesystem = pafs.S3FileSystem(
                connect_timeout=5,
                request_timeout=60,
                background_writes=True,
                retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=3),
                **options,
            )
        return self._filesystem

    def describe(self) -> str:
        return self.settings.endpoint or f"AWS S3 ({self.settings.region})"

    # Listings and small objects (boto3) ------------------------------------------------------

    def list_objects(self, bucket: str, prefix: str) -> list[S3Object]:
        """Every object under `prefix`, sorted by key."""
        objects = []
        with self.errors(f"list s3://{bucket}/{prefix}"):
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix
            ):
                for item in page.get("Contents", []):
                    objects.append(
                        S3Object(bucket, item["Key"], int(item["Size"]), item["ETag"].strip('"'))
                    )
        return sorted(objects, key=lambda item: item.key)

    def glob(self, uri: str) -> list[S3Object]:
        """The objects matching s3://bucket/pattern (fnmatch on keys; `*` also crosses `/`)."""
        bucket, pattern = split_uri(uri)
        listed = self.list_objects(bucket, glob_prefix(pattern))
        return [item for item in listed if fnmatch.fnmatchcase(item.key, pattern)]

    def exists(self, bucket: str, key: str) -> bool:
        try:
            with self.errors(f"read s3://{bucket}/{key}"):
                self.client.head_object(Bucket=bucket, Key=key)
        except ObjectNotFound:
            return False
        return True

    def get_bytes(self, bucket: str, key: str) -> bytes:
        with self.errors(f"read s3://{bucket}/{key}"):
            body: bytes = self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        return body

    def put_bytes(
        self,
        bucket: str,
        key: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        *,
        content_encoding: str | None = None,
    ) -> None:
        extra = {"ContentEncoding": content_encoding} if content_encoding else {}
        with self.errors(f"write s3://{bucket}/{key}"):
            self.client.put_object(
                Bucket=bucket, Key=key, Body=data, ContentType=content_type, **extra
            )

    def upload_file(self, path: Path, bucket: str, key: str) -> None:
        """Upload a local file; large files go up as concurrent multipart chunks."""
        with self.errors(f"write s3://{bucket}/{key}"):
            self.client.upload_file(str(path), bucket, key, Config=_TRANSFER)

    def download_file(self, bucket: str, key: str, path: Path) -> None:
        """Download an object to a local file (large ones in concurrent ranged GETs)."""
        with self.errors(f"read s3://{bucket}/{key}"):
            self.client.download_file(bucket, key, str(path), Config=_TRANSFER)

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object under `prefix` (a "directory"); returns how many were deleted."""
        if not prefix.endswith("/"):
            raise ValueError(f"refusing to delete prefix {prefix!r} that does not end with '/'")
        keys = [item.key for item in self.list_objects(bucket, prefix)]
        with self.errors(f"delete s3://{bucket}/{prefix}"):
            for start in range(0, len(keys), 1000):
                chunk = keys[start : start + 1000]
                self.client.delete_objects(
                    Bucket=bucket,
                    Delete={"Objects": [{"Key": key} for key in chunk], "Quiet": True},
                )
        return len(keys)

    # Streams (pyarrow) -------------------------------------------------------------------------

    def open_input_stream(self, bucket: str, key: str) -> pa.NativeFile:
        """A sequential reader of the raw bytes (no decompression), fetched in ranged GETs."""
        with self.errors(f"read s3://{bucket}/{key}"):
            return self.filesystem.open_input_stream(f"{bucket}/{key}", compression=None)

    def open_input_file(self, bucket: str, key: str) -> pa.NativeFile:
        """A random-access reader (Parquet footers and row groups)."""
        with self.errors(f"read s3://{bucket}/{key}"):
            return self.filesystem.open_input_file(f"{bucket}/{key}")

    def open_output_stream(self, bucket: str, key: str) -> pa.NativeFile:
        """A multipart-upload writer; the object appears when the stream is closed."""
        with self.errors(f"write s3://{bucket}/{key}"):
            return self.filesystem.open_output_stream(f"{bucket}/{key}", compression=None)

    # Errors ------------------------------------------------------------------------------------

    @contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Turn boto3 and pyarrow failures of `action` into StorageErrors a person can act on."""
        try:
            yield
        except ClientError as error:
            raise self._client_error(action, error) from error
        except S3UploadFailedError as error:
            # boto3's transfer manager wraps the ClientError of a failed part in text only.
            text = str(error)
            if any(code in text for code in _ACCESS_DENIED_CODES):
                raise self._denied(action, text) from error
            raise self._unavailable(action, text) from error
        except (EndpointConnectionError, BotoCoreError) as error:
            raise self._unavailable(action, str(error)) from error
        except FileNotFoundError as error:
            raise ObjectNotFound(f"Cannot {action}: the object does not exist.") from error
        except OSError as error:
            raise self.translate_arrow_error(action, error) from error

    def translate_arrow_error(self, action: str, error: OSError) -> StorageError | OSError:
        """A pyarrow S3 OSError as a StorageError; other OSErrors (parse errors) stay as is."""
        text = str(error)
        if any(code in text for code in ("ACCESS_DENIED", "INVALID_ACCESS_KEY", "SIGNATURE")):
            return self._denied(action, text)
        if _ARROW_UNAVAILABLE.search(text):
            return self._unavailable(action, text)
        if "NO_SUCH_BUCKET" in text or "NoSuchBucket" in text:
            return ObjectNotFound(f"Cannot {action}: the bucket does not exist ({text}).")
        return error

    def _client_error(self, action: str, error: ClientError) -> StorageError:
        details = error.response.get("Error", {})
        code = str(details.get("Code", ""))
        message = details.get("Message") or code
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in _ACCESS_DENIED_CODES or status == 403:
            return self._denied(action, f"{code}: {message}")
        if code in _NOT_FOUND_CODES or status == 404:
            return ObjectNotFound(f"Cannot {action}: {code}: {message}.")
        if status >= 500 or code in ("SlowDown", "ServiceUnavailable", "InternalError"):
            return self._unavailable(action, f"{code}: {message}")
        return StorageError(f"Cannot {action}: {code}: {message}.")

    def _denied(self, action: str, detail: str) -> StorageAccessDenied:
        return StorageAccessDenied(
            f"Cannot {action} at {self.describe()}: access denied ({detail}). Check "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the S3 credentials Secret and that "
            "the key may read and write this bucket."
        )

    def _unavailable(self, action: str, detail: str) -> StorageUnavailable:
        return StorageUnavailable(
            f"Cannot {action}: S3 at {self.describe()} is unreachable or failing ({detail}). "
            "Check CONVEYOR_S3_ENDPOINT and that the storage service is up; this is retried."
        )

    def close(self) -> None:
        self.client.close()
        self._filesystem = None  # pyarrow's S3 client may be finalized once none is left

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
