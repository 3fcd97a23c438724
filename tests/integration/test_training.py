"""Training runs, the registry and promotion in the sandbox: real Jobs, S3 and scikit-learn."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import (
    AdmissionregistrationV1Api,
    ApiClient,
    ApiException,
    BatchV1Api,
    CoreV1Api,
)

from conveyor.clients.s3 import split_uri
from conveyor.sandbox.objectstore import s3_client
from conveyor.sandbox.stack import Sandbox
from conveyor.sandbox.supervisor import ComponentStatus
from conveyor.training.artifacts import load_model
from tests.conftest import ROOT
from tests.integration.conftest import Resources, example, read_log, wait_for

RUN_TIMEOUT = 120
DELETION_POLICY = "conveyor-production-modelversion-deletion"


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


def _pipeline(example_name: str, **spec: Any) -> dict[str, Any]:
    body = example(example_name, "trainingpipeline.yaml")
    body["spec"]["search"] = {"strategy": "none"}  # quick runs; search has its own tests
    body["spec"].update(spec)
    return body


def _runs(resources: Resources, name: str) -> list[dict[str, Any]]:
    return list((resources.get("trainingpipelines", name).get("status") or {}).get("runs", []))


def _wait_run(resources: Resources, name: str, count: int = 1) -> dict[str, Any]:
    """The newest run once `count` runs exist and the newest one has finished."""

    def finished() -> dict[str, Any] | None:
        runs = _runs(resources, name)
        if len(runs) >= count and runs[0]["phase"] not in ("Pending", "Running"):
            return runs[0]
        return None

    return wait_for(
        finished,
        timeout=RUN_TIMEOUT,
        what=f"run {count} of {name} to finish (runs: {_runs(resources, name)})",
    )


def _stage(resources: Resources, version: str) -> tuple[str, str | None]:
    body = resources.get("modelversions", version)
    return body["spec"]["stage"], (body.get("status") or {}).get("stage")


def _request_run(sandbox: Sandbox, resources: Resources, name: str) -> None:
    result = _cli(sandbox, "run", name, "-n", resources.namespace)
    assert result.returncode == 0, result.stderr


def test_iris_trains_registers_and_promotes(sandbox: Sandbox, resources: Resources) -> None:
    resources.create("featuresets", example("iris", "featureset.yaml"))
    resources.create("trainingpipelines", _pipeline("iris"))
    run = _wait_run(resources, "iris")
    assert run["phase"] == "Succeeded", run
    assert run["trigger"]["type"] == "specChange" and run["bestScore"] > 0.8
    version = resources.get("modelversions", "iris-classifier-v1")
    assert version["spec"]["lineage"]["run"] == run["id"]
    assert version["spec"]["lineage"]["snapshot"] == run["snapshot"]
    assert version["spec"]["metrics"]["accuracy"] > version["spec"]["metrics"]["baseline_accuracy"]
    wait_for(
        lambda: _stage(resources, "iris-classifier-v1") == ("Production", "Production"),
        what="auto promotion",
    )
    status = resources.get("trainingpipelines", "iris")["status"]
    assert status["productionVersion"] == "iris-classifier-v1"
    # The artifact in S3 verifies against the registry's digest and answers raw rows.
    store = sandbox.object_store
    bucket, key = split_uri(version["spec"]["artifact"]["uri"])
    data = (
        s3_client(store.endpoint, store.credentials)
        .get_object(Bucket=bucket, Key=key)["Body"]
        .read()
    )
    model = load_model(data, expected_digest=version["spec"]["artifact"]["digest"])
    row = {
        "sepal_length_cm": 6.7,
        "sepal_width_cm": 3.0,
        "petal_length_cm": 5.2,
        "petal_width_cm": 2.3,
    }
    assert list(model.predict([row])) == ["virginica"]


def test_swapping_the_estimator_is_one_line(resources: Resources) -> None:
    resources.create("featuresets", example("iris", "featureset.yaml"))
    resources.create("trainingpipelines", _pipeline("iris"))
    _wait_run(resources, "iris", 1)
    for count, (estimator, params) in enumerate(
        [
            ("GradientBoostingClassifier", {"n_estimators": 20}),
            ("LogisticRegression", {"n_estimators": None, "max_iter": 500}),
        ],
        start=2,
    ):
        # A merge patch: null removes a parameter the new estimator does not take.
        resources.patch(
            "trainingpipelines",
            "iris",
            {"spec": {"model": {"estimator": estimator, "params": params}}},
        )
        run = _wait_run(resources, "iris", count)
        assert run["phase"] == "Succeeded", run
    versions = sorted(resources.list("modelversions"), key=lambda v: v["spec"]["version"])
    assert [v["metadata"]["name"] for v in versions] == [
        "iris-classifier-v1",
        "iris-classifier-v2",
        "iris-classifier-v3",
    ]
    assert [v["spec"]["params"].get("max_iter") for v in versions][-1] == 500


def test_manual_promotion_and_rollback(sandbox: Sandbox, resources: Resources) -> None:
    resources.create("featuresets", example("diabetes", "featureset.yaml"))
    resources.create("trainingpipelines", _pipeline("diabetes", runs={"runOnSpecChange": True}))
    assert _wait_run(resources, "diabetes")["phase"] == "Succeeded"
    assert _stage(resources, "diabetes-regressor-v1")[0] == "Candidate"  # policy manual
    promoted = _cli(sandbox, "promote", "diabetes-regressor-v1", "-n", resources.namespace)
    assert promoted.returncode == 0, promoted.stderr
    wait_for(
        lambda: _stage(resources, "diabetes-regressor-v1")[1] == "Production",
        what="v1 in Production",
    )
    _request_run(sandbox, resources, "diabetes")
    assert _wait_run(resources, "diabetes", 2)["phase"] == "Succeeded"
    assert (
        _cli(sandbox, "promote", "diabetes-regressor-v2", "-n", resources.namespace).returncode == 0
    )
    wait_for(
        lambda: _stage(resources, "diabetes-regressor-v1") == ("Archived", "Archived"),
        what="v1 archived by the promotion of v2",
    )
    rolled = _cli(sandbox, "rollback", "diabetes-regressor", "-n", resources.namespace)
    assert rolled.returncode == 0, rolled.stderr
    assert "diabetes-regressor-v1" in rolled.stdout
    wait_for(
        lambda: _stage(resources, "diabetes-regressor-v2") == ("Archived", "Archived"),
        what="v2 archived by the rollback",
    )
    wait_for(  # v1's own reconcile follows v2's and the pipeline's
        lambda: _stage(resources, "diabetes-regressor-v1") == ("Production", "Production"),
        what="v1 in Production again",
    )
    listing = _cli(sandbox, "models", "diabetes-regressor", "-n", resources.namespace)
    assert "rolled back from diabetes-regressor-v2" in listing.stdout
    assert "RMSE" in listing.stdout.splitlines()[0]


def test_failed_gate_registers_a_rejected_version(sandbox: Sandbox, resources: Resources) -> None:
    resources.create("featuresets", example("iris", "featureset.yaml"))
    gates = {"thresholds": [{"metric": "accuracy", "min": 0.9999}]}
    resources.create("trainingpipelines", _pipeline("iris", gates=gates))
    run = _wait_run(resources, "iris")
    assert run["phase"] == "Rejected" and "accuracy" in run["message"]
    wait_for(
        lambda: _stage(resources, "iris-classifier-v1") == ("Rejected", "Rejected"),
        what="v1 Rejected",
    )
    refused = _cli(sandbox, "promote", "iris-classifier-v1", "-n", resources.namespace)
    assert refused.returncode == 1 and "failed its gates" in refused.stderr
    assert resources.get("trainingpipelines", "iris")["status"].get("productionVersion") is None


def test_a_job_that_runs_out_of_memory_is_retried_then_fails_the_run(
    resources: Resources, client: ApiClient
) -> None:
    resources.create("featuresets", example("iris", "featureset.yaml"))
    runs = {"runOnSpecChange": True, "backoffLimit": 1, "resources": {"limits": {"memory": "64Mi"}}}
    resources.create("trainingpipelines", _pipeline("iris", runs=runs))
    run = _wait_run(resources, "iris")
    assert run["phase"] == "Failed" and "OOMKilled" in run["message"], run
    assert resources.list("modelversions") == []
    degraded = resources.condition("trainingpipelines", "iris", "Degraded")
    assert degraded is not None and degraded["status"] == "True"
    # Out of memory may pass on a retry: it is no exit code of the pod failure policy.
    assert len(_pods_of(client, resources.namespace, run["id"])) == 2


def test_a_run_no_retry_can_fix_fails_at_its_first_pod(
    resources: Resources, client: ApiClient
) -> None:
    # Missing values that LogisticRegression cannot take: only the data says so, so the
    # operator starts the run; the program says SearchFailed, which its exit code carries to
    # the Job's podFailurePolicy.
    featureset = example("iris", "featureset.yaml")
    featureset["spec"]["transforms"].append(
        {
            "op": "derive",
            "output": "long_sepal_cm",
            "expression": "if_else(sepal_length_cm > 5.8, sepal_length_cm, None)",
        }
    )
    resources.create("featuresets", featureset)
    resources.wait_ready("featuresets", "iris", "True", timeout=60)
    model = {"name": "iris-classifier", "estimator": "LogisticRegression", "params": {}}
    pipeline = _pipeline("iris", runs={"runOnSpecChange": True, "backoffLimit": 3}, model=model)
    resources.create("trainingpipelines", pipeline)
    run = _wait_run(resources, "iris")
    assert run["phase"] == "Failed" and "SearchFailed: " in run["message"], run
    assert "spec.transforms" in run["message"]  # what to fix: the FeatureSet's missing values
    (pod,) = _pods_of(client, resources.namespace, run["id"])
    (job,) = (
        BatchV1Api(client)
        .list_namespaced_job(resources.namespace, label_selector=f"conveyor.dev/run={run['id']}")
        .items
    )
    failed = next(c for c in job.status.conditions if c.type == "Failed")
    assert failed.reason == "PodFailurePolicy" and pod.metadata.name in failed.message
    degraded = resources.condition("trainingpipelines", "iris", "Degraded")
    assert degraded is not None and "SearchFailed" in degraded["message"]


def _pods_of(client: ApiClient, namespace: str, job: str) -> list[Any]:
    return list(
        CoreV1Api(client).list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
    )


def _in_production(resources: Resources) -> None:
    resources.create("featuresets", example("iris", "featureset.yaml"))
    resources.create("trainingpipelines", _pipeline("iris"))
    _wait_run(resources, "iris")
    wait_for(
        lambda: _stage(resources, "iris-classifier-v1")[1] == "Production", what="v1 in Production"
    )


def test_deleting_the_production_version_is_refused_up_front(resources: Resources) -> None:
    _in_production(resources)
    with pytest.raises(ApiException) as refused:
        resources.delete("modelversions", "iris-classifier-v1")
    assert refused.value.status == 403
    assert "iris-classifier-v1 serves model iris-classifier in Production" in str(
        refused.value.body
    )
    version = resources.get("modelversions", "iris-classifier-v1")
    assert "deletionTimestamp" not in version["metadata"]  # untouched, not Terminating


@pytest.fixture
def without_deletion_policy(client: ApiClient) -> Iterator[None]:
    """A cluster where the admission policy is not installed: the finalizer is the guard."""
    api = AdmissionregistrationV1Api(client)
    binding = api.read_validating_admission_policy_binding(DELETION_POLICY)
    api.delete_validating_admission_policy_binding(DELETION_POLICY)
    yield
    binding.metadata = {"name": DELETION_POLICY}
    api.create_validating_admission_policy_binding(binding)


def test_without_the_policy_the_finalizer_holds_a_production_version(
    sandbox: Sandbox,
    resources: Resources,
    client: ApiClient,
    without_deletion_policy: None,
) -> None:
    _in_production(resources)
    resources.delete("modelversions", "iris-classifier-v1")

    def refused() -> bool:
        events = (
            CoreV1Api(client)
            .list_namespaced_event(
                resources.namespace, field_selector="involvedObject.name=iris-classifier-v1"
            )
            .items
        )
        return any("before deleting it" in (event.message or "") for event in events)

    wait_for(refused, what="a Warning that the Production version is protected")
    assert resources.exists("modelversions", "iris-classifier-v1")
    blocked = resources.condition("modelversions", "iris-classifier-v1", "DeletionBlocked")
    assert blocked is not None and blocked["status"] == "True"
    # A deletion held on purpose is an expected outcome, not a handler failure.
    assert "failed temporarily" not in read_log(sandbox.log_dir / "operator.log")
    resources.patch("modelversions", "iris-classifier-v1", {"spec": {"stage": "Archived"}})
    wait_for(
        lambda: not resources.exists("modelversions", "iris-classifier-v1"),
        timeout=40,
        what="the archived version to be deleted",
    )


def _iris_run_in_flight(resources: Resources) -> None:
    resources.create("featuresets", example("iris", "featureset.yaml"))
    resources.wait_ready("featuresets", "iris", "True", timeout=60)
    resources.create("trainingpipelines", _pipeline("iris"))
    wait_for(
        lambda: (runs := _runs(resources, "iris")) and runs[0]["phase"] == "Running",
        what="the run to start",
    )


@pytest.mark.parametrize("moment", ["while the run trains"])
def test_restart_during_a_run_neither_loses_nor_duplicates(
    sandbox: Sandbox, resources: Resources, moment: str
) -> None:
    _iris_run_in_flight(resources)
    sandbox.stop_operator()
    sandbox.start_operator()
    run = _wait_run(resources, "iris")
    assert run["phase"] == "Succeeded"
    assert len(_runs(resources, "iris")) == 1
    assert [v["metadata"]["name"] for v in resources.list("modelversions")] == [
        "iris-classifier-v1"
    ]


def test_a_killed_operator_is_restarted_and_the_run_finishes_once(
    sandbox: Sandbox, resources: Resources, client: ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    _iris_run_in_flight(resources)
    before = _operator(sandbox)
    assert before.pid is not None

    os.kill(before.pid, signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{before.pid}").exists(), what="the operator to be reaped")
    wait_for(
        lambda: (
            (now := _operator(sandbox)).restarts == before.restarts + 1 and now.state == "Running"
        ),
        timeout=60,
        what=f"the operator to be restarted (now: {_operator(sandbox)})",
    )
    run = _wait_run(resources, "iris")
    assert run["phase"] == "Succeeded", run
    assert len(_runs(resources, "iris")) == 1
    jobs = BatchV1Api(client).list_namespaced_job(
        resources.namespace, label_selector=f"conveyor.dev/run={run['id']}"
    )
    assert [job.metadata.name for job in jobs.items] == [run["id"]]
    assert [v["metadata"]["name"] for v in resources.list("modelversions")] == [
        "iris-classifier-v1"
    ]
    report = next(r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert f"Operator (pid {before.pid}) killed by SIGKILL (signal 9)" in report
    status = _cli(sandbox, "sandbox", "status", "--state-dir", str(sandbox.state_dir))
    assert status.returncode == 0, status.stderr
    line = next(line for line in status.stdout.splitlines() if line.startswith("operator"))
    assert line.split()[1:4] == ["Running", str(_operator(sandbox).pid), str(before.restarts + 1)]
    assert "killed by SIGKILL (signal 9)" in line


def _operator(sandbox: Sandbox) -> ComponentStatus:
    return next(part for part in sandbox.status() if part.name == "operator")


def test_trials_run_across_the_pods_of_an_indexed_job(
    resources: Resources, client: ApiClient
) -> None:

    resources.create("featuresets", example("iris", "featureset.yaml"))
    search = {
        "strategy": "random",
        "trials": 6,
        "parallelism": 3,
        "space": {"max_depth": [2, 3, 4], "min_samples_leaf": {"low": 1, "high": 5}},
    }
    body = _pipeline("iris")
    body["spec"]["search"] = search
    body["spec"]["model"]["params"] = {"n_estimators": 20, "random_state": 7}
    resources.create("trainingpipelines", body)
    run = _wait_run(resources, "iris")
    assert run["phase"] == "Succeeded", run
    jobs = {
        job.metadata.name: job
        for job in BatchV1Api(client)
        .list_namespaced_job(resources.namespace, label_selector="conveyor.dev/run")
        .items
    }
    trials = jobs[f"{run['id']}-t"]
    assert trials.spec.completion_mode == "Indexed" and trials.status.succeeded == 3
    assert f"{run['id']}-f" in jobs
    version = resources.get("modelversions", "iris-classifier-v1")
    assert {"max_depth", "min_samples_leaf"} <= set(version["spec"]["params"])


def test_deleting_a_version_keeps_artifacts_unless_asked(
    sandbox: Sandbox, resources: Resources
) -> None:
    resources.create("featuresets", example("iris", "featureset.yaml"))
    resources.create("trainingpipelines", _pipeline("iris", promotion={"policy": "manual"}))
    _wait_run(resources, "iris")
    _request_run(sandbox, resources, "iris")
    _wait_run(resources, "iris", 2)
    store = sandbox.object_store
    s3 = s3_client(store.endpoint, store.credentials)

    def artifact_exists(version: str) -> bool:
        bucket, key = split_uri(resources.get("modelversions", version)["spec"]["artifact"]["uri"])
        return s3.list_objects_v2(Bucket=bucket, Prefix=key)["KeyCount"] == 1

    keys = {}
    for version in ("iris-classifier-v1", "iris-classifier-v2"):
        assert artifact_exists(version)
        keys[version] = split_uri(
            resources.get("modelversions", version)["spec"]["artifact"]["uri"]
        )
    resources.delete("modelversions", "iris-classifier-v1")
    resources.patch("modelversions", "iris-classifier-v2", {"spec": {"deleteArtifacts": True}})
    resources.delete("modelversions", "iris-classifier-v2")
    wait_for(
        lambda: not resources.exists("modelversions", "iris-classifier-v2"),
        timeout=20,
        what="v2 to be deleted",
    )
    bucket, key = keys["iris-classifier-v1"]
    assert s3.list_objects_v2(Bucket=bucket, Prefix=key)["KeyCount"] == 1
    bucket, key = keys["iris-classifier-v2"]
    assert s3.list_objects_v2(Bucket=bucket, Prefix=key.rsplit("/", 1)[0] + "/")["KeyCount"] == 0


def test_a_deleted_workload_secret_is_there_again_for_the_next_run(
    sandbox: Sandbox, resources: Resources, client: ApiClient
) -> None:
    # The namespace's copy of the S3 credentials is kept level-based, not once per process.
    resources.create("featuresets", example("iris", "featureset.yaml"))
    resources.create("trainingpipelines", _pipeline("iris"))
    assert _wait_run(resources, "iris")["phase"] == "Succeeded"
    core = CoreV1Api(client)
    core.delete_namespaced_secret("conveyor-s3-credentials", resources.namespace)
    _request_run(sandbox, resources, "iris")
    run = _wait_run(resources, "iris", 2)
    assert run["phase"] == "Succeeded", run
    secret = core.read_namespaced_secret("conveyor-s3-credentials", resources.namespace)
    assert set(secret.data) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
