"""The model server's ASGI app: a raw ASGI callable with a small router of its own.

No framework on the hot path: measured here, Starlette's routing cost about 30% of the requests
per second of a raw ASGI app on uvicorn. A request is matched against a dict of fixed paths or
the `/v2/models/...` patterns, its body read up to the limit, and its handler — a plain
function from (body, path parameters, request id) to (status, body, content type) — called
on the event loop; predictions take microseconds with onnxruntime, and each pod serves one
model on its own core.

Endpoints (the Open Inference Protocol V2 over HTTP, plus raw records):

GET  /v2/health/live                               200 once the server listens
GET  /v2/health/ready                              200 once the model is loaded and warmed up,
                                                   400 before and while draining (V2: 4xx)
GET  /v2                                           server metadata
GET  /v2/models/<name>[/versions/<v>]              model metadata: inputs, outputs
GET  /v2/models/<name>[/versions/<v>]/ready        200 or 400, as the server's readiness
POST /v2/models/<name>[/versions/<v>]/infer        V2 inference (see protocol.py)
POST /v2/models/<name>/feedback                    ground truth for request ids (recorder.py)
POST /predict                                      {"instances": [{...}, ...]}
GET  /metrics                                      Prometheus (see metrics.py)

Every answer carries X-Request-Id (the caller's, or one generated); every error is
`{"error": "..."}` naming what to fix. A request the model is not loaded for yet gets 503.
With a `Recorder`, every prediction (the sampled share) and every refused inference request
goes to the prediction log, off the request path.
"""

from __future__ import annotations

import logging
from asyncio import get_running_loop
from collections.abc import Awaitable, Callable, MutableMapping
from random import getrandbits, random
from time import perf_counter
from typing import Any

import orjson

from .. import __version__
from ..training.artifacts import FeatureError
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import ServingMetrics
from .model import Prediction, ServedModel
from .protocol import (
    RequestError,
    Signature,
    V2Request,
    parse_json,
    predict_response,
    records_from_instances,
    records_from_v2,
    v2_response,
)
from .recorder import Recorder, parse_feedback
from .settings import ServeSettings

__all__ = ["ServingApp", "create_app"]

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Answer = tuple[int, bytes, bytes]
Handler = Callable[[bytes, tuple[str, ...], str], Answer]

JSON = b"application/json"
_EMPTY: Answer = (200, b"", JSON)
_MAX_REQUEST_ID = 200


class _ClientGone(Exception):
    """The client disconnected before its request body arrived."""


def create_app(
    settings: ServeSettings, model: ServedModel | None = None, recorder: Recorder | None = None
) -> ServingApp:
    """The ASGI app for `settings`; ready at once with `model`, else when `serve()` gets one.
    With `recorder`, it logs predictions and takes feedback."""
    return ServingApp(settings, model, recorder)


class ServingApp:
    """The model server as an ASGI app. `serve(model)` makes it ready; `drain()` (on SIGTERM)
    makes it report not-ready while it goes on answering, and close connections after each
    answer, so clients move to the other pods."""

    def __init__(
        self,
        settings: ServeSettings,
        model: ServedModel | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = ServingMetrics()
        self.recorder = recorder
        self.metrics.recorder = recorder
        self.model: ServedModel | None = None
        self.signature: Signature | None = None
        self.draining = False
        self._shadow: tuple[ServedModel, Recorder, float] | None = None
        self._metadata = b""
        self._fixed: dict[str, tuple[str, dict[str, Handler]]] = {
            "/v2/health/live": ("live", {"GET": self._live}),
            "/v2/health/ready": ("ready", {"GET": self._ready}),
            "/v2": ("server_metadata", {"GET": self._server_metadata}),
            "/predict": ("predict", {"POST": self._predict}),
            "/metrics": ("metrics", {"GET": self._metrics}),
        }
        self._model_routes: dict[str, tuple[str, dict[str, Handler]]] = {
            "": ("model_metadata", {"GET": self._model_metadata}),
            "ready": ("model_ready", {"GET": self._model_ready}),
            "infer": ("infer", {"POST": self._infer}),
            "feedback": ("feedback", {"POST": self._feedback}),
        }
        self.metrics.ready(False)
        if model is not None:
            self.serve(model)

    # -- state -------------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.model is not None and not self.draining

    def serve(self, model: ServedModel) -> None:
        """Answer with `model` from now on (loaded, verified and warmed up)."""
        self.signature = Signature(model)
        self._metadata = orjson.dumps(
            {
                "name": model.name,
                "versions": [model.version],
                "platform": f"conveyor-{model.runtime.name}",
                "inputs": [
                    {"name": item.name, "datatype": item.datatype, "shape": [-1]}
                    | ({} if item.required else {"parameters": {"optional": True}})
                    for item in model.inputs
                ],
                "outputs": model.outputs,
                "parameters": {"task": model.task, "runtime": model.runtime.name},
            }
        )
        self.metrics.model(
            model=model.name,
            version=model.version,
            runtime=model.runtime.name,
            digest=self.settings.artifact_digest,
        )
        self.model = model
        self.metrics.ready(self.ready)

    def shadow_with(self, model: ServedModel | None, recorder: Recorder, share: float) -> None:
        """From now on `model` (a candidate of the same model) predicts a copy of the `share`
        of the logged requests, after each is answered; None: it could not be loaded."""
        self.metrics.shadow_version = recorder.version
        self.metrics.shadow_ready = model is not None
        self._shadow = None if model is None else (model, recorder, share)

    def drain(self) -> None:
        """Report not-ready from now on, and close each connection after its answer."""
        self.draining = True
        self.metrics.ready(False)

    # -- ASGI ------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.metrics.in_flight += 1
            try:
                await self._answer(scope, receive, send)
            finally:
                self.metrics.in_flight -= 1
        elif scope["type"] == "lifespan":
            await _lifespan(receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = perf_counter()
        request_id: bytes | None = None
        content_type: bytes | None = None
        content_length: bytes | None = None
        binary = False
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                request_id = value
            elif key == b"content-type":
                content_type = value
            elif key == b"content-length":
                content_length = value
            elif key == b"inference-header-content-length":
                binary = True
        if not request_id or len(request_id) > _MAX_REQUEST_ID:
            # Unique, not secret: Python's generator, not a getrandom() system call a request.
            request_id = b"%032x" % getrandbits(128)
        endpoint = "unknown"
        close = self.draining
        try:
            endpoint, handler, parameters, method = self._route(scope["method"], scope["path"])
            body = b""
            if method == "POST":
                body = await self._body(receive, content_type, content_length, binary)
            status, payload, kind = handler(body, parameters, request_id.decode("latin-1"))
        except RequestError as error:
            status, payload, kind = error.status, _error(error.message), JSON
            close = close or error.close
        except _ClientGone:
            self.metrics.request(endpoint, 499, perf_counter() - started)
            return
        except Exception:  # a bug: logged with its traceback, answered without one
            logger.exception("Request %s to %s failed", request_id.decode("latin-1"), endpoint)
            status, payload, kind = 500, _error(_internal(request_id)), JSON
        headers = [
            (b"content-type", kind),
            (b"content-length", str(len(payload)).encode()),
            (b"x-request-id", request_id),
        ]
        if close:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
        self.metrics.request(endpoint, status, perf_counter() - started)

    def _route(self, method: str, path: str) -> tuple[str, Handler, tuple[str, ...], str]:
        """(endpoint, handler, path parameters, method) of a request; 404 or 405 otherwise."""
        parameters: tuple[str, ...] = ()
        route = self._fixed.get(path)
        if route is None and path.startswith("/v2/models/"):
            route, parameters = self._model_route(path)
        if route is None:
            raise RequestError(404, f"No endpoint at {path}; see the README's Serving section.")
        endpoint, handlers = route
        handler = handlers.get(method)
        if handler is None:
            allowed = ", ".join(handlers)
            raise RequestError(405, f"{path} answers {allowed}, not {method}.")
        return endpoint, handler, parameters, method

    def _model_route(
        self, path: str
    ) -> tuple[tuple[str, dict[str, Handler]] | None, tuple[str, ...]]:
        """/v2/models/<name>[/versions/<v>][/ready|/infer] → (route, (name, version or ""))."""
        parts = path[len("/v2/models/") :].rstrip("/").split("/")
        name, rest = parts[0], parts[1:]
        version = ""
        if len(rest) >= 2 and rest[0] == "versions":
            version, rest = rest[1], rest[2:]
        if not name or len(rest) > 1:
            return None, ()
        return self._model_routes.get(rest[0] if rest else ""), (name, version)

    async def _body(
        self,
        receive: Receive,
        content_type: bytes | None,
        content_length: bytes | None,
        binary: bool,
    ) -> bytes:
        if binary:
            raise RequestError(
                415,
                "Inference-Header-Content-Length: V2's binary tensor extension is not served; "
                "send the tensors as JSON (tritonclient: binary_data=False).",
            )
        if content_type is not None and not _is_json(content_type):
            raise RequestError(
                415,
                f"Content-Type {content_type.decode('latin-1')!r} is not served; send the body "
                "as JSON with Content-Type: application/json.",
            )
        limit = self.settings.max_body_bytes
        if content_length is not None and content_length.isdigit() and int(content_length) > limit:
            # uvicorn reads away the body of an answered request, so a client that sends all of
            # its body before it reads gets this answer; beyond 4 times the limit, it is cut off.
            declared = int(content_length)
            raise RequestError(413, _too_large(declared, limit), close=declared > 4 * limit)
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        body: bytes = message.get("body", b"")
        if not message.get("more_body"):
            if len(body) > limit:
                raise RequestError(413, _too_large(len(body), limit))
            return body
        chunks, size = [body], len(body)
        while message.get("more_body"):
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise RequestError(413, _too_large(size, limit))
            chunks.append(chunk)
        return b"".join(chunks)

    # -- handlers --------------------------------------------------------------------------------

    def _live(self, body: bytes, parameters: tuple[str, ...], request_id: str) -> Answer:
        return _EMPTY

    def _ready(self, body: bytes, parameters: tuple[str, ...], request_id: str) -> Answer:
        if self.ready:
            return _EMPTY
        return 400, _error(self._not_ready()), JSON

    def _server_metadata(self, body: bytes, parameters: tuple[str, ...], request_id: str) -> Answer:
        metadata = {"name": "conveyor", "version": __version__, "extensions": []}
        return 200, orjson.dumps(metadata), JSON

    def _model_metadata(self, body: bytes, parameters: tuple[str, ...], request_id: str) -> Answer:
        self._loaded(parameters)
        return 200, self._metadata, JSON

    def _model_ready(self, body: bytes, parameters: tuple[str, ...], request_id: str) -> Answer:
        self._check_name(parameters)
        return self._ready(body, parameters, request_id)

    def _infer(self, body: bytes, parameters: tuple[str, ...], request_id: str) -> Answer:
        model, signature = self._loaded(parameters)
        try:
            request = records_from_v2(parse_json(body), signature)
            prediction = self._prediction(model, request)
        except RequestError as error:
            self._refused(request_id, body, error)
            raise
        answer_id = request.id or request_id
        recorder = self.recorder
        if recorder and recorder.prediction(answer_id, request.columns, prediction, model.classes):
            self._mirror(answer_id, request)
        return 200, v2_response(model, prediction, answer_id, request.outputs), JSON

    def _predict(self, body: bytes, parameters: tuple[str, ...], request_id: str) -> Answer:
        model, signature = self._loaded((self.settings.model, ""))
        try:
            records = records_from_instances(parse_json(body), signature)
            prediction = self._prediction(model, records)
        except RequestError as error:
            self._refused(request_id, body, error)
            raise
        recorder = self.recorder
        if recorder and recorder.prediction(request_id, records, prediction, model.classes):
            self._mirror(request_id, records)
        return 200, predict_response(model, prediction, request_id), JSON

    def _feedback(self, body: bytes, parameters: tuple[str, ...], request_id: str) -> Answer:
        model, _ = self._loaded((parameters[0], ""))
        if self.recorder is None:
            raise RequestError(
                503, "This server records no feedback: it was started without a log writer."
            )
        items = parse_feedback(parse_json(body), model.classes)
        accepted, unknown = self.recorder.feedback(items)
        return 200, orjson.dumps({"accepted": accepted, "unknown": unknown}), JSON

    def _metrics(self, body: bytes, parameters: tuple[str, ...], request_id: str) -> Answer:
        return 200, self.metrics.exposition(), METRICS_CONTENT_TYPE.encode()

    # -- helpers ---------------------------------------------------------------------------------

    def _prediction(self, model: ServedModel, rows: list[dict[str, Any]] | V2Request) -> Prediction:
        """The model's answer to raw records, or to a V2 request's columns."""
        try:
            if isinstance(rows, V2Request):
                prediction = model.predict_columns(rows.columns, rows.rows)
            else:
                prediction = model.predict(rows)
        except FeatureError as error:
            message = f"The rows do not fit the model's FeatureSet: {error}."
            raise RequestError(422, message) from None
        self.metrics.predictions(prediction.labels, model.classes is not None)
        return prediction

    def _mirror(self, request_id: str, rows: list[dict[str, Any]] | V2Request) -> None:
        """The shadow's prediction of a copy, once the event loop has sent this answer."""
        if self._shadow is not None and (self._shadow[2] >= 1.0 or random() < self._shadow[2]):
            get_running_loop().call_soon(self._shadow_predict, request_id, rows)

    def _shadow_predict(self, request_id: str, rows: list[dict[str, Any]] | V2Request) -> None:
        if self._shadow is None:
            return
        model, recorder, _ = self._shadow
        try:
            if isinstance(rows, V2Request):
                prediction = model.predict_columns(rows.columns, rows.rows)
            else:
                prediction = model.predict(rows)
        except Exception as error:  # the candidate's failure: counted, never answered
            self.metrics.shadow_outcomes["error"] += 1
            logger.debug("Shadow %s failed request %s: %s", model.version, request_id, error)
            return
        self.metrics.shadow_outcomes["ok"] += 1
        inputs = rows.columns if isinstance(rows, V2Request) else rows
        recorder.prediction(request_id, inputs, prediction, model.classes)

    def _refused(self, request_id: str, body: bytes, error: RequestError) -> None:
        """Log a request refused for what it sent (not one that came too early or too big)."""
        if self.recorder is not None and error.status in (400, 422):
            self.recorder.refused(request_id, body, error.message)

    def _check_name(self, parameters: tuple[str, ...]) -> None:
        name, version = parameters
        served = self.settings.model
        if name != served:
            raise RequestError(
                404, f"Model {name!r} is not served here; this server serves {served!r}."
            )
        if version and version != str(self.settings.version):
            raise RequestError(
                404,
                f"Model {name!r} has no version {version!r} here; this server serves version "
                f"{self.settings.version}.",
            )

    def _loaded(self, parameters: tuple[str, ...]) -> tuple[ServedModel, Signature]:
        self._check_name(parameters)
        if self.model is None or self.signature is None:
            raise RequestError(503, self._not_ready())
        return self.model, self.signature

    def _not_ready(self) -> str:
        what = f"Model {self.settings.model!r} version {self.settings.version}"
        if self.draining:
            return f"{what}: the server is shutting down."
        return f"{what} is still loading; retry when /v2/health/ready answers 200."


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json")


def _error(message: str) -> bytes:
    return orjson.dumps({"error": message})


def _too_large(size: int, limit: int) -> str:
    return (
        f"The request body of {size} bytes is over the limit of {limit} bytes; send fewer "
        "rows per request (the limit is CONVEYOR_SERVE_MAX_BODY_BYTES)."
    )


def _internal(request_id: bytes) -> str:
    return (
        f"Internal error answering request {request_id.decode('latin-1')}; the server log has "
        "the details."
    )


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
