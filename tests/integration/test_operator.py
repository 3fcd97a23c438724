"""The operator, as a real process in the sandbox: what a user sees of the reconciles."""

from __future__ import annotations

import json
import urllib.request

from kubernetes.client import ApiClient, BatchV1Api, CoreV1Api

from conveyor.sandbox.stack import Sandbox
from tests.integration.conftest import Resources, example, wait_for


def _events(client: ApiClient, namespace: str, name: str) -> list[tuple[str, str]]:
    items = (
        CoreV1Api(client)
        .list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
        .items
    )
    return [(event.type, event.reason) for event in items]


def test_pipeline_and_policy_are_ready_with_events(resources: Resources, client: ApiClient) -> None:
    resources.create("featuresets", example("iris", "featureset.yaml"))
    resources.create("trainingpipelines", example("iris", "trainingpipeline.yaml"))
    resources.create("retrainpolicies", example("iris", "retrainpolicy.yaml"))
    ready = resources.wait_ready("trainingpipelines", "iris", "True", "SpecValid")
    assert 'FeatureSet "iris"' in ready["message"]
    resources.wait_ready("retrainpolicies", "iris", "True")
    policy = resources.get("retrainpolicies", "iris")
    assert policy["status"]["nextScheduledTime"].endswith("T03:00:00Z")
    wait_for(
        lambda: ("Normal", "SpecValid") in _events(client, resources.namespace, "iris"),
        what="a Normal Event",
    )


def test_pipeline_recovers_when_its_featureset_appears(resources: Resources) -> None:
    resources.create("trainingpipelines", example("iris", "trainingpipeline.yaml"))
    ready = resources.wait_ready("trainingpipelines", "iris", "False", "FeatureSetNotFound")
    assert f'FeatureSet "iris" not found in namespace "{resources.namespace}"' in ready["message"]
    resources.create("featuresets", example("iris", "featureset.yaml"))
    resources.wait_ready("trainingpipelines", "iris", "True", "SpecValid", timeout=5)
    resources.delete("featuresets", "iris")
    resources.wait_ready("trainingpipelines", "iris", "False", "FeatureSetNotFound", timeout=5)


def test_policy_recovers_when_its_pipeline_appears(resources: Resources) -> None:
    resources.create("retrainpolicies", example("iris", "retrainpolicy.yaml"))
    resources.wait_ready("retrainpolicies", "iris", "False", "PipelineNotFound")
    pipeline = example("iris", "trainingpipeline.yaml")
    pipeline["spec"]["runs"] = {"runOnSpecChange": False}
    resources.create("trainingpipelines", pipeline)
    resources.wait_ready("retrainpolicies", "iris", "True", timeout=5)


def test_spec_update_is_reconciled_at_the_new_generation(
    resources: Resources, client: ApiClient
) -> None:
    resources.create("featuresets", example("iris", "featureset.yaml"))
    pipeline = example("iris", "trainingpipeline.yaml")
    pipeline["spec"]["runs"] = {"runOnSpecChange": False}
    resources.create("trainingpipelines", pipeline)
    resources.wait_ready("trainingpipelines", "iris", "True")
    resources.patch("trainingpipelines", "iris", {"spec": {"metric": "rmse"}})
    ready = resources.wait_ready("trainingpipelines", "iris", "False", "InvalidSpec")
    expected = "spec.metric: rmse is a regression metric but the task is classification"
    assert expected in ready["message"]
    assert resources.get("trainingpipelines", "iris")["status"]["observedGeneration"] == 2
    wait_for(
        lambda: ("Warning", "InvalidSpec") in _events(client, resources.namespace, "iris"),
        what="a Warning Event",
    )
    resources.patch("trainingpipelines", "iris", {"spec": {"metric": "accuracy"}})
    resources.wait_ready("trainingpipelines", "iris", "True")


def test_unknown_estimator_is_refused_before_any_job(
    resources: Resources, client: ApiClient
) -> None:
    resources.create("featuresets", example("iris", "featureset.yaml"))
    pipeline = example("iris", "trainingpipeline.yaml")
    pipeline["spec"]["model"]["estimator"] = "RandomForrestClassifier"
    pipeline["spec"]["model"]["params"] = {"n_estimatorz": 10}
    resources.create("trainingpipelines", pipeline)
    ready = resources.wait_ready("trainingpipelines", "iris", "False", "InvalidSpec")
    assert "spec.model.estimator" in ready["message"]
    assert "RandomForestClassifier" in ready["message"]  # the suggestion
    jobs = BatchV1Api(client).list_namespaced_job(
        resources.namespace, label_selector="conveyor.dev/pipeline"
    )
    assert jobs.items == []


def test_operator_restart_resumes_without_losing_objects(
    sandbox: Sandbox, resources: Resources
) -> None:
    pipeline = example("iris", "trainingpipeline.yaml")
    pipeline["spec"]["runs"] = {"runOnSpecChange": False}
    resources.create("trainingpipelines", pipeline)
    before = resources.wait_ready("trainingpipelines", "iris", "False", "FeatureSetNotFound")
    sandbox.stop_operator()
    try:
        # While the operator is down: the FeatureSet appears and the pipeline changes.
        resources.create("featuresets", example("iris", "featureset.yaml"))
        resources.patch("trainingpipelines", "iris", {"spec": {"metric": "accuracy"}})
    finally:
        sandbox.start_operator()
    after = resources.wait_ready("trainingpipelines", "iris", "True", "SpecValid")
    assert after["lastTransitionTime"] >= before["lastTransitionTime"]
    assert resources.get("trainingpipelines", "iris")["status"]["observedGeneration"] == 2


def test_delete_leaves_nothing_behind(resources: Resources) -> None:
    pipeline = example("iris", "trainingpipeline.yaml")
    pipeline["spec"]["runs"] = {"runOnSpecChange": False}
    resources.create("trainingpipelines", pipeline)
    resources.wait_ready("trainingpipelines", "iris", "False")
    resources.delete("trainingpipelines", "iris")
    wait_for(
        lambda: not resources.exists("trainingpipelines", "iris"),
        timeout=10,
        what="the pipeline to be deleted (no finalizer stuck)",
    )


def test_health_and_metrics_endpoints(sandbox: Sandbox, resources: Resources) -> None:
    resources.create("retrainpolicies", example("iris", "retrainpolicy.yaml"))
    resources.wait_ready("retrainpolicies", "iris", "False")
    with urllib.request.urlopen(f"{sandbox.operator_url}/healthz") as response:
        assert json.load(response) == {"status": "ok"}
    with urllib.request.urlopen(f"{sandbox.operator_url}/metrics") as response:
        text = response.read().decode()
    assert 'conveyor_reconciles_total{kind="RetrainPolicy"}' in text
    assert 'conveyor_reconcile_duration_seconds_count{kind="RetrainPolicy"}' in text
    assert "conveyor_reconcile_errors_total" in text
