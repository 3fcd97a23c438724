"""Conveyor run from Git: a pinned version serves, kstatus conditions drive `kubectl wait`, and
Argo CD's health checks (the real Lua) read live objects as Healthy, Progressing or Degraded.

One sandbox, one trained iris pipeline. The audit of the operator's calls (conftest) checks
after the module that it never wrote the spec of what Git owns.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from conveyor.sandbox.stack import Sandbox
from tests.conftest import ROOT
from tests.gitops import argo_health, lua
from tests.integration.conftest import Resources, example, wait_for
from tests.integration.test_training import (
    RUN_TIMEOUT,
    _cli,
    _pipeline,
    _request_run,
    _stage,
    _wait_run,
)

pytestmark = pytest.mark.skipif(lua() is None, reason="lua5.1 is not installed (apt lua5.1)")

KINDS = {
    "featuresets": "FeatureSet",
    "trainingpipelines": "TrainingPipeline",
    "modelversions": "ModelVersion",
    "retrainpolicies": "RetrainPolicy",
}


def _kubectl(
    sandbox: Sandbox, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(sandbox.kubeconfig), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _health(resources: Resources, plural: str, name: str) -> dict[str, str]:
    return argo_health(KINDS[plural], resources.get(plural, name))


def _conditions(body: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in (body.get("status") or {}).get("conditions", [])}


def _policy(pipeline: str, **triggers: Any) -> dict[str, Any]:
    return {
        "apiVersion": "conveyor.dev/v1alpha1",
        "kind": "RetrainPolicy",
        "metadata": {"name": pipeline},
        "spec": {"pipeline": pipeline, "triggers": triggers, "suspend": True},
    }


def test_kstatus_conditions_and_argo_health_follow_the_objects(
    sandbox: Sandbox, resources: Resources
) -> None:
    resources.create("featuresets", example("iris", "featureset.yaml"))
    # Materializing: Reconciling, so Argo CD and kstatus wait instead of failing.
    progressing = wait_for(
        lambda: (h := _health(resources, "featuresets", "iris"))["status"] == "Progressing" and h,
        timeout=30,
        what="the FeatureSet to be read as Progressing",
    )
    assert progressing["message"]
    resources.create("trainingpipelines", _pipeline("iris"))
    resources.create("retrainpolicies", _policy("iris", schedule={"cron": "0 3 * * 1"}))
    assert _wait_run(resources, "iris")["phase"] == "Succeeded"
    ns = resources.namespace
    for plural, name in [
        ("featuresets", "iris"),
        ("trainingpipelines", "iris"),
        ("modelversions", "iris-classifier-v1"),
        ("retrainpolicies", "iris"),
    ]:
        waited = _kubectl(
            sandbox, "wait", f"{plural}/{name}", "-n", ns, "--for=condition=Ready", "--timeout=90s"
        )
        assert waited.returncode == 0, waited.stderr
        body = resources.get(plural, name)
        conditions = _conditions(body)
        assert conditions["Stalled"] == "False", (plural, body["status"])
        assert body["status"]["observedGeneration"] == body["metadata"]["generation"]
        assert all(
            c["observedGeneration"] == body["metadata"]["generation"]
            for c in body["status"]["conditions"]
        )
        wait_for(
            lambda p=plural, n=name: _health(resources, p, n)["status"] == "Healthy",  # type: ignore[misc]
            timeout=60,
            what=f"{plural}/{name} to be Healthy ({_health(resources, plural, name)})",
        )

    # A spec the operator cannot act on: Stalled, which Argo CD shows as Degraded.
    resources.create("retrainpolicies", _policy("broken"))
    waited = _kubectl(
        sandbox, "wait", "retrainpolicies/broken", "-n", ns, "--for=condition=Stalled",
        "--timeout=60s",
    )  # fmt: skip
    assert waited.returncode == 0, waited.stderr
    health = _health(resources, "retrainpolicies", "broken")
    assert health["status"] == "Degraded" and "spec.triggers" in health["message"], health


def test_a_pinned_version_serves_whatever_the_policy_and_people_do(
    sandbox: Sandbox, resources: Resources
) -> None:
    resources.create("featuresets", example("iris", "featureset.yaml"))
    resources.create("trainingpipelines", _pipeline("iris"))
    assert _wait_run(resources, "iris")["phase"] == "Succeeded"
    wait_for(
        lambda: _stage(resources, "iris-classifier-v1") == ("Production", "Production"),
        timeout=RUN_TIMEOUT,
        what="v1 promoted by the auto policy and served",
    )
    # Git pins v1: the next run's version waits as a Candidate although the policy is auto.
    resources.patch("trainingpipelines", "iris", {"spec": {"promotion": {"version": 1}}})
    wait_for(
        lambda: (
            resources.get("trainingpipelines", "iris")["status"].get("pinnedVersion")
            == "iris-classifier-v1"
        ),
        what="status.pinnedVersion",
    )
    _request_run(sandbox, resources, "iris")
    assert _wait_run(resources, "iris", count=2)["phase"] == "Succeeded"
    wait_for(lambda: resources.exists("modelversions", "iris-classifier-v2"), what="v2 registered")
    assert _stage(resources, "iris-classifier-v2")[0] == "Candidate"

    # A person promoting by hand is told to change Git; a patch behind its back is undone.
    refused = _cli(sandbox, "promote", "iris-classifier-v2", "-n", resources.namespace)
    assert refused.returncode != 0 and "spec.promotion.version" in refused.stderr
    resources.patch("modelversions", "iris-classifier-v2", {"spec": {"stage": "Production"}})
    wait_for(
        lambda: (
            _stage(resources, "iris-classifier-v1") == ("Production", "Production")
            and _stage(resources, "iris-classifier-v2")[0] != "Production"
        ),
        timeout=RUN_TIMEOUT,
        what="the pin to win over the hand promotion",
    )

    # Switching the pin in Git is a rollout; reverting that commit is the rollback.
    resources.patch("trainingpipelines", "iris", {"spec": {"promotion": {"version": 2}}})
    wait_for(
        lambda: _stage(resources, "iris-classifier-v2") == ("Production", "Production"),
        timeout=RUN_TIMEOUT,
        what="the new pin rolled out",
    )
    assert resources.get("trainingpipelines", "iris")["status"]["servingUrl"]
    resources.patch("trainingpipelines", "iris", {"spec": {"promotion": {"version": 1}}})
    wait_for(
        lambda: _stage(resources, "iris-classifier-v1") == ("Production", "Production"),
        timeout=RUN_TIMEOUT,
        what="the revert rolled back",
    )

    # A pin to a version that does not exist: Stalled, Degraded in Argo CD, nothing changes.
    resources.patch("trainingpipelines", "iris", {"spec": {"promotion": {"version": 9}}})
    pipeline = wait_for(
        lambda: (
            (body := resources.get("trainingpipelines", "iris"))
            and _conditions(body).get("Stalled") == "True"
            and body
        ),
        what="the pipeline to stall on the missing pin",
    )
    ready = next(c for c in pipeline["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "PinnedVersionNotFound"
    assert "spec.promotion.version 9" in ready["message"]
    health = argo_health("TrainingPipeline", pipeline)
    assert health["status"] == "Degraded" and "spec.promotion.version 9" in health["message"]
    assert _stage(resources, "iris-classifier-v1") == ("Production", "Production")
