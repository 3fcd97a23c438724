"""The node agent's only door to the Kubernetes API: raw JSON dicts over the client's
``ApiClient`` (its configuration, auth and connection pool), no generated models."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import kubernetes
from kubernetes.client.rest import ApiException
from kubernetes.watch.watch import iter_resp_lines

from .timefmt import format_time, random_suffix

__all__ = [
    "CONFIGMAPS",
    "DEPLOYMENTS",
    "EVENTS",
    "JOBS",
    "PODS",
    "SECRETS",
    "SERVICES",
    "Gone",
    "Kube",
    "Resource",
    "WatchStream",
]

logger = logging.getLogger(__name__)

_OK = {200: "object", 201: "object", 202: "object"}
_MERGE_PATCH = "application/merge-patch+json"
NODE_NAME = "sandbox"


@dataclass(frozen=True)
class Resource:
    """A namespaced API resource: ``/api/v1`` + ``pods`` + ``Pod``."""

    prefix: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return self.prefix.removeprefix("/apis/").removeprefix("/api/")

    def path(self, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
        path = self.prefix
        if namespace is not None:
            path += f"/namespaces/{namespace}"
        path += f"/{self.plural}"
        if name is not None:
            path += f"/{name}"
        return path + (f"/{sub}" if sub else "")


PODS = Resource("/api/v1", "pods", "Pod")
SERVICES = Resource("/api/v1", "services", "Service")
SECRETS = Resource("/api/v1", "secrets", "Secret")
CONFIGMAPS = Resource("/api/v1", "configmaps", "ConfigMap")
EVENTS = Resource("/api/v1", "events", "Event")
JOBS = Resource("/apis/batch/v1", "jobs", "Job")
DEPLOYMENTS = Resource("/apis/apps/v1", "deployments", "Deployment")


class Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


class WatchStream:
    """One open watch request; ``close()`` from another thread interrupts a blocked read."""

    def __init__(self, response: Any) -> None:
        self._response = response
        self._closed = threading.Event()

    def events(self) -> Iterator[dict[str, Any]]:
        for line in iter_resp_lines(self._response):
            if self._closed.is_set():
                return
            if line:
                yield json.loads(line)

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        with contextlib.suppress(Exception):  # already finished: nothing to interrupt
            self._response.shutdown()
        self._response.release_conn()
        self._response.close()


class Kube:
    """Thin raw-JSON client. Methods raise ``ApiException`` except where noted."""

    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self._client = api_client

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        stream: bool = False,
        timeout: float | tuple[float, float] | None = 10.0,
    ) -> Any:
        return self._client.call_api(
            path,
            method,
            query_params=list((query or {}).items()),
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            response_types_map=_OK,
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _preload_content=not stream,
            _request_timeout=timeout,
        )

    def list(self, resource: Resource) -> tuple[list[dict[str, Any]], str]:
        answer = self._call("GET", resource.path())
        return list(answer.get("items") or []), str(answer["metadata"].get("resourceVersion", ""))

    def watch(
        self, resource: Resource, resource_version: str, timeout: int, *, bookmarks: bool = True
    ) -> WatchStream:
        query = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": str(bookmarks).lower(),
            "timeoutSeconds": str(timeout),
        }
        try:
            response = self._call(
                "GET", resource.path(), query=query, stream=True, timeout=(5.0, timeout + 5.0)
            )
        except ApiException as error:
            if error.status == 410:
                raise Gone(str(error)) from error
            raise
        return WatchStream(response)

    def get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return dict(self._call("GET", resource.path(namespace, name)))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def create(self, resource: Resource, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self._call("POST", resource.path(namespace), body=body))

    def patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        body: Mapping[str, Any],
        *,
        status: bool = False,
    ) -> dict[str, Any] | None:
        """Merge-patch the object (or its ``/status``); None when it no longer exists."""
        path = resource.path(namespace, name, "status" if status else "")
        try:
            return dict(self._call("PATCH", path, body=body, content_type=_MERGE_PATCH))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def delete(self, resource: Resource, namespace: str, name: str) -> bool:
        """Delete in the background (dependents by garbage collection); False when absent."""
        options = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        try:
            self._call("DELETE", resource.path(namespace, name), body=options)
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    def post_event(
        self,
        involved: Mapping[str, Any],
        event_type: str,
        reason: str,
        message: str,
        component: str,
    ) -> None:
        """Record a core/v1 Event about ``involved``; failures are logged, never raised."""
        metadata = involved.get("metadata", {})
        namespace = metadata.get("namespace", "default")
        stamp = format_time()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{metadata.get('name')}.{random_suffix(16)}",
                "namespace": namespace,
            },
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": metadata.get("name"),
                "namespace": namespace,
                "uid": metadata.get("uid"),
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "type": event_type,
            "reason": reason,
            "message": message,
            "source": {"component": component, "host": NODE_NAME},
            "reportingComponent": component,
            "reportingInstance": NODE_NAME,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            self.create(EVENTS, namespace, event)
        except Exception as error:  # events are best effort, as in a cluster
            logger.warning(
                "Could not post event %s for %s %s: %s",
                reason,
                involved.get("kind"),
                metadata.get("name"),
                error,
            )
