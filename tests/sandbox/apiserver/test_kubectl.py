"""kubectl against the sandbox API: what a person types works as on a real cluster."""

from __future__ import annotations

import json

import pytest
from kubernetes.client import CoreV1Api, CustomObjectsApi

from tests.sandbox.apiserver.conftest import WIDGETS, Kubectl

pytestmark = pytest.mark.integration

WIDGET_YAML = """
apiVersion: test.conveyor.dev/v1
kind: Widget
metadata:
  name: {name}
  labels: {{team: {team}}}
spec:
  size: {size}
"""

DEPLOYMENT_YAML = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: app
        image: {image}
        env: [{{name: MODE, value: {mode}}}]
"""


def apply_widget(kubectl: Kubectl, name: str, *, size: int = 1, team: str = "a") -> str:
    return kubectl("apply", "-f", "-", input=WIDGET_YAML.format(name=name, size=size, team=team))


def test_create_and_get_by_plural_short_name_category_and_full_name(
    kubectl: Kubectl, widget_crd: dict
) -> None:
    assert "widget.test.conveyor.dev/w1 created" in kubectl(
        "create", "-f", "-", input=WIDGET_YAML.format(name="w1", size=2, team="a")
    )
    for resource in ("widgets", "widget", "wd", "gadgets", "widgets.test.conveyor.dev"):
        output = kubectl("get", resource)
        assert "w1" in output, (resource, output)


def test_get_shows_the_printer_columns(kubectl: Kubectl, widget_crd: dict) -> None:
    apply_widget(kubectl, "w1", size=7)
    header, row = kubectl("get", "widgets").splitlines()
    assert header.split() == ["NAME", "SIZE", "AGE"]
    assert row.split()[:2] == ["w1", "7"]


def test_get_with_label_selector_as_json(kubectl: Kubectl, widget_crd: dict) -> None:
    apply_widget(kubectl, "w1", team="a")
    apply_widget(kubectl, "w2", team="b")
    listed = kubectl.json("get", "widgets", "-l", "team=b")
    assert [item["metadata"]["name"] for item in listed["items"]] == ["w2"]


def test_apply_twice_is_unchanged_then_configured(
    kubectl: Kubectl, custom: CustomObjectsApi, widget_crd: dict
) -> None:
    assert "w1 created" in apply_widget(kubectl, "w1", size=1)
    assert "w1 unchanged" in apply_widget(kubectl, "w1", size=1)
    assert "w1 configured" in apply_widget(kubectl, "w1", size=5)
    current = custom.get_namespaced_custom_object(*WIDGETS, "default", "widgets", "w1")
    assert current["spec"] == {"size": 5}
    assert current["metadata"]["generation"] == 2


def test_apply_of_a_built_in_kind_uses_strategic_merge(kubectl: Kubectl) -> None:
    assert "created" in kubectl(
        "apply", "-f", "-", input=DEPLOYMENT_YAML.format(image="img:1", mode="a")
    )
    assert "unchanged" in kubectl(
        "apply", "-f", "-", input=DEPLOYMENT_YAML.format(image="img:1", mode="a")
    )
    assert "configured" in kubectl(
        "apply", "-f", "-", input=DEPLOYMENT_YAML.format(image="img:2", mode="b")
    )
    containers = kubectl.json("get", "deployment", "web")["spec"]["template"]["spec"]["containers"]
    env = [{"name": "MODE", "value": "b"}]
    assert containers == [{"name": "app", "image": "img:2", "env": env}]


def test_patch_merge_json_and_status(kubectl: Kubectl, widget_crd: dict) -> None:
    apply_widget(kubectl, "w1", size=1)
    kubectl("patch", "widget", "w1", "--type", "merge", "-p", '{"spec": {"size": 2}}')
    kubectl(
        "patch",
        "widget",
        "w1",
        "--type",
        "json",
        "-p",
        '[{"op": "add", "path": "/spec/colour", "value": "red"}]',
    )
    kubectl(
        "patch",
        "widget",
        "w1",
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        '{"status": {"phase": "Ready"}}',
    )
    current = kubectl.json("get", "widget", "w1")
    assert current["spec"] == {"size": 2, "colour": "red"}
    assert current["status"] == {"phase": "Ready"}


def test_annotate_label_and_describe(kubectl: Kubectl, widget_crd: dict) -> None:
    apply_widget(kubectl, "w1")
    kubectl("annotate", "widget", "w1", "example.com/note=hello")
    kubectl("label", "widget", "w1", "stage=prod")
    described = kubectl("describe", "widget", "w1")
    assert "example.com/note: hello" in described
    assert "stage=prod" in described
    assert "Size:" in described


def test_delete_and_cascade_orphan(kubectl: Kubectl, core: CoreV1Api) -> None:
    owner = core.create_namespaced_config_map("default", {"metadata": {"name": "owner"}})
    reference = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner.metadata.uid,
    }
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "child", "ownerReferences": [reference]}}
    )
    kubectl("delete", "configmap", "owner", "--cascade=orphan")
    child = kubectl.json("get", "configmap", "child")
    assert "ownerReferences" not in child["metadata"]

    assert 'configmap "child" deleted' in kubectl("delete", "configmap", "child")
    result = kubectl.run("get", "configmap", "child", check=False)
    assert result.returncode != 0
    assert 'configmaps "child" not found' in result.stderr


def test_get_pods_shows_status_columns(kubectl: Kubectl, core: CoreV1Api) -> None:
    core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "p1"}, "spec": {"containers": [{"name": "main", "image": "img"}]}},
    )
    header, row = kubectl("get", "pods").splitlines()
    assert header.split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert row.split()[:4] == ["p1", "0/1", "Pending", "0"]


def test_get_namespaces_and_all(kubectl: Kubectl) -> None:
    names = [item["metadata"]["name"] for item in kubectl.json("get", "namespaces")["items"]]
    assert {"default", "kube-system"} <= set(names)
    assert kubectl.run("get", "all").returncode == 0


def test_wait_for_a_condition(kubectl: Kubectl, core: CoreV1Api) -> None:
    core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "p1"}, "spec": {"containers": [{"name": "main", "image": "img"}]}},
    )
    core.patch_namespaced_pod_status(
        "p1",
        "default",
        {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
    )
    output = kubectl("wait", "--for=condition=Ready", "pod/p1", "--timeout=10s")
    assert "condition met" in output
    assert json.loads(kubectl("get", "pod", "p1", "-o", "json"))["status"]["phase"] == "Running"


def test_unsupported_kubectl_modes_explain_the_alternative(kubectl: Kubectl) -> None:
    # Imperative `kubectl create <kind>` sends protobuf; the sandbox speaks JSON only.
    result = kubectl.run("create", "namespace", "team", check=False)
    assert result.returncode != 0
    assert "kubectl apply -f" in result.stderr
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n"
    result = kubectl.run("apply", "--server-side", "-f", "-", input=manifest, check=False)
    assert result.returncode != 0
    assert "use client-side 'kubectl apply'" in result.stderr
