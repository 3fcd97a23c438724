"""Starting and stopping the agent: nothing may outlive it."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import kubernetes
import pytest

from conveyor.sandbox.apiserver import ApiServerThread, write_kubeconfig
from conveyor.sandbox.nodeagent import NodeAgent

from .conftest import IMAGE, Cluster, wait_for

pytestmark = pytest.mark.integration

SLEEPER = (
    "import os, socket, subprocess, sys, time\n"
    "sock = socket.socket(); sock.bind(('127.0.0.1', int(os.environ['CONVEYOR_PORT_HTTP'])))\n"
    "sock.listen()\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
    "import signal; signal.signal(signal.SIGTERM, lambda *_: None)  # ignores SIGTERM\n"
    "time.sleep(300)\n"
)


def alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_stop_leaves_no_process_and_no_bound_port(tmp_path: Path) -> None:
    with ApiServerThread(log_dir=tmp_path / "logs") as api:
        write_kubeconfig(tmp_path / "kubeconfig", api.url)
        client = kubernetes.config.new_client_from_config(config_file=str(tmp_path / "kubeconfig"))
        cluster = Cluster(client, tmp_path / "logs")
        agent = NodeAgent(
            client,
            image=IMAGE,
            state_dir=tmp_path / "state",
            log_dir=tmp_path / "logs",
            command_map={"pyrun": [sys.executable, "-c"]},
        )
        agent.start()
        agent.wait_synced()
        cluster.apps.create_namespaced_deployment(
            "default",
            {
                "metadata": {"name": "stubborn"},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": "stubborn"}},
                    "template": {
                        "metadata": {"labels": {"app": "stubborn"}},
                        "spec": {
                            "containers": [
                                {
                                    "name": "main",
                                    "image": IMAGE,
                                    "command": ["pyrun"],
                                    "args": [SLEEPER],
                                    "ports": [{"name": "http", "containerPort": 80}],
                                }
                            ]
                        },
                    },
                },
            },
        )
        cluster.core.create_namespaced_service(
            "default",
            {
                "metadata": {"name": "stubborn"},
                "spec": {
                    "selector": {"app": "stubborn"},
                    "ports": [{"port": 80, "targetPort": "http"}],
                },
            },
        )
        pods = wait_for(
            lambda: (
                len(
                    running := [
                        p
                        for p in cluster.pods("default", "app=stubborn")
                        if p["status"].get("phase") == "Running"
                    ]
                )
                == 2
                and running
            )
        )
        pids = [
            int(p["status"]["containerStatuses"][0]["containerID"].split("://")[1]) for p in pods
        ]
        ports = [
            json.loads(p["metadata"]["annotations"]["sandbox.conveyor.dev/ports"])["http"]
            for p in pods
        ]
        url = wait_for(
            lambda: (
                cluster.service("default", "stubborn")["metadata"].get("annotations") or {}
            ).get("sandbox.conveyor.dev/url")
        )
        proxy_port = int(url.rsplit(":", 1)[1])
        groups = [os.getpgid(pid) for pid in pids]
        assert all(alive(pid) for pid in pids) and not bindable(proxy_port)

        agent.stop()
        agent.stop()  # idempotent
        client.close()

    assert not any(alive(pid) for pid in pids)
    leftovers = [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and alive(int(entry.name)) and _group(entry) in groups
    ]
    assert leftovers == []
    assert all(bindable(port) for port in [*ports, proxy_port])


def _group(entry: Path) -> int | None:
    try:
        return int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None
