"""Object semantics through the real kubernetes client: metadata, errors, patches, selectors."""

from __future__ import annotations

import re
import time
from typing import Any

import kubernetes
import pytest
from kubernetes.client import ApiClient, AppsV1Api, CoreV1Api, CustomObjectsApi

from conveyor.sandbox.apiserver import ApiServerThread
from tests.sandbox.apiserver.conftest import WIDGETS, api_error, http, widget


def configmap(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}


def test_create_fills_server_owned_metadata(core: CoreV1Api) -> None:
    created = core.create_namespaced_config_map("default", configmap("settings"))
    metadata = created.metadata
    assert metadata.namespace == "default"  # taken from the URL
    assert re.fullmatch(r"[0-9a-f-]{36}", metadata.uid)
    assert int(metadata.resource_version) > 0
    assert metadata.generation == 1
    assert metadata.creation_timestamp is not None

    generated = core.create_namespaced_config_map(
        "default", {"metadata": {"generateName": "event-"}}
    )
    assert re.fullmatch(r"event-[a-z0-9]{5}", generated.metadata.name)


def test_resource_version_is_global_and_monotonic(core: CoreV1Api) -> None:
    first = core.create_namespaced_config_map("default", configmap("one"))
    second = core.create_namespaced_secret("default", {"metadata": {"name": "two"}})
    listed = core.list_namespaced_config_map("default")
    assert int(first.metadata.resource_version) < int(second.metadata.resource_version)
    assert listed.metadata.resource_version == second.metadata.resource_version
    assert listed.kind == "ConfigMapList" and listed.api_version == "v1"


def test_generation_bumps_only_when_the_spec_changes(
    custom: CustomObjectsApi, widget_crd: dict
) -> None:
    custom.create_namespaced_custom_object(*WIDGETS, "default", "widgets", widget("w", size=1))
    labelled = custom.patch_namespaced_custom_object(
        *WIDGETS, "default", "widgets", "w", {"metadata": {"labels": {"a": "b"}}}
    )
    assert labelled["metadata"]["generation"] == 1
    with_status = custom.patch_namespaced_custom_object_status(
        *WIDGETS, "default", "widgets", "w", {"status": {"phase": "Ready"}}
    )
    assert with_status["metadata"]["generation"] == 1
    resized = custom.patch_namespaced_custom_object(
        *WIDGETS, "default", "widgets", "w", {"spec": {"size": 2}}
    )
    assert resized["metadata"]["generation"] == 2


def test_a_patch_that_changes_nothing_keeps_the_resource_version(core: CoreV1Api) -> None:
    created = core.create_namespaced_config_map("default", configmap("same", app="x"))
    patched = core.patch_namespaced_config_map(
        "same", "default", {"metadata": {"labels": {"app": "x"}}}
    )
    assert patched.metadata.resource_version == created.metadata.resource_version


def test_errors_are_status_objects_with_real_codes(
    core: CoreV1Api, custom: CustomObjectsApi, widget_crd: dict
) -> None:
    code, status = api_error(core.read_namespaced_config_map, "missing", "default")
    assert (code, status["kind"], status["reason"]) == (404, "Status", "NotFound")
    assert status["message"] == 'configmaps "missing" not found'

    core.create_namespaced_config_map("default", configmap("dup"))
    code, status = api_error(core.create_namespaced_config_map, "default", configmap("dup"))
    assert (code, status["reason"]) == (409, "AlreadyExists")

    code, status = api_error(core.create_namespaced_config_map, "default", configmap("Bad_Name"))
    assert (code, status["reason"]) == (422, "Invalid")
    assert "RFC 1123 subdomain" in status["message"]

    code, status = api_error(core.create_namespaced_config_map, "nowhere", configmap("x"))
    assert (code, status["message"]) == (404, 'namespaces "nowhere" not found')

    custom.create_namespaced_custom_object(*WIDGETS, "default", "widgets", widget("w", size=1))
    stale = {"metadata": {"resourceVersion": "1"}, "spec": {"size": 5}}
    code, status = api_error(
        custom.patch_namespaced_custom_object, *WIDGETS, "default", "widgets", "w", stale
    )
    assert (code, status["reason"]) == (409, "Conflict")
    assert "the object has been modified" in status["message"]


def test_failed_json_patch_test_is_422_and_changes_nothing(
    api_server: ApiServerThread, core: CoreV1Api
) -> None:
    created = core.create_namespaced_config_map("default", configmap("guarded"))
    patch = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "999999"},
        {"op": "replace", "path": "/data/k", "value": "changed"},
    ]
    code, status = http(
        "PATCH",
        f"{api_server.url}/api/v1/namespaces/default/configmaps/guarded",
        patch,
        content_type="application/json-patch+json",
    )
    assert (code, status["reason"]) == (422, "Invalid")
    assert core.read_namespaced_config_map("guarded", "default").data == created.data


@pytest.mark.parametrize(
    "content_type",
    [
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
    ],
)
def test_unsupported_patch_types_on_custom_resources_are_415(
    api_server: ApiServerThread, custom: CustomObjectsApi, widget_crd: dict, content_type: str
) -> None:
    custom.create_namespaced_custom_object(*WIDGETS, "default", "widgets", widget("w", size=1))
    url = f"{api_server.url}/apis/test.conveyor.dev/v1/namespaces/default/widgets/w"
    code, status = http("PATCH", url, {"spec": {"size": 2}}, content_type=content_type)
    assert (code, status["reason"]) == (415, "UnsupportedMediaType")


def test_status_subresource_separates_spec_and_status(
    custom: CustomObjectsApi, widget_crd: dict
) -> None:
    body = {**widget("w", size=1), "status": {"phase": "Forged"}}
    created = custom.create_namespaced_custom_object(*WIDGETS, "default", "widgets", body)
    assert "status" not in created  # status is dropped on create

    main = custom.patch_namespaced_custom_object(
        *WIDGETS, "default", "widgets", "w", {"spec": {"size": 2}, "status": {"phase": "X"}}
    )
    assert main["spec"] == {"size": 2} and "status" not in main

    status = custom.patch_namespaced_custom_object_status(
        *WIDGETS, "default", "widgets", "w", {"spec": {"size": 9}, "status": {"phase": "Ready"}}
    )
    assert status["status"] == {"phase": "Ready"} and status["spec"] == {"size": 2}


def test_merge_patch_follows_rfc_7386(custom: CustomObjectsApi, widget_crd: dict) -> None:
    custom.create_namespaced_custom_object(
        *WIDGETS, "default", "widgets", widget("w", size=1, model="svm", extra=True)
    )
    patched = custom.patch_namespaced_custom_object(
        *WIDGETS,
        "default",
        "widgets",
        "w",
        {"spec": {"model": {"name": "svm", "c": 1.0}, "extra": None}},
    )
    assert patched["spec"] == {"size": 1, "model": {"name": "svm", "c": 1.0}}


def test_strategic_merge_patch_merges_containers_and_env_by_name(api_client: ApiClient) -> None:
    apps = AppsV1Api(api_client)
    apps.create_namespaced_deployment(
        "default",
        {
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [
                            {"name": "app", "image": "img:1", "env": [{"name": "A", "value": "1"}]},
                            {"name": "sidecar", "image": "side:1"},
                        ]
                    },
                },
            },
        },
    )
    patched = apps.patch_namespaced_deployment(
        "web",
        "default",
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "app", "image": "img:2", "env": [{"name": "B", "value": "2"}]}
                        ],
                    }
                }
            }
        },
    )
    containers = patched.spec.template.spec.containers
    assert [(c.name, c.image) for c in containers] == [("app", "img:2"), ("sidecar", "side:1")]
    assert [(e.name, e.value) for e in containers[0].env] == [("A", "1"), ("B", "2")]
    assert patched.metadata.generation == 2


def test_put_replaces_the_object_and_checks_its_version(core: CoreV1Api) -> None:
    created = core.create_namespaced_config_map(
        "default",
        {
            "metadata": {"name": "cfg"},
            "data": {"a": "1", "b": "2"},
        },
    )
    replaced = core.replace_namespaced_config_map(
        "cfg",
        "default",
        {
            "metadata": {"name": "cfg", "resourceVersion": created.metadata.resource_version},
            "data": {"a": "3"},
        },
    )
    assert replaced.data == {"a": "3"}
    assert replaced.metadata.uid == created.metadata.uid

    stale = {"metadata": {"name": "cfg", "resourceVersion": created.metadata.resource_version}}
    code, status = api_error(core.replace_namespaced_config_map, "cfg", "default", stale)
    assert (code, status["reason"]) == (409, "Conflict")


def test_label_selectors_on_lists(core: CoreV1Api) -> None:
    for name, labels in [
        ("a", {"tier": "web", "env": "prod"}),
        ("b", {"tier": "db"}),
        ("c", {"env": "dev"}),
    ]:
        core.create_namespaced_config_map("default", configmap(name, **labels))

    def names(selector: str) -> list[str]:
        items = core.list_namespaced_config_map("default", label_selector=selector).items
        return [item.metadata.name for item in items]

    assert names("tier=web") == ["a"]
    assert names("tier==db") == ["b"]
    assert names("tier!=web") == ["b", "c"]
    assert names("tier in (web,db)") == ["a", "b"]
    assert names("tier notin (web)") == ["b", "c"]
    assert names("env") == ["a", "c"]
    assert names("!env") == ["b"]
    assert names("tier,env=prod") == ["a"]


def test_field_selectors_on_lists(core: CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "other"}})
    for namespace, name in [("default", "p1"), ("default", "p2"), ("other", "p3")]:
        core.create_namespaced_pod(
            namespace,
            {
                "metadata": {"name": name},
                "spec": {"containers": [{"name": "main", "image": "img"}]},
            },
        )
    core.patch_namespaced_pod_status("p2", "default", {"status": {"phase": "Running"}})

    def names(selector: str) -> list[str]:
        items = core.list_pod_for_all_namespaces(field_selector=selector).items
        return [item.metadata.name for item in items]

    assert names("metadata.name=p1") == ["p1"]
    assert names("metadata.namespace=other") == ["p3"]
    assert names("status.phase=Running") == ["p2"]
    assert names("status.phase!=Running,metadata.namespace=default") == ["p1"]


def test_delete_collection_honours_selectors(core: CoreV1Api) -> None:
    for name, team in [("a", "x"), ("b", "x"), ("c", "y")]:
        core.create_namespaced_config_map("default", configmap(name, team=team))
    core.delete_collection_namespaced_config_map("default", label_selector="team=x")
    remaining = core.list_namespaced_config_map("default").items
    assert [item.metadata.name for item in remaining] == ["c"]


def test_server_stays_fast_after_thousands_of_requests(core: CoreV1Api) -> None:
    core.create_namespaced_config_map("default", configmap("hot"))
    started = time.perf_counter()
    for index in range(2_000):
        if index % 2:
            core.read_namespaced_config_map("hot", "default")
        else:
            core.patch_namespaced_config_map("hot", "default", {"data": {"i": str(index)}})
    total = time.perf_counter() - started
    samples = []
    for _ in range(50):
        before = time.perf_counter()
        core.read_namespaced_config_map("hot", "default")
        samples.append(time.perf_counter() - before)
    samples.sort()
    print(
        f"\n2,000 requests took {total:.2f}s; then GET median "
        f"{samples[25] * 1000:.2f} ms, max {samples[-1] * 1000:.2f} ms"
    )


def test_clients_see_kubernetes_errors_they_understand(core: CoreV1Api) -> None:
    with pytest.raises(kubernetes.client.ApiException) as raised:
        core.read_namespace("absent")
    assert raised.value.status == 404
