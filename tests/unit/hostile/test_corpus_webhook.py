"""Hostile Alertmanager notifications against the operator's real webhook endpoint over HTTP:
each gets a 4xx whose message names the problem, never a 500, never a policy annotated (the
only way an alert starts a run), and the endpoint still takes a good notification afterwards.

The API behind the endpoint is a recorder of the calls the webhook makes (the Secret holding
its token, the policies it lists, the patches it writes): what is under test is the HTTP
endpoint and the payload parsing, both real."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from conveyor.handlers.context import Context
from conveyor.operator import build_http_app
from conveyor.sandbox.processes import free_port
from conveyor.settings import Settings
from tests.unit.hostile.worlds import example

TOKEN = "s3cr3t-token"
PATH = "/webhooks/alertmanager"


class RecordingKube:
    """The API as the webhook sees it: the token Secret, one RetrainPolicy, recorded patches."""

    def __init__(self) -> None:
        self.patches: list[tuple[str, str, Any]] = []
        policy = example("RetrainPolicy")
        self.policies = [policy]

    def get(self, resource: Any, namespace: str | None, name: str) -> dict[str, Any] | None:
        if resource.kind == "Secret" and name == "conveyor-webhook-token":
            return {"data": {"token": base64.b64encode(TOKEN.encode()).decode()}}
        return None

    def list(self, resource: Any, namespace: str | None = None, **_: Any) -> list[dict[str, Any]]:
        return list(self.policies) if resource.kind == "RetrainPolicy" else []

    def patch(self, resource: Any, namespace: str | None, name: str, body: Any) -> dict[str, Any]:
        self.patches.append((str(namespace), name, body))
        return {}


@dataclass
class Endpoint:
    port: int
    kube: RecordingKube

    def post(self, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            all_headers = {"Content-Type": "application/json", **(headers or {})}
            connection.request("POST", PATH, body=body, headers=all_headers)
            response = connection.getresponse()
            raw = response.read()
            try:
                document = json.loads(raw)
            except ValueError:
                document = raw.decode(errors="replace")
            return response.status, document
        finally:
            connection.close()


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Endpoint]:
    kube = RecordingKube()
    context = Context(settings=Settings(namespaces=("default",)), kube=kube)  # type: ignore[arg-type]
    port = free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    runner = web.AppRunner(build_http_app(threading.Event(), context), access_log=None)

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        started.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, name="webhook", daemon=True)
    thread.start()
    assert started.wait(30), "the webhook endpoint did not start"
    yield Endpoint(port, kube)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)


def alert(**changes: Any) -> dict[str, Any]:
    item = {
        "status": "firing",
        "labels": {"alertname": "ConveyorFeatureDrift", "model": "iris-classifier"},
        "annotations": {"summary": "drift"},
        "startsAt": "2026-11-27T11:00:00Z",
        "fingerprint": "0123abcd",
    }
    return {**item, **changes}


def notification(*alerts: Any, **changes: Any) -> bytes:
    return json.dumps(
        {"version": "4", "status": "firing", "alerts": list(alerts), **changes}
    ).encode()


AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass(frozen=True)
class Case:
    id: str
    body: bytes
    status: int
    words: tuple[str, ...]
    headers: dict[str, str] = field(default_factory=lambda: dict(AUTH))


CASES = [
    Case("no-auth", notification(alert()), 401, ("bearer token is required",), headers={}),
    Case(
        "wrong-token",
        notification(alert()),
        401,
        ("bearer token is wrong",),
        headers={"Authorization": "Bearer nope"},
    ),
    Case(
        "basic-auth",
        notification(alert()),
        401,
        ("bearer token is required",),
        headers={"Authorization": "Basic " + base64.b64encode(b"a:b").decode()},
    ),
    Case(
        "non-ascii-token",
        notification(alert()),
        401,
        ("bearer token is wrong",),
        headers={"Authorization": "Bearer t\u00f6ken"},
    ),
    Case("not-json", b"alerts: [firing]", 400, ("not JSON",)),
    Case("empty-body", b"", 400, ("not JSON",)),
    Case("invalid-utf8", b'{"version": "4", "alerts": ["\xff"]}', 400, ("not JSON",)),
    Case("json-array", b"[]", 400, ("not a JSON object",)),
    Case("wrong-version", notification(alert(), version="3"), 400, ("version '3'",)),
    Case("version-as-number", notification(alert(), version=4), 400, ("version 4",)),
    Case("alerts-not-list", notification(alerts={"a": 1}), 400, ("alerts: a list",)),
    Case("alert-not-object", notification("firing"), 400, ("alerts[0]: an object",)),
    Case("bad-status", notification(alert(status="burning")), 400, ("alerts[0].status",)),
    Case(
        "labels-not-strings", notification(alert(labels={"model": 7})), 400, ("alerts[0].labels",)
    ),
    Case("labels-list", notification(alert(labels=["model"])), 400, ("alerts[0].labels",)),
    Case(
        "annotations-nested",
        notification(alert(annotations={"summary": {"x": 1}})),
        400,
        ("alerts[0].annotations",),
    ),
    Case(
        "fingerprint-path-traversal",
        notification(alert(fingerprint="../../etc")),
        400,
        ("alerts[0].fingerprint",),
    ),
    Case("missing-starts-at", notification(alert(startsAt=None)), 400, ("alerts[0].startsAt",)),
    Case(
        "too-many-alerts",
        notification(*[alert()] * 1001),
        400,
        ("1001 alerts, more than 1000",),
    ),
    Case(
        "deeply-nested",
        b'{"version": "4", "alerts": [' + b"[" * 200_000 + b"]" * 200_000 + b"]}",
        400,
        ("nests too deeply",),
    ),
    Case("huge-body", notification(alert(), padding="x" * (2 << 20)), 400, ("over 1048576 bytes",)),
    Case("nul-bytes", b'{"version": "4\x00", "alerts": []}', 400, ("not JSON",)),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{i + 1:02d}-{c.id}" for i, c in enumerate(CASES)])
def test_a_hostile_notification_is_refused_with_a_4xx(endpoint: Endpoint, case: Case) -> None:
    before = len(endpoint.kube.patches)
    status, document = endpoint.post(case.body, case.headers)

    assert 400 <= status < 500, (status, document)
    message = document["error"]
    for word in case.words:
        assert word in message, f"{word!r} not in {message!r}"
    assert len(endpoint.kube.patches) == before, "a refused notification annotated a policy"


def test_a_good_notification_still_reaches_its_policy(endpoint: Endpoint) -> None:
    for case in CASES:  # whatever came before
        endpoint.post(case.body, case.headers)
    before = len(endpoint.kube.patches)
    status, document = endpoint.post(notification(alert()), AUTH)
    assert status == 200, document
    assert document["delivered"] == [
        {"alert": "ConveyorFeatureDrift", "fingerprint": "0123abcd", "policy": "default/iris"}
    ]
    assert len(endpoint.kube.patches) == before + 1


def test_a_large_notification_under_the_limit_is_read_whole(endpoint: Endpoint) -> None:
    # 1000 alerts with long summaries: about 400 kB, which arrives in several reads.
    alerts = [
        alert(fingerprint=f"{i:08x}", status="resolved", annotations={"summary": "s" * 300})
        for i in range(1000)
    ]
    body = notification(*alerts)
    assert 256_000 < len(body) < 1 << 20
    status, document = endpoint.post(body, AUTH)
    assert status == 200, document
    assert document["alerts"] == 1000
