"""`conveyor apply`, `conveyor status` and `conveyor logs`: everyday commands on resources."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from ..api.v1alpha1 import API_VERSION, GROUP, KINDS
from ..clients.kube import Kube
from ..contracts.labels import SANDBOX_URL
from ..errors import AlreadyExists, ApiError, ConveyorError
from ..resources.kinds import SERVICES, Resource, custom
from .kubeconfig import kube

__all__ = ["add_commands", "apply_documents", "load_documents"]

_CUSTOM: dict[str, Resource] = {kind.kind_name: custom(kind) for kind in KINDS}


def add_commands(commands: Any) -> None:
    apply = commands.add_parser("apply", help="create or update resources from YAML files")
    apply.add_argument(
        "-f",
        "--filename",
        action="append",
        required=True,
        help="a YAML file or a directory of them (repeatable)",
    )
    apply.add_argument("-n", "--namespace", default="default")
    apply.set_defaults(func=_apply_command)

    status = commands.add_parser("status", help="the Conveyor resources and their conditions")
    status.add_argument("-n", "--namespace", default="default")
    status.set_defaults(func=_status)

    logs = commands.add_parser("logs", help="the logs of a pod (Jobs and serving)")
    logs.add_argument("pod")
    logs.add_argument("-n", "--namespace", default="default")
    logs.add_argument("-c", "--container")
    logs.add_argument("--tail", type=int, help="only the last N lines")
    logs.set_defaults(func=_logs)


def load_documents(paths: list[str]) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every YAML document of the files given (directories: their *.yaml and *.yml, sorted)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
        elif path.exists():
            files = [path]
        else:
            raise ConveyorError(f"{raw}: no such file or directory")
        for file in files:
            try:
                documents = list(yaml.safe_load_all(file.read_text()))
            except yaml.YAMLError as error:
                raise ConveyorError(f"{file}: not valid YAML: {error}") from None
            for document in documents:
                if document is None:
                    continue
                if not isinstance(document, dict) or "kind" not in document:
                    raise ConveyorError(f"{file}: every document needs apiVersion and kind")
                yield file, document


def apply_documents(client: Kube, documents: list[dict[str, Any]], namespace: str) -> list[str]:
    """Create each object, or merge-patch it when it exists; kubectl-style result lines."""
    lines = []
    for document in documents:
        kind = document["kind"]
        name = document.get("metadata", {}).get("name", "")
        ours = document.get("apiVersion") == API_VERSION and kind in _CUSTOM
        resource = _CUSTOM[kind] if ours else client.discover(document["apiVersion"], kind)
        verb = _apply(client, resource, document, namespace)
        lines.append(
            f"{kind.lower()}.{GROUP}/{name} {verb}" if ours else f"{kind.lower()}/{name} {verb}"
        )
    return lines


def _apply(client: Kube, resource: Resource, document: dict[str, Any], default_ns: str) -> str:
    """created, configured or unchanged, as kubectl says it."""
    metadata = dict(document.get("metadata", {}))
    namespace = None
    if resource.namespaced:
        namespace = metadata["namespace"] = metadata.get("namespace") or default_ns
    body = {**document, "metadata": metadata}
    try:
        client.create(resource, body)
        return "created"
    except AlreadyExists:  # the server's refusal of anything else is the error to show
        pass
    name = metadata["name"]
    current = client.get(resource, namespace, name) or {}
    patched = client.patch(resource, namespace, name, _desired_part(document)) or {}
    same = patched.get("metadata", {}).get("resourceVersion") == current.get("metadata", {}).get(
        "resourceVersion"
    )
    return "unchanged" if same else "configured"


def _desired_part(document: dict[str, Any]) -> dict[str, Any]:
    """What a person owns of an object: everything but status and server-set metadata."""
    metadata = document.get("metadata", {})
    kept = {k: v for k, v in metadata.items() if k in ("labels", "annotations")}
    return {
        **{k: v for k, v in document.items() if k not in ("status", "metadata")},
        "metadata": kept,
    }


def _apply_command(args: argparse.Namespace) -> int:
    documents = [document for _, document in load_documents(args.filename)]
    for line in apply_documents(kube(args.kubeconfig), documents, args.namespace):
        print(line)
    return 0


def _status(args: argparse.Namespace) -> int:
    client = kube(args.kubeconfig)
    for kind in KINDS:
        for item in client.list(custom(kind), args.namespace):
            print(_status_line(kind.kind_name, item))
    # In the sandbox every Service has a URL on this machine (the node agent's proxy).
    for service in client.list(SERVICES, args.namespace):
        url = (service["metadata"].get("annotations") or {}).get(SANDBOX_URL)
        if url:
            print(f"{'service/' + service['metadata']['name']:<36} {url}")
    return 0


def _status_line(kind: str, item: dict[str, Any]) -> str:
    conditions = (item.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    state = (
        "Unknown (not reconciled yet)"
        if ready is None
        else (f"Ready={ready['status']} {ready.get('reason', '')}: {ready.get('message', '')}")
    )
    return f"{kind.lower() + '/' + item['metadata']['name']:<36} {state}"


def _logs(args: argparse.Namespace) -> int:
    try:
        text = kube(args.kubeconfig).pod_log(
            args.namespace, args.pod, container=args.container, tail=args.tail
        )
    except ApiError as error:
        raise ConveyorError(f"logs of pod {args.namespace}/{args.pod}: {error}") from None
    sys.stdout.write(text)
    return 0
