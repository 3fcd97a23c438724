"""Leader election against the sandbox's API server: one holder, takeover only after the lease
time (by each replica's own clock), at once after a release, and one winner of a race."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.clients.kube import Kube, load_api_client
from conveyor.clients.leaderelection import (
    LEASES,
    ElectionTimings,
    LeaderElector,
    LeadershipLost,
)
from conveyor.sandbox.apiserver import ApiServerThread, write_kubeconfig

TIMINGS = ElectionTimings(duration=15, renew_deadline=10, retry=2)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[Kube]:
    with ApiServerThread() as server:
        kubeconfig = tmp_path / "kubeconfig"
        write_kubeconfig(kubeconfig, server.url)
        client = load_api_client(str(kubeconfig))
        yield Kube(client)
        client.close()


def _elector(kube: Kube, identity: str, clock: Clock) -> LeaderElector:
    elector = LeaderElector(kube, "default", "conveyor-operator", identity, TIMINGS, clock=clock)
    elector.monotonic = clock
    return elector


def test_one_holder_and_a_takeover_only_after_the_lease_time(kube: Kube) -> None:
    clock = Clock()
    a, b = _elector(kube, "a", clock), _elector(kube, "b", clock)
    assert a.try_acquire_or_renew() and not b.try_acquire_or_renew()
    clock.now += 10
    assert a.try_acquire_or_renew()  # renewed: b's wait starts again
    clock.now += 14
    assert not b.try_acquire_or_renew()
    clock.now += 16  # a stopped renewing 16 s ago (of b's own observation)
    assert b.try_acquire_or_renew() and not a.try_acquire_or_renew()
    lease = kube.get(LEASES, "default", "conveyor-operator")
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == "b" and lease["spec"]["leaseTransitions"] == 1


def test_a_released_lease_is_taken_at_once(kube: Kube) -> None:
    clock = Clock()
    a, b = _elector(kube, "a", clock), _elector(kube, "b", clock)
    assert a.try_acquire_or_renew() and not b.try_acquire_or_renew()
    a.release()
    assert b.try_acquire_or_renew()


def test_of_two_replicas_writing_at_once_one_wins(kube: Kube) -> None:
    """Both read the expired Lease; the server takes the first write and refuses the stale one."""
    clock = Clock()
    a, b, c = (_elector(kube, name, clock) for name in "abc")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew() and not c.try_acquire_or_renew()
    clock.now += 20
    stale = kube.get(LEASES, "default", "conveyor-operator")
    assert stale is not None
    assert b.try_acquire_or_renew()
    version = stale["metadata"]["resourceVersion"]
    assert not c._write(version, clock(), 2, clock())  # 409: b wrote first
    lease = kube.get(LEASES, "default", "conveyor-operator")
    assert lease is not None and lease["spec"]["holderIdentity"] == "b"


def test_the_leader_stops_leading_when_another_holds_the_lease(kube: Kube) -> None:
    fast = ElectionTimings(duration=3, renew_deadline=2, retry=0.1)
    a = LeaderElector(kube, "default", "conveyor-operator", "a", fast)
    led = asyncio.Event()

    async def lead() -> None:
        led.set()
        await asyncio.sleep(60)

    async def scenario() -> None:
        task = asyncio.create_task(a.run(lead))
        await asyncio.wait_for(led.wait(), 10)
        lease = kube.get(LEASES, "default", "conveyor-operator")
        assert lease is not None
        patch = {"spec": {"holderIdentity": "intruder", "renewTime": lease["spec"]["renewTime"]}}
        kube.patch(LEASES, "default", "conveyor-operator", patch)
        with pytest.raises(LeadershipLost, match="intruder took the Lease"):
            await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
