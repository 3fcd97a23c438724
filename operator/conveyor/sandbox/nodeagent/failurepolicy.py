"""A Job's ``podFailurePolicy``, judged as Kubernetes' Job controller judges it, as a pure function.

Each failed pod is matched against the rules in order and the first rule that matches decides:
``FailJob`` fails the Job at once (condition reason ``PodFailurePolicy``), ``Ignore`` does not
count the pod against ``backoffLimit``, ``Count`` counts it as if there were no policy. A pod no
rule matches counts. An action this controller does not know (``FailIndex``, which needs
``backoffLimitPerIndex``) skips its rule, as Kubernetes tells clients to.

``onExitCodes`` looks at the terminated containers (regular, then init), optionally only the
one named ``containerName``; an exit code of 0 never matches, whatever the operator, so ``NotIn``
matches only real failures. ``onPodConditions`` matches a pod condition of the same type and
status (``status`` defaults to ``"True"``), e.g. ``DisruptionTarget`` on an evicted pod.
(pkg/controller/job/pod_failure_policy.go)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["JOB_REASON", "Verdict", "judge_failed_pod"]

JOB_REASON = "PodFailurePolicy"
"""The Failed condition's reason when a FailJob rule matched."""

Action = Literal["FailJob", "Ignore", "Count"]
_ACTIONS = ("FailJob", "Ignore", "Count")


@dataclass(frozen=True)
class Verdict:
    """What a failed pod means for its Job: the action, and for FailJob the condition message."""

    action: Action
    message: str = ""

    @property
    def counts(self) -> bool:
        """Whether the pod counts against backoffLimit (and in status.failed)."""
        return self.action != "Ignore"


COUNT = Verdict("Count")


def judge_failed_pod(policy: Mapping[str, Any] | None, pod: Mapping[str, Any]) -> Verdict:
    """The verdict of the first rule of `policy` that matches the failed `pod`."""
    if not policy:
        return COUNT
    metadata = pod.get("metadata") or {}
    where = f"{metadata.get('namespace', 'default')}/{metadata.get('name', '')}"
    status = pod.get("status") or {}
    for index, rule in enumerate(policy.get("rules") or []):
        action = rule.get("action")
        if action not in _ACTIONS:
            continue
        if rule.get("onExitCodes") is not None:
            container = _matching_container(status, rule["onExitCodes"])
            if container is None:
                continue
            code = container["state"]["terminated"]["exitCode"]
            message = (
                f"Container {container.get('name')} for pod {where} failed with exit code "
                f"{code} matching {action} rule at index {index}"
            )
        elif rule.get("onPodConditions") is not None:
            condition = _matching_condition(status, rule["onPodConditions"])
            if condition is None:
                continue
            message = (
                f"Pod {where} has condition {condition.get('type')} matching {action} rule "
                f"at index {index}"
            )
        else:
            continue
        return Verdict(action, message if action == "FailJob" else "")
    return COUNT


def _matching_container(
    status: Mapping[str, Any], requirement: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    for key in ("containerStatuses", "initContainerStatuses"):
        for container in status.get(key) or []:
            terminated = (container.get("state") or {}).get("terminated")
            if not terminated:
                continue  # still running or terminating: no exit code to match yet
            name = requirement.get("containerName")
            if name is not None and name != container.get("name"):
                continue
            code = int(terminated.get("exitCode", 0))
            if code != 0 and _operator_matches(code, requirement):
                return container
    return None


def _operator_matches(code: int, requirement: Mapping[str, Any]) -> bool:
    values = {int(value) for value in requirement.get("values") or []}
    operator = requirement.get("operator")
    if operator == "In":
        return code in values
    if operator == "NotIn":
        return code not in values
    return False


def _matching_condition(
    status: Mapping[str, Any], patterns: list[Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    for condition in status.get("conditions") or []:
        for pattern in patterns:
            wanted = pattern.get("status", "True")
            if condition.get("type") == pattern.get("type") and condition.get("status") == wanted:
                return condition
    return None
