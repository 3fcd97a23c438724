"""Jobs against the sandbox API: what an operator watching them would see."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest

from .conftest import IMAGE, Cluster, condition, wait_for

pytestmark = pytest.mark.integration


def job_manifest(name: str, script: str, **spec: Any) -> dict[str, Any]:
    container = spec.pop("container", {})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": spec.pop("backoffLimit", 0),
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": IMAGE,
                            "command": ["pyrun"],
                            "args": [script],
                            **container,
                        }
                    ],
                }
            },
            **spec,
        },
    }


def finished(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    job = cluster.job(namespace, name)
    if condition(job, "Complete") or condition(job, "Failed"):
        return job
    return None


def test_a_job_runs_its_pod_to_completion(cluster: Cluster, namespace: str) -> None:
    started = time.monotonic()
    cluster.batch.create_namespaced_job(namespace, job_manifest("hello", "print('trained')"))
    running = wait_for(
        lambda: [
            p
            for p in cluster.pods(namespace, "job-name=hello")
            if p["status"].get("phase") in ("Running", "Succeeded")
        ]
    )
    assert time.monotonic() - started < 2.0
    job = wait_for(lambda: finished(cluster, namespace, "hello"))

    complete = condition(job, "Complete")
    assert complete is not None and complete["reason"] == "CompletionsReached"
    assert job["status"]["succeeded"] == 1 and job["status"]["active"] == 0
    assert job["status"]["startTime"] and job["status"]["completionTime"]
    pod = cluster.pods(namespace, "job-name=hello")[0]
    assert pod["metadata"]["name"] == running[0]["metadata"]["name"]
    assert pod["spec"]["nodeName"] == "sandbox"
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "Job"
    assert pod["status"]["phase"] == "Succeeded"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    assert cluster.log(namespace, pod["metadata"]["name"]) == "trained\n"
    reasons = {e["reason"] for e in cluster.events(namespace)}
    assert {"SuccessfulCreate", "Scheduled", "Started", "Completed"} <= reasons


def test_failures_are_retried_up_to_the_backoff_limit(cluster: Cluster, namespace: str) -> None:
    script = "import sys; print('loading data'); print('KeyError: petal_width'); sys.exit(2)"
    container = {"terminationMessagePolicy": "FallbackToLogsOnError"}  # as the operator's Jobs
    manifest = job_manifest("bad", script, backoffLimit=1, container=container)
    cluster.batch.create_namespaced_job(namespace, manifest)
    job = wait_for(lambda: finished(cluster, namespace, "bad"))

    failed = condition(job, "Failed")
    assert failed is not None and failed["reason"] == "BackoffLimitExceeded"
    assert job["status"]["failed"] == 2
    pods = cluster.pods(namespace, "job-name=bad")
    assert len(pods) == 2 and {p["status"]["phase"] for p in pods} == {"Failed"}
    terminated = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 2 and terminated["reason"] == "Error"
    assert terminated["message"] == "loading data\nKeyError: petal_width\n"


def test_a_pod_failure_policy_fails_the_job_at_its_first_matching_pod(
    cluster: Cluster, namespace: str
) -> None:
    policy = {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": "main", "operator": "In", "values": [2, 8]},
            }
        ]
    }
    script = (
        "import os, sys, time\n"
        "if os.environ['JOB_COMPLETION_INDEX'] == '0': sys.exit(2)\n"
        "time.sleep(60)\n"
    )
    manifest = job_manifest(
        "doomed",
        script,
        backoffLimit=5,
        podFailurePolicy=policy,
        completionMode="Indexed",
        completions=2,
        parallelism=2,
    )
    cluster.batch.create_namespaced_job(namespace, manifest)
    job = wait_for(lambda: finished(cluster, namespace, "doomed"), timeout=30)

    failed = condition(job, "Failed")
    assert failed is not None and failed["reason"] == "PodFailurePolicy"
    assert failed["message"].startswith(f"Container main for pod {namespace}/doomed-0-")
    assert failed["message"].endswith("failed with exit code 2 matching FailJob rule at index 0")
    # The sleeping index is stopped, and index 0 was never tried again.
    wait_for(lambda: len(cluster.pods(namespace, "job-name=doomed")) == 1)
    (pod,) = cluster.pods(namespace, "job-name=doomed")
    assert pod["status"]["phase"] == "Failed" and pod["metadata"]["name"].startswith("doomed-0-")


def test_a_pod_reports_the_message_its_program_wrote(cluster: Cluster, namespace: str) -> None:
    result = '{"ok":false,"reason":"InvalidConfiguration","retryable":false}'
    script = (
        "import os, sys; path = os.environ['TERMINATION_MESSAGE_PATH']; print(path)\n"
        f"open(path, 'w').write({result!r}); sys.exit(8)"
    )
    cluster.batch.create_namespaced_job(namespace, job_manifest("report", script))
    wait_for(lambda: finished(cluster, namespace, "report"))

    pod = cluster.pods(namespace, "job-name=report")[0]
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["message"]) == (8, result)
    name = pod["metadata"]["name"]
    assert cluster.log(namespace, name).endswith(f"/pods/{namespace}/{name}/termination/main\n")


def test_the_active_deadline_stops_a_slow_job(cluster: Cluster, namespace: str) -> None:
    manifest = job_manifest("slow", "import time; time.sleep(60)", activeDeadlineSeconds=1)
    cluster.batch.create_namespaced_job(namespace, manifest)
    job = wait_for(lambda: finished(cluster, namespace, "slow"), timeout=10)

    failed = condition(job, "Failed")
    assert failed is not None and failed["reason"] == "DeadlineExceeded"
    wait_for(lambda: not cluster.pods(namespace, "job-name=slow"))


def test_an_indexed_job_gives_each_pod_its_index(cluster: Cluster, namespace: str) -> None:
    script = "import os; print('index', os.environ['JOB_COMPLETION_INDEX'])"
    manifest = job_manifest(
        "trials", script, completionMode="Indexed", completions=3, parallelism=2
    )
    cluster.batch.create_namespaced_job(namespace, manifest)
    job = wait_for(lambda: finished(cluster, namespace, "trials"))

    assert condition(job, "Complete") is not None
    assert job["status"]["completedIndexes"] == "0-2"
    assert job["status"]["succeeded"] == 3
    outputs = {
        cluster.log(namespace, p["metadata"]["name"]).strip()
        for p in cluster.pods(namespace, "job-name=trials")
    }
    assert outputs == {"index 0", "index 1", "index 2"}


def test_env_comes_from_secrets_and_configmaps(cluster: Cluster, namespace: str) -> None:
    cluster.core.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "s3"},
            "data": {"key": base64.b64encode(b"hunter2").decode()},
        },
    )
    cluster.core.create_namespaced_config_map(
        namespace,
        {
            "metadata": {"name": "settings"},
            "data": {"BUCKET": "models"},
        },
    )
    container = {
        "envFrom": [{"configMapRef": {"name": "settings"}}],
        "env": [{"name": "S3_KEY", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "key"}}}],
    }
    script = "import os; print(os.environ['BUCKET'], os.environ['S3_KEY'])"
    cluster.batch.create_namespaced_job(namespace, job_manifest("env", script, container=container))
    wait_for(lambda: finished(cluster, namespace, "env"))
    pod = cluster.pods(namespace, "job-name=env")[0]
    assert cluster.log(namespace, pod["metadata"]["name"]) == "models hunter2\n"


def test_a_missing_secret_waits_until_it_exists(cluster: Cluster, namespace: str) -> None:
    container = {
        "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "late", "key": "token"}}}]
    }
    script = "import os; print(os.environ['TOKEN'])"
    manifest = job_manifest("wait", script, container=container)
    cluster.batch.create_namespaced_job(namespace, manifest)

    def waiting() -> dict[str, Any] | None:
        for pod in cluster.pods(namespace, "job-name=wait"):
            for status in pod["status"].get("containerStatuses") or []:
                if "waiting" in status["state"]:
                    return status["state"]["waiting"]
        return None

    state = wait_for(lambda: (w := waiting()) and w.get("reason") != "ContainerCreating" and w)
    assert state["reason"] == "CreateContainerConfigError"
    assert state["message"] == 'secret "late" not found'
    assert cluster.pods(namespace, "job-name=wait")[0]["status"]["phase"] == "Pending"
    cluster.core.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "late"},
            "data": {"token": base64.b64encode(b"t0k3n").decode()},
        },
    )
    job = wait_for(lambda: finished(cluster, namespace, "wait"))
    assert condition(job, "Complete") is not None


def test_a_memory_limit_kills_with_oom(cluster: Cluster, namespace: str) -> None:
    container = {"resources": {"limits": {"memory": "150Mi"}}}
    script = "blob = bytearray(400 * 1024 * 1024)"
    cluster.batch.create_namespaced_job(namespace, job_manifest("oom", script, container=container))
    wait_for(lambda: finished(cluster, namespace, "oom"))
    pod = cluster.pods(namespace, "job-name=oom")[0]
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137)


def test_a_foreign_image_stays_pending_and_says_why(cluster: Cluster, namespace: str) -> None:
    manifest = job_manifest("foreign", "", container={"image": "python:3.11"})
    cluster.batch.create_namespaced_job(namespace, manifest)

    def reason() -> dict[str, Any] | None:
        for pod in cluster.pods(namespace, "job-name=foreign"):
            for status in pod["status"].get("containerStatuses") or []:
                waiting = status["state"].get("waiting") or {}
                if waiting.get("reason") == "ImageNotSupportedInSandbox":
                    return waiting
        return None

    waiting = wait_for(reason)
    assert '"conveyor:test"' in waiting["message"] and '"python:3.11"' in waiting["message"]
    assert cluster.pods(namespace, "job-name=foreign")[0]["status"]["phase"] == "Pending"
    events = wait_for(
        lambda: [
            e
            for e in cluster.events(namespace)
            if e["involvedObject"]["kind"] == "Pod" and e["reason"] == "Failed"
        ]
    )
    assert "python:3.11" in events[0]["message"]
    assert finished(cluster, namespace, "foreign") is None


def test_deleting_a_job_stops_its_processes(cluster: Cluster, namespace: str) -> None:
    manifest = job_manifest("long", "import time; time.sleep(60)")
    cluster.batch.create_namespaced_job(namespace, manifest)

    def pid() -> int | None:
        for pod in cluster.pods(namespace, "job-name=long"):
            for status in pod["status"].get("containerStatuses") or []:
                if "running" in status["state"]:
                    return int(status["containerID"].split("://")[1])
        return None

    process = wait_for(pid)
    cluster.batch.delete_namespaced_job("long", namespace, propagation_policy="Background")
    wait_for(lambda: not cluster.pods(namespace, "job-name=long"))
    wait_for(lambda: not _alive(process), timeout=12)
    killing = [e for e in cluster.events(namespace) if e["reason"] == "Killing"]
    assert killing and killing[0]["message"] == "Stopping container main"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_pod_of_a_job_that_is_gone_is_removed(cluster: Cluster, namespace: str) -> None:
    cluster.core.create_namespaced_pod(
        namespace,
        {
            "metadata": {
                "name": "orphan",
                "labels": {"job-name": "ghost"},
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": "ghost",
                        "uid": "no-such-uid",
                        "controller": True,
                    }
                ],
            },
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "main",
                        "image": IMAGE,
                        "command": ["pyrun"],
                        "args": ["import time; time.sleep(60)"],
                    }
                ],
            },
        },
    )
    wait_for(lambda: not cluster.pods(namespace, "job-name=ghost"))
