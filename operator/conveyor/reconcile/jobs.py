"""What a Job says about the program it ran: running, done, or failed — and why.

A failure is read where a real cluster puts it, in this order:
1. the Job's own `DeadlineExceeded` condition (the pods were stopped from outside, so their
   output says nothing useful);
2. the last failed pod's container: `OOMKilled` from the kubelet, else the program's JSON
   outcome from its termination message (which `FallbackToLogsOnError` fills with the log tail
   when the program died before writing one). When the Job's podFailurePolicy failed it
   (reason `PodFailurePolicy`), the pod its condition names comes first: the siblings stopped
   with it may be newer;
3. the Job's `Failed` condition (BackoffLimitExceeded and friends).
The program's `retryable` verdict travels along; a failure the program did not judge (killed,
out of memory, no output) may pass on a retry, but not one the pod failure policy stopped: its
rule lists only exit codes of failures no retry can fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from ..contracts.results import JobFailure, parse_failure

__all__ = ["JobState", "JobView", "failed_pod_count", "failure_from_output", "view_job"]

JobState = Literal["Active", "Succeeded", "Failed"]
_TAIL_CHARS = 500
POD_FAILURE_POLICY = "PodFailurePolicy"
"""The Failed condition's reason when a podFailurePolicy rule failed the Job."""


@dataclass(frozen=True)
class JobView:
    """One Job as its owner's reconcile needs it."""

    name: str
    labels: Mapping[str, str]
    state: JobState
    finished_at: datetime | None = None
    failure: JobFailure | None = None
    """Why it failed; None unless `state` is Failed."""
    retrying: JobFailure | None = None
    """While Active after a failed pod: why that pod failed (the Job retries it)."""
    failed_pods: int = 0

    @property
    def retry_note(self) -> str:
        """`; pod 2 after StorageUnavailable: ...` while the Job retries, else ""."""
        if self.retrying is None:
            return ""
        return f"; pod {self.failed_pods + 1} after {self.retrying.reason}: {self.retrying.message}"

    @property
    def reason(self) -> str:
        return self.failure.reason if self.failure else ""

    @property
    def message(self) -> str:
        return self.failure.message if self.failure else ""

    @property
    def retryable(self) -> bool:
        return self.failure.retryable if self.failure else True


def view_job(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]] = ()) -> JobView:
    """The Job's state; when it failed, why, from its `pods` (those labelled job-name=<job>)."""
    metadata = job.get("metadata") or {}
    state, finished = _state(job)
    failure = _failure(job, pods) if state == "Failed" else None
    failed_pods = failed_pod_count(job)
    retrying = _failure(job, pods) if state == "Active" and failed_pods and pods else None
    return JobView(
        name=str(metadata.get("name", "")),
        labels=dict(metadata.get("labels") or {}),
        state=state,
        finished_at=finished,
        failure=failure,
        retrying=retrying,
        failed_pods=failed_pods,
    )


def failed_pod_count(job: Mapping[str, Any]) -> int:
    """Pods of the Job that failed so far (status.failed)."""
    failed = (job.get("status") or {}).get("failed")
    return failed if isinstance(failed, int) and failed > 0 else 0


def failure_from_output(text: str) -> JobFailure:
    """The failure a program reported in `text`; without a report, its last line of output."""
    reported = parse_failure(text)
    if reported is not None:
        return reported
    stripped = text.strip()
    tail = stripped.splitlines()[-1] if stripped else "no output"
    return JobFailure(reason="JobFailed", message=tail[-_TAIL_CHARS:])


def _conditions(job: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list((job.get("status") or {}).get("conditions") or [])


def _state(job: Mapping[str, Any]) -> tuple[JobState, datetime | None]:
    for condition in _conditions(job):
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return "Succeeded", _time(condition.get("lastTransitionTime"))
        if condition.get("type") == "Failed":
            return "Failed", _time(condition.get("lastTransitionTime"))
    return "Active", None


def _failure(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> JobFailure:
    failed = next(
        (c for c in _conditions(job) if c.get("type") == "Failed" and c.get("status") == "True"),
        {},
    )
    if failed.get("reason") == "DeadlineExceeded":
        limit = (job.get("spec") or {}).get("activeDeadlineSeconds")
        return JobFailure(
            reason="DeadlineExceeded",
            message=f"the Job ran longer than activeDeadlineSeconds ({limit} s)",
        )
    stopped_by_policy = failed.get("reason") == POD_FAILURE_POLICY
    culprit = _named_pod(str(failed.get("message", ""))) if stopped_by_policy else None
    newest_first = sorted(
        pods,
        key=lambda pod: (
            culprit is not None and pod.get("metadata", {}).get("name") == culprit,
            str(pod.get("metadata", {}).get("creationTimestamp", "")),
        ),
        reverse=True,
    )
    for pod in newest_first:
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (container.get("state") or {}).get("terminated")
            if not terminated or not terminated.get("exitCode"):
                continue
            if terminated.get("reason") == "OOMKilled":
                return JobFailure(
                    reason="OOMKilled",
                    message="the container exceeded its memory limit (OOMKilled)",
                )
            failure = failure_from_output(
                str(terminated.get("message") or terminated.get("reason") or "")
            )
            if culprit is not None and pod.get("metadata", {}).get("name") == culprit:
                # Its exit code is one only failures no retry can fix exit with.
                failure = failure.model_copy(update={"retryable": False})
            return failure
    if failed:
        return JobFailure(
            reason=str(failed.get("reason") or "JobFailed"),
            message=str(failed.get("message", "")),
            retryable=not stopped_by_policy,
        )
    return JobFailure(reason="JobFailed", message="the Job failed and its pods reported no reason")


def _named_pod(message: str) -> str | None:
    """The pod a PodFailurePolicy message names: "Container main for pod <ns>/<pod> failed
    with exit code 2 matching FailJob rule at index 0" (or "Pod <ns>/<pod> has condition …")."""
    match = re.search(r"\b[Pp]od [^/\s]+/(\S+)", message)
    return match.group(1) if match else None


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
