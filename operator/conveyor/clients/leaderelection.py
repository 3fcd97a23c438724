"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it.

Why a Lease and not kopf's peering: peering is built to pause operators of lower priority,
and replicas of one Deployment share one priority — kopf then warns and freezes all of them
("leaving the cluster unserved"); it also needs its own CRDs. A Lease is the cluster's own
primitive (kube-controller-manager, controller-runtime): one holder, renewed every
`retry` seconds; the others take it once `duration` has passed without a renewal. The
operator runs kopf only while it holds the Lease, and exits when it cannot renew it for
`renew_deadline` seconds, so that two replicas never reconcile at once.

Each write carries the Lease's resourceVersion: of two replicas taking an expired Lease at the
same moment, the server accepts one write and refuses the other with 409 Conflict.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import ApiError, ClusterUnavailable, Conflict
from ..resources.kinds import Resource
from .kube import Kube

__all__ = [
    "LEASES",
    "ElectionTimings",
    "LeaderElector",
    "LeadershipLost",
    "LeaseRecord",
    "default_identity",
]

logger = logging.getLogger(__name__)

LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
_MICROTIME = "%Y-%m-%dT%H:%M:%S.%fZ"


class LeadershipLost(Exception):
    """The Lease could not be renewed in time: another replica may lead now."""


@dataclass(frozen=True)
class ElectionTimings:
    duration: float = 15.0
    renew_deadline: float = 10.0
    retry: float = 2.0


@dataclass(frozen=True)
class LeaseRecord:
    """The Lease's spec as leader election reads it."""

    holder: str
    duration: float
    renewed: float
    """When it was last renewed (epoch seconds); 0 when never."""
    transitions: int
    resource_version: str

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> LeaseRecord:
        spec = body.get("spec") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            duration=float(spec.get("leaseDurationSeconds") or 0),
            renewed=_epoch(spec.get("renewTime")),
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=str((body.get("metadata") or {}).get("resourceVersion", "")),
        )

    def same_term(self, other: LeaseRecord | None) -> bool:
        """Nothing renewed it since `other` was read."""
        return other is not None and (self.holder, self.renewed) == (other.holder, other.renewed)


def default_identity(pod_name: str = "") -> str:
    """The pod's name (stable across container restarts), else host, pid and a random part."""
    return pod_name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class LeaderElector:
    """Takes and keeps the Lease `namespace/name` for `identity`."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        identity: str,
        timings: ElectionTimings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.timings = timings or ElectionTimings()
        self.clock = clock
        self.monotonic = time.monotonic
        self.observed: LeaseRecord | None = None
        self._observed_at = 0.0

    # -- one attempt -------------------------------------------------------------------------

    def try_acquire_or_renew(self) -> bool:
        """One attempt: True while this replica holds the Lease after it."""
        now = self.clock()
        body = self.kube.get(LEASES, self.namespace, self.name)
        if body is None:
            return self._create(now)
        current = LeaseRecord.from_body(body)
        if not current.same_term(self.observed):
            self._observed_at = self.monotonic()
        self.observed = current
        if current.holder != self.identity and not self._expired(current):
            return False
        transitions = current.transitions + (current.holder != self.identity)
        acquired = now if current.holder != self.identity else None
        return self._write(current.resource_version, now, transitions, acquired)

    def _expired(self, lease: LeaseRecord) -> bool:
        """Judged by this replica's own clock since it saw the Lease change, as client-go
        does, so that clocks that disagree between nodes cannot shorten a term."""
        return not lease.holder or self.monotonic() >= self._observed_at + lease.duration

    @property
    def held_elsewhere(self) -> bool:
        lease = self.observed
        return lease is not None and lease.holder != self.identity and not self._expired(lease)

    def release(self) -> None:
        """Give the Lease up on a clean stop, so that another replica leads at once."""
        body = self.kube.get(LEASES, self.namespace, self.name)
        if body is None or LeaseRecord.from_body(body).holder != self.identity:
            return
        patch = {
            "metadata": {"resourceVersion": body["metadata"]["resourceVersion"]},
            "spec": {"holderIdentity": None, "leaseDurationSeconds": 1},
        }
        try:
            self.kube.patch(LEASES, self.namespace, self.name, patch)
        except (ApiError, ClusterUnavailable) as error:
            logger.warning("Could not release the Lease %s: %s", self.name, error)

    def _create(self, now: float) -> bool:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": self._spec(now, transitions=0, acquired=now),
        }
        try:
            self.kube.create(LEASES, body)
        except ApiError as error:  # AlreadyExists: another replica created it first
            logger.debug("Lease %s not created: %s", self.name, error)
            return False
        return True

    def _write(self, version: str, now: float, transitions: int, acquired: float | None) -> bool:
        patch = {
            "metadata": {"resourceVersion": version},
            "spec": self._spec(now, transitions, acquired),
        }
        try:
            return self.kube.patch(LEASES, self.namespace, self.name, patch) is not None
        except Conflict:
            return False  # another replica wrote first

    def _spec(self, now: float, transitions: int, acquired: float | None) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.timings.duration)),
            "renewTime": _microtime(now),
            "leaseTransitions": transitions,
        }
        if acquired is not None:
            spec["acquireTime"] = _microtime(acquired)
        return spec

    # -- the loop ----------------------------------------------------------------------------

    async def run(
        self,
        lead: Callable[[], Coroutine[Any, Any, None]],
        *,
        standing_by: Callable[[], None] = lambda: None,
    ) -> None:
        """Wait for the Lease, then run `lead()` while renewing it. Returns when `lead` does
        (the Lease released); raises LeadershipLost when a renewal deadline passes."""
        await self._acquire(standing_by)
        logger.info("Leading: %s holds the Lease %s/%s", self.identity, self.namespace, self.name)
        leading = asyncio.create_task(lead(), name="conveyor-leading")
        renewing = asyncio.create_task(self._keep(), name="conveyor-lease-renewal")
        try:
            done, _ = await asyncio.wait({leading, renewing}, return_when=asyncio.FIRST_COMPLETED)
            if renewing in done:
                leading.cancel()
                await asyncio.gather(leading, return_exceptions=True)
                renewing.result()  # raises LeadershipLost
            await leading
        finally:
            renewing.cancel()
            leading.cancel()
            await asyncio.gather(renewing, leading, return_exceptions=True)
        await asyncio.to_thread(self.release)

    async def _acquire(self, standing_by: Callable[[], None]) -> None:
        waiting_for = ""
        while not await self._attempt():
            holder = self.observed.holder if self.observed else ""
            if holder != waiting_for:
                logger.info("Standing by: the Lease %s is held by %s", self.name, holder or "?")
                waiting_for = holder
            standing_by()
            await asyncio.sleep(self.timings.retry)

    async def _keep(self) -> None:
        """Renew every `retry` seconds; raise LeadershipLost once `renew_deadline` passes
        without a successful renewal."""
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(self.timings.retry)
            if await self._attempt():
                renewed = time.monotonic()
                continue
            holder = self.observed.holder if self.observed else "?"
            if self.held_elsewhere:
                raise LeadershipLost(f"{holder} took the Lease {self.namespace}/{self.name}")
            if time.monotonic() - renewed > self.timings.renew_deadline:
                raise LeadershipLost(
                    f"{self.identity} could not renew the Lease {self.namespace}/{self.name} "
                    f"for {self.timings.renew_deadline:g}s"
                )

    async def _attempt(self) -> bool:
        try:
            return await asyncio.to_thread(self.try_acquire_or_renew)
        except (ApiError, ClusterUnavailable) as error:
            logger.warning("Leader election: %s", error)
            return False


def _microtime(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime(_MICROTIME)


def _epoch(value: Any) -> float:
    if not value:
        return 0.0
    text = str(value).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return 0.0
