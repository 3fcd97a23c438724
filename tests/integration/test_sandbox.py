"""`conveyor sandbox up` and `conveyor demo` as a person runs them: real processes throughout."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes
import pytest
import yaml
from kubernetes.client import BatchV1Api, CoreV1Api

from tests.apiaudit import check_operator_calls
from tests.conftest import ROOT
from tests.integration.conftest import wait_for

CONVEYOR = [sys.executable, "-m", "conveyor"]


def _port_free(url: str) -> bool:
    port = urlsplit(url).port
    with socket.socket() as sock:
        # Connections in TIME_WAIT are fine; a listener still holding the port is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port or 0))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A sandbox started as a person starts it; stopped with Ctrl-C (SIGINT) at the end."""
    state = tmp_path_factory.mktemp("sandbox")
    process = subprocess.Popen(
        [*CONVEYOR, "sandbox", "up", "--state-dir", str(state), "--no-monitoring"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for(
            lambda: (state / "env").exists() or process.poll() is not None,
            timeout=90,
            what="the sandbox to start",
        )
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        yield state
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "Stopped." in output
    server = yaml.safe_load((state / "kubeconfig").read_text())["clusters"][0]["cluster"]["server"]
    assert _port_free(server), "the API emulator's port is still bound after Ctrl-C"
    leftovers = subprocess.run(["pgrep", "-f", str(state)], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", f"processes left behind: {leftovers.stdout}"
    gone = _conveyor(state, "sandbox", "status", "--state-dir", str(state))
    assert gone.returncode == 1 and "No sandbox is running" in gone.stderr
    check_operator_calls(state / "logs")


def _kubectl(state: Path, *args: str) -> str:
    result = subprocess.run(
        ["kubectl", "--kubeconfig", str(state / "kubeconfig"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _conveyor(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(state / "kubeconfig")}
    return subprocess.run(
        [*CONVEYOR, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_env_file_points_at_the_sandbox(sandbox: Path) -> None:
    env = (sandbox / "env").read_text()
    assert f"export KUBECONFIG={sandbox / 'kubeconfig'}" in env
    assert "CONVEYOR_S3_ENDPOINT=http://127.0.0.1:" in env


def _status(state: Path) -> dict[str, dict[str, Any]]:
    result = _conveyor(state, "sandbox", "status", "--state-dir", str(state), "--json")
    assert result.returncode == 0, result.stderr
    return {part["name"]: part for part in json.loads(result.stdout)["components"]}


def test_status_shows_each_component(sandbox: Path) -> None:
    result = _conveyor(sandbox, "sandbox", "status", "--state-dir", str(sandbox))
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[2:]}
    assert set(rows) == {"api", "node-agent", "s3", "operator"}
    assert all(row[1] == "Running" for row in rows.values()), result.stdout
    operator = _status(sandbox)["operator"]
    assert rows["operator"][2] == str(operator["pid"])
    assert rows["operator"][4] == operator["url"].rstrip("/")


def test_operator_env_is_the_environment_the_operator_runs_with(sandbox: Path) -> None:
    text = (sandbox / "operator.env").read_text()
    exported = dict(
        shlex.split(line.removeprefix("export "))[0].split("=", 1)
        for line in text.splitlines()
        if line.startswith("export ")
    )
    pid = _status(sandbox)["operator"]["pid"]
    environ = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
    actual = dict(item.split("=", 1) for item in environ if "=" in item)
    assert {"KUBECONFIG", "CONVEYOR_PORT_HTTP", "CONVEYOR_S3_ENDPOINT"} <= set(exported)
    assert {key: actual.get(key) for key in exported} == exported
    assert f"{sys.executable} -m conveyor operator" in text


def test_a_killed_operator_is_restarted(sandbox: Path) -> None:
    before = _status(sandbox)["operator"]
    os.kill(before["pid"], signal.SIGKILL)

    def restarted() -> dict[str, Any] | None:
        now = _status(sandbox)["operator"]
        return (
            now if now["restarts"] == before["restarts"] + 1 and now["state"] == "Running" else None
        )

    after = wait_for(restarted, timeout=60, what="the operator to be restarted")
    assert after["pid"] != before["pid"] and after["lastExit"] == "killed by SIGKILL (signal 9)"
    assert not Path(f"/proc/{before['pid']}").exists(), "the killed operator is a zombie"


def test_kubectl_apply_get_describe(sandbox: Path) -> None:
    assert "created" in _kubectl(sandbox, "apply", "-f", "examples/iris/")
    # A second apply changes nothing: kubectl re-sends lists whose items got defaults (as against
    # a real API server), but the stored spec, and so the generation, stay the same.
    _kubectl(sandbox, "apply", "-f", "examples/iris/featureset.yaml")
    assert _kubectl(sandbox, "get", "fs", "iris", "-o", "jsonpath={.metadata.generation}") == "1"

    def ready_columns() -> str | None:
        table = _kubectl(sandbox, "get", "tp", "iris")
        return table if "True" in table else None

    table = wait_for(ready_columns, timeout=20, what="kubectl get tp to show Ready True")
    header = table.splitlines()[0].split()
    assert header[:4] == ["NAME", "FEATURESET", "MODEL", "LAST"]
    assert "iris-classifier" in table
    listing = _kubectl(sandbox, "get", "conveyor")
    for kind in ("featureset", "trainingpipeline", "retrainpolicy"):
        assert f"{kind}.conveyor.dev/iris" in listing
    wait_for(
        lambda: "MaterializeStarted" in _kubectl(sandbox, "describe", "fs", "iris"),
        timeout=30,
        what="kubectl describe fs to show the MaterializeStarted Event",
    )
    _kubectl(sandbox, "annotate", "tp", "iris", "conveyor.dev/run-requested=now")
    assert "created" in _kubectl(sandbox, "create", "-f", "examples/diabetes/featureset.yaml")
    assert "deleted" in _kubectl(sandbox, "delete", "-f", "examples/diabetes/featureset.yaml")


def test_invalid_resource_is_refused_naming_the_field(sandbox: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "tests/unit/invalid/tp-bad-test-size.yaml").read_text())
    result = subprocess.run(
        ["kubectl", "--kubeconfig", str(sandbox / "kubeconfig"), "apply", "-f", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "spec.split.testSize" in result.stderr


def test_conveyor_apply_and_status(sandbox: Path) -> None:
    result = _conveyor(sandbox, "apply", "-f", "examples/diabetes/")
    assert result.returncode == 0, result.stderr
    assert "trainingpipeline.conveyor.dev/diabetes" in result.stdout

    def diabetes_ready() -> bool:
        status = _conveyor(sandbox, "status").stdout
        return (
            "trainingpipeline/diabetes" in status
            and "Ready=True" in status.split("trainingpipeline/diabetes")[1].splitlines()[0]
        )

    wait_for(diabetes_ready, timeout=20, what="conveyor status to show diabetes Ready")


def test_a_job_runs_through_the_node_agent(sandbox: Path) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "hello", "namespace": "default"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "main", "image": "conveyor:0.1.0", "args": ["version"]}
                    ],
                }
            },
        },
    }
    with kubernetes.config.new_client_from_config(
        config_file=str(sandbox / "kubeconfig")
    ) as client:
        batch = BatchV1Api(client)
        batch.create_namespaced_job("default", job)

        def succeeded() -> bool:
            status = batch.read_namespaced_job_status("hello", "default").status
            return bool(status and status.succeeded)

        wait_for(succeeded, timeout=30, what="the Job to succeed")
        pods = CoreV1Api(client).list_namespaced_pod("default", label_selector="job-name=hello")
        pod = pods.items[0].metadata.name
    logs = _conveyor(sandbox, "logs", pod)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.startswith("conveyor ")


def test_foreign_image_fails_with_a_clear_reason(sandbox: Path) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "nginx", "namespace": "default"},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
    }
    with kubernetes.config.new_client_from_config(
        config_file=str(sandbox / "kubeconfig")
    ) as client:
        core = CoreV1Api(client)
        core.create_namespaced_pod("default", pod)

        def waiting_reason() -> str | None:
            statuses = core.read_namespaced_pod_status("nginx", "default").status.container_statuses
            if not statuses or not statuses[0].state.waiting:
                return None
            return f"{statuses[0].state.waiting.reason}: {statuses[0].state.waiting.message}"

        reason = wait_for(waiting_reason, timeout=10, what="the pod to report why it waits")
    assert reason.startswith("ImageNotSupportedInSandbox")
    assert "nginx:1.27" in reason


@pytest.mark.timeout(600)
def test_demo_runs_the_whole_loop_without_prometheus(tmp_path: Path) -> None:
    """Without Prometheus and Alertmanager the demo says so, and the policy's drift trigger
    fires from the monitor's figures: the loop still ends with a new version serving."""
    started = time.monotonic()
    result = subprocess.run(
        [*CONVEYOR, "demo", "--state-dir", str(tmp_path / "demo"), "--no-monitoring"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
    )
    print(f"demo: {time.monotonic() - started:.0f} s")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "trainingpipeline.conveyor.dev/iris created" in out
    assert "kubectl get conveyor" in out
    # Both iris pipelines, compared on one holdout, and the report written beside the state.
    assert re.search(r"iris-logistic-v1 +iris-logistic +LogisticRegression", out), out
    assert re.search(r"iris-classifier-v1 +iris +RandomForestClassifier", out), out
    assert "Every version was judged on the same holdout" in out
    assert (tmp_path / "demo" / "compare-iris.html").read_text().count("<svg") == 4
    assert "the RetrainPolicy's drift trigger fires from the monitor's figures directly" in out
    assert re.search(r"RetrainPolicy iris: drift fired: iris-classifier-v1: psi over 0.25", out)
    assert "the server answers with iris-classifier-v2" in out
    assert re.search(r"iris-classifier-v2 +Production .* drift \(RetrainPolicy iris\)", out), out
    check_operator_calls(tmp_path / "demo" / "logs")
