"""Prometheus and Alertmanager for the sandbox, when their binaries are installed.

Prometheus scrapes the targets listed in a file_sd JSON file (the operator's `/metrics` and every
serving pod; `set_targets` rewrites it), evaluates the given rule files and sends alerts to
Alertmanager, which posts them to the operator's webhook with a bearer token. The timings are
seconds rather than minutes so the sandbox reacts while someone watches.

Debian 12 ships the binaries as `prometheus` and `prometheus-alertmanager` (packages of the same
names); upstream tarballs name the latter `alertmanager`. Both names are looked up.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import shutil
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import yaml

from conveyor.sandbox.processes import ManagedProcess, ProcessStartError, free_port
from conveyor.sandbox.status import write_atomically

__all__ = ["Monitoring", "ScrapeTarget", "quickened_rules"]

logger = logging.getLogger(__name__)

PROMETHEUS_BINARIES = ("prometheus",)
ALERTMANAGER_BINARIES = ("prometheus-alertmanager", "alertmanager")
NOT_INSTALLED = (
    "Prometheus/Alertmanager not installed "
    "(apt-get install prometheus prometheus-alertmanager); skipping"
)

# Alertmanager routing: notify a second after the first alert, re-notify quickly.
GROUP_WAIT = "1s"
GROUP_INTERVAL = "5s"
REPEAT_INTERVAL = "1m"
FILE_SD_REFRESH = "5s"
SCRAPE_JOB = "conveyor"
READY_STATUS = range(200, 300)


def quickened_rules(source: Path, target: Path, hold: str = "0s") -> Path:
    """A copy of the rule file `source` whose alerts fire after `hold` instead of their `for`
    (minutes in a cluster) and whose groups follow the global evaluation interval: the same
    expressions and labels, on the sandbox's clock."""
    document = yaml.safe_load(source.read_text())
    for group in document.get("groups") or []:
        group.pop("interval", None)
        for rule in group.get("rules") or []:
            if "alert" in rule:
                rule["for"] = hold
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(target, yaml.safe_dump(document, sort_keys=False))
    return target


@dataclass
class ScrapeTarget:
    job: str
    address: str
    """host:port serving /metrics, e.g. "127.0.0.1:8080"."""
    labels: dict[str, str] = field(default_factory=dict)


class Monitoring:
    """Alertmanager then Prometheus as local processes, configured under `state_dir`.

    With a port of 0 a free port is chosen now, so the URLs are known before `start()`.
    """

    def __init__(
        self,
        *,
        state_dir: Path,
        webhook_url: str,
        webhook_token: str,
        rule_files: Sequence[Path] = (),
        host: str = "127.0.0.1",
        prometheus_port: int = 0,
        alertmanager_port: int = 0,
        scrape_interval: str = "5s",
        evaluation_interval: str = "5s",
    ) -> None:
        self.state_dir = Path(state_dir)
        self.webhook_url = webhook_url
        self.webhook_token = webhook_token
        self.rule_files = [Path(path).resolve() for path in rule_files]
        self.host = host
        self.prometheus_port = prometheus_port or free_port(host)
        self.alertmanager_port = alertmanager_port or free_port(host)
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.prometheus_url = f"http://{host}:{self.prometheus_port}"
        self.alertmanager_url = f"http://{host}:{self.alertmanager_port}"
        self._targets: list[ScrapeTarget] = []
        self._prometheus: ManagedProcess | None = None
        self._alertmanager: ManagedProcess | None = None

    @property
    def targets_file(self) -> Path:
        return self.state_dir / "targets.json"

    @property
    def running(self) -> bool:
        return all(
            process is not None and process.running
            for process in (self._prometheus, self._alertmanager)
        )

    def processes(self) -> list[tuple[ManagedProcess, str]]:
        """(process, URL) of Alertmanager and Prometheus once started, to supervise them."""
        pairs = [
            (self._alertmanager, self.alertmanager_url),
            (self._prometheus, self.prometheus_url),
        ]
        return [(process, url) for process, url in pairs if process is not None]

    def available(self) -> tuple[bool, str]:
        """(True, "") when both binaries are on PATH, else (False, a notice to print)."""
        if _which(PROMETHEUS_BINARIES) and _which(ALERTMANAGER_BINARIES):
            return True, ""
        return False, NOT_INSTALLED

    def start(self, timeout: float = 30.0) -> None:
        """Write the configs, start Alertmanager then Prometheus, wait until both are ready."""
        if self.running:
            return
        prometheus, alertmanager = _which(PROMETHEUS_BINARIES), _which(ALERTMANAGER_BINARIES)
        if prometheus is None or alertmanager is None:
            raise ProcessStartError(NOT_INSTALLED.replace("; skipping", "."))
        missing = [str(path) for path in self.rule_files if not path.is_file()]
        if missing:
            raise FileNotFoundError(
                f"Prometheus rule files not found: {', '.join(missing)}; "
                "pass existing files in rule_files."
            )
        self._write_configs()
        self._alertmanager = self._alertmanager_process(alertmanager)
        self._prometheus = self._prometheus_process(prometheus)
        try:
            for process, url in (
                (self._alertmanager, self.alertmanager_url),
                (self._prometheus, self.prometheus_url),
            ):
                process.start()
                process.wait_http(f"{url}/-/ready", timeout, expect_status=READY_STATUS)
        except BaseException:
            self.stop()
            raise
        logger.info(
            "Prometheus ready at %s, Alertmanager at %s", self.prometheus_url, self.alertmanager_url
        )

    def stop(self) -> None:
        """Stop Prometheus, then Alertmanager; idempotent."""
        for process in (self._prometheus, self._alertmanager):
            if process is not None:
                process.stop()

    def set_targets(self, targets: Sequence[ScrapeTarget]) -> None:
        """Replace the scrape targets; Prometheus applies them within ~5s (discovery batches)."""
        self._targets = list(targets)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        groups = [
            {"targets": [target.address], "labels": {**target.labels, "job": target.job}}
            for target in self._targets
        ]
        write_atomically(self.targets_file, json.dumps(groups, indent=2, sort_keys=True) + "\n")

    def prometheus_config(self) -> dict[str, Any]:
        return {
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "rule_files": [str(path) for path in self.rule_files],
            "alerting": {
                "alertmanagers": [
                    {"static_configs": [{"targets": [f"{self.host}:{self.alertmanager_port}"]}]}
                ]
            },
            "scrape_configs": [
                {
                    "job_name": SCRAPE_JOB,
                    "file_sd_configs": [
                        {"files": [str(self.targets_file)], "refresh_interval": FILE_SD_REFRESH}
                    ],
                }
            ],
        }

    def alertmanager_config(self) -> dict[str, Any]:
        return {
            "route": {
                "receiver": "conveyor",
                # '...' groups by every label: each alert is its own notification.
                "group_by": ["..."],
                "group_wait": GROUP_WAIT,
                "group_interval": GROUP_INTERVAL,
                "repeat_interval": REPEAT_INTERVAL,
            },
            "receivers": [
                {
                    "name": "conveyor",
                    "webhook_configs": [
                        {
                            "url": self.webhook_url,
                            "send_resolved": True,
                            "http_config": {
                                "authorization": {
                                    "type": "Bearer",
                                    "credentials": self.webhook_token,
                                }
                            },
                        }
                    ],
                }
            ],
        }

    def _write_configs(self) -> None:
        # Targets left by an earlier sandbox point at ports that are gone: start from ours.
        self.set_targets(self._targets)
        write_atomically(self.state_dir / "prometheus.yml", _yaml(self.prometheus_config()))
        # Files are created 0600 (mkstemp): alertmanager.yml holds the webhook token.
        write_atomically(self.state_dir / "alertmanager.yml", _yaml(self.alertmanager_config()))

    def _alertmanager_process(self, binary: str) -> ManagedProcess:
        data = self.state_dir / "alertmanager-data"
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            binary,
            f"--config.file={self.state_dir / 'alertmanager.yml'}",
            f"--storage.path={data}",
            f"--web.listen-address={self.host}:{self.alertmanager_port}",
            f"--web.external-url={self.alertmanager_url}",
            "--cluster.listen-address=",  # a single local instance: no gossip port
        ]
        return ManagedProcess(
            argv,
            env=dict(os.environ),
            name="alertmanager",
            log_file=self.state_dir / "alertmanager.log",
        )

    def _prometheus_process(self, binary: str) -> ManagedProcess:
        data = self.state_dir / "prometheus-data"
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            binary,
            f"--config.file={self.state_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address={self.host}:{self.prometheus_port}",
            f"--web.external-url={self.prometheus_url}",
            "--web.enable-lifecycle",  # POST /-/reload after rule files change
        ]
        return ManagedProcess(
            argv,
            env=dict(os.environ),
            name="prometheus",
            log_file=self.state_dir / "prometheus.log",
        )

    def reload(self) -> None:
        """Make Prometheus re-read its config and rule files (after a rule file changed)."""
        status, body = self._prometheus_request("POST", "/-/reload")
        if status != 200:
            raise ProcessStartError(
                f"Prometheus refused to reload its configuration (HTTP {status}): "
                f"{body.decode(errors='replace').strip()}; check the rule files "
                f"{', '.join(str(path) for path in self.rule_files)}."
            )

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Evaluate an instant PromQL query; the `data.result` list. Handy in tests and demos."""
        _, body = self._prometheus_request(
            "GET", "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        )
        payload = json.loads(body)
        if payload.get("status") != "success":
            raise ValueError(f"Prometheus rejected query {expr!r}: {payload.get('error')}")
        return list(payload["data"]["result"])

    def _prometheus_request(self, method: str, path: str) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection(self.host, self.prometheus_port, timeout=10)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _which(names: Sequence[str]) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    return None


def _yaml(config: dict[str, Any]) -> str:
    return "# Written by conveyor sandbox; regenerated on every start.\n" + yaml.safe_dump(
        config, sort_keys=False
    )
