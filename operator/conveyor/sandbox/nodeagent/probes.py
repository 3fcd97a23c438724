"""Readiness and liveness probes (httpGet, tcpSocket, exec) against a local process."""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ProbeState", "run_probe"]

#: Maps a probe's port (name or number) to the host port the process listens on.
PortResolver = Callable[[int | str], int | None]
#: Maps an exec probe's command to (argv, env, cwd).
ExecResolver = Callable[[list[str]], tuple[list[str], dict[str, str], str]]

_UNREADY_PERIOD = 0.25  # seconds: probe a not-yet-ready container often (sandbox acceleration)


def run_probe(
    probe: Mapping[str, Any], resolve_port: PortResolver, resolve_exec: ExecResolver
) -> tuple[bool, str]:
    """Run one probe: (success, a message saying why it failed)."""
    timeout = float(probe.get("timeoutSeconds", 1))
    if "httpGet" in probe:
        return _http_get(probe["httpGet"], resolve_port, timeout)
    if "tcpSocket" in probe:
        port = resolve_port(probe["tcpSocket"].get("port", 0))
        if port is None:
            return False, f"unknown port {probe['tcpSocket'].get('port')!r}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=timeout):
                return True, ""
        except OSError as error:
            return False, f"dial tcp 127.0.0.1:{port}: {error}"
    if "exec" in probe:
        argv, env, cwd = resolve_exec(list(probe["exec"].get("command") or []))
        try:
            done = subprocess.run(
                argv,
                env=env,
                cwd=cwd,
                capture_output=True,
                timeout=timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return False, str(error)
        output = (done.stdout + done.stderr).decode("utf-8", "replace").strip()
        return done.returncode == 0, output[-512:]
    return True, ""  # grpc and unknown handlers: not emulated, treated as passing


def _http_get(
    action: Mapping[str, Any], resolve_port: PortResolver, timeout: float
) -> tuple[bool, str]:
    port = resolve_port(action.get("port", 80))
    if port is None:
        return False, f"unknown port {action.get('port')!r}"
    path = action.get("path", "/") or "/"
    headers = {h["name"]: h["value"] for h in action.get("httpHeaders") or []}
    if action.get("scheme", "HTTP").upper() == "HTTPS":
        context = ssl._create_unverified_context()  # the kubelet does not verify either
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            "127.0.0.1", port, timeout=timeout, context=context
        )
    else:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
    except (OSError, http.client.HTTPException) as error:
        return False, f'Get "http://127.0.0.1:{port}{path}": {error}'
    finally:
        connection.close()
    if 200 <= response.status < 400:
        return True, ""
    return False, f"HTTP probe failed with statuscode: {response.status}"


@dataclass
class ProbeState:
    """Schedule and counters of one probe of one running container."""

    probe: Mapping[str, Any]
    started_at: float
    passing: bool = False
    ever_passed: bool = False
    failures: int = 0
    successes: int = 0
    next_at: float = 0.0

    def __post_init__(self) -> None:
        self.next_at = self.started_at + float(self.probe.get("initialDelaySeconds", 0))

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def restart(self, now: float) -> None:
        """Schedule afresh from `now` (a startup probe just passed: the others begin)."""
        self.started_at = now
        self.next_at = now + float(self.probe.get("initialDelaySeconds", 0))

    def record(self, success: bool, now: float) -> bool:
        """Count one result; True when ``passing`` flipped."""
        period = float(self.probe.get("periodSeconds", 10))
        self.next_at = now + (period if self.ever_passed else min(period, _UNREADY_PERIOD))
        before = self.passing
        if success:
            self.failures = 0
            self.successes += 1
            if self.successes >= int(self.probe.get("successThreshold", 1)):
                self.passing = self.ever_passed = True
        else:
            self.successes = 0
            self.failures += 1
            if self.failures >= int(self.probe.get("failureThreshold", 3)):
                self.passing = False
        return before != self.passing
