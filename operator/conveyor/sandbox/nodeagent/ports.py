"""Host ports for container ports: processes share the host network, so every declared
``containerPort`` is given a free port on 127.0.0.1 and told about it through the environment."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "PORTS_ANNOTATION",
    "allocate_free_port",
    "find_host_port",
    "port_env",
    "port_env_name",
    "port_key",
    "read_ports_annotation",
]

PORTS_ANNOTATION = "sandbox.conveyor.dev/ports"


def allocate_free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_key(port: Mapping[str, Any]) -> str:
    """The key of a container port in the ports annotation: its name, else its number."""
    return str(port.get("name") or port["containerPort"])


def port_env_name(key: str) -> str:
    """``http`` → ``CONVEYOR_PORT_HTTP``; ``metrics-port`` → ``CONVEYOR_PORT_METRICS_PORT``."""
    return "CONVEYOR_PORT_" + key.upper().replace("-", "_").replace(".", "_")


def port_env(mapping: Mapping[str, int]) -> dict[str, str]:
    """The ``CONVEYOR_PORT_*`` variables a container sees for its allocated ports."""
    return {port_env_name(key): str(host_port) for key, host_port in mapping.items()}


def read_ports_annotation(pod: Mapping[str, Any]) -> dict[str, int]:
    """The port mapping the agent recorded on a pod (empty when none or unreadable)."""
    raw = (pod.get("metadata", {}).get("annotations") or {}).get(PORTS_ANNOTATION)
    if not raw:
        return {}
    try:
        decoded = json.loads(raw)
    except ValueError:
        return {}
    return {str(k): int(v) for k, v in decoded.items()} if isinstance(decoded, dict) else {}


def find_host_port(
    pod: Mapping[str, Any], target: int | str, containers: Iterable[Mapping[str, Any]] | None = None
) -> int | None:
    """The host port behind a pod's port ``target`` (a port name or a container port number).

    A number that no container declares is returned as-is: the process then listens on that very
    port of the host, which is the only place it can be."""
    mapping = read_ports_annotation(pod)
    if isinstance(target, str) and not target.isdigit():
        return mapping.get(target)
    number = int(target)
    if containers is None:
        containers = pod.get("spec", {}).get("containers") or []
    for container in containers:
        for port in container.get("ports") or []:
            if int(port.get("containerPort", -1)) == number:
                return mapping.get(port_key(port))
    return number
