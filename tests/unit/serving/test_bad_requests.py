"""The bad-request corpus: every malformed request gets a 4xx with `{"error": ...}` naming the
field and what to fix, never a 500, and the server goes on answering."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from conveyor.serving.app import create_app
from tests.models import TrainedModel, flower_rows, request_row
from tests.unit.serving.conftest import AsgiClient, served, settings_for

INFER = "/v2/models/flowers/infer"
ROW = request_row(flower_rows()[0])
DATATYPES = {float: "FP64", str: "BYTES", bool: "BOOL", int: "INT64"}


def v2_body(rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    rows = rows or [ROW]
    return {
        "inputs": [
            {
                "name": name,
                "shape": [len(rows)],
                "datatype": DATATYPES[type(value)],
                "data": [row[name] for row in rows],
            }
            for name, value in rows[0].items()
        ]
    }


def v2_with(change: Any) -> dict[str, Any]:
    """The good V2 body, then `change(body)` applied to a copy."""
    body = copy.deepcopy(v2_body())
    change(body)
    return body


def tensor(body: dict[str, Any], name: str) -> dict[str, Any]:
    return next(item for item in body["inputs"] if item["name"] == name)


def records(*rows: dict[str, Any]) -> dict[str, Any]:
    return {"instances": list(rows)}


@dataclass
class Case:
    id: str
    status: int
    names: tuple[str, ...]
    """Words the error must contain: the field, and what to send instead where it says so."""
    body: Any = None
    raw: bytes | None = None
    path: str = INFER
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})


def _set(path: str, value: Any) -> Any:
    """A change that sets tensor `name`'s `key` (path "name.key") to `value`."""
    name, key = path.split(".")
    return lambda body: tensor(body, name).__setitem__(key, value)


def _drop(name: str) -> Any:
    return lambda body: body["inputs"].remove(tensor(body, name))


CASES = [
    # The body itself.
    Case("invalid-json", 400, ("not valid JSON",), raw=b'{"inputs": ['),
    Case(
        "nan-literal", 400, ("not valid JSON",), raw=b'{"instances": [{"x": NaN}]}', path="/predict"
    ),
    Case("empty-body", 400, ("empty",), raw=b""),
    Case("array-body", 400, ("JSON object",), body=[v2_body()]),
    Case(
        "text-plain",
        415,
        ("Content-Type", "application/json"),
        body=v2_body(),
        headers={"content-type": "text/plain"},
    ),
    Case(
        "form-encoded",
        415,
        ("application/x-www-form-urlencoded",),
        body=v2_body(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    ),
    Case(
        "binary-tensors",
        415,
        ("binary tensor", "binary_data=False"),
        body=v2_body(),
        headers={"content-type": "application/json", "inference-header-content-length": "10"},
    ),
    # The V2 request's structure.
    Case("unknown-field", 400, ("'input'",), body={**v2_body(), "input": []}),
    Case("no-inputs", 400, ("'inputs'", "sepal_length_cm"), body={"id": "1"}),
    Case("empty-inputs", 400, ("'inputs'",), body={"inputs": []}),
    Case("input-not-object", 400, ("inputs[0]",), body={"inputs": ["sepal_length_cm"]}),
    Case(
        "no-datatype",
        400,
        ("inputs[0].datatype",),
        body=v2_with(lambda b: b["inputs"][0].pop("datatype")),
    ),
    Case(
        "unknown-input",
        400,
        ("petal_colour",),
        body=v2_with(lambda b: b["inputs"].append({**b["inputs"][0], "name": "petal_colour"})),
    ),
    Case("missing-input", 400, ("'garden'",), body=v2_with(_drop("garden"))),
    Case(
        "input-twice",
        400,
        ("sepal_width_cm", "twice"),
        body=v2_with(lambda b: b["inputs"].append(tensor(b, "sepal_width_cm"))),
    ),
    Case("id-not-string", 400, ("'id'",), body={**v2_body(), "id": 7}),
    Case(
        "unknown-output",
        400,
        ("outputs[0].name", "predict_proba"),
        body={**v2_body(), "outputs": [{"name": "scores"}]},
    ),
    # Datatypes and shapes.
    Case(
        "not-a-datatype",
        400,
        ("FLOAT64", "FP64"),
        body=v2_with(_set("sepal_length_cm.datatype", "FLOAT64")),
    ),
    Case(
        "bytes-for-float",
        400,
        ("sepal_length_cm", "send FP64"),
        body=v2_with(_set("sepal_length_cm.datatype", "BYTES")),
    ),
    Case(
        "float-for-category",
        400,
        ("garden", "send BYTES"),
        body=v2_with(_set("garden.datatype", "FP64")),
    ),
    Case(
        "bool-as-int",
        400,
        ("watered", "send BOOL"),
        body=v2_with(_set("watered.datatype", "INT64")),
    ),
    Case(
        "matrix-shape",
        400,
        ("petal_width_cm", ".shape", "[N, 1]"),
        body=v2_with(_set("petal_width_cm.shape", [1, 2])),
    ),
    Case(
        "shape-not-list",
        400,
        ("petal_width_cm", ".shape"),
        body=v2_with(_set("petal_width_cm.shape", "1")),
    ),
    Case(
        "shape-of-a-float",
        400,
        ("petal_width_cm", ".shape", "send [N] or"),
        body=v2_with(_set("petal_width_cm.shape", [1.0])),
    ),
    Case(
        "shape-of-a-bool",
        400,
        ("petal_width_cm", ".shape", "send [N] or"),
        body=v2_with(_set("petal_width_cm.shape", [1, True])),
    ),
    Case(
        "zero-rows",
        400,
        ("petal_width_cm", "no rows"),
        body=v2_with(_set("petal_width_cm.shape", [0])),
    ),
    Case(
        "shape-vs-data",
        400,
        ("petal_width_cm", "2 value(s)", "holds 1"),
        body=v2_with(_set("petal_width_cm.shape", [2])),
    ),
    Case(
        "data-not-array",
        400,
        ("petal_width_cm", ".data must be an array"),
        body=v2_with(_set("petal_width_cm.data", 0.2)),
    ),
    Case(
        "nested-too-wide",
        400,
        ("petal_width_cm", "nested"),
        body=v2_with(_set("petal_width_cm.data", [[0.2, 0.3]])),
    ),
    Case(
        "string-for-number",
        400,
        ("sepal_length_cm", "data[0]", '"5.1"', "a number"),
        body=v2_with(_set("sepal_length_cm.data", ["5.1"])),
    ),
    Case(
        "bool-for-number",
        400,
        ("sepal_length_cm", "data[0]", "true"),
        body=v2_with(_set("sepal_length_cm.data", [True])),
    ),
    Case(
        "number-for-bytes",
        400,
        ("garden", "data[0]", "a string"),
        body=v2_with(_set("garden.data", [1])),
    ),
    Case(
        "string-for-bool",
        400,
        ("watered", '"yes"', "true or false"),
        body=v2_with(_set("watered.data", ["yes"])),
    ),
    Case(
        "negative-unsigned",
        400,
        ("flower_id", "non-negative"),
        body=v2_with(
            lambda b: b["inputs"].append(
                {"name": "flower_id", "shape": [1], "datatype": "UINT32", "data": [-4]}
            )
        ),
    ),
    Case(
        "batch-sizes-differ",
        400,
        ("garden", "batch of 2", "has 1"),
        body=v2_with(lambda b: tensor(b, "garden").update(shape=[2], data=["north", "south"])),
    ),
    # Values against the FeatureSet's schema.
    Case(
        "above-max",
        422,
        ("sepal_length_cm", "max"),
        body=v2_with(_set("sepal_length_cm.data", [25.0])),
    ),
    Case("unknown-category", 422, ("garden", "east"), body=v2_with(_set("garden.data", ["east"]))),
    Case("null-not-nullable", 422, ("garden",), body=v2_with(_set("garden.data", [None]))),
    # Models, versions, paths and methods.
    Case(
        "unknown-model",
        404,
        ("'roses'", "'flowers'"),
        body=v2_body(),
        path="/v2/models/roses/infer",
    ),
    Case(
        "unknown-version",
        404,
        ("version '7'", "version 3"),
        body=v2_body(),
        path="/v2/models/flowers/versions/7/infer",
    ),
    Case("unknown-metadata", 404, ("'roses'",), method="GET", path="/v2/models/roses"),
    Case("unknown-path", 404, ("/v2/modelz/flowers",), body=v2_body(), path="/v2/modelz/flowers"),
    Case("wrong-method", 405, ("POST", "GET"), method="GET"),
    Case(
        "too-large",
        413,
        ("over the limit", "CONVEYOR_SERVE_MAX_BODY_BYTES"),
        body=v2_with(_set("garden.data", ["north" * 400_000])),
    ),
    # Raw records (/predict).
    Case("no-instances", 400, ("'instances'",), body={"rows": [ROW]}, path="/predict"),
    Case("empty-instances", 400, ("'instances'", "non-empty"), body=records(), path="/predict"),
    Case(
        "instance-not-object",
        400,
        ("instances[1]", "object"),
        body=records(ROW, [1, 2]),
        path="/predict",
    ),
    Case(
        "missing-feature",
        422,
        ("instances[1].petal_width_cm", "missing", "null"),
        body=records(ROW, {k: v for k, v in ROW.items() if k != "petal_width_cm"}),
        path="/predict",
    ),
    Case(
        "unknown-feature",
        422,
        ("instances[0].petal_colour",),
        body=records({**ROW, "petal_colour": "blue"}),
        path="/predict",
    ),
    Case(
        "target-sent",
        422,
        ("instances[0].species", "target"),
        body=records({**ROW, "species": "setosa"}),
        path="/predict",
    ),
    Case(
        "record-string-for-number",
        422,
        ("instances[1].sepal_length_cm", '"5.1"', "a number"),
        body=records(ROW, {**ROW, "sepal_length_cm": "5.1"}),
        path="/predict",
    ),
    Case(
        "record-float-for-int",
        422,
        ("instances[0].flower_id", "an integer"),
        body=records({**ROW, "flower_id": 1.5}),
        path="/predict",
    ),
    Case(
        "record-below-min",
        422,
        ("petal_length_cm", "min"),
        body=records({**ROW, "petal_length_cm": -1.0}),
        path="/predict",
    ),
    Case(
        "record-bad-timestamp",
        422,
        ("observed_at",),
        body=records({**ROW, "observed_at": "yesterday"}),
        path="/predict",
    ),
]


@pytest.fixture(scope="module")
def client(forest: TrainedModel) -> AsgiClient:
    """The forest in onnxruntime, with a body limit of 1 MiB."""
    settings = settings_for(forest, max_body_bytes=1 << 20)
    return AsgiClient(create_app(settings, served(forest, onnx=True)))


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_bad_request_gets_a_4xx_naming_the_field(client: AsgiClient, case: Case) -> None:
    body = case.raw if case.raw is not None else json.dumps(case.body).encode()
    if case.method == "GET":
        body = b""
    response = client.request(case.method, case.path, body, case.headers)

    assert response.status == case.status, response.body
    for name in case.names:
        assert name in response.error, f"{name!r} not in {response.error!r}"
    assert response.headers["x-request-id"]
    # And the server goes on answering.
    assert client.post(INFER, v2_body()).status == 200


def test_the_corpus_is_large_and_covers_every_status() -> None:
    assert len(CASES) >= 30
    assert {case.status for case in CASES} == {400, 404, 405, 413, 415, 422}
