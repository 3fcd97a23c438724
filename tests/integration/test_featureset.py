"""FeatureSets in the sandbox: materialized by a real Job from real S3, as a user sees it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

from kubernetes.client import ApiClient, BatchV1Api, CoreV1Api

from conveyor.sandbox.objectstore import s3_client
from conveyor.sandbox.stack import Sandbox
from tests.conftest import ROOT
from tests.integration.conftest import Resources, example, wait_for


def _snapshot(resources: Resources, name: str) -> dict[str, Any] | None:
    return (resources.get("featuresets", name).get("status") or {}).get("latestSnapshot")


def _cli(sandbox: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(sandbox.kubeconfig)}
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _events(client: ApiClient, namespace: str, name: str) -> list[str]:
    items = (
        CoreV1Api(client)
        .list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
        .items
    )
    return [event.reason for event in items]


def test_iris_is_materialized_and_described(
    sandbox: Sandbox, resources: Resources, client: ApiClient
) -> None:
    resources.create("featuresets", example("iris", "featureset.yaml"))
    ready = resources.wait_ready("featuresets", "iris", "True", "SnapshotReady", timeout=60)
    assert "150 rows" in ready["message"]
    status = resources.get("featuresets", "iris")["status"]
    assert status["latestSnapshot"]["rows"] == 150
    assert status["latestSnapshot"]["reportUrl"].endswith("/report.html")
    assert status["profile"]["rejectedRows"] == 0
    wait_for(
        lambda: "Materialized" in _events(client, resources.namespace, "iris"),
        what="the Materialized Event",
    )
    # Each moment once, with the type its meaning has: starting is no warning.
    events = CoreV1Api(client).list_namespaced_event(
        resources.namespace, field_selector="involvedObject.name=iris"
    )
    said = sorted((e.type, e.reason, e.count or 1) for e in events.items)
    assert said == [("Normal", "MaterializeStarted", 1), ("Normal", "Materialized", 1)], said
    described = _cli(sandbox, "features", "describe", "iris", "-n", resources.namespace)
    assert described.returncode == 0, described.stderr
    assert "sepal_length_cm" in described.stdout and "species" in described.stdout
    raw, inputs = described.stdout.split("MODEL INPUTS AFTER THE TRANSFORMS")
    assert re.search(r"^flower_id +numeric +entityKey ", raw, re.MULTILINE)
    assert re.search(r"^petal_area_cm2 +numeric +feature ", inputs, re.MULTILINE)  # derived
    # Asked again with nothing changed: the same snapshot, no second Job.
    requested = _cli(sandbox, "features", "materialize", "iris", "-n", resources.namespace)
    assert requested.returncode == 0, requested.stderr
    wait_for(
        lambda: "MaterializeRequested" in _events(client, resources.namespace, "iris"),
        what="the request to be acknowledged",
    )
    jobs = BatchV1Api(client).list_namespaced_job(resources.namespace).items
    assert len(jobs) == 1
    assert _snapshot(resources, "iris")["id"] == status["latestSnapshot"]["id"]


def test_new_source_data_makes_a_new_snapshot_and_new_entities_are_not_drift(
    sandbox: Sandbox, resources: Resources
) -> None:
    featureset = example("iris", "featureset.yaml")
    featureset["spec"]["sources"][0]["uri"] = f"s3://conveyor-raw/{resources.namespace}/*.csv"
    featureset["spec"]["materialization"] = {"sourcePollSeconds": 10}
    store = sandbox.object_store
    s3 = s3_client(store.endpoint, store.credentials)
    iris = s3.get_object(Bucket="conveyor-raw", Key="iris/iris.csv")["Body"].read()
    lines = iris.decode().splitlines()
    s3.put_object(
        Bucket="conveyor-raw",
        Key=f"{resources.namespace}/a.csv",
        Body="\n".join(lines[:101]).encode(),
    )
    resources.create("featuresets", featureset)
    resources.wait_ready("featuresets", "iris", "True", "SnapshotReady", timeout=60)
    first = _snapshot(resources, "iris")
    assert first is not None and first["rows"] == 100
    first_profile = resources.get("featuresets", "iris")["status"]["profile"]
    # The other 50 flowers arrive as new entities: ids the first snapshot never saw.
    renumbered = [
        f"{int(line.split(',', 1)[0]) + 1000},{line.split(',', 1)[1]}" for line in lines[101:]
    ]
    s3.put_object(
        Bucket="conveyor-raw",
        Key=f"{resources.namespace}/b.csv",
        Body="\n".join([lines[0], *renumbered]).encode(),
    )
    second = wait_for(
        lambda: (s := _snapshot(resources, "iris")) and s["id"] != first["id"] and s,
        timeout=60,
        what="a new snapshot after new data arrived",
    )
    assert second["rows"] == 150
    status = resources.get("featuresets", "iris")["status"]
    assert [s["id"] for s in status["snapshots"]] == [second["id"], first["id"]]
    # The second profile is compared with the first (the first had nothing to compare with).
    assert "maxDriftScore" not in first_profile
    assert 0 < status["profile"]["maxDriftScore"] < 0.2  # the same kind of flowers
    assert status["profile"]["driftedColumns"] == []  # flower_id names rows: never drift
    assert status["profile"]["columns"] == 5  # the model's inputs


def test_missing_source_says_where_it_looked(resources: Resources) -> None:
    featureset = example("iris", "featureset.yaml")
    featureset["spec"]["sources"][0]["uri"] = "s3://conveyor-raw/nowhere/*.csv"
    resources.create("featuresets", featureset)
    ready = resources.wait_ready("featuresets", "iris", "False", "SourceNotFound")
    assert "s3://conveyor-raw/nowhere/*.csv" in ready["message"]


def test_too_many_rejects_fails_without_a_snapshot(
    sandbox: Sandbox, resources: Resources, client: ApiClient
) -> None:
    featureset = example("iris", "featureset.yaml")
    featureset["spec"]["schema"]["columns"][2]["max"] = 5.0  # most sepals are longer
    resources.create("featuresets", featureset)
    ready = resources.wait_ready("featuresets", "iris", "False", "TooManyRejects", timeout=60)
    assert re.search(r"sepal_length_cm: above max 5 \(\d+ rows, e\.g\. \d\.\d\)", ready["message"])
    assert ready["message"].count("above max 5") == 1  # each reason once, with its count
    # The sample of rejected rows stays in storage, where the message points.
    uri = re.search(r"s3://conveyor/\S+/rejects\.jsonl", ready["message"])
    assert uri, ready["message"]
    store = sandbox.object_store
    s3 = s3_client(store.endpoint, store.credentials)
    key = uri.group(0).removeprefix("s3://conveyor/")
    sample = s3.get_object(Bucket="conveyor", Key=key)["Body"].read().decode().splitlines()
    assert sample and "above max 5" in json.loads(sample[0])["reason"]
    assert _snapshot(resources, "iris") is None
    wait_for(
        lambda: "TooManyRejects" in _events(client, resources.namespace, "iris"),
        what="the TooManyRejects Event",
    )
    # The verdict came the way a cluster carries it: the program's termination message, whole
    # (the log fallback would hold its log lines too), saying a retry cannot help — and its exit
    # code made the Job's podFailurePolicy fail the Job at this first pod (backoffLimit is 2).
    (pod,) = CoreV1Api(client).list_namespaced_pod(resources.namespace).items
    (container,) = pod.status.container_statuses
    verdict = json.loads(container.state.terminated.message)
    assert verdict["reason"] == "TooManyRejects" and verdict["retryable"] is False
    (job,) = BatchV1Api(client).list_namespaced_job(resources.namespace).items
    failed = next(c for c in job.status.conditions if c.type == "Failed")
    assert failed.reason == "PodFailurePolicy"
    assert (
        f"pod {resources.namespace}/{pod.metadata.name} failed with exit code 2" in failed.message
    )
    assert "request a new materialization" in ready["message"]


def test_parallel_materialization_partitions_then_combines(
    resources: Resources, client: ApiClient
) -> None:
    featureset = example("diabetes", "featureset.yaml")
    featureset["spec"]["materialization"] = {"parallelism": 3}
    resources.create("featuresets", featureset)
    ready = resources.wait_ready("featuresets", "diabetes", "True", "SnapshotReady", timeout=90)
    assert "442 rows" in ready["message"]
    jobs = {
        job.metadata.name: job
        for job in BatchV1Api(client).list_namespaced_job(resources.namespace).items
    }
    partition = next(job for name, job in jobs.items() if name.endswith("-p"))
    assert partition.spec.completion_mode == "Indexed" and partition.spec.completions == 3
    assert partition.status.succeeded == 3
    assert any(name.endswith("-c") for name in jobs)
