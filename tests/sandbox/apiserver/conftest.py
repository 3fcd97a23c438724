"""Fixtures: a sandbox API server per test, with the kubernetes client and kubectl pointed at it."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from conveyor.sandbox.apiserver import ApiServerThread, write_kubeconfig


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    path = tmp_path / "logs"
    path.mkdir()
    return path


@pytest.fixture
def api_server(log_dir: Path) -> Iterator[ApiServerThread]:
    with ApiServerThread(log_dir=log_dir, bookmark_interval=0.5) as server:
        yield server


@pytest.fixture
def kubeconfig(tmp_path: Path, api_server: ApiServerThread) -> Path:
    path = tmp_path / "kubeconfig"
    write_kubeconfig(path, api_server.url)
    return path


@pytest.fixture
def api_client(kubeconfig: Path) -> Iterator[kubernetes.client.ApiClient]:
    client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
    with client:
        yield client


class Kubectl:
    def __init__(self, kubeconfig: Path, cache_dir: Path) -> None:
        self.kubeconfig = kubeconfig
        self.cache_dir = cache_dir

    def run(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        command = [
            "kubectl",
            f"--kubeconfig={self.kubeconfig}",
            f"--cache-dir={self.cache_dir}",
            "--request-timeout=20s",
            *args,
        ]
        result = subprocess.run(command, input=input, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed: {result.stderr}{result.stdout}")
        return result

    def __call__(self, *args: str, input: str | None = None) -> str:
        return self.run(*args, input=input).stdout

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json"))


@pytest.fixture
def kubectl(kubeconfig: Path, tmp_path: Path) -> Kubectl:
    return Kubectl(kubeconfig, tmp_path / "kube-cache")


WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.test.conveyor.dev"},
    "spec": {
        "group": "test.conveyor.dev",
        "scope": "Namespaced",
        "names": {
            "plural": "widgets",
            "singular": "widget",
            "kind": "Widget",
            "shortNames": ["wd"],
            "categories": ["gadgets"],
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}
WIDGETS = ("test.conveyor.dev", "v1")


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "test.conveyor.dev/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": spec,
    }


@pytest.fixture
def widget_crd(api_client: kubernetes.client.ApiClient) -> dict[str, Any]:
    extensions = kubernetes.client.ApiextensionsV1Api(api_client)
    extensions.create_custom_resource_definition(WIDGET_CRD)
    return WIDGET_CRD


@pytest.fixture
def core(api_client: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api_client)


@pytest.fixture
def custom(api_client: kubernetes.client.ApiClient) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(api_client)


def api_error(call: Any, *args: Any, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    """The HTTP code and Status body of a call that must fail."""
    try:
        call(*args, **kwargs)
    except kubernetes.client.ApiException as error:
        return error.status, json.loads(error.body)
    raise AssertionError(f"{call.__name__} succeeded but was expected to fail")


def http(
    method: str,
    url: str,
    body: Any = None,
    *,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """A raw HTTP request: (status code, parsed JSON body or text)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={
            "Content-Type": content_type,
            **(headers or {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            code, payload = response.status, response.read()
            kind = response.headers.get_content_type()
    except urllib.error.HTTPError as error:
        with error:
            code, payload, kind = error.code, error.read(), error.headers.get_content_type()
    return code, json.loads(payload) if kind == "application/json" else payload.decode()
