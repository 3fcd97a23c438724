"""Container ports mapped to free host ports."""

import json
import socket

from conveyor.sandbox.nodeagent.ports import (
    PORTS_ANNOTATION,
    allocate_free_port,
    find_host_port,
    port_env,
)


def test_port_variables_are_named_after_the_port():
    assert port_env({"http": 41234, "metrics-port": 41235, "8080": 41236}) == {
        "CONVEYOR_PORT_HTTP": "41234",
        "CONVEYOR_PORT_METRICS_PORT": "41235",
        "CONVEYOR_PORT_8080": "41236",
    }


def test_an_allocated_port_can_be_listened_on():
    port = allocate_free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_target_ports_resolve_by_name_or_number():
    pod = {
        "metadata": {"annotations": {PORTS_ANNOTATION: json.dumps({"http": 40001, "9090": 40002})}},
        "spec": {
            "containers": [
                {
                    "ports": [
                        {"name": "http", "containerPort": 8080},
                        {"containerPort": 9090},
                    ]
                }
            ]
        },
    }
    assert find_host_port(pod, "http") == 40001
    assert find_host_port(pod, 8080) == 40001
    assert find_host_port(pod, 9090) == 40002
    assert find_host_port(pod, "grpc") is None
    assert find_host_port(pod, 7000) == 7000  # undeclared: the process listens there itself
