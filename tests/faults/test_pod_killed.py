"""A materialization or training pod SIGKILLed mid-run: the Job's retry (backoffLimit) runs the
program again, which finishes the work, and the snapshot is published once, the model
registered once."""

from __future__ import annotations

import time

from kubernetes.client import ApiClient

from conveyor.contracts.labels import LABEL_COMPONENT
from conveyor.sandbox.stack import Sandbox
from tests.faults.conftest import Figure
from tests.faults.pods import job, kill, running_pod, terminated, wait_log
from tests.faults.storage import check_bucket
from tests.integration.conftest import Resources, example
from tests.integration.test_training import _pipeline, _runs, _wait_run

TIMEOUT = 120


def test_a_materialization_killed_mid_run_is_retried_and_published_once(
    sandbox: Sandbox, resources: Resources, client: ApiClient, figure: Figure
) -> None:
    namespace = resources.namespace
    resources.create("featuresets", example("iris", "featureset.yaml"))
    pod = running_pod(client, namespace, f"{LABEL_COMPONENT}=materialize")
    into = wait_log(client, namespace, pod.metadata.name, "Reading s3://")
    kill(sandbox, namespace, pod.metadata.name)
    killed = time.monotonic()
    state = terminated(client, namespace, pod.metadata.name)
    assert state.exit_code == 137, state  # 128 + SIGKILL
    resources.wait_ready("featuresets", "iris", "True", timeout=TIMEOUT)
    recovered = time.monotonic() - killed
    retried = job(client, namespace, pod.metadata.labels["job-name"]).status
    assert (retried.failed, retried.succeeded) == (1, 1), retried
    snapshots = resources.get("featuresets", "iris")["status"]["snapshots"]
    assert len(snapshots) == 1, snapshots
    bucket = check_bucket(sandbox, namespace)
    assert bucket.problems == [], bucket.problems
    assert bucket.snapshots == [snapshots[0]["id"]], bucket
    figure(
        f"materialize pod SIGKILLed {into:.1f} s into its run (reading the source): the Job's "
        f"retry published the snapshot {recovered:.1f} s after the kill; 1 failed pod, 1 "
        f"succeeded; 1 snapshot in status; bucket: {bucket.describe()}"
    )


def test_a_training_killed_mid_run_is_retried_and_registers_one_version(
    sandbox: Sandbox, resources: Resources, client: ApiClient, figure: Figure
) -> None:
    namespace = resources.namespace
    resources.create("featuresets", example("iris", "featureset.yaml"))
    resources.wait_ready("featuresets", "iris", "True", timeout=TIMEOUT)
    resources.create("trainingpipelines", _pipeline("iris"))
    pod = running_pod(client, namespace, f"{LABEL_COMPONENT}=train")
    into = wait_log(client, namespace, pod.metadata.name, "Training ")
    kill(sandbox, namespace, pod.metadata.name)
    killed = time.monotonic()
    state = terminated(client, namespace, pod.metadata.name)
    assert state.exit_code == 137, state
    run = _wait_run(resources, "iris")
    recovered = time.monotonic() - killed
    assert run["phase"] == "Succeeded", run
    assert len(_runs(resources, "iris")) == 1
    retried = job(client, namespace, pod.metadata.labels["job-name"]).status
    assert (retried.failed, retried.succeeded) == (1, 1), retried
    versions = resources.list("modelversions")
    assert [v["spec"]["lineage"]["run"] for v in versions] == [run["id"]], versions
    bucket = check_bucket(sandbox, namespace)
    assert bucket.problems == [], bucket.problems
    assert bucket.runs == [run["id"]], bucket
    figure(
        f"training pod SIGKILLed {into:.1f} s into its run (training): the Job's retry "
        f"finished the run {recovered:.1f} s after the kill; 1 failed pod, 1 succeeded; "
        f"1 run, 1 ModelVersion; bucket: {bucket.describe()}"
    )
