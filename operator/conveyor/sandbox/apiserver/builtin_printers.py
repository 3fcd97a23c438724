"""The server-side printers of built-in kinds: the columns `kubectl get` shows and each row's cells.

Pods, Jobs and Deployments get the columns of the real server's printers; other kinds get AGE.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from conveyor.sandbox.apiserver.ages import AGE_DESCRIPTION, age, human_duration, parse_time

__all__ = ["RowCells", "printer_for"]

RowCells = Callable[[dict[str, Any], datetime.datetime], list[Any]]  # (object, now) -> cells


def printer_for(kind: str) -> tuple[list[dict[str, Any]], RowCells]:
    """The column definitions after NAME for a built-in kind, and how to fill a row's cells."""
    return _BUILTIN_PRINTERS.get(kind.lower(), ([_AGE], _age_only))


def _get(obj: Any, *path: str, default: Any = None) -> Any:
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return default if obj is None else obj


def _column(name: str, description: str, priority: int = 0) -> dict[str, Any]:
    return {
        "name": name,
        "type": "string",
        "format": "",
        "description": description,
        "priority": priority,
    }


def _containers(template_spec: Any) -> tuple[str, str]:
    containers = _get(template_spec, "containers", default=[])
    return (
        ",".join(str(c.get("name", "")) for c in containers),
        ",".join(str(c.get("image", "")) for c in containers),
    )


def _selector(selector: Any) -> str:
    """metav1.FormatLabelSelector."""
    if not isinstance(selector, dict):
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key", ""), expression.get("operator", "")
        values = ",".join(sorted(expression.get("values") or []))
        parts.append(
            {
                "In": f"{key} in ({values})",
                "NotIn": f"{key} notin ({values})",
                "Exists": key,
                "DoesNotExist": f"!{key}",
            }.get(operator, key)
        )
    return ",".join(parts) or "<none>"


def _pod_row(pod: dict[str, Any], now: datetime.datetime) -> list[Any]:
    status = _get(pod, "status", default={})
    reason = status.get("reason") or status.get("phase") or ""
    init_statuses = status.get("initContainerStatuses") or []
    restarts, last_restart = 0, ""
    initializing = False
    for index, container in enumerate(init_statuses):
        restarts += int(container.get("restartCount") or 0)
        last_restart = max(
            last_restart, _get(container, "lastState", "terminated", "finishedAt", default="")
        )
        state = container.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated and terminated.get("exitCode") == 0:
            continue
        initializing = True
        if terminated:
            reason = "Init:" + (terminated.get("reason") or _exit_text(terminated))
        elif waiting and waiting.get("reason") not in (None, "", "PodInitializing"):
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{index}/{len(_get(pod, 'spec', 'initContainers', default=[]))}"
        break
    ready = 0
    if not initializing:
        restarts, last_restart, has_running = 0, "", False
        for container in reversed(status.get("containerStatuses") or []):
            restarts += int(container.get("restartCount") or 0)
            last_restart = max(
                last_restart, _get(container, "lastState", "terminated", "finishedAt", default="")
            )
            state = container.get("state") or {}
            waiting, terminated = state.get("waiting") or {}, state.get("terminated")
            if waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated:
                reason = terminated.get("reason") or _exit_text(terminated)
            elif container.get("ready") and state.get("running") is not None:
                has_running, ready = True, ready + 1
        if reason == "Completed" and has_running:
            conditions = status.get("conditions") or []
            pod_ready = any(
                c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
            )
            reason = "Running" if pod_ready else "NotReady"
    if _get(pod, "metadata", "deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif status.get("phase") not in ("Succeeded", "Failed"):
            reason = "Terminating"
    restarts_text = str(restarts)
    if restarts and last_restart:
        restarts_text = f"{restarts} ({age(last_restart, now)} ago)"
    total = len(_get(pod, "spec", "containers", default=[]))
    gates = _get(pod, "spec", "readinessGates", default=[])
    gate_text = "<none>"
    if gates:
        true_types = {
            c.get("type") for c in status.get("conditions") or [] if c.get("status") == "True"
        }
        gate_text = f"{sum(1 for g in gates if g.get('conditionType') in true_types)}/{len(gates)}"
    return [
        f"{ready}/{total}",
        reason,
        restarts_text,
        age(_created(pod), now),
        status.get("podIP") or "<none>",
        _get(pod, "spec", "nodeName", default="<none>"),
        status.get("nominatedNodeName") or "<none>",
        gate_text,
    ]


def _exit_text(terminated: dict[str, Any]) -> str:
    if terminated.get("signal"):
        return f"Signal:{terminated['signal']}"
    return f"ExitCode:{terminated.get('exitCode', 0)}"


def _job_status(job: dict[str, Any]) -> str:
    conditions = {
        c.get("type")
        for c in _get(job, "status", "conditions", default=[])
        if c.get("status") == "True"
    }
    finished = [label for label in ("Complete", "Failed") if label in conditions]
    if finished or _get(job, "metadata", "deletionTimestamp"):
        return finished[0] if finished else "Terminating"
    pending = ("Suspended", "FailureTarget", "SuccessCriteriaMet")
    return next((label for label in pending if label in conditions), "Running")


def _job_row(job: dict[str, Any], now: datetime.datetime) -> list[Any]:
    status = _job_status(job)
    succeeded = _get(job, "status", "succeeded", default=0)
    completions, parallelism = _get(job, "spec", "completions"), _get(job, "spec", "parallelism")
    if completions is not None:
        completions_text = f"{succeeded}/{completions}"
    elif parallelism is not None and parallelism > 1:
        completions_text = f"{succeeded}/1 of {parallelism}"
    else:
        completions_text = f"{succeeded}/1"
    started = parse_time(_get(job, "status", "startTime", default=""))
    finished = parse_time(_get(job, "status", "completionTime", default=""))
    took = "" if started is None else human_duration((finished or now) - started)
    names, images = _containers(_get(job, "spec", "template", "spec"))
    return [
        status,
        completions_text,
        took,
        age(_created(job), now),
        names,
        images,
        _selector(_get(job, "spec", "selector")),
    ]


def _deployment_row(deployment: dict[str, Any], now: datetime.datetime) -> list[Any]:
    desired = _get(deployment, "spec", "replicas", default=1)
    status = _get(deployment, "status", default={})
    names, images = _containers(_get(deployment, "spec", "template", "spec"))
    return [
        f"{status.get('readyReplicas', 0)}/{desired}",
        int(status.get("updatedReplicas", 0)),
        int(status.get("availableReplicas", 0)),
        age(_created(deployment), now),
        names,
        images,
        _selector(_get(deployment, "spec", "selector")),
    ]


def _created(obj: dict[str, Any]) -> Any:
    return _get(obj, "metadata", "creationTimestamp")


_AGE = _column("Age", AGE_DESCRIPTION)
_TEMPLATE_COLUMNS = [
    _column("Containers", "Names of each container in the template.", 1),
    _column("Images", "Images referenced by each container in the template.", 1),
    _column("Selector", "Label query over pods.", 1),
]
_BUILTIN_PRINTERS: dict[str, tuple[list[dict[str, Any]], RowCells]] = {
    "pod": (
        [
            _column("Ready", "The aggregate readiness state of this pod for accepting traffic."),
            _column("Status", "The aggregate status of the containers in this pod."),
            _column(
                "Restarts",
                "The number of times the containers in this pod have been restarted "
                "and when the last container in this pod has restarted.",
            ),
            _AGE,
            _column("IP", "IP address allocated to the pod.", 1),
            _column("Node", "The node the pod is scheduled on.", 1),
            _column("Nominated Node", "The node the scheduler nominated for the pod.", 1),
            _column("Readiness Gates", "Readiness gates that are true, of all the pod's gates.", 1),
        ],
        _pod_row,
    ),
    "job": (
        [
            _column("Status", "Status of the job."),
            _column("Completions", "The number of pods which reached phase Succeeded."),
            _column("Duration", "Time required to complete the job."),
            _AGE,
            *_TEMPLATE_COLUMNS,
        ],
        _job_row,
    ),
    "deployment": (
        [
            _column("Ready", "Number of the pod with ready state"),
            {
                **_column(
                    "Up-to-date",
                    "Total number of non-terminated pods targeted by this "
                    "deployment that have the desired template spec.",
                ),
                "type": "integer",
            },
            {
                **_column(
                    "Available",
                    "Total number of available pods (ready for at least "
                    "minReadySeconds) targeted by this deployment.",
                ),
                "type": "integer",
            },
            _AGE,
            *_TEMPLATE_COLUMNS,
        ],
        _deployment_row,
    ),
}


def _age_only(obj: dict[str, Any], now: datetime.datetime) -> list[Any]:
    return [age(_created(obj), now)]
