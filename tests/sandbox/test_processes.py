"""ManagedProcess against real child processes: start, readiness, errors, clean stop."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from conveyor.sandbox.processes import ManagedProcess, ProcessStartError, free_port
from tests.sandbox.netutil import port_is_free


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def python(code: str, tmp_path: Path, name: str = "child") -> ManagedProcess:
    return ManagedProcess(
        [sys.executable, "-c", code], env=None, log_file=tmp_path / f"{name}.log", name=name
    )


def test_free_port_can_be_bound() -> None:
    assert port_is_free(free_port())


def test_http_server_starts_answers_and_releases_its_port(tmp_path: Path) -> None:
    port = free_port()
    server = ManagedProcess(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        env=None,
        log_file=tmp_path / "http.log",
        cwd=tmp_path,
    )
    with server:
        server.wait_http(f"http://127.0.0.1:{port}/", timeout=10)
        assert server.running
        assert not port_is_free(port)
    assert not server.running
    assert port_is_free(port)
    server.stop()  # a second stop is harmless


def test_a_process_that_exits_early_is_reported_with_its_log(tmp_path: Path) -> None:
    child = python("import sys; print('config is broken', flush=True); sys.exit(3)", tmp_path)
    child.start()
    with pytest.raises(ProcessStartError) as raised:
        child.wait_http(f"http://127.0.0.1:{free_port()}/", timeout=10)
    message = str(raised.value)
    assert "exited with code 3" in message
    assert "config is broken" in message
    child.stop()


def test_a_process_that_never_answers_times_out_with_its_log(tmp_path: Path) -> None:
    child = python("import time; print('still warming up', flush=True); time.sleep(60)", tmp_path)
    child.start()
    started = time.monotonic()
    try:
        with pytest.raises(ProcessStartError, match="did not answer") as raised:
            child.wait_http(f"http://127.0.0.1:{free_port()}/ready", timeout=1)
    finally:
        child.stop()
    assert time.monotonic() - started < 5
    assert "still warming up" in str(raised.value)


def test_stop_kills_a_process_that_ignores_sigterm_and_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    code = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    stubborn = python(code, tmp_path, name="stubborn")
    stubborn.start()
    try:
        deadline = time.monotonic() + 10
        while stubborn.log_tail(1) != "ready" and time.monotonic() < deadline:
            time.sleep(0.05)
        grandchild = int(pid_file.read_text())
        assert alive(grandchild)
    finally:
        stubborn.stop(timeout=0.5)

    assert not stubborn.running
    assert stubborn.returncode is not None
    deadline = time.monotonic() + 5
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(grandchild)


def test_a_missing_program_is_named_in_the_error(tmp_path: Path) -> None:
    process = ManagedProcess(["conveyor-no-such-program"], env=None, log_file=tmp_path / "x.log")
    with pytest.raises(ProcessStartError, match="conveyor-no-such-program"):
        process.start()
    process.stop()


def test_log_tail_returns_the_last_lines(tmp_path: Path) -> None:
    child = python("for i in range(100): print(f'line {i}')", tmp_path)
    assert child.log_tail() == ""
    child.start()
    deadline = time.monotonic() + 10
    while child.running and time.monotonic() < deadline:
        time.sleep(0.05)
    child.stop()
    assert child.log_tail(3).splitlines() == ["line 97", "line 98", "line 99"]
