"""`conveyor run`, `conveyor promote`, `conveyor rollback` and `conveyor models`."""

from __future__ import annotations

import argparse
import getpass
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..api.v1alpha1 import GROUP
from ..clients.kube import Kube
from ..contracts.labels import LABEL_MODEL, RUN_REQUEST, STAGE_REASON
from ..errors import ConveyorError
from ..reconcile.livequality import live_metric_name
from ..resources.conditions import find_condition
from ..resources.kinds import MODEL_VERSIONS, TRAINING_PIPELINES, Resource
from .kubeconfig import kube

__all__ = [
    "add_commands",
    "live_cells",
    "previous_production",
    "run_request_outcome",
    "versions_table",
]


def add_commands(commands: Any) -> None:
    run = commands.add_parser("run", help="start a training run of a pipeline now")
    run.add_argument("pipeline")
    run.add_argument(
        "--wait",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="how long to wait for the operator to start or skip the run (default 15; 0: "
        "only request it)",
    )
    promote = commands.add_parser("promote", help="make a ModelVersion the Production version")
    promote.add_argument("version", help="the ModelVersion, e.g. iris-classifier-v3")
    rollback = commands.add_parser(
        "rollback", help="return a model to its previous Production version"
    )
    rollback.add_argument("model")
    models = commands.add_parser("models", help="a model's versions, metrics and stage history")
    models.add_argument("model")
    estimators = commands.add_parser("estimators", help="the estimators a pipeline may name")
    estimators.add_argument("--task", choices=["classification", "regression"])
    estimators.set_defaults(func=_estimators)
    for parser in (run, promote, rollback, models):
        parser.add_argument("-n", "--namespace", default="default")
    run.set_defaults(func=_run)
    promote.set_defaults(func=_promote)
    rollback.set_defaults(func=_rollback)
    models.set_defaults(func=_models)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _patch(
    client: Kube, resource: Resource, namespace: str, name: str, body: dict[str, Any]
) -> None:
    if client.patch(resource, namespace, name, body) is None:
        raise ConveyorError(f'{resource.kind} "{name}" not found in namespace "{namespace}"')


def _run(args: argparse.Namespace) -> int:
    client = kube(args.kubeconfig)
    stamp = f"{_now()} by {getpass.getuser()}"
    annotation = {"metadata": {"annotations": {RUN_REQUEST: stamp}}}
    _patch(client, TRAINING_PIPELINES, args.namespace, args.pipeline, annotation)
    name = f"trainingpipeline.{GROUP}/{args.pipeline}"
    deadline = time.monotonic() + args.wait
    while True:
        body = client.get(TRAINING_PIPELINES, args.namespace, args.pipeline) or {}
        answer = run_request_outcome(body, stamp)
        if answer is not None:
            started, message = answer
            print(f"{name}: {message}")
            return 0 if started else 1
        if time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    print(f"{name}: run requested ({stamp}); {_not_yet(body, args.wait)}")
    return 0


def run_request_outcome(body: Mapping[str, Any], stamp: str) -> tuple[bool, str] | None:
    """What the operator did with the run request `stamp`: (started, what to tell), or None
    while it has not acted on it."""
    status = body.get("status") or {}
    if status.get("lastRunRequest") != stamp:
        return None
    runs = status.get("runs") or []
    run = next((r for r in runs if stamp in (r.get("trigger") or {}).get("reason", "")), None)
    pipeline = (body.get("metadata") or {}).get("name", "")
    if run is None:
        active = status.get("activeRun")
        policy = ((body.get("spec") or {}).get("runs") or {}).get("concurrencyPolicy", "Forbid")
        why = f"run {active} is still active and spec.runs.concurrencyPolicy is {policy}"
        return False, (
            f"run NOT started: {why}; wait for it (kubectl get tp {pipeline} -w), or set "
            "spec.runs.concurrencyPolicy to Replace"
        )
    if run.get("phase") == "Failed":
        return False, f"run {run['id']} failed: {run.get('message', '')}"
    follow = f"follow it with: kubectl get tp {pipeline} -w"
    return True, f"run {run['id']} started ({run.get('message') or run['phase']}); {follow}"


def _not_yet(body: Mapping[str, Any], waited: float) -> str:
    """Why the operator has not acted on the request (yet)."""
    ready = _ready(body)
    if ready.get("status") == "False":
        return (
            f"it waits, because the pipeline is not ready: {ready.get('reason')}: "
            f"{ready.get('message')}"
        )
    if waited <= 0:
        return "follow it with: kubectl get tp -w"
    return f"the operator has not acted on it within {waited:g}s; is it running?"


def _set_production(client: Kube, namespace: str, name: str, reason: str) -> None:
    body = {
        "metadata": {"annotations": {STAGE_REASON: f"Production: {reason}"}},
        "spec": {"stage": "Production"},
    }
    _patch(client, MODEL_VERSIONS, namespace, name, body)


def _promote(args: argparse.Namespace) -> int:
    client = kube(args.kubeconfig)
    body = _get_version(client, args.namespace, args.version)
    refused = _not_registered(body)
    if refused:
        raise ConveyorError(refused)
    failed = [g for g in body["spec"].get("gates", []) if not g.get("passed")]
    if failed:
        reasons = "; ".join(f"{g['name']}: {g.get('message', '')}" for g in failed)
        raise ConveyorError(f"{args.version} failed its gates and cannot be served: {reasons}")
    _refuse_if_pinned(client, args.namespace, body)
    _set_production(client, args.namespace, args.version, f"promoted by {getpass.getuser()}")
    print(f"modelversion.{GROUP}/{args.version} promoted to Production")
    return 0


def _refuse_if_pinned(client: Kube, namespace: str, version: Mapping[str, Any]) -> None:
    """Git pins what serves: a promotion by hand would be undone at the next reconcile."""
    spec = version.get("spec") or {}
    pipeline_name = (spec.get("lineage") or {}).get("pipeline", "")
    pipeline = client.get(TRAINING_PIPELINES, namespace, pipeline_name) if pipeline_name else None
    pin = (((pipeline or {}).get("spec") or {}).get("promotion") or {}).get("version")
    if pin is not None and pin != spec.get("version"):
        raise ConveyorError(
            f"TrainingPipeline {pipeline_name} pins version {pin} (spec.promotion.version): "
            f"change the pin to {spec.get('version')} where the pipeline is kept (Git), or "
            "remove it, to serve another version"
        )


def _not_registered(body: Mapping[str, Any]) -> str:
    """The operator's NotRegistered verdict on a version, or ""."""
    ready = _ready(body)
    return str(ready.get("message", "")) if ready.get("reason") == "NotRegistered" else ""


def _ready(body: Mapping[str, Any]) -> Mapping[str, Any]:
    return find_condition((body.get("status") or {}).get("conditions") or [], "Ready") or {}


def _get_version(client: Kube, namespace: str, name: str) -> dict[str, Any]:
    body = client.get(MODEL_VERSIONS, namespace, name)
    if body is None:
        raise ConveyorError(f'ModelVersion "{name}" not found in namespace "{namespace}"')
    return body


def _versions(client: Kube, namespace: str, model: str) -> list[dict[str, Any]]:
    items = client.list(MODEL_VERSIONS, namespace, selector=f"{LABEL_MODEL}={model}")
    if not items:
        raise ConveyorError(f'no versions of model "{model}" in namespace "{namespace}"')
    return sorted(items, key=lambda item: int(item["spec"]["version"]))


def previous_production(versions: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The version that was Production most recently before the current one."""

    def left_production(item: dict[str, Any]) -> str:
        history = (item.get("status") or {}).get("stageHistory") or []
        times = [
            h["time"]
            for i, h in enumerate(history[1:], 1)
            if history[i - 1]["stage"] == "Production"
        ]
        return max(times, default="")

    candidates = [
        v
        for v in versions
        if v["spec"]["stage"] != "Production" and left_production(v) and not _not_registered(v)
    ]
    return max(candidates, key=left_production, default=None)


def _rollback(args: argparse.Namespace) -> int:
    client = kube(args.kubeconfig)
    versions = _versions(client, args.namespace, args.model)
    current = next((v for v in versions if v["spec"]["stage"] == "Production"), None)
    target = previous_production(versions)
    if target is None:
        raise ConveyorError(f"model {args.model} has no earlier Production version to return to")
    _refuse_if_pinned(client, args.namespace, target)
    reason = f"rolled back from {current['metadata']['name']}" if current else "rolled back"
    _set_production(client, args.namespace, target["metadata"]["name"], reason)
    print(f"model {args.model}: Production is now {target['metadata']['name']} ({reason})")
    return 0


def versions_table(versions: list[dict[str, Any]]) -> str:
    """Versions side by side: stage, served stage, every scalar metric, run and snapshot."""
    metric = versions[-1]["spec"].get("metric", "")
    names = sorted(
        {
            m
            for v in versions
            for m in v["spec"].get("metrics", {})
            if not m.startswith("baseline_")
        },
        key=lambda m: (m != metric, m),
    )
    header = ["VERSION", "STAGE", "SERVED", *[m.upper() for m in names], "LIVE", "LABELLED"]
    header += ["RUN", "SNAPSHOT"]
    rows = [header]
    for v in versions:
        spec, status = v["spec"], v.get("status") or {}
        metrics = spec.get("metrics", {})
        rows.append(
            [
                v["metadata"]["name"],
                spec["stage"],
                status.get("stage", "-"),
                *[f"{metrics[m]:.4f}" if m in metrics else "-" for m in names],
                *live_cells(spec, status),
                spec["lineage"]["run"],
                spec["lineage"]["snapshot"],
            ]
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def live_cells(spec: Mapping[str, Any], status: Mapping[str, Any]) -> list[str]:
    """The live metric (the pipeline's metric when the monitor measures it, else accuracy or
    RMSE) and the labelled samples it was computed on; "-" without live figures."""
    live = status.get("liveMetrics") or {}
    metrics = live.get("metrics") or {}
    name = live_metric_name(metrics, spec.get("metric"))
    if not live:
        return ["-", "-"]
    value = f"{name} {metrics[name]:.4f}" if name else "-"
    return [value, str(live.get("labelledSamples", 0))]


def same_requests_lines(versions: list[dict[str, Any]]) -> list[str]:
    """Each version's live metric beside another's on the labelled requests both answered
    (a shadow and its champion): status.liveMetrics.sameRequests."""
    names = {v["spec"]["version"]: v["metadata"]["name"] for v in versions}
    lines = []
    for v in versions:
        live = (v.get("status") or {}).get("liveMetrics") or {}
        for same in live.get("sameRequests") or []:
            ours, theirs = same.get("metrics") or {}, same.get("otherMetrics") or {}
            name = live_metric_name(ours, v["spec"].get("metric"))
            if name not in theirs or same.get("version") not in names:
                continue
            lines.append(
                f"  {v['metadata']['name']} {name} {ours[name]:.4f} against "
                f"{names[same['version']]} {theirs[name]:.4f} on "
                f"{same.get('labelledSamples', 0)} labelled requests both answered"
            )
    return lines


def _models(args: argparse.Namespace) -> int:
    versions = _versions(kube(args.kubeconfig), args.namespace, args.model)
    print(versions_table(versions))
    if same := same_requests_lines(versions):
        print("\nOn the same requests:", *same, sep="\n")
    print("\nStage history:")
    events = sorted(
        (h["time"], v["metadata"]["name"], h["stage"], h.get("reason", ""))
        for v in versions
        for h in (v.get("status") or {}).get("stageHistory", [])
    )
    for when, name, stage, reason in events:
        print(f"  {when}  {name:<28} {stage:<11} {reason}")
    return 0


def _estimators(args: argparse.Namespace) -> int:
    from ..training.estimators import list_estimators

    for info in list_estimators(args.task):
        print(f"{info.name:<36} {info.task:<15} {info.source}")
    return 0
