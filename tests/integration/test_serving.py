"""Serving in the sandbox: the Production version rolled out as a Deployment behind a Service,
answering real HTTP; promotion without a failed request; a version that cannot serve rolled
back by the operator; serving scaled to zero and removed with its pipeline."""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes.client import ApiClient, ApiException, AppsV1Api, AutoscalingV2Api, CoreV1Api

from conveyor.clients.s3 import split_uri
from conveyor.contracts.labels import SANDBOX_URL, SPEC_HASH
from conveyor.sandbox.objectstore import s3_client
from conveyor.sandbox.stack import Sandbox
from tests.conftest import EXAMPLES
from tests.integration.conftest import Resources, example, wait_for
from tests.integration.test_training import _cli, _pipeline, _stage, _wait_run

ROLLOUT_TIMEOUT = 90
ROWS = json.loads((EXAMPLES / "requests" / "iris.json").read_text())


def _serving(resources: Resources, pipeline: str = "iris") -> dict[str, Any]:
    return dict(
        (resources.get("trainingpipelines", pipeline).get("status") or {}).get("serving") or {}
    )


def _wait_served(resources: Resources, version: str, timeout: float = ROLLOUT_TIMEOUT) -> None:
    """Until the pipeline serves `version` on every pod and the version's own status says so
    (the ModelVersion's reconcile follows the pipeline's, a moment later)."""
    wait_for(
        lambda: (s := _serving(resources)).get("version") == version and not s.get("rollingOut"),
        timeout=timeout,
        what=f"{version} to serve on every pod (serving: {_serving(resources)})",
    )
    wait_for(
        lambda: _stage(resources, version)[1] == "Production",
        timeout=timeout,
        what=f"{version}'s status.stage to say Production (it says {_stage(resources, version)})",
    )


def _url(client: ApiClient, namespace: str, service: str = "iris-classifier") -> str:
    body = CoreV1Api(client).read_namespaced_service(service, namespace)
    return str((body.metadata.annotations or {})[SANDBOX_URL])


def _post(url: str, body: Any, timeout: float = 10) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _served_by(answer: dict[str, Any]) -> str:
    """The version an answer names (the server's model_version)."""
    return str(answer["model_version"])


def _trained(resources: Resources, **spec: Any) -> None:
    """iris trained once; with the example's auto policy, v1 Production and serving."""
    resources.create("featuresets", example("iris", "featureset.yaml"))
    resources.create("trainingpipelines", _pipeline("iris", **spec))
    assert _wait_run(resources, "iris")["phase"] == "Succeeded"
    if "promotion" not in spec:
        _wait_served(resources, "iris-classifier-v1")


def _second_version(sandbox: Sandbox, resources: Resources) -> None:
    """A second run's version, a Candidate (the pipelines here promote by hand)."""
    requested = _cli(sandbox, "run", "iris", "-n", resources.namespace)
    assert requested.returncode == 0, requested.stdout + requested.stderr
    assert _wait_run(resources, "iris", 2)["phase"] == "Succeeded"


def _manual(**spec: Any) -> dict[str, Any]:
    return {"promotion": {"policy": "manual"}, **spec}


def _promote(sandbox: Sandbox, resources: Resources, version: str) -> None:
    promoted = _cli(sandbox, "promote", version, "-n", resources.namespace)
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr


def test_the_production_version_serves_behind_its_service(
    sandbox: Sandbox, resources: Resources, client: ApiClient
) -> None:
    _trained(resources)
    namespace = resources.namespace
    deployment = AppsV1Api(client).read_namespaced_deployment("iris-classifier", namespace)
    assert deployment.metadata.owner_references[0].kind == "TrainingPipeline"
    assert deployment.spec.strategy.rolling_update.max_unavailable == 0
    version = resources.get("modelversions", "iris-classifier-v1")
    assert version["status"]["stage"] == "Production"
    assert version["status"]["serving"]["url"] == f"http://iris-classifier.{namespace}.svc:8080"
    serving = next(c for c in version["status"]["conditions"] if c["type"] == "Serving")
    assert serving["status"] == "True"
    pipeline = resources.get("trainingpipelines", "iris")["status"]
    assert pipeline["servingUrl"] == f"http://iris-classifier.{namespace}.svc:8080"

    status, answer = _post(f"{_url(client, namespace)}/predict", ROWS)
    assert status == 200, answer
    assert _served_by(answer) in ("1", "iris-classifier-v1")
    predicted = _cli(
        sandbox, "predict", "iris-classifier", "-f", "examples/requests/iris.json", "-n", namespace
    )
    assert predicted.returncode == 0, predicted.stderr
    assert "setosa" in predicted.stdout and "virginica" in predicted.stdout

    # The ground truth of that prediction goes to the feedback log, beside the prediction.
    request_id = json.loads(predicted.stdout)["request_id"]
    labels = sandbox.state_dir / f"labels-{namespace}.json"
    labels.write_text(json.dumps({"request_id": request_id, "labels": ["setosa", "virginica"]}))
    sent = _cli(sandbox, "feedback", "iris-classifier", "-f", str(labels), "-n", namespace)
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["accepted"] == 2  # unknown to this pod if another answered
    store = sandbox.object_store
    s3 = s3_client(store.endpoint, store.credentials)

    def logged(kind: str) -> list[str]:
        prefix = f"logs/{namespace}/{kind}/model=iris-classifier/"
        listing = s3.list_objects_v2(Bucket="conveyor", Prefix=prefix)
        return [item["Key"] for item in listing.get("Contents", [])]

    wait_for(lambda: logged("feedback") and logged("predictions"), what="the logs", timeout=60)

    # The operator keeps what it owns as it built it: a Service changed behind its back (or
    # left by an older operator) is put back, and rotated S3 credentials reach the namespace.
    core = CoreV1Api(client)
    built = core.read_namespaced_service("iris-classifier", namespace).metadata.annotations
    stale = {"metadata": {"annotations": {SPEC_HASH: "0000000000000000"}}}
    core.patch_namespaced_service("iris-classifier", namespace, stale)
    wait_for(
        lambda: (
            core.read_namespaced_service("iris-classifier", namespace).metadata.annotations[
                SPEC_HASH
            ]
            == built[SPEC_HASH]
        ),
        timeout=30,
        what="the Service put back",
    )
    source = core.read_namespaced_secret("conveyor-s3-credentials", "conveyor-system").data
    key = "AWS_SECRET_ACCESS_KEY"
    rotated = base64.b64encode(base64.b64decode(source[key]) + b"-rotated").decode()
    for value in (rotated, source[key]):  # rotate, then back (the sandbox's S3 takes both)
        core.patch_namespaced_secret(
            "conveyor-s3-credentials", "conveyor-system", {"data": {key: value}}
        )
        wait_for(
            lambda value=value: (
                core.read_namespaced_secret("conveyor-s3-credentials", namespace).data[key] == value
            ),  # type: ignore[misc]
            timeout=30,
            what="the rotated credentials copied into the namespace",
        )


@dataclass
class Load:
    """A client sending requests without pause through the Service's URL."""

    url: str
    answers: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                status, answer = _post(self.url, ROWS, timeout=10)
            except OSError as error:
                self.failures.append(f"{type(error).__name__}: {error}")
                continue
            if status != 200:
                self.failures.append(f"{status}: {answer}")
            else:
                self.answers.append(_served_by(answer))


def test_promotion_under_load_fails_no_request(
    sandbox: Sandbox, resources: Resources, client: ApiClient
) -> None:
    _trained(resources, **_manual())
    # Manual policy: v1 is promoted by hand once, then v2.
    _promote(sandbox, resources, "iris-classifier-v1")
    _wait_served(resources, "iris-classifier-v1")
    _second_version(sandbox, resources)
    load = Load(f"{_url(client, resources.namespace)}/predict")
    thread = threading.Thread(target=load.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(load.answers) >= 20, what="the load to be answered")
        _promote(sandbox, resources, "iris-classifier-v2")
        _wait_served(resources, "iris-classifier-v2")
        seen = len(load.answers)
        wait_for(lambda: len(load.answers) >= seen + 50, what="answers after the rollout")
    finally:
        load.stop.set()
        thread.join(timeout=30)
    assert load.failures == [], load.failures[:5]
    after = load.answers[seen + 5 :]  # answers given once the old pods were gone
    assert after and set(after) <= {"2", "iris-classifier-v2"}, set(after)
    assert _stage(resources, "iris-classifier-v2") == ("Production", "Production")
    wait_for(  # v1's own reconcile follows the pipeline's
        lambda: _stage(resources, "iris-classifier-v1") == ("Archived", "Archived"),
        what=f"v1's status to say Archived (it says {_stage(resources, 'iris-classifier-v1')})",
    )


def _overwrite(sandbox: Sandbox, uri: str, data: bytes) -> None:
    store = sandbox.object_store
    bucket, key = split_uri(uri)
    s3 = s3_client(store.endpoint, store.credentials)
    s3.put_object(Bucket=bucket, Key=key, Body=data)


def _break_digest(sandbox: Sandbox, version: dict[str, Any]) -> None:
    _overwrite(sandbox, version["spec"]["artifact"]["uri"], b"not the trained model")


def _break_warmup(sandbox: Sandbox, version: dict[str, Any]) -> None:
    store = sandbox.object_store
    uri = version["spec"]["artifact"]["cardUri"]
    bucket, key = split_uri(uri)
    s3 = s3_client(store.endpoint, store.credentials)
    card = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    card["sample_row"] = {"sepal_length_cm": "not a number"}
    _overwrite(sandbox, uri, json.dumps(card).encode())


@pytest.mark.parametrize(
    ("breaks", "reason"),
    [(_break_digest, "DigestMismatch"), (_break_warmup, "WarmupFailed")],
)
def test_a_version_that_cannot_serve_is_rolled_back_by_the_operator(
    sandbox: Sandbox, resources: Resources, client: ApiClient, breaks: Any, reason: str
) -> None:
    _trained(resources, **_manual())
    _promote(sandbox, resources, "iris-classifier-v1")
    _wait_served(resources, "iris-classifier-v1")
    _second_version(sandbox, resources)
    breaks(sandbox, resources.get("modelversions", "iris-classifier-v2"))
    _promote(sandbox, resources, "iris-classifier-v2")

    failed = wait_for(
        lambda: next(
            (
                f
                for f in _serving(resources).get("failures", [])
                if f["version"] == "iris-classifier-v2"
            ),
            None,
        ),
        timeout=ROLLOUT_TIMEOUT,
        what=f"the rollout of v2 to fail with {reason}",
    )
    assert failed["reason"] == reason, failed
    _wait_served(resources, "iris-classifier-v1")
    # v2's spec stays as a person wrote it; its status says what is served.
    assert _stage(resources, "iris-classifier-v2") == ("Production", "Candidate")
    assert _stage(resources, "iris-classifier-v1") == ("Archived", "Production")
    serving = resources.wait_condition(
        "modelversions", "iris-classifier-v2", "False", reason, type_="Serving"
    )
    assert "iris-classifier-v1 serves instead" in serving["message"]
    status, answer = _post(f"{_url(client, resources.namespace)}/predict", ROWS)
    assert status == 200 and _served_by(answer) in ("1", "iris-classifier-v1")


def test_a_rollout_past_its_deadline_is_rolled_back(sandbox: Sandbox, resources: Resources) -> None:
    _trained(resources, **_manual())
    _promote(sandbox, resources, "iris-classifier-v1")
    _wait_served(resources, "iris-classifier-v1")
    _second_version(sandbox, resources)
    # A server needs seconds to load: a one-second deadline cannot be met.
    resources.patch(
        "trainingpipelines", "iris", {"spec": {"serving": {"progressDeadlineSeconds": 1}}}
    )
    _promote(sandbox, resources, "iris-classifier-v2")
    failed = wait_for(
        lambda: next(iter(_serving(resources).get("failures", [])), None),
        timeout=ROLLOUT_TIMEOUT,
        what="the rollout of v2 to miss its deadline",
    )
    assert (failed["version"], failed["reason"]) == (
        "iris-classifier-v2",
        "ProgressDeadlineExceeded",
    )
    _wait_served(resources, "iris-classifier-v1")


def test_without_a_production_version_serving_scales_to_zero(
    sandbox: Sandbox, resources: Resources, client: ApiClient
) -> None:
    _trained(resources)
    resources.patch("modelversions", "iris-classifier-v1", {"spec": {"stage": "Archived"}})
    condition = resources.wait_condition(
        "trainingpipelines", "iris", "False", "NoProductionVersion", type_="Serving", timeout=30
    )
    assert "scaled to zero" in condition["message"]
    deployment = AppsV1Api(client).read_namespaced_deployment(
        "iris-classifier", resources.namespace
    )
    assert deployment.spec.replicas == 0


def test_autoscaling_and_removal_with_the_pipeline(resources: Resources, client: ApiClient) -> None:
    _trained(resources, serving={"minReplicas": 1, "maxReplicas": 3, "targetCpuUtilization": 70})
    namespace = resources.namespace
    autoscaler = AutoscalingV2Api(client).read_namespaced_horizontal_pod_autoscaler(
        "iris-classifier", namespace
    )
    assert (autoscaler.spec.min_replicas, autoscaler.spec.max_replicas) == (1, 3)
    assert autoscaler.spec.scale_target_ref.name == "iris-classifier"
    autoscaling = AutoscalingV2Api(client)

    def bounds() -> tuple[int, int] | None:
        try:
            hpa = autoscaling.read_namespaced_horizontal_pod_autoscaler(
                "iris-classifier", namespace
            )
        except ApiException as error:
            assert error.status == 404, error
            return None
        return hpa.spec.min_replicas, hpa.spec.max_replicas

    # New bounds patch the autoscaler; without them it goes, and replicas decide again.
    resources.patch("trainingpipelines", "iris", {"spec": {"serving": {"maxReplicas": 4}}})
    wait_for(lambda: bounds() == (1, 4), timeout=30, what="the autoscaler patched to 1-4")
    removed = {"spec": {"serving": {"minReplicas": None, "maxReplicas": None, "replicas": 1}}}
    resources.patch("trainingpipelines", "iris", removed)
    wait_for(lambda: bounds() is None, timeout=30, what="the autoscaler deleted")
    resources.delete("trainingpipelines", "iris")
    apps, core = AppsV1Api(client), CoreV1Api(client)
    wait_for(
        lambda: (
            not apps.list_namespaced_deployment(namespace).items
            and not core.list_namespaced_service(namespace).items
        ),
        timeout=30,
        what="the serving Deployment and Service to go with their pipeline",
    )
