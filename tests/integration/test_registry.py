"""The registry trusts only what the operator registered, and `conveyor run` tells the truth:
the operator against the sandbox with real training runs and S3."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
from kubernetes.client import ApiClient, ApiException, CoreV1Api

from conveyor.sandbox.objectstore import s3_client
from conveyor.sandbox.stack import Sandbox
from tests.integration.conftest import Resources, example, wait_for
from tests.integration.test_training import _cli, _pipeline, _stage, _wait_run


def _warnings(client: ApiClient, namespace: str, name: str) -> list[tuple[str, str]]:
    events = CoreV1Api(client).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}"
    )
    return [(e.reason, e.message or "") for e in events.items if e.type == "Warning"]


def _forge(real: dict[str, Any], number: int, **spec: Any) -> dict[str, Any]:
    """A ModelVersion written by hand from a real one: its labels, `spec` changed."""
    model = real["spec"]["model"]
    body = {
        "apiVersion": real["apiVersion"],
        "kind": "ModelVersion",
        "metadata": {"name": f"{model}-v{number}", "labels": dict(real["metadata"]["labels"])},
        "spec": {**copy.deepcopy(real["spec"]), "version": number, **spec},
    }
    return body


@pytest.fixture
def operator_identity(sandbox: Sandbox, resources: Resources) -> Iterator[Resources]:
    """Writes as the operator's ServiceAccount: what anyone could do on a cluster without
    manifests/admission, whose policies refuse people these writes."""
    config = str(sandbox.operator_kubeconfig)
    with kubernetes.config.new_client_from_config(config_file=config) as api:
        yield Resources(api, resources.namespace)


def _trained(resources: Resources) -> dict[str, Any]:
    """iris trained once, its v1 in Production (the example's policy is auto)."""
    resources.create("featuresets", example("iris", "featureset.yaml"))
    resources.create("trainingpipelines", _pipeline("iris"))
    assert _wait_run(resources, "iris")["phase"] == "Succeeded"
    wait_for(
        lambda: _stage(resources, "iris-classifier-v1") == ("Production", "Production"),
        what="v1 in Production",
    )
    return resources.get("modelversions", "iris-classifier-v1")


def test_people_cannot_write_a_version_at_all(resources: Resources) -> None:
    real = _trained(resources)
    with pytest.raises(ApiException) as refused:
        resources.create("modelversions", _forge(real, 2))
    assert refused.value.status == 403
    assert "registered by the Conveyor operator" in str(refused.value.body)


def test_a_hand_written_production_version_is_never_acted_on(
    sandbox: Sandbox, resources: Resources, client: ApiClient, operator_identity: Resources
) -> None:
    real = _trained(resources)
    forged = _forge(
        real,
        2,
        stage="Production",
        artifact={"uri": "s3://other-bucket/model.skops", "digest": "sha256:" + "0" * 64},
        lineage={**real["spec"]["lineage"], "run": "iris-20200101-000000"},
    )
    forged["metadata"]["labels"]["conveyor.dev/run"] = "iris-20200101-000000"
    operator_identity.create("modelversions", forged)

    ready = resources.wait_ready("modelversions", "iris-classifier-v2", "False", "NotRegistered")
    assert "was not registered by Conveyor" in ready["message"]
    assert "iris-20200101-000000 left no result" in ready["message"]
    wait_for(
        lambda: any(
            r == "NotRegistered"
            for r, _ in _warnings(client, resources.namespace, "iris-classifier-v2")
        ),
        what="a NotRegistered Warning Event",
    )
    # The real Production version stays; nothing of the forged one is in effect.
    assert _stage(resources, "iris-classifier-v1") == ("Production", "Production")
    assert _stage(resources, "iris-classifier-v2") == ("Production", None)
    status = resources.get("trainingpipelines", "iris")["status"]
    assert status["productionVersion"] == "iris-classifier-v1"

    # The next run is scored against the real champion (the forged one made every run fail
    # with ChampionUnavailable), registers after the number the forged one took, and is
    # promoted over v1.
    requested = _cli(sandbox, "run", "iris", "-n", resources.namespace)
    assert requested.returncode == 0, requested.stdout + requested.stderr
    run = _wait_run(resources, "iris", 2)
    assert run["phase"] == "Succeeded", run
    assert run["modelVersion"] == "iris-classifier-v3"
    wait_for(
        lambda: _stage(resources, "iris-classifier-v3") == ("Production", "Production"),
        what="v3 promoted by the auto policy",
    )
    assert _stage(resources, "iris-classifier-v1")[0] == "Archived"

    # A person cannot promote it either.
    refused = _cli(sandbox, "promote", "iris-classifier-v2", "-n", resources.namespace)
    assert refused.returncode == 1 and "was not registered by Conveyor" in refused.stderr


def test_deleting_a_forged_version_never_deletes_the_real_runs_files(
    sandbox: Sandbox, resources: Resources, operator_identity: Resources
) -> None:
    real = _trained(resources)
    copied = _forge(real, 2, stage="Archived", deleteArtifacts=True)  # v1's run and files
    operator_identity.create("modelversions", copied)
    ready = resources.wait_ready("modelversions", "iris-classifier-v2", "False", "NotRegistered")
    assert f"run {real['spec']['lineage']['run']} registered iris-classifier-v1" in ready["message"]

    # Not the operator's: it gets no finalizer, and its deletion touches no run's files.
    finalizers = resources.get("modelversions", "iris-classifier-v2")["metadata"].get("finalizers")
    assert "conveyor.dev/finalizer" not in (finalizers or [])
    resources.delete("modelversions", "iris-classifier-v2")
    wait_for(
        lambda: not resources.exists("modelversions", "iris-classifier-v2"),
        what="the forged version to be deleted",
    )
    store = sandbox.object_store
    s3 = s3_client(store.endpoint, store.credentials)
    key = real["spec"]["artifact"]["uri"].removeprefix("s3://conveyor/")
    assert s3.head_object(Bucket="conveyor", Key=key)["ContentLength"] > 0


def test_conveyor_run_says_when_a_request_is_skipped(
    sandbox: Sandbox, resources: Resources
) -> None:
    resources.create("featuresets", example("iris", "featureset.yaml"))
    resources.wait_ready("featuresets", "iris", "True", timeout=60)
    resources.create("trainingpipelines", _pipeline("iris", runs={"runOnSpecChange": False}))
    resources.wait_ready("trainingpipelines", "iris", "True")

    first = _cli(sandbox, "run", "iris", "-n", resources.namespace)
    assert first.returncode == 0, first.stdout + first.stderr
    assert " started (" in first.stdout
    second = _cli(sandbox, "run", "iris", "-n", resources.namespace)
    assert second.returncode == 1, second.stdout + second.stderr
    assert "run NOT started: run iris-" in second.stdout
    assert "concurrencyPolicy is Forbid" in second.stdout
