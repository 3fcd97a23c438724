"""`pods/log` serves the node agent's log files, so `kubectl logs` works in the sandbox."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from kubernetes.client import CoreV1Api

from conveyor.sandbox.apiserver import ApiServerThread
from tests.sandbox.apiserver.conftest import Kubectl, http

LOG_URL = "/api/v1/namespaces/default/pods/trainer/log"


@pytest.fixture
def pod(core: CoreV1Api, log_dir: Path) -> Path:
    core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "trainer"},
            "spec": {
                "containers": [
                    {"name": "train", "image": "conveyor"},
                    {"name": "sidecar", "image": "conveyor"},
                ]
            },
        },
    )
    directory = log_dir / "default" / "trainer"
    directory.mkdir(parents=True)
    (directory / "train.log").write_text("epoch 1\nepoch 2\nepoch 3\n")
    (directory / "sidecar.log").write_text("sidecar up\n")
    return directory


def test_the_first_container_log_is_served_as_text(api_server: ApiServerThread, pod: Path) -> None:
    assert http("GET", api_server.url + LOG_URL) == (200, "epoch 1\nepoch 2\nepoch 3\n")


def test_container_and_tail_lines(api_server: ApiServerThread, pod: Path) -> None:
    assert http("GET", api_server.url + LOG_URL + "?container=sidecar") == (200, "sidecar up\n")
    assert http("GET", api_server.url + LOG_URL + "?tailLines=2") == (200, "epoch 2\nepoch 3\n")


def test_clear_errors_for_unknown_pods_and_containers(
    api_server: ApiServerThread, pod: Path
) -> None:
    code, status = http("GET", api_server.url + "/api/v1/namespaces/default/pods/nope/log")
    assert (code, status["message"]) == (404, 'pods "nope" not found')
    code, status = http("GET", api_server.url + LOG_URL + "?container=web")
    assert code == 400
    assert "container web is not valid for pod trainer" in status["message"]


def test_kubectl_logs(kubectl: Kubectl, pod: Path) -> None:
    assert kubectl("logs", "trainer", "-c", "train", "--tail=1") == "epoch 3\n"
    assert kubectl("logs", "trainer", "-c", "sidecar") == "sidecar up\n"


def test_follow_streams_new_lines_until_the_pod_finishes(
    kubectl: Kubectl, core: CoreV1Api, pod: Path
) -> None:
    def write_then_finish() -> None:
        time.sleep(0.3)
        with (pod / "train.log").open("a") as log:
            log.write("epoch 4\n")
        time.sleep(0.3)
        core.patch_namespaced_pod_status("trainer", "default", {"status": {"phase": "Succeeded"}})

    writer = threading.Thread(target=write_then_finish)
    writer.start()
    output = kubectl("logs", "trainer", "-c", "train", "--follow")
    writer.join()
    assert output == "epoch 1\nepoch 2\nepoch 3\nepoch 4\n"
