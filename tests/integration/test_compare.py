"""`conveyor compare` in the sandbox: two pipelines on the iris features, trained by real Jobs,
compared from their cards in S3 by the real CLI, as text and as an HTML report."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import ApiClient, CoreV1Api

from conveyor.clients.s3 import ObjectStorage, S3Settings
from conveyor.sandbox.stack import Sandbox
from conveyor.ui.comparisons import read_card
from tests.conftest import ROOT
from tests.integration.conftest import Resources, example, wait_for

RUN_TIMEOUT = 400  # two training runs at once, on a machine shared with other work
pytestmark = pytest.mark.timeout(RUN_TIMEOUT + 120)  # the first test waits for the runs
CONVEYOR = Path(sys.executable).parent / "conveyor"
PIPELINES = {"iris": "iris-classifier-v1", "iris-logistic": "iris-logistic-v1"}


def _environment(sandbox: Sandbox) -> dict[str, str]:
    """The caller's environment with the sandbox's S3 in place of any other."""
    store = sandbox.object_store
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CONVEYOR_S3_", "AWS_")) and key != "KUBECONFIG"
    }
    return env | {
        "CONVEYOR_S3_ENDPOINT": store.endpoint,
        "AWS_ACCESS_KEY_ID": store.credentials.access_key,
        "AWS_SECRET_ACCESS_KEY": store.credentials.secret_key,
        "AWS_DEFAULT_REGION": store.credentials.region,
    }


def _compare(sandbox: Sandbox, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CONVEYOR), "--kubeconfig", str(sandbox.kubeconfig), "compare", "-n", namespace, *args],
        cwd=ROOT,
        env=_environment(sandbox),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _quick(name: str) -> dict[str, Any]:
    """The example pipeline, with its split untouched (so the two share a holdout), no search
    (the comparison, not the search, is under test), and a run as soon as it is created."""
    body = example("iris", name)
    body["spec"]["search"] = {"strategy": "none"}
    body["spec"]["runs"] = {"runOnSpecChange": True}
    if "serving" in body["spec"]:
        body["spec"]["serving"]["replicas"] = 1
    return body


@pytest.fixture(scope="module")
def trained(client: ApiClient) -> str:
    """A namespace of its own where both iris pipelines have registered a version (the tests
    only read it, so they share it)."""
    CoreV1Api(client).create_namespace({"metadata": {"name": "compare"}})
    resources = Resources(client, "compare")
    resources.create("featuresets", example("iris", "featureset.yaml"))
    resources.create("trainingpipelines", _quick("trainingpipeline.yaml"))
    resources.create("trainingpipelines", _quick("trainingpipeline-logistic.yaml"))
    for pipeline, version in PIPELINES.items():
        wait_for(
            partial(resources.exists, "modelversions", version),
            timeout=RUN_TIMEOUT,
            what=f"{version} (runs of {pipeline}: {_runs(resources, pipeline)})",
        )
    return "compare"


def _runs(resources: Resources, pipeline: str) -> list[dict[str, Any]]:
    return list((resources.get("trainingpipelines", pipeline).get("status") or {}).get("runs", []))


def _table(stdout: str) -> list[str]:
    return stdout.split("\n\n")[0].splitlines()


def test_both_pipelines_on_one_holdout_are_ranked(sandbox: Sandbox, trained: str) -> None:
    result = _compare(sandbox, trained, "--featureset", "iris")
    assert result.returncode == 0, result.stderr
    print(result.stdout)  # the example table of docs/compare.md
    table = _table(result.stdout)
    header = table[0].split()
    assert header[:5] == ["VERSION", "PIPELINE", "ESTIMATOR", "STAGE", "F1_MACRO"]
    assert "HOLDOUT" not in header  # one holdout: nothing to tell apart
    rows = {line.split()[0]: line for line in table[1:]}
    assert set(rows) == set(PIPELINES.values())
    assert "RandomForestClassifier" in rows["iris-classifier-v1"]
    assert "LogisticRegression" in rows["iris-logistic-v1"]
    # the same holdout rows for both: ranked, no warning
    assert "warning" not in result.stdout
    assert "Every version was judged on the same holdout" in result.stdout
    assert "*" in "".join(table[1:])
    # the footprint the training Job measured: size and latency, not dashes
    for line in table[1:]:
        assert "KiB" in line or "MiB" in line, line
        assert " ms" in line, line


def test_pipelines_by_name_and_versions_by_name(sandbox: Sandbox, trained: str) -> None:
    by_pipeline = _compare(sandbox, trained, "iris", "iris-logistic", "--sort", "size")
    assert by_pipeline.returncode == 0, by_pipeline.stderr
    assert {line.split()[0] for line in _table(by_pipeline.stdout)[1:]} == set(PIPELINES.values())
    assert "sorted by size, best first" in by_pipeline.stdout
    one = _compare(sandbox, trained, "--versions", "iris-logistic-v1", "--all")
    assert one.returncode == 0, one.stderr
    assert [line.split()[0] for line in _table(one.stdout)[1:]] == ["iris-logistic-v1"]


def test_the_html_report_is_written_with_its_plots(
    sandbox: Sandbox, trained: str, tmp_path: Path
) -> None:
    out = tmp_path / "iris.html"
    result = _compare(sandbox, trained, "--featureset", "iris", "--html", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith(f"wrote {out}")
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    for heading in ("ROC curves", "Precision-recall curves", "Confusion matrices", "Feature"):
        assert f"<h2>{heading}" in page, heading
    assert page.count("<svg") == 4  # ROC, precision-recall, confusion matrices, importance
    assert "iris-classifier-v1" in page and "iris-logistic-v1" in page
    assert "Warning" not in page


def test_mistakes_are_named(sandbox: Sandbox, trained: str) -> None:
    unknown = _compare(sandbox, trained, "--featureset", "roses")
    assert unknown.returncode == 1
    assert 'FeatureSet "roses" not found in namespace "compare"' in unknown.stderr
    pipeline = _compare(sandbox, trained, "tulips")
    assert 'TrainingPipeline "tulips" not found' in pipeline.stderr
    version = _compare(sandbox, trained, "--versions", "iris-classifier-v9")
    assert 'ModelVersion "iris-classifier-v9" not found' in version.stderr
    column = _compare(sandbox, trained, "--featureset", "iris", "--sort", "speed")
    assert column.returncode == 1
    assert 'cannot sort by "speed"' in column.stderr and "latency_1000" in column.stderr
    nothing = _compare(sandbox, trained)
    assert nothing.returncode == 1 and "say what to compare" in nothing.stderr


def test_a_card_that_cannot_be_read_is_a_reason_not_a_crash(sandbox: Sandbox) -> None:
    store = sandbox.object_store
    settings = S3Settings(
        endpoint=store.endpoint,
        region=store.credentials.region,
        access_key=store.credentials.access_key,
        secret_key=store.credentials.secret_key,
    )
    with ObjectStorage(settings) as storage:
        card, problem = read_card(storage, "s3://conveyor/models/nowhere/card.json")
    assert card == {} and problem is not None
    assert "s3://conveyor/models/nowhere/card.json could not be read" in problem
