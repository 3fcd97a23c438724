"""The node agent: informers, work queues and the kubelet/Job/Deployment/Service controllers,
all in threads of the calling process."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import kubernetes

from .containers import object_data
from .controllers import DeploymentController, JobController
from .informers import Informer, Key, Store, WorkQueue, object_key
from .kube import CONFIGMAPS, DEPLOYMENTS, JOBS, PODS, SECRETS, SERVICES, Kube
from .kubelet import Kubelet, KubeletSettings
from .services import ProxyHub, ServiceController

__all__ = ["NodeAgent"]

logger = logging.getLogger(__name__)

_RESYNC_SECONDS = 2.0
_RETRY_SECONDS = 0.5
_STOP_GRACE = 2.0  # seconds processes get to exit when the agent stops


class NodeAgent:
    """Makes Jobs, Deployments, Pods and Services of a sandbox API do something, as the
    kubelet and the controllers of a cluster would (see the package docstring)."""

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        *,
        image: str,
        state_dir: Path,
        log_dir: Path,
        python: str = sys.executable,
        extra_env: Mapping[str, str] | None = None,
        command_map: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self._kube = Kube(api_client)
        mapping = {"conveyor": [python, "-m", "conveyor"]}
        mapping.update({k: list(v) for k, v in (command_map or {}).items()})
        self._settings = KubeletSettings(
            image=image,
            state_dir=Path(state_dir),
            log_dir=Path(log_dir),
            extra_env=dict(extra_env or {}),
            command_map=mapping,
        )
        self._threads: list[threading.Thread] = []
        self._informers: list[Informer] = []
        self._queues: list[WorkQueue] = []
        self._stopping = threading.Event()
        self._hub = ProxyHub()
        self._started = False
        self._stopped = False

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start watching and reconciling in background threads; returns at once."""
        if self._started:
            return
        self._started = True
        kube = self._kube
        self.pods, self.jobs = Store(PODS), Store(JOBS)
        self.deployments, self.services = Store(DEPLOYMENTS), Store(SERVICES)
        pod_queue, job_queue, deployment_queue, service_queue = (WorkQueue() for _ in range(4))
        self._queues = [pod_queue, job_queue, deployment_queue, service_queue]
        self._hub.start()
        self.kubelet = Kubelet(kube, self._settings, self._lookup, self.pods.upsert)
        jobs = JobController(kube, self.jobs, self.pods, job_queue.add_after)
        deployments = DeploymentController(
            kube, self.deployments, self.pods, deployment_queue.add_after
        )
        services = ServiceController(kube, self.services, self.pods, self._hub)

        def on_pod(_: str, pod: dict[str, Any]) -> None:
            pod_queue.add(object_key(pod))
            for ref in pod["metadata"].get("ownerReferences") or []:
                owner = (pod["metadata"].get("namespace", "default"), ref.get("name", ""))
                if ref.get("kind") == "Job":
                    job_queue.add(owner)
                elif ref.get("kind") == "Deployment":
                    deployment_queue.add(owner)

        def on_job(kind: str, job: dict[str, Any]) -> None:
            if kind == "DELETED":
                jobs.forget(job)
            job_queue.add(object_key(job))

        self._informers = [
            Informer(kube, self.pods, on_pod),
            Informer(kube, self.jobs, on_job),
            Informer(kube, self.deployments, lambda _, d: deployment_queue.add(object_key(d))),
            Informer(kube, self.services, lambda _, s: service_queue.add(object_key(s))),
        ]
        for informer in self._informers:
            informer.start()
        self._worker("kubelet", pod_queue, lambda key: self.kubelet.sync(key, self.pods.get(key)))
        self._worker("jobs", job_queue, jobs.sync)
        self._worker("deployments", deployment_queue, deployments.sync)
        self._worker("services", service_queue, services.sync)
        resync = threading.Thread(target=self._resync, name="resync", daemon=True)
        resync.start()
        self._threads.append(resync)

    def stop(self) -> None:
        """Kill every process the agent started, close proxies and watches. Idempotent."""
        if self._stopped or not self._started:
            if not self._started:
                self._hub.stop()
            self._stopped = True
            return
        self._stopped = True
        self._stopping.set()
        for queue in self._queues:
            queue.close()
        for thread in self._threads:
            thread.join(timeout=15)
        for informer in self._informers:
            informer.stop()
        self.kubelet.stop_all(_STOP_GRACE)
        self._hub.stop()

    def kill_pod(self, namespace: str, name: str, signum: int = signal.SIGKILL) -> list[int]:
        """SIGKILL (or `signum`) one pod's running containers at once, as a crash or the OOM
        killer would (tests of faults); the pids signalled, empty when none runs."""
        return self.kubelet.signal((namespace, name), signum)

    def wait_synced(self, timeout: float = 10.0) -> bool:
        """Block until every watch has listed once (for tests and the sandbox launcher)."""
        return all(informer.synced.wait(timeout) for informer in self._informers)

    def __enter__(self) -> NodeAgent:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals ---------------------------------------------------------------------------
    def _lookup(self, kind: str, namespace: str, name: str) -> Mapping[str, str] | None:
        resource = SECRETS if kind == "Secret" else CONFIGMAPS
        obj = self._kube.get(resource, namespace, name)
        return None if obj is None else object_data(kind, obj)

    def _worker(self, name: str, queue: WorkQueue, sync: Callable[[Key], None]) -> None:
        def run() -> None:
            while (key := queue.get()) is not None:
                try:
                    sync(key)
                except Exception as error:
                    if self._stopping.is_set():
                        return
                    logger.warning("Sync of %s %s/%s failed, retrying: %s", name, *key, error)
                    queue.add_after(key, _RETRY_SECONDS)

        thread = threading.Thread(target=run, name=f"sync-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _resync(self) -> None:
        """Level-based safety net: reconcile everything every few seconds."""
        pod_queue, job_queue, deployment_queue, service_queue = self._queues
        while not self._stopping.wait(_RESYNC_SECONDS):
            for key in {*self.pods.known_keys(), *self.kubelet.pod_keys()}:
                pod_queue.add(key)
            for key in self.jobs.known_keys():
                job_queue.add(key)
            for key in self.deployments.known_keys():
                deployment_queue.add(key)
            for key in self.services.known_keys():
                service_queue.add(key)
