"""Canary rollouts in the sandbox, over real HTTP: the new version serves beside the stable one
behind the model's Service, judged on both versions' own /metrics (read through the API
server's pod proxy); a healthy one is promoted to every pod, one that answers 5xx is aborted.

The failing version is a real model, not a fault switch: a CategoricalNB trained on the raw
iris measurements knows only the categories (whole centimetres, min_categories 10) it was
fitted on; on a 15 cm sepal its ONNX graph indexes out of range (onnxruntime's
INVALID_ARGUMENT; scikit-learn's IndexError without ONNX) — a 500 from the server — where the
stable random forest answers. The load sends such a row in about half of its requests."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client import ApiClient, AppsV1Api, CoreV1Api

from conveyor.sandbox.stack import Sandbox
from tests.integration.conftest import Resources, example, wait_for
from tests.integration.test_serving import (
    ROLLOUT_TIMEOUT,
    ROWS,
    _post,
    _promote,
    _served_by,
    _serving,
    _url,
    _wait_served,
)
from tests.integration.test_training import _cli, _pipeline, _stage, _wait_run

LONG_FLOWER = {
    "sepal_length_cm": 15.0,
    "sepal_width_cm": 3.0,
    "petal_length_cm": 5.0,
    "petal_width_cm": 1.8,
}
V1, V2 = "iris-classifier-v1", "iris-classifier-v2"


@dataclass
class Load:
    """A client sending one of `rows` at a time through the Service's URL, without pause; a
    new connection a request, so the Service spreads them over the pods of both versions."""

    url: str
    rows: list[Any] = field(default_factory=lambda: [ROWS])
    answers: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        # At random, not in turn: the Service takes connections in turn, so rows in turn would
        # pair each kind of row with one version.
        choose = random.Random(7).choice
        while not self.stop.is_set():
            try:
                status, answer = _post(self.url, choose(self.rows), timeout=10)
            except OSError as error:
                self.failures.append(f"{type(error).__name__}: {error}")
                continue
            if status != 200:
                self.failures.append(f"{status}: {answer}")
            else:
                self.answers.append(_served_by(answer))


def _canary_spec(**rollout: Any) -> dict[str, Any]:
    return {
        "promotion": {"policy": "manual"},
        "gates": {},
        "serving": {
            "replicas": 2,
            "rollout": {
                "strategy": "Canary",
                "steps": [{"weight": 50, "pauseSeconds": 2}],
                "minRequests": 10,
                **rollout,
            },
        },
    }


def _first_version_serving(
    sandbox: Sandbox, resources: Resources, featureset: dict[str, Any], **spec: Any
) -> None:
    resources.create("featuresets", featureset)
    resources.create(
        "trainingpipelines", _pipeline("iris", featureSet=featureset["metadata"]["name"], **spec)
    )
    assert _wait_run(resources, "iris")["phase"] == "Succeeded"
    _promote(sandbox, resources, V1)
    _wait_served(resources, V1)


def _second_version(sandbox: Sandbox, resources: Resources) -> None:
    requested = _cli(sandbox, "run", "iris", "-n", resources.namespace)
    assert requested.returncode == 0, requested.stdout + requested.stderr
    run = _wait_run(resources, "iris", 2)
    assert run["phase"] == "Succeeded", run


@contextmanager
def _load(load: Load) -> Iterator[Load]:
    thread = threading.Thread(target=load.run, daemon=True)
    thread.start()
    try:
        yield load
    finally:
        load.stop.set()
        thread.join(timeout=30)


def _rollout(resources: Resources) -> dict[str, Any]:
    return dict(_serving(resources).get("rollout") or {})


def _canary_gone(client: ApiClient, namespace: str) -> bool:
    names = [d.metadata.name for d in AppsV1Api(client).list_namespaced_deployment(namespace).items]
    return names == ["iris-classifier"]


def _events(client: ApiClient, namespace: str, reason: str) -> list[str]:
    events = CoreV1Api(client).list_namespaced_event(namespace).items
    return [e.message for e in events if e.reason == reason]


def test_a_healthy_canary_serves_beside_the_stable_version_then_everywhere(
    sandbox: Sandbox, resources: Resources, client: ApiClient
) -> None:
    # Latency is not what this test judges: a fresh canary's p99 over its first ten requests is
    # its slowest, and on a loaded machine it reached 2.06 times the warm stable's (an abort).
    spec = _canary_spec(maxP99LatencyRatio=50)
    _first_version_serving(sandbox, resources, example("iris", "featureset.yaml"), **spec)
    _second_version(sandbox, resources)
    with _load(Load(f"{_url(client, resources.namespace)}/predict")) as load:
        wait_for(lambda: len(load.answers) >= 20, what="the load to be answered")
        _promote(sandbox, resources, V2)
        paused = wait_for(
            lambda: (r := _rollout(resources)).get("phase") == "Paused" and r,
            timeout=ROLLOUT_TIMEOUT,
            what=f"the canary's step to be held (rollout: {_rollout(resources)})",
        )
        assert (paused["canaryVersion"], paused["stableVersion"]) == (V2, V1)
        assert (paused["canaryReplicas"], paused["stableReplicas"], paused["weight"]) == (1, 1, 50)
        seen = len(load.answers)
        wait_for(  # both versions answer behind the one Service meanwhile
            lambda: {"1", "2"} <= set(load.answers[seen:]),
            what=f"answers of both versions (got {set(load.answers[seen:])})",
        )
        _wait_served(resources, V2)
        done = wait_for(
            lambda: (r := _rollout(resources)).get("phase") == "Completed" and r,
            what=f"the canary to complete (rollout: {_rollout(resources)})",
        )
        wait_for(
            lambda: _canary_gone(client, resources.namespace),
            what="the canary Deployment to go",
        )
        after = len(load.answers)
        wait_for(lambda: len(load.answers) >= after + 30, what="answers after the canary")
    assert load.failures == [], load.failures[:5]
    assert set(load.answers[after + 10 :]) == {"2"}
    judgement = done["judgement"]
    assert judgement["verdict"] == "Pass" and judgement["canaryRequests"] >= 10
    assert judgement["canaryErrorRate"] == 0 and judgement["latencyRatio"] > 0
    assert _events(client, resources.namespace, "CanaryCompleted")


def _raw_iris() -> dict[str, Any]:
    """The iris FeatureSet without its scaling: the raw measurements, in centimetres."""
    body = example("iris", "featureset.yaml")
    body["metadata"]["name"] = "iris-raw"
    body["spec"]["transforms"] = [t for t in body["spec"]["transforms"] if t["op"] == "impute"]
    return body


def test_a_canary_whose_version_answers_5xx_is_aborted_back_to_the_stable_one(
    sandbox: Sandbox, resources: Resources, client: ApiClient
) -> None:
    spec = _canary_spec(steps=[{"weight": 50, "pauseSeconds": 600}], maxErrorRate=0.1)
    _first_version_serving(sandbox, resources, _raw_iris(), **spec)
    resources.patch(
        "trainingpipelines",
        "iris",
        {
            "spec": {
                "model": {
                    "estimator": "CategoricalNB",
                    # null removes the forest's parameters (a merge patch)
                    "params": {"n_estimators": None, "random_state": None, "min_categories": 10},
                },
            }
        },
    )
    # The spec change starts run 2 (runOnSpecChange). A real 500 of the new version:
    # CategoricalNB has no category 15 for a 15 cm sepal.
    run = _wait_run(resources, "iris", 2)
    assert run["phase"] == "Succeeded", run
    rows = {"instances": [LONG_FLOWER]}
    load = Load(f"{_url(client, resources.namespace)}/predict", rows=[ROWS, rows])
    with _load(load):
        wait_for(lambda: len(load.answers) >= 20, what="the load to be answered")
        _promote(sandbox, resources, V2)
        failure = wait_for(
            lambda: next(
                (f for f in _serving(resources).get("failures", []) if f["version"] == V2), None
            ),
            timeout=ROLLOUT_TIMEOUT,
            what=f"the canary to be aborted (rollout: {_rollout(resources)})",
        )
        wait_for(
            lambda: _canary_gone(client, resources.namespace),
            what="the canary Deployment to go",
        )
        _wait_served(resources, V1)
        after = len(load.answers)
        wait_for(lambda: len(load.answers) >= after + 20, what="answers after the abort")
    assert failure["reason"] == "CanaryErrorRate", failure
    rollout = _rollout(resources)
    assert (rollout["phase"], rollout["reason"]) == ("Aborted", "CanaryErrorRate")
    assert rollout["judgement"]["canaryErrorRate"] > 0.1
    assert rollout["judgement"]["stableErrorRate"] == 0
    assert "answered 5xx" in rollout["message"] and f"{V1} serves every pod" in rollout["message"]
    assert set(load.answers[after + 5 :]) == {"1"}
    # Its stage does not take effect: v2 stays as written, v1 is what serves.
    assert _stage(resources, V2) == ("Production", "Candidate")
    serving = resources.wait_condition(
        "modelversions", V2, "False", "CanaryErrorRate", type_="Serving"
    )
    assert f"{V1} serves instead" in serving["message"]
    assert _events(client, resources.namespace, "CanaryAborted")
    deployment = AppsV1Api(client).read_namespaced_deployment(
        "iris-classifier", resources.namespace
    )
    assert deployment.spec.replicas == 2
