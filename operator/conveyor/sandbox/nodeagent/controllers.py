"""The Job and Deployment controllers' I/O: read the caches, apply a pure plan, write status."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes.client.rest import ApiException

from .deployments import build_deployment_pod, plan_deployment, template_hash
from .informers import Key, Store, object_key
from .jobs import JobHistory, build_job_pod, plan_job
from .kube import DEPLOYMENTS, JOBS, PODS, Kube, Resource
from .timefmt import random_suffix

__all__ = ["DeploymentController", "JobController", "collect_orphans", "owned_pods"]

logger = logging.getLogger(__name__)

Requeue = Callable[[Key, float], None]


def owned_pods(pods: Store, owner: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Pods whose controller ownerReference points at ``owner`` (by uid)."""
    uid = owner["metadata"]["uid"]
    namespace = owner["metadata"].get("namespace", "default")
    return [
        pod
        for pod in pods.items()
        if pod["metadata"].get("namespace", "default") == namespace
        and any(ref.get("uid") == uid for ref in pod["metadata"].get("ownerReferences") or [])
    ]


def _create_pod(kube: Kube, pods: Store, build: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """Create a pod from ``build(suffix)``, with a new random suffix on a name collision."""
    for _ in range(5):
        manifest = build(random_suffix())
        try:
            created = kube.create(PODS, manifest["metadata"]["namespace"], manifest)
        except ApiException as error:
            if error.status == 409:
                continue
            raise
        pods.upsert(created)
        return created
    raise RuntimeError(f"Could not find a free pod name for {manifest['metadata']['name']}")


def _delete_pod(kube: Kube, pods: Store, pod: Mapping[str, Any]) -> None:
    pods.remove(pod)
    kube.delete(PODS, *object_key(pod))


def collect_orphans(kube: Kube, pods: Store, owner: Resource, key: Key) -> None:
    """Delete pods whose controller (an ``owner`` named ``key``) no longer exists: a pod created
    while its owner was being deleted escapes the API server's garbage collection."""
    namespace, name = key
    suspects = [
        pod
        for pod in pods.items()
        if pod["metadata"].get("namespace", "default") == namespace
        and any(
            r.get("controller") and r.get("kind") == owner.kind and r.get("name") == name
            for r in pod["metadata"].get("ownerReferences") or []
        )
    ]
    if not suspects:
        return
    current = kube.get(owner, namespace, name)  # ask the API: the cache may just be behind
    uid = current["metadata"].get("uid") if current else None
    for pod in suspects:
        if not any(r.get("uid") == uid for r in pod["metadata"].get("ownerReferences") or []):
            logger.info(
                "Deleting pod %s/%s: its %s %s is gone",
                namespace,
                pod["metadata"]["name"],
                owner.kind,
                name,
            )
            _delete_pod(kube, pods, pod)


def _without_empty_conditions(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if not (k == "conditions" and not v)}


class JobController:
    """batch/v1 Job: pods from the template, retries, deadline, suspension, status."""

    component = "job-controller"

    def __init__(self, kube: Kube, jobs: Store, pods: Store, requeue: Requeue) -> None:
        self._kube, self._jobs, self._pods, self._requeue = kube, jobs, pods, requeue
        self._histories: dict[str, JobHistory] = {}

    def sync(self, key: Key) -> None:
        job = self._jobs.get(key)
        if job is None:
            collect_orphans(self._kube, self._pods, JOBS, key)
            return
        uid = job["metadata"]["uid"]
        now = time.time()
        pods = owned_pods(self._pods, job)
        history = self._histories.setdefault(uid, JobHistory())
        history.record(pods, now, (job.get("spec") or {}).get("podFailurePolicy"))
        plan = plan_job(job, pods, history, now)
        failing = any(
            c.get("type") == "Failed" and c.get("status") == "True"
            for c in plan.status.get("conditions") or []
        ) and not any(
            c.get("type") == "Failed" for c in (job.get("status") or {}).get("conditions") or []
        )
        for pod in plan.delete:
            _delete_pod(self._kube, self._pods, pod)
            deleted = pod["metadata"]["name"]
            self._event(job, "Normal", "SuccessfulDelete", f"Deleted pod: {deleted}")
        if failing:
            history.record_killed([p["metadata"]["uid"] for p in plan.delete], now)
            plan.status["failed"] = max(int(plan.status.get("failed", 0)), len(history.failed))
        for index in plan.create:

            def build(suffix: str, i: int | None = index) -> dict[str, Any]:
                return build_job_pod(job, i, suffix)

            created = _create_pod(self._kube, self._pods, build)
            self._event(
                job, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}"
            )
        status = _without_empty_conditions(plan.status)
        if status != (job.get("status") or {}):
            updated = self._kube.patch(JOBS, *key, {"status": status}, status=True)
            if updated is not None:
                self._jobs.upsert(updated)
        for event_type, reason, message in plan.events:
            self._event(job, event_type, reason, message)
        if plan.requeue_after is not None:
            self._requeue(key, plan.requeue_after)

    def forget(self, job: Mapping[str, Any]) -> None:
        self._histories.pop(job["metadata"].get("uid", ""), None)

    def _event(self, job: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
        self._kube.post_event(job, event_type, reason, message, self.component)


class DeploymentController:
    """apps/v1 Deployment: replicas, rolling updates, replacement of finished pods, status."""

    component = "deployment-controller"

    def __init__(self, kube: Kube, deployments: Store, pods: Store, requeue: Requeue) -> None:
        self._kube, self._deployments, self._pods = kube, deployments, pods
        self._requeue = requeue

    def sync(self, key: Key) -> None:
        deployment = self._deployments.get(key)
        if deployment is None:
            collect_orphans(self._kube, self._pods, DEPLOYMENTS, key)
            return
        now = time.time()
        plan = plan_deployment(deployment, owned_pods(self._pods, deployment), now)
        pod_hash = template_hash((deployment.get("spec") or {}).get("template") or {})
        for pod in plan.delete:
            _delete_pod(self._kube, self._pods, pod)
            self._event(deployment, "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}")
        for _ in range(plan.create):
            created = _create_pod(
                self._kube,
                self._pods,
                lambda suffix: build_deployment_pod(deployment, pod_hash, suffix),
            )
            self._event(
                deployment, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}"
            )
        if plan.create or plan.delete:
            # Recompute from what now exists, so the status counts the pods just changed.
            plan.status = plan_deployment(
                deployment, owned_pods(self._pods, deployment), now
            ).status
        if plan.status != (deployment.get("status") or {}):
            updated = self._kube.patch(DEPLOYMENTS, *key, {"status": plan.status}, status=True)
            if updated is not None:
                self._deployments.upsert(updated)
        if plan.requeue_after is not None:
            self._requeue(key, plan.requeue_after)

    def _event(self, deployment: Mapping[str, Any], reason: str, message: str) -> None:
        self._kube.post_event(deployment, "Normal", reason, message, self.component)
