"""The operator, as a real process, against the sandbox API: the behaviour a user sees."""

from __future__ import annotations

import json
import urllib.request

from kubernetes.client import ApiClient, CoreV1Api

from tests.integration.conftest import OperatorProcess, Resources, example, wait_for


def _events(client: ApiClient, name: str) -> list[tuple[str, str]]:
    items = CoreV1Api(client).list_namespaced_event(
        "default", field_selector=f"involvedObject.name={name}"
    ).items
    return [(event.type, event.reason) for event in items]


def test_iris_example_becomes_ready_with_events(
    operator: OperatorProcess, resources: Resources, client: ApiClient
) -> None:
    resources.create("featuresets", example("iris", "featureset.yaml"))
    resources.create("trainingpipelines", example("iris", "trainingpipeline.yaml"))
    resources.create("retrainpolicies", example("iris", "retrainpolicy.yaml"))
    resources.wait_ready("featuresets", "iris", "True", "SpecValid")
    ready = resources.wait_ready("trainingpipelines", "iris", "True", "SpecValid")
    assert 'FeatureSet "iris"' in ready["message"]
    resources.wait_ready("retrainpolicies", "iris", "True")
    policy = resources.get("retrainpolicies", "iris")
    assert policy["status"]["nextScheduledTime"].endswith("T03:00:00Z")
    wait_for(lambda: ("Normal", "SpecValid") in _events(client, "iris"), what="a Normal Event")


def test_pipeline_recovers_when_its_featureset_appears(
    operator: OperatorProcess, resources: Resources
) -> None:
    resources.create("trainingpipelines", example("iris", "trainingpipeline.yaml"))
    ready = resources.wait_ready("trainingpipelines", "iris", "False", "FeatureSetNotFound")
    assert 'FeatureSet "iris" not found in namespace "default"' in ready["message"]
    resources.create("featuresets", example("iris", "featureset.yaml"))
    resources.wait_ready("trainingpipelines", "iris", "True", "SpecValid", timeout=5)
    resources.delete("featuresets", "iris")
    resources.wait_ready("trainingpipelines", "iris", "False", "FeatureSetNotFound", timeout=5)


def test_policy_recovers_when_its_pipeline_appears(
    operator: OperatorProcess, resources: Resources
) -> None:
    resources.create("retrainpolicies", example("iris", "retrainpolicy.yaml"))
    resources.wait_ready("retrainpolicies", "iris", "False", "PipelineNotFound")
    resources.create("trainingpipelines", example("iris", "trainingpipeline.yaml"))
    resources.wait_ready("retrainpolicies", "iris", "True", timeout=5)


def test_spec_update_is_reconciled_at_the_new_generation(
    operator: OperatorProcess, resources: Resources, client: ApiClient
) -> None:
    resources.create("featuresets", example("iris", "featureset.yaml"))
    resources.create("trainingpipelines", example("iris", "trainingpipeline.yaml"))
    resources.wait_ready("trainingpipelines", "iris", "True")
    resources.patch("trainingpipelines", "iris", {"spec": {"metric": "rmse"}})
    ready = resources.wait_ready("trainingpipelines", "iris", "False", "InvalidSpec")
    assert "spec.metric: rmse does not fit a classification task" in ready["message"]
    assert resources.get("trainingpipelines", "iris")["status"]["observedGeneration"] == 2
    wait_for(lambda: ("Warning", "InvalidSpec") in _events(client, "iris"), what="a Warning")
    resources.patch("trainingpipelines", "iris", {"spec": {"metric": "accuracy"}})
    resources.wait_ready("trainingpipelines", "iris", "True")


def test_operator_restart_resumes_without_losing_objects(
    operator: OperatorProcess, resources: Resources
) -> None:
    resources.create("featuresets", example("iris", "featureset.yaml"))
    before = resources.wait_ready("featuresets", "iris", "True")
    operator.stop()
    # While the operator is down: a new pipeline, and a change to the FeatureSet.
    resources.create("trainingpipelines", example("iris", "trainingpipeline.yaml"))
    resources.patch("featuresets", "iris", {"spec": {"deduplicate": False}})
    operator.start()
    resources.wait_ready("trainingpipelines", "iris", "True")
    after = resources.wait_ready("featuresets", "iris", "True")
    assert after["lastTransitionTime"] == before["lastTransitionTime"]  # no spurious transition
    assert resources.get("featuresets", "iris")["status"]["observedGeneration"] == 2


def test_delete_leaves_nothing_behind(operator: OperatorProcess, resources: Resources) -> None:
    resources.create("featuresets", example("iris", "featureset.yaml"))
    resources.wait_ready("featuresets", "iris", "True")
    resources.delete("featuresets", "iris")

    def gone() -> bool:
        try:
            resources.get("featuresets", "iris")
        except Exception as error:  # ApiException 404
            return getattr(error, "status", None) == 404
        return False

    wait_for(gone, timeout=5, what="the FeatureSet to be deleted (no finalizer stuck)")


def test_health_and_metrics_endpoints(operator: OperatorProcess, resources: Resources) -> None:
    resources.create("featuresets", example("iris", "featureset.yaml"))
    resources.wait_ready("featuresets", "iris", "True")
    with urllib.request.urlopen(f"{operator.url}/healthz") as response:
        assert json.load(response) == {"status": "ok"}
    with urllib.request.urlopen(f"{operator.url}/metrics") as response:
        text = response.read().decode()
    assert 'conveyor_reconciles_total{kind="FeatureSet"}' in text
    assert 'conveyor_reconcile_duration_seconds_count{kind="FeatureSet"}' in text
    assert "conveyor_reconcile_errors_total" in text
