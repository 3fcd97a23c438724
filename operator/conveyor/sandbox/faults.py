"""Faults the sandbox injects on purpose, to prove Conveyor survives them (tests/faults/).

Every fault is off until a test switches it on, and off again when the test's window closes:

- `ApiFaults`: the API emulator answers a share of one identity's requests (the operator's)
  with 429 TooManyRequests (with Retry-After), 500 InternalError or 409 Conflict, before the
  request does anything, and cuts that identity's watch streams a few seconds after they
  open. Each method's requests are faulted at a fixed stride (1 in round(1 / share)) from a
  seeded offset, taking the codes in turn — 409 first for updates — so a window with a few
  dozen updates surely sees each code, and a seed repeats the same faults for the same
  sequence of requests.
- `sandbox.s3faults.S3FaultProxy`: S3 down or failing, between the sandbox's programs and
  its S3 server.
- `NodeAgent.kill_pod`: SIGKILL one pod's processes, as a node's OOM killer or a crash would.

Each fault counts what it did, so a test can print a figure a person can check.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp.web

from .apiserver.errors import status_body
from .apiserver.identity import UserInfo
from .apiserver.routing import Target

__all__ = ["ApiFaultCounts", "ApiFaultPlan", "ApiFaults"]

_WRITES = ("POST", "PUT", "PATCH", "DELETE")
_CONFLICT_METHODS = ("PUT", "PATCH")
"""Where a real server answers 409 Conflict: an update against a changed object. A create's
409 means AlreadyExists, which would be a lie about an object the fault kept from existing."""


@dataclass(frozen=True)
class ApiFaultPlan:
    """What the API faults do while they are on."""

    share: float = 0.1
    """The share of the identity's requests answered with an error, above 0, at most 1."""
    codes: tuple[int, ...] = (429, 500, 409)
    """The errors, taken in turn (409 only for updates: PUT and PATCH, and first for them)."""
    retry_after_seconds: int = 1
    """The Retry-After of a 429."""
    drop_watches_after: float | None = 3.0
    """Seconds after which each of the identity's watch streams is cut; None leaves them."""
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.share <= 1.0:
            raise ValueError(f"ApiFaultPlan.share must be above 0 and at most 1, not {self.share}")
        unknown = set(self.codes) - {409, 429, 500}
        if unknown or not self.codes:
            raise ValueError(f"ApiFaultPlan.codes must be some of 409, 429, 500: {self.codes}")


@dataclass
class ApiFaultCounts:
    """What the faults did in one window."""

    calls: Counter[str] = field(default_factory=Counter)
    """The identity's requests to the API (discovery excluded) by method, watches included."""
    faulted: Counter[int] = field(default_factory=Counter)
    """Requests answered with an error, by status code."""
    watches: int = 0
    watches_dropped: int = 0

    def describe(self) -> str:
        codes = ", ".join(f"{count} {code}" for code, count in sorted(self.faulted.items()))
        return (
            f"{sum(self.faulted.values())} of {self.calls.total()} API calls answered with an "
            f"error ({codes or 'none'}); {self.watches_dropped} of {self.watches} watch streams "
            "cut"
        )


class ApiFaults:
    """The API emulator's fault injector for one identity's requests.

    `intercept` runs on the emulator's event loop; `switch_on` and `switch_off` from any thread.
    """

    def __init__(self, username: str) -> None:
        self.username = username
        self._lock = threading.Lock()
        self._plan: ApiFaultPlan | None = None
        self._seen: Counter[str] = Counter()  # requests by method in this window
        self._offsets: dict[str, int] = {}
        self._turns: Counter[str] = Counter()  # faults by method: whose code is next
        self._counts = ApiFaultCounts()
        self._window = 0  # which switch_on a scheduled watch cut belongs to
        self._watches: set[asyncio.BaseTransport] = set()
        """The connections of the identity's open watches, to cut those already open."""
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def on(self) -> bool:
        return self._plan is not None

    def switch_on(self, plan: ApiFaultPlan | None = None) -> None:
        """Start faulting (counts start from zero)."""
        with self._lock:
            self._plan = plan or ApiFaultPlan()
            self._seen, self._turns = Counter(), Counter()
            chooser = random.Random(self._plan.seed)
            period = self._period(self._plan)
            self._offsets = {m: chooser.randrange(period) for m in ("GET", *_WRITES)}
            self._counts = ApiFaultCounts()
            self._window += 1
            window, after, loop = self._window, self._plan.drop_watches_after, self._loop
        if after is not None and loop is not None:
            loop.call_soon_threadsafe(self._cut_open_watches, after, window)

    def switch_off(self) -> ApiFaultCounts:
        """Stop faulting; what the window did. Watch cuts still pending are called off."""
        with self._lock:
            self._plan = None
            self._window += 1
            return self._counts

    @property
    def counts(self) -> ApiFaultCounts:
        with self._lock:
            return ApiFaultCounts(
                Counter(self._counts.calls),
                Counter(self._counts.faulted),
                self._counts.watches,
                self._counts.watches_dropped,
            )

    def intercept(
        self, raw: aiohttp.web.BaseRequest, target: Target, user: UserInfo
    ) -> aiohttp.web.Response | None:
        """An error answer for this request, or None to serve it (a watch may be cut later)."""
        if user.username != self.username or target.resource_type is None:
            return None
        watch = raw.method == "GET" and (target.watch or _flag(raw.query.get("watch")))
        transport = raw.transport
        if watch and transport is not None:  # on or off: switching on cuts those open then
            self._loop = asyncio.get_running_loop()
            self._watches = {t for t in self._watches if not t.is_closing()} | {transport}
        if self._plan is None:
            return None
        with self._lock:
            plan = self._plan
            if plan is None:
                return None
            self._counts.calls[raw.method] += 1
            method = raw.method
            update = method in _CONFLICT_METHODS
            codes = sorted((c for c in plan.codes if c != 409 or update), key=lambda c: c != 409)
            seen = self._seen[method]
            self._seen[method] += 1
            if codes and (seen + self._offsets.get(method, 0)) % self._period(plan) == 0:
                code = codes[self._turns[method] % len(codes)]
                self._turns[method] += 1
                self._counts.faulted[code] += 1
                return _error(code, raw, target, plan)
            if watch and transport is not None:
                self._counts.watches += 1
                if plan.drop_watches_after is not None:
                    asyncio.get_running_loop().call_later(
                        plan.drop_watches_after, self._cut, transport, self._window
                    )
        return None

    @staticmethod
    def _period(plan: ApiFaultPlan) -> int:
        return max(1, round(1 / plan.share))

    def _cut_open_watches(self, after: float, window: int) -> None:
        loop = asyncio.get_running_loop()
        for transport in [t for t in self._watches if not t.is_closing()]:
            with self._lock:
                self._counts.watches += 1
            loop.call_later(after, self._cut, transport, window)

    def _cut(self, transport: asyncio.BaseTransport, window: int) -> None:
        """Close the watch's connection without ending the stream: the client sees it drop."""
        with self._lock:
            if window != self._window or transport.is_closing():
                return
            self._counts.watches_dropped += 1
        transport.close()


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


def _error(
    code: int, raw: aiohttp.web.BaseRequest, target: Target, plan: ApiFaultPlan
) -> aiohttp.web.Response:
    resource = target.resource_type
    assert resource is not None
    headers: dict[str, str] = {}
    details: dict[str, Any] | None = None
    if code == 429:
        message = "Too many requests, please try again later."
        reason = "TooManyRequests"
        details = {"retryAfterSeconds": plan.retry_after_seconds}
        headers["Retry-After"] = str(plan.retry_after_seconds)
    elif code == 409:
        message = (
            f'Operation cannot be fulfilled on {resource.qualified} "{target.name}": the object '
            "has been modified; please apply your changes to the latest version and try again"
        )
        reason = "Conflict"
        details = {"name": target.name, "group": resource.group, "kind": resource.plural}
    else:
        message = (
            f"Internal error occurred: the sandbox's fault injection failed {raw.method} "
            f"{raw.path} on purpose"
        )
        reason = "InternalError"
    body = status_body(code, reason, message, details)
    return aiohttp.web.json_response(body, status=code, headers=headers)
