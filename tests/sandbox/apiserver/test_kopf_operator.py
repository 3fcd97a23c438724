"""A tiny real kopf operator runs against the sandbox API: handlers, status, finalizers, GC."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kopf
import kopf.testing
import kubernetes
import pytest

from conveyor.sandbox.apiserver import ApiServerThread
from tests.sandbox.apiserver.conftest import WIDGET_CRD

OPERATOR = """
import kopf
import kubernetes

URL = {url!r}
DELETED_MARKER = {marker!r}


@kopf.on.login()
def login(**_):
    return kopf.ConnectionInfo(server=URL, default_namespace="default")


@kopf.on.startup()
def configure(settings, **_):
    settings.watching.server_timeout = 30
    settings.persistence.finalizer = "test.conveyor.dev/cleanup"


@kopf.on.create("test.conveyor.dev", "v1", "widgets")
def create_child(body, name, namespace, patch, **_):
    child = {{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {{"name": name + "-child"}},
             "data": {{"size": str(body["spec"]["size"])}}}}
    kopf.adopt(child, owner=body)
    with kubernetes.client.ApiClient(kubernetes.client.Configuration(host=URL)) as client:
        kubernetes.client.CoreV1Api(client).create_namespaced_config_map(namespace, child)
    patch.status["phase"] = "Ready"


@kopf.on.delete("test.conveyor.dev", "v1", "widgets")
def cleanup(name, **_):
    with open(DELETED_MARKER, "a") as marker:
        marker.write(name + "\\n")
"""


def wait_for(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {check.__doc__}")
        time.sleep(0.05)


@pytest.mark.integration
def test_kopf_operator_handles_create_status_finalizer_and_gc(
    api_server: ApiServerThread, api_client: kubernetes.client.ApiClient, tmp_path: Path
) -> None:
    extensions = kubernetes.client.ApiextensionsV1Api(api_client)
    custom = kubernetes.client.CustomObjectsApi(api_client)
    core = kubernetes.client.CoreV1Api(api_client)
    extensions.create_custom_resource_definition(WIDGET_CRD)
    marker = tmp_path / "deleted.txt"
    operator = tmp_path / "operator.py"
    operator.write_text(OPERATOR.format(url=api_server.url, marker=str(marker)))

    args = ["run", "--standalone", "--all-namespaces", "--verbose", str(operator)]
    with kopf.testing.KopfRunner(args, registry=kopf.OperatorRegistry(), timeout=30) as runner:
        custom.create_namespaced_custom_object(
            "test.conveyor.dev",
            "v1",
            "default",
            "widgets",
            {
                "apiVersion": "test.conveyor.dev/v1",
                "kind": "Widget",
                "metadata": {"name": "w1"},
                "spec": {"size": 3},
            },
        )

        def widget_ready() -> dict | None:
            """the handler to set status.phase=Ready"""
            widget = custom.get_namespaced_custom_object(
                "test.conveyor.dev", "v1", "default", "widgets", "w1"
            )
            return widget if widget.get("status", {}).get("phase") == "Ready" else None

        widget = wait_for(widget_ready)
        assert "test.conveyor.dev/cleanup" in widget["metadata"]["finalizers"]
        child = core.read_namespaced_config_map("w1-child", "default")
        assert child.metadata.owner_references[0].uid == widget["metadata"]["uid"]
        assert child.data == {"size": "3"}

        custom.delete_namespaced_custom_object(
            "test.conveyor.dev", "v1", "default", "widgets", "w1"
        )

        def widget_gone() -> bool:
            """the finalizer to be removed and the widget to be deleted"""
            names = [
                item["metadata"]["name"]
                for item in custom.list_namespaced_custom_object(
                    "test.conveyor.dev", "v1", "default", "widgets"
                )["items"]
            ]
            return "w1" not in names

        wait_for(widget_gone)
        assert marker.read_text() == "w1\n"
        children = core.list_namespaced_config_map("default").items
        assert [c.metadata.name for c in children] == []  # garbage-collected with its owner

    assert runner.exit_code == 0, runner.output
    assert "Traceback" not in runner.output, runner.output
