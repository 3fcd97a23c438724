"""Kubernetes API paths → what they address: discovery, a collection, an object, a subresource."""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.sandbox.apiserver.errors import ApiError
from conveyor.sandbox.apiserver.resources import Registry, ResourceType

__all__ = ["Target", "parse_path"]


@dataclass(frozen=True)
class Target:
    what: str  # root, version, api, apis, group, resources, openapi, collection, object
    group: str = ""
    version: str = ""
    resource_type: ResourceType | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    watch: bool = False  # the legacy /watch/ path prefix
    rest: tuple[str, ...] = ()  # openapi: the path after /openapi; proxy: the proxied path


def _unknown(path: str) -> ApiError:
    return ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")


def parse_path(path: str, registry: Registry) -> Target | None:
    """None for paths outside the Kubernetes API (left to kmock's own reactions)."""
    parts = tuple(part for part in path.split("/") if part)
    if not parts:
        return Target("root")
    head = parts[0]
    if head == "version" and len(parts) == 1:
        return Target("version")
    if head == "openapi":
        return Target("openapi", rest=parts[1:])
    if head == "api":
        if len(parts) == 1:
            return Target("api")
        group, version, rest = "", parts[1], parts[2:]
    elif head == "apis":
        if len(parts) == 1:
            return Target("apis")
        if len(parts) == 2:
            return Target("group", group=parts[1])
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if not rest:
        return Target("resources", group=group, version=version)
    watch = rest[0] == "watch"
    if watch:
        rest = rest[1:]
    return _resource_target(path, registry, group, version, rest, watch)


def _resource_target(
    path: str, registry: Registry, group: str, version: str, rest: tuple[str, ...], watch: bool
) -> Target:
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        candidate = registry.find(group, version, rest[2])
        if candidate is not None and candidate.namespaced:
            namespace, rest = rest[1], rest[2:]
    proxied: tuple[str, ...] = ()
    if len(rest) > 3 and rest[2] == "proxy":  # pods/<name>:<port>/proxy/<path...>
        rest, proxied = rest[:3], rest[3:]
    if len(rest) > 3:
        raise _unknown(path)
    resource_type = registry.find(group, version, rest[0])
    if resource_type is None:
        raise _unknown(path)
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    if namespace is not None and not resource_type.namespaced:
        raise _unknown(path)
    if name is not None and resource_type.namespaced and namespace is None:
        raise _unknown(path)
    if subresource is not None and subresource not in resource_type.subresources:
        raise _unknown(path)
    what = "collection" if name is None else "object"
    return Target(
        what, group, version, resource_type, namespace, name, subresource, watch, rest=proxied
    )
