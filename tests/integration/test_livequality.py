"""The live-quality monitor in the operator: a Production model's logged predictions and their
feedback become status.liveMetrics and gauges on the operator's /metrics."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from conveyor.contracts.layouts import feedback_key, prediction_key
from conveyor.features.predictionlog import FeedbackRecord, PredictionRecord, encode_records
from conveyor.sandbox.objectstore import s3_client
from conveyor.sandbox.stack import Sandbox
from tests.integration.conftest import Resources, example, running_sandbox, wait_for
from tests.integration.test_training import _pipeline, _stage, _wait_run

SPECIES = ["setosa", "versicolor", "virginica"]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """The conftest's sandbox with a monitor interval of one second."""
    yield from running_sandbox(tmp_path_factory, monitoring=False, monitor_interval_seconds=1.0)


def test_live_metrics_of_a_production_model(sandbox: Sandbox, resources: Resources) -> None:
    resources.create("featuresets", example("iris", "featureset.yaml"))
    resources.create("trainingpipelines", _pipeline("iris"))
    assert _wait_run(resources, "iris")["phase"] == "Succeeded"
    wait_for(
        lambda: _stage(resources, "iris-classifier-v1") == ("Production", "Production"),
        timeout=60,
        what="v1 in Production",
    )
    now = datetime.now(UTC)
    served = [
        PredictionRecord(
            request_id=f"r{i}",
            time=now,
            model="iris-classifier",
            version=1,
            inputs={
                "sepal_length_cm": 5.0 + i % 3,
                "sepal_width_cm": 3.0,
                "petal_length_cm": 1.5 + i % 4,
                "petal_width_cm": 0.2 + i % 2,
            },
            prediction=SPECIES[i % 3],
            scores={s: (0.8 if s == SPECIES[i % 3] else 0.1) for s in SPECIES},
        )
        for i in range(40)
    ]
    labels = [FeedbackRecord(f"r{i}", now, "iris-classifier", SPECIES[i % 3]) for i in range(30)]
    store = sandbox.object_store
    s3 = s3_client(store.endpoint, store.credentials)
    for key, records in (
        (prediction_key(resources.namespace, "iris-classifier", 1, now, "test", 1), served),
        (feedback_key(resources.namespace, "iris-classifier", now, "test", 1), labels),
    ):
        s3.put_object(Bucket="conveyor", Key=key, Body=encode_records(records))

    def live() -> dict | None:
        status = resources.get("modelversions", "iris-classifier-v1").get("status") or {}
        block = status.get("liveMetrics") or {}
        return block if block.get("labelledSamples") == 30 else None

    block = wait_for(live, timeout=30, what="status.liveMetrics with 30 labelled samples")
    assert block["metrics"]["accuracy"] == 1.0 and block["predictions"] == 40
    assert set(block["drift"]) >= {"sepal_length_cm", "petal_width_cm"}

    namespace = f'namespace="{resources.namespace}"'
    wanted = [
        f'conveyor_model_labelled_samples{{model="iris-classifier",{namespace},version="1"}} 30.0',
        f'conveyor_model_live_score{{metric="accuracy",model="iris-classifier",{namespace},'
        'version="1"} 1.0',
        f'conveyor_model_feature_drift{{feature="sepal_length_cm",method="ks",'
        f'model="iris-classifier",{namespace},version="1"}}',
    ]

    def scraped() -> list[str] | None:
        with urllib.request.urlopen(f"{sandbox.operator_url}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        missing = [line for line in wanted if line not in text]
        return None if missing else wanted

    wait_for(scraped, timeout=15, what="the gauges on the operator's /metrics")
