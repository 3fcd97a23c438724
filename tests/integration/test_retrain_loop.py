"""The whole loop, for real: the iris model serves; traffic shifts and its ground truth stops
matching; the operator's monitor exports the drift, real Prometheus fires the rule of
manifests/monitoring/rules.yaml, real Alertmanager calls the webhook with the token, the policy
refreshes the features (with the labelled production rows) and retrains, and the new version
rolls out — seen through the API and in the version the server answers with."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from conveyor.cli.loop import follow_retrain, iris_loop, send_labelled, shifted_iris
from conveyor.clients.kube import Kube
from conveyor.sandbox.monitoring import Monitoring
from conveyor.sandbox.stack import Sandbox
from tests.integration.conftest import Resources, example, running_sandbox, wait_for

pytestmark = pytest.mark.skipif(
    not Monitoring(state_dir=".", webhook_url="", webhook_token="").available()[0],
    reason="Prometheus and Alertmanager are not installed (apt-get install prometheus "
    "prometheus-alertmanager)",
)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    yield from running_sandbox(tmp_path_factory, monitoring=True, monitor_interval_seconds=1.0)


@pytest.mark.timeout(600)
def test_drift_alert_retrains_on_production_rows_and_the_new_version_serves(
    sandbox: Sandbox, resources: Resources
) -> None:
    namespace = resources.namespace
    resources.create("featuresets", example("iris", "featureset.yaml"))
    resources.create("trainingpipelines", example("iris", "trainingpipeline.yaml"))
    policy = example("iris", "retrainpolicy.yaml")
    policy["spec"]["triggers"]["alert"]["matchers"].append(
        {"label": "namespace", "value": namespace}
    )
    resources.create("retrainpolicies", policy)
    first = wait_for(
        lambda: (
            (resources.get("trainingpipelines", "iris").get("status") or {})
            .get("serving", {})
            .get("version")
        ),
        timeout=240,
        what="iris-classifier-v1 to serve",
    )
    client = Kube.from_kubeconfig(str(sandbox.kubeconfig))
    loop = iris_loop(client, namespace, sandbox)
    assert loop.prometheus_url is not None
    try:
        started = time.monotonic()
        labelled = send_labelled(client, namespace, "iris-classifier", shifted_iris(1.8, 10_000))
        assert labelled == 150
        times = follow_retrain(loop, first, started, timeout=400, say=print)
    finally:
        client.close()
    assert times.serving is not None, times.notes
    assert times.trigger == "alert"
    assert times.bad_metric is not None and times.alert_firing is not None
    assert times.bad_metric <= times.alert_firing <= times.decision  # type: ignore[operator]
    print({name: round(value, 1) for name, value in times.phases().items() if value is not None})

    # The run trained on a refreshed snapshot that holds the labelled production rows.
    pipeline = resources.get("trainingpipelines", "iris")["status"]
    run = next(r for r in pipeline["runs"] if (r["trigger"].get("source")) == "iris")
    assert run["trigger"]["type"] == "alert"
    assert re.search(r"alert Conveyor(FeatureDrift|LiveScoreLow) ", run["trigger"]["reason"])
    featureset = resources.get("featuresets", "iris")["status"]
    assert run["snapshot"] == featureset["latestSnapshot"]["id"]
    assert featureset["latestSnapshot"]["rows"] == 150 + 150
    new = resources.get("modelversions", times.new_version)
    assert new["spec"]["lineage"]["snapshot"] == run["snapshot"]
    assert pipeline["productionVersion"] == times.new_version != first
    decision = next(
        d for d in resources.get("retrainpolicies", "iris")["status"]["decisions"] if d["fired"]
    )
    assert decision["run"] == run["id"]
