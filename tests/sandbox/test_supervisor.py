"""Supervision against real child processes: a crash is reaped, reported and restarted with
CrashLoopBackOff; a deliberate stop is not a crash."""

from __future__ import annotations

import itertools
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conveyor.sandbox.processes import ManagedProcess, describe_exit
from conveyor.sandbox.supervisor import BackOff, Supervised

TIMEOUT = 20.0


def wait_until(probe: Callable[[], object], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def exists(pid: int) -> bool:
    """Whether the kernel still has `pid` — a zombie counts: it exists until it is reaped."""
    return Path(f"/proc/{pid}").exists()


def child(tmp_path: Path, body: str) -> ManagedProcess:
    """A python child that appends its pid to starts.txt, says hello, then runs `body`."""
    starts = tmp_path / "starts.txt"
    code = (
        "import os, sys, time\n"
        f"open({str(starts)!r}, 'a').write(f'{{os.getpid()}} {{time.monotonic()}}\\n')\n"
        "print('hello from', 'the child', flush=True)\n"
        f"{body}\n"
    )
    return ManagedProcess(
        [sys.executable, "-c", code], env=None, log_file=tmp_path / "child.log", name="worker"
    )


def starts(tmp_path: Path) -> list[tuple[int, float]]:
    path = tmp_path / "starts.txt"
    if not path.exists():
        return []
    pairs = (line.split() for line in path.read_text().splitlines() if line.strip())
    return [(int(pid), float(at)) for pid, at in pairs]


@pytest.fixture
def states() -> list[str]:
    return []


@pytest.fixture
def supervised_factory(states: list[str]) -> Iterator[Callable[..., Supervised]]:
    made: list[Supervised] = []

    def make(process: ManagedProcess, backoff: BackOff) -> Supervised:
        supervised: Supervised

        def record() -> None:
            states.append(supervised.state)

        supervised = Supervised(process, backoff=backoff, on_change=record)
        made.append(supervised)
        return supervised

    yield make
    for supervised in made:
        supervised.stop()


def test_back_off_follows_the_kubelet() -> None:
    kubelet = BackOff()
    assert [kubelet.delay(n) for n in range(1, 9)] == [0, 10, 20, 40, 80, 160, 300, 300]
    assert BackOff(base=0.5, cap=2).delay(10_000) == 2


@pytest.mark.parametrize(
    ("settings", "field"),
    [({"base": 0}, "base"), ({"base": 5, "cap": 1}, "cap"), ({"reset_after": -1}, "reset_after")],
)
def test_a_nonsensical_back_off_is_refused_naming_the_setting(
    settings: dict[str, float], field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        BackOff(**settings)


def test_exits_are_described_in_words() -> None:
    assert describe_exit(3) == "exited with code 3"
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL (signal 9)"
    assert describe_exit(-200) == "killed by signal 200"


def test_a_killed_process_is_reaped_reported_and_restarted(
    tmp_path: Path,
    supervised_factory: Callable[..., Supervised],
    states: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="conveyor.sandbox.supervisor")
    process = child(tmp_path, "time.sleep(120)")
    supervised = supervised_factory(process, BackOff(base=0.2, cap=1))
    supervised.start()
    wait_until(lambda: len(starts(tmp_path)) == 1, "the child to start")
    first = process.pid
    assert first is not None

    os.kill(first, signal.SIGKILL)
    wait_until(lambda: not exists(first), "the killed child to be reaped (no zombie)")
    wait_until(lambda: supervised.state == "Running" and process.pid != first, "the restart")
    wait_until(lambda: len(starts(tmp_path)) == 2, "the new child to start")

    status = supervised.status()
    assert status.restarts == 1 and status.pid == process.pid and process.running
    assert status.last_exit == "killed by SIGKILL (signal 9)"
    assert [pid for pid, _ in starts(tmp_path)] == [first, process.pid]
    report = next(r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert f"Worker (pid {first}) killed by SIGKILL (signal 9)" in report
    assert "restarting it in 0.0s" in report
    assert "hello from the child" in report  # the tail of its log
    assert states[-3:] == ["CrashLoopBackOff", "Starting", "Running"]


def test_a_crash_loop_backs_off_exponentially_up_to_the_cap(
    tmp_path: Path, supervised_factory: Callable[..., Supervised], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="conveyor.sandbox.supervisor")
    process = child(tmp_path, "sys.exit(3)")
    supervised = supervised_factory(process, BackOff(base=0.2, cap=0.4, reset_after=60))
    supervised.start()
    wait_until(lambda: len(starts(tmp_path)) >= 5, "four restarts")

    reports = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR][:4]
    delays = [message.split("restarting it in ")[1].split("s ")[0] for message in reports]
    assert delays == ["0.0", "0.2", "0.4", "0.4"]
    assert all("exited with code 3" in message for message in reports)
    times = [at for _, at in starts(tmp_path)]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert gaps[1] >= 0.2 and gaps[2] >= 0.4 and gaps[3] >= 0.4
    assert supervised.status().last_exit == "exited with code 3"


def test_a_process_that_ran_long_enough_starts_its_back_off_afresh(
    tmp_path: Path, supervised_factory: Callable[..., Supervised], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="conveyor.sandbox.supervisor")
    process = child(tmp_path, "time.sleep(0.6); sys.exit(1)")
    supervised = supervised_factory(process, BackOff(base=5, cap=10, reset_after=0.5))
    supervised.start()
    wait_until(lambda: len(starts(tmp_path)) >= 3, "two restarts")

    reports = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR][:2]
    assert all("restarting it in 0.0s (crash 1 in a row)" in message for message in reports)


def test_a_deliberate_stop_is_no_crash(
    tmp_path: Path, supervised_factory: Callable[..., Supervised], caplog: pytest.LogCaptureFixture
) -> None:
    process = child(tmp_path, "time.sleep(120)")
    supervised = supervised_factory(process, BackOff(base=0.1, cap=0.1))
    supervised.start()
    wait_until(lambda: len(starts(tmp_path)) == 1, "the child to start")
    pid = process.pid
    assert pid is not None
    supervised.stop()

    assert not exists(pid) and supervised.state == "Stopped"
    assert supervised.status().restarts == 0 and supervised.status().pid is None
    # Nothing is left that could restart it: no watcher, and the process refuses to respawn.
    assert not any(t.name == "sandbox-supervise-worker" for t in threading.enumerate())
    assert process.respawn() is False
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(starts(tmp_path)) == 1


def test_a_stop_during_the_back_off_wins(
    tmp_path: Path, supervised_factory: Callable[..., Supervised]
) -> None:
    process = child(tmp_path, "sys.exit(2)")
    supervised = supervised_factory(process, BackOff(base=60, cap=60))
    supervised.start()
    wait_until(
        lambda: supervised.state == "CrashLoopBackOff" and supervised.restarts == 1,
        "the second crash, which waits 60 s",
    )
    began = time.monotonic()
    supervised.stop()
    assert time.monotonic() - began < 5
    assert supervised.state == "Stopped" and not process.running
    assert len(starts(tmp_path)) == 2


def test_a_stopped_process_can_be_started_and_is_supervised_again(
    tmp_path: Path, supervised_factory: Callable[..., Supervised]
) -> None:
    process = child(tmp_path, "time.sleep(120)")
    supervised = supervised_factory(process, BackOff(base=0.1, cap=0.1))
    supervised.start()
    wait_until(lambda: len(starts(tmp_path)) == 1, "the first start")
    supervised.stop()
    supervised.start()
    wait_until(lambda: len(starts(tmp_path)) == 2, "the second start")
    second = process.pid
    assert second is not None
    os.kill(second, signal.SIGTERM)
    wait_until(lambda: supervised.restarts == 1 and process.pid != second, "the restart")
    assert supervised.status().last_exit == "killed by SIGTERM (signal 15)"


def test_a_process_that_is_not_ready_at_first_start_is_stopped(tmp_path: Path) -> None:
    process = child(tmp_path, "time.sleep(120)")

    def never_ready(_: ManagedProcess) -> None:
        raise TimeoutError("it never answered")

    supervised = Supervised(process, ready=never_ready, backoff=BackOff(base=0.1))
    with pytest.raises(TimeoutError):
        supervised.start()
    assert not process.running and supervised.state == "Stopped"


def test_the_log_tail_of_a_crash_is_the_last_run_only(tmp_path: Path) -> None:
    log = tmp_path / "many.log"
    log.write_text("--- 2026-01-01T00:00:00+00:00 starting: old\nold output\n")
    many = ManagedProcess(
        [sys.executable, "-c", "print('--- not a mark'); print('new output')"],
        env=None,
        log_file=log,
    )
    many.start()
    assert many.wait() == 0
    assert many.log_tail(10, last_run=True) == "--- not a mark\nnew output"
    assert "old output" in many.log_tail(10)


def test_a_program_that_cannot_be_started_again_backs_off_until_it_can(
    tmp_path: Path, supervised_factory: Callable[..., Supervised], caplog: pytest.LogCaptureFixture
) -> None:
    program = tmp_path / "program"
    program.write_text(f"#!{sys.executable}\nimport sys; sys.exit(4)\n")
    program.chmod(0o755)
    process = ManagedProcess([str(program)], env=None, log_file=tmp_path / "p.log", name="worker")
    supervised = supervised_factory(process, BackOff(base=0.1, cap=0.2))
    supervised.start()
    program.unlink()  # gone after its first start, as after an uninstall
    wait_until(
        lambda: supervised.status().last_exit == "could not be started",
        "the failed restart to be reported",
    )
    assert supervised.restarts == 0 and not process.running
    assert any("Worker could not be started" in r.getMessage() for r in caplog.records)

    program.write_text(f"#!{sys.executable}\nimport time; time.sleep(120)\n")
    program.chmod(0o755)
    wait_until(lambda: supervised.state == "Running" and process.running, "the program to be back")
    assert supervised.restarts == 1
