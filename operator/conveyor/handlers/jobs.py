"""Observing the Jobs a controller runs: each Job, and for a failed one its pods."""

from __future__ import annotations

from ..reconcile.jobs import JobView, view_job
from ..resources.kinds import JOBS, PODS
from .context import Context

__all__ = ["observe_jobs"]


def observe_jobs(context: Context, namespace: str, selector: str) -> list[JobView]:
    """The Jobs matching `selector` that are not being deleted; a failed one's pods are read
    to say why it failed."""
    views = []
    for job in context.kube.list(JOBS, namespace, selector=selector):
        if job["metadata"].get("deletionTimestamp"):
            continue
        view = view_job(job)
        if view.state == "Failed":
            pods = context.kube.list(PODS, namespace, selector=f"job-name={view.name}")
            view = view_job(job, pods)
        views.append(view)
    return views
