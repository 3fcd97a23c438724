"""`kubectl get` tables (meta.k8s.io/v1 Table), built as a real API server builds them.

`to_table` follows apiextensions' `tableconvertor`: a Name column, then the CRD version's
`additionalPrinterColumns` (or a single Age column when it has none); each cell is the first
result of the column's JSONPath, typed by the column type, `None` (JSON null) when the path finds
nothing, and `date` columns rendered as the age kubectl prints ("5m", "3h12m", "2d").
`table_for_builtin` follows the server's printers for Pods, Jobs and Deployments, and prints
NAME and AGE for other kinds.

The supported JSONPath is what printer columns use: `.a.b`, `['a.b']`, `[0]`, `[-1]`, `[1:3]`,
`[*]`, `.*` and filters `[?(@.type=="Ready")]` (==, !=, <, <=, >, >=, or a bare `@.a` for
existence). Recursive descent (`..`) is refused with a ValueError, as are other expressions.
"""

from __future__ import annotations

import copy
import datetime
import re
from collections.abc import Callable
from typing import Any

from conveyor.sandbox.apiserver.schema import go_float, go_json

__all__ = ["human_duration", "table_for_builtin", "to_table"]

NAME_DESCRIPTION = (
    "Name must be unique within a namespace. Is required when creating resources, although some "
    "resources may allow a client to request the generation of an appropriate name automatically. "
    "Name is primarily intended for creation idempotence and configuration definition. Cannot be "
    "updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
AGE_DESCRIPTION = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. "
    "It is not guaranteed to be set in happens-before order across separate operations. Clients "
    "may not set this value. It is represented in RFC3339 form and is in UTC."
)
INCLUDE_OBJECT_POLICIES = ("None", "Metadata", "Object")
_NAME_COLUMN = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": NAME_DESCRIPTION,
    "priority": 0,
}
_AGE_PRINTER_COLUMN = {
    "name": "Age",
    "type": "date",
    "jsonPath": ".metadata.creationTimestamp",
    "description": AGE_DESCRIPTION,
}


def to_table(
    columns: list[dict[str, Any]],
    objects: list[dict[str, Any]],
    *,
    include_object: str = "Metadata",
    now: datetime.datetime | None = None,
) -> dict[str, Any]:
    """The Table a real server answers for custom resources with these printer columns."""
    _check_include_object(include_object)
    printer_columns = columns or [_AGE_PRINTER_COLUMN]
    paths = [_column_path(column) for column in printer_columns]
    clock = now or datetime.datetime.now(datetime.UTC)
    definitions = [dict(_NAME_COLUMN)] + [_definition(column) for column in printer_columns]
    rows = []
    for obj in objects:
        cells: list[Any] = [_get(obj, "metadata", "name", default="")]
        for column, path in zip(printer_columns, paths, strict=True):
            found = _evaluate(path, obj)
            value = found[0] if found else None
            cells.append(_cell(column.get("type", "string"), value, clock))
        rows.append(_row(cells, obj, include_object))
    return _table(definitions, rows)


def _check_include_object(include_object: str) -> None:
    if include_object not in INCLUDE_OBJECT_POLICIES:
        raise ValueError(
            f"includeObject must be one of {', '.join(INCLUDE_OBJECT_POLICIES)}, "
            f"not {include_object!r}"
        )


def _definition(column: dict[str, Any]) -> dict[str, Any]:
    description = column.get("description") or (
        f"Custom resource definition column (in JSONPath format): {column.get('jsonPath', '')}"
    )
    return {
        "name": column["name"],
        "type": column.get("type", "string"),
        "format": column.get("format", ""),
        "description": description,
        "priority": int(column.get("priority", 0)),
    }


def _column_path(column: dict[str, Any]) -> list[tuple[Any, ...]]:
    try:
        return _parse_path(str(column.get("jsonPath", "")))
    except ValueError as error:
        raise ValueError(
            f"printer column {column.get('name')!r} has an unsupported jsonPath "
            f"{column.get('jsonPath')!r}: {error}"
        ) from error


def _row(cells: list[Any], obj: dict[str, Any], include_object: str) -> dict[str, Any]:
    row: dict[str, Any] = {"cells": cells}
    if include_object == "Metadata":
        row["object"] = {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": copy.deepcopy(obj.get("metadata") or {}),
        }
    elif include_object == "Object":
        row["object"] = copy.deepcopy(obj)
    return row


def _table(definitions: list[dict[str, Any]], rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": definitions,
        "rows": rows,
    }


# --- cells -----------------------------------------------------------------------------------


def _cell(column_type: str, value: Any, now: datetime.datetime) -> Any:
    """apiextensions' cellForJSONValue: a typed cell, or None when the type does not fit."""
    if value is None:
        return None
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if column_type == "string":
        return _text(value)
    if column_type == "integer" and is_number:
        return int(value)
    if column_type == "number" and is_number:
        return float(value)
    if column_type == "boolean" and isinstance(value, bool):
        return value
    if column_type == "date" and isinstance(value, str):
        return _age(value, now, invalid="<invalid>")
    return None


def _text(value: Any) -> str:
    """How kubectl's JSONPath prints one result: scalars as Go prints them, the rest as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, int):
        return str(value)
    return go_json(value)


_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _parse_time(text: str) -> datetime.datetime | None:
    match = _RFC3339.match(text)
    if not match:
        return None
    zone = "+00:00" if match[4] in "Zz" else match[4]
    try:
        return datetime.datetime.fromisoformat(f"{match[1]}T{match[2]}{(match[3] or '')[:7]}{zone}")
    except ValueError:
        return None


def _age(timestamp: Any, now: datetime.datetime, invalid: str = "<unknown>") -> str:
    if not timestamp or timestamp == "null":
        return "<unknown>"
    moment = _parse_time(timestamp) if isinstance(timestamp, str) else None
    return invalid if moment is None else human_duration(now - moment)


def human_duration(delta: datetime.timedelta) -> str:
    """apimachinery's duration.HumanDuration, the AGE kubectl shows: 45s, 5m3s, 42m, 3h12m, 2d."""
    seconds = int(delta.total_seconds())
    if seconds < -1:
        return "<invalid>"  # clock skew beyond a second
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes, hours = seconds // 60, seconds // 3600
    days, years = hours // 24, hours // (24 * 365)
    steps: list[tuple[bool, str, int, str]] = [
        (minutes < 10, f"{minutes}m", seconds % 60, "s"),
        (minutes < 180, f"{minutes}m", 0, ""),
        (hours < 8, f"{hours}h", minutes % 60, "m"),
        (hours < 48, f"{hours}h", 0, ""),
        (hours < 24 * 8, f"{days}d", hours % 24, "h"),
        (hours < 24 * 365 * 2, f"{days}d", 0, ""),
        (hours < 24 * 365 * 8, f"{years}y", days % 365, "d"),
    ]
    for applies, whole, remainder, unit in steps:
        if applies:
            return f"{whole}{remainder}{unit}" if remainder else whole
    return f"{years}y"


# --- JSONPath --------------------------------------------------------------------------------

_FIELD_NAME = re.compile(r"[^.\[\]\s]+")
_FILTER = re.compile(
    r"^\?\(\s*@(?P<path>[^=!<>]*?)\s*"
    r"(?:(?P<op>==|!=|<=|>=|<|>)\s*(?P<literal>.+?))?\s*\)$"
)
_SLICE = re.compile(r"^(-?\d*):(-?\d*)$")


def _parse_path(expression: str) -> list[tuple[Any, ...]]:
    text = expression.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if not text:
        raise ValueError("the path is empty")
    steps: list[tuple[Any, ...]] = []
    position = 0
    while position < len(text):
        if text.startswith("..", position):
            raise ValueError("recursive descent (..) is not supported")
        if text[position] == "[":
            end = _closing_bracket(text, position)
            steps.append(_bracket_step(text[position + 1 : end].strip()))
            position = end + 1
            continue
        if text[position] == ".":
            position += 1
        name = _FIELD_NAME.match(text, position)
        if not name:
            raise ValueError(f"expected a field name at offset {position}")
        steps.append(("wildcard",) if name[0] == "*" else ("field", name[0]))
        position = name.end()
    return steps


def _closing_bracket(text: str, start: int) -> int:
    quote, depth = "", 0
    for position in range(start + 1, len(text)):
        char = text[position]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "]" and depth == 0:
            return position
    raise ValueError(f"unclosed [ at offset {start}")


def _bracket_step(inner: str) -> tuple[Any, ...]:
    if inner == "*":
        return ("wildcard",)
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
        return ("field", inner[1:-1])
    if re.fullmatch(r"-?\d+", inner):
        return ("index", int(inner))
    if bounds := _SLICE.match(inner):
        start, stop = (int(bound) if bound else None for bound in (bounds[1], bounds[2]))
        return ("slice", start, stop)
    if filtered := _FILTER.match(inner):
        left = _parse_path(filtered["path"]) if filtered["path"].strip() else []
        literal = _literal(filtered["literal"]) if filtered["op"] else None
        return ("filter", left, filtered["op"], literal)
    raise ValueError(f"unsupported expression [{inner}]")


def _literal(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    words = {"true": True, "false": False, "null": None}
    if text in words:
        return words[text]
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        raise ValueError(f"unsupported filter value {text!r}") from None


def _evaluate(steps: list[tuple[Any, ...]], root: Any) -> list[Any]:
    current = [root]
    for step in steps:
        current = [found for value in current for found in _apply(step, value)]
    return current


def _apply(step: tuple[Any, ...], value: Any) -> list[Any]:
    kind = step[0]
    if kind == "field":
        return [value[step[1]]] if isinstance(value, dict) and step[1] in value else []
    if kind == "wildcard":
        return list(value.values()) if isinstance(value, dict) else list(value or [])
    if not isinstance(value, list):
        return []
    if kind == "index":
        return [value[step[1]]] if -len(value) <= step[1] < len(value) else []
    if kind == "slice":
        return value[step[1] : step[2]]
    _, left, operator, literal = step
    return [item for item in value if _passes(_evaluate(left, item), operator, literal)]


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _passes(found: list[Any], operator: str | None, literal: Any) -> bool:
    if operator is None:
        return bool(found)
    if len(found) != 1:
        return False
    left = found[0]
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, literal))
    if not numbers and type(left) is not type(literal):
        return False  # Go's template comparison refuses mixed types
    try:
        return _COMPARISONS[operator](left, literal)
    except TypeError:
        return False


# --- built-in kinds --------------------------------------------------------------------------


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
        restarts_text = f"{restarts} ({_age(last_restart, now)} ago)"
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
        _age(_created(pod), now),
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
    started = _parse_time(_get(job, "status", "startTime", default=""))
    finished = _parse_time(_get(job, "status", "completionTime", default=""))
    took = "" if started is None else human_duration((finished or now) - started)
    names, images = _containers(_get(job, "spec", "template", "spec"))
    return [
        status,
        completions_text,
        took,
        _age(_created(job), now),
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
        _age(_created(deployment), now),
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
_BUILTIN_PRINTERS: dict[str, tuple[list[dict[str, Any]], Callable[..., list[Any]]]] = {
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


def table_for_builtin(
    kind: str,
    objects: list[dict[str, Any]],
    *,
    now: datetime.datetime | None = None,
    include_object: str = "Metadata",
) -> dict[str, Any]:
    """The Table a real server answers for a built-in kind: its printer's columns, or NAME/AGE."""
    _check_include_object(include_object)
    clock = now or datetime.datetime.now(datetime.UTC)
    columns, row_cells = _BUILTIN_PRINTERS.get(
        kind.lower(), ([_AGE], lambda obj, now: [_age(_created(obj), now)])
    )
    definitions = [dict(_NAME_COLUMN)] + [dict(column) for column in columns]
    rows = [
        _row(
            [_get(obj, "metadata", "name", default=""), *row_cells(obj, clock)], obj, include_object
        )
        for obj in objects
    ]
    return _table(definitions, rows)
