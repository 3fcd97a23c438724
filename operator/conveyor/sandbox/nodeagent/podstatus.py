"""Pod status as the kubelet reports it, computed from snapshots of its containers (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .timefmt import format_time

__all__ = ["ContainerView", "pod_phase", "pod_status"]

# The kubelet's MaxPodTerminationMessageLogLength: the termination messages of a pod's containers
# share 12 KiB, each container keeping the first 12 KiB / (number of containers) bytes of its own.
_POD_MESSAGE_BYTES = 12 * 1024


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
    started: bool | None = None
    """Past its startup probe; None: whenever it runs (no startup probe known)."""
    last_state: Mapping[str, Any] = field(default_factory=dict)
    ever_started: bool = False
    final: bool = False
    container_id: str = ""

    def as_status(self, message_bytes: int = _POD_MESSAGE_BYTES) -> dict[str, Any]:
        """The container's entry in ``containerStatuses``; termination messages longer than
        ``message_bytes`` are cut (UTF-8 bytes, a cut character replaced, as the kubelet)."""
        status: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": "running" in self.state if self.started is None else self.started,
            "state": _cut_message(self.state, message_bytes),
            "lastState": _cut_message(self.last_state, message_bytes),
        }
        if self.container_id:
            status["containerID"] = self.container_id
        return status


def _cut_message(state: Mapping[str, Any], limit: int) -> dict[str, Any]:
    """A copy of ``state`` whose terminated message keeps its first ``limit`` bytes."""
    terminated = state.get("terminated")
    if not terminated:
        return dict(state)
    encoded = str(terminated.get("message", "")).encode()
    if len(encoded) <= limit:
        return dict(state)
    message = encoded[:limit].decode("utf-8", "replace")
    return {**state, "terminated": {**terminated, "message": message}}


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
    """The full ``status`` of a pod on this node; ``previous`` keeps transition times stable.
    The containers share 12 KiB of termination messages, as on a kubelet."""
    phase = pod_phase(containers)
    message_bytes = _POD_MESSAGE_BYTES // max(len(containers), 1)
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
        "containerStatuses": [c.as_status(message_bytes) for c in containers],
    }
