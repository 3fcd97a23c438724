"""`conveyor ui` in a real browser: headless Chromium (Debian's chromium and chromium-driver)
driven by Selenium, against the sandbox with the iris (two pipelines) and diabetes examples
trained, and a FeatureSet whose annotation is markup. The page is a real `conveyor ui`
process, found at the URL it prints."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urlsplit

import pytest

from conveyor.sandbox.stack import Sandbox
from tests.conftest import ROOT
from tests.integration.conftest import Resources, example, wait_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
TRAINED_TIMEOUT = 600
CRAWL_LIMIT = 80
ERROR_HEADINGS = {
    "Not found",
    "Internal error",
    "Forbidden",
    "The cluster or the object store failed",
}
HOSTILE = (
    "<b>bold</b><script>document.title='pwned';window.conveyorPwned=1</script>"
    '"><img src=x onerror="window.conveyorPwned=2">'
)
SCREENSHOT = ROOT / "docs" / "images" / "ui.png"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="Chromium is not installed (apt-get install chromium chromium-driver)",
    ),
]


@pytest.fixture
def trained(sandbox: Sandbox, resources: Resources) -> Resources:
    """iris with both its pipelines, diabetes with its own, each with a ModelVersion; and a
    FeatureSet whose annotation is markup (label values cannot hold any: Kubernetes allows
    only letters, digits, '-', '_' and '.' there)."""
    for name in ("iris", "diabetes"):
        resources.create("featuresets", example(name, "featureset.yaml"))
    hostile = example("iris", "featureset.yaml")
    hostile["metadata"] = {
        "name": "hostile",
        "labels": {"team": "red-team"},
        "annotations": {"conveyor.dev/description": HOSTILE},
    }
    hostile["spec"]["sources"][0]["uri"] = "s3://conveyor-raw/not-yet/*.csv"
    hostile["spec"].pop("predictionLogs", None)
    resources.create("featuresets", hostile)
    pipelines = {
        "iris": example("iris", "trainingpipeline.yaml"),
        "iris-logistic": example("iris", "trainingpipeline-logistic.yaml"),
        "diabetes": example("diabetes", "trainingpipeline.yaml"),
    }
    for body in pipelines.values():
        resources.create("trainingpipelines", body)
    # diabetes trains when asked (its example does not train on apply): ask as a person would.
    asked = _cli(sandbox, "run", "diabetes", "-n", resources.namespace, "--wait", "0")
    assert asked.returncode == 0, asked.stderr

    def every_pipeline_has_a_version() -> bool:
        versions = resources.list("modelversions")
        trained = {v["spec"]["lineage"]["pipeline"] for v in versions}
        return trained >= set(pipelines)

    wait_for(
        every_pipeline_has_a_version,
        timeout=TRAINED_TIMEOUT,
        what=f"a ModelVersion of each of {sorted(pipelines)}",
    )
    return resources


def _cli(sandbox: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args],
        cwd=ROOT,
        env={**os.environ, "KUBECONFIG": str(sandbox.kubeconfig)},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def ui(sandbox: Sandbox) -> Iterator[str]:
    """`conveyor ui --port 0` as a process; the URL it prints."""
    env = {**os.environ, "KUBECONFIG": str(sandbox.kubeconfig)}
    process = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "--kubeconfig", str(sandbox.kubeconfig), "ui"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield _announced_url(process)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr, stderr


def _announced_url(process: subprocess.Popen[str], timeout: float = 30.0) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.5)
        if ready:
            line = process.stdout.readline()
            if line.startswith("Conveyor UI: "):
                return line.removeprefix("Conveyor UI: ").strip()
            if not line and process.poll() is not None:
                break
    stderr = process.stderr.read() if process.stderr and process.poll() is not None else ""
    pytest.fail(f"conveyor ui printed no URL within {timeout}s: {stderr}")


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,1900",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.timeout(TRAINED_TIMEOUT + 300)
def test_every_page_of_the_ui_in_a_browser(
    trained: Resources, ui: str, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    namespace = trained.namespace
    visited = _crawl(browser, ui)
    featureset = f"{ui}namespaces/{namespace}/featuresets/iris"
    for path in ("featuresets/iris", "featuresets/diabetes", "featuresets/hostile"):
        assert f"{ui}namespaces/{namespace}/{path}" in visited, sorted(visited)
    for kind in ("pipelines", "versions"):
        assert any(f"/{kind}/" in url for url in visited), sorted(visited)

    # The FeatureSet page: both iris pipelines, plots drawn, each report a click away.
    _open(browser, featureset)
    compared = browser.find_element(By.CSS_SELECTOR, "table.comparison")
    cells = {cell.text for cell in compared.find_elements(By.TAG_NAME, "td")}
    assert {"iris", "iris-logistic", "iris-classifier-v1", "iris-logistic-v1"} <= cells, cells
    _assert_plots_drawn(browser)
    _save_screenshot(browser, tmp_path)
    for label, suffix, heading in (
        ("data report", "/report", f"FeatureSet {namespace}/iris"),
        ("comparison report", "/comparison", f"Comparison: FeatureSet {namespace}/iris"),
    ):
        _open(browser, featureset)
        _follow(browser, label, featureset + suffix)
        assert browser.find_element(By.TAG_NAME, "h1").text == heading
        _assert_plots_drawn(browser)
        _assert_no_console_errors(browser)
    assert browser.find_elements(By.CSS_SELECTOR, "table.comparison")
    version = f"{ui}namespaces/{namespace}/versions/iris-classifier-v1"
    _open(browser, version)
    _follow(browser, "training report", version + "/report")
    heading = browser.find_element(By.TAG_NAME, "h1").text
    assert heading.startswith("Training report: iris-classifier"), heading
    _assert_plots_drawn(browser)
    _assert_no_console_errors(browser)

    # Markup in an annotation is shown as the text it is, and runs nothing.
    _open(browser, f"{ui}namespaces/{namespace}/featuresets/hostile")
    assert HOSTILE in browser.find_element(By.TAG_NAME, "body").text
    assert browser.find_elements(By.TAG_NAME, "b") == []
    assert browser.find_elements(By.CSS_SELECTOR, "img, script") == []
    assert browser.execute_script("return window.conveyorPwned === undefined")
    assert browser.title == f"FeatureSet {namespace}/hostile"


def _crawl(browser: Any, root: str) -> set[str]:
    """Every page reachable from `root` through links to the same server (bounded): each one
    answers 200, shows no error heading, and logs no console error."""
    from selenium.webdriver.common.by import By

    origin = urlsplit(root).netloc
    queue, seen = [root], {root}
    while queue:
        url = queue.pop(0)
        assert _status(url) == 200, url
        _open(browser, url)
        heading = browser.find_element(By.TAG_NAME, "h1").text
        assert heading not in ERROR_HEADINGS, (url, browser.find_element(By.TAG_NAME, "body").text)
        _assert_no_console_errors(browser, url)
        for anchor in browser.find_elements(By.TAG_NAME, "a"):
            href = urldefrag(anchor.get_attribute("href") or "").url
            if urlsplit(href).netloc == origin and href not in seen:
                assert len(seen) < CRAWL_LIMIT, f"more than {CRAWL_LIMIT} pages: {sorted(seen)}"
                seen.add(href)
                queue.append(href)
    return seen


def _open(browser: Any, url: str) -> None:
    browser.get(url)
    wait_for(
        lambda: browser.execute_script("return document.readyState") == "complete",
        what=f"{url} to load",
    )


def _follow(browser: Any, label: str, url: str) -> None:
    """Click the link `label` and wait until its page has loaded."""
    from selenium.webdriver.common.by import By

    browser.find_element(By.LINK_TEXT, label).click()
    wait_for(
        lambda: (
            browser.current_url == url
            and browser.execute_script("return document.readyState") == "complete"
        ),
        what=f"the link {label!r} to open {url} (at {browser.current_url})",
    )


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        with error:
            return error.code


def _assert_no_console_errors(browser: Any, url: str = "") -> None:
    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == [], (url or browser.current_url, severe)


def _assert_plots_drawn(browser: Any) -> None:
    from selenium.webdriver.common.by import By

    plots = browser.find_elements(By.CSS_SELECTOR, "svg")
    assert plots, f"no plot on {browser.current_url}"
    for plot in plots:
        size = plot.size
        assert size["width"] > 0 and size["height"] > 0, (browser.current_url, size)


def _save_screenshot(browser: Any, tmp_path: Path) -> None:
    """Always one under tmp_path; docs/images/ui.png (the README's) only when asked for with
    CONVEYOR_UPDATE_SCREENSHOT=1."""
    assert browser.save_screenshot(str(tmp_path / "ui.png"))
    if os.environ.get("CONVEYOR_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp_path / "ui.png", SCREENSHOT)
