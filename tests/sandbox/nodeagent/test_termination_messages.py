"""Termination messages as the kubelet makes them: the file a container writes, else (policy
FallbackToLogsOnError, failed run) the tail of its log — with real processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.sandbox.nodeagent.podstatus import ContainerView, pod_status

from .conftest import make, run_until

WRITE = "import os; open(os.environ['TERMINATION_MESSAGE_PATH'], 'w').write({text!r})"
FALLBACK = {"terminationMessagePolicy": "FallbackToLogsOnError"}


def terminated_after(tmp_path: Path, script: str, **container: object) -> dict[str, object]:
    runtime, _ = make(tmp_path, script, **container)
    run_until(runtime, lambda r: r.final)
    return runtime.state["terminated"]


def test_each_container_gets_an_empty_file_in_the_pod_directory(tmp_path: Path) -> None:
    script = (
        "import os; path = os.environ['TERMINATION_MESSAGE_PATH'];\n"
        "print(path, os.path.getsize(path), os.environ['WHERE'])"
    )
    env = [
        {"name": "WHERE", "value": "$(TERMINATION_MESSAGE_PATH)"},
        {"name": "TERMINATION_MESSAGE_PATH", "value": "/dev/termination-log"},  # not honoured
    ]
    terminated = terminated_after(tmp_path, script, env=env)

    path = tmp_path / "work" / "termination" / "main"
    assert (tmp_path / "logs" / "main.log").read_text() == f"{path} 0 {path}\n"
    assert terminated["reason"] == "Completed" and "message" not in terminated


@pytest.mark.parametrize("policy", [None, "File", "FallbackToLogsOnError"])
def test_a_written_message_is_reported_exactly(tmp_path: Path, policy: str | None) -> None:
    text = '{"ok":false,"reason":"InvalidConfiguration","message":"no column petal_width"}'
    script = f"import sys; print('loading data'); {WRITE.format(text=text)}; sys.exit(3)"
    extra = {"terminationMessagePolicy": policy} if policy else {}
    terminated = terminated_after(tmp_path, script, **extra)

    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
    assert terminated["message"] == text


def test_a_successful_container_reports_its_message_too(tmp_path: Path) -> None:
    terminated = terminated_after(tmp_path, WRITE.format(text="Sleep expired\n"))

    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    assert terminated["message"] == "Sleep expired\n"


def test_only_the_last_4096_bytes_of_the_file_are_read(tmp_path: Path) -> None:
    script = "import sys; " + WRITE.format(text="a" * 1000 + "b" * 4096) + "; sys.exit(1)"
    assert terminated_after(tmp_path, script)["message"] == "b" * 4096


def test_an_empty_file_falls_back_to_the_log_on_error(tmp_path: Path) -> None:
    script = "import sys; print('loading data'); print('KeyError: petal_width'); sys.exit(2)"
    terminated = terminated_after(tmp_path, script, **FALLBACK)

    assert (terminated["exitCode"], terminated["reason"]) == (2, "Error")
    assert terminated["message"] == "loading data\nKeyError: petal_width\n"


def test_the_log_fallback_keeps_the_last_80_lines(tmp_path: Path) -> None:
    script = "import sys\nfor i in range(200): print('line', i)\nsys.exit(1)"
    terminated = terminated_after(tmp_path, script, **FALLBACK)

    assert terminated["message"] == "".join(f"line {i}\n" for i in range(120, 200))


def test_the_log_fallback_keeps_the_last_2048_bytes(tmp_path: Path) -> None:
    script = "import sys\nfor i in range(50): print(f'{i:03d}', 'y' * 96)\nsys.exit(1)"
    terminated = terminated_after(tmp_path, script, **FALLBACK)

    log = (tmp_path / "logs" / "main.log").read_bytes()
    assert len(log) == 50 * 101  # 50 lines: fewer than 80, but more than 2048 bytes
    assert terminated["message"] == log[-2048:].decode()


@pytest.mark.parametrize("policy", [None, "File"])
def test_without_the_fallback_an_empty_file_gives_no_message(
    tmp_path: Path, policy: str | None
) -> None:
    script = "import sys; print('KeyError: petal_width'); sys.exit(3)"
    extra = {"terminationMessagePolicy": policy} if policy else {}
    terminated = terminated_after(tmp_path, script, **extra)

    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
    assert "message" not in terminated


def test_a_success_does_not_fall_back_to_the_log(tmp_path: Path) -> None:
    terminated = terminated_after(tmp_path, "print('trained')", **FALLBACK)

    assert terminated["reason"] == "Completed" and "message" not in terminated


def test_an_oom_kill_is_detected_whatever_the_policy(tmp_path: Path) -> None:
    script = "blob = bytearray(400 * 1024 * 1024)"
    terminated = terminated_after(tmp_path, script, resources={"limits": {"memory": "150Mi"}})

    assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137)
    assert "message" not in terminated  # policy File: the log is not quoted


def test_a_restarted_container_gets_a_fresh_file(tmp_path: Path) -> None:
    script = (
        "import os, sys\n"
        "runs = int(open(os.environ['RUNS']).read()) if os.path.exists(os.environ['RUNS']) else 0\n"
        "open(os.environ['RUNS'], 'w').write(str(runs + 1))\n"
        "path = os.environ['TERMINATION_MESSAGE_PATH']\n"
        "fresh = os.path.getsize(path) == 0\n"
        "if runs == 0:\n"
        "    print('run 1 output'); open(path, 'w').write('first run failed'); sys.exit(1)\n"
        "if runs == 1:\n"
        "    print('fresh' if fresh else 'stale'); sys.exit(2)\n"
        "sys.exit(0 if fresh else 5)\n"
    )
    runtime, _ = make(
        tmp_path,
        script,
        policy="OnFailure",
        env=[{"name": "RUNS", "value": str(tmp_path / "runs")}],
        **FALLBACK,
    )
    run_until(runtime, lambda r: r.restart_count == 1)
    assert runtime.last_state["terminated"]["message"] == "first run failed"

    run_until(runtime, lambda r: r.final)
    assert runtime.restart_count == 2
    assert runtime.state["terminated"]["exitCode"] == 0
    assert "message" not in runtime.state["terminated"]
    second = runtime.last_state["terminated"]
    # The file was new and empty, so the message falls back to this run's log, and only its.
    assert (second["exitCode"], second["message"]) == (2, "fresh\n")


def test_a_pods_containers_share_12_kib_of_messages() -> None:
    def view(name: str) -> ContainerView:
        terminated = {"exitCode": 1, "reason": "Error", "message": name[-1] * 4096}
        return ContainerView(
            name=name,
            image="conveyor",
            state={"terminated": terminated},
            last_state={"terminated": terminated},
            ever_started=True,
            final=True,
        )

    alone = pod_status({}, [view("c0")], "", 0.0)["containerStatuses"][0]
    assert alone["state"]["terminated"]["message"] == "0" * 4096

    four = pod_status({}, [view(f"c{i}") for i in range(4)], "", 0.0)["containerStatuses"]
    for i, status in enumerate(four):
        assert status["state"]["terminated"]["message"] == str(i) * 3072
        assert status["lastState"]["terminated"]["message"] == str(i) * 3072
        assert status["state"]["terminated"]["exitCode"] == 1
