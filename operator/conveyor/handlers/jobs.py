"""Reading and writing the Jobs that run Conveyor's programs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kubernetes.client import ApiException, BatchV1Api, CoreV1Api

from ..reconcile.common import parse_job_result
from .common import Context

__all__ = ["create_jobs", "delete_jobs", "job_failure", "job_state", "list_jobs"]


def list_jobs(context: Context, namespace: str, selector: str) -> list[Any]:
    batch = BatchV1Api(context.kube.api_client)
    jobs = batch.list_namespaced_job(namespace, label_selector=selector).items
    return [job for job in jobs if not job.metadata.deletion_timestamp]


def job_state(job: Any) -> tuple[str, datetime | None]:
    """Active, Succeeded or Failed, and when it finished."""
    for condition in (job.status.conditions or []) if job.status else []:
        if condition.status != "True":
            continue
        if condition.type == "Complete":
            return "Succeeded", condition.last_transition_time
        if condition.type == "Failed":
            return "Failed", condition.last_transition_time
    return "Active", None


def job_failure(context: Context, namespace: str, job: Any) -> tuple[str, str]:
    """(reason, message) of a failed Job: the program's JSON result from the last failed pod's
    termination message (or log tail), else the kubelet's reason (OOMKilled), else the Job's
    own condition (BackoffLimitExceeded, DeadlineExceeded)."""
    failed = (
        next(
            (c for c in (job.status.conditions or []) if c.type == "Failed" and c.status == "True"),
            None,
        )
        if job.status
        else None
    )
    if failed is not None and failed.reason == "DeadlineExceeded":
        # The pods were stopped from outside: their own output says nothing useful.
        limit = job.spec.active_deadline_seconds if job.spec else None
        return "DeadlineExceeded", f"the Job ran longer than activeDeadlineSeconds ({limit} s)"
    core = CoreV1Api(context.kube.api_client)
    pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={job.metadata.name}")
    for pod in sorted(
        pods.items, key=lambda p: str(p.metadata.creation_timestamp or ""), reverse=True
    ):
        for status in (pod.status.container_statuses or []) if pod.status else []:
            terminated = status.state.terminated if status.state else None
            if terminated is None or not terminated.exit_code:
                continue
            if terminated.reason == "OOMKilled":
                return "OOMKilled", "the container exceeded its memory limit (OOMKilled)"
            return parse_job_result(terminated.message or terminated.reason or "")
    for condition in (job.status.conditions or []) if job.status else []:
        if condition.type == "Failed" and condition.status == "True":
            return condition.reason or "JobFailed", condition.message or ""
    return "JobFailed", "the Job failed and its pods reported no reason"


def delete_jobs(context: Context, namespace: str, names: list[str]) -> None:
    batch = BatchV1Api(context.kube.api_client)
    for name in names:
        try:
            batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
        except ApiException as error:
            if error.status != 404:
                raise


def create_jobs(context: Context, namespace: str, jobs: list[dict[str, Any]]) -> None:
    if not jobs:
        return
    context.prepare_namespace(namespace)
    batch = BatchV1Api(context.kube.api_client)
    for job in jobs:
        try:
            batch.create_namespaced_job(namespace, job)
        except ApiException as error:
            if error.status != 409:  # already exists: a repeated reconcile, not an error
                raise
