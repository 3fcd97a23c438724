"""The Job controller's decisions, as pure functions: which pods to create or delete and which
status to write, given a Job, the pods it owns and what has been seen of earlier pods.

``podFailurePolicy`` is judged per failed pod as Kubernetes does (``failurepolicy.py``): a FailJob
rule fails the Job before ``backoffLimit`` is looked at, an Ignore rule's pods do not count.
``ttlSecondsAfterFinished``, ``backoffLimitPerIndex`` and ``successPolicy`` are not implemented;
finished Jobs are left in place."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .failurepolicy import JOB_REASON, judge_failed_pod
from .timefmt import format_time, parse_time

__all__ = [
    "COMPLETION_INDEX",
    "JobHistory",
    "JobPlan",
    "build_job_pod",
    "format_indexes",
    "is_pod_active",
    "is_pod_ready",
    "plan_job",
    "retry_delay",
]

COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
_BASE_RETRY_DELAY = 0.5  # seconds; a real cluster waits 10 s, doubled per failure
_MAX_RETRY_DELAY = 10.0
_FINISHED = ("Complete", "Failed")


@dataclass
class JobHistory:
    """Terminal pods of one Job seen so far: a pod deleted after it finished still counts.

    A failed pod is judged once, when first seen, by the Job's podFailurePolicy: it counts
    (``failed``), is ignored (``ignored``), or fails the Job (``fail_job``, the message)."""

    succeeded: dict[str, int | None] = field(default_factory=dict)  # pod uid → completion index
    failed: set[str] = field(default_factory=set)
    ignored: set[str] = field(default_factory=set)
    fail_job: str | None = None
    last_failure_at: float | None = None

    def record(
        self,
        pods: Iterable[Mapping[str, Any]],
        now: float,
        policy: Mapping[str, Any] | None = None,
    ) -> None:
        for pod in pods:
            uid = pod["metadata"]["uid"]
            phase = pod.get("status", {}).get("phase")
            if phase == "Succeeded":
                self.succeeded.setdefault(uid, pod_index(pod))
            elif phase == "Failed" and uid not in self.failed and uid not in self.ignored:
                verdict = judge_failed_pod(policy, pod)
                (self.failed if verdict.counts else self.ignored).add(uid)
                if verdict.action == "FailJob" and self.fail_job is None:
                    self.fail_job = verdict.message
                self.last_failure_at = now

    def record_killed(self, uids: Iterable[str], now: float) -> None:
        """Pods the controller deleted while they ran count as failed, as in a cluster."""
        for uid in uids:
            self.failed.add(uid)
            self.last_failure_at = now


@dataclass
class JobPlan:
    """What the Job controller does next. ``create`` holds completion indexes (None when the Job
    is not Indexed); ``events`` are (type, reason, message) for the Job."""

    create: list[int | None] = field(default_factory=list)
    delete: list[Mapping[str, Any]] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    requeue_after: float | None = None


def pod_index(pod: Mapping[str, Any]) -> int | None:
    metadata = pod.get("metadata", {})
    raw = (metadata.get("annotations") or {}).get(COMPLETION_INDEX)
    raw = raw if raw is not None else (metadata.get("labels") or {}).get(COMPLETION_INDEX)
    return int(raw) if raw is not None and str(raw).isdigit() else None


def is_pod_active(pod: Mapping[str, Any]) -> bool:
    phase = pod.get("status", {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def is_pod_ready(pod: Mapping[str, Any]) -> bool:
    for condition in pod.get("status", {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def format_indexes(indexes: Iterable[int]) -> str:
    """``{0, 1, 2, 5}`` → ``"0-2,5"``, the ``completedIndexes`` notation."""
    ordered = sorted(set(indexes))
    ranges: list[str] = []
    start = previous = None
    for index in [*ordered, None]:
        if index is not None and previous is not None and index == previous + 1:
            previous = index
            continue
        if start is not None:
            ranges.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = index
    return ",".join(ranges)


def retry_delay(failures: int) -> float:
    """Back-off before the next pod after ``failures`` failed ones (short: this is a sandbox)."""
    return 0.0 if failures <= 0 else min(_BASE_RETRY_DELAY * 2 ** (failures - 1), _MAX_RETRY_DELAY)


def build_job_pod(job: Mapping[str, Any], index: int | None, suffix: str) -> dict[str, Any]:
    """The pod the Job controller creates from ``spec.template`` (with its labels, owner and,
    for an Indexed Job, the completion index as annotation, label and ``JOB_COMPLETION_INDEX``)."""
    metadata = job["metadata"]
    name, uid = metadata["name"], metadata["uid"]
    template = copy.deepcopy(job["spec"].get("template") or {})
    template_meta = template.get("metadata") or {}
    labels = {
        **(template_meta.get("labels") or {}),
        "controller-uid": uid,
        "batch.kubernetes.io/controller-uid": uid,
        "job-name": name,
        "batch.kubernetes.io/job-name": name,
    }
    annotations = dict(template_meta.get("annotations") or {})
    spec = template.get("spec") or {}
    pod_name = f"{name}-{suffix}"
    if index is not None:
        labels[COMPLETION_INDEX] = str(index)
        annotations[COMPLETION_INDEX] = str(index)
        pod_name = f"{name}-{index}-{suffix}"
        index_env = {
            "name": "JOB_COMPLETION_INDEX",
            "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}},
        }
        for container in spec.get("containers") or []:
            container["env"] = [index_env, *(container.get("env") or [])]
    owner = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name,
            "namespace": metadata.get("namespace", "default"),
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner],
        },
        "spec": spec,
    }


def _condition(kind: str, reason: str, message: str, now: float) -> dict[str, str]:
    stamp = format_time(now)
    return {
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastProbeTime": stamp,
        "lastTransitionTime": stamp,
    }


def _set_condition(conditions: list[dict[str, Any]], new: dict[str, Any]) -> None:
    for i, existing in enumerate(conditions):
        if existing.get("type") == new["type"]:
            if existing.get("status") == new["status"]:
                return
            conditions[i] = new
            return
    conditions.append(new)


def _is_finished(status: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") in _FINISHED and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _restarts(pods: Sequence[Mapping[str, Any]]) -> int:
    """Container restarts in running pods count as failures (restartPolicy OnFailure)."""
    total = 0
    for pod in pods:
        if pod.get("spec", {}).get("restartPolicy") == "OnFailure":
            total += sum(
                int(cs.get("restartCount", 0))
                for cs in pod.get("status", {}).get("containerStatuses") or []
            )
    return total


def _wanted_indexes(
    indexed: bool,
    completions: int | None,
    parallelism: int,
    succeeded: int,
    succeeded_indexes: set[int],
    active: Sequence[Mapping[str, Any]],
) -> list[int | None]:
    room = parallelism - len(active)
    if room <= 0:
        return []
    if indexed:
        busy = {pod_index(p) for p in active} | succeeded_indexes
        free: list[int | None] = [i for i in range(completions or 0) if i not in busy]
        return free[:room]
    if completions is None:
        return [None] * room if succeeded == 0 else []
    return [None] * max(0, min(room, completions - succeeded - len(active)))


def plan_job(
    job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], history: JobHistory, now: float
) -> JobPlan:
    """Decide the next step for ``job`` given its pods (``history`` already holds them)."""
    spec = job.get("spec") or {}
    previous = job.get("status") or {}
    status: dict[str, Any] = copy.deepcopy(dict(previous))
    conditions: list[dict[str, Any]] = status.setdefault("conditions", [])
    active = [p for p in pods if is_pod_active(p)]
    indexed = spec.get("completionMode") == "Indexed"
    completions = spec.get("completions")
    parallelism = int(spec.get("parallelism", 1))
    succeeded_indexes = {i for i in history.succeeded.values() if i is not None}
    succeeded = len(history.succeeded)
    failed = max(len(history.failed) + _restarts(active), int(previous.get("failed", 0)))
    plan = JobPlan(status=status)
    status.update(succeeded=max(succeeded, int(previous.get("succeeded", 0))), failed=failed)
    if indexed:
        status["completedIndexes"] = format_indexes(succeeded_indexes)

    if _is_finished(previous):
        plan.delete = active
        status.update(active=0, ready=0)
        return plan

    if spec.get("suspend"):
        plan.delete = active
        status.update(active=0, ready=0)
        suspended_now = [c for c in conditions if c.get("type") == "Suspended"]
        if not suspended_now or suspended_now[0].get("status") != "True":
            suspension = _condition("Suspended", "JobSuspended", "Job suspended", now)
            _set_condition(conditions, suspension)
            plan.events.append(("Normal", "Suspended", "Job suspended"))
        return plan

    suspended = [c for c in conditions if c.get("type") == "Suspended"]
    if suspended and suspended[0].get("status") == "True":
        resumed = _condition("Suspended", "JobResumed", "Job resumed", now) | {"status": "False"}
        _set_condition(conditions, resumed)
        plan.events.append(("Normal", "Resumed", "Job resumed"))
        status["startTime"] = format_time(now)
    status.setdefault("startTime", format_time(now))
    started = parse_time(status["startTime"]) or now

    failure = _failure(spec, failed, started, now, history.fail_job)
    if failure is not None:
        reason, message = failure
        _set_condition(conditions, _condition("FailureTarget", reason, message, now))
        _set_condition(conditions, _condition("Failed", reason, message, now))
        plan.events.append(("Warning", reason, message))
        plan.delete = active
        status.update(active=0, ready=0)
        return plan

    if _succeeded(indexed, completions, succeeded, succeeded_indexes, active):
        message = "Reached expected number of succeeded pods"
        for kind in ("SuccessCriteriaMet", "Complete"):
            _set_condition(conditions, _condition(kind, "CompletionsReached", message, now))
        plan.events.append(("Normal", "Completed", "Job completed"))
        plan.delete = active
        status.update(active=0, ready=0, completionTime=format_time(now))
        return plan

    wanted = _wanted_indexes(
        indexed, completions, parallelism, succeeded, succeeded_indexes, active
    )
    delay = retry_delay(len(history.failed) + len(history.ignored))  # ignored ones back off too
    waited = now - (history.last_failure_at or 0.0)
    if wanted and waited < delay:
        plan.requeue_after = delay - waited
        wanted = []
    plan.create = wanted
    status.update(active=len(active) + len(wanted), ready=sum(1 for p in active if is_pod_ready(p)))
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None:
        remaining = started + float(deadline) - now
        plan.requeue_after = min(plan.requeue_after or remaining, remaining)
    return plan


def _failure(
    spec: Mapping[str, Any], failed: int, started: float, now: float, fail_job: str | None
) -> tuple[str, str] | None:
    if fail_job is not None:  # the pod failure policy is judged before backoffLimit
        return JOB_REASON, fail_job
    if failed > int(spec.get("backoffLimit", 6)):
        return "BackoffLimitExceeded", "Job has reached the specified backoff limit"
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and now - started >= float(deadline):
        return "DeadlineExceeded", "Job was active longer than specified deadline"
    return None


def _succeeded(
    indexed: bool,
    completions: int | None,
    succeeded: int,
    succeeded_indexes: set[int],
    active: Sequence[Mapping[str, Any]],
) -> bool:
    if indexed:
        return completions is not None and succeeded_indexes >= set(range(completions))
    if completions is None:
        return succeeded >= 1 and not active
    return succeeded >= int(completions)
