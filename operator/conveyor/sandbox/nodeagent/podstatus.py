"""Pod status as the kubelet reports it, computed from snapshots of its containers (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .timefmt import format_time

__all__ = ["ContainerView", "pod_phase", "pod_status"]


@dataclass(frozen=True)
class ContainerView:
    """What the kubelet knows about one container right now.

    ``state`` is exactly one of ``{"waiting": ...}``, ``{"running": ...}``,
    ``{"terminated": ...}``; ``final`` marks a terminated container that will not restart."""

    name: str
    image: str
    state: Mapping[str, Any]
    ready: bool = False
    restart_count: int = 0
    last_state: Mapping[str, Any] = field(default_factory=dict)
    ever_started: bool = False
    final: bool = False
    container_id: str = ""

    def as_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": "running" in self.state,
            "state": dict(self.state),
            "lastState": dict(self.last_state),
        }
        if self.container_id:
            status["containerID"] = self.container_id
        return status


def pod_phase(containers: Sequence[ContainerView]) -> str:
    """Pending until every container has started once; Succeeded/Failed when all finished for
    good; Running otherwise."""
    if not containers or not all(c.ever_started for c in containers):
        return "Pending"
    if all(c.final for c in containers):
        codes = [int(c.state["terminated"].get("exitCode", 1)) for c in containers]
        return "Succeeded" if all(code == 0 for code in codes) else "Failed"
    return "Running"


def _condition(
    previous: Mapping[str, Mapping[str, Any]],
    kind: str,
    status: bool,
    now: float,
    reason: str = "",
    message: str = "",
) -> dict[str, Any]:
    value = "True" if status else "False"
    old = previous.get(kind)
    transition = (
        old["lastTransitionTime"] if old and old.get("status") == value else format_time(now)
    )
    condition: dict[str, Any] = {
        "type": kind,
        "status": value,
        "lastProbeTime": None,
        "lastTransitionTime": transition,
    }
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def pod_status(
    previous: Mapping[str, Any], containers: Sequence[ContainerView], start_time: str, now: float
) -> dict[str, Any]:
    """The full ``status`` of a pod on this node; ``previous`` keeps transition times stable."""
    phase = pod_phase(containers)
    old_conditions = {c.get("type", ""): c for c in previous.get("conditions") or []}
    unready = [c.name for c in containers if not c.ready]
    all_ready = bool(containers) and not unready
    if phase in ("Succeeded", "Failed"):
        reason, message = "PodCompleted", ""
    elif unready:
        reason = "ContainersNotReady"
        message = f"containers with unready status: [{' '.join(unready)}]"
    else:
        reason, message = "", ""
    conditions = [
        _condition(old_conditions, "PodReadyToStartContainers", True, now),
        _condition(old_conditions, "Initialized", True, now),
        _condition(old_conditions, "Ready", all_ready, now, reason, message),
        _condition(old_conditions, "ContainersReady", all_ready, now, reason, message),
        _condition(old_conditions, "PodScheduled", True, now),
    ]
    return {
        "phase": phase,
        "conditions": conditions,
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": "127.0.0.1",
        "podIPs": [{"ip": "127.0.0.1"}],
        "startTime": start_time,
        "containerStatuses": [c.as_status() for c in containers],
    }
