"""`conveyor run` says what became of the request, not just that it was made."""

from __future__ import annotations

from typing import Any

from conveyor.cli.models import run_request_outcome

STAMP = "2026-12-07T10:00:00.000000Z by alice"


def _pipeline(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "iris"},
        "spec": {"runs": {"concurrencyPolicy": "Forbid"}},
        "status": status,
    }


def _run(run_id: str, phase: str, message: str = "", stamp: str = STAMP) -> dict[str, Any]:
    trigger = {"type": "manual", "reason": f"conveyor.dev/run-requested={stamp}"}
    return {"id": run_id, "phase": phase, "message": message, "trigger": trigger}


def test_not_acted_on_yet() -> None:
    assert run_request_outcome(_pipeline(lastRunRequest="an older one"), STAMP) is None


def test_a_started_run_is_named() -> None:
    body = _pipeline(lastRunRequest=STAMP, runs=[_run("iris-2", "Running", "Training on s1")])
    started, message = run_request_outcome(body, STAMP) or (None, "")
    assert started is True
    assert message.startswith("run iris-2 started (Training on s1)")


def test_a_skipped_request_says_why_and_what_to_do() -> None:
    active = _run("iris-1", "Running", stamp="an older one")
    body = _pipeline(lastRunRequest=STAMP, activeRun="iris-1", runs=[active])
    started, message = run_request_outcome(body, STAMP) or (None, "")
    assert started is False
    assert "run NOT started: run iris-1 is still active" in message
    assert "concurrencyPolicy is Forbid" in message and "Replace" in message


def test_a_run_refused_before_its_job_is_a_failure() -> None:
    failed = _run("iris-3", "Failed", "Not started: spec.split.testSize: 0.99 of 150 rows ...")
    body = _pipeline(lastRunRequest=STAMP, runs=[failed])
    started, message = run_request_outcome(body, STAMP) or (None, "")
    assert started is False and "run iris-3 failed: Not started: spec.split.testSize" in message
