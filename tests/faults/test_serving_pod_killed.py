"""A serving pod SIGKILLed while a steady stream of predictions goes through the Service (two
replicas): only the requests that pod had in flight fail, and the Deployment heals — two
ready replicas again, the killed pod's container restarted."""

from __future__ import annotations

import threading
import time
import urllib.error
from dataclasses import dataclass, field

from kubernetes.client import ApiClient, AppsV1Api, CoreV1Api

from conveyor.contracts.labels import LABEL_COMPONENT
from conveyor.sandbox.stack import Sandbox
from tests.faults.conftest import Figure
from tests.faults.pods import kill
from tests.integration.conftest import Resources, example, wait_for
from tests.integration.test_serving import ROWS, _post, _url, _wait_served
from tests.integration.test_training import _pipeline, _wait_run

CONCURRENCY = 4
"""Clients sending without pause, each request on a connection of its own: at most this many
requests are in flight at any moment, so at most this many can be on the killed pod."""
DYING_SECONDS = 1.0
"""A SIGKILLed process holds its listening socket until the kernel has torn down its memory
(tens of milliseconds for a server with a model loaded): connections the Service sends it in
that moment are accepted, then reset. Requests sent later must all be answered."""


@dataclass
class Traffic:
    url: str
    answered: list[float] = field(default_factory=list)
    failed: list[tuple[float, str]] = field(default_factory=list)
    """When the failed request was sent, and why it failed."""
    stop: threading.Event = field(default_factory=threading.Event)

    def client(self) -> None:
        while not self.stop.is_set():
            sent = time.monotonic()
            try:
                status, answer = _post(self.url, ROWS, timeout=10)
            except (OSError, urllib.error.URLError, ValueError) as error:
                self.failed.append((sent, f"{type(error).__name__}: {error}"))
                continue
            if status == 200:
                self.answered.append(sent)
            else:
                self.failed.append((sent, f"{status}: {answer}"))


def test_a_serving_pod_killed_under_traffic_fails_only_its_requests_in_flight(
    sandbox: Sandbox, resources: Resources, client: ApiClient, figure: Figure
) -> None:
    namespace = resources.namespace
    resources.create("featuresets", example("iris", "featureset.yaml"))
    pipeline = _pipeline("iris")
    assert pipeline["spec"]["serving"]["replicas"] == 2
    resources.create("trainingpipelines", pipeline)
    assert _wait_run(resources, "iris")["phase"] == "Succeeded"
    _wait_served(resources, "iris-classifier-v1")
    traffic = Traffic(f"{_url(client, namespace)}/predict")
    clients = [threading.Thread(target=traffic.client, daemon=True) for _ in range(CONCURRENCY)]
    for thread in clients:
        thread.start()
    try:
        wait_for(lambda: len(traffic.answered) >= 100, what="the traffic to be answered")
        victim = next(
            p
            for p in CoreV1Api(client)
            .list_namespaced_pod(namespace, label_selector=f"{LABEL_COMPONENT}=serving")
            .items
            if p.status.phase == "Running"
        )
        before = len(traffic.answered)
        killed = time.monotonic()
        kill(sandbox, namespace, victim.metadata.name)

        def healed() -> bool:
            pod = CoreV1Api(client).read_namespaced_pod(victim.metadata.name, namespace)
            restarted = all(s.restart_count >= 1 and s.ready for s in pod.status.container_statuses)
            deployment = AppsV1Api(client).read_namespaced_deployment("iris-classifier", namespace)
            return restarted and deployment.status.ready_replicas == 2

        wait_for(healed, timeout=60, what="the Deployment to have 2 ready replicas again")
        heal = time.monotonic() - killed
        after = len(traffic.answered)
        wait_for(lambda: len(traffic.answered) >= after + 100, what="answers after the heal")
    finally:
        traffic.stop.set()
        for thread in clients:
            thread.join(timeout=15)
    in_flight = [why for sent, why in traffic.failed if sent < killed]
    dying = [sent - killed for sent, _ in traffic.failed if sent >= killed]
    assert len(in_flight) <= CONCURRENCY, traffic.failed
    assert all(delay < DYING_SECONDS for delay in dying), traffic.failed
    assert all("RemoteDisconnected" in why or "reset" in why for _, why in traffic.failed), (
        traffic.failed
    )
    assert len(traffic.answered) > before + 200
    total = len(traffic.answered) + len(traffic.failed)
    figure(
        f"serving pod SIGKILLed under {CONCURRENCY} concurrent clients (2 replicas): "
        f"{len(traffic.failed)} of {total} requests failed — {len(in_flight)} in flight at the "
        f"kill (at most {CONCURRENCY}), {len(dying)} sent to it in the first "
        f"{max(dying, default=0) * 1000:.0f} ms, before its socket closed, none after; healed "
        f"(2 ready replicas, its container restarted) in {heal:.1f} s"
    )
