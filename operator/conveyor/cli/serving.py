"""`conveyor predict` and `conveyor feedback`: send raw rows, or the ground truth of earlier
predictions, to a model's serving Service and print its answers."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ..clients.kube import Kube
from ..contracts.labels import SANDBOX_URL
from ..contracts.serving import SERVE_PORT_NAME
from ..errors import ConveyorError
from ..resources.conditions import find_condition
from ..resources.kinds import SERVICES, TRAINING_PIPELINES
from ..resources.serving import serving_name
from .kubeconfig import kube

__all__ = ["add_commands", "feedback", "predict", "read_feedback", "read_rows", "served_at"]

_PREDICT_PATH = "/predict"


def add_commands(commands: Any) -> None:
    predict = commands.add_parser(
        "predict", help="send rows to a model's serving Service and print the answers"
    )
    predict.add_argument("model", help="the registry model name, e.g. iris-classifier")
    predict.add_argument(
        "-f",
        "--filename",
        required=True,
        help='a JSON file of raw rows: a list of objects, or {"instances": [...]}; - for stdin',
    )
    predict.add_argument("-n", "--namespace", default="default")
    predict.set_defaults(func=_predict)
    labels = commands.add_parser(
        "feedback",
        help="send the ground truth of earlier predictions to a model (the feedback log)",
    )
    labels.add_argument("model", help="the registry model name, e.g. iris-classifier")
    labels.add_argument(
        "-f",
        "--filename",
        required=True,
        help='a JSON file: {"request_id": ..., "label": ...}, a list of those, or '
        '{"feedback": [...]}; "labels": [...] gives each row of a batch request; - for stdin',
    )
    labels.add_argument("-n", "--namespace", default="default")
    labels.set_defaults(func=_feedback)


def read_rows(text: str, source: str) -> list[dict[str, Any]]:
    """The rows of a request file, or why it is not one."""
    try:
        document = json.loads(text)
    except ValueError as error:
        raise ConveyorError(f"{source} is not JSON: {error}") from error
    rows = document.get("instances") if isinstance(document, dict) else document
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ConveyorError(
            f'{source} must hold a list of rows (objects keyed by column) or {{"instances": [...]}}'
        )
    if not rows:
        raise ConveyorError(f"{source} holds no rows")
    return rows


def read_feedback(text: str, source: str) -> Any:
    """The feedback document of a file (the server checks its items), or why it is not one."""
    try:
        document = json.loads(text)
    except ValueError as error:
        raise ConveyorError(f"{source} is not JSON: {error}") from error
    if not isinstance(document, dict | list) or not document:
        raise ConveyorError(
            f'{source} must hold {{"request_id": ..., "label": ...}}, a list of those, or '
            '{"feedback": [...]}'
        )
    return document


def _predict(args: argparse.Namespace) -> int:
    source, text = _input(args.filename)
    answer = predict(kube(args.kubeconfig), args.namespace, args.model, read_rows(text, source))
    print(json.dumps(answer, indent=2))
    return 0


def _feedback(args: argparse.Namespace) -> int:
    source, text = _input(args.filename)
    document = read_feedback(text, source)
    answer = feedback(kube(args.kubeconfig), args.namespace, args.model, document)
    print(json.dumps(answer, indent=2))
    return 0


def predict(client: Kube, namespace: str, model: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The model's answer to `rows` (POST /predict on its Service), or why there is none."""
    return _call(client, namespace, model, _PREDICT_PATH, {"instances": rows})


def feedback(client: Kube, namespace: str, model: str, document: Any) -> dict[str, Any]:
    """Ground truth for earlier predictions (POST /v2/models/<model>/feedback): the counts of
    labels taken and of request ids the pod had not answered recently."""
    return _call(client, namespace, model, f"/v2/models/{model}/feedback", document)


def _call(client: Kube, namespace: str, model: str, path: str, body: Any) -> dict[str, Any]:
    url = served_at(client, namespace, model)
    if url is not None:  # the sandbox: every Service has a URL on this machine
        status, answer = _post(f"{url.rstrip('/')}{path}", body)
    else:
        status, answer = client.service_post(
            namespace, serving_name(model), SERVE_PORT_NAME, path, body
        )
    try:
        document = json.loads(answer)
    except ValueError:
        document = {"error": answer.decode("utf-8", "replace")}
    if status >= 400 or not isinstance(document, dict):
        error = document.get("error", document) if isinstance(document, dict) else document
        raise ConveyorError(f"model {model} answered {status}: {error}")
    return document


def _input(filename: str) -> tuple[str, str]:
    """(what to call it in errors, its text) of a -f argument."""
    if filename == "-":
        return "stdin", sys.stdin.read()
    return filename, _read(Path(filename))


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as error:
        raise ConveyorError(f"cannot read {path}: {error.strerror}") from error


def served_at(client: Kube, namespace: str, model: str) -> str | None:
    """The sandbox URL of the model's Service (None in a cluster), once a version serves."""
    pipelines = [
        p
        for p in client.list(TRAINING_PIPELINES, namespace)
        if (p.get("spec") or {}).get("model", {}).get("name") == model
    ]
    if not pipelines:
        raise ConveyorError(
            f'no TrainingPipeline trains model "{model}" in namespace "{namespace}"'
        )
    status = pipelines[0].get("status") or {}
    if not (status.get("serving") or {}).get("version"):
        serving = find_condition(status.get("conditions") or [], "Serving") or {}
        why = serving.get("message") or "no version of it is Production yet"
        raise ConveyorError(f"model {model} serves no version: {why}")
    service = client.get(SERVICES, namespace, serving_name(model)) or {}
    return (service.get("metadata", {}).get("annotations") or {}).get(SANDBOX_URL)


def _post(url: str, body: Any) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())
    except OSError as error:
        raise ConveyorError(f"cannot reach {url}: {error}") from error
