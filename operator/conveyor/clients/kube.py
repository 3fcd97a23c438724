"""Kubernetes access for handlers and the CLI: typed by Conveyor's kinds, errors mapped.

The official client is synchronous; kopf runs sync handlers in its thread pool, so it is used as is.
"""

from __future__ import annotations

import os
from typing import Any

import kubernetes
from kubernetes.client import ApiClient, ApiException, CustomObjectsApi

from ..api.v1alpha1 import GROUP, VERSION, CustomResource
from ..errors import ClusterUnavailable

__all__ = ["Kube", "load_api_client"]

_RETRYABLE = {429, 500, 502, 503, 504}


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


class Kube:
    """Reads and status writes of Conveyor objects."""

    def __init__(self, api_client: ApiClient) -> None:
        self.api_client = api_client
        self.custom = CustomObjectsApi(api_client)

    def get(self, kind: type[CustomResource], namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, kind.plural, name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise _mapped(error, f"get {kind.kind_name} {namespace}/{name}") from error
        return obj

    def list(self, kind: type[CustomResource], namespace: str) -> list[dict[str, Any]]:
        try:
            listing = self.custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, kind.plural
            )
        except ApiException as error:
            raise _mapped(error, f"list {kind.plural} in {namespace}") from error
        return list(listing.get("items", []))

    def patch_status(
        self, kind: type[CustomResource], namespace: str, name: str, status: dict[str, Any]
    ) -> None:
        """Merge-patch the status subresource; a vanished object is not an error."""
        try:
            self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, kind.plural, name, {"status": status}
            )
        except ApiException as error:
            if error.status == 404:
                return
            raise _mapped(error, f"patch status of {kind.kind_name} {namespace}/{name}") from error


def _mapped(error: ApiException, action: str) -> Exception:
    if error.status in _RETRYABLE:
        return ClusterUnavailable(
            f"Could not {action}: API server answered {error.status}", delay=5
        )
    return error
