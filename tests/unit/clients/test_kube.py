"""The one door to the Kubernetes API: what each answer of a real HTTP server becomes.

The server here is a plain HTTP server on 127.0.0.1 that answers what each test scripts — the
way to make an API server throttle (429) or fail (503) on purpose.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from conveyor.clients.kube import Kube, connection_info, load_api_client
from conveyor.errors import AlreadyExists, ApiError, ClusterUnavailable, Conflict
from conveyor.resources.kinds import JOBS, SECRETS, SERVICE_ACCOUNTS, TRAINING_PIPELINES
from conveyor.sandbox.apiserver import write_kubeconfig
from tests.conftest import ROOT

Answer = tuple[int, dict[str, Any]]


def _status(code: int, reason: str, message: str) -> Answer:
    return code, {"kind": "Status", "status": "Failure", "reason": reason, "message": message}


class ScriptedApi:
    """Answers (method, path) from `answers`; records every request it got."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], Answer] = {}
        self.headers: dict[tuple[str, str], dict[str, str]] = {}
        self.requests: list[tuple[str, str, Any]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                path = self.path.split("?")[0]
                api.requests.append((self.command, self.path, body))
                code, payload = api.answers.get((self.command, path), (200, {"items": []}))
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in api.headers.get((self.command, path), {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _answer

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ScriptedApi:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api() -> Iterator[ScriptedApi]:
    with ScriptedApi() as server:
        yield server


@pytest.fixture
def kube(api: ScriptedApi) -> Iterator[Kube]:
    configuration = kubernetes.client.Configuration(host=api.url)
    configuration.retries = 0  # the door maps errors; retrying is kopf's business
    client = Kube(kubernetes.client.ApiClient(configuration))
    yield client
    client.close()


PIPELINE = "/apis/conveyor.dev/v1alpha1/namespaces/ns/trainingpipelines/iris"


def test_gone_objects_are_none_not_errors(api: ScriptedApi, kube: Kube) -> None:
    missing = _status(404, "NotFound", 'trainingpipelines "iris" not found')
    for method in ("GET", "PATCH", "DELETE"):
        api.answers[(method, PIPELINE)] = missing
    assert kube.get(TRAINING_PIPELINES, "ns", "iris") is None
    assert kube.patch(TRAINING_PIPELINES, "ns", "iris", {"spec": {}}) is None
    assert kube.delete(TRAINING_PIPELINES, "ns", "iris") is False


@pytest.mark.parametrize(
    ("code", "reason"), [(429, "TooManyRequests"), (503, "ServiceUnavailable")]
)
def test_throttling_and_outages_are_retried_later(
    api: ScriptedApi, kube: Kube, code: int, reason: str
) -> None:
    api.answers[("PATCH", PIPELINE)] = _status(code, reason, "slow down")
    with pytest.raises(ClusterUnavailable) as caught:
        kube.patch(TRAINING_PIPELINES, "ns", "iris", {"metadata": {}})
    assert caught.value.delay == 5.0
    assert f"Could not PATCH {PIPELINE}: the API server answered {code} (slow down)" in str(
        caught.value
    )


def test_throttling_waits_as_long_as_the_server_asks(api: ScriptedApi, kube: Kube) -> None:
    api.answers[("PATCH", PIPELINE)] = _status(429, "TooManyRequests", "slow down")
    api.headers[("PATCH", PIPELINE)] = {"Retry-After": "2"}
    with pytest.raises(ClusterUnavailable) as caught:
        kube.patch(TRAINING_PIPELINES, "ns", "iris", {"metadata": {}})
    assert caught.value.delay == 2.0


def test_a_conflicting_write_is_retried_soon(api: ScriptedApi, kube: Kube) -> None:
    """409 on a patch: the object changed meanwhile; kopf retries the handler in a second
    instead of taking it as a refusal (which waits for the next resync)."""
    api.answers[("PATCH", PIPELINE)] = _status(409, "Conflict", "the object has been modified")
    with pytest.raises(Conflict) as caught:
        kube.patch(TRAINING_PIPELINES, "ns", "iris", {"metadata": {}})
    assert caught.value.delay == 1.0 and "the object has been modified" in str(caught.value)


def test_an_unreachable_server_is_retried_later(kube: Kube, api: ScriptedApi) -> None:
    api.server.shutdown()
    api.server.server_close()
    with pytest.raises(ClusterUnavailable, match="unreachable"):
        kube.list(JOBS, "ns")


def test_a_refusal_carries_the_servers_own_message(api: ScriptedApi, kube: Kube) -> None:
    path = "/apis/batch/v1/namespaces/ns/jobs"
    api.answers[("POST", path)] = _status(422, "Invalid", 'Job "x" is invalid: spec.template')
    with pytest.raises(ApiError) as caught:
        kube.create(JOBS, {"metadata": {"name": "x", "namespace": "ns"}})
    assert caught.value.status == 422 and str(caught.value) == 'Job "x" is invalid: spec.template'


def test_ensure_takes_already_exists_as_success_and_keeps_named_fields_current(
    api: ScriptedApi, kube: Kube
) -> None:
    collection = "/api/v1/namespaces/ns/secrets"
    api.answers[("POST", collection)] = _status(409, "AlreadyExists", "secrets exists")
    api.answers[("GET", f"{collection}/creds")] = (200, {"data": {"k": "b2xk"}})
    body = {"metadata": {"name": "creds", "namespace": "ns"}, "data": {"k": "bmV3"}}
    with pytest.raises(AlreadyExists):
        kube.create(SECRETS, body)
    assert kube.ensure(SECRETS, body) == "unchanged"
    assert kube.ensure(SECRETS, body, keep_current=("data",)) == "updated"
    assert api.requests[-1] == ("PATCH", f"{collection}/creds", {"data": {"k": "bmV3"}})
    api.answers[("GET", f"{collection}/creds")] = (200, {"data": {"k": "bmV3"}})
    assert kube.ensure(SECRETS, body, keep_current=("data",)) == "unchanged"


def test_ensure_creates_what_is_missing_and_takes_a_race_as_success(
    api: ScriptedApi, kube: Kube
) -> None:
    collection = "/api/v1/namespaces/ns/serviceaccounts"
    body = {"metadata": {"name": "workload", "namespace": "ns"}}
    api.answers[("GET", f"{collection}/workload")] = _status(404, "NotFound", "not found")
    api.answers[("POST", collection)] = (201, body)
    assert kube.ensure(SERVICE_ACCOUNTS, body) == "created"
    api.answers[("POST", collection)] = _status(409, "AlreadyExists", "made meanwhile")
    assert kube.ensure(SERVICE_ACCOUNTS, body) == "unchanged"


def test_the_cli_says_what_failed_without_a_traceback(api: ScriptedApi, tmp_path: Path) -> None:
    api.answers[("PATCH", PIPELINE)] = _status(503, "ServiceUnavailable", "etcd is down")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": api.url}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "conveyor",
            "--kubeconfig",
            str(kubeconfig),
            "run",
            "iris",
            "-n",
            "ns",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "KUBECONFIG": ""},
    )
    assert result.returncode == 1
    assert "error: Could not PATCH" in result.stderr and "etcd is down" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_service_is_posted_to_through_the_api_servers_proxy(api: ScriptedApi, kube: Kube) -> None:
    proxy = "/api/v1/namespaces/ml/services/iris-classifier:http/proxy/predict"
    api.answers[("POST", proxy)] = (200, {"predictions": ["setosa"]})
    status, body = kube.service_post("ml", "iris-classifier", "http", "/predict", {"instances": []})
    assert (status, json.loads(body)) == (200, {"predictions": ["setosa"]})
    assert api.requests[-1] == ("POST", proxy, {"instances": []})
    # The service's own refusal is its answer, not an API error.
    api.answers[("POST", proxy)] = (422, {"error": "sepal_length_cm: missing"})
    status, body = kube.service_post("ml", "iris-classifier", "http", "predict", {})
    assert (status, json.loads(body)) == (422, {"error": "sepal_length_cm: missing"})


def test_kopf_connects_with_the_operators_own_token(tmp_path: Path) -> None:
    """kopf's login reuses our client's credentials: without the token it would watch as
    system:anonymous and a cluster would refuse every call."""
    kubeconfig = tmp_path / "kubeconfig"
    write_kubeconfig(kubeconfig, "http://127.0.0.1:1", namespace="ns", token="s3cr3t")
    client = load_api_client(str(kubeconfig))
    assert connection_info(client).token == "s3cr3t"
    client.configuration.api_key = {"authorization": "Bearer older-style"}
    assert connection_info(client).token == "older-style"
