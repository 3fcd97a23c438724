"""Many pipelines on one FeatureSet, compared: the fair holdout, the leader, `conveyor compare`
and the web page — against one sandbox where iris (a random forest and a logistic regression)
and diabetes (a ridge regression) are trained once for the whole module."""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes.client import ApiClient, CoreV1Api

from conveyor.sandbox.stack import Sandbox
from tests.integration.conftest import Resources, example, wait_for

PIPELINES = {
    "iris": ("iris", "trainingpipeline.yaml"),
    "iris-logistic": ("iris", "trainingpipeline-logistic.yaml"),
    "diabetes": ("diabetes", "trainingpipeline.yaml"),
}
_spaces = itertools.count(1)


@dataclass
class Trained:
    """The namespace with every example trained once, and its first version per pipeline."""

    resources: Resources
    versions: dict[str, dict[str, Any]]
    """pipeline → its first ModelVersion."""

    @property
    def namespace(self) -> str:
        return self.resources.namespace


@pytest.fixture(scope="module")
def trained(sandbox: Sandbox, client: ApiClient) -> Iterator[Trained]:
    namespace = f"experiments-{next(_spaces)}"
    CoreV1Api(client).create_namespace({"metadata": {"name": namespace}})
    resources = Resources(client, namespace)
    for name in ("iris", "diabetes"):
        resources.create("featuresets", example(name, "featureset.yaml"))
    for folder, file in PIPELINES.values():
        pipeline = example(folder, file)
        pipeline["spec"]["runs"] = {"runOnSpecChange": True}  # diabetes' example waits for a person
        resources.create("trainingpipelines", pipeline)

    def first_versions() -> dict[str, dict[str, Any]] | None:
        found = {}
        for pipeline in PIPELINES:
            selector = f"conveyor.dev/pipeline={pipeline}"
            versions = resources.list("modelversions", selector)
            if not versions:
                return None
            found[pipeline] = versions[0]
        return found

    yield Trained(resources, wait_for(first_versions, timeout=240, what="a version per pipeline"))


def test_pipelines_on_one_featureset_judge_on_the_same_rows_and_the_best_leads(
    trained: Trained, sandbox: Sandbox
) -> None:
    forest, logistic = trained.versions["iris"], trained.versions["iris-logistic"]
    holdout = forest["spec"]["lineage"]["holdout"]
    assert len(holdout) == 16 and logistic["spec"]["lineage"]["holdout"] == holdout
    assert trained.versions["diabetes"]["spec"]["lineage"]["holdout"] != holdout
    best = max((forest, logistic), key=lambda v: v["spec"]["metrics"]["f1_macro"])

    def leader() -> dict[str, Any] | None:
        found = (trained.resources.get("featuresets", "iris").get("status") or {}).get("leader")
        return found if found and found.get("compared") == 2 else None

    found = wait_for(leader, timeout=30, what="the iris FeatureSet's leader over both pipelines")
    assert (found["version"], found["metric"], found["holdout"]) == (
        best["metadata"]["name"],
        "f1_macro",
        holdout,
    )
    assert found["score"] == best["spec"]["metrics"]["f1_macro"]
    table = subprocess.run(
        ["kubectl", "--kubeconfig", str(sandbox.kubeconfig), "get", "fs", "-n", trained.namespace],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    header, *rows = table.splitlines()
    assert "LEADER" in header.split()
    iris_row = next(row for row in rows if row.startswith("iris "))
    assert best["metadata"]["name"] in iris_row.split()
