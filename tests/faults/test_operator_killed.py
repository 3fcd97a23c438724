"""The operator SIGKILLed at random moments while twenty training runs go on, and restarted as
a crashed container is: no run is lost or repeated, each ends with one ModelVersion or a
recorded failure. Twenty runs: four pipelines side by side, five runs each."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import pytest

from conveyor.sandbox.stack import Sandbox
from tests.faults.conftest import Figure
from tests.faults.runs import count_runs, many_runs_pipelines, request_runs
from tests.integration.conftest import Resources, running_sandbox

PIPELINES, ROUNDS = 4, 5
RUNS = PIPELINES * ROUNDS
SEED = 13
BETWEEN_KILLS = (4.0, 10.0)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    yield from running_sandbox(tmp_path_factory, monitoring=False)


class Killer(threading.Thread):
    """SIGKILLs the operator after seeded random pauses until stopped."""

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__(daemon=True, name="operator-killer")
        self.sandbox = sandbox
        self.random = random.Random(SEED)
        self.stopping = threading.Event()
        self.kills = 0

    def run(self) -> None:
        while not self.stopping.wait(self.random.uniform(*BETWEEN_KILLS)):
            supervised = self.sandbox.operators.replicas[0]
            if supervised.process.running and supervised.state == "Running":
                self.sandbox.operators.kill(0, restart=True)
                self.kills += 1


def test_runs_survive_an_operator_killed_at_random(
    sandbox: Sandbox, resources: Resources, figure: Figure
) -> None:
    names = many_runs_pipelines(resources, PIPELINES)
    killer = Killer(sandbox)
    started = time.monotonic()
    killer.start()
    try:
        request_runs(resources, names, ROUNDS)
    finally:
        killer.stopping.set()
        killer.join()
    took = time.monotonic() - started
    counted = count_runs(resources, names, RUNS)
    assert counted.unaccounted == [], counted
    assert counted.runs == RUNS and counted.lost == 0, counted
    assert (counted.duplicate_runs, counted.duplicate_versions) == (0, 0), counted
    assert counted.versions == counted.succeeded, counted
    assert killer.kills >= 5, f"only {killer.kills} kills: the test proved little"
    restarts = sandbox.operators.replicas[0].restarts
    figure(
        f"operator SIGKILLed {killer.kills} times at random (seed {SEED}, every "
        f"{BETWEEN_KILLS[0]:g}-{BETWEEN_KILLS[1]:g} s) and restarted {restarts} times over "
        f"{took:.0f} s: {counted.describe()}"
    )
