"""Pods of a namespace as a test of faults needs them: find one, wait for a line in its log,
kill it through the node agent."""

from __future__ import annotations

import time
from typing import Any

from kubernetes.client import ApiClient, ApiException, BatchV1Api, CoreV1Api

from conveyor.sandbox.stack import Sandbox
from tests.integration.conftest import wait_for


def pods(client: ApiClient, namespace: str, selector: str) -> list[Any]:
    return list(CoreV1Api(client).list_namespaced_pod(namespace, label_selector=selector).items)


def running_pod(client: ApiClient, namespace: str, selector: str, timeout: float = 60) -> Any:
    """The first pod matching `selector` whose containers run."""

    def probe() -> Any:
        for pod in pods(client, namespace, selector):
            statuses = pod.status.container_statuses or []
            if statuses and all(s.state.running for s in statuses):
                return pod
        return None

    return wait_for(probe, timeout=timeout, what=f"a running pod {selector} in {namespace}")


def wait_log(client: ApiClient, namespace: str, pod: str, text: str, timeout: float = 60) -> float:
    """Until the pod's log holds `text`; the seconds since the pod started."""

    def probe() -> bool:
        try:
            return text in CoreV1Api(client).read_namespaced_pod_log(pod, namespace)
        except ApiException:
            return False

    wait_for(probe, timeout=timeout, what=f"{text!r} in the log of {namespace}/{pod}")
    body = CoreV1Api(client).read_namespaced_pod(pod, namespace)
    started = body.status.container_statuses[0].state.running.started_at
    return time.time() - started.timestamp()


def kill(sandbox: Sandbox, namespace: str, pod: str) -> list[int]:
    """SIGKILL the pod's processes now; fails the test when none ran."""
    assert sandbox.node_agent is not None
    pids = sandbox.node_agent.kill_pod(namespace, pod)
    assert pids, f"{namespace}/{pod} had no running process to kill"
    return pids


def job(client: ApiClient, namespace: str, name: str) -> Any:
    return BatchV1Api(client).read_namespaced_job(name, namespace)


def terminated(client: ApiClient, namespace: str, pod: str) -> Any:
    """The terminated state of the pod's first container, once the kubelet reported it."""

    def probe() -> Any:
        try:
            body = CoreV1Api(client).read_namespaced_pod(pod, namespace)
        except ApiException:
            return None
        statuses = body.status.container_statuses or []
        return statuses[0].state.terminated if statuses else None

    return wait_for(probe, timeout=30, what=f"{namespace}/{pod} to terminate")
