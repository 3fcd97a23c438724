"""Local processes for the sandbox: start one, wait until it answers HTTP, stop it cleanly.

Every sandbox server (S3, Prometheus, Alertmanager, the API emulator, pods run by the node agent)
is a child process in its own session, so stopping it also stops anything it spawned and a
Ctrl-C in the terminal reaches the sandbox, not each child separately. Output goes to a log file
whose tail is quoted in every error, because "it did not start" is useless without the reason.

A process remembers whether it was stopped on purpose (`stop()`), so whoever watches it
(`supervisor.Supervised`) can tell a deliberate stop from a crash and never restarts the former.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Container, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

__all__ = ["ManagedProcess", "ProcessStartError", "describe_exit", "free_port"]

logger = logging.getLogger(__name__)

_PROBE_INTERVAL = 0.1
_PROBE_TIMEOUT = 2.0
_TAIL_BYTES = 64 * 1024
_START_MARK = "--- "  # begins the line written to the log before each start


class ProcessStartError(RuntimeError):
    """A sandbox process exited or did not answer in time; the message quotes its log tail."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on `host` that nothing listens on right now.

    The port is only free at the moment of asking; start the server promptly.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def describe_exit(returncode: int) -> str:
    """How a process ended, in words: "exited with code 3", "killed by SIGKILL (signal 9)"."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    number = -returncode
    try:
        name = signal.Signals(number).name
    except ValueError:
        return f"killed by signal {number}"
    return f"killed by {name} (signal {number})"


class ManagedProcess:
    """One child process in its own process group, logging to `log_file`.

    `env` is the complete environment of the child, as for `subprocess.Popen`
    (`None` inherits this process's environment); layer extra variables with
    `{**os.environ, "KEY": "value"}`.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None,
        log_file: Path,
        cwd: Path | None = None,
        name: str | None = None,
    ) -> None:
        if not argv:
            raise ValueError("ManagedProcess needs a command: argv is empty.")
        self.argv = [str(arg) for arg in argv]
        self.env = dict(env) if env is not None else None
        self.log_file = Path(log_file)
        self.cwd = cwd
        self.name = name or Path(self.argv[0]).name
        self._popen: subprocess.Popen[bytes] | None = None
        # start, respawn and stop take turns, so a restart cannot slip in behind a stop.
        self._lock = threading.RLock()
        self._stopped = False

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    @property
    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen is not None else None

    @property
    def stopped(self) -> bool:
        """Whether `stop()` was called since the last `start()`: an exit now is no crash."""
        return self._stopped

    def start(self) -> None:
        """Spawn the process; output is appended to the log file. No-op when already running."""
        with self._lock:
            self._stopped = False
            if not self.running:
                self._spawn()

    def respawn(self) -> bool:
        """Start the process again after it died, unless `stop()` was called meanwhile (or it
        runs). True when it was started."""
        with self._lock:
            if self._stopped or self.running:
                return False
            self._spawn()
            return True

    def wait(self) -> int:
        """Block until the process exits, reap it (no zombie) and kill what it left in its
        process group; its exit code (negative: the signal that killed it)."""
        popen = self._popen
        if popen is None:
            raise RuntimeError(f"{self.name} was never started; call start() before wait().")
        code = popen.wait()
        _signal_group(popen.pid, signal.SIGKILL)
        return code

    def _spawn(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            started = datetime.now(UTC).isoformat(timespec="seconds")
            command = " ".join(self.argv).replace("\n", "\\n")  # the mark stays one line
            log.write(f"{_START_MARK}{started} starting: {command}\n".encode())
            log.flush()
            try:
                self._popen = subprocess.Popen(
                    self.argv,
                    env=self.env,
                    cwd=self.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as error:
                raise ProcessStartError(
                    f"Cannot start {self.name} ({' '.join(self.argv)}): {error}. "
                    "Check that the program is installed and on PATH."
                ) from error
        logger.info("Started %s (pid %d), logging to %s", self.name, self._popen.pid, self.log_file)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the process group, wait, then kill what is left. Safe to call twice."""
        with self._lock:
            self._stopped = True
            self._stop(timeout)

    def _stop(self, timeout: float) -> None:
        popen = self._popen
        if popen is None:
            return
        if popen.poll() is None:
            _signal_group(popen.pid, signal.SIGTERM)
            try:
                popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop within %.0fs; killing it", self.name, timeout)
                _signal_group(popen.pid, signal.SIGKILL)
                popen.wait()
        # Children that outlived the leader would keep ports and files open.
        _signal_group(popen.pid, signal.SIGKILL)
        logger.info("Stopped %s (exit code %s)", self.name, popen.returncode)

    def log_tail(self, n: int = 20, *, last_run: bool = False) -> str:
        """The last `n` lines of the log file ('' when there is none yet); with `last_run`,
        only those the latest start wrote."""
        try:
            with self.log_file.open("rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - _TAIL_BYTES))
                data = log.read()
        except FileNotFoundError:
            return ""
        lines = data.decode("utf-8", errors="replace").splitlines()[-n:]
        if last_run:
            starts = [i for i, line in enumerate(lines) if _is_start_mark(line)]
            lines = lines[starts[-1] + 1 :] if starts else lines
        return "\n".join(lines)

    def wait_http(
        self,
        url: str,
        timeout: float,
        *,
        expect_status: Container[int] = range(200, 500),
    ) -> None:
        """Block until GET `url` answers with a status in `expect_status`.

        Raises `ProcessStartError` (with the log tail) when the process exits first or the
        deadline passes.
        """
        deadline = time.monotonic() + timeout
        last_seen = "no answer"
        while True:
            if not self.running:
                raise ProcessStartError(
                    f"{self.name} exited with code {self.returncode} before {url} answered."
                    f"{self._tail_for_error()}"
                )
            status = _probe(url)
            if status is not None and status in expect_status:
                return
            if status is not None:
                last_seen = f"HTTP {status}"
            if time.monotonic() >= deadline:
                raise ProcessStartError(
                    f"{self.name} did not answer {url} within {timeout:.0f}s "
                    f"(last: {last_seen}).{self._tail_for_error()}"
                )
            time.sleep(_PROBE_INTERVAL)

    def _tail_for_error(self) -> str:
        tail = self.log_tail()
        if not tail:
            return f" Its log {self.log_file} is empty."
        return f" Last lines of {self.log_file}:\n{tail}"

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

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<ManagedProcess {self.name} pid={self.pid} {state}>"


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _probe(url: str) -> int | None:
    """GET `url` once; the HTTP status, or None when nothing answered.

    http.client rather than urllib: urllib honours http_proxy, which must never see 127.0.0.1.
    """
    parts = urlsplit(url)
    if parts.hostname is None:
        raise ValueError(f"Cannot probe {url!r}: it has no host; use a URL like http://host:port/")
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(parts.hostname, parts.port, timeout=_PROBE_TIMEOUT)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def _is_start_mark(line: str) -> bool:
    return line.startswith(_START_MARK) and " starting: " in line
