"""The operator against the sandbox: a real API emulator, S3 server, node agent and operator
process. One sandbox per test module; each test works in a namespace of its own."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
import pytest
import yaml
from kubernetes.client import ApiClient, ApiException, CoreV1Api, CustomObjectsApi

from conveyor.api.v1alpha1 import GROUP, VERSION
from conveyor.sandbox.stack import Sandbox, SandboxConfig
from tests.apiaudit import check_operator_calls
from tests.conftest import EXAMPLES

T = TypeVar("T")
_namespaces = itertools.count(1)


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


def running_sandbox(tmp_path_factory: pytest.TempPathFactory, **config: Any) -> Iterator[Sandbox]:
    """A sandbox for one module (fast resyncs, a crashed operator back within seconds), and
    a check after it that the operator never raised."""
    settings = SandboxConfig(
        state_dir=tmp_path_factory.mktemp("sandbox"),
        resync_seconds=2.0,
        restart_backoff_seconds=0.5,
        restart_backoff_cap_seconds=2.0,
        **config,
    )
    with Sandbox(settings) as running:
        yield running
    for operator_log in running.operators.log_files():
        assert "Traceback" not in operator_log.read_text(), operator_log.read_text()[-4000:]
    check_operator_calls(running.log_dir)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    yield from running_sandbox(tmp_path_factory, monitoring=False)


@pytest.fixture(scope="module")
def client(sandbox: Sandbox) -> Iterator[ApiClient]:
    with kubernetes.config.new_client_from_config(config_file=str(sandbox.kubeconfig)) as api:
        yield api


@pytest.fixture
def namespace(client: ApiClient) -> str:
    name = f"test-{next(_namespaces)}"
    CoreV1Api(client).create_namespace({"metadata": {"name": name}})
    return name


class Resources:
    """Create, read, patch and delete Conveyor objects in one namespace."""

    def __init__(self, client: ApiClient, namespace: str) -> None:
        self.api = CustomObjectsApi(client)
        self.namespace = namespace

    def create(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.api.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, body
        )
        return result

    def get(self, plural: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.api.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, name
        )
        return result

    def exists(self, plural: str, name: str) -> bool:
        try:
            self.get(plural, name)
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    def list(self, plural: str, selector: str = "") -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.api.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, label_selector=selector
        )["items"]
        return items

    def patch(self, plural: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.api.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, name, body
        )
        return result

    def delete(self, plural: str, name: str) -> None:
        self.api.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, name)

    def condition(self, plural: str, name: str, type_: str = "Ready") -> dict[str, Any] | None:
        """The condition once the current generation has been reconciled."""
        obj = self.get(plural, name)
        status = obj.get("status") or {}
        if status.get("observedGeneration") != obj["metadata"]["generation"]:
            return None
        return next((c for c in status.get("conditions", []) if c["type"] == type_), None)

    def wait_condition(
        self,
        plural: str,
        name: str,
        status: str,
        reason: str | None = None,
        *,
        type_: str = "Ready",
        timeout: float = 15.0,
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            found = self.condition(plural, name, type_)
            if found and found["status"] == status and reason in (None, found["reason"]):
                return found
            return None

        return wait_for(
            probe,
            timeout=timeout,
            what=f"{plural}/{name} {type_}={status} {reason or ''} "
            f"(last: {self.condition(plural, name, type_)})",
        )

    def wait_ready(
        self, plural: str, name: str, status: str, reason: str | None = None, timeout: float = 15.0
    ) -> dict[str, Any]:
        return self.wait_condition(plural, name, status, reason, timeout=timeout)


@pytest.fixture
def resources(client: ApiClient, namespace: str) -> Resources:
    return Resources(client, namespace)


def example(name: str, file: str) -> dict[str, Any]:
    return dict(yaml.safe_load((EXAMPLES / name / file).read_text()))


def read_log(path: Path) -> str:
    return path.read_text() if path.exists() else ""
