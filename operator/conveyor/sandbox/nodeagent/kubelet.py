"""The kubelet: one worker thread per pod bound to this node runs its containers and reports
the pod's status through ``/status``. Pods whose image is not the Conveyor image stay Pending
with reason ``ImageNotSupportedInSandbox``. Each pod gets a directory,
``<state_dir>/pods/<namespace>/<pod>``: HOME and the default working directory, with ``tmp/``
(TMPDIR), ``volumes/<name>/`` (emptyDir volumes) and ``termination/<container>``, the
termination-message file a kubelet would mount at ``terminationMessagePath``, named by
``$TERMINATION_MESSAGE_PATH`` and read as the kubelet reads it, ``terminationMessagePolicy``
included (see ``runtime``). Init containers, ephemeral containers, startup probes and lifecycle
hooks are not emulated."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .containers import ObjectLookup, image_matches
from .kube import NODE_NAME, PODS, Kube
from .podstatus import ContainerView, pod_status
from .ports import PORTS_ANNOTATION, allocate_free_port, port_env, port_key
from .runtime import ContainerRuntime, PodContext
from .timefmt import format_time

__all__ = ["Kubelet", "KubeletSettings", "PodWorker"]

logger = logging.getLogger(__name__)

_TICK = 0.05  # seconds between two looks at a pod's processes
_COMPONENT = "kubelet"


@dataclass(frozen=True)
class KubeletSettings:
    image: str
    state_dir: Path
    log_dir: Path
    extra_env: Mapping[str, str]
    command_map: Mapping[str, list[str]]


def is_bound_here(pod: Mapping[str, Any]) -> bool:
    return pod.get("spec", {}).get("nodeName") in (None, "", NODE_NAME)


class PodWorker:
    """Runs one pod from acceptance to its end (terminal phase or deletion)."""

    def __init__(
        self,
        pod: Mapping[str, Any],
        kube: Kube,
        settings: KubeletSettings,
        lookup: ObjectLookup,
        remember: Callable[[dict[str, Any]], object],
    ) -> None:
        self.pod = pod
        self.uid = str(pod["metadata"]["uid"])
        self._kube = kube
        self._settings = settings
        self._lookup = lookup
        self._remember = remember  # write-through into the agent's pod cache
        self._stop = threading.Event()
        self._grace = 30.0
        self._containers: list[ContainerRuntime] = []
        self._reported: dict[str, Any] = {}
        self._thread = threading.Thread(
            target=self._run, name=f"pod-{pod['metadata']['name']}", daemon=True
        )

    @property
    def namespace(self) -> str:
        return str(self.pod["metadata"].get("namespace", "default"))

    @property
    def name(self) -> str:
        return str(self.pod["metadata"]["name"])

    def start(self) -> None:
        self._thread.start()

    def stop(self, grace: float | None = None) -> None:
        """Ask the worker to kill the pod's processes (SIGTERM, SIGKILL after the grace)."""
        spec_grace = self.pod.get("spec", {}).get("terminationGracePeriodSeconds", 30)
        self._grace = min(float(spec_grace if grace is None else grace), 10.0)
        self._stop.set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def kill_now(self) -> None:
        """SIGKILL every process of the pod at once (the agent is going away)."""
        for container in self._containers:
            container.kill_now()

    def signal(self, signum: int) -> list[int]:
        """Send `signum` to the process group of each running container now (a fault: a crash,
        the OOM killer); the pids signalled. The worker sees the exits as any other."""
        signalled = []
        for container in self._containers:
            process = container.process
            if process is not None and process.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signum)
                    signalled.append(process.pid)
        return signalled

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def emit(self, event_type: str, reason: str, message: str) -> None:
        pod = {**self.pod, "kind": "Pod", "apiVersion": "v1"}
        self._kube.post_event(pod, event_type, reason, message, _COMPONENT)

    # -- the worker loop ---------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._accept()
            if self._unsupported_images():
                self._stop.wait()
                return
            self._loop()
        except Exception:
            logger.exception("Pod worker for %s/%s failed", self.namespace, self.name)
        finally:
            self._terminate()

    def _accept(self) -> None:
        """Bind the pod to this node, allocate host ports, prepare its directories."""
        specs = self.pod.get("spec", {}).get("containers") or []
        ports = {
            port_key(port): allocate_free_port()
            for container in specs
            for port in container.get("ports") or []
        }
        patch = {
            "metadata": {"annotations": {PORTS_ANNOTATION: json.dumps(ports)}},
            "spec": {"nodeName": NODE_NAME},
        }
        updated = self._kube.patch(PODS, self.namespace, self.name, patch)
        if updated is not None:
            self.pod = {**updated, "kind": "Pod", "apiVersion": "v1"}
            self._remember(self.pod)
        self.emit(
            "Normal",
            "Scheduled",
            f"Successfully assigned {self.namespace}/{self.name} to {NODE_NAME}",
        )
        workdir = self._settings.state_dir / "pods" / self.namespace / self.name
        shutil.rmtree(workdir, ignore_errors=True)
        (workdir / "tmp").mkdir(parents=True)
        for volume in self.pod.get("spec", {}).get("volumes") or []:
            if "emptyDir" in volume:
                (workdir / "volumes" / volume["name"]).mkdir(parents=True, exist_ok=True)
        base_env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(workdir),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "TMPDIR": str(workdir / "tmp"),
            "HOSTNAME": self.name,
            **self._settings.extra_env,
            **port_env(ports),
        }
        context = PodContext(
            pod=self.pod,
            workdir=workdir,
            log_dir=self._settings.log_dir / self.namespace / self.name,
            base_env=base_env,
            command_map=self._settings.command_map,
            lookup=self._lookup,
            emit=self.emit,
        )
        self._containers = [ContainerRuntime(spec, context) for spec in specs]
        self._start_time = format_time()

    def _unsupported_images(self) -> bool:
        """Report containers the sandbox cannot run; True when the pod must stay Pending."""
        image = self._settings.image
        foreign = [
            c for c in self._containers if not image_matches(str(c.spec.get("image", "")), image)
        ]
        if not foreign:
            return False
        views = []
        for container in self._containers:
            asked = str(container.spec.get("image", ""))
            message = (
                f'The sandbox runs only the Conveyor image "{image}"; container '
                f'"{container.name}" asks for "{asked}". Use the Conveyor image, or run this '
                "workload in a real cluster."
            )
            state = {"waiting": {"reason": "ImageNotSupportedInSandbox", "message": message}}
            if container in foreign:
                self.emit("Warning", "Failed", message)
            else:
                state = {"waiting": {"reason": "ContainerCreating"}}
            views.append(ContainerView(name=container.name, image=asked, state=state))
        self._report(views)
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            for container in self._containers:
                container.step(now)
            views = [c.view() for c in self._containers]
            status = self._report(views)
            if status.get("phase") in ("Succeeded", "Failed"):
                self._stop.wait()
                return
            self._stop.wait(_TICK)

    def _report(self, views: Sequence[ContainerView]) -> dict[str, Any]:
        status = pod_status(self._reported, views, self._start_time, time.time())
        if status != self._reported:
            updated = self._kube.patch(
                PODS, self.namespace, self.name, {"status": status}, status=True
            )
            self._reported = status
            if updated is None:
                self._stop.set()  # the pod is gone
            else:
                self._remember({**updated, "kind": "Pod", "apiVersion": "v1"})
        return status

    def _terminate(self) -> None:
        running = [c for c in self._containers if c.process is not None]
        for container in running:
            self.emit("Normal", "Killing", f"Stopping container {container.name}")
        stoppers = [
            threading.Thread(target=c.stop, args=(self._grace,), daemon=True) for c in running
        ]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()


class Kubelet:
    """Keeps one PodWorker per pod bound to this node; ``sync`` is level-based."""

    def __init__(
        self,
        kube: Kube,
        settings: KubeletSettings,
        lookup: ObjectLookup,
        remember: Callable[[dict[str, Any]], object],
    ) -> None:
        self._kube = kube
        self._settings = settings
        self._lookup = lookup
        self._remember = remember
        self._workers: dict[tuple[str, str], PodWorker] = {}
        self._retired: list[PodWorker] = []  # stopping after their pod went away
        self._lock = threading.Lock()

    def pod_keys(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._workers)

    def sync(self, key: tuple[str, str], pod: Mapping[str, Any] | None) -> None:
        """Make the worker for ``key`` match the pod: start, keep, or stop it."""
        with self._lock:
            worker = self._workers.get(key)
            wanted = (
                pod is not None
                and is_bound_here(pod)
                and not pod["metadata"].get("deletionTimestamp")
            )
            uid = pod["metadata"]["uid"] if pod is not None else None
            finished = pod is not None and pod.get("status", {}).get("phase") in (
                "Succeeded",
                "Failed",
            )
            crashed = worker is not None and not worker.alive and not finished  # retry it
            if worker is not None and (not wanted or worker.uid != uid or crashed):
                del self._workers[key]
                worker.stop()
                self._retired = [w for w in self._retired if w.alive] + [worker]
                worker = None
            if worker is None and wanted and pod is not None and not finished:
                worker = PodWorker(pod, self._kube, self._settings, self._lookup, self._remember)
                self._workers[key] = worker
                worker.start()

    def signal(self, key: tuple[str, str], signum: int) -> list[int]:
        """Signal the running containers of the pod `key` (namespace, name); the pids."""
        with self._lock:
            worker = self._workers.get(key)
        return worker.signal(signum) if worker is not None else []

    def stop_all(self, grace: float) -> None:
        with self._lock:
            workers = list(self._workers.values())
            retired, self._retired = self._retired, []
            self._workers.clear()
        for worker in workers:
            worker.stop(grace)
        for worker in retired:
            worker.kill_now()
        for worker in [*workers, *retired]:
            worker.join()
