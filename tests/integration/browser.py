"""A real browser for the web page's tests: headless Chromium (Debian's chromium and
chromium-driver) driven by Selenium, and `conveyor ui` as a real process, found at the URL it
prints. Used by test_experiments.py."""

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
from tests.integration.conftest import wait_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CRAWL_LIMIT = 80
ERROR_HEADINGS = {
    "Not found",
    "Internal error",
    "Forbidden",
    "The cluster or the object store failed",
}
SCREENSHOT = ROOT / "docs" / "images" / "ui.png"
needs_chromium = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="Chromium is not installed (apt-get install chromium chromium-driver)",
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
        yield announced_url(process)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr, stderr


def announced_url(process: subprocess.Popen[str], timeout: float = 30.0) -> str:
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


def crawl(browser: Any, root: str) -> set[str]:
    """Every page reachable from `root` through links to the same server (bounded): each one
    answers 200, shows no error heading, and logs no console error."""
    from selenium.webdriver.common.by import By

    origin = urlsplit(root).netloc
    queue, seen = [root], {root}
    while queue:
        url = queue.pop(0)
        assert http_status(url) == 200, url
        open_page(browser, url)
        heading = browser.find_element(By.TAG_NAME, "h1").text
        assert heading not in ERROR_HEADINGS, (url, browser.find_element(By.TAG_NAME, "body").text)
        assert_no_console_errors(browser, url)
        for anchor in browser.find_elements(By.TAG_NAME, "a"):
            href = urldefrag(anchor.get_attribute("href") or "").url
            if urlsplit(href).netloc == origin and href not in seen:
                assert len(seen) < CRAWL_LIMIT, f"more than {CRAWL_LIMIT} pages: {sorted(seen)}"
                seen.add(href)
                queue.append(href)
    return seen


def open_page(browser: Any, url: str) -> None:
    browser.get(url)
    wait_for(
        lambda: browser.execute_script("return document.readyState") == "complete",
        what=f"{url} to load",
    )


def follow_link(browser: Any, label: str, url: str) -> None:
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


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        with error:
            return error.code


def assert_no_console_errors(browser: Any, url: str = "") -> None:
    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == [], (url or browser.current_url, severe)


def assert_plots_drawn(browser: Any) -> None:
    from selenium.webdriver.common.by import By

    plots = browser.find_elements(By.CSS_SELECTOR, "svg")
    assert plots, f"no plot on {browser.current_url}"
    for plot in plots:
        size = plot.size
        assert size["width"] > 0 and size["height"] > 0, (browser.current_url, size)


def save_screenshot(browser: Any, tmp_path: Path) -> None:
    """Always one under tmp_path; docs/images/ui.png (the README's) only when asked for with
    CONVEYOR_UPDATE_SCREENSHOT=1."""
    assert browser.save_screenshot(str(tmp_path / "ui.png"))
    if os.environ.get("CONVEYOR_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp_path / "ui.png", SCREENSHOT)
