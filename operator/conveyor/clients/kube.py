"""The only door to the Kubernetes API for the operator and the CLI: raw JSON dicts over the
official client's `ApiClient` (its configuration, auth and connection pool), no generated models,
and one mapping of errors:

    404                      get → None, patch → None, delete → False (the object is gone)
    409 on create            AlreadyExists; `ensure` takes it as success
    429, 5xx, unreachable    ClusterUnavailable: kopf retries the handler after a delay
    any other refusal        ApiError, with the server's own message

The client is synchronous; kopf runs sync handlers in its thread pool, so it is used as is.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

import kopf
import kubernetes
import urllib3
from kubernetes.client import ApiClient
from kubernetes.client.rest import ApiException

from ..errors import AlreadyExists, ApiError, ClusterUnavailable, Conflict
from ..resources.kinds import PODS, SECRETS, SERVICES, Resource

__all__ = ["Kube", "connection_info", "load_api_client"]

_RETRYABLE = {429, 500, 502, 503, 504}
_JSON = {200: "object", 201: "object", 202: "object"}
_MERGE_PATCH = "application/merge-patch+json"
_TIMEOUT = (5.0, 30.0)  # connect, read (seconds)
_RETRY_DELAY = 5.0
_CONFLICT_DELAY = 1.0

Ensured = Literal["created", "updated", "unchanged"]


def load_api_client(kubeconfig: str = "") -> ApiClient:
    """In-cluster configuration inside a pod, otherwise the given (or default) kubeconfig.

    The file is passed explicitly: the client would otherwise read KUBECONFIG at import time.
    """
    configuration = kubernetes.client.Configuration()
    if not kubeconfig and os.environ.get("KUBERNETES_SERVICE_HOST"):
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    else:
        kubernetes.config.load_kube_config(
            config_file=kubeconfig or None, client_configuration=configuration
        )
    return ApiClient(configuration)


def connection_info(api_client: ApiClient) -> kopf.ConnectionInfo:
    """kopf's connection details from the same configuration as our own client."""
    configuration = api_client.configuration
    # The kubeconfig and in-cluster loaders keep the token under "BearerToken"; older clients
    # and hand-made configurations under "authorization". Without it kopf is anonymous.
    keys = configuration.api_key or {}
    authorization = keys.get("BearerToken") or keys.get("authorization") or ""
    token = authorization.removeprefix("Bearer ").strip() or None
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        token=token,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


class Kube:
    """Typed by resource descriptor (`conveyor.resources.kinds`), untyped in bodies."""

    def __init__(self, api_client: ApiClient) -> None:
        self.api_client = api_client

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str = "") -> Kube:
        return cls(load_api_client(kubeconfig))

    def close(self) -> None:
        self.api_client.close()

    # Reads -------------------------------------------------------------------------------------

    def get(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        with _absent_is_none():
            return self._json("GET", resource.path(namespace, name))
        return None

    def list(
        self, resource: Resource, namespace: str | None = None, *, selector: str = ""
    ) -> list[dict[str, Any]]:
        """Every object (in `namespace`, matching the label `selector`)."""
        query = {"labelSelector": selector} if selector else {}
        listing = self._json("GET", resource.path(namespace), query=query)
        return [dict(item) for item in listing.get("items") or []]

    def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's data, decoded; None when it does not exist."""
        secret = self.get(SECRETS, namespace, name)
        if secret is None:
            return None
        data = secret.get("data") or {}
        return {key: base64.b64decode(value).decode() for key, value in data.items()}

    def pod_log(
        self, namespace: str, name: str, *, container: str | None = None, tail: int | None = None
    ) -> str:
        query: dict[str, Any] = {}
        if container:
            query["container"] = container
        if tail is not None:
            query["tailLines"] = tail
        response = self._call("GET", PODS.path(namespace, name, "log"), query=query, raw=True)
        return str(response.data.decode("utf-8", errors="replace"))

    def service_post(
        self, namespace: str, service: str, port: str, path: str, body: Any
    ) -> tuple[int, bytes]:
        """POST `body` as JSON to `path` of a Service's `port`, through the API server's
        service proxy (from outside the cluster); the answer's status and bytes, whatever
        the status (a 4xx of the service is its answer, not an API error)."""
        proxy = f"{SERVICES.path(namespace, service)}:{port}/proxy/{path.lstrip('/')}"
        try:
            response = self.api_client.call_api(
                proxy,
                "POST",
                header_params={"Accept": "application/json", "Content-Type": "application/json"},
                body=body,
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _preload_content=False,
                _request_timeout=_TIMEOUT,
            )
        except ApiException as error:
            status = int(error.status or 0)
            if status == 0:
                raise _mapped(error, "POST", proxy) from None
            answer = error.body or b""
            return status, answer if isinstance(answer, bytes) else str(answer).encode()
        except urllib3.exceptions.HTTPError as error:
            raise ClusterUnavailable(
                f"Could not POST {proxy}: the API server is unreachable ({error})",
                delay=_RETRY_DELAY,
            ) from error
        return int(response.status), bytes(response.data)

    def pod_get(self, namespace: str, pod: str, port: int, path: str) -> bytes:
        """GET `path` of a pod's `port` through the API server's pod proxy (pods/proxy): the
        same way in a cluster, from outside one, and in the sandbox. The body of a 2xx answer;
        ApiError with the status otherwise."""
        proxy = f"{PODS.path(namespace, f'{pod}:{port}')}/proxy/{path.lstrip('/')}"
        response = self._call("GET", proxy, raw=True)
        return bytes(response.data)

    def discover(self, api_version: str, kind: str) -> Resource:
        """The resource serving `kind` in `api_version`, from the server's discovery."""
        group, _, version = api_version.rpartition("/")
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        try:
            listing = self._json("GET", path)
        except ApiError as error:
            if error.status == 404:
                raise ApiError(f"The server does not serve apiVersion {api_version}", 404) from None
            raise
        for entry in listing.get("resources") or []:
            if entry.get("kind") == kind and "/" not in entry.get("name", ""):
                return Resource(group, version, entry["name"], kind, bool(entry.get("namespaced")))
        raise ApiError(f"The server has no resource of kind {kind} in {api_version}", 404)

    # Writes ------------------------------------------------------------------------------------

    def create(self, resource: Resource, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create `body` in its metadata.namespace; AlreadyExists when the name is taken."""
        namespace = body.get("metadata", {}).get("namespace")
        return self._json("POST", resource.path(namespace), body=dict(body))

    def ensure(
        self, resource: Resource, body: Mapping[str, Any], *, keep_current: Iterable[str] = ()
    ) -> Ensured:
        """Create `body` unless it exists; "already exists" (made meanwhile) is success.

        Read first: the object is there on almost every call, and a read is one request where
        a refused create and a read are two. The top-level fields named in `keep_current`
        (a Secret's `data`) are patched to the desired value when the existing object differs.
        """
        metadata = body["metadata"]
        namespace, name = metadata.get("namespace"), metadata["name"]
        current = self.get(resource, namespace, name)
        if current is None:
            try:
                self.create(resource, body)
                return "created"
            except AlreadyExists:
                current = self.get(resource, namespace, name) or {}
        patch = {key: body[key] for key in keep_current if current.get(key) != body.get(key)}
        if not patch:
            return "unchanged"
        self.patch(resource, namespace, name, patch)
        return "updated"

    def patch(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any],
        *,
        status: bool = False,
    ) -> dict[str, Any] | None:
        """Merge-patch the object (or its status subresource); None when it no longer exists."""
        path = resource.path(namespace, name, "status" if status else "")
        with _absent_is_none():
            return self._json("PATCH", path, body=dict(patch), content_type=_MERGE_PATCH)
        return None

    def delete(self, resource: Resource, namespace: str | None, name: str) -> bool:
        """Delete in the background (dependents by garbage collection); False when absent."""
        options = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        with _absent_is_none():
            self._json("DELETE", resource.path(namespace, name), body=options)
            return True
        return False

    # The one call ------------------------------------------------------------------------------

    def _json(self, method: str, path: str, **options: Any) -> dict[str, Any]:
        """The decoded JSON answer of `_call`."""
        return dict(self._call(method, path, **options) or {})

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        raw: bool = False,
    ) -> Any:
        try:
            return self.api_client.call_api(
                path,
                method,
                query_params=list((query or {}).items()),
                header_params={"Accept": "application/json, */*", "Content-Type": content_type},
                body=body,
                response_types_map=_JSON,
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _preload_content=not raw,
                _request_timeout=_TIMEOUT,
            )
        except ApiException as error:
            raise _mapped(error, method, path) from None
        except urllib3.exceptions.HTTPError as error:
            raise ClusterUnavailable(
                f"Could not {method} {path}: the API server is unreachable ({error})",
                delay=_RETRY_DELAY,
            ) from error


@contextmanager
def _absent_is_none() -> Iterator[None]:
    """Swallow a 404: the caller's code after the block says what "gone" returns."""
    try:
        yield
    except ApiError as error:
        if error.status != 404:
            raise


def _mapped(error: ApiException, method: str, path: str) -> Exception:
    status = int(error.status or 0)
    detail = _server_message(error)
    if status in _RETRYABLE or status == 0:
        return ClusterUnavailable(
            f"Could not {method} {path}: the API server answered {status} ({detail})",
            delay=_retry_after(error),
        )
    if status == 409 and method == "POST":
        return AlreadyExists(detail, status)
    if status == 409:
        return Conflict(f"Could not {method} {path}: {detail}", delay=_CONFLICT_DELAY)
    return ApiError(detail, status)


def _retry_after(error: ApiException) -> float:
    """The server's Retry-After (a 429 under API Priority and Fairness), else the default."""
    value = (error.headers or {}).get("Retry-After", "")
    try:
        return min(max(float(value), 0.1), 60.0)
    except (TypeError, ValueError):
        return _RETRY_DELAY


def _server_message(error: ApiException) -> str:
    """The Status message the server sent, else the HTTP reason."""
    try:
        status = json.loads(error.body or "{}")
    except (TypeError, ValueError):
        status = {}
    message = status.get("message") if isinstance(status, dict) else None
    return str(message or f"{error.status} {error.reason}")
