"""`conveyor serve` as a real process on a free 127.0.0.1 port, against a real S3 server
(moto's), serving model files written as training writes them (tests/models.py)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sklearn.ensemble import RandomForestClassifier

from conveyor.sandbox.objectstore import ObjectStore, S3Client
from conveyor.sandbox.processes import free_port
from tests.models import TrainedModel, train_flowers

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "conveyor", "AWS_SECRET_ACCESS_KEY": "conveyor-secret"}
BUCKET = "conveyor"


def wait_for(probe: Callable[[], Any], *, timeout: float = 30.0, what: str = "it") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> Answer | None:
    """One HTTP request on a fresh connection; None when nothing listens."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json"} if data is not None else {}
    try:
        connection.request(method, path, body=data, headers={**all_headers, **(headers or {})})
        response = connection.getresponse()
        return Answer(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    except (ConnectionRefusedError, ConnectionResetError):
        return None
    finally:
        connection.close()


class Server:
    """One `conveyor serve` process; its output goes to files (a full pipe would block it)."""

    def __init__(self, tmp: Path, endpoint: str, args: list[str], env: dict[str, str]) -> None:
        self.port = free_port()
        self.termination_log = tmp / "termination-log"
        self.termination_log.write_text("")  # the runtime creates it; the program fills it
        self.stdout_path, self.stderr_path = tmp / "stdout", tmp / "stderr"
        environment = {
            **os.environ,
            **CREDENTIALS,
            "CONVEYOR_S3_ENDPOINT": endpoint,
            "CONVEYOR_PORT_HTTP": str(self.port),
            "CONVEYOR_SERVE_HOST": "127.0.0.1",
            "TERMINATION_MESSAGE_PATH": str(self.termination_log),
            **env,
        }
        command = [sys.executable, "-m", "conveyor", "serve", "--cache-dir", str(tmp / "cache")]
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(
                [*command, *args], env=environment, stdout=out, stderr=err
            )

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def get(self, path: str, headers: dict[str, str] | None = None) -> Answer | None:
        return call(self.port, "GET", path, headers=headers)

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> Answer | None:
        return call(self.port, "POST", path, body, headers)

    def status(self, path: str) -> int | None:
        answer = self.get(path)
        return None if answer is None else answer.status

    def wait_ready(self, timeout: float = 60.0) -> Server:
        def ready() -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"the server exited with {self.process.returncode}:\n{self.log()}")
            return self.status("/v2/health/ready") == 200

        wait_for(ready, timeout=timeout, what="the server to be ready")
        return self

    def wait_exit(self, timeout: float = 60.0) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the server did not exit within {timeout}s:\n{self.log()}")

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def log(self) -> str:
        return self.stderr_path.read_text()[-4000:]

    def report(self) -> dict[str, Any]:
        """The last JSON line the program printed."""
        lines = self.stdout_path.read_text().strip().splitlines()
        assert lines, f"no report on stdout; stderr:\n{self.log()}"
        report: dict[str, Any] = json.loads(lines[-1])
        return report

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


class Storage:
    """The S3 server and a client to write model files with."""

    def __init__(self, store: ObjectStore, client: S3Client) -> None:
        self.store = store
        self.client = client

    @property
    def endpoint(self) -> str:
        return self.store.endpoint

    def put(self, key: str, data: bytes) -> str:
        self.client.put_object(Bucket=BUCKET, Key=key, Body=data)
        return f"s3://{BUCKET}/{key}"

    def publish(self, prefix: str, model: TrainedModel, *, onnx: bool = True) -> list[str]:
        """Write a model's files as training does; the `conveyor serve` arguments for them."""
        args = [
            "--model", "flowers", "--version", "3",
            "--artifact-uri", self.put(f"{prefix}/model.skops", model.skops),
            "--artifact-digest", model.digest,
            "--card-uri", self.put(f"{prefix}/card.json", model.card_json()),
        ]  # fmt: skip
        if onnx and model.onnx is not None:
            from conveyor.training.artifacts import digest

            uri = self.put(f"{prefix}/model.onnx", model.onnx)
            args += ["--onnx-uri", uri, "--onnx-digest", digest(model.onnx)]
        return args


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Storage]:
    tmp = tmp_path_factory.mktemp("s3")
    with ObjectStore(data_dir=tmp / "data", log_file=tmp / "s3.log", prefer="moto") as store:
        store.ensure_buckets(BUCKET)
        with closing(store.client()) as client:
            yield Storage(store, client)


@pytest.fixture(scope="module")
def forest() -> TrainedModel:
    return train_flowers(RandomForestClassifier(n_estimators=12, max_depth=5, random_state=0))


@pytest.fixture
def start(tmp_path: Path, storage: Storage) -> Iterator[Callable[..., Server]]:
    """Start servers; each is killed at the end of the test if still running."""
    servers: list[Server] = []

    def starter(args: list[str], *, endpoint: str | None = None, **env: str) -> Server:
        directory = tmp_path / f"server-{len(servers)}"
        directory.mkdir()
        server = Server(directory, endpoint or storage.endpoint, args, env)
        servers.append(server)
        return server

    yield starter
    for server in servers:
        server.stop()


class SlowS3:
    """A proxy in front of the S3 server that holds every GET of `key` until `release()`:
    a download that takes as long as the test wants."""

    def __init__(self, upstream: str, key: str) -> None:
        self.upstream = urlsplit(upstream)
        self.key = key
        self.holding = threading.Event()
        self._released = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0].endswith(proxy.key):
                    proxy.holding.set()
                    proxy._released.wait(timeout=60)
                self._forward()

            do_HEAD = do_GET

            def _forward(self) -> None:
                upstream = http.client.HTTPConnection(
                    proxy.upstream.hostname, proxy.upstream.port, timeout=30
                )
                with closing(upstream):
                    upstream.request(self.command, self.path, headers=dict(self.headers))
                    response = upstream.getresponse()
                    body = response.read()
                    self.send_response(response.status)
                    for name, value in response.getheaders():
                        if name.lower() not in (
                            "connection",
                            "transfer-encoding",
                            "server",
                            "date",
                        ):
                            self.send_header(name, value)
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._released.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()
