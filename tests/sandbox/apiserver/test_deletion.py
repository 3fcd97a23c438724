"""Deletion: finalizers, ownerReference garbage collection, orphaning, namespaces, CRDs."""

from __future__ import annotations

from typing import Any

from kubernetes.client import ApiClient, ApiextensionsV1Api, CoreV1Api, CustomObjectsApi

from conveyor.sandbox.apiserver import ApiServerThread
from tests.sandbox.apiserver.conftest import WIDGETS, api_error, http, widget


def owned_configmap(name: str, *owners: Any) -> dict[str, Any]:
    references = [
        {
            "apiVersion": owner.api_version
            if hasattr(owner, "api_version")
            else owner["apiVersion"],
            "kind": owner.kind if hasattr(owner, "kind") else owner["kind"],
            "name": owner.metadata.name
            if hasattr(owner, "metadata")
            else owner["metadata"]["name"],
            "uid": owner.metadata.uid if hasattr(owner, "metadata") else owner["metadata"]["uid"],
        }
        for owner in owners
    ]
    return {"metadata": {"name": name, "ownerReferences": references}}


def configmap_names(core: CoreV1Api, namespace: str = "default") -> list[str]:
    return [cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items]


def test_finalizers_hold_the_object_until_they_are_removed(core: CoreV1Api) -> None:
    core.create_namespaced_config_map(
        "default",
        {
            "metadata": {"name": "held", "finalizers": ["example.com/cleanup"]},
        },
    )
    core.delete_namespaced_config_map("held", "default")
    assert core.read_namespaced_config_map("held", "default").metadata.deletion_timestamp

    code, status = api_error(
        core.patch_namespaced_config_map,
        "held",
        "default",
        {"metadata": {"finalizers": ["example.com/cleanup", "x.io/more"]}},
    )
    assert (code, status["reason"]) == (422, "Invalid")  # no new finalizers while deleting

    core.patch_namespaced_config_map("held", "default", {"metadata": {"finalizers": None}})
    assert configmap_names(core) == []


def test_dependents_are_garbage_collected_with_their_owner(
    core: CoreV1Api, custom: CustomObjectsApi, widget_crd: dict
) -> None:
    owner = custom.create_namespaced_custom_object(*WIDGETS, "default", "widgets", widget("w"))
    other_owner = core.create_namespaced_config_map("default", {"metadata": {"name": "keeper"}})
    child = core.create_namespaced_config_map("default", owned_configmap("child", owner))
    core.create_namespaced_config_map("default", owned_configmap("grandchild", child))
    core.create_namespaced_config_map("default", owned_configmap("shared", owner, other_owner))

    custom.delete_namespaced_custom_object(*WIDGETS, "default", "widgets", "w")

    assert configmap_names(core) == ["keeper", "shared"]
    shared = core.read_namespaced_config_map("shared", "default")
    assert [ref.name for ref in shared.metadata.owner_references] == ["keeper"]


def test_orphan_propagation_keeps_dependents_without_the_reference(core: CoreV1Api) -> None:
    owner = core.create_namespaced_config_map("default", {"metadata": {"name": "owner"}})
    core.create_namespaced_config_map("default", owned_configmap("child", owner))
    core.delete_namespaced_config_map("owner", "default", propagation_policy="Orphan")
    child = core.read_namespaced_config_map("child", "default")
    assert child.metadata.owner_references is None


def test_deleting_a_namespace_deletes_its_contents(core: CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "team"}})
    core.create_namespaced_config_map("team", {"metadata": {"name": "plain"}})
    core.create_namespaced_config_map(
        "team",
        {
            "metadata": {"name": "held", "finalizers": ["example.com/cleanup"]},
        },
    )
    core.delete_namespace("team")

    namespace = core.read_namespace("team")
    assert namespace.status.phase == "Terminating"
    assert configmap_names(core, "team") == ["held"]
    code, status = api_error(
        core.create_namespaced_config_map, "team", {"metadata": {"name": "late"}}
    )
    assert (code, status["reason"]) == (403, "Forbidden")

    core.patch_namespaced_config_map("held", "team", {"metadata": {"finalizers": None}})
    names = [ns.metadata.name for ns in core.list_namespace().items]
    assert "team" not in names


def test_deleting_a_crd_deletes_its_objects_and_unregisters_it(
    api_server: ApiServerThread,
    api_client: ApiClient,
    custom: CustomObjectsApi,
    widget_crd: dict,
) -> None:
    custom.create_namespaced_custom_object(*WIDGETS, "default", "widgets", widget("w"))
    assert http("GET", f"{api_server.url}/apis/test.conveyor.dev/v1")[0] == 200

    ApiextensionsV1Api(api_client).delete_custom_resource_definition("widgets.test.conveyor.dev")

    assert http("GET", f"{api_server.url}/apis/test.conveyor.dev/v1")[0] == 404
    code, _ = http("GET", f"{api_server.url}/apis/test.conveyor.dev/v1/widgets")
    assert code == 404
    groups = http("GET", f"{api_server.url}/apis")[1]["groups"]
    assert "test.conveyor.dev" not in [group["name"] for group in groups]
