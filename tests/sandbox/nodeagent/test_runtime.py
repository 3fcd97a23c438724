"""A container as a real local process: exit codes, logs, restarts, limits, probes."""

import time
from pathlib import Path

import pytest

from conveyor.sandbox.nodeagent.podstatus import pod_phase
from conveyor.sandbox.nodeagent.ports import PORTS_ANNOTATION

from .conftest import make, run_until


def test_a_successful_process_completes_and_logs(tmp_path):
    runtime, events = make(tmp_path, "print('hello from the pod')")
    run_until(runtime, lambda r: r.final)
    assert runtime.state["terminated"]["reason"] == "Completed"
    assert runtime.state["terminated"]["exitCode"] == 0
    assert "hello from the pod" in (tmp_path / "logs" / "main.log").read_text()
    assert [e[1] for e in events] == ["Pulled", "Created", "Started"]
    assert pod_phase([runtime.view()]) == "Succeeded"


def test_a_failure_reports_the_log_tail_as_message(tmp_path):
    script = "import sys; print('x' * 3000); print('bad column: petal_width'); sys.exit(3)"
    runtime, _ = make(tmp_path, script, terminationMessagePolicy="FallbackToLogsOnError")
    run_until(runtime, lambda r: r.final)
    terminated = runtime.state["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
    assert terminated["message"].endswith("bad column: petal_width\n")
    assert len(terminated["message"].encode()) <= 2048
    assert pod_phase([runtime.view()]) == "Failed"


def test_on_failure_restarts_with_back_off_until_success(tmp_path):
    script = (
        "import os, sys; marker = os.path.join(os.environ['HOME'], 'tried');\n"
        "first = not os.path.exists(marker); open(marker, 'w').close(); sys.exit(1 if first else 0)"
    )
    runtime, events = make(
        tmp_path, script, policy="OnFailure", env=[{"name": "HOME", "value": str(tmp_path)}]
    )
    run_until(runtime, lambda r: r.final)
    assert runtime.restart_count == 1
    assert runtime.last_state["terminated"]["exitCode"] == 1
    assert "BackOff" in [e[1] for e in events]


def test_a_memory_limit_is_reported_as_oom_killed(tmp_path):
    script = "blob = bytearray(400 * 1024 * 1024); print(len(blob))"
    runtime, _ = make(
        tmp_path,
        script,
        resources={"limits": {"memory": "150Mi"}},
        terminationMessagePolicy="FallbackToLogsOnError",
    )
    run_until(runtime, lambda r: r.final)
    terminated = runtime.state["terminated"]
    assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137)
    assert "MemoryError" in terminated["message"]


def test_a_missing_secret_leaves_the_container_waiting(tmp_path):
    env = [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k"}}}]
    runtime, events = make(tmp_path, "print(1)", env=env)
    runtime.step(time.time())
    waiting = runtime.state["waiting"]
    assert waiting["reason"] == "CreateContainerConfigError"
    assert waiting["message"] == 'secret "creds" not found'
    assert events == [("Warning", "Failed", 'Error: secret "creds" not found')]
    assert pod_phase([runtime.view()]) == "Pending"


def test_an_unknown_executable_is_a_start_error(tmp_path):
    runtime, _ = make(tmp_path, "", command=["no-such-binary-here"], args=[])
    run_until(runtime, lambda r: r.final)
    assert runtime.state["terminated"]["reason"] == "StartError"
    assert "no-such-binary-here" in runtime.state["terminated"]["message"]


def test_readiness_follows_an_http_probe(tmp_path):
    from conveyor.sandbox.nodeagent.ports import allocate_free_port

    port = allocate_free_port()
    script = (
        "import http.server, os, time; time.sleep(0.3);\n"
        "http.server.HTTPServer(('127.0.0.1', int(os.environ['PORT'])),"
        " http.server.SimpleHTTPRequestHandler).serve_forever()"
    )
    runtime, _ = make(
        tmp_path,
        script,
        policy="Always",
        pod_extra={"annotations": {PORTS_ANNOTATION: f'{{"http": {port}}}'}},
        ports=[{"name": "http", "containerPort": 8080}],
        env=[{"name": "PORT", "value": str(port)}],
        readinessProbe={"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
    )
    try:
        runtime.step(time.time())
        assert "running" in runtime.state and not runtime.ready
        run_until(runtime, lambda r: r.ready)
    finally:
        runtime.stop(1)
    assert runtime.process is None


@pytest.mark.parametrize("grace", [0.2])
def test_stop_terminates_the_whole_process_group(tmp_path, grace):
    script = (
        "import subprocess, sys, time;\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    )
    runtime, _ = make(tmp_path, script)
    runtime.step(time.time())
    pid = runtime.process.pid
    time.sleep(0.3)
    runtime.stop(grace)
    time.sleep(0.1)
    assert living_members(pid) == []


def living_members(group):
    """Processes of a process group that are not zombies (PID 1 may be slow to reap those)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def test_a_failing_liveness_probe_restarts_the_container(tmp_path):
    from conveyor.sandbox.nodeagent.ports import allocate_free_port

    closed = allocate_free_port()
    runtime, events = make(
        tmp_path,
        "import time; time.sleep(60)",
        policy="Always",
        livenessProbe={"tcpSocket": {"port": closed}, "periodSeconds": 1, "failureThreshold": 1},
    )
    try:
        run_until(runtime, lambda r: r.restart_count == 1)
    finally:
        runtime.stop(0)
    assert runtime.last_state["terminated"]["exitCode"] == 143  # SIGTERM
    assert "Liveness probe failed" in " ".join(e[2] for e in events)


def test_an_exec_readiness_probe_runs_the_mapped_command(tmp_path):
    runtime, _ = make(
        tmp_path,
        "import time; time.sleep(60)",
        policy="Always",
        env=[{"name": "READY_FILE", "value": str(tmp_path / "ready")}],
        readinessProbe={
            "exec": {
                "command": [
                    "pyrun",
                    "import os, sys; sys.exit(not os.path.exists(os.environ['READY_FILE']))",
                ]
            },
            "periodSeconds": 1,
        },
    )
    try:
        runtime.step(time.time())
        time.sleep(0.3)
        runtime.step(time.time())
        assert not runtime.ready
        (tmp_path / "ready").touch()
        run_until(runtime, lambda r: r.ready)
    finally:
        runtime.stop(0)


def test_a_startup_probe_holds_readiness_and_liveness_until_it_passes(tmp_path):
    from conveyor.sandbox.nodeagent.ports import allocate_free_port

    port = allocate_free_port()
    # Listens only after a slow start (a download): the liveness probe, with one allowed
    # failure, would kill it at once if it ran before the startup probe passed.
    script = (
        "import http.server, os, time; time.sleep(1.5);\n"
        "http.server.HTTPServer(('127.0.0.1', int(os.environ['PORT'])),"
        " http.server.SimpleHTTPRequestHandler).serve_forever()"
    )
    probe = {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1}
    runtime, events = make(
        tmp_path,
        script,
        policy="Always",
        pod_extra={"annotations": {PORTS_ANNOTATION: f'{{"http": {port}}}'}},
        ports=[{"name": "http", "containerPort": 8080}],
        env=[{"name": "PORT", "value": str(port)}],
        startupProbe={**probe, "failureThreshold": 10},
        livenessProbe={**probe, "failureThreshold": 1},
        readinessProbe=probe,
    )
    try:
        runtime.step(time.time())
        assert not runtime.view().as_status()["started"]
        run_until(runtime, lambda r: r.ready)
        assert runtime.view().as_status()["started"] and runtime.restart_count == 0
    finally:
        runtime.stop(1)
    assert not any("Liveness probe failed" in e[2] for e in events)


def test_a_start_that_never_succeeds_is_restarted_after_the_startup_budget(tmp_path):
    from conveyor.sandbox.nodeagent.ports import allocate_free_port

    closed = allocate_free_port()
    runtime, events = make(
        tmp_path,
        "import time; time.sleep(60)",
        policy="Always",
        startupProbe={"tcpSocket": {"port": closed}, "periodSeconds": 1, "failureThreshold": 2},
    )
    started = time.time()
    try:
        run_until(runtime, lambda r: r.restart_count == 1)
    finally:
        runtime.stop(0)
    # Probed every 0.25 s while failing, but given failureThreshold x periodSeconds of time.
    assert time.time() - started >= 2
    assert "Startup probe failed" in " ".join(e[2] for e in events)
