"""The Deployment controller's decisions, as pure functions.

The sandbox skips ReplicaSets: a Deployment owns its Pods directly, each labelled with
``pod-template-hash`` (a stable hash of the template), and the names in conditions refer to the
ReplicaSet a cluster would have made (``<deployment>-<hash>``). ``spec.paused``,
``revisionHistoryLimit`` and rollback annotations are not implemented."""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .jobs import is_pod_active, is_pod_ready
from .timefmt import format_time, parse_time

__all__ = [
    "TEMPLATE_HASH",
    "DeploymentPlan",
    "build_deployment_pod",
    "plan_deployment",
    "resolve_budget",
    "template_hash",
]

TEMPLATE_HASH = "pod-template-hash"
_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_COUNTS = ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")


@dataclass
class DeploymentPlan:
    """``create`` pods of the current template, ``delete`` these pods, write ``status``."""

    create: int = 0
    delete: list[Mapping[str, Any]] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    requeue_after: float | None = None


def template_hash(template: Mapping[str, Any]) -> str:
    """A stable 10-character hash of a pod template (same template → same hash)."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    number = int.from_bytes(digest[:8], "big")
    chars = []
    for _ in range(10):
        number, rest = divmod(number, len(_HASH_ALPHABET))
        chars.append(_HASH_ALPHABET[rest])
    return "".join(chars)


def build_deployment_pod(
    deployment: Mapping[str, Any], pod_hash: str, suffix: str
) -> dict[str, Any]:
    """A pod of the Deployment's current template, owned by the Deployment."""
    metadata = deployment["metadata"]
    template = copy.deepcopy(deployment["spec"].get("template") or {})
    template_meta = template.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{metadata['name']}-{pod_hash}-{suffix}",
            "namespace": metadata.get("namespace", "default"),
            "labels": {**(template_meta.get("labels") or {}), TEMPLATE_HASH: pod_hash},
            "annotations": dict(template_meta.get("annotations") or {}),
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": metadata["name"],
                    "uid": metadata["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": template.get("spec") or {},
    }


def resolve_budget(value: int | str | None, replicas: int, *, round_up: bool, default: str) -> int:
    """``maxSurge``/``maxUnavailable`` as a pod count: an int, or a percentage of replicas
    (surge rounds up, unavailability rounds down, as Kubernetes does)."""
    raw = default if value is None else value
    if isinstance(raw, str) and raw.endswith("%"):
        exact = replicas * float(raw[:-1]) / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(raw)


def _ready_since(pod: Mapping[str, Any]) -> float | None:
    for condition in pod.get("status", {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            return parse_time(condition.get("lastTransitionTime")) or 0.0
    return None


def _is_available(pod: Mapping[str, Any], min_ready: float, now: float) -> bool:
    since = _ready_since(pod)
    return since is not None and now - since >= min_ready


def _newest_first_unready_first(pods: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    def age(pod: Mapping[str, Any]) -> float:
        return -(parse_time(pod["metadata"].get("creationTimestamp")) or 0.0)

    return sorted(pods, key=lambda p: (is_pod_ready(p), age(p)))


@dataclass(frozen=True)
class _Budget:
    replicas: int
    surge: int
    unavailable: int


def _budget(spec: Mapping[str, Any]) -> _Budget:
    replicas = int(spec.get("replicas", 1))
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    surge = resolve_budget(rolling.get("maxSurge"), replicas, round_up=True, default="25%")
    unavailable = resolve_budget(
        rolling.get("maxUnavailable"), replicas, round_up=False, default="25%"
    )
    if surge == 0 and unavailable == 0:
        unavailable = 1  # the API refuses both zero; be lenient rather than stall
    return _Budget(replicas, surge, unavailable)


def _scale_actions(
    spec: Mapping[str, Any],
    new: list[Mapping[str, Any]],
    old: list[Mapping[str, Any]],
    min_ready: float,
    now: float,
) -> tuple[int, list[Mapping[str, Any]]]:
    budget = _budget(spec)
    if (spec.get("strategy") or {}).get("type") == "Recreate":
        if old:
            return 0, list(old)
        surplus = _newest_first_unready_first(new)[: max(0, len(new) - budget.replicas)]
        return max(0, budget.replicas - len(new)), surplus
    live = len(new) + len(old)
    create = min(budget.replicas - len(new), budget.replicas + budget.surge - live)
    if create > 0:
        return create, []
    if len(new) >= budget.replicas and not old:
        return 0, _newest_first_unready_first(new)[: len(new) - budget.replicas]
    if len(new) > budget.replicas:
        return 0, list(old) + _newest_first_unready_first(new)[: len(new) - budget.replicas]
    new_unavailable = sum(1 for p in new if not _is_available(p, min_ready, now))
    room = live - (budget.replicas - budget.unavailable) - new_unavailable
    candidates = sorted(old, key=lambda p: _is_available(p, min_ready, now))
    return 0, candidates[: max(0, room)]


def plan_deployment(
    deployment: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], now: float
) -> DeploymentPlan:
    """The next step of a Deployment: scale, roll, replace finished pods, and its status."""
    spec = deployment.get("spec") or {}
    pod_hash = template_hash(spec.get("template") or {})
    min_ready = float(spec.get("minReadySeconds", 0))
    live = [p for p in pods if is_pod_active(p)]
    finished = [
        p for p in pods if not is_pod_active(p) and not p["metadata"].get("deletionTimestamp")
    ]
    new = [p for p in live if (p["metadata"].get("labels") or {}).get(TEMPLATE_HASH) == pod_hash]
    old = [p for p in live if p not in new]
    create, delete = _scale_actions(spec, new, old, min_ready, now)
    plan = DeploymentPlan(create=create, delete=[*finished, *delete])
    plan.status = _status(deployment, pod_hash, new, live, min_ready, now)
    waiting = [p for p in live if is_pod_ready(p) and not _is_available(p, min_ready, now)]
    if waiting:
        plan.requeue_after = min_ready
    return plan


def _status(
    deployment: Mapping[str, Any],
    pod_hash: str,
    new: Sequence[Mapping[str, Any]],
    live: Sequence[Mapping[str, Any]],
    min_ready: float,
    now: float,
) -> dict[str, Any]:
    spec = deployment.get("spec") or {}
    previous = deployment.get("status") or {}
    budget = _budget(spec)
    available = sum(1 for p in live if _is_available(p, min_ready, now))
    counts = {
        "replicas": len(live),
        "updatedReplicas": len(new),
        "readyReplicas": sum(1 for p in live if is_pod_ready(p)),
        "availableReplicas": available,
    }
    generation = deployment["metadata"].get("generation", 1)
    changed = previous.get("observedGeneration") != generation or any(
        previous.get(k, 0) != v for k, v in counts.items()
    )
    rs_name = f"{deployment['metadata']['name']}-{pod_hash}"
    conditions = {c.get("type"): c for c in previous.get("conditions") or []}
    if available >= budget.replicas - budget.unavailable:
        avail = ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
    else:
        avail = (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    complete = len(new) == budget.replicas == len(live) and available >= budget.replicas
    progressing = _progressing(
        conditions.get("Progressing"),
        complete,
        changed,
        rs_name,
        float(spec.get("progressDeadlineSeconds", 600)),
        now,
    )
    return {
        "observedGeneration": generation,
        **counts,
        "unavailableReplicas": max(0, max(budget.replicas, len(live)) - available),
        "conditions": [
            _condition(conditions.get("Available"), "Available", *avail, now),
            _condition(
                conditions.get("Progressing"),
                "Progressing",
                *progressing,
                now,
                touch=changed and not complete,
            ),
        ],
    }


def _progressing(
    previous: Mapping[str, Any] | None,
    complete: bool,
    changed: bool,
    rs_name: str,
    deadline: float,
    now: float,
) -> tuple[str, str, str]:
    if complete:
        done = f'ReplicaSet "{rs_name}" has successfully progressed.'
        return "True", "NewReplicaSetAvailable", done
    updated = ("True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')
    if previous is None or changed or previous.get("reason") == "NewReplicaSetAvailable":
        return updated
    if previous.get("reason") == "ProgressDeadlineExceeded":
        return "False", "ProgressDeadlineExceeded", str(previous.get("message"))
    last = parse_time(previous.get("lastUpdateTime")) or now
    if now - last > deadline:
        return (
            "False",
            "ProgressDeadlineExceeded",
            f'ReplicaSet "{rs_name}" has timed out progressing.',
        )
    return "True", str(previous.get("reason")), str(previous.get("message"))


def _condition(
    previous: Mapping[str, Any] | None,
    kind: str,
    status: str,
    reason: str,
    message: str,
    now: float,
    *,
    touch: bool = False,
) -> dict[str, str]:
    """A condition whose lastUpdateTime moves when anything changes and lastTransitionTime when
    its status does."""
    stamp = format_time(now)
    if previous and (previous.get("status"), previous.get("reason"), previous.get("message")) == (
        status,
        reason,
        message,
    ):
        return {**previous, "lastUpdateTime": stamp} if touch else dict(previous)
    transition = stamp
    if previous and previous.get("status") == status:
        transition = previous.get("lastTransitionTime", stamp)
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": stamp,
        "lastTransitionTime": transition,
    }
