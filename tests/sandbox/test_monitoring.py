"""Prometheus and Alertmanager as real processes: a gauge crosses a rule, the webhook hears it."""

from __future__ import annotations

import json
import queue
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from conveyor.sandbox.monitoring import NOT_INSTALLED, Monitoring, ScrapeTarget
from conveyor.sandbox.processes import ProcessStartError, free_port
from tests.sandbox.netutil import port_is_free

TOKEN = "sandbox-webhook-token"
INSTALLED = bool(shutil.which("prometheus")) and bool(
    shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
)
needs_binaries = pytest.mark.skipif(
    not INSTALLED,
    reason="prometheus / prometheus-alertmanager binaries not on PATH "
    "(apt-get install prometheus prometheus-alertmanager)",
)

RULES = """\
groups:
  - name: sandbox-test
    rules:
      - alert: TestGaugeHigh
        expr: test_gauge > 0
        for: 0s
        labels:
          severity: warning
        annotations:
          summary: test_gauge is {{ $value }}
"""


@dataclass
class Notification:
    authorization: str | None
    payload: dict[str, Any]


class WebhookReceiver:
    """A real HTTP endpoint standing in for the operator's Alertmanager webhook."""

    def __init__(self) -> None:
        self.notifications: queue.Queue[Notification] = queue.Queue()
        received = self.notifications

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.put(Notification(self.headers.get("Authorization"), json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, status: str, timeout: float) -> Notification:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                notification = self.notifications.get(timeout=remaining)
            except queue.Empty:
                break
            if notification.payload.get("status") == status:
                return notification
        raise AssertionError(f"No {status!r} notification reached the webhook in {timeout}s")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def gauge() -> Iterator[tuple[Gauge, str]]:
    """A /metrics endpoint serving test_gauge, as a serving pod would."""
    registry = CollectorRegistry()
    metric = Gauge("test_gauge", "A value the test controls.", registry=registry)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield metric, f"127.0.0.1:{port}"
    server.shutdown()
    server.server_close()
    thread.join()


def make_monitoring(tmp_path: Path, webhook_url: str, rules: str | None = RULES) -> Monitoring:
    rule_files = []
    if rules is not None:
        rule_file = tmp_path / "rules.yml"
        rule_file.write_text(rules)
        rule_files.append(rule_file)
    return Monitoring(
        state_dir=tmp_path / "monitoring",
        webhook_url=webhook_url,
        webhook_token=TOKEN,
        rule_files=rule_files,
        scrape_interval="1s",
        evaluation_interval="1s",
    )


def test_without_binaries_it_says_so_and_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monitoring = make_monitoring(tmp_path, "http://127.0.0.1:1/alerts")
    assert monitoring.available() == (False, NOT_INSTALLED)
    assert "apt-get install prometheus prometheus-alertmanager" in NOT_INSTALLED
    assert "\n" not in NOT_INSTALLED
    with pytest.raises(ProcessStartError, match="not installed"):
        monitoring.start()
    assert not monitoring.running
    assert not (tmp_path / "monitoring" / "prometheus.log").exists()


@needs_binaries
def test_a_firing_rule_reaches_the_webhook_with_the_token_and_then_resolves(
    tmp_path: Path, webhook: WebhookReceiver, gauge: tuple[Gauge, str]
) -> None:
    metric, address = gauge
    monitoring = make_monitoring(tmp_path, webhook.url)
    assert monitoring.available() == (True, "")
    with monitoring:
        monitoring.set_targets([ScrapeTarget("serving", address, {"model": "iris"})])
        metric.set(3)

        firing = webhook.wait_for("firing", timeout=60)

        assert firing.authorization == f"Bearer {TOKEN}"
        assert firing.payload["version"] == "4"
        [alert] = firing.payload["alerts"]
        assert alert["status"] == "firing"
        assert alert["labels"]["alertname"] == "TestGaugeHigh"
        assert alert["labels"]["job"] == "serving"
        assert alert["labels"]["model"] == "iris"
        assert alert["labels"]["instance"] == address
        assert alert["annotations"]["summary"] == "test_gauge is 3"

        metric.set(0)
        resolved = webhook.wait_for("resolved", timeout=60)
        assert resolved.authorization == f"Bearer {TOKEN}"
        assert resolved.payload["alerts"][0]["labels"]["alertname"] == "TestGaugeHigh"


@needs_binaries
def test_targets_can_change_while_running(tmp_path: Path, gauge: tuple[Gauge, str]) -> None:
    _, address = gauge
    with make_monitoring(tmp_path, "http://127.0.0.1:1/alerts", rules=None) as monitoring:
        monitoring.set_targets([ScrapeTarget("operator", address, {})])
        wait_until(lambda: monitoring.query('up{job="operator"} == 1'), timeout=30)
        monitoring.set_targets([])
        wait_until(lambda: not monitoring.query("up"), timeout=30)
    stored = json.loads((tmp_path / "monitoring" / "targets.json").read_text())
    assert stored == []


@needs_binaries
def test_stop_releases_both_ports(tmp_path: Path) -> None:
    monitoring = make_monitoring(tmp_path, "http://127.0.0.1:1/alerts")
    monitoring.start()
    ports = (monitoring.prometheus_port, monitoring.alertmanager_port)
    assert monitoring.running
    assert not any(port_is_free(port) for port in ports)
    monitoring.stop()
    monitoring.stop()
    assert not monitoring.running
    assert all(port_is_free(port) for port in ports)


@needs_binaries
def test_a_broken_rule_file_fails_start_with_prometheus_own_error(tmp_path: Path) -> None:
    monitoring = make_monitoring(
        tmp_path,
        "http://127.0.0.1:1/alerts",
        rules="groups:\n  - name: x\n    rules:\n      - alert: X\n",
    )
    with pytest.raises(ProcessStartError) as raised:
        monitoring.start(timeout=20)
    assert "prometheus exited" in str(raised.value)
    assert "rules.yml" in str(raised.value)
    assert not monitoring.running
    assert port_is_free(monitoring.alertmanager_port)


def test_a_missing_rule_file_is_named(tmp_path: Path) -> None:
    monitoring = Monitoring(
        state_dir=tmp_path,
        webhook_url="http://127.0.0.1:1/alerts",
        webhook_token=TOKEN,
        rule_files=[tmp_path / "absent.yml"],
    )
    if not monitoring.available()[0]:
        pytest.skip("prometheus / prometheus-alertmanager binaries not on PATH")
    with pytest.raises(FileNotFoundError, match=r"absent\.yml"):
        monitoring.start()


def wait_until(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"Condition not met within {timeout}s")
        time.sleep(0.2)
