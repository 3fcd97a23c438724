"""S3 failing for 30 s during materialization, training and serving start-up: the object's
conditions say S3 is unavailable, the work is retried, the right result comes once S3 is
back, and nothing partial is published in the bucket."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from kubernetes.client import ApiClient

from conveyor.contracts.labels import LABEL_COMPONENT
from conveyor.sandbox.s3faults import OutageMode, S3Outage
from conveyor.sandbox.stack import Sandbox
from tests.faults.conftest import Figure
from tests.faults.pods import running_pod, wait_log
from tests.faults.storage import check_bucket
from tests.integration.conftest import Resources, example, wait_for
from tests.integration.test_serving import ROWS, _post, _serving, _url, _wait_served
from tests.integration.test_training import _cli, _pipeline, _runs, _wait_run

OUTAGE_SECONDS = 30.0
TIMEOUT = 180


def _outage(
    sandbox: Sandbox, seconds: float, look: Callable[[], None], mode: OutageMode = "unavailable"
) -> S3Outage:
    """S3 fails for `seconds` while `look` is called every half second."""
    proxy = sandbox.s3_faults
    assert proxy is not None
    proxy.fail(mode)
    try:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            look()
            time.sleep(0.5)
    finally:
        outage = proxy.recover()
    return outage


class Seen:
    """The distinct conditions an object showed."""

    def __init__(self, resources: Resources, plural: str, name: str) -> None:
        self.resources, self.plural, self.name = resources, plural, name
        self.conditions: list[tuple[str, str, str, str]] = []

    def __call__(self) -> None:
        obj = self.resources.get(self.plural, self.name)
        for c in (obj.get("status") or {}).get("conditions") or []:
            key = (c["type"], c["status"], c.get("reason", ""), c.get("message", ""))
            if key not in self.conditions:
                self.conditions.append(key)

    def saying_s3_failed(self) -> list[tuple[str, str, str, str]]:
        return [c for c in self.conditions if c[2] == "StorageUnavailable" or "S3" in c[3]]


def test_materialization_through_an_s3_outage(
    sandbox: Sandbox, resources: Resources, client: ApiClient, figure: Figure
) -> None:
    namespace = resources.namespace
    resources.create("featuresets", example("iris", "featureset.yaml"))
    pod = running_pod(client, namespace, f"{LABEL_COMPONENT}=materialize")
    wait_log(client, namespace, pod.metadata.name, "Reading s3://")
    seen = Seen(resources, "featuresets", "iris")
    outage = _outage(sandbox, OUTAGE_SECONDS, seen)
    recovered = time.monotonic()
    resources.wait_ready("featuresets", "iris", "True", timeout=TIMEOUT)
    took = time.monotonic() - recovered
    bucket = check_bucket(sandbox, namespace)
    assert bucket.problems == [], bucket.problems
    snapshots = resources.get("featuresets", "iris")["status"]["snapshots"]
    assert bucket.snapshots == [s["id"] for s in snapshots], bucket
    assert seen.saying_s3_failed(), seen.conditions
    figure(
        f"{outage.describe()} during materialization: Ready {took:.1f} s after; {bucket.describe()}"
    )


def test_training_through_an_s3_outage(
    sandbox: Sandbox, resources: Resources, client: ApiClient, figure: Figure
) -> None:
    namespace = resources.namespace
    resources.create("featuresets", example("iris", "featureset.yaml"))
    resources.wait_ready("featuresets", "iris", "True", timeout=TIMEOUT)
    # The Job retries a failed pod after 0.5, 1, 2, 4, 8 s in the sandbox (10 s doubled in a
    # cluster): 6 retries outlast a 30 s outage.
    resources.create(
        "trainingpipelines", _pipeline("iris", runs={"runOnSpecChange": True, "backoffLimit": 6})
    )
    pod = running_pod(client, namespace, f"{LABEL_COMPONENT}=train")
    wait_log(client, namespace, pod.metadata.name, "Training ")
    seen = Seen(resources, "trainingpipelines", "iris")
    outage = _outage(sandbox, OUTAGE_SECONDS, seen)
    recovered = time.monotonic()
    run = _wait_run(resources, "iris")
    took = time.monotonic() - recovered
    assert run["phase"] == "Succeeded", run
    assert len(_runs(resources, "iris")) == 1
    versions = resources.list("modelversions")
    assert [v["spec"]["lineage"]["run"] for v in versions] == [run["id"]], versions
    bucket = check_bucket(sandbox, namespace)
    assert bucket.problems == [], bucket.problems
    assert bucket.runs == [run["id"]], bucket
    figure(
        f"{outage.describe()} during training (spec.runs.backoffLimit 6): the Job's retries "
        f"finished the run {took:.1f} s after; 1 run, 1 ModelVersion; {bucket.describe()}"
    )
    if not seen.saying_s3_failed():
        pytest.xfail(
            "Known gap, reported: while a run's Job retries pods that failed with "
            "StorageUnavailable, the TrainingPipeline's conditions say only 'Training on "
            f"snapshot ...' (seen: {seen.conditions})"
        )


def test_serving_start_up_through_an_s3_outage(
    sandbox: Sandbox, resources: Resources, client: ApiClient, figure: Figure
) -> None:
    resources.create("featuresets", example("iris", "featureset.yaml"))
    resources.create("trainingpipelines", _pipeline("iris", promotion={"policy": "manual"}))
    assert _wait_run(resources, "iris")["phase"] == "Succeeded"
    seen_version = Seen(resources, "modelversions", "iris-classifier-v1")
    seen_pipeline = Seen(resources, "trainingpipelines", "iris")

    def look() -> None:
        seen_version()
        seen_pipeline()

    promoted = _cli(sandbox, "promote", "iris-classifier-v1", "-n", resources.namespace)
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    outage = _outage(sandbox, OUTAGE_SECONDS, look)
    recovered = time.monotonic()

    def outcome() -> str | None:
        serving = _serving(resources)
        if serving.get("version") == "iris-classifier-v1" and not serving.get("rollingOut"):
            return "served"
        for failure in serving.get("failures") or []:
            if "StorageUnavailable" in failure.get("message", ""):
                return f"given up: {failure}"
        return None

    result = wait_for(outcome, timeout=TIMEOUT, what=f"serving ({_serving(resources)})")
    took = time.monotonic() - recovered
    if result != "served":
        figure(f"{outage.describe()} during serving start-up: NOT served; {result}")
        pytest.xfail(
            "Known product bug, reported: a serving pod restarting because S3 is unavailable "
            "(StorageUnavailable, retryable) counts as a crash loop after 3 restarts, and the "
            f"rollout is failed for good (reconcile/deployment_rollout.py): {result}"
        )
    _wait_served(resources, "iris-classifier-v1", timeout=TIMEOUT)
    status, answer = _post(f"{_url(client, resources.namespace)}/predict", ROWS)
    assert status == 200, answer
    figure(f"{outage.describe()} during serving start-up: served {took:.1f} s after")
    if not (seen_version.saying_s3_failed() or seen_pipeline.saying_s3_failed()):
        pytest.xfail(
            "Known gap, reported: while the serving pods restart because S3 is unavailable, "
            "no condition of the ModelVersion or the TrainingPipeline says so (seen: "
            f"{seen_version.conditions + seen_pipeline.conditions})"
        )
