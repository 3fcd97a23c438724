"""One container of a pod as a local process: start (argv, environment, memory limit, log file),
exit detection, termination messages, restarts with back-off, probes.

Termination messages follow the kubelet: before each start the container gets a new, empty
termination-message file; when it terminates (success or failure) the last 4096 bytes of that
file become ``state.terminated.message``; when the file is empty, the policy
``FallbackToLogsOnError`` and a failed run (non-zero exit, ``OOMKilled`` included) quote this run's
log instead: its last 80 lines, at most their last 2048 bytes. The default policy ``File`` with an
empty file gives no message.

Approximations, because a process is not a container: no mount namespace (volumes are not
mounted; ``emptyDir`` volumes become directories under the pod directory and ``TMPDIR`` points to a
per-pod tmp directory; the termination-message file cannot be mounted at
``terminationMessagePath``, default ``/dev/termination-log``, so it is
``<pod directory>/termination/<container name>`` and the environment variable
``TERMINATION_MESSAGE_PATH`` names it, whatever the container's own ``env`` says), no network
namespace (ports are remapped, see ``ports``), and ``limits.memory`` is an address-space limit
(``RLIMIT_AS``): a process that dies of it, or fails with ``MemoryError``/``Cannot allocate
memory``, is reported as ``OOMKilled`` (exit code 137)."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .containers import (
    ContainerConfigError,
    ObjectLookup,
    expand_references,
    map_argv,
    parse_memory_quantity,
    resolve_env,
)
from .podstatus import ContainerView
from .ports import find_host_port
from .probes import ProbeState, run_probe
from .timefmt import format_time

__all__ = ["TERMINATION_MESSAGE_ENV", "ContainerRuntime", "PodContext"]

#: Where a container's process finds its termination-message file (the sandbox's stand-in for the
#: file the kubelet mounts at ``terminationMessagePath``).
TERMINATION_MESSAGE_ENV = "TERMINATION_MESSAGE_PATH"

_BASE_BACKOFF = 0.5  # seconds; a cluster starts at 10 s
_MAX_BACKOFF = 10.0
_RESET_AFTER = 10.0  # a container that ran this long restarts without back-off
# The kubelet's limits (MaxContainerTerminationMessageLength, ...LogLength, ...LogLines).
_MESSAGE_BYTES = 4096
_LOG_MESSAGE_BYTES = 2048
_LOG_MESSAGE_LINES = 80
_OOM_MARKERS = ("MemoryError", "Cannot allocate memory", "bad_alloc", "out of memory")

#: ``emit(type, reason, message)`` posts an Event about the pod.
Emit = Callable[[str, str, str], None]


@dataclass
class PodContext:
    """What every container of one pod shares."""

    pod: Mapping[str, Any]
    workdir: Path
    log_dir: Path
    base_env: Mapping[str, str]
    command_map: Mapping[str, list[str]]
    lookup: ObjectLookup
    emit: Emit

    @property
    def restart_policy(self) -> str:
        return str(self.pod.get("spec", {}).get("restartPolicy") or "Always")


def _memory_limiter(limit: int) -> Callable[[], None]:
    def apply() -> None:  # runs in the child between fork and exec
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def _last_lines(data: bytes, count: int) -> bytes:
    """The last ``count`` lines of ``data``; an unterminated last line counts as one."""
    start = len(data) - 1 if data.endswith(b"\n") else len(data)
    for _ in range(count):
        start = data.rfind(b"\n", 0, start)
        if start < 0:
            return data
    return data[start + 1 :]


class ContainerRuntime:
    """State machine of one container: waiting → running → terminated (→ waiting on restart)."""

    def __init__(self, spec: Mapping[str, Any], context: PodContext) -> None:
        self.spec = spec
        self.name = str(spec["name"])
        self.context = context
        self.log_path = context.log_dir / f"{self.name}.log"
        self.termination_message_path = context.workdir / "termination" / self.name
        self.state: dict[str, Any] = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: dict[str, Any] = {}
        self.restart_count = 0
        self.ever_started = False
        self.final = False
        self.process: subprocess.Popen[bytes] | None = None
        self._env: dict[str, str] = {}
        self._log_offset = 0
        self._started = 0.0
        self._next_start = 0.0
        self._backoff = _BASE_BACKOFF
        self._kill_deadline: float | None = None
        self._startup: ProbeState | None = None
        self._readiness: ProbeState | None = None
        self._liveness: ProbeState | None = None
        self._reported_error = ""

    # -- views -------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        if "running" not in self.state or self._kill_deadline is not None:
            return False
        if not self.started:
            return False
        return self._readiness is None or self._readiness.passing

    @property
    def started(self) -> bool:
        """Running, and past its startup probe (when it has one)."""
        return "running" in self.state and (self._startup is None or self._startup.ever_passed)

    def view(self) -> ContainerView:
        pid = self.process.pid if self.process is not None else None
        return ContainerView(
            name=self.name,
            image=str(self.spec.get("image", "")),
            state=self.state,
            ready=self.ready,
            restart_count=self.restart_count,
            started=self.started,
            last_state=self.last_state,
            ever_started=self.ever_started,
            final=self.final,
            container_id=f"sandbox://{pid}" if pid else "",
        )

    # -- lifecycle ---------------------------------------------------------------------------
    def step(self, now: float) -> None:
        """Advance the state machine: start when due, notice an exit, run due probes."""
        if self.final:
            return
        if self.process is None:
            if now >= self._next_start:
                self._start(now)
            return
        code = self.process.poll()
        if code is not None:
            self._exited(code, now)
            return
        if self._kill_deadline is not None:
            if now >= self._kill_deadline:
                self._signal(signal.SIGKILL)
            return
        self._probe(now)

    def _start(self, now: float) -> None:
        try:
            env = self._environment()
        except ContainerConfigError as error:
            self._config_error(str(error), now)
            return
        argv = [
            expand_references(a, env)
            for a in map_argv(
                self.spec.get("command"), self.spec.get("args"), self.context.command_map
            )
        ]
        executable = shutil.which(argv[0], path=env.get("PATH")) if argv else None
        if executable is None:
            message = f'exec: "{argv[0] if argv else ""}": executable file not found in $PATH'
            self._terminated(128, "StartError", message, now, now)
            return
        self._env = env
        cwd = self._working_dir()
        self._new_termination_message_file()
        self.context.log_dir.mkdir(parents=True, exist_ok=True)
        limit = (self.spec.get("resources") or {}).get("limits", {}).get("memory")
        with open(self.log_path, "ab") as log:
            self._log_offset = log.tell()
            self.process = subprocess.Popen(
                [executable, *argv[1:]],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                preexec_fn=_memory_limiter(parse_memory_quantity(limit)) if limit else None,
            )
        self._started = now
        self._reported_error = ""
        self.state = {"running": {"startedAt": format_time(now)}}
        if self.ever_started:
            self.restart_count += 1
        else:
            image = self.spec.get("image", "")
            self.context.emit(
                "Normal", "Pulled", f'Container image "{image}" already present on machine'
            )
        self.ever_started = True
        self.context.emit("Normal", "Created", f"Created container {self.name}")
        self.context.emit("Normal", "Started", f"Started container {self.name}")
        self._startup = self._probe_state("startupProbe", now)
        self._readiness = self._probe_state("readinessProbe", now)
        self._liveness = self._probe_state("livenessProbe", now)

    def _probe_state(self, kind: str, now: float) -> ProbeState | None:
        probe = self.spec.get(kind)
        return ProbeState(probe, now) if probe else None

    def _environment(self) -> dict[str, str]:
        """The container's environment; ``TERMINATION_MESSAGE_PATH`` can be referenced as
        ``$(TERMINATION_MESSAGE_PATH)`` and cannot be overridden (the kubelet reads that file)."""
        message_path = {TERMINATION_MESSAGE_ENV: str(self.termination_message_path)}
        base = {**self.context.base_env, **message_path}
        env = resolve_env(self.spec, self.context.pod, self.context.lookup, base)
        env.update(message_path)
        return env

    def _new_termination_message_file(self) -> None:
        """An empty termination-message file for the run about to start. A new file, not the old
        one truncated: a leftover process of an earlier run that still holds that one open cannot
        write into this run's message."""
        path = self.termination_message_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        path.touch()

    def _working_dir(self) -> Path:
        working = self.spec.get("workingDir")
        path = self.context.workdir / str(working).lstrip("/") if working else self.context.workdir
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _config_error(self, message: str, now: float) -> None:
        self.state = {"waiting": {"reason": "CreateContainerConfigError", "message": message}}
        self._next_start = now + 1.0
        if message != self._reported_error:
            self._reported_error = message
            self.context.emit("Warning", "Failed", f"Error: {message}")

    def _exited(self, code: int, now: float) -> None:
        self.process = None
        self._kill_deadline = None
        tail = self._log_tail() if code != 0 else ""
        limited = bool((self.spec.get("resources") or {}).get("limits", {}).get("memory"))
        if limited and code != 0 and (code < 0 or any(m in tail for m in _OOM_MARKERS)):
            exit_code, reason = 137, "OOMKilled"
        elif code == 0:
            exit_code, reason = 0, "Completed"
        else:
            exit_code, reason = (128 - code if code < 0 else code), "Error"
        message = self._termination_message()
        if not message and exit_code != 0 and self._falls_back_to_logs:
            message = tail
        self._terminated(exit_code, reason, message, self._started, now)

    def _terminated(self, code: int, reason: str, message: str, started: float, now: float) -> None:
        terminated: dict[str, Any] = {
            "exitCode": code,
            "reason": reason,
            "startedAt": format_time(started),
            "finishedAt": format_time(now),
        }
        if message:
            terminated["message"] = message
        policy = self.context.restart_policy
        if policy == "Always" or (policy == "OnFailure" and code != 0):
            self._backoff = _BASE_BACKOFF if now - started >= _RESET_AFTER else self._backoff
            self.last_state = {"terminated": terminated}
            pod = self.context.pod["metadata"]
            self.state = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {self._backoff:g}s restarting failed "
                    f"container={self.name} "
                    f"pod={pod['name']}_{pod.get('namespace')}({pod.get('uid')})",
                }
            }
            self._next_start = now + self._backoff
            self._backoff = min(self._backoff * 2, _MAX_BACKOFF)
            self.ever_started = True
            self.context.emit(
                "Warning",
                "BackOff",
                f"Back-off restarting failed container {self.name} in pod "
                f"{pod['name']}_{pod.get('namespace')}({pod.get('uid')})",
            )
            return
        self.state = {"terminated": terminated}
        self.ever_started = True
        self.final = True

    @property
    def _falls_back_to_logs(self) -> bool:
        return self.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError"

    def _termination_message(self) -> str:
        """What this run wrote to its termination-message file: the last 4096 bytes, as the
        kubelet reads them; empty when the file is empty or gone."""
        path = self.termination_message_path
        try:
            with open(path, "rb") as file:
                size = file.seek(0, os.SEEK_END)
                file.seek(max(0, size - _MESSAGE_BYTES))
                data = file.read(_MESSAGE_BYTES)
        except FileNotFoundError:
            return ""
        except OSError as error:
            return f"Error on reading termination log {path}: {error}"
        return data.decode("utf-8", "replace")

    def _log_tail(self) -> str:
        """This run's output as the kubelet quotes it: the last 80 lines, at most their last
        2048 bytes (the first line or character may be cut, as in the kubelet)."""
        try:
            with open(self.log_path, "rb") as log:
                size = log.seek(0, os.SEEK_END)
                log.seek(max(self._log_offset, size - _LOG_MESSAGE_BYTES))
                data = log.read(_LOG_MESSAGE_BYTES)
        except OSError:
            return ""
        return _last_lines(data, _LOG_MESSAGE_LINES).decode("utf-8", "replace")

    # -- probes ------------------------------------------------------------------------------
    def _probe(self, now: float) -> None:
        """The startup probe alone until it passes (a slow start is no liveness failure),
        then readiness and liveness, whose schedules start when it passed."""
        startup = self._startup
        if startup is not None and not startup.ever_passed:
            self._probe_startup(startup, now)
            return
        readiness, liveness = self._readiness, self._liveness
        if readiness is not None and readiness.due(now):
            success, why = run_probe(readiness.probe, self._host_port, self._exec_argv)
            if readiness.record(success, time.time()) and not readiness.passing:
                self.context.emit("Warning", "Unhealthy", f"Readiness probe failed: {why}")
        if liveness is not None and liveness.due(now):
            success, why = run_probe(liveness.probe, self._host_port, self._exec_argv)
            liveness.record(success, time.time())
            if liveness.failures >= int(liveness.probe.get("failureThreshold", 3)):
                self.context.emit("Warning", "Unhealthy", f"Liveness probe failed: {why}")
                self.context.emit(
                    "Normal",
                    "Killing",
                    f"Container {self.name} failed liveness probe, will be restarted",
                )
                self.kill(
                    float(self.context.pod.get("spec", {}).get("terminationGracePeriodSeconds", 30))
                )

    def _probe_startup(self, startup: ProbeState, now: float) -> None:
        if not startup.due(now):
            return
        success, why = run_probe(startup.probe, self._host_port, self._exec_argv)
        startup.record(success, time.time())
        if startup.ever_passed:
            for probe in (self._readiness, self._liveness):
                if probe is not None:
                    probe.restart(now)
            return
        # Probed more often than periodSeconds while failing (sandbox acceleration): give up
        # only when as much time went by as failureThreshold times periodSeconds allows.
        threshold = int(startup.probe.get("failureThreshold", 3))
        allowed = float(startup.probe.get("initialDelaySeconds", 0)) + threshold * float(
            startup.probe.get("periodSeconds", 10)
        )
        if startup.failures >= threshold and now - startup.started_at >= allowed:
            self.context.emit("Warning", "Unhealthy", f"Startup probe failed: {why}")
            self.context.emit(
                "Normal",
                "Killing",
                f"Container {self.name} failed startup probe, will be restarted",
            )
            self.kill(
                float(self.context.pod.get("spec", {}).get("terminationGracePeriodSeconds", 30))
            )

    def _host_port(self, target: int | str) -> int | None:
        return find_host_port(self.context.pod, target)

    def _exec_argv(self, command: list[str]) -> tuple[list[str], dict[str, str], str]:
        argv = map_argv(command or None, None, self.context.command_map)
        return argv, self._env, str(self._working_dir())

    # -- termination -------------------------------------------------------------------------
    def kill(self, grace: float) -> None:
        """SIGTERM the container's process group now, SIGKILL after ``grace`` (at most 10 s)."""
        if self.process is None or self._kill_deadline is not None:
            return
        self._kill_deadline = time.time() + min(max(grace, 0.0), 10.0)
        self._signal(signal.SIGTERM)

    def _signal(self, signum: int) -> None:
        process = self.process  # read once: another thread may be clearing it
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signum)

    def kill_now(self) -> None:
        self._signal(signal.SIGKILL)

    def stop(self, grace: float) -> None:
        """Terminate for good (pod deleted or agent stopping) and wait for the process."""
        self.final = True
        if self.process is None:
            return
        self.kill(grace)
        deadline = self._kill_deadline or time.time()
        while self.process.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        self._signal(signal.SIGKILL)
        self.process.wait()
        self.process = None
