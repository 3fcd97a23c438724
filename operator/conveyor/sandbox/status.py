"""`.sandbox/status.json`: what a running sandbox says about its parts, for another terminal.

The sandbox rewrites the file (atomically: a reader never sees half of it) whenever a part
changes state, and removes it when it stops. A file whose writer is gone — the sandbox was
killed — is recognised by the writer's pid and that process's start time, so a reused pid does
not pass for a running sandbox. Standard library only: `conveyor sandbox status` must not need
the sandbox's own dependencies to say that no sandbox runs.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .supervisor import ComponentStatus

__all__ = [
    "STATUS_FILE",
    "NoSandbox",
    "SandboxStatus",
    "process_start_ticks",
    "read_status",
    "remove_status",
    "write_atomically",
    "write_status",
]

STATUS_FILE = "status.json"


class NoSandbox(Exception):
    """No sandbox runs in the state directory; the message says why it is believed so."""


@dataclass(frozen=True)
class SandboxStatus:
    pid: int
    """The process running the sandbox (`conveyor sandbox up`, or a test)."""
    pid_started: int | None
    """That process's start time (clock ticks after boot), to tell a reused pid apart."""
    started_at: str
    state_dir: str
    components: list[ComponentStatus] = field(default_factory=list)
    updated_at: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "pidStarted": self.pid_started,
            "startedAt": self.started_at,
            "updatedAt": self.updated_at or _now(),
            "stateDir": self.state_dir,
            "components": [component.to_json() for component in self.components],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SandboxStatus:
        return cls(
            pid=int(data["pid"]),
            pid_started=data.get("pidStarted"),
            started_at=str(data.get("startedAt", "")),
            state_dir=str(data.get("stateDir", "")),
            components=[ComponentStatus.from_json(item) for item in data.get("components", [])],
            updated_at=str(data.get("updatedAt", "")),
        )

    def component(self, name: str) -> ComponentStatus:
        found = next((item for item in self.components if item.name == name), None)
        if found is None:
            known = ", ".join(item.name for item in self.components)
            raise KeyError(f"The sandbox has no component {name!r}; it has: {known}.")
        return found


def write_status(state_dir: Path, status: SandboxStatus) -> None:
    text = json.dumps(status.to_json(), indent=2) + "\n"
    write_atomically(Path(state_dir) / STATUS_FILE, text)


def remove_status(state_dir: Path) -> None:
    (Path(state_dir) / STATUS_FILE).unlink(missing_ok=True)


def read_status(state_dir: Path) -> SandboxStatus:
    """The status the running sandbox wrote; `NoSandbox` when none runs in `state_dir`."""
    path = Path(state_dir) / STATUS_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise NoSandbox(
            f"No sandbox is running in {Path(state_dir).resolve()} (it has no {STATUS_FILE}); "
            "start one with `conveyor sandbox up`, or pass the --state-dir it uses."
        ) from None
    except ValueError as error:
        raise NoSandbox(f"{path} is not valid JSON ({error}); is a sandbox running?") from None
    status = SandboxStatus.from_json(data)
    if not _alive(status.pid, status.pid_started):
        raise NoSandbox(
            f"No sandbox is running in {Path(state_dir).resolve()}: the process that wrote "
            f"{path} (pid {status.pid}) is gone without stopping it. Processes it started may "
            "still run; `pgrep -f` the state directory to find them."
        )
    return status


def process_start_ticks(pid: int) -> int | None:
    """When `pid` started, in clock ticks after boot (Linux); None where /proc cannot say."""
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None  # field 22 of the line: starttime


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name, from the state (field 3) on."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count from its last ")".
    return stat[stat.rindex(")") + 2 :].split()


def _alive(pid: int, started: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    fields = _proc_stat(pid)
    if fields is None:
        return True  # no /proc: the signal's answer is all there is
    return fields[0] != "Z" and (started is None or int(fields[19]) == started)


def write_atomically(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _now() -> str:
    return datetime.fromtimestamp(time.time(), UTC).isoformat(timespec="seconds")
