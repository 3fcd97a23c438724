"""How the rollout of a version on a Deployment stands: complete, progressing, or failed —
by its pods' own verdicts first (a server that said why it cannot serve, a crash loop), then by
the Deployment's (progress deadline, every pod updated and available). Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..contracts.labels import LABEL_VERSION
from ..contracts.results import parse_failure

__all__ = ["CRASH_LOOP_RESTARTS", "Rollout", "RolloutState", "rollout"]

CRASH_LOOP_RESTARTS = 3
"""Restarts of a new version's container after which it counts as a crash loop."""

RolloutState = Literal["complete", "progressing", "failed"]


@dataclass(frozen=True)
class Rollout:
    state: RolloutState
    reason: str = ""
    message: str = ""


def rollout(
    deployment: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], version: str
) -> Rollout:
    """How the rollout of `version` stands: its pods' own verdicts first (a server that said
    why it cannot serve, a crash loop), then the Deployment's (progress deadline, complete)."""
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    generation = (deployment.get("metadata") or {}).get("generation", 0)
    waiting = Rollout("progressing")
    for pod in pods:
        if (pod.get("metadata", {}).get("labels") or {}).get(LABEL_VERSION) != version:
            continue
        verdict = _pod_verdict(pod)
        if verdict is not None and verdict.state == "failed":
            return verdict
        waiting = verdict or waiting
    if status.get("observedGeneration", 0) < generation:
        return waiting
    if status.get("observedGeneration", 0) < generation:
        return Rollout("progressing")
    progressing: Mapping[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Progressing"), {}
    )
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        seconds = spec.get("progressDeadlineSeconds", 600)
        return Rollout(
            "failed",
            "ProgressDeadlineExceeded",
            f"not ready on every pod within {seconds} s (spec.serving.progressDeadlineSeconds): "
            f"{waiting.message or progressing.get('message', '')}",
        )
    replicas = int(spec.get("replicas", 1))
    done = (
        status.get("updatedReplicas", 0) >= replicas
        and status.get("availableReplicas", 0) >= replicas
        and status.get("replicas", 0) == replicas
    )
    return Rollout("complete") if done else waiting


def _pod_verdict(pod: Mapping[str, Any]) -> Rollout | None:
    """A failed start the server explained (its termination message), or a crash loop; a
    server that could not start for a reason that passes (S3 unavailable) is progressing,
    however often it restarts, with that reason."""
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        passing = None
        for state in (container.get("state") or {}, container.get("lastState") or {}):
            terminated = state.get("terminated") or {}
            failure = parse_failure(str(terminated.get("message") or ""))
            if failure is not None and not failure.retryable:
                return Rollout("failed", failure.reason, failure.message)
            passing = passing or failure
        restarts = int(container.get("restartCount", 0))
        if passing is not None:
            return Rollout(
                "progressing",
                passing.reason,
                f"the server could not start yet (restarted {restarts} times; it retries): "
                f"{passing.message}",
            )
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") == "CrashLoopBackOff" and restarts >= CRASH_LOOP_RESTARTS:
            last = (container.get("lastState") or {}).get("terminated") or {}
            why = last.get("reason", "Error")
            code = last.get("exitCode", "?")
            detail = str(last.get("message") or "").strip().splitlines()[-1:] or [""]
            return Rollout(
                "failed",
                "CrashLoop",
                f"the server restarted {restarts} times (last: {why}, exit code {code}) "
                f"{detail[0]}".strip(),
            )
    return None
