"""Deployments and Services against the sandbox API: serving, probes, rolling updates."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from .conftest import IMAGE, Cluster, condition, wait_for

pytestmark = pytest.mark.integration

# A small model server: answers with its version, reads its port from CONVEYOR_PORT_HTTP, starts
# slowly (so readiness matters) and drains in-flight requests on SIGTERM, as a real server does.
SERVER = """
import http.server, os, signal, sys, threading, time

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        body = (os.environ["VERSION"] + " " + os.environ["HOSTNAME"]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

time.sleep(0.3)
port = int(os.environ["CONVEYOR_PORT_HTTP"])
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
print("serving", os.environ["VERSION"], flush=True)
server.serve_forever()
server.server_close()
"""


@pytest.fixture
def server_script(tmp_path: Path) -> str:
    path = tmp_path / "server.py"
    path.write_text(SERVER)
    return str(path)


def deployment_manifest(script: str, version: str, replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "iris"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "iris"}},
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "iris"}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {
                            "name": "main",
                            "image": IMAGE,
                            "command": ["pyfile", script],
                            "env": [{"name": "VERSION", "value": version}],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "readinessProbe": {
                                "httpGet": {"path": "/", "port": "http"},
                                "periodSeconds": 1,
                            },
                        }
                    ],
                },
            },
        },
    }


SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "iris"},
    "spec": {
        "selector": {"app": "iris"},
        "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
    },
}


def rolled_out(cluster: Cluster, namespace: str, replicas: int = 2) -> dict[str, Any] | None:
    deployment = cluster.deployment(namespace, "iris")
    status = deployment.get("status") or {}
    progressing = condition(deployment, "Progressing") or {}
    done = (
        status.get("observedGeneration") == deployment["metadata"]["generation"]
        and status.get("updatedReplicas") == status.get("replicas") == replicas
        and status.get("availableReplicas") == replicas
        and progressing.get("reason") == "NewReplicaSetAvailable"
    )
    return deployment if done else None


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def service_url(cluster: Cluster, namespace: str) -> str:
    def url() -> str | None:
        annotations = cluster.service(namespace, "iris")["metadata"].get("annotations") or {}
        return annotations.get("sandbox.conveyor.dev/url")

    return wait_for(url)


def test_a_deployment_serves_through_its_service(
    cluster: Cluster, namespace: str, server_script: str
) -> None:
    cluster.core.create_namespaced_service(namespace, SERVICE)
    cluster.apps.create_namespaced_deployment(namespace, deployment_manifest(server_script, "v1"))
    deployment = wait_for(lambda: rolled_out(cluster, namespace))

    status = deployment["status"]
    assert (status["replicas"], status["readyReplicas"], status["unavailableReplicas"]) == (2, 2, 0)
    assert condition(deployment, "Available")["reason"] == "MinimumReplicasAvailable"
    pods = cluster.pods(namespace, "app=iris")
    assert len(pods) == 2
    assert all(p["metadata"]["labels"].get("pod-template-hash") for p in pods)
    url = service_url(cluster, namespace)
    answers = {fetch(url) for _ in range(8)}
    assert {a.split()[0] for a in answers} == {"v1"}
    assert len(answers) == 2  # both pods answered


def test_a_template_change_rolls_pods_while_the_service_answers(
    cluster: Cluster, namespace: str, server_script: str
) -> None:
    cluster.core.create_namespaced_service(namespace, SERVICE)
    cluster.apps.create_namespaced_deployment(namespace, deployment_manifest(server_script, "v1"))
    wait_for(lambda: rolled_out(cluster, namespace))
    url = service_url(cluster, namespace)
    answers: list[str] = []
    errors: list[str] = []
    done = threading.Event()

    def keep_asking() -> None:
        while not done.is_set():
            try:
                answers.append(fetch(url).split()[0])
            except (OSError, urllib.error.URLError) as error:
                errors.append(str(error))

    asker = threading.Thread(target=keep_asking)
    asker.start()
    try:
        cluster.apps.patch_namespaced_deployment(
            "iris", namespace, deployment_manifest(server_script, "v2")
        )
        wait_for(
            lambda: (
                rolled_out(cluster, namespace)
                and not [
                    p
                    for p in cluster.pods(namespace, "app=iris")
                    if "v1" in str(p["spec"]["containers"][0]["env"])
                ]
            ),
            timeout=30,
        )
        wait_for(lambda: answers[-1] == "v2")
    finally:
        done.set()
        asker.join()
    assert errors == []
    assert answers[0] == "v1" and answers[-1] == "v2"
    assert len(cluster.pods(namespace, "app=iris")) == 2


def test_scaling_follows_replicas(cluster: Cluster, namespace: str, server_script: str) -> None:
    cluster.apps.create_namespaced_deployment(namespace, deployment_manifest(server_script, "v1"))
    wait_for(lambda: rolled_out(cluster, namespace))
    cluster.apps.patch_namespaced_deployment("iris", namespace, {"spec": {"replicas": 1}})
    wait_for(lambda: rolled_out(cluster, namespace, replicas=1))
    wait_for(lambda: len(cluster.pods(namespace, "app=iris")) == 1)
