"""`pods/<name>:<port>/proxy/<path>` reaches the pod's process on the host port the node agent
gave its container port, as the operator reads a canary's /metrics."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import pytest
from kubernetes.client import CoreV1Api

from conveyor.sandbox.apiserver import ApiServerThread
from conveyor.sandbox.nodeagent.ports import PORTS_ANNOTATION
from tests.sandbox.apiserver.conftest import http as request


class _Metrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"served {self.path}\n".encode()
        self.send_response(200 if self.path.startswith("/metrics") else 404)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def pod(core: CoreV1Api) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    core.create_namespaced_pod(
        "default",
        {
            "metadata": {
                "name": "server",
                "annotations": {PORTS_ANNOTATION: json.dumps({"http": server.server_port})},
            },
            "spec": {
                "containers": [
                    {
                        "name": "main",
                        "image": "conveyor",
                        "ports": [{"name": "http", "containerPort": 8080}],
                    }
                ]
            },
        },
    )
    yield "/api/v1/namespaces/default/pods/server"
    server.shutdown()
    server.server_close()


def test_a_get_reaches_the_pods_port_with_its_path_and_query(
    api_server: ApiServerThread, pod: str
) -> None:
    url = api_server.url + pod + ":8080/proxy/metrics?name=x"
    assert request("GET", url) == (200, "served /metrics?name=x\n")
    assert request("GET", api_server.url + pod + ":8080/proxy/nothing")[0] == 404


def test_a_port_the_pod_does_not_run_is_a_clear_error(
    api_server: ApiServerThread, pod: str
) -> None:
    code, status = request("GET", api_server.url + pod + ":9999/proxy/metrics")
    assert code == 503 and 'error trying to reach pod "server"' in status["message"]
    code, status = request("GET", api_server.url + pod + "/proxy/metrics")
    assert code == 400 and "<name>:<port>" in status["message"]
