"""Two operator replicas, as a rolling upgrade or the manifests' Deployment runs them: only the
holder of the Lease reconciles; SIGKILL it and the other takes over within the lease time, with
nothing lost or repeated. Twenty runs: four pipelines side by side, five runs each."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from kubernetes.client import ApiClient

from conveyor.sandbox.stack import Sandbox
from tests.faults.conftest import Figure
from tests.faults.runs import (
    count_runs,
    leader_gauge,
    lease_holder,
    many_runs_pipelines,
    request_runs,
)
from tests.integration.conftest import Resources, running_sandbox, wait_for

LEASE = {"duration": 6.0, "renew_deadline": 4.0, "retry": 1.0}
PIPELINES, ROUNDS = 4, 5
RUNS = PIPELINES * ROUNDS
KILL_AFTER = 2
"""The round whose runs are under way when the leader dies."""


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    yield from running_sandbox(
        tmp_path_factory,
        monitoring=False,
        operator_replicas=2,
        extra_operator_env={
            "CONVEYOR_LEASE_DURATION_SECONDS": str(LEASE["duration"]),
            "CONVEYOR_LEASE_RENEW_DEADLINE_SECONDS": str(LEASE["renew_deadline"]),
            "CONVEYOR_LEASE_RETRY_SECONDS": str(LEASE["retry"]),
        },
    )


def _leader(sandbox: Sandbox, resources: Resources, client: ApiClient) -> int:
    """The replica that holds the Lease and says so on /metrics; the other says it stands by."""
    replicas = sandbox.operators

    def agreed() -> int | None:
        leader = replicas.replica_of(lease_holder(client))
        gauges = [leader_gauge(replicas.url(r)) for r in range(replicas.count)]
        if leader is None or gauges[leader] != 1:
            return None
        return leader if all(g == 0 for r, g in enumerate(gauges) if r != leader) else None

    return (
        wait_for(
            lambda: (leader := agreed()) is not None and leader + 1,
            timeout=30,
            what="one replica leading and the other standing by",
        )
        - 1
    )


def test_one_replica_reconciles_and_the_other_takes_over_when_it_dies(
    sandbox: Sandbox, resources: Resources, client: ApiClient, figure: Figure
) -> None:
    first = _leader(sandbox, resources, client)
    standby = 1 - first
    standby_log = sandbox.operators.log_file(standby)
    assert "Standing by" in standby_log.read_text()
    names = many_runs_pipelines(resources, PIPELINES)
    takeover: list[float] = []

    def kill_the_leader(k: int) -> None:
        if k != KILL_AFTER:
            return
        sandbox.operators.kill(first, restart=False)
        killed = time.monotonic()
        wait_for(
            lambda: sandbox.operators.replica_of(lease_holder(client)) == standby,
            timeout=LEASE["duration"] * 3,
            what="the standby to take the Lease",
        )
        takeover.append(time.monotonic() - killed)

    request_runs(resources, names, ROUNDS, between=kill_the_leader)
    sandbox.operators.start_again()  # the killed replica comes back, as a standby
    assert _leader(sandbox, resources, client) == standby
    # Before the kill only the leader reconciled: the standby's log has no reconcile in it.
    before = standby_log.read_text().split("Leading:")[0]
    assert "Run iris-" not in before and "Handler " not in before, before[-2000:]
    counted = count_runs(resources, names, RUNS)
    assert counted.unaccounted == [], counted
    assert (counted.runs, counted.versions, counted.lost) == (RUNS, RUNS, 0), counted
    assert (counted.duplicate_runs, counted.duplicate_versions) == (0, 0), counted
    (took,) = takeover
    assert took <= LEASE["duration"] + LEASE["retry"], f"takeover took {took:.1f} s"
    figure(
        f"two replicas; leader SIGKILLed with round {KILL_AFTER} of {PIPELINES} pipelines' runs "
        f"under way: the standby took the Lease "
        f"{took:.1f} s later (lease {LEASE['duration']:g} s, retry {LEASE['retry']:g} s); "
        f"{counted.describe()}"
    )
