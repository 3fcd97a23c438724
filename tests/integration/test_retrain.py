"""RetrainPolicy in the sandbox: the Alertmanager webhook over real HTTP with its token, a manual
retrain from the CLI, the guards as a user meets them, and a restart mid-decision that neither
loses nor doubles a run. The whole loop through real Prometheus and Alertmanager is in
test_retrain_loop.py."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes.client import ApiClient, CustomObjectsApi

from conveyor.api.v1alpha1 import GROUP, VERSION
from conveyor.cli import main
from conveyor.contracts.labels import ALERT_ANNOTATION_PREFIX
from conveyor.sandbox.stack import Sandbox
from tests.alertmanager import alert, notification
from tests.integration.conftest import Resources, example, wait_for

FINGERPRINT = "5e1d0c0ffee0a1b2"


@pytest.fixture
def policy(resources: Resources) -> Iterator[str]:
    """A pipeline whose FeatureSet has no data yet (its runs wait, Pending: active, and cheap)
    and a policy that retrains it on alerts of this namespace."""
    featureset = example("iris", "featureset.yaml")
    featureset["spec"]["sources"][0]["uri"] = "s3://conveyor-raw/not-yet/*.csv"
    resources.create("featuresets", featureset)
    pipeline = example("iris", "trainingpipeline.yaml")
    pipeline["spec"]["runs"] = {"runOnSpecChange": False}
    resources.create("trainingpipelines", pipeline)
    resources.create(
        "retrainpolicies",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "RetrainPolicy",
            "metadata": {"name": "iris"},
            "spec": {
                "pipeline": "iris",
                "cooldownSeconds": 0,
                "concurrencyPolicy": "Replace",
                "triggers": {
                    "alert": {
                        "matchers": [
                            {"label": "alertname", "operator": "=~", "value": "Conveyor.*"},
                            {"label": "namespace", "value": resources.namespace},
                        ]
                    }
                },
            },
        },
    )
    resources.wait_ready("retrainpolicies", "iris", "True", "Watching")
    yield "iris"


def _alert(namespace: str, status: str = "firing", fingerprint: str = FINGERPRINT) -> dict:
    labels = {"alertname": "ConveyorFeatureDrift", "namespace": namespace, "model": "iris"}
    return alert(labels, status=status, fingerprint=fingerprint)


_notification = notification


def _post(sandbox: Sandbox, body: bytes, token: str | None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{sandbox.operator_url}/webhooks/alertmanager", data=body, method="POST"
    )
    request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def _runs(resources: Resources) -> list[dict[str, Any]]:
    status = resources.get("trainingpipelines", "iris").get("status") or {}
    return list(status.get("runs") or [])


def _decisions(resources: Resources) -> list[dict[str, Any]]:
    status = resources.get("retrainpolicies", "iris").get("status") or {}
    return list(status.get("decisions") or [])


def test_the_webhook_refuses_bad_tokens_and_bodies_and_nothing_happens(
    sandbox: Sandbox, resources: Resources, policy: str
) -> None:
    firing = _notification(_alert(resources.namespace))
    assert _post(sandbox, firing, None) == (
        401,
        {"error": "a bearer token is required (Authorization: Bearer <token>)"},
    )
    assert _post(sandbox, firing, "not-the-token") == (401, {"error": "the bearer token is wrong"})
    token = sandbox.webhook_token
    cases = [
        (b"{oops", "the body is not JSON"),
        (firing.replace(b'"version": "4"', b'"version": "3"'), "version '3' is not"),
        (json.dumps({"version": "4", "alerts": [{"status": "firing"}]}).encode(), "alerts[0]"),
        (b" " * (2 << 20), "the body is over 1048576 bytes"),
    ]
    for body, problem in cases:
        status, answer = _post(sandbox, body, token)
        assert status == 400 and problem in answer["error"], answer
    policy_body = resources.get("retrainpolicies", policy)
    annotations = policy_body["metadata"].get("annotations") or {}
    assert not any(key.startswith(ALERT_ANNOTATION_PREFIX) for key in annotations)
    assert _decisions(resources) == [] and _runs(resources) == []


def test_a_firing_alert_starts_one_run_and_its_repeat_does_not(
    sandbox: Sandbox, resources: Resources, policy: str
) -> None:
    namespace = resources.namespace
    grouped = _notification(
        _alert(namespace),
        _alert(namespace, "resolved", fingerprint="0000000000000001"),  # starts nothing
        _alert("elsewhere", fingerprint="0000000000000002"),  # matches no policy here
    )
    started = time.monotonic()
    status, answer = _post(sandbox, grouped, sandbox.webhook_token)
    answered = time.monotonic() - started
    assert status == 200, answer
    assert answer["delivered"] == [
        {
            "alert": "ConveyorFeatureDrift",
            "fingerprint": FINGERPRINT,
            "policy": f"{namespace}/{policy}",
        }
    ]
    print(f"webhook answered in {answered * 1000:.0f} ms")
    run = wait_for(
        lambda: next(iter(_runs(resources)), None), timeout=20, what="a run from the alert"
    )
    assert run["trigger"]["type"] == "alert" and run["trigger"]["source"] == policy
    assert f"fingerprint {FINGERPRINT}" in run["trigger"]["reason"]
    decision = wait_for(
        lambda: next((d for d in _decisions(resources) if d.get("run")), None),
        what="the decision to record its run",
    )
    assert (decision["trigger"], decision["fired"], decision["run"]) == ("alert", True, run["id"])
    # Alertmanager repeats the notification: a duplicate, recorded, no second run.
    assert _post(sandbox, grouped, sandbox.webhook_token)[0] == 200
    duplicate = wait_for(
        lambda: next((d for d in _decisions(resources) if d["reason"] == "DuplicateAlert"), None),
        what="the repeat to be recognised",
    )
    assert FINGERPRINT in duplicate["message"]
    assert len(_runs(resources)) == 1
    with urllib.request.urlopen(f"{sandbox.operator_url}/metrics") as response:
        metrics = response.read().decode()
    assert (
        f'conveyor_retrain_triggers_total{{policy="{namespace}/{policy}",result="fired",'
        'trigger="alert"} 1.0'
    ) in metrics


def test_manual_retrain_from_the_cli_records_its_reason_and_guards_apply(
    sandbox: Sandbox, resources: Resources, policy: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--kubeconfig", str(sandbox.kubeconfig), "retrain", policy]
    argv += ["-n", resources.namespace, "--reason", "labels were fixed upstream"]
    assert main(argv) == 0
    assert "retraining requested" in capsys.readouterr().out
    run = wait_for(lambda: next(iter(_runs(resources)), None), what="the manual run")
    assert (
        run["trigger"]["type"] == "manual"
        and "labels were fixed upstream" in run["trigger"]["reason"]
    )
    # The run waits (no snapshot): with concurrencyPolicy Forbid a second request is refused.
    resources.patch("retrainpolicies", policy, {"spec": {"concurrencyPolicy": "Forbid"}})
    resources.wait_ready("retrainpolicies", policy, "True")
    wait_for(
        lambda: not (resources.get("retrainpolicies", policy)["status"].get("pending")),
        what="the first request to be taken",
    )
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "NOT retrained (RunActive)" in out and run["id"] in out
    assert len(_runs(resources)) == 1


def test_a_restart_between_the_decision_and_the_request_starts_exactly_one_run(
    sandbox: Sandbox, resources: Resources, client: ApiClient, policy: str
) -> None:
    """The operator stopped right after it wrote the decision: the status holds the pending
    request and the alert it consumed, whose annotation is still there."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    request = f"iris-restart-{FINGERPRINT}"
    notice = {"alertname": "ConveyorFeatureDrift", "startsAt": now, "receivedAt": now}
    sandbox.stop_operator()
    try:
        resources.patch(
            "retrainpolicies",
            policy,
            {
                "metadata": {
                    "annotations": {f"{ALERT_ANNOTATION_PREFIX}{FINGERPRINT}": json.dumps(notice)}
                }
            },
        )
        pending = {
            "request": request,
            "trigger": "alert",
            "reason": "RetrainPolicy iris: alert ConveyorFeatureDrift",
            "phase": "Requested",
            "since": now,
        }
        status = {
            "pending": pending,
            "lastTriggeredTime": now,
            "recentRuns": [now],
            "alerts": [{"fingerprint": FINGERPRINT, "alertname": "x", "lastFiredTime": now}],
            "decisions": [
                {
                    "time": now,
                    "trigger": "alert",
                    "fired": True,
                    "reason": "Fired",
                    "message": "alert ConveyorFeatureDrift",
                    "request": request,
                }
            ],
        }
        CustomObjectsApi(client).patch_namespaced_custom_object_status(
            GROUP, VERSION, resources.namespace, "retrainpolicies", policy, {"status": status}
        )
    finally:
        sandbox.start_operator()
    run = wait_for(lambda: next(iter(_runs(resources)), None), what="the pending request's run")
    assert f"[request {request}]" in run["trigger"]["reason"]
    wait_for(
        lambda: any(d["reason"] == "DuplicateAlert" for d in _decisions(resources)),
        what="the consumed alert to be recognised, not fired again",
    )
    wait_for(
        lambda: (
            not any(
                key.startswith(ALERT_ANNOTATION_PREFIX)
                for key in resources.get("retrainpolicies", policy)["metadata"].get(
                    "annotations", {}
                )
            )
        ),
        what="the consumed alert's annotation to go",
    )
    # The decision learns its run once the pipeline has acknowledged the request.
    recorded = wait_for(
        lambda: [
            d["run"] for d in _decisions(resources) if d.get("request") == request and "run" in d
        ],
        what="the decision to record its run",
    )
    assert recorded == [run["id"]]
    assert len(_runs(resources)) == 1
