"""The API server answers 429 (with Retry-After), 500 and 409 to a share of the operator's
requests and cuts its watch streams every few seconds: a FeatureSet still materializes, a
TrainingPipeline trains and registers exactly one ModelVersion, and that version is promoted
to Production and serves."""

from __future__ import annotations

import time

from conveyor.sandbox.faults import ApiFaultPlan
from conveyor.sandbox.stack import Sandbox
from tests.faults.conftest import Figure
from tests.integration.conftest import Resources, example, wait_for
from tests.integration.test_serving import _wait_served
from tests.integration.test_training import _pipeline, _runs, _wait_run

PLAN = ApiFaultPlan(share=0.1, codes=(429, 500, 409), drop_watches_after=3.0, seed=13)
TIMEOUT = 240


def test_every_object_reaches_its_state_through_api_errors_and_cut_watches(
    sandbox: Sandbox, resources: Resources, figure: Figure
) -> None:
    started = time.monotonic()
    sandbox.api_faults.switch_on(PLAN)
    try:
        resources.create("featuresets", example("iris", "featureset.yaml"))
        resources.create("trainingpipelines", _pipeline("iris"))
        resources.wait_ready("featuresets", "iris", "True", timeout=TIMEOUT)
        materialized = time.monotonic() - started
        run = _wait_run(resources, "iris")
        trained = time.monotonic() - started
        _wait_served(resources, "iris-classifier-v1", timeout=TIMEOUT)
        served = time.monotonic() - started
    finally:
        counts = sandbox.api_faults.switch_off()
    assert run["phase"] == "Succeeded", run
    # Exactly one of each, also once the operator looked again without faults.
    wait_for(
        lambda: (
            resources.get("trainingpipelines", "iris")["status"].get("productionVersion")
            == "iris-classifier-v1"
        ),
        what="the pipeline's productionVersion",
    )
    assert [r["id"] for r in _runs(resources, "iris")] == [run["id"]]
    versions = resources.list("modelversions")
    assert [v["metadata"]["name"] for v in versions] == ["iris-classifier-v1"]
    assert versions[0]["spec"]["lineage"]["run"] == run["id"]
    snapshots = resources.get("featuresets", "iris")["status"]["snapshots"]
    assert len(snapshots) == 1, snapshots
    # The faults did happen, each kind of them.
    assert all(counts.faulted[code] > 0 for code in PLAN.codes), counts
    assert counts.watches_dropped > 0, counts
    figure(
        f"API faults ({PLAN.share:.0%} of the operator's calls, watches cut after "
        f"{PLAN.drop_watches_after:g} s, seed {PLAN.seed}): {counts.describe()}; "
        f"FeatureSet Ready at {materialized:.1f} s, run Succeeded at {trained:.1f} s, "
        f"1 run, 1 ModelVersion, Production and serving at {served:.1f} s"
    )
