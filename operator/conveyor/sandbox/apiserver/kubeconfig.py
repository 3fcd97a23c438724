"""A kubeconfig for the sandbox API: one cluster, context and user; plain HTTP, a bearer token.

kubectl, the kubernetes client and kopf all send a kubeconfig user's `token`."""

from __future__ import annotations

from pathlib import Path

import yaml

__all__ = ["write_kubeconfig"]

_NAME = "conveyor-sandbox"


def write_kubeconfig(
    path: Path, server_url: str, *, namespace: str = "default", token: str | None = None
) -> None:
    """Write a kubeconfig that kubectl and the kubernetes client accept for `server_url`;
    without a token the requests are anonymous."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": _NAME, "cluster": {"server": server_url}}],
        "users": [{"name": _NAME, "user": {"token": token} if token else {}}],
        "contexts": [
            {
                "name": _NAME,
                "context": {"cluster": _NAME, "user": _NAME, "namespace": namespace},
            }
        ],
        "current-context": _NAME,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)  # it holds a credential
