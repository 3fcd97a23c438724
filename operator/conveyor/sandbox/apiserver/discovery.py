"""Discovery documents (`/api`, `/apis`, ...) and the OpenAPI stubs kubectl asks for.

kubectl and kopf learn every resource from discovery, so what is registered here is exactly
what `kubectl get <plural|short name|category>` can resolve. The OpenAPI v3 stub only tells
kubectl that every PATCH accepts `fieldValidation`, so that `kubectl create/apply` leave
validation to the server (which validates custom resources against their CRD schema).
"""

from __future__ import annotations

import hashlib
from typing import Any

from conveyor.sandbox.apiserver.errors import ApiError
from conveyor.sandbox.apiserver.resources import SUBRESOURCE_VERBS, Registry, ResourceType

__all__ = [
    "api_group",
    "api_group_list",
    "api_resource_list",
    "api_versions",
    "openapi_v2",
    "openapi_v3_group_version",
    "openapi_v3_index",
    "root_paths",
]


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address},
        ],
    }


def _group_document(name: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{name}/{version}", "version": version} for version in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(registry: Registry) -> dict[str, Any]:
    groups = [
        _group_document(name, versions)
        for name, versions in registry.groups().items()
        if name  # the core group is served under /api, not /apis
    ]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: Registry, group: str) -> dict[str, Any]:
    versions = registry.groups().get(group)
    if not group or not versions:
        raise ApiError(
            404, "NotFound", f"the server could not find the requested resource ({group})"
        )
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_document(group, versions)}


def _resource_entries(resource_type: ResourceType) -> list[dict[str, Any]]:
    main = {
        "name": resource_type.plural,
        "singularName": resource_type.singular,
        "namespaced": resource_type.namespaced,
        "kind": resource_type.kind,
        "verbs": list(resource_type.verbs),
    }
    if resource_type.short_names:
        main["shortNames"] = list(resource_type.short_names)
    if resource_type.categories:
        main["categories"] = list(resource_type.categories)
    entries = [main]
    for subresource in resource_type.subresources:
        entries.append(
            {
                "name": f"{resource_type.plural}/{subresource}",
                "singularName": "",
                "namespaced": resource_type.namespaced,
                "kind": resource_type.kind if subresource == "status" else "Pod",
                "verbs": list(SUBRESOURCE_VERBS.get(subresource, ("get",))),
            }
        )
    return entries


def api_resource_list(registry: Registry, group: str, version: str) -> dict[str, Any]:
    resource_types = registry.in_group_version(group, version)
    group_version = f"{group}/{version}" if group else version
    if not resource_types:
        raise ApiError(
            404, "NotFound", f"the server could not find the requested resource ({group_version})"
        )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": [entry for t in resource_types for entry in _resource_entries(t)],
    }


def root_paths(registry: Registry) -> dict[str, Any]:
    paths = {"/api", "/api/v1", "/apis", "/openapi/v2", "/openapi/v3", "/version"}
    for group, versions in registry.groups().items():
        if group:
            paths.add(f"/apis/{group}")
            paths.update(f"/apis/{group}/{version}" for version in versions)
    return {"paths": sorted(paths)}


def _openapi_key(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_v3_index(registry: Registry) -> dict[str, Any]:
    paths = {}
    for group, versions in registry.groups().items():
        for version in versions:
            key = _openapi_key(group, version)
            kinds = ",".join(t.kind for t in registry.in_group_version(group, version))
            digest = hashlib.sha256(kinds.encode()).hexdigest()[:16].upper()
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": paths}


def openapi_v3_group_version(registry: Registry, group: str, version: str) -> dict[str, Any]:
    """PATCH operations that accept `fieldValidation`, one per kind: what kubectl checks."""
    resource_types = registry.in_group_version(group, version)
    if not resource_types:
        raise ApiError(404, "NotFound", f"no OpenAPI document for {_openapi_key(group, version)}")
    paths: dict[str, Any] = {}
    for resource_type in resource_types:
        prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
        scope = "/namespaces/{namespace}" if resource_type.namespaced else ""
        gvk = {"group": group, "version": version, "kind": resource_type.kind}
        parameters = [
            {"name": name, "in": "query", "schema": {"type": "string"}}
            for name in ("dryRun", "fieldManager", "fieldValidation", "force")
        ]
        paths[f"{prefix}{scope}/{resource_type.plural}/{{name}}"] = {
            "patch": {
                "operationId": f"patch{resource_type.kind}",
                "parameters": parameters,
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
            },
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (Conveyor sandbox)", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }


def openapi_v2() -> dict[str, Any]:
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes (Conveyor sandbox)", "version": "v1.32.0"},
        "paths": {},
        "definitions": {},
    }
