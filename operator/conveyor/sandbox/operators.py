"""The operator's replicas in the sandbox: processes as a Deployment's pods would be.

Each replica is the unchanged `conveyor operator` with its own HTTP port, log file and pod
name (`POD_NAME`, its identity in the leader-election Lease), supervised like a pod: a crash
is restarted with back-off, and the restarted replica keeps its name, so it takes its own
Lease back at once, as a restarted container of the same pod does in a cluster. Replica 0
logs to `operator.log` and answers on the sandbox's operator URL (webhook, metrics).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from .processes import ManagedProcess, free_port
from .supervisor import Supervised

__all__ = ["OPERATOR_ARGV", "OperatorReplicas", "pod_name"]

OPERATOR_ARGV = (sys.executable, "-m", "conveyor", "operator")
READY = range(200, 300)
Supervise = Callable[[ManagedProcess, str, Callable[[ManagedProcess], None]], Supervised]


def pod_name(replica: int) -> str:
    return f"conveyor-operator-{replica}"


class OperatorReplicas:
    """`count` operator processes; `start()` returns once each serves /readyz (leading or
    standing by)."""

    def __init__(self, count: int, log_dir: Path, first_port: int) -> None:
        self.count = count
        self.log_dir = log_dir
        self.ports = [first_port, *(free_port() for _ in range(count - 1))]
        self.replicas: list[Supervised] = []

    def url(self, replica: int = 0) -> str:
        return f"http://127.0.0.1:{self.ports[replica]}"

    def log_file(self, replica: int = 0) -> Path:
        return self.log_dir / ("operator.log" if replica == 0 else f"operator-{replica}.log")

    def log_files(self) -> list[Path]:
        return [self.log_file(replica) for replica in range(self.count)]

    def start(self, env: Mapping[str, str], supervise: Supervise) -> None:
        for replica in range(self.count):
            process = ManagedProcess(
                OPERATOR_ARGV,
                env={
                    **env,
                    "CONVEYOR_PORT_HTTP": str(self.ports[replica]),
                    "POD_NAME": pod_name(replica),
                },
                log_file=self.log_file(replica),
                name="operator" if replica == 0 else f"operator-{replica}",
            )
            self.replicas.append(supervise(process, self.url(replica), self._await(replica)))

    def _await(self, replica: int) -> Callable[[ManagedProcess], None]:
        def ready(process: ManagedProcess) -> None:
            process.wait_http(f"{self.url(replica)}/readyz", timeout=60, expect_status=READY)

        return ready

    def stop(self) -> None:
        """Stop every replica (SIGTERM: a leader releases its Lease); none is restarted."""
        for supervised in self.replicas:
            supervised.stop()

    def start_again(self) -> None:
        """Start the replicas `stop()` stopped, and wait until each is ready."""
        for supervised in self.replicas:
            if not supervised.process.running:
                supervised.start()

    def kill(self, replica: int, *, restart: bool = True) -> int:
        """SIGKILL one replica, as a node losing the pod would; its pid. With `restart`, it is
        restarted as a crashed container is; without, it stays down (the pod is gone)."""
        supervised = self.replicas[replica]
        pid = supervised.process.pid
        assert pid is not None, f"operator replica {replica} is not running"
        if not restart:
            supervised.stop_watching()
        os.kill(pid, signal.SIGKILL)
        return pid

    def replica_of(self, identity: str) -> int | None:
        """The replica whose pod name is `identity` (a Lease's holder)."""
        names = [pod_name(replica) for replica in range(self.count)]
        return names.index(identity) if identity in names else None
