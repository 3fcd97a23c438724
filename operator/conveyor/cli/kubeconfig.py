"""Which cluster the CLI talks to: --kubeconfig, $KUBECONFIG, the sandbox's, or the default."""

from __future__ import annotations

import os
from pathlib import Path

from kubernetes.client import ApiClient

from ..clients.kube import load_api_client

__all__ = ["SANDBOX_KUBECONFIG", "api_client", "resolve_kubeconfig"]

SANDBOX_KUBECONFIG = Path(".sandbox") / "kubeconfig"


def resolve_kubeconfig(explicit: str | None) -> str:
    """The kubeconfig path to use; "" means the client's defaults (in-cluster, ~/.kube/config)."""
    if explicit:
        return explicit
    if os.environ.get("KUBECONFIG"):
        return os.environ["KUBECONFIG"]
    if SANDBOX_KUBECONFIG.exists():
        return str(SANDBOX_KUBECONFIG)
    return ""


def api_client(explicit: str | None) -> ApiClient:
    return load_api_client(resolve_kubeconfig(explicit))
