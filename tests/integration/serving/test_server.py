"""`conveyor serve` over real HTTP: a V2 client (tritonclient) and plain HTTP get the trained
pipeline's answers; a version it cannot serve ends it with the reason the operator reports;
liveness comes before readiness; SIGTERM drains and lets requests in flight finish."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as triton
from sklearn.dummy import DummyClassifier

from conveyor.sandbox.processes import free_port
from tests.integration.serving.conftest import Server, SlowS3, Storage, wait_for
from tests.models import TrainedModel, request_row, train_flowers

pytestmark = pytest.mark.integration

Start = Callable[..., Server]


class SneakyClassifier(DummyClassifier):
    """A type no allowlist names: a model file holding it must not be served."""


def test_a_v2_client_gets_the_pipelines_answers(
    start: Start, storage: Storage, forest: TrainedModel
) -> None:
    server = start(storage.publish("models/v2", forest)).wait_ready()
    client = triton.InferenceServerClient(url=server.url)
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("flowers", "3") and not client.is_model_ready("roses")
        assert client.get_server_metadata()["name"] == "conveyor"
        metadata = client.get_model_metadata("flowers")
        assert metadata["platform"] == "conveyor-onnx"

        rows = [request_row(row) for row in forest.rows[::5]]
        inputs = []
        for item in metadata["inputs"]:
            if item["name"] not in rows[0]:
                continue  # the optional entity key and event time
            values = [row[item["name"]] for row in rows]
            tensor = triton.InferInput(item["name"], [len(rows)], item["datatype"])
            dtype = {"FP64": np.float64, "BOOL": np.bool_, "BYTES": np.object_}[item["datatype"]]
            tensor.set_data_from_numpy(np.array(values, dtype=dtype), binary_data=False)
            inputs.append(tensor)
        outputs = [
            triton.InferRequestedOutput(name, binary_data=False)
            for name in ("predict", "predict_proba")
        ]
        result = client.infer(
            "flowers", inputs, model_version="3", outputs=outputs, request_id="r1"
        )
    finally:
        client.close()

    assert result.get_response()["id"] == "r1"
    assert result.get_response()["model_version"] == "3"
    labels = [str(label) for label in result.as_numpy("predict")]
    assert labels == forest.pipeline.predict(rows).tolist()
    probabilities = result.as_numpy("predict_proba")
    assert np.allclose(probabilities, forest.pipeline.predict_proba(rows), atol=1e-5)


def test_plain_http_records_errors_request_ids_and_metrics(
    start: Start, storage: Storage, forest: TrainedModel
) -> None:
    server = start(storage.publish("models/plain", forest, onnx=False)).wait_ready()
    rows = [request_row(row) for row in forest.rows[:10]]

    answer = server.post("/predict", {"instances": rows}, {"X-Request-Id": "abc-1"})
    assert answer is not None and answer.status == 200
    assert answer.headers["x-request-id"] == "abc-1"
    document = answer.json()
    assert document["request_id"] == "abc-1" and document["model_version"] == "3"
    assert document["predictions"] == forest.pipeline.predict(rows).tolist()
    assert np.array_equal(document["probabilities"], forest.pipeline.predict_proba(rows))

    bad = server.post("/predict", {"instances": [{**rows[0], "sepal_length_cm": 40.0}]})
    assert bad is not None and bad.status == 422
    assert "sepal_length_cm: 40.0 is above max 20" in bad.json()["error"]
    too_large = server.post("/predict", b"{" + b" " * (9 << 20) + b"}")
    assert too_large is not None and too_large.status == 413
    metadata = server.get("/v2/models/flowers")
    assert metadata is not None and metadata.json()["platform"] == "conveyor-sklearn"

    metrics = server.get("/metrics")
    assert metrics is not None and metrics.headers["content-type"].startswith("text/plain")
    text = metrics.body.decode()
    assert 'conveyor_serving_requests_total{code="200",endpoint="predict"} 1.0' in text
    assert 'conveyor_serving_requests_total{code="422",endpoint="predict"} 1.0' in text
    assert 'conveyor_serving_requests_total{code="413",endpoint="predict"} 1.0' in text
    assert 'conveyor_serving_request_duration_seconds_count{endpoint="predict"} 3.0' in text
    assert 'conveyor_serving_predictions_total{class="setosa"} 10.0' in text
    assert f'conveyor_serving_model_info{{digest="{forest.digest}"' in text
    assert "conveyor_serving_ready 1.0" in text


def _failure(server: Server) -> dict[str, object]:
    code = server.wait_exit()
    message = json.loads(server.termination_log.read_text())
    assert server.report() == message, "the same verdict on stdout and in the termination log"
    return {"code": code, **message}


def test_a_file_that_does_not_match_its_digest_is_never_served(
    start: Start, storage: Storage, forest: TrainedModel
) -> None:
    args = storage.publish("models/tampered", forest)
    args[args.index("--artifact-digest") + 1] = "sha256:" + "0" * 64
    failure = _failure(start(args))
    assert failure["code"] == 2 and failure["reason"] == "DigestMismatch"
    assert failure["retryable"] is False and "sha256:" + "0" * 64 in str(failure["message"])

    onnx = storage.publish("models/tampered-onnx", forest)
    onnx[onnx.index("--onnx-digest") + 1] = forest.digest  # the skops file's, not the ONNX's
    failure = _failure(start(onnx))
    assert (failure["code"], failure["reason"]) == (2, "DigestMismatch")
    assert "model.onnx" in str(failure["message"])


def test_unreadable_and_untrusted_files_are_never_served(
    start: Start, storage: Storage, forest: TrainedModel
) -> None:
    from conveyor.training.artifacts import digest

    garbage = b"PK\x03\x04 not really a skops file"
    corrupt = storage.publish("models/corrupt", forest, onnx=False)
    corrupt[corrupt.index("--artifact-uri") + 1] = storage.put("models/corrupt/bad.skops", garbage)
    corrupt[corrupt.index("--artifact-digest") + 1] = digest(garbage)
    failure = _failure(start(corrupt))
    assert (failure["code"], failure["reason"]) == (3, "ArtifactUnreadable")
    assert "not a readable skops file" in str(failure["message"])

    sneaky = train_flowers(SneakyClassifier(), onnx=False)
    failure = _failure(start(storage.publish("models/sneaky", sneaky)))
    assert (failure["code"], failure["reason"]) == (3, "ArtifactUnreadable")
    assert "SneakyClassifier" in str(failure["message"])
    assert "outside the allowlist" in str(failure["message"])

    missing = storage.publish("models/missing", forest, onnx=False)
    missing[missing.index("--artifact-uri") + 1] = "s3://conveyor/models/missing/none.skops"
    failure = _failure(start(missing))
    assert (failure["code"], failure["reason"]) == (3, "ArtifactUnreadable")
    assert "none.skops" in str(failure["message"])


def test_a_sample_row_the_model_cannot_answer_fails_the_warm_up(
    start: Start, storage: Storage, forest: TrainedModel
) -> None:
    broken = TrainedModel(
        forest.pipeline, forest.features, forest.schema, forest.rows, forest.onnx,
        {**forest.card, "sample_row": {**forest.card["sample_row"], "garden": "east"}},
        forest.skops,
    )  # fmt: skip
    failure = _failure(start(storage.publish("models/warmup", broken)))
    assert (failure["code"], failure["reason"]) == (4, "WarmupFailed")
    assert "garden: 'east' is not one of the categories" in str(failure["message"])


def test_bad_settings_and_unreachable_storage_say_what_to_fix(
    start: Start, storage: Storage, forest: TrainedModel
) -> None:
    args = storage.publish("models/settings", forest)
    args[args.index("--artifact-digest") + 1] = "abc"
    failure = _failure(start(args))
    assert (failure["code"], failure["reason"]) == (8, "InvalidConfiguration")
    assert "'--artifact-digest'" in str(failure["message"])

    nowhere = f"http://127.0.0.1:{free_port()}"
    failure = _failure(start(storage.publish("models/down", forest), endpoint=nowhere))
    assert (failure["code"], failure["reason"], failure["retryable"]) == (
        7,
        "StorageUnavailable",
        True,
    )

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        failure = _failure(start(storage.publish("models/port", forest), CONVEYOR_PORT_HTTP=port))
    assert (failure["code"], failure["reason"]) == (8, "InvalidConfiguration")
    assert f"127.0.0.1:{port}" in str(failure["message"])


def test_the_server_is_live_at_once_and_ready_only_once_the_model_is_loaded(
    start: Start, storage: Storage, forest: TrainedModel, tmp_path: Path
) -> None:
    args = storage.publish("models/slow", forest)
    slow = SlowS3(storage.endpoint, "models/slow/model.skops")
    try:
        server = start(args, endpoint=slow.endpoint)
        wait_for(slow.holding.is_set, what="the download to start")
        wait_for(lambda: server.status("/v2/health/live") == 200, what="the server to listen")
        assert server.status("/v2/health/ready") == 400
        assert server.status("/v2/models/flowers/ready") == 400
        predict = server.post("/predict", {"instances": [forest.card["sample_row"]]})
        assert predict is not None and predict.status == 503
        assert "still loading" in predict.json()["error"]
        slow.release()
        server.wait_ready()
    finally:
        slow.close()
    assert "Downloading s3://conveyor/models/slow/model.skops" in server.log()


def test_a_restarted_server_serves_from_its_cache_while_storage_is_down(
    start: Start, storage: Storage, forest: TrainedModel, tmp_path: Path
) -> None:
    args = storage.publish("models/cached", forest)
    card = args.index("--card-uri")
    args = [*args[:card], *args[card + 2 :], "--cache-dir", str(tmp_path / "cache")]
    first = start(args, CONVEYOR_SERVE_DRAIN_SECONDS="0").wait_ready()
    first.terminate()
    assert first.wait_exit() == 0

    nowhere = f"http://127.0.0.1:{free_port()}"
    again = start(args, endpoint=nowhere).wait_ready()
    assert "from the cache" in again.log() and "Downloading" not in again.log()
    answer = again.post("/predict", {"instances": [request_row(forest.rows[0])]})
    assert answer is not None and answer.status == 200


def test_sigterm_drains_then_finishes_the_requests_in_flight(
    start: Start, storage: Storage, forest: TrainedModel
) -> None:
    server = start(
        storage.publish("models/drain", forest),
        CONVEYOR_SERVE_DRAIN_SECONDS="1",
        CONVEYOR_SERVE_GRACE_SECONDS="30",
    ).wait_ready()
    body = json.dumps({"instances": [request_row(forest.rows[100])]}).encode()
    in_flight = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    in_flight.sendall(
        b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body[:10])
    )
    wait_for(lambda: _in_flight(server) == 2, what="the server to take the request in")

    server.terminate()
    wait_for(lambda: server.status("/v2/health/ready") == 400, what="readiness to go false")
    assert server.status("/v2/health/live") == 200  # still answering while it drains
    wait_for(lambda: server.get("/v2/health/live") is None, what="the server to stop listening")
    assert server.process.poll() is None, "it exited with a request in flight"

    in_flight.sendall(body[10:])
    response = _read_response(in_flight)
    assert response.startswith(b"HTTP/1.1 200"), response
    assert forest.pipeline.predict([request_row(forest.rows[100])])[0].encode() in response
    assert server.wait_exit() == 0
    assert server.report()["ok"] is True


def _in_flight(server: Server) -> float:
    """The requests the server is answering, the scrape that asks included."""
    answer = server.get("/metrics")
    assert answer is not None
    for line in answer.body.decode().splitlines():
        if line.startswith("conveyor_serving_requests_in_flight "):
            return float(line.split()[1])
    raise AssertionError("no conveyor_serving_requests_in_flight in /metrics")


def _read_response(connection: socket.socket) -> bytes:
    """One whole HTTP/1.1 response (headers and a Content-Length body), then close."""

    def more() -> bytes:
        chunk = connection.recv(65536)
        assert chunk, "the server closed the connection before its answer was complete"
        return chunk

    data = b""
    while b"\r\n\r\n" not in data:
        data += more()
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += more()
    connection.close()
    return head + b"\r\n\r\n" + body
