"""What a Job says about its program: running, done, or failed — and the reason a person sees."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from conveyor.reconcile.jobs import failure_from_output, view_job

FAILED_AT = "2026-11-27T12:00:05Z"


def _job(condition: str | None = None, reason: str = "", message: str = "") -> dict[str, Any]:
    conditions = []
    if condition is not None:
        conditions.append(
            {
                "type": condition,
                "status": "True",
                "reason": reason,
                "message": message,
                "lastTransitionTime": FAILED_AT,
            }
        )
    return {
        "metadata": {"name": "iris-mat-0123", "labels": {"conveyor.dev/phase": "all"}},
        "spec": {"activeDeadlineSeconds": 600},
        "status": {"conditions": conditions},
    }


def _pod(name: str, created: str, terminated: dict[str, Any] | None) -> dict[str, Any]:
    state = {"terminated": terminated} if terminated is not None else {"running": {}}
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "status": {"containerStatuses": [{"name": "main", "state": state}]},
    }


def test_a_running_job_is_active() -> None:
    view = view_job(_job())
    assert (view.state, view.finished_at, view.failure) == ("Active", None, None)
    assert view.labels == {"conveyor.dev/phase": "all"}


def test_a_complete_job_succeeded_at_its_transition() -> None:
    view = view_job(_job("Complete"))
    assert view.state == "Succeeded"
    assert view.finished_at == datetime(2026, 11, 27, 12, 0, 5, tzinfo=UTC)


def test_the_programs_own_verdict_comes_from_the_newest_failed_pod() -> None:
    older = _pod(
        "p-1",
        "2026-11-27T12:00:00Z",
        {
            "exitCode": 7,
            "message": '{"ok": false, "reason": "StorageUnavailable", '
            '"message": "S3 is down", "retryable": true}',
        },
    )
    newer = _pod(
        "p-2",
        "2026-11-27T12:00:03Z",
        {
            "exitCode": 2,
            "message": '{"ok": false, "reason": "TooManyRejects", '
            '"message": "31 of 150 rows", "retryable": false}',
        },
    )
    failure = view_job(_job("Failed", "BackoffLimitExceeded"), [older, newer]).failure
    assert failure is not None
    assert (failure.reason, failure.message, failure.retryable) == (
        "TooManyRejects",
        "31 of 150 rows",
        False,
    )


def test_a_deadline_overrides_what_the_killed_pods_said() -> None:
    killed = _pod("p-1", "2026-11-27T12:00:00Z", {"exitCode": 143, "message": "Terminated"})
    failure = view_job(_job("Failed", "DeadlineExceeded"), [killed]).failure
    assert failure is not None and failure.reason == "DeadlineExceeded"
    assert failure.message == "the Job ran longer than activeDeadlineSeconds (600 s)"
    assert failure.retryable


def test_out_of_memory_is_the_kubelets_reason_and_may_pass_on_a_retry() -> None:
    oom = _pod("p-1", "2026-11-27T12:00:00Z", {"exitCode": 137, "reason": "OOMKilled"})
    failure = view_job(_job("Failed", "BackoffLimitExceeded"), [oom]).failure
    assert failure is not None
    assert (failure.reason, failure.retryable) == ("OOMKilled", True)
    assert "memory limit" in failure.message


def test_without_a_verdict_the_last_line_of_output_is_the_message() -> None:
    crashed = _pod(
        "p-1",
        "2026-11-27T12:00:00Z",
        {"exitCode": 1, "message": "Traceback (most recent call last):\nKeyError: 'x'\n"},
    )
    failure = view_job(_job("Failed", "BackoffLimitExceeded"), [crashed]).failure
    assert failure is not None
    assert (failure.reason, failure.message, failure.retryable) == (
        "JobFailed",
        "KeyError: 'x'",
        True,
    )


def test_without_pods_the_jobs_condition_says_why() -> None:
    failure = view_job(_job("Failed", "BackoffLimitExceeded", "Job has reached the limit")).failure
    assert failure is not None
    assert (failure.reason, failure.message) == (
        "BackoffLimitExceeded",
        "Job has reached the limit",
    )


def test_a_successful_pod_is_not_mistaken_for_the_failure() -> None:
    done = _pod("p-1", "2026-11-27T12:00:00Z", {"exitCode": 0, "reason": "Completed"})
    failure = view_job(_job("Failed", "", ""), [done]).failure
    assert failure is not None and failure.reason == "JobFailed"


def test_a_failure_report_is_found_after_other_output() -> None:
    text = 'reading\n{"ok": true}\n{"ok": false, "reason": "SchemaMismatch", "message": "m"}\n'
    failure = failure_from_output(text)
    assert (failure.reason, failure.message) == ("SchemaMismatch", "m")
    assert failure.retryable, "a report without a verdict may pass on a retry"
    assert failure_from_output("").message == "no output"


POLICY_MESSAGE = (
    "Container main for pod team-a/iris-mat-0123-0-x7k2p failed with exit code 2 "
    "matching FailJob rule at index 0"
)


def test_a_job_its_failure_policy_stopped_reports_the_programs_own_reason() -> None:
    culprit = _pod(
        "iris-mat-0123-0-x7k2p",
        "2026-11-27T12:00:00Z",
        {
            "exitCode": 2,
            "message": '{"ok": false, "reason": "TooManyRejects", '
            '"message": "31 of 150 rows were rejected", "retryable": false}',
        },
    )
    # A sibling the Job controller stopped with it, created a moment later.
    sibling = _pod("iris-mat-0123-1-b9q4t", "2026-11-27T12:00:01Z", {"exitCode": 143})
    job = _job("Failed", "PodFailurePolicy", POLICY_MESSAGE)
    failure = view_job(job, [culprit, sibling]).failure
    assert failure is not None
    assert (failure.reason, failure.message, failure.retryable) == (
        "TooManyRejects",
        "31 of 150 rows were rejected",
        False,
    )


def test_what_the_failure_policy_stopped_is_never_retried_even_without_a_report() -> None:
    silent = _pod("iris-mat-0123-0-x7k2p", "2026-11-27T12:00:00Z", {"exitCode": 2})
    failure = view_job(_job("Failed", "PodFailurePolicy", POLICY_MESSAGE), [silent]).failure
    assert failure is not None and not failure.retryable
    gone = view_job(_job("Failed", "PodFailurePolicy", POLICY_MESSAGE)).failure
    assert gone is not None
    assert (gone.reason, gone.message, gone.retryable) == (
        "PodFailurePolicy",
        POLICY_MESSAGE,
        False,
    )


def test_an_active_job_retrying_a_failed_pod_says_why() -> None:
    """While S3 is down the Job retries its pod: the owner's status can say so."""
    job = _job()
    job["status"]["failed"] = 1
    failed = _pod(
        "p-1",
        "2026-11-27T12:00:00Z",
        {
            "exitCode": 7,
            "message": '{"ok": false, "reason": "StorageUnavailable", '
            '"message": "S3 is down", "retryable": true}',
        },
    )
    view = view_job(job, [failed, _pod("p-2", "2026-11-27T12:00:10Z", None)])
    assert view.state == "Active" and view.failure is None
    assert view.retry_note == "; pod 2 after StorageUnavailable: S3 is down"
    assert view_job(_job(), [failed]).retry_note == ""  # no failed pod counted: no note
