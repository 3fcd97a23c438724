"""The server in-process: V2 and raw records answer what the trained pipeline answers, with
either runtime; health, metadata, request ids, draining and metrics as a client sees them."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conveyor.serving.app import create_app
from conveyor.training.artifacts import ROW_PATH_MAX_ROWS
from tests.models import TrainedModel, request_row
from tests.unit.serving.conftest import AsgiClient, served, settings_for
from tests.unit.serving.test_bad_requests import v2_body

INFER = "/v2/models/flowers/infer"


def predictions(response: Any) -> dict[str, Any]:
    """name → output tensor of a V2 answer."""
    return {output["name"]: output for output in response.json()["outputs"]}


def test_health_and_metadata_list_every_input_and_output(client: AsgiClient, runtime: str) -> None:
    assert (client.get("/v2/health/live").status, client.get("/v2/health/live").body) == (200, b"")
    assert client.get("/v2/health/ready").status == 200
    assert client.get("/v2/models/flowers/ready").status == 200
    assert client.get("/v2/models/flowers/versions/3/ready").status == 200
    assert client.get("/v2/models/flowers/versions/4/ready").status == 404
    assert client.get("/v2").json()["name"] == "conveyor"

    metadata = client.get("/v2/models/flowers").json()
    assert client.get("/v2/models/flowers/versions/3").json() == metadata
    assert (metadata["name"], metadata["versions"]) == ("flowers", ["3"])
    assert metadata["platform"] == f"conveyor-{runtime}"
    inputs = {item["name"]: (item["datatype"], item["shape"]) for item in metadata["inputs"]}
    assert inputs == {
        "flower_id": ("INT64", [-1]),
        "observed_at": ("BYTES", [-1]),
        "sepal_length_cm": ("FP64", [-1]),
        "sepal_width_cm": ("FP64", [-1]),
        "petal_length_cm": ("FP64", [-1]),
        "petal_width_cm": ("FP64", [-1]),
        "garden": ("BYTES", [-1]),
        "watered": ("BOOL", [-1]),
    }
    optional = [item["name"] for item in metadata["inputs"] if item.get("parameters")]
    assert optional == ["flower_id", "observed_at"]  # the entity key and event time
    [labels, probabilities] = metadata["outputs"]
    assert (labels["name"], labels["datatype"]) == ("predict", "BYTES")
    assert probabilities["name"] == "predict_proba" and probabilities["shape"] == [-1, 3]
    assert probabilities["parameters"]["classes"] == ["setosa", "versicolor", "virginica"]


def test_raw_records_get_the_pipelines_own_answers(
    client: AsgiClient, forest: TrainedModel, runtime: str
) -> None:
    rows = [request_row(row) for row in forest.rows]
    rows[5]["petal_width_cm"] = None  # imputed, as at materialization
    response = client.post("/predict", {"instances": rows})

    assert response.status == 200, response.body
    answer = response.json()
    assert (answer["model_name"], answer["model_version"]) == ("flowers", "3")
    assert answer["predictions"] == forest.pipeline.predict(rows).tolist()
    assert answer["classes"] == ["setosa", "versicolor", "virginica"]
    expected = forest.pipeline.predict_proba(rows)
    assert np.allclose(answer["probabilities"], expected, atol=1e-6 if runtime == "onnx" else 0)
    assert answer["request_id"] == response.headers["x-request-id"]


def test_v2_columns_flat_or_nested_answer_as_the_records_do(
    client: AsgiClient, forest: TrainedModel
) -> None:
    rows = [request_row(row) for row in forest.rows[40:60]]
    expected = client.post("/predict", {"instances": rows}).json()
    flat = v2_body(rows)
    nested = v2_body(rows)
    for item in nested["inputs"]:
        item["shape"], item["data"] = [len(rows), 1], [[value] for value in item["data"]]
    narrow = v2_body(rows)  # any float or integer datatype is taken for a float column
    for item in narrow["inputs"]:
        item["datatype"] = {"FP64": "FP32"}.get(item["datatype"], item["datatype"])

    for path in (INFER, "/v2/models/flowers/versions/3/infer"):
        for body in (flat, nested, narrow):
            response = client.post(path, body)
            assert response.status == 200, response.body
            outputs = predictions(response)
            assert outputs["predict"]["data"] == expected["predictions"]
            assert outputs["predict"]["shape"] == [len(rows)]
            assert outputs["predict_proba"]["shape"] == [len(rows), 3]
            probabilities = np.reshape(outputs["predict_proba"]["data"], (len(rows), 3))
            assert np.allclose(probabilities, expected["probabilities"])


@pytest.mark.parametrize("size", [3, ROW_PATH_MAX_ROWS + 6])  # the row path, the batch path
def test_v2_ints_beyond_a_float_or_int64_answer_as_the_records_do(
    onnx_client: AsgiClient, forest: TrainedModel, size: int
) -> None:
    # A V2 batch once went to pyarrow, which refused them: a 500.
    rows = [request_row(row) | {"flower_id": row["flower_id"]} for row in forest.rows[:size]]
    too_large = {
        "sepal_length_cm": (2**53 + 1, "sepal_length_cm: 9007199254740992.0 is above max 20"),
        "flower_id": (2**63 + 5, f"flower_id: '{2**63 + 5}' is not a valid int"),
    }
    for column, (value, reason) in too_large.items():
        sent = [*rows[:-1], rows[-1] | {column: value}]
        for response in (
            onnx_client.post("/predict", {"instances": sent}),
            onnx_client.post(INFER, v2_body(sent)),
        ):
            assert response.status == 422, response.body
            assert f"1 of {size} row(s) break the FeatureSet schema: {reason}" in response.error


def test_the_optional_entity_key_and_event_time_may_be_sent(
    onnx_client: AsgiClient, forest: TrainedModel
) -> None:
    row = forest.rows[7]
    keyed = {k: v for k, v in row.items() if k != "species"}
    answer = onnx_client.post("/predict", {"instances": [keyed, request_row(row)]}).json()
    assert answer["predictions"][0] == answer["predictions"][1]


def test_request_ids_are_echoed_or_generated(onnx_client: AsgiClient) -> None:
    mine = onnx_client.post(INFER, v2_body(), headers={"x-request-id": "req-42"})
    assert mine.headers["x-request-id"] == "req-42" and mine.json()["id"] == "req-42"
    body_id = onnx_client.post(INFER, {**v2_body(), "id": "v2-7"}, headers={"x-request-id": "h"})
    assert body_id.json()["id"] == "v2-7"  # V2: the request's own id comes back
    assert body_id.headers["x-request-id"] == "h"
    generated = {onnx_client.post(INFER, v2_body()).headers["x-request-id"] for _ in range(3)}
    assert len(generated) == 3 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in generated)
    health = onnx_client.get("/v2/health/live", headers={"x-request-id": "probe"})
    assert health.headers["x-request-id"] == "probe"


def test_only_the_outputs_asked_for_come_back(onnx_client: AsgiClient) -> None:
    response = onnx_client.post(INFER, {**v2_body(), "outputs": [{"name": "predict_proba"}]})
    assert list(predictions(response)) == ["predict_proba"]


def test_a_regressor_answers_values_without_probabilities(
    ridge: TrainedModel, runtime: str
) -> None:
    settings = settings_for(ridge, model="plants")
    app = create_app(settings, served(ridge, onnx=runtime == "onnx", name="plants"))
    client = AsgiClient(app)
    rows = [{k: v for k, v in row.items() if k != "growth_cm"} for row in ridge.rows[:30]]

    answer = client.post("/predict", {"instances": rows}).json()
    assert set(answer) == {"model_name", "model_version", "request_id", "predictions"}
    assert np.allclose(answer["predictions"], ridge.pipeline.predict(rows), rtol=1e-4)
    metadata = client.get("/v2/models/plants").json()
    assert [output["name"] for output in metadata["outputs"]] == ["predict"]
    assert metadata["parameters"]["task"] == "regression"
    v2 = {
        "inputs": [
            {"name": "height_cm", "shape": [1], "datatype": "FP64", "data": [3.5]},
            {"name": "leaves", "shape": [1], "datatype": "INT32", "data": [2]},
            {"name": "soil", "shape": [1], "datatype": "BYTES", "data": ["loam"]},
        ]
    }
    [output] = client.post("/v2/models/plants/infer", v2).json()["outputs"]
    assert output["datatype"] == ("FP32" if runtime == "onnx" else "FP64")
    row = {"height_cm": 3.5, "leaves": 2, "soil": "loam"}
    assert output["data"] == pytest.approx(ridge.pipeline.predict([row]).tolist(), rel=1e-4)
    assert 'conveyor_serving_predictions_total{class=""} 31.0' in client.get("/metrics").text


def test_before_the_model_is_loaded_the_server_is_live_but_not_ready(
    forest: TrainedModel,
) -> None:
    app = create_app(settings_for(forest))
    client = AsgiClient(app)
    assert client.get("/v2/health/live").status == 200
    ready = client.get("/v2/health/ready")
    assert ready.status == 400 and "still loading" in ready.error
    assert client.get("/v2/models/flowers/ready").status == 400
    assert client.get("/v2/models/flowers").status == 503
    assert client.post(INFER, v2_body()).status == 503
    assert client.post("/predict", {"instances": [request_row(forest.rows[0])]}).status == 503
    assert "conveyor_serving_ready 0.0" in client.get("/metrics").text

    app.serve(served(forest, onnx=True))
    assert client.get("/v2/health/ready").status == 200
    assert client.post(INFER, v2_body()).status == 200
    assert "conveyor_serving_ready 1.0" in client.get("/metrics").text


def test_a_draining_server_is_not_ready_yet_answers_and_closes_connections(
    forest: TrainedModel,
) -> None:
    app = create_app(settings_for(forest), served(forest, onnx=True))
    client = AsgiClient(app)
    assert "connection" not in client.post(INFER, v2_body()).headers

    app.drain()
    ready = client.get("/v2/health/ready")
    assert ready.status == 400 and "shutting down" in ready.error
    assert client.get("/v2/models/flowers/ready").status == 400
    answer = client.post(INFER, v2_body())
    assert answer.status == 200 and answer.headers["connection"] == "close"


def test_a_body_in_chunks_is_read_whole_and_the_limit_counts_every_chunk(
    forest: TrainedModel,
) -> None:
    app = create_app(settings_for(forest, max_body_bytes=4096), served(forest, onnx=True))
    client = AsgiClient(app)
    body = b'{"instances": [%s]}' % b",".join(
        [
            b'{"sepal_length_cm": 5.0, "sepal_width_cm": 3.1, "petal_length_cm": 1.4, '
            b'"petal_width_cm": 0.2, "garden": "north", "watered": false}'
        ]
        * 3
    )
    chunks = [body[i : i + 50] for i in range(0, len(body), 50)]
    headers = {"content-type": "application/json"}
    answer = client.request("POST", "/predict", chunks, headers)
    assert answer.json()["predictions"] == ["setosa"] * 3

    big = body * 20  # sent without a Content-Length: only the chunks tell its size
    chunked = [big[i : i + 1000] for i in range(0, len(big), 1000)]
    too_large = client.request("POST", "/predict", chunked, headers)
    assert too_large.status == 413 and "connection" not in too_large.headers
    huge = client.request("POST", "/predict", b"", {**headers, "content-length": "1000000"})
    assert huge.status == 413 and huge.headers["connection"] == "close"


def test_metrics_count_requests_latency_predictions_and_name_the_version(
    client: AsgiClient, forest: TrainedModel, runtime: str
) -> None:
    rows = [request_row(row) for row in forest.rows]
    client.post("/predict", {"instances": rows})
    client.post(INFER, v2_body())
    client.post(INFER, {"inputs": []})
    client.get("/v2/models/roses")

    families = {
        family.name: family
        for family in text_string_to_metric_families(client.get("/metrics").text)
    }
    requests = {
        (s.labels["endpoint"], s.labels["code"]): s.value
        for s in families["conveyor_serving_requests"].samples
        if s.name.endswith("_total")
    }
    assert requests == {
        ("predict", "200"): 1,
        ("infer", "200"): 1,
        ("infer", "400"): 1,
        ("model_metadata", "404"): 1,
    }
    counts = {
        s.labels["endpoint"]: s.value
        for s in families["conveyor_serving_request_duration_seconds"].samples
        if s.name.endswith("_count")
    }
    assert counts == {"predict": 1, "infer": 2, "model_metadata": 1}
    by_class = {
        s.labels["class"]: s.value
        for s in families["conveyor_serving_predictions"].samples
        if s.name.endswith("_total")
    }
    expected = (
        forest.pipeline.predict(rows).tolist()
        + forest.pipeline.predict([request_row(forest.rows[0])]).tolist()
    )
    assert by_class == {label: expected.count(label) for label in set(expected)}
    [info] = families["conveyor_serving_model_info"].samples
    assert info.labels == {
        "model": "flowers",
        "version": "3",
        "runtime": runtime,
        "digest": forest.digest,
    }
