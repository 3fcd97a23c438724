"""`conveyor apply`, `conveyor status` and `conveyor logs`: everyday commands on resources."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client import ApiClient, ApiException, CoreV1Api, CustomObjectsApi
from kubernetes.dynamic import DynamicClient

from ..api.v1alpha1 import API_VERSION, GROUP, KINDS, VERSION, CustomResource
from ..errors import ConveyorError
from .kubeconfig import api_client

__all__ = ["add_commands", "apply_documents", "load_documents"]

SANDBOX_URL = "sandbox.conveyor.dev/url"
_KIND_BY_NAME: dict[str, type[CustomResource]] = {kind.kind_name: kind for kind in KINDS}


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
    apply.set_defaults(func=_apply)

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


def apply_documents(
    client: ApiClient, documents: list[dict[str, Any]], namespace: str
) -> list[str]:
    """Create each object, or merge-patch it when it exists; kubectl-style result lines."""
    lines = []
    for document in documents:
        kind = document["kind"]
        name = document.get("metadata", {}).get("name", "")
        if document.get("apiVersion") == API_VERSION and kind in _KIND_BY_NAME:
            verb = _apply_custom(client, _KIND_BY_NAME[kind], document, namespace)
            lines.append(f"{kind.lower()}.{GROUP}/{name} {verb}")
        else:
            verb = _apply_dynamic(client, document, namespace)
            lines.append(f"{kind.lower()}/{name} {verb}")
    return lines


def _apply_custom(
    client: ApiClient, kind: type[CustomResource], document: dict[str, Any], default_ns: str
) -> str:
    api = CustomObjectsApi(client)
    namespace = document.get("metadata", {}).get("namespace") or default_ns
    name = document["metadata"]["name"]
    try:
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, kind.plural, document)
        return "created"
    except ApiException as error:
        if error.status != 409:
            raise ConveyorError(_api_message(error)) from None
    current = api.get_namespaced_custom_object(GROUP, VERSION, namespace, kind.plural, name)
    patched = api.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, kind.plural, name, _desired_part(document)
    )
    same = patched["metadata"].get("resourceVersion") == current["metadata"].get("resourceVersion")
    return "unchanged" if same else "configured"


def _apply_dynamic(client: ApiClient, document: dict[str, Any], default_ns: str) -> str:
    resource = DynamicClient(client).resources.get(
        api_version=document["apiVersion"], kind=document["kind"]
    )
    namespace = (
        (document.get("metadata", {}).get("namespace") or default_ns)
        if (resource.namespaced)
        else None
    )
    try:
        resource.create(body=document, namespace=namespace)
        return "created"
    except ApiException as error:
        if error.status != 409:
            raise ConveyorError(_api_message(error)) from None
    name = document["metadata"]["name"]
    current = resource.get(name=name, namespace=namespace)
    patched = resource.patch(
        body=_desired_part(document),
        name=name,
        namespace=namespace,
        content_type="application/merge-patch+json",
    )
    same = patched.metadata.resourceVersion == current.metadata.resourceVersion
    return "unchanged" if same else "configured"


def _desired_part(document: dict[str, Any]) -> dict[str, Any]:
    """What a person owns of an object: everything but status and server-set metadata."""
    metadata = document.get("metadata", {})
    kept = {k: v for k, v in metadata.items() if k in ("labels", "annotations")}
    return {
        **{k: v for k, v in document.items() if k not in ("status", "metadata")},
        "metadata": kept,
    }


def _api_message(error: ApiException) -> str:
    import json

    try:
        return str(json.loads(error.body or "{}").get("message") or error.reason)
    except ValueError:
        return f"{error.status} {error.reason}"


def _apply(args: argparse.Namespace) -> int:
    documents = [document for _, document in load_documents(args.filename)]
    for line in apply_documents(api_client(args.kubeconfig), documents, args.namespace):
        print(line)
    return 0


def _status(args: argparse.Namespace) -> int:
    client = api_client(args.kubeconfig)
    api = CustomObjectsApi(client)
    for kind in KINDS:
        items = api.list_namespaced_custom_object(GROUP, VERSION, args.namespace, kind.plural)
        for item in items.get("items", []):
            print(_status_line(kind, item))
    # In the sandbox every Service has a URL on this machine (the node agent's proxy).
    for service in CoreV1Api(client).list_namespaced_service(args.namespace).items:
        url = (service.metadata.annotations or {}).get(SANDBOX_URL)
        if url:
            print(f"{'service/' + service.metadata.name:<36} {url}")
    return 0


def _status_line(kind: type[CustomResource], item: dict[str, Any]) -> str:
    conditions = (item.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    state = (
        "Unknown (not reconciled yet)"
        if ready is None
        else (f"Ready={ready['status']} {ready.get('reason', '')}: {ready.get('message', '')}")
    )
    return f"{kind.kind_name.lower() + '/' + item['metadata']['name']:<36} {state}"


def _logs(args: argparse.Namespace) -> int:
    core = CoreV1Api(api_client(args.kubeconfig))
    options: dict[str, Any] = {}
    if args.container:
        options["container"] = args.container
    if args.tail is not None:
        options["tail_lines"] = args.tail
    try:
        # Raw bytes: the client's own decoding of text/plain yields the repr of bytes.
        response = core.read_namespaced_pod_log(
            args.pod, args.namespace, _preload_content=False, **options
        )
        text = response.data.decode("utf-8", errors="replace")
    except ApiException as error:
        raise ConveyorError(
            f"logs of pod {args.namespace}/{args.pod}: {_api_message(error)}"
        ) from None
    sys.stdout.write(text)
    return 0
