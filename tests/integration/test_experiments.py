"""Many pipelines on one FeatureSet, compared: the fair holdout, the leader, `conveyor compare`
and the web page in a real browser — against one sandbox where iris (a random forest and a
logistic regression) and diabetes (a ridge regression) are trained once for the whole module,
beside a FeatureSet whose annotation is markup."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import ApiClient, CoreV1Api

from conveyor.cli import main
from conveyor.clients.s3 import ObjectStorage, S3Settings
from conveyor.sandbox.stack import Sandbox
from conveyor.ui.catalog import read_version_card
from tests.conftest import ROOT
from tests.integration.browser import (
    assert_no_console_errors,
    assert_plots_drawn,
    browser,
    crawl,
    follow_link,
    needs_chromium,
    open_page,
    save_screenshot,
    ui,
)
from tests.integration.conftest import Resources, example, wait_for

__all__ = ["browser", "ui"]  # fixtures, used by name

TRAINED_TIMEOUT = 400  # five training runs at once, on a machine shared with other work
pytestmark = pytest.mark.timeout(TRAINED_TIMEOUT + 200)  # the first test waits for them
PIPELINES = {
    "iris": ("iris", "trainingpipeline.yaml"),
    "iris-logistic": ("iris", "trainingpipeline-logistic.yaml"),
    "diabetes": ("diabetes", "trainingpipeline.yaml"),
}
IRIS_VERSIONS = {"iris-classifier-v1", "iris-logistic-v1"}
CONVEYOR = Path(sys.executable).parent / "conveyor"
HOSTILE = (
    "<b>bold</b><script>document.title='pwned';window.conveyorPwned=1</script>"
    '"><img src=x onerror="window.conveyorPwned=2">'
)
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
    resources.create("featuresets", _hostile_featureset())
    for folder, file in PIPELINES.values():
        pipeline = example(folder, file)
        spec = pipeline["spec"]
        spec["runs"] = {"runOnSpecChange": True}  # diabetes' example waits for a person
        # Lighter than the examples on a shared 2-core machine: what is compared is the same.
        spec["search"]["trials"] = min(spec["search"].get("trials", 5), 5)
        if "serving" in spec:
            spec["serving"]["replicas"] = 1
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

    yield Trained(
        resources, wait_for(first_versions, timeout=TRAINED_TIMEOUT, what="a version per pipeline")
    )


def _hostile_featureset() -> dict[str, Any]:
    """Markup in an annotation (label values cannot hold any: Kubernetes allows only letters,
    digits, '-', '_' and '.' there); its source matches nothing, so it never materializes."""
    hostile = example("iris", "featureset.yaml")
    hostile["metadata"] = {
        "name": "hostile",
        "labels": {"team": "red-team"},
        "annotations": {"conveyor.dev/description": HOSTILE},
    }
    hostile["spec"]["sources"][0]["uri"] = "s3://conveyor-raw/not-yet/*.csv"
    hostile["spec"].pop("predictionLogs", None)
    return hostile


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


# conveyor compare --------------------------------------------------------------------------------


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


def _table(stdout: str) -> list[str]:
    return stdout.split("\n\n")[0].splitlines()


def test_both_pipelines_on_one_holdout_are_ranked(sandbox: Sandbox, trained: Trained) -> None:
    result = _compare(sandbox, trained.namespace, "--featureset", "iris")
    assert result.returncode == 0, result.stderr
    print(result.stdout)  # the example table of docs/compare.md
    table = _table(result.stdout)
    header = table[0].split()
    assert header[:5] == ["VERSION", "PIPELINE", "ESTIMATOR", "STAGE", "F1_MACRO"]
    assert "HOLDOUT" not in header  # one holdout: nothing to tell apart
    rows = {line.split()[0]: line for line in table[1:]}
    assert set(rows) == IRIS_VERSIONS
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


def test_pipelines_by_name_and_versions_by_name(sandbox: Sandbox, trained: Trained) -> None:
    by_pipeline = _compare(sandbox, trained.namespace, "iris", "iris-logistic", "--sort", "size")
    assert by_pipeline.returncode == 0, by_pipeline.stderr
    assert {line.split()[0] for line in _table(by_pipeline.stdout)[1:]} == IRIS_VERSIONS
    assert "sorted by size, best first" in by_pipeline.stdout
    one = _compare(sandbox, trained.namespace, "--versions", "iris-logistic-v1", "--all")
    assert one.returncode == 0, one.stderr
    assert [line.split()[0] for line in _table(one.stdout)[1:]] == ["iris-logistic-v1"]


def test_the_html_report_is_written_with_its_plots(
    sandbox: Sandbox, trained: Trained, tmp_path: Path
) -> None:
    out = tmp_path / "iris.html"
    result = _compare(sandbox, trained.namespace, "--featureset", "iris", "--html", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith(f"wrote {out}")
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    for heading in ("ROC curves", "Precision-recall curves", "Confusion matrices", "Feature"):
        assert f"<h2>{heading}" in page, heading
    assert page.count("<svg") == 4  # ROC, precision-recall, confusion matrices, importance
    assert "iris-classifier-v1" in page and "iris-logistic-v1" in page
    assert "Warning" not in page


def test_mistakes_are_named(
    sandbox: Sandbox,
    trained: Trained,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In process (the real CLI and clients, without five interpreter start-ups)."""
    for key, value in _environment(sandbox).items():
        monkeypatch.setenv(key, value)

    def compare(*args: str) -> tuple[int, str]:
        code = main(
            ["--kubeconfig", str(sandbox.kubeconfig), "compare", "-n", trained.namespace, *args]
        )
        return code, capsys.readouterr().err

    code, said = compare("--featureset", "roses")
    assert code == 1 and f'FeatureSet "roses" not found in namespace "{trained.namespace}"' in said
    assert 'TrainingPipeline "tulips" not found' in compare("tulips")[1]
    assert (
        'ModelVersion "iris-classifier-v9" not found'
        in compare("--versions", "iris-classifier-v9")[1]
    )
    code, said = compare("--featureset", "iris", "--sort", "speed")
    assert code == 1 and 'cannot sort by "speed"' in said and "latency_1000" in said
    code, said = compare()
    assert code == 1 and "say what to compare" in said


def test_a_card_missing_or_outside_its_run_is_a_reason_not_a_crash(
    sandbox: Sandbox, trained: Trained
) -> None:
    version = trained.versions["iris-logistic"]
    run_path = version["spec"]["artifact"]["cardUri"].rsplit("/", 1)[0]
    store = sandbox.object_store
    settings = S3Settings(
        endpoint=store.endpoint,
        region=store.credentials.region,
        access_key=store.credentials.access_key,
        secret_key=store.credentials.secret_key,
    )

    def card_at(uri: str) -> tuple[Any, str | None]:
        moved = {**version, "spec": {**version["spec"], "artifact": {"cardUri": uri}}}
        return read_version_card(storage, moved)

    with ObjectStorage(settings) as storage:
        assert card_at(version["spec"]["artifact"]["cardUri"])[0]["holdout"]["rows"] == 38
        card, missing = card_at(f"{run_path}/gone.json")
        assert card == {} and missing is not None and "is not in the object store" in missing
        card, outside = card_at("s3://conveyor/models/elsewhere/card.json")
        assert card == {} and outside is not None and "is not under the path of its run" in outside


# conveyor ui, in a browser ----------------------------------------------------------------------


@needs_chromium
def test_every_page_of_the_ui_in_a_browser(
    trained: Trained, ui: str, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    namespace = trained.namespace
    visited = crawl(browser, ui)
    featureset = f"{ui}namespaces/{namespace}/featuresets/iris"
    for path in ("featuresets/iris", "featuresets/diabetes", "featuresets/hostile"):
        assert f"{ui}namespaces/{namespace}/{path}" in visited, sorted(visited)
    for kind in ("pipelines", "versions"):
        assert any(f"/{kind}/" in url for url in visited), sorted(visited)

    # The FeatureSet page: both iris pipelines, plots drawn, each report a click away.
    open_page(browser, featureset)
    compared = browser.find_element(By.CSS_SELECTOR, "table.comparison")
    cells = {cell.text for cell in compared.find_elements(By.TAG_NAME, "td")}
    assert {"iris", "iris-logistic", "iris-classifier-v1", "iris-logistic-v1"} <= cells, cells
    assert_plots_drawn(browser)
    save_screenshot(browser, tmp_path)
    for label, suffix, heading in (
        ("data report", "/report", f"FeatureSet {namespace}/iris"),
        ("comparison report", "/comparison", f"Comparison: FeatureSet {namespace}/iris"),
    ):
        open_page(browser, featureset)
        follow_link(browser, label, featureset + suffix)
        assert browser.find_element(By.TAG_NAME, "h1").text == heading
        assert_plots_drawn(browser)
        assert_no_console_errors(browser)
    assert browser.find_elements(By.CSS_SELECTOR, "table.comparison")
    version = f"{ui}namespaces/{namespace}/versions/iris-classifier-v1"
    open_page(browser, version)
    follow_link(browser, "training report", version + "/report")
    heading = browser.find_element(By.TAG_NAME, "h1").text
    assert heading.startswith("Training report: iris-classifier"), heading
    assert_plots_drawn(browser)
    assert_no_console_errors(browser)

    # Markup in an annotation is shown as the text it is, and runs nothing.
    open_page(browser, f"{ui}namespaces/{namespace}/featuresets/hostile")
    assert HOSTILE in browser.find_element(By.TAG_NAME, "body").text
    assert browser.find_elements(By.TAG_NAME, "b") == []
    assert browser.find_elements(By.CSS_SELECTOR, "img, script") == []
    assert browser.execute_script("return window.conveyorPwned === undefined")
    assert browser.title == f"FeatureSet {namespace}/hostile"
