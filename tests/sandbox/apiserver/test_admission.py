"""Custom resources are pruned, defaulted and validated against their CRD schema on every write."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client import ApiClient, ApiextensionsV1Api, CustomObjectsApi

from tests.sandbox.apiserver.conftest import Kubectl, api_error

GADGETS = ("test.conveyor.dev", "v1", "default", "gadgets")
GADGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.test.conveyor.dev"},
    "spec": {
        "group": "test.conveyor.dev",
        "scope": "Namespaced",
        "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1, "maximum": 10},
                                    "model": {
                                        "type": "string",
                                        "enum": ["svm", "logreg"],
                                        "default": "svm",
                                    },
                                },
                            },
                            "status": {
                                "type": "object",
                                "properties": {"phase": {"type": "string"}},
                            },
                        },
                    }
                },
            }
        ],
    },
}


def gadget(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "test.conveyor.dev/v1",
        "kind": "Gadget",
        "metadata": {"name": name},
        "spec": spec,
    }


@pytest.fixture
def gadgets(api_client: ApiClient) -> CustomObjectsApi:
    ApiextensionsV1Api(api_client).create_custom_resource_definition(GADGET_CRD)
    return CustomObjectsApi(api_client)


def test_create_prunes_unknown_fields_and_applies_defaults(gadgets: CustomObjectsApi) -> None:
    created = gadgets.create_namespaced_custom_object(*GADGETS, gadget("g", size=3, colour="red"))
    assert created["spec"] == {"size": 3, "model": "svm"}
    assert created["metadata"]["name"] == "g" and created["metadata"]["uid"]


def test_an_invalid_create_is_422_and_stores_nothing(gadgets: CustomObjectsApi) -> None:
    code, status = api_error(
        gadgets.create_namespaced_custom_object, *GADGETS, gadget("g", size=20)
    )
    assert (code, status["reason"]) == (422, "Invalid")
    assert "spec.size" in status["message"]
    code, _ = api_error(gadgets.get_namespaced_custom_object, *GADGETS, "g")
    assert code == 404


def test_an_invalid_patch_is_422_and_changes_nothing(gadgets: CustomObjectsApi) -> None:
    created = gadgets.create_namespaced_custom_object(*GADGETS, gadget("g", size=3))
    code, status = api_error(
        gadgets.patch_namespaced_custom_object, *GADGETS, "g", {"spec": {"model": "forest"}}
    )
    assert (code, status["reason"]) == (422, "Invalid")
    assert "spec.model" in status["message"]
    current = gadgets.get_namespaced_custom_object(*GADGETS, "g")
    assert current == created


def test_status_fields_the_schema_does_not_declare_are_pruned(gadgets: CustomObjectsApi) -> None:
    gadgets.create_namespaced_custom_object(*GADGETS, gadget("g", size=3))
    patched = gadgets.patch_namespaced_custom_object_status(
        *GADGETS, "g", {"status": {"phase": "Ready", "undeclared": 1}}
    )
    assert patched["status"] == {"phase": "Ready"}


def test_kubectl_reports_the_invalid_field(gadgets: CustomObjectsApi, kubectl: Kubectl) -> None:
    manifest = "apiVersion: test.conveyor.dev/v1\nkind: Gadget\nmetadata: {name: g}\nspec: {}\n"
    result = kubectl.run("create", "-f", "-", input=manifest, check=False)
    assert result.returncode != 0
    assert "spec.size" in result.stderr


def test_kubectl_strict_validation_rejects_unknown_fields(
    gadgets: CustomObjectsApi, kubectl: Kubectl
) -> None:
    manifest = (
        "apiVersion: test.conveyor.dev/v1\nkind: Gadget\nmetadata: {name: g}\n"
        "spec: {size: 2, sise: 3}\n"
    )
    result = kubectl.run("apply", "-f", "-", input=manifest, check=False)
    assert result.returncode != 0
    assert 'unknown field "spec.sise"' in result.stderr

    warned = kubectl.run("apply", "--validate=warn", "-f", "-", input=manifest)
    assert 'unknown field "spec.sise"' in warned.stderr
    assert gadgets.get_namespaced_custom_object(*GADGETS, "g")["spec"] == {
        "size": 2,
        "model": "svm",
    }
