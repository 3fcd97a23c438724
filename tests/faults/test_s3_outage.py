"""S3 failing for 30 s during a materialization, a training run and a serving start-up — all
three at once, in three namespaces, so the suite pays for one outage: the objects' conditions
say S3 is unavailable, the work is retried, the right result comes once S3 is back, and
nothing partial is published in the bucket."""

from __future__ import annotations

import time
from collections.abc import Callable

from kubernetes.client import ApiClient, CoreV1Api

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
Condition = tuple[str, str, str, str]


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
    """The distinct conditions some objects showed."""

    def __init__(self, resources: Resources, *objects: tuple[str, str]) -> None:
        self.resources, self.objects = resources, objects
        self.conditions: list[Condition] = []

    def __call__(self) -> None:
        for plural, name in self.objects:
            if not self.resources.exists(plural, name):
                continue
            obj = self.resources.get(plural, name)
            for c in (obj.get("status") or {}).get("conditions") or []:
                key = (c["type"], c["status"], c.get("reason", ""), c.get("message", ""))
                if key not in self.conditions:
                    self.conditions.append(key)

    def saying_s3_failed(self) -> list[Condition]:
        return [c for c in self.conditions if c[2] == "StorageUnavailable" or "S3 at" in c[3]]


def _namespace(client: ApiClient, resources: Resources, suffix: str) -> Resources:
    name = f"{resources.namespace}-{suffix}"
    CoreV1Api(client).create_namespace({"metadata": {"name": name}})
    return Resources(client, name)


def test_s3_failing_during_materialization_training_and_serving_start_up(
    sandbox: Sandbox, resources: Resources, client: ApiClient, figure: Figure
) -> None:
    materializing = resources
    training = _namespace(client, resources, "train")
    serving = _namespace(client, resources, "serve")
    # Before: a trained version to promote, a FeatureSet to train on.
    serving.create("featuresets", example("iris", "featureset.yaml"))
    serving.create("trainingpipelines", _pipeline("iris", promotion={"policy": "manual"}))
    training.create("featuresets", example("iris", "featureset.yaml"))
    training.wait_ready("featuresets", "iris", "True", timeout=TIMEOUT)
    assert _wait_run(serving, "iris")["phase"] == "Succeeded"
    # The default backoffLimit (1): the Job fails within seconds of the outage, and the run
    # runs it again 30 s later (reconcile/runs.py), after S3 is back.
    runs = {"runOnSpecChange": True}
    training.create("trainingpipelines", _pipeline("iris", runs=runs))
    running_pod(client, training.namespace, f"{LABEL_COMPONENT}=train")
    materializing.create("featuresets", example("iris", "featureset.yaml"))
    pod = running_pod(client, materializing.namespace, f"{LABEL_COMPONENT}=materialize")
    wait_log(client, materializing.namespace, pod.metadata.name, "Reading s3://")

    seen = {
        "materialization": Seen(materializing, ("featuresets", "iris")),
        "training": Seen(training, ("trainingpipelines", "iris")),
        "serving start-up": Seen(
            serving, ("modelversions", "iris-classifier-v1"), ("trainingpipelines", "iris")
        ),
    }
    promoted = False

    def look() -> None:
        nonlocal promoted
        if not promoted:  # S3 fails first, then the version is promoted
            answer = _cli(sandbox, "promote", "iris-classifier-v1", "-n", serving.namespace)
            assert answer.returncode == 0, answer.stdout + answer.stderr
            promoted = True
        for each in seen.values():
            each()

    outage = _outage(sandbox, OUTAGE_SECONDS, look)
    recovered = time.monotonic()

    # Each reaches its state: when, counted from S3's return.
    def served() -> str | None:
        now = _serving(serving)
        if now.get("version") == "iris-classifier-v1" and not now.get("rollingOut"):
            return "served"
        for failure in now.get("failures") or []:
            if "StorageUnavailable" in failure.get("message", ""):
                return f"given up: {failure}"
        return None

    def ready() -> bool:
        condition = materializing.condition("featuresets", "iris", "Ready")
        return condition is not None and condition["status"] == "True"

    def finished() -> dict[str, object] | None:
        runs = _runs(training, "iris")
        return runs[0] if runs and runs[0]["phase"] not in ("Pending", "Running") else None

    probes: dict[str, Callable[[], object]] = {
        "materialization": ready,
        "training": finished,
        "serving start-up": served,
    }
    took: dict[str, float] = {}
    results: dict[str, object] = {}

    def all_done() -> bool:
        for what, probe in probes.items():
            if what not in took and (result := probe()):
                took[what], results[what] = time.monotonic() - recovered, result
        return len(took) == len(probes)

    wait_for(all_done, timeout=TIMEOUT, what=f"all three to finish (done: {results})")

    # Materialization: retried, one whole snapshot.
    bucket = check_bucket(sandbox, materializing.namespace)
    assert bucket.problems == [], bucket.problems
    snapshots = materializing.get("featuresets", "iris")["status"]["snapshots"]
    assert bucket.snapshots == [s["id"] for s in snapshots] and len(snapshots) == 1, bucket
    figure(
        f"{outage.describe()} during materialization: Ready {took['materialization']:.1f} s "
        f"after; {bucket.describe()}"
    )

    # Training: the Job's retries finish the one run; one ModelVersion, one whole artifact.
    run = results["training"]
    assert isinstance(run, dict) and run["phase"] == "Succeeded", run
    assert len(_runs(training, "iris")) == 1
    versions = training.list("modelversions")
    assert [v["spec"]["lineage"]["run"] for v in versions] == [run["id"]], versions
    bucket = check_bucket(sandbox, training.namespace)
    assert bucket.problems == [], bucket.problems
    assert bucket.runs == [run["id"]], bucket
    figure(
        f"{outage.describe()} during training (default backoffLimit; retries {run.get('retries', 0)}): run Succeeded "
        f"{took['training']:.1f} s after, 1 run, 1 ModelVersion; {bucket.describe()}"
    )

    # Serving start-up: the promoted version serves once S3 is back.
    result = results["serving start-up"]
    gaps = []
    if result == "served":
        _wait_served(serving, "iris-classifier-v1", timeout=TIMEOUT)
        status, answer = _post(f"{_url(client, serving.namespace)}/predict", ROWS)
        assert status == 200, answer
        figure(
            f"{outage.describe()} during serving start-up: served on every pod "
            f"{took['serving start-up']:.1f} s after"
        )
    else:
        figure(f"{outage.describe()} during serving start-up: NOT served; {result}")
        gaps.append(
            "a serving pod restarting because S3 is unavailable (StorageUnavailable, "
            "retryable) counts as a crash loop after 3 restarts and the rollout is given up "
            f"for good (reconcile/deployment_rollout.py): {result}"
        )
    # Each object said, while S3 failed, that S3 was unavailable.
    quiet = [what for what, each in seen.items() if not each.saying_s3_failed()]
    if quiet:
        gaps.append(
            f"no condition said S3 was unavailable during the {', '.join(quiet)} "
            f"(seen: { {what: seen[what].conditions for what in quiet} })"
        )
    assert not gaps, "; ".join(gaps)
