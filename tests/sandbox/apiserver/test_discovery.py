"""Discovery and OpenAPI documents, as kubectl and kopf read them."""

from __future__ import annotations

from conveyor.sandbox.apiserver import ApiServerThread
from tests.sandbox.apiserver.conftest import Kubectl, http


def test_core_group_discovery(api_server: ApiServerThread) -> None:
    assert http("GET", api_server.url + "/api")[1]["versions"] == ["v1"]
    resources = http("GET", api_server.url + "/api/v1")[1]
    assert resources["groupVersion"] == "v1"
    names = {resource["name"] for resource in resources["resources"]}
    assert {
        "namespaces",
        "pods",
        "pods/log",
        "pods/status",
        "services",
        "services/status",
        "secrets",
        "configmaps",
        "events",
        "serviceaccounts",
    } <= names


def test_built_in_groups_are_discoverable(api_server: ApiServerThread) -> None:
    groups = {g["name"]: g for g in http("GET", api_server.url + "/apis")[1]["groups"]}
    assert {"batch", "apps", "events.k8s.io", "coordination.k8s.io", "apiextensions.k8s.io"} <= set(
        groups
    )
    apps = http("GET", api_server.url + "/apis/apps/v1")[1]
    deployments = next(r for r in apps["resources"] if r["name"] == "deployments")
    assert deployments["kind"] == "Deployment" and deployments["namespaced"] is True
    assert "deploy" in deployments["shortNames"] and "patch" in deployments["verbs"]


def test_a_crd_registers_its_resource_with_everything_kubectl_needs(
    api_server: ApiServerThread, widget_crd: dict
) -> None:
    group = http("GET", api_server.url + "/apis/test.conveyor.dev")[1]
    assert group["preferredVersion"]["groupVersion"] == "test.conveyor.dev/v1"
    resources = http("GET", api_server.url + "/apis/test.conveyor.dev/v1")[1]["resources"]
    main = next(r for r in resources if r["name"] == "widgets")
    assert main == {
        "name": "widgets",
        "singularName": "widget",
        "namespaced": True,
        "kind": "Widget",
        "verbs": [
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ],
        "shortNames": ["wd"],
        "categories": ["gadgets"],
    }
    assert "widgets/status" in [r["name"] for r in resources]


def test_the_crd_is_established(kubectl: Kubectl, widget_crd: dict) -> None:
    output = kubectl(
        "wait", "--for=condition=Established", "crd/widgets.test.conveyor.dev", "--timeout=10s"
    )
    assert "condition met" in output


def test_openapi_v3_defers_field_validation_to_the_server(
    api_server: ApiServerThread, widget_crd: dict
) -> None:
    index = http("GET", api_server.url + "/openapi/v3")[1]["paths"]
    assert {"api/v1", "apis/apps/v1", "apis/test.conveyor.dev/v1"} <= set(index)
    document = http("GET", api_server.url + index["apis/test.conveyor.dev/v1"]["serverRelativeURL"])
    patch = document[1]["paths"]["/apis/test.conveyor.dev/v1/namespaces/{namespace}/widgets/{name}"]
    assert "fieldValidation" in [p["name"] for p in patch["patch"]["parameters"]]


def test_table_responses_for_built_in_kinds(api_server: ApiServerThread) -> None:
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io"
    code, table = http("GET", api_server.url + "/api/v1/namespaces", headers={"Accept": accept})
    assert code == 200 and table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age"]
    assert table["rows"][0]["cells"][0] == "default"
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


def test_unknown_paths_are_404_status(api_server: ApiServerThread) -> None:
    code, status = http("GET", api_server.url + "/apis/nothing.example.com/v1/things")
    assert (code, status["kind"]) == (404, "Status")
