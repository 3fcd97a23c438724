"""Service proxies over real sockets."""

import http.server
import json
import threading
import urllib.request
from contextlib import contextmanager

import pytest

from conveyor.sandbox.nodeagent.ports import PORTS_ANNOTATION
from conveyor.sandbox.nodeagent.services import ProxyHub, service_backends


@contextmanager
def http_backend(answer):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = answer.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def fetch(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        return response.read().decode()


@pytest.fixture
def hub():
    proxies = ProxyHub()
    proxies.start()
    yield proxies
    proxies.stop()


def test_the_proxy_round_robins_over_backends(hub):
    with http_backend("a") as port_a, http_backend("b") as port_b:
        port = hub.open(("ns/svc", "u/http"), lambda: [port_a, port_b])
        answers = {fetch(port) for _ in range(4)}
    assert answers == {"a", "b"}


def test_a_refusing_backend_is_skipped(hub):
    from conveyor.sandbox.nodeagent.ports import allocate_free_port

    dead = allocate_free_port()
    with http_backend("alive") as alive:
        port = hub.open(("ns/svc", "u/http"), lambda: [dead, alive])
        assert [fetch(port) for _ in range(3)] == ["alive"] * 3


def test_no_backend_closes_the_connection(hub):
    port = hub.open(("ns/svc", "u/http"), lambda: [])
    with pytest.raises(OSError):
        fetch(port)


def test_a_closed_proxy_frees_its_port(hub):
    import socket

    port = hub.open(("ns/svc", "u/http"), lambda: [])
    hub.close(("ns/svc", "u/http"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_backends_are_the_ready_selected_pods():
    def pod(name, labels, ready, port, namespace="ml"):
        return {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": labels,
                "annotations": {PORTS_ANNOTATION: json.dumps({"http": port})},
            },
            "spec": {"containers": [{"ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            },
        }

    service = {
        "metadata": {"name": "iris", "namespace": "ml"},
        "spec": {"selector": {"app": "iris"}},
    }
    pods = [
        pod("a", {"app": "iris"}, True, 40001),
        pod("b", {"app": "iris"}, False, 40002),
        pod("c", {"app": "other"}, True, 40003),
        pod("d", {"app": "iris"}, True, 40004, namespace="elsewhere"),
        pod("e", {"app": "iris", "x": "y"}, True, 40005),
    ]
    assert service_backends(service, {"port": 80, "targetPort": "http"}, pods) == [40001, 40005]
    assert service_backends(service, {"port": 80, "targetPort": 8080}, pods) == [40001, 40005]
