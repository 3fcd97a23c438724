"""Shadow in the sandbox, over real HTTP: the serving pods load the newest Candidate beside
Production, it predicts a copy of every logged request, feedback labels both, the monitor
measures both, and promotion.policy live promotes a better candidate — and not a worse one.

The two qualities are real models: a DummyClassifier (the most frequent class, a third of
iris right) and a random forest (nearly all of it)."""

from __future__ import annotations

from typing import Any

from kubernetes.client import ApiClient, CoreV1Api

from conveyor.sandbox.datasets import labelled_requests
from conveyor.sandbox.stack import Sandbox
from tests.integration.conftest import Resources, example, wait_for
from tests.integration.test_serving import _post, _promote, _serving, _url, _wait_served
from tests.integration.test_training import _cli, _pipeline, _stage, _wait_run

V1, V2 = "iris-classifier-v1", "iris-classifier-v2"
DUMMY = {"name": "iris-classifier", "estimator": "DummyClassifier", "params": {}}
FOREST = {
    "name": "iris-classifier",
    "estimator": "RandomForestClassifier",
    "params": {"n_estimators": 30, "random_state": 7},
}
LABELLED = 60


def _shadowing(model: dict[str, Any]) -> dict[str, Any]:
    return _pipeline(
        "iris",
        model=model,
        gates={},
        promotion={"policy": "live", "minLabelledSamples": LABELLED, "beatProductionBy": 0.1},
        serving={"replicas": 1, "rollout": {"strategy": "Shadow"}},
    )


def _champion_then_candidate(
    sandbox: Sandbox, resources: Resources, champion: dict[str, Any], candidate: dict[str, Any]
) -> None:
    """v1 (`champion`) promoted by hand and serving; v2 (`candidate`) trained and shadowing."""
    resources.create("featuresets", example("iris", "featureset.yaml"))
    resources.create("trainingpipelines", _shadowing(champion))
    assert _wait_run(resources, "iris")["phase"] == "Succeeded"
    # Policy live: no promotion on the offline figures.
    wait_for(lambda: _stage(resources, V1) == ("Candidate", "Candidate"), what="v1 registered")
    _promote(sandbox, resources, V1)
    _wait_served(resources, V1)
    # A merge patch keeps the champion's params unless each is set to null.
    params = dict.fromkeys(champion["params"]) | candidate["params"]
    resources.patch(
        "trainingpipelines", "iris", {"spec": {"model": {**candidate, "params": params}}}
    )
    assert _wait_run(resources, "iris", 2)["phase"] == "Succeeded"  # runOnSpecChange
    wait_for(
        lambda: (_serving(resources).get("shadow") or {}).get("version") == V2,
        what=f"v2 to shadow v1 (serving: {_serving(resources)})",
    )


class Traffic:
    """Labelled requests through the model's Service: a prediction, then its ground truth."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.rows = labelled_requests("iris")
        self.sent = 0

    def send(self, count: int) -> None:
        items = []
        for _ in range(count):
            row, label = self.rows[self.sent % len(self.rows)]
            self.sent += 1
            status, answer = _post(f"{self.url}/predict", {"instances": [row]})
            assert status == 200, answer
            items.append({"request_id": answer["request_id"], "label": label})
        status, answer = _post(f"{self.url}/v2/models/iris-classifier/feedback", items)
        assert status == 200 and answer["accepted"] == count, answer


def _shadow(resources: Resources) -> dict[str, Any]:
    return dict(_serving(resources).get("shadow") or {})


def test_a_better_shadow_is_promoted_on_its_live_figures(
    sandbox: Sandbox, resources: Resources, client: ApiClient
) -> None:
    _champion_then_candidate(sandbox, resources, DUMMY, FOREST)
    traffic = Traffic(_url(client, resources.namespace))

    def promoted() -> bool:
        if _stage(resources, V2)[0] == "Production":
            return True
        traffic.send(30)  # the pods may still be restarting with the shadow loaded
        return False

    wait_for(promoted, timeout=180, what=f"v2 to be promoted (shadow: {_shadow(resources)})")
    _wait_served(resources, V2)
    events = CoreV1Api(client).list_namespaced_event(resources.namespace).items
    [message] = [e.message for e in events if e.reason == "Promoted" and "live" in e.message]
    assert f"{V2} promoted over {V1} (policy live)" in message
    versions = _cli(sandbox, "models", "iris-classifier", "-n", resources.namespace).stdout
    assert "LIVE" in versions and "accuracy" in versions  # side by side in conveyor models
    assert f"{V2} accuracy" in versions and "labelled requests both answered" in versions


def test_a_worse_shadow_stays_a_candidate(
    sandbox: Sandbox, resources: Resources, client: ApiClient
) -> None:
    _champion_then_candidate(sandbox, resources, FOREST, DUMMY)
    traffic = Traffic(_url(client, resources.namespace))

    def compared() -> dict[str, Any] | None:
        shadow = _shadow(resources)
        if shadow.get("labelled", 0) >= LABELLED:
            return shadow
        traffic.send(30)
        return None

    shadow = wait_for(compared, timeout=180, what=f"both measured (shadow: {_shadow(resources)})")
    assert "does not beat" in shadow["message"], shadow
    assert shadow["candidateScore"] < shadow["productionScore"]
    assert _stage(resources, V2) == ("Candidate", "Candidate")
    assert _serving(resources)["version"] == V1
