"""The server in-process: real models (tests/models.py) behind the ASGI app, driven by a small
ASGI client that speaks to it as uvicorn does (scope, receive, send)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge

from conveyor.serving.app import ServingApp, create_app
from conveyor.serving.model import ServedModel
from conveyor.serving.settings import ServeSettings
from conveyor.training.artifacts import load_model
from tests.models import TrainedModel, train_flowers, train_plants


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()

    @property
    def error(self) -> str:
        document = self.json()
        assert set(document) == {"error"}, document
        return str(document["error"])


class AsgiClient:
    """Calls an ASGI app in-process. A body given as chunks arrives in several messages without
    a Content-Length, as a chunked upload does over a socket."""

    def __init__(self, app: ServingApp) -> None:
        self.app = app

    def request(
        self,
        method: str,
        path: str,
        body: bytes | Sequence[bytes] = b"",
        headers: dict[str, str] | None = None,
    ) -> Response:
        return asyncio.run(self._request(method, path, body, headers or {}))

    def get(self, path: str, headers: dict[str, str] | None = None) -> Response:
        return self.request("GET", path, headers=headers)

    def post(self, path: str, document: Any, headers: dict[str, str] | None = None) -> Response:
        all_headers = {"content-type": "application/json", **(headers or {})}
        return self.request("POST", path, json.dumps(document).encode(), all_headers)

    async def _request(
        self, method: str, path: str, body: bytes | Sequence[bytes], headers: dict[str, str]
    ) -> Response:
        chunks = [body] if isinstance(body, bytes) else list(body)
        raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        if method == "POST" and isinstance(body, bytes) and "content-length" not in headers:
            raw_headers.append((b"content-length", str(len(body)).encode()))
        scope = {"type": "http", "method": method, "path": path, "headers": raw_headers}
        pending = list(chunks)
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            if pending:
                chunk = pending.pop(0)
                return {"type": "http.request", "body": chunk, "more_body": bool(pending)}
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await self.app(scope, receive, send)
        await asyncio.sleep(0)  # what the app left for after the answer runs, as on a server
        start, body_message = sent
        assert start["type"] == "http.response.start"
        decoded = {k.decode(): v.decode() for k, v in start["headers"]}
        assert int(decoded["content-length"]) == len(body_message["body"])
        return Response(start["status"], decoded, body_message["body"])


def settings_for(trained: TrainedModel, **overrides: Any) -> ServeSettings:
    values: dict[str, Any] = {
        "model": "flowers",
        "version": 3,
        "artifact_uri": "s3://conveyor/models/flowers/model.skops",
        "artifact_digest": trained.digest,
        **overrides,
    }
    return ServeSettings(**values)


def served(model: TrainedModel, *, onnx: bool, name: str = "flowers") -> ServedModel:
    pipeline = load_model(model.skops, expected_digest=model.digest)
    return ServedModel(name, 3, pipeline, model.onnx if onnx else None)


@pytest.fixture(scope="session")
def forest() -> TrainedModel:
    return train_flowers(RandomForestClassifier(n_estimators=12, max_depth=5, random_state=0))


@pytest.fixture(scope="session")
def logistic() -> TrainedModel:
    return train_flowers(LogisticRegression(max_iter=1000))


@pytest.fixture(scope="session")
def ridge() -> TrainedModel:
    return train_plants(Ridge(alpha=0.1))


@pytest.fixture(params=["onnx", "sklearn"])
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(forest: TrainedModel, runtime: str) -> AsgiClient:
    """The forest served by either runtime."""
    return AsgiClient(create_app(settings_for(forest), served(forest, onnx=runtime == "onnx")))


@pytest.fixture(scope="session")
def onnx_client(forest: TrainedModel) -> AsgiClient:
    """The forest in onnxruntime, for tests that need one runtime only (no metrics asserted)."""
    return AsgiClient(create_app(settings_for(forest), served(forest, onnx=True)))
