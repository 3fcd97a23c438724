"""A sandbox API server and a node agent, shared by the integration tests of this package, and
one container run as a local process without them."""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from conveyor.sandbox.apiserver import ApiServerThread, write_kubeconfig
from conveyor.sandbox.nodeagent import NodeAgent
from conveyor.sandbox.nodeagent.runtime import ContainerRuntime, PodContext

IMAGE = "conveyor:test"
_namespaces = itertools.count()


class Cluster:
    """Raw-JSON helpers over the official client, as a user of the sandbox would call it."""

    def __init__(self, client: kubernetes.client.ApiClient, log_dir: Path) -> None:
        self.client = client
        self.log_dir = log_dir
        self.core = kubernetes.client.CoreV1Api(client)
        self.batch = kubernetes.client.BatchV1Api(client)
        self.apps = kubernetes.client.AppsV1Api(client)

    @staticmethod
    def _json(response: Any) -> Any:
        return json.loads(response.data)

    def job(self, namespace: str, name: str) -> dict[str, Any]:
        return self._json(self.batch.read_namespaced_job(name, namespace, _preload_content=False))

    def deployment(self, namespace: str, name: str) -> dict[str, Any]:
        return self._json(
            self.apps.read_namespaced_deployment(name, namespace, _preload_content=False)
        )

    def service(self, namespace: str, name: str) -> dict[str, Any]:
        return self._json(
            self.core.read_namespaced_service(name, namespace, _preload_content=False)
        )

    def pods(self, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        answer = self.core.list_namespaced_pod(
            namespace, label_selector=selector, _preload_content=False
        )
        return self._json(answer)["items"]

    def events(self, namespace: str) -> list[dict[str, Any]]:
        return self._json(self.core.list_namespaced_event(namespace, _preload_content=False))[
            "items"
        ]

    def log(self, namespace: str, pod: str, container: str = "main") -> str:
        return (self.log_dir / namespace / pod / f"{container}.log").read_text()


def wait_for(check: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for item in (obj.get("status") or {}).get("conditions") or []:
        if item.get("type") == kind and item.get("status") == "True":
            return item
    return None


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, NodeAgent]]:
    root = tmp_path_factory.mktemp("sandbox")
    with ApiServerThread(log_dir=root / "logs") as api:
        write_kubeconfig(root / "kubeconfig", api.url)
        client = kubernetes.config.new_client_from_config(config_file=str(root / "kubeconfig"))
        agent = NodeAgent(
            client,
            image=IMAGE,
            state_dir=root / "state",
            log_dir=root / "logs",
            command_map={"pyrun": [sys.executable, "-c"], "pyfile": [sys.executable]},
        )
        with agent:
            assert agent.wait_synced()
            yield Cluster(client, root / "logs"), agent
        client.close()


@pytest.fixture
def cluster(sandbox: tuple[Cluster, NodeAgent]) -> Cluster:
    return sandbox[0]


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace, deleted (with everything in it) after the test."""
    name = f"test-{next(_namespaces)}"
    cluster.core.create_namespace({"metadata": {"name": name}})
    yield name
    cluster.core.delete_namespace(name)


COMMANDS = {"pyrun": [sys.executable, "-c"]}


def make(
    tmp_path: Path,
    script: str,
    policy: str = "Never",
    pod_extra: Mapping[str, Any] | None = None,
    **container: Any,
) -> tuple[ContainerRuntime, list[tuple[str, str, str]]]:
    """A container ``main`` running ``python -c script`` in a pod with ``restartPolicy``
    ``policy``; the pod directory is ``tmp_path/work``, the logs are in ``tmp_path/logs``."""
    events: list[tuple[str, str, str]] = []
    pod = {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u", **(pod_extra or {})},
        "spec": {"restartPolicy": policy},
    }
    context = PodContext(
        pod=pod,
        workdir=tmp_path / "work",
        log_dir=tmp_path / "logs",
        base_env={"PATH": "/usr/bin:/bin"},
        command_map=COMMANDS,
        lookup=lambda *_: None,
        emit=lambda *event: events.append(event),
    )
    spec = {
        "name": "main",
        "image": "conveyor",
        "command": ["pyrun"],
        "args": [script],
        **container,
    }
    return ContainerRuntime(spec, context), events


def run_until(
    runtime: ContainerRuntime, predicate: Callable[[ContainerRuntime], Any], timeout: float = 10.0
) -> None:
    """Step ``runtime`` until ``predicate`` holds; stop it and fail when it never does."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        runtime.step(time.time())
        if predicate(runtime):
            return
        time.sleep(0.02)
    runtime.stop(0)
    raise AssertionError(f"state never reached; last state {runtime.state}")
