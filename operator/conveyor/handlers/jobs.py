"""Observing the Jobs a controller runs: each Job, and for a failed one its pods."""

from __future__ import annotations

from ..reconcile.jobs import JobView, failed_pod_count, view_job
from ..resources.kinds import JOBS, PODS
from .context import Context

__all__ = ["observe_jobs"]


def observe_jobs(context: Context, namespace: str, selector: str) -> list[JobView]:
    """The Jobs matching `selector` that are not being deleted; the pods of a failed one, or
    of one retrying a failed pod, are read to say why."""
    views = []
    for job in context.kube.list(JOBS, namespace, selector=selector):
        if job["metadata"].get("deletionTimestamp"):
            continue
        view = view_job(job)
        if view.state == "Failed" or failed_pod_count(job):
            pods = context.kube.list(PODS, namespace, selector=f"job-name={view.name}")
            view = view_job(job, pods)
        views.append(view)
    return views
