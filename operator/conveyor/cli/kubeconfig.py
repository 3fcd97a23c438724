"""Which cluster the CLI talks to: --kubeconfig, $KUBECONFIG, the sandbox's, or the default."""

from __future__ import annotations

import os
from pathlib import Path

from ..clients.kube import Kube

__all__ = ["SANDBOX_KUBECONFIG", "kube", "resolve_kubeconfig"]

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


def kube(explicit: str | None) -> Kube:
    return Kube.from_kubeconfig(resolve_kubeconfig(explicit))
