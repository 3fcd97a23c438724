"""Faults survived: the sandbox misbehaves on purpose (sandbox/faults.py, sandbox/s3faults.py,
NodeAgent.kill_pod) and each test shows that Conveyor still ends in the right state.

The fixtures are the integration tests' (one sandbox per module, a namespace per test); the
sandbox here also routes the operator's S3 traffic through the fault proxy. Each test records
its figure with `figure(...)`: printed at once (with -s) and again in the run's summary, under
"faults survived", so `make faults` shows every figure at its end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from conveyor.sandbox.stack import Sandbox
from tests.integration.conftest import (  # noqa: F401 (fixtures, used by name)
    client,
    namespace,
    resources,
    running_sandbox,
)

_FIGURES = pytest.StashKey[list[tuple[str, str]]]()

Figure = Callable[[str], None]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    yield from running_sandbox(tmp_path_factory, monitoring=False, s3_fault_proxy=True)


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Iterator[Figure]:
    """Record this test's figure; the test's duration is added to it."""
    started = time.monotonic()
    said: list[str] = []
    yield said.append
    took = time.monotonic() - started
    figures = request.config.stash.setdefault(_FIGURES, [])
    for text in said:
        line = f"faults: {text} (test took {took:.0f} s)"
        print(line)
        figures.append((request.node.nodeid, line))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    figures = terminalreporter.config.stash.get(_FIGURES, [])
    if not figures:
        return
    terminalreporter.section("faults survived")
    for nodeid, line in figures:
        terminalreporter.write_line(f"{nodeid}\n    {line}")
