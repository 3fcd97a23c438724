"""Informers against the sandbox API: resume, 410 Gone, re-list; work queues."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import kubernetes
import pytest

from conveyor.sandbox.apiserver import ApiServerThread, write_kubeconfig
from conveyor.sandbox.nodeagent.informers import Informer, Store, WorkQueue
from conveyor.sandbox.nodeagent.kube import CONFIGMAPS, Kube

from .conftest import wait_for


@pytest.mark.integration
def test_an_informer_relists_after_410_gone_and_misses_nothing(tmp_path: Path) -> None:
    with ApiServerThread(event_log_size=5) as api:
        write_kubeconfig(tmp_path / "kubeconfig", api.url)
        client = kubernetes.config.new_client_from_config(config_file=str(tmp_path / "kubeconfig"))
        core = kubernetes.client.CoreV1Api(client)
        seen: list[tuple[str, str]] = []
        lock = threading.Lock()

        def handler(kind: str, obj: dict) -> None:
            with lock:
                seen.append((kind, obj["metadata"]["name"]))

        # Without bookmarks, a quiet watch resumes from its old version: 410 once it is trimmed.
        informer = Informer(
            Kube(client), Store(CONFIGMAPS), handler, watch_timeout=1, bookmarks=False
        )
        informer.start()
        try:
            assert informer.synced.wait(10)
            core.create_namespaced_config_map("default", {"metadata": {"name": "first"}})
            wait_for(lambda: ("ADDED", "first") in seen)
            for i in range(20):  # other kinds move the shared resourceVersion past the log
                core.create_namespaced_secret("default", {"metadata": {"name": f"s{i}"}})
            wait_for(lambda: informer.lists >= 2, timeout=10)  # the re-watch got 410: re-list
            core.delete_namespaced_config_map("first", "default")
            core.create_namespaced_config_map("default", {"metadata": {"name": "second"}})
            wait_for(lambda: informer.store.get(("default", "second")) is not None)
        finally:
            informer.stop()
            client.close()
    assert informer.store.get(("default", "first")) is None
    assert ("DELETED", "first") in seen


def test_a_work_queue_deduplicates_and_delays() -> None:
    queue = WorkQueue()
    queue.add(("ns", "a"))
    queue.add(("ns", "a"))
    queue.add_after(("ns", "b"), 0.2)
    started = time.monotonic()
    assert queue.get() == ("ns", "a")
    assert queue.get() == ("ns", "b")
    assert time.monotonic() - started >= 0.19
    queue.close()
    assert queue.get() is None
