"""The sandbox's faults on purpose: API errors and cut watches for one identity, an S3 proxy
that fails on demand. Off until switched on."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor.sandbox.apiserver import ApiServerThread, UserInfo, service_account
from conveyor.sandbox.faults import ApiFaultPlan, ApiFaults
from conveyor.sandbox.s3faults import S3FaultProxy

OPERATOR = service_account("conveyor-system", "conveyor-operator")
ADMIN = UserInfo("admin", ("system:masters",))
TOKENS = {"operator-token": OPERATOR, "admin-token": ADMIN}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[ApiServerThread, ApiFaults]]:
    faults = ApiFaults(OPERATOR.username)
    with ApiServerThread(log_dir=tmp_path, tokens=TOKENS) as server:
        assert server.server is not None
        server.server.emulator.faults = faults.intercept
        yield server, faults


def _call(
    url: str, token: str, method: str = "GET", body: Any = None
) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/merge-patch+json"
            if method == "PATCH"
            else "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), json.loads(error.read())


def test_only_the_operator_is_faulted_at_the_stride_and_only_while_on(
    api: tuple[ApiServerThread, ApiFaults],
) -> None:
    server, faults = api
    url = f"{server.url}/api/v1/namespaces"
    assert all(_call(url, "operator-token")[0] == 200 for _ in range(4))  # off by default
    faults.switch_on(ApiFaultPlan(share=0.5, codes=(429, 500, 409), drop_watches_after=None))
    operator = [_call(url, "operator-token") for _ in range(8)]
    admin = [_call(url, "admin-token") for _ in range(8)]
    counts = faults.switch_off()
    assert [code for code, _, _ in operator].count(200) == 4
    assert sorted(code for code, _, _ in operator if code != 200) == [429, 429, 500, 500]
    throttled = next((headers, body) for code, headers, body in operator if code == 429)
    assert throttled[0]["Retry-After"] == "1"
    assert throttled[1]["reason"] == "TooManyRequests"
    assert throttled[1]["details"]["retryAfterSeconds"] == 1
    assert all(code == 200 for code, _, _ in admin)
    assert all(_call(url, "operator-token")[0] == 200 for _ in range(4))  # off again
    assert counts.calls["GET"] == 8 and dict(counts.faulted) == {429: 2, 500: 2}


def test_an_update_gets_409_first_and_a_faulted_request_does_nothing(
    api: tuple[ApiServerThread, ApiFaults],
) -> None:
    server, faults = api
    _call(f"{server.url}/api/v1/namespaces", "admin-token", "POST", {"metadata": {"name": "ns"}})
    configmaps = f"{server.url}/api/v1/namespaces/ns/configmaps"
    _call(configmaps, "admin-token", "POST", {"metadata": {"name": "cm"}, "data": {"n": "0"}})
    faults.switch_on(ApiFaultPlan(share=1.0, codes=(429, 409), drop_watches_after=None))
    code, _, body = _call(f"{configmaps}/cm", "operator-token", "PATCH", {"data": {"n": "1"}})
    faults.switch_off()
    assert code == 409 and body["reason"] == "Conflict", body
    assert "the object has been modified" in body["message"]
    assert _call(f"{configmaps}/cm", "admin-token")[2]["data"] == {"n": "0"}


def _drain(sock: socket.socket, seconds: float) -> bool:
    """Read what the watch sends for `seconds`; True when the server closed it meanwhile."""
    sock.settimeout(0.2)
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        try:
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            continue
    return False


def test_the_operators_watches_are_cut_once_switched_on(
    api: tuple[ApiServerThread, ApiFaults],
) -> None:
    server, faults = api
    host, port = server.url.removeprefix("http://").split(":")
    watches = [socket.create_connection((host, int(port)), timeout=10) for _ in range(2)]
    try:
        for sock, token in zip(watches, ("operator-token", "admin-token"), strict=True):
            sock.sendall(
                f"GET /api/v1/namespaces?watch=1 HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {token}\r\n\r\n".encode()
            )
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        faults.switch_on(ApiFaultPlan(share=1.0, drop_watches_after=0.3))
        operator, admin = watches
        assert _drain(operator, 5.0), "the operator's watch was not cut"
        assert not _drain(admin, 1.0), "another identity's watch was cut"
        counts = faults.switch_off()
    finally:
        for sock in watches:
            sock.close()
    assert (counts.watches, counts.watches_dropped) == (1, 1)


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def test_the_s3_proxy_passes_through_fails_on_demand_and_recovers(upstream: str) -> None:
    with S3FaultProxy(upstream) as proxy:
        assert _get(proxy.endpoint) == (200, b"hello")
        proxy.fail("unavailable")
        code, body = _get(proxy.endpoint)
        assert code == 503 and b"<Code>ServiceUnavailable</Code>" in body
        outage = proxy.recover()
        assert outage.answered_503 == 1
        assert _get(proxy.endpoint) == (200, b"hello")
        proxy.fail("refuse")
        with pytest.raises(urllib.error.URLError, match="refused"):
            _get(proxy.endpoint)
        proxy.recover()
        assert _get(proxy.endpoint) == (200, b"hello")
