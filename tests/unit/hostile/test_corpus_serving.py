"""Hostile prediction requests against the model server over real HTTP — uvicorn with the
config `conveyor serve` uses (uvloop, httptools), a real model in onnxruntime: each gets a 4xx
whose `error` names the field, never a 500, and a good request still gets its prediction."""

from __future__ import annotations

import copy
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from sklearn.ensemble import RandomForestClassifier

from conveyor.sandbox.processes import free_port
from conveyor.serving.app import create_app
from conveyor.serving.server import uvicorn_config
from tests.models import flower_rows, request_row, train_flowers
from tests.unit.serving.conftest import served, settings_for

INFER = "/v2/models/flowers/infer"
ROW = request_row(flower_rows()[0])
DATATYPES = {float: "FP64", str: "BYTES", bool: "BOOL", int: "INT64"}


def good() -> dict[str, Any]:
    return {
        "inputs": [
            {"name": name, "shape": [1], "datatype": DATATYPES[type(value)], "data": [value]}
            for name, value in ROW.items()
        ]
    }


def with_tensor(name: str, **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(good())
    next(t for t in body["inputs"] if t["name"] == name).update(changes)
    return body


@dataclass
class Server:
    port: int

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            all_headers = {"Content-Type": "application/json", **(headers or {})}
            connection.request(method, path, body=body or None, headers=all_headers)
            response = connection.getresponse()
            raw = response.read()
            try:
                return response.status, json.loads(raw)
            except ValueError:
                return response.status, raw.decode(errors="replace")
        finally:
            connection.close()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    forest = train_flowers(RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0))
    port = free_port()
    settings = settings_for(forest, max_body_bytes=1 << 20, host="127.0.0.1", port=port)
    app = create_app(settings, served(forest, onnx=True))
    runner = uvicorn.Server(uvicorn_config(settings, app))
    thread = threading.Thread(target=runner.run, name="serving", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not runner.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    yield Server(port)
    runner.should_exit = True
    thread.join(30)


@dataclass(frozen=True)
class Case:
    id: str
    words: tuple[str, ...]
    """What the error must say: the field, at least."""
    body: Any = None
    raw: bytes | None = None
    path: str = INFER
    headers: dict[str, str] = field(default_factory=dict)


CASES = [
    Case("truncated-json", ("not valid JSON",), raw=b'{"inputs": [{"name": '),
    Case("nan-literal", ("not valid JSON",), raw=json.dumps(good()).replace("5.1", "NaN").encode()),
    Case("infinity-literal", ("not valid JSON",), raw=b'{"inputs": [{"data": [Infinity]}]}'),
    Case("number-overflows-double", ("not valid JSON", "infinity"), raw=b'{"inputs": [1e400]}'),
    Case("invalid-utf8", ("not valid JSON",), raw=b'{"inputs": "\xff\xfe"}'),
    Case("nested-100000-deep", ("not valid JSON",), raw=b"[" * 100_000 + b"]" * 100_000),
    Case("json-null", ("JSON object",), raw=b"null"),
    Case(
        "wrong-content-type", ("Content-Type",), body=good(), headers={"Content-Type": "text/xml"}
    ),
    Case("huge-body", ("over the limit",), body={**good(), "id": "x" * (2 << 20)}),
    Case("inputs-not-list", ("'inputs'",), body={"inputs": {"name": "x"}}),
    Case("tensor-null", ("inputs[0]",), body={"inputs": [None]}),
    Case(
        "name-not-string",
        ("inputs[0].name",),
        body={"inputs": [{**good()["inputs"][0], "name": 5}]},
    ),
    Case(
        "name-dunder",
        ("'__class__'",),
        body={"inputs": [{**good()["inputs"][0], "name": "__class__"}]},
    ),
    Case(
        "name-lookalike",
        ("'\u0455epal_length_cm'",),
        body={"inputs": [{**good()["inputs"][0], "name": "\u0455epal_length_cm"}]},
    ),
    Case(
        "million-rows-claimed-one-given",
        ("sepal_length_cm", "1000000 value(s)", "holds 1"),
        body=with_tensor("sepal_length_cm", shape=[1_000_000]),
    ),
    Case(
        "shape-beyond-int64",
        ("sepal_length_cm", ".shape"),
        body=with_tensor("sepal_length_cm", shape=[10**30]),
    ),
    Case(
        "negative-shape",
        ("sepal_length_cm", "no rows"),
        body=with_tensor("sepal_length_cm", shape=[-1]),
    ),
    Case(
        "shape-3d",
        ("sepal_length_cm", ".shape"),
        body=with_tensor("sepal_length_cm", shape=[1, 1, 1]),
    ),
    Case(
        "string-in-numeric-tensor",
        ("sepal_length_cm", "data[0]", "a number"),
        body=with_tensor("sepal_length_cm", data=["1e308"]),
    ),
    Case(
        "object-in-tensor",
        ("sepal_length_cm", "data[0]"),
        body=with_tensor("sepal_length_cm", data=[{"__class__": 1}]),
    ),
    Case(
        "datatype-dunder",
        ("sepal_length_cm", ".datatype"),
        body=with_tensor("sepal_length_cm", datatype="__class__"),
    ),
    Case(
        "missing-data",
        ("inputs[", ".data is missing"),
        body={"inputs": [{"name": "garden", "shape": [1], "datatype": "BYTES"}]},
    ),
    Case(
        "deep-nested-data",
        ("sepal_length_cm", "data[0]", "not a number"),
        body=with_tensor("sepal_length_cm", data=[[[[5.1]]]]),
    ),
    Case(
        "huge-float-out-of-schema",
        ("sepal_length_cm", "max"),
        body=with_tensor("sepal_length_cm", data=[1e308]),
    ),
    Case(
        "instances-nul-key",
        ("instances[0]",),
        body={"instances": [{**ROW, "\x00": 1}]},
        path="/predict",
    ),
    Case(
        "instances-million-wide",
        ("instances[0]",),
        body={"instances": [{f"c{i}": 0 for i in range(50_000)}]},
        path="/predict",
    ),
    Case("path-traversal-model", ("'..'",), body=good(), path="/v2/models/../infer"),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{i + 1:02d}-{c.id}" for i, c in enumerate(CASES)])
def test_a_hostile_request_gets_a_4xx_naming_the_field(server: Server, case: Case) -> None:
    body = case.raw if case.raw is not None else json.dumps(case.body).encode()
    status, document = server.request("POST", case.path, body, case.headers)

    assert 400 <= status < 500, (status, document)
    error = document["error"]
    for word in case.words:
        assert word in error, f"{word!r} not in {error!r}"
    # And it still answers a good request.
    status, answer = server.request("POST", INFER, json.dumps(good()).encode())
    assert status == 200, answer
    assert answer["outputs"]


def test_a_body_cut_off_midway_does_not_take_the_server_down(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        raw.sendall(
            b"POST " + INFER.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            b"\r\nContent-Length: 100000\r\n\r\n" + b'{"inputs": ['
        )
    status, answer = server.request("POST", INFER, json.dumps(good()).encode())
    assert status == 200, answer
