"""The operator against the sandbox API: a real emulator, a real operator process."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
import pytest
import yaml
from kubernetes.client import ApiClient, ApiextensionsV1Api, CustomObjectsApi

from conveyor.api.v1alpha1 import GROUP, VERSION
from conveyor.sandbox.apiserver import ApiServerThread, write_kubeconfig
from conveyor.sandbox.processes import ManagedProcess, free_port
from tests.conftest import CRDS, EXAMPLES, load_yaml_documents

T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], *, timeout: float = 15.0, what: str = "it") -> T:
    """Poll until `probe` returns something truthy; fail with `what` after the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def api_server(tmp_path: Path) -> Iterator[ApiServerThread]:
    (tmp_path / "logs").mkdir()
    with ApiServerThread(log_dir=tmp_path / "logs") as server:
        yield server


@pytest.fixture
def kubeconfig(tmp_path: Path, api_server: ApiServerThread) -> Path:
    path = tmp_path / "kubeconfig"
    write_kubeconfig(path, api_server.url)
    return path


@pytest.fixture
def client(kubeconfig: Path) -> Iterator[ApiClient]:
    with kubernetes.config.new_client_from_config(config_file=str(kubeconfig)) as api_client:
        api = ApiextensionsV1Api(api_client)
        for path in sorted(CRDS.glob("*.yaml")):
            for crd in load_yaml_documents(path):
                api.create_custom_resource_definition(crd)
        yield api_client


class OperatorProcess:
    """`conveyor operator` as a real child process; restartable."""

    def __init__(self, kubeconfig: Path, log_file: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "CONVEYOR_PORT_HTTP": str(self.port),
            "CONVEYOR_HTTP_HOST": "127.0.0.1",
            "CONVEYOR_RESYNC_SECONDS": "2",
            "PYTHONUNBUFFERED": "1",
        }
        self.process = ManagedProcess(
            [sys.executable, "-m", "conveyor", "operator"], env=env, log_file=log_file,
            name="operator",
        )

    def start(self) -> None:
        self.process.start()
        self.process.wait_http(f"{self.url}/readyz", timeout=30, expect_status=range(200, 300))

    def stop(self) -> None:
        self.process.stop()

    def log(self) -> str:
        return self.process.log_file.read_text()


@pytest.fixture
def operator(kubeconfig: Path, client: ApiClient, tmp_path: Path) -> Iterator[OperatorProcess]:
    process = OperatorProcess(kubeconfig, tmp_path / "operator.log")
    process.start()
    yield process
    process.stop()
    assert "Traceback" not in process.log(), process.log()[-3000:]


class Resources:
    """Create, read, patch and delete Conveyor objects in the default namespace."""

    def __init__(self, client: ApiClient) -> None:
        self.api = CustomObjectsApi(client)

    def create(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.api.create_namespaced_custom_object(
            GROUP, VERSION, "default", plural, body
        )
        return result

    def get(self, plural: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.api.get_namespaced_custom_object(
            GROUP, VERSION, "default", plural, name
        )
        return result

    def patch(self, plural: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.api.patch_namespaced_custom_object(
            GROUP, VERSION, "default", plural, name, body
        )
        return result

    def delete(self, plural: str, name: str) -> None:
        self.api.delete_namespaced_custom_object(GROUP, VERSION, "default", plural, name)

    def ready(self, plural: str, name: str) -> dict[str, Any] | None:
        """The Ready condition once the current generation has been reconciled."""
        obj = self.get(plural, name)
        status = obj.get("status") or {}
        if status.get("observedGeneration") != obj["metadata"]["generation"]:
            return None
        return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), None)

    def wait_ready(self, plural: str, name: str, status: str, reason: str | None = None,
                   timeout: float = 15.0) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            ready = self.ready(plural, name)
            if ready and ready["status"] == status and reason in (None, ready["reason"]):
                return ready
            return None

        return wait_for(probe, timeout=timeout, what=f"{plural}/{name} Ready={status} {reason}")


@pytest.fixture
def resources(client: ApiClient) -> Resources:
    return Resources(client)


def example(name: str, file: str) -> dict[str, Any]:
    return dict(yaml.safe_load((EXAMPLES / name / file).read_text()))
