"""`.sandbox/status.json` and `conveyor sandbox status`: what runs, and whether anything does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.cli import main
from conveyor.sandbox.status import (
    STATUS_FILE,
    NoSandbox,
    SandboxStatus,
    process_start_ticks,
    read_status,
    write_status,
)
from conveyor.sandbox.supervisor import ComponentStatus


def running_here(state_dir: Path, **changes: object) -> SandboxStatus:
    fields: dict[str, object] = {
        "pid": os.getpid(),
        "pid_started": process_start_ticks(os.getpid()),
        "started_at": "2026-01-01T00:00:00+00:00",
        "state_dir": str(state_dir),
        "components": [
            ComponentStatus("api", "Running", os.getpid(), "http://127.0.0.1:1234"),
            ComponentStatus(
                "operator",
                "Running",
                4242,
                "http://127.0.0.1:8080",
                restarts=2,
                last_exit="killed by SIGKILL (signal 9)",
                last_exit_at="2026-01-01T00:01:00+00:00",
            ),
        ],
        **changes,
    }
    return SandboxStatus(**fields)  # type: ignore[arg-type]


def test_what_is_written_is_read_back(tmp_path: Path) -> None:
    write_status(tmp_path, running_here(tmp_path))
    status = read_status(tmp_path)
    assert status.component("operator").restarts == 2
    assert status.component("operator").last_exit == "killed by SIGKILL (signal 9)"
    assert json.loads((tmp_path / STATUS_FILE).read_text())["pid"] == os.getpid()
    assert not [path.name for path in tmp_path.iterdir() if path.name != STATUS_FILE]
    with pytest.raises(KeyError, match="api, operator"):
        status.component("prometheus")


def test_no_file_means_no_sandbox(tmp_path: Path) -> None:
    with pytest.raises(NoSandbox, match=r"No sandbox is running .* `conveyor sandbox up`"):
        read_status(tmp_path)


def test_a_file_left_by_a_dead_sandbox_is_not_believed(tmp_path: Path) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    write_status(tmp_path, running_here(tmp_path, pid=int(gone.stdout)))
    with pytest.raises(NoSandbox, match=f"pid {int(gone.stdout)}.* is gone"):
        read_status(tmp_path)


def test_a_reused_pid_does_not_pass_for_the_sandbox(tmp_path: Path) -> None:
    started = process_start_ticks(os.getpid())
    assert started is not None
    write_status(tmp_path, running_here(tmp_path, pid_started=started - 1))
    with pytest.raises(NoSandbox, match="is gone"):
        read_status(tmp_path)


def test_the_command_shows_each_component(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_status(tmp_path, running_here(tmp_path))
    assert main(["sandbox", "status", "--state-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["COMPONENT", "STATE", "PID", "RESTARTS", "URL", "LAST", "EXIT"]
    operator = next(line for line in lines if line.startswith("operator"))
    assert operator.split()[:5] == ["operator", "Running", "4242", "2", "http://127.0.0.1:8080"]
    assert "killed by SIGKILL (signal 9) (" in operator and "s ago)" in operator


def test_the_command_says_when_no_sandbox_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sandbox", "status", "--state-dir", str(tmp_path)]) == 1
    assert "No sandbox is running in" in capsys.readouterr().err


def test_the_command_prints_json_for_scripts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_status(tmp_path, running_here(tmp_path))
    assert main(["sandbox", "status", "--state-dir", str(tmp_path), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [part["name"] for part in printed["components"]] == ["api", "operator"]
