"""The sandbox's S3-compatible object store: MinIO when installed, otherwise moto's server.

MinIO keeps objects on disk under `data_dir`, so they survive a restart of the sandbox.
moto's server keeps everything in memory: objects are gone when it stops, and `data_dir` is
unused. `ObjectStore.describe()` says which one runs, so the user is never surprised.

Both speak S3 on `endpoint`; clients use path-style addressing (`http://host:port/bucket/key`)
because virtual-host names like `bucket.127.0.0.1` do not resolve.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeAlias

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from conveyor.sandbox.processes import ManagedProcess, ProcessStartError, free_port

# boto3 generates client classes at run time; there is no S3Client type to name without stubs.
S3Client: TypeAlias = Any

__all__ = [
    "BUCKET",
    "PROJECT_BUCKETS",
    "RAW_BUCKET",
    "ObjectStore",
    "S3Credentials",
    "s3_client",
]

logger = logging.getLogger(__name__)

BUCKET = "conveyor"
"""Snapshots, model artifacts, prediction and feedback logs, reports."""
RAW_BUCKET = "conveyor-raw"
"""Raw source data that FeatureSets read."""
PROJECT_BUCKETS = (BUCKET, RAW_BUCKET)

BACKENDS = ("minio", "moto")


@dataclass(frozen=True)
class S3Credentials:
    access_key: str
    secret_key: str
    region: str = "us-east-1"


DEFAULT_CREDENTIALS = S3Credentials("conveyor", "conveyor-secret")


def s3_client(endpoint: str, credentials: S3Credentials) -> S3Client:
    """A boto3 S3 client for `endpoint` with path-style addressing; close it when done."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        region_name=credentials.region,
        config=Config(
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            retries={"max_attempts": 3, "mode": "standard"},
        ),
    )


class ObjectStore:
    """An S3 server process for the sandbox. `prefer`: "auto" (MinIO if on PATH), "minio", "moto".

    With `port=0` a free port is chosen now, so `endpoint` is known before `start()`.
    """

    def __init__(
        self,
        *,
        data_dir: Path,
        log_file: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: S3Credentials = DEFAULT_CREDENTIALS,
        prefer: str = "auto",
    ) -> None:
        self.data_dir = Path(data_dir)
        self.log_file = Path(log_file)
        self.host = host
        self.port = port or free_port(host)
        self.credentials = credentials
        self.backend, self._minio = _choose_backend(prefer)
        self.endpoint = f"http://{host}:{self.port}"
        self._process: ManagedProcess | None = None

    @property
    def persistent(self) -> bool:
        """Whether objects survive a restart (MinIO on disk: yes; moto in memory: no)."""
        return self.backend == "minio"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running

    @property
    def process(self) -> ManagedProcess:
        """The server process (to supervise it); only after `start()`."""
        if self._process is None:
            raise RuntimeError("The object store has no process yet: call start() first.")
        return self._process

    def describe(self) -> str:
        """One line for the user: which server, where, and whether data survives a stop."""
        if self.persistent:
            storage = f"data on disk in {self.data_dir}"
        else:
            storage = "data in memory, lost on stop (install minio to keep it)"
        return f"S3 ({self.backend}) at {self.endpoint}, {storage}"

    def start(self, timeout: float = 20.0) -> None:
        """Start the server and wait until it answers ListBuckets with our credentials."""
        if self.running:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._process = self._build_process()
        self._process.start()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        logger.info("Object store ready: %s", self.describe())

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Block until the running server answers ListBuckets (after a start or a restart)."""
        deadline = time.monotonic() + timeout
        self.process.wait_http(self._health_url(), timeout)
        self._wait_list_buckets(deadline)

    def stop(self) -> None:
        """Stop the server; idempotent. The port can be bound again afterwards."""
        if self._process is not None:
            self._process.stop()

    def client(self) -> S3Client:
        """A boto3 S3 client for this store (path-style); close it when done."""
        return s3_client(self.endpoint, self.credentials)

    def ensure_buckets(self, *names: str) -> None:
        """Create the buckets that do not exist yet; existing ones are left as they are."""
        with closing(self.client()) as client:
            existing = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
            for name in names:
                if name in existing:
                    continue
                try:
                    client.create_bucket(Bucket=name, **self._location())
                except ClientError as error:
                    code = error.response.get("Error", {}).get("Code", "")
                    if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise
                logger.info("Created bucket %s at %s", name, self.endpoint)

    def _location(self) -> dict[str, Any]:
        # us-east-1 is S3's default region and rejects an explicit LocationConstraint.
        if self.credentials.region == "us-east-1":
            return {}
        return {"CreateBucketConfiguration": {"LocationConstraint": self.credentials.region}}

    def _build_process(self) -> ManagedProcess:
        address = f"{self.host}:{self.port}"
        if self._minio is not None:
            console = f"{self.host}:{free_port(self.host)}"
            argv = [
                self._minio,
                "server",
                str(self.data_dir),
                "--address",
                address,
                "--console-address",
                console,
            ]
            env = {
                **os.environ,
                "MINIO_ROOT_USER": self.credentials.access_key,
                "MINIO_ROOT_PASSWORD": self.credentials.secret_key,
                "MINIO_REGION": self.credentials.region,
                "MINIO_UPDATE": "off",
            }
            return ManagedProcess(argv, env=env, log_file=self.log_file, name="minio")
        argv = [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)]
        return ManagedProcess(argv, env=dict(os.environ), log_file=self.log_file, name="moto")

    def _health_url(self) -> str:
        if self._minio is not None:
            return f"{self.endpoint}/minio/health/live"
        return f"{self.endpoint}/"

    def _wait_list_buckets(self, deadline: float) -> None:
        """The HTTP port may open before S3 is served (MinIO formats its disks first)."""
        assert self._process is not None
        last_error: Exception | None = None
        with closing(self.client()) as client:
            while time.monotonic() < deadline:
                try:
                    client.list_buckets()
                    return
                except (ClientError, BotoCoreError) as error:
                    last_error = error
                if not self._process.running:
                    break
                time.sleep(0.2)
        raise ProcessStartError(
            f"{self._process.name} at {self.endpoint} did not answer ListBuckets "
            f"with access key {self.credentials.access_key!r}: {last_error}. "
            f"Last lines of {self.log_file}:\n{self._process.log_tail()}"
        )

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<ObjectStore {self.backend} {self.endpoint} running={self.running}>"


def _choose_backend(prefer: str) -> tuple[str, str | None]:
    """The backend name and, for MinIO, the binary's path."""
    if prefer not in ("auto", *BACKENDS):
        raise ValueError(f"ObjectStore prefer={prefer!r} is not one of: auto, minio, moto.")
    minio = shutil.which("minio") if prefer in ("auto", "minio") else None
    if prefer == "minio" and minio is None:
        raise ProcessStartError(
            "ObjectStore prefer='minio' but no minio binary is on PATH; install MinIO "
            "(https://min.io/download) or use prefer='auto' to fall back to moto."
        )
    if minio is not None:
        return "minio", minio
    return "moto", None
