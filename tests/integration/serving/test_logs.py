"""The prediction log of a real `conveyor serve` process: every record accounted for through an
S3 outage, and the records read back as training rows by the next FeatureSet snapshot."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Callable
from contextlib import closing, suppress
from pathlib import Path
from typing import Any

import pytest
import yaml
from sklearn.linear_model import LogisticRegression

from conveyor.features.predictionlog import PredictionRecord, decode_records
from conveyor.sandbox.datasets import seed_datasets
from tests.integration.jobs.test_materialize import (
    featureset,
    manifest_of,
    materialize,
    ok,
    snapshot_table,
)
from tests.integration.serving.conftest import BUCKET, Server, Storage, wait_for
from tests.models import TrainedModel, iris_rows, request_row, train_iris

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
IRIS = yaml.safe_load((ROOT / "examples" / "iris" / "featureset.yaml").read_text())
OUTAGE_SECONDS = 30.0


class CuttableProxy:
    """A TCP proxy in front of S3 that the test cuts (connections refused, open ones reset) and
    reopens on the same port: an S3 outage as the server sees it."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.removeprefix("http://").partition(":")
        self.upstream = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._serve()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut(self) -> None:
        self._listener.close()
        with self._lock:
            for connection in self._connections:
                with suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
                connection.close()
            self._connections.clear()

    def reopen(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._serve()

    def _serve(self) -> None:
        listener = self._listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            upstream = socket.create_connection(self.upstream)
            with self._lock:
                self._connections += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(source, target), daemon=True).start()


def _pipe(source: socket.socket, target: socket.socket) -> None:
    with suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    for end in (source, target):
        with suppress(OSError):
            end.shutdown(socket.SHUT_RDWR)


class Traffic(threading.Thread):
    """Predictions one after another on one connection, each with its own request id."""

    def __init__(self, port: int, body: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.payload = json.dumps(body).encode()
        self.answered: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        with closing(connection):
            while not self.stop.is_set():
                request_id = f"t-{len(self.answered)}-{threading.get_ident()}"
                connection.request(
                    "POST",
                    "/predict",
                    body=self.payload,
                    headers={"Content-Type": "application/json", "X-Request-Id": request_id},
                )
                response = connection.getresponse()
                response.read()
                assert response.status == 200
                self.answered.append(request_id)

    def wait_for_more(self, count: int) -> None:
        target = len(self.answered) + count
        wait_for(lambda: len(self.answered) >= target, what=f"{count} more answers")


@pytest.fixture(scope="module")
def iris() -> TrainedModel:
    return train_iris(LogisticRegression(max_iter=1000), IRIS["spec"])


def buffered(server: Server) -> float:
    answer = server.get("/metrics")
    assert answer is not None
    [line] = [
        line
        for line in answer.body.decode().splitlines()
        if line.startswith("conveyor_serving_log_buffered_records ")
    ]
    return float(line.split()[1])


def logged_ids(storage: Storage) -> list[str]:
    ids = []
    listing = storage.client.list_objects_v2(Bucket=BUCKET, Prefix="logs/default/predictions/")
    for item in listing.get("Contents", []):
        body = storage.client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
        ids += [record.request_id for record in decode_records(body, PredictionRecord)]
    return ids


def clear_logs(storage: Storage) -> None:
    listing = storage.client.list_objects_v2(Bucket=BUCKET, Prefix="logs/")
    for item in listing.get("Contents", []):
        storage.client.delete_object(Bucket=BUCKET, Key=item["Key"])


def test_an_s3_outage_loses_no_record_silently(
    storage: Storage, iris: TrainedModel, start: Callable[..., Server]
) -> None:
    clear_logs(storage)
    proxy = CuttableProxy(storage.endpoint)
    server = start(
        storage.publish("models/iris-logs", iris),
        endpoint=proxy.endpoint,
        CONVEYOR_SERVE_LOG_FLUSH_SECONDS="0.5",
        CONVEYOR_SERVE_LOG_BATCH_RECORDS="200",
        CONVEYOR_SERVE_LOG_BUFFER_RECORDS="2000",
    ).wait_ready()
    traffic = Traffic(server.port, {"instances": [request_row(iris_rows()[7])]})
    traffic.start()
    try:
        traffic.wait_for_more(300)
        proxy.cut()
        cut_at = len(traffic.answered)
        traffic.stop.wait(OUTAGE_SECONDS)  # the outage: the server answers all along
        answered_in_outage = len(traffic.answered) - cut_at
        proxy.reopen()
        wait_for(lambda: buffered(server) < 1000, timeout=60, what="the buffer to be written")
        traffic.wait_for_more(300)
    finally:
        traffic.stop.set()
        traffic.join(timeout=30)
    assert answered_in_outage > 2000  # more than the buffer holds: some must be dropped
    server.terminate()
    assert server.wait_exit() == 0, server.log()
    logs = server.report()["logs"]

    ids = logged_ids(storage)
    dropped = logs["dropped"]
    assert len(ids) == len(set(ids)), "a record was written twice"
    assert set(ids) <= set(traffic.answered)
    assert len(ids) == logs["recordsWritten"]
    assert dropped["buffer_full"] > 0 and dropped.get("shutdown", 0) == 0
    assert len(ids) + sum(dropped.values()) == len(traffic.answered)
    assert traffic.answered[-1] in ids  # written after the recovery
    assert logs["failedWrites"] > 0
    assert "Dropped prediction log records" in server.log()


def test_logged_predictions_and_feedback_become_rows_of_the_next_snapshot(
    storage: Storage, iris: TrainedModel, start: Callable[..., Server]
) -> None:
    clear_logs(storage)
    storage.store.ensure_buckets("conveyor-raw")
    seed_datasets(storage.client)
    server = start(
        storage.publish("models/iris-snapshot", iris),
        CONVEYOR_SERVE_LOG_FLUSH_SECONDS="0.2",
        CONVEYOR_POD_NAMESPACE="ml",  # the FeatureSet's: its predictionLogs names this model
    ).wait_ready()
    rows = [{**request_row(row), "flower_id": 7000 + n} for n, row in enumerate(iris_rows()[:4])]
    answer = server.post("/predict", {"instances": rows}, {"X-Request-Id": "batch-1"})
    assert answer is not None and answer.status == 200
    labels = ["setosa", "setosa", "versicolor"]  # the fourth row gets no label
    feedback = server.post(
        "/v2/models/flowers/feedback", {"request_id": "batch-1", "labels": labels}
    )
    assert feedback is not None and feedback.json() == {"accepted": 3, "unknown": 0}
    server.terminate()
    assert server.wait_exit() == 0, server.log()

    document = featureset("iris-from-logs", predictionLogs={"model": "flowers"})
    manifest = manifest_of(storage.client, ok(materialize(storage.endpoint, document)))
    table = snapshot_table(storage.client, manifest)
    served = [row for row in table.to_pylist() if row["flower_id"] >= 7000]
    assert [(row["flower_id"], row["species"]) for row in served] == [
        (7000, "setosa"),
        (7001, "setosa"),
        (7002, "versicolor"),
    ]
