"""Keep the sandbox's processes running, as the kubelet keeps the containers of a Deployment's pod.

A supervised process that dies without being stopped (it exited, or something killed it) is
reaped at once by a watcher thread blocked in `wait()`, reported — which process, how it ended,
how long it ran, the tail of its log — and started again after a back-off that follows the
kubelet's CrashLoopBackOff: the first crash restarts at once, the next ones wait `base`, then
twice as long each time up to `cap`; a process that ran `reset_after` seconds before it crashed
starts the count afresh. A deliberate `stop()` is not a crash and is never restarted.

Every change of state is passed to `on_change`, which the sandbox uses to keep
`.sandbox/status.json` current for `conveyor sandbox status`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, Self

from .processes import ManagedProcess, ProcessStartError, describe_exit

__all__ = ["BackOff", "ComponentStatus", "State", "Supervised"]

logger = logging.getLogger(__name__)

State = Literal["Starting", "Running", "CrashLoopBackOff", "Stopped"]
_LOG_TAIL_LINES = 15


@dataclass(frozen=True)
class BackOff:
    """How long to wait before restarting a crashed process (the kubelet: 10 s, 300 s, 10 min)."""

    base: float = 10.0
    cap: float = 300.0
    reset_after: float = 600.0
    """A process that ran this long before it crashed is not in a crash loop: count afresh."""

    def __post_init__(self) -> None:
        if self.base <= 0:
            raise ValueError(f"BackOff base must be more than 0 seconds, not {self.base}.")
        if self.cap < self.base:
            raise ValueError(f"BackOff cap ({self.cap}) must be at least its base ({self.base}).")
        if self.reset_after <= 0:
            raise ValueError(f"BackOff reset_after must be more than 0, not {self.reset_after}.")

    def delay(self, crashes: int) -> float:
        """Seconds before the restart that follows the `crashes`-th crash in a row (from 1)."""
        if crashes <= 1:
            return 0.0
        # min() before the power would overflow a float after ~1000 crashes.
        return min(self.base * 2.0 ** min(crashes - 2, 64), self.cap)


@dataclass(frozen=True)
class ComponentStatus:
    """One line of `conveyor sandbox status`."""

    name: str
    state: str
    pid: int | None = None
    url: str = ""
    restarts: int = 0
    last_exit: str = ""
    """How the process ended the last time it crashed ("killed by SIGKILL (signal 9)")."""
    last_exit_at: str = ""
    restart_at: str = ""
    """When a process in CrashLoopBackOff is started again."""
    log: str = ""

    def to_json(self) -> dict[str, Any]:
        return {_camel(key): value for key, value in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ComponentStatus:
        known = {key: data[_camel(key)] for key in cls.__dataclass_fields__ if _camel(key) in data}
        return cls(**known)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _now_iso(offset: float = 0.0) -> str:
    return datetime.fromtimestamp(time.time() + offset, UTC).isoformat(timespec="seconds")


class Supervised:
    """One process kept running: `start()` (or `with`) starts it, waits until `ready` passes,
    and watches it; `stop()` stops it on purpose.

    `ready(process)` blocks until the process serves (raising `ProcessStartError` when it does
    not); it runs after every start, and after a restart also does what a fresh process needs
    (an in-memory S3 server gets its buckets again).
    """

    def __init__(
        self,
        process: ManagedProcess,
        *,
        name: str | None = None,
        url: str = "",
        ready: Callable[[ManagedProcess], None] | None = None,
        backoff: BackOff | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.process = process
        self.name = name or process.name
        self.url = url
        self.backoff = backoff or BackOff()
        self._ready = ready
        self._on_change = on_change
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._watcher: threading.Thread | None = None
        self._state: State = "Stopped"
        self._restarts = 0
        self._crashes_in_a_row = 0
        self._started_at = 0.0
        self._last_exit = ""
        self._last_exit_at = ""
        self._restart_at = ""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the process unless it runs, wait until it is ready, then watch it."""
        if self._watcher is not None and self._watcher.is_alive():
            return
        self._closing.clear()
        if not self.process.running:
            self.process.start()
            self._set_state("Starting")
            try:
                if self._ready is not None:
                    self._ready(self.process)
            except BaseException:
                self.process.stop()
                self._set_state("Stopped")
                raise
        self._started_at = time.monotonic()
        self._set_state("Running")
        self._watcher = threading.Thread(
            target=self._watch, daemon=True, name=f"sandbox-supervise-{self.name}"
        )
        self._watcher.start()

    def stop(self) -> None:
        """Stop the process on purpose (no restart follows) and end the watcher; idempotent."""
        self._closing.set()
        self.process.stop()
        if self._watcher is not None:
            self._watcher.join(timeout=30)
            self._watcher = None
        self._crashes_in_a_row = 0
        self._set_state("Stopped")

    def stop_watching(self) -> None:
        """Let the process end without a restart: it is about to be killed on purpose (a pod
        gone with its node); `stop()` still ends it if it runs on."""
        self._closing.set()

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

    # -- what it looks like ------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def restarts(self) -> int:
        return self._restarts

    def status(self) -> ComponentStatus:
        with self._lock:
            return ComponentStatus(
                name=self.name,
                state=self._state,
                pid=self.process.pid if self._state in ("Starting", "Running") else None,
                url=self.url,
                restarts=self._restarts,
                last_exit=self._last_exit,
                last_exit_at=self._last_exit_at,
                restart_at=self._restart_at if self._state == "CrashLoopBackOff" else "",
                log=str(self.process.log_file),
            )

    # -- the watcher -------------------------------------------------------------------------

    def _watch(self) -> None:
        while True:
            code = self.process.wait()
            if self._closing.is_set() and not self.process.stopped:
                self._set_state("Stopped")  # killed on purpose, after stop_watching()
            if self.process.stopped or self._closing.is_set():
                return
            ran = time.monotonic() - self._started_at
            tail = self.process.log_tail(_LOG_TAIL_LINES, last_run=True) or "(it wrote nothing)"
            what = f"(pid {self.process.pid}) {describe_exit(code)} after running {ran:.1f}s"
            delay = self._record_crash(
                describe_exit(code), what, ran, f"Last lines of {self.process.log_file}:\n{tail}"
            )
            if not self._restart_after(delay):
                return

    def _restart_after(self, delay: float) -> bool:
        """Wait `delay`, then start the process again; False when it was stopped meanwhile."""
        while not self._closing.wait(delay):
            try:
                if not self.process.respawn():
                    return False
            except ProcessStartError as error:  # it could not even be spawned: back off again
                delay = self._record_crash(
                    "could not be started", "could not be started", 0.0, str(error)
                )
                continue
            self._started_at = time.monotonic()
            with self._lock:
                self._restarts += 1
            self._set_state("Starting")
            logger.info(
                "Restarted %s (pid %s, restart %d)", self.name, self.process.pid, self._restarts
            )
            if self._await_ready():
                self._set_state("Running")
            return True
        return False

    def _record_crash(self, how: str, what: str, ran: float, details: str) -> float:
        """Record and report a crash (`how` for the status, `what` for the log); the seconds
        to wait before the restart."""
        if ran >= self.backoff.reset_after:
            self._crashes_in_a_row = 0
        self._crashes_in_a_row += 1
        delay = self.backoff.delay(self._crashes_in_a_row)
        with self._lock:
            self._last_exit, self._last_exit_at = how, _now_iso()
            self._restart_at = _now_iso(delay)
        logger.error(
            "%s %s; restarting it in %.1fs (crash %d in a row). %s",
            self.name.capitalize(),
            what,
            delay,
            self._crashes_in_a_row,
            details,
        )
        self._set_state("CrashLoopBackOff")
        return delay

    def _await_ready(self) -> bool:
        """Run the readiness check after a restart: whether it passed. A process that died
        meanwhile is the watcher's next crash; one that runs but is not ready stays Starting."""
        if self._ready is None:
            return True
        try:
            self._ready(self.process)
        except Exception as error:  # reported; the watcher carries on either way
            if self.process.running:
                logger.warning("%s restarted but is not ready: %s", self.name.capitalize(), error)
            return False
        return True

    def _set_state(self, state: State) -> None:
        with self._lock:
            self._state = state
        if self._on_change is not None:
            try:
                self._on_change()
            except Exception:  # a status file that cannot be written must not stop supervision
                logger.exception("Could not report the state of %s", self.name)
