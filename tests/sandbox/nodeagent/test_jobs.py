"""The Job controller's decisions."""

from conveyor.sandbox.nodeagent.jobs import (
    COMPLETION_INDEX,
    JobHistory,
    build_job_pod,
    format_indexes,
    plan_job,
    retry_delay,
)

NOW = 1_800_000_000.0


def job(**spec):
    template = {"spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "c"}]}}
    return {
        "metadata": {"name": "train", "namespace": "ml", "uid": "job-uid"},
        "spec": {"template": template, **spec},
    }


def pod(uid, phase="Running", index=None, ready=False):
    annotations = {COMPLETION_INDEX: str(index)} if index is not None else {}
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    return {
        "metadata": {"name": f"train-{uid}", "uid": uid, "annotations": annotations},
        "spec": {"restartPolicy": "Never"},
        "status": {"phase": phase, "conditions": conditions},
    }


def plan(spec_job, pods, history=None, now=NOW):
    history = history or JobHistory()
    history.record(pods, now, spec_job["spec"].get("podFailurePolicy"))
    return plan_job(spec_job, pods, history, now)


def condition_types(status):
    return [c["type"] for c in status.get("conditions", [])]


def test_a_new_job_creates_one_pod_and_starts():
    step = plan(job(), [])
    assert step.create == [None]
    assert step.status["active"] == 1
    assert step.status["startTime"]


def test_a_job_completes_when_its_pod_succeeds():
    step = plan(job(), [pod("a", "Succeeded")])
    assert step.create == []
    assert condition_types(step.status) == ["SuccessCriteriaMet", "Complete"]
    assert step.status["succeeded"] == 1 and step.status["active"] == 0
    assert step.status["completionTime"]
    assert ("Normal", "Completed", "Job completed") in step.events


def test_a_failed_pod_is_retried_after_a_short_back_off():
    history = JobHistory()
    first = plan(job(backoffLimit=2), [pod("a", "Failed")], history, NOW)
    assert first.create == [] and first.requeue_after == retry_delay(1)
    later = plan(job(backoffLimit=2), [pod("a", "Failed")], history, NOW + retry_delay(1))
    assert later.create == [None]
    assert later.status["failed"] == 1


def test_the_backoff_limit_fails_the_job():
    step = plan(job(backoffLimit=1), [pod("a", "Failed"), pod("b", "Failed")])
    failed = next(c for c in step.status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"
    assert failed["message"] == "Job has reached the specified backoff limit"
    assert step.status["failed"] == 2


def test_the_active_deadline_kills_running_pods_and_fails_the_job():
    running = pod("a")
    spec_job = job(activeDeadlineSeconds=5)
    spec_job["status"] = {"startTime": "2027-01-15T08:00:00Z"}
    step = plan(spec_job, [running], now=1_800_000_000.0 + 1_000_000)
    assert [p["metadata"]["uid"] for p in step.delete] == ["a"]
    reasons = {c["type"]: c["reason"] for c in step.status["conditions"]}
    assert reasons["Failed"] == "DeadlineExceeded"


def test_a_deadline_in_the_future_asks_to_be_woken_then():
    spec_job = job(activeDeadlineSeconds=30)
    step = plan(spec_job, [])
    assert 29 <= step.requeue_after <= 30


def test_parallelism_and_completions_bound_the_active_pods():
    step = plan(job(completions=5, parallelism=2), [pod("a", "Succeeded"), pod("b")])
    assert step.create == [None]
    assert step.status["active"] == 2
    nearly = plan(job(completions=2, parallelism=2), [pod("a", "Succeeded"), pod("b")])
    assert nearly.create == []


def test_an_indexed_job_runs_each_index_once_and_completes_when_all_succeeded():
    spec_job = job(completionMode="Indexed", completions=3, parallelism=2)
    first = plan(spec_job, [])
    assert first.create == [0, 1]
    second = plan(spec_job, [pod("a", "Succeeded", 0), pod("b", "Running", 1)])
    assert second.create == [2]
    assert second.status["completedIndexes"] == "0"
    done = plan(
        spec_job, [pod("a", "Succeeded", 0), pod("b", "Succeeded", 1), pod("c", "Succeeded", 2)]
    )
    assert "Complete" in condition_types(done.status)
    assert done.status["completedIndexes"] == "0-2"


def test_a_suspended_job_deletes_its_pods_and_says_so():
    step = plan(job(suspend=True), [pod("a")])
    assert [p["metadata"]["uid"] for p in step.delete] == ["a"]
    assert step.status["conditions"][0]["reason"] == "JobSuspended"
    assert step.create == []


def test_a_finished_job_does_nothing_more():
    spec_job = job()
    spec_job["status"] = {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}
    step = plan(spec_job, [pod("a", "Succeeded")])
    assert step.create == [] and step.events == []


def test_pods_carry_the_job_labels_owner_and_index():
    built = build_job_pod(job(completionMode="Indexed", completions=2), 1, "x2b4c")
    metadata = built["metadata"]
    assert metadata["name"] == "train-1-x2b4c"
    assert metadata["labels"]["job-name"] == "train"
    assert metadata["labels"]["batch.kubernetes.io/job-name"] == "train"
    assert metadata["labels"]["controller-uid"] == "job-uid"
    assert metadata["annotations"][COMPLETION_INDEX] == "1"
    assert metadata["ownerReferences"][0]["controller"] is True
    env = built["spec"]["containers"][0]["env"]
    assert env[0]["name"] == "JOB_COMPLETION_INDEX"
    assert build_job_pod(job(), None, "abcde")["metadata"]["name"] == "train-abcde"


def test_completed_indexes_use_ranges():
    assert format_indexes([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert format_indexes([]) == ""


# -- podFailurePolicy --------------------------------------------------------------------------


def exited(name, code):
    return {"name": name, "state": {"terminated": {"exitCode": code, "reason": "Error"}}}


def failed_pod(uid, *containers, init=(), conditions=()):
    return {
        "metadata": {"name": f"train-{uid}", "namespace": "ml", "uid": uid, "annotations": {}},
        "spec": {"restartPolicy": "Never"},
        "status": {
            "phase": "Failed",
            "containerStatuses": list(containers),
            "initContainerStatuses": list(init),
            "conditions": list(conditions),
        },
    }


def on_exit_codes(action, operator, values, container="main"):
    requirement = {"operator": operator, "values": values}
    if container is not None:
        requirement["containerName"] = container
    return {"action": action, "onExitCodes": requirement}


DISRUPTED = {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}


def policy_job(*rules, **spec):
    return job(podFailurePolicy={"rules": list(rules)}, **spec)


def failed_condition(step):
    return next(c for c in step.status["conditions"] if c["type"] == "Failed")


def test_a_fail_job_rule_fails_the_job_at_the_first_such_pod_and_stops_the_others():
    spec_job = policy_job(on_exit_codes("FailJob", "In", [2, 3, 8]), DISRUPTED, backoffLimit=6)
    running = pod("b")
    step = plan(spec_job, [failed_pod("a", exited("main", 3)), running])
    failed = failed_condition(step)
    assert failed["reason"] == "PodFailurePolicy"
    assert failed["message"] == (
        "Container main for pod ml/train-a failed with exit code 3 matching FailJob rule at index 0"
    )
    assert "FailureTarget" in condition_types(step.status)
    assert step.create == [] and step.delete == [running]
    assert step.status["failed"] == 1
    assert ("Warning", "PodFailurePolicy", failed["message"]) in step.events


def test_an_exit_code_outside_the_rule_counts_and_is_retried():
    spec_job = policy_job(on_exit_codes("FailJob", "In", [2, 3, 8]), backoffLimit=2)
    history = JobHistory()
    first = plan(spec_job, [failed_pod("a", exited("main", 7))], history)
    assert "Failed" not in condition_types(first.status) and first.status["failed"] == 1
    later = plan(spec_job, [failed_pod("a", exited("main", 7))], history, NOW + retry_delay(1))
    assert later.create == [None]


def test_an_ignored_pod_does_not_count_against_the_backoff_limit():
    spec_job = policy_job(on_exit_codes("Ignore", "In", [143]), backoffLimit=0)
    history = JobHistory()
    first = plan(spec_job, [failed_pod("a", exited("main", 143))], history)
    assert "Failed" not in condition_types(first.status)
    assert first.status["failed"] == 0
    # It backs off like any failure, then replaces the pod; deleted, it still does not count.
    assert first.create == [] and first.requeue_after == retry_delay(1)
    later = plan(spec_job, [], history, NOW + retry_delay(1))
    assert later.create == [None] and later.status["failed"] == 0


def test_the_first_matching_rule_decides():
    spec_job = policy_job(
        on_exit_codes("Ignore", "In", [2]), on_exit_codes("FailJob", "In", [2]), backoffLimit=0
    )
    step = plan(spec_job, [failed_pod("a", exited("main", 2))])
    assert "Failed" not in condition_types(step.status)
    count_first = policy_job(
        on_exit_codes("Count", "In", [2]), on_exit_codes("FailJob", "In", [2]), backoffLimit=0
    )
    counted = plan(count_first, [failed_pod("a", exited("main", 2))])
    assert failed_condition(counted)["reason"] == "BackoffLimitExceeded"


def test_a_rule_with_an_unknown_action_is_skipped():
    spec_job = policy_job(
        on_exit_codes("FailIndex", "In", [2]), on_exit_codes("FailJob", "In", [2]), backoffLimit=6
    )
    step = plan(spec_job, [failed_pod("a", exited("main", 2))])
    assert failed_condition(step)["message"].endswith("matching FailJob rule at index 1")


def test_not_in_matches_failures_only_never_a_container_that_exited_0():
    spec_job = policy_job(on_exit_codes("FailJob", "NotIn", [3], container=None), backoffLimit=6)
    sidecar_failed = failed_pod("a", exited("main", 0), exited("sidecar", 3))
    assert "Failed" not in condition_types(plan(spec_job, [sidecar_failed]).status)
    other_code = failed_pod("b", exited("main", 0), exited("sidecar", 5))
    message = failed_condition(plan(spec_job, [other_code]))["message"]
    assert message.startswith("Container sidecar for pod ml/train-b failed with exit code 5")


def test_the_rule_looks_only_at_its_container_and_at_init_containers_too():
    spec_job = policy_job(on_exit_codes("FailJob", "In", [2], container="setup"), backoffLimit=6)
    other = failed_pod("a", exited("main", 2))
    assert "Failed" not in condition_types(plan(spec_job, [other]).status)
    init_failed = failed_pod("b", init=[exited("setup", 2)])
    assert failed_condition(plan(spec_job, [init_failed]))["reason"] == "PodFailurePolicy"


def test_a_disrupted_pod_is_ignored_by_its_condition():
    spec_job = policy_job(on_exit_codes("FailJob", "In", [2]), DISRUPTED, backoffLimit=0)
    evicted = failed_pod(
        "a",
        exited("main", 143),
        conditions=[
            {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}
        ],
    )
    step = plan(spec_job, [evicted])
    assert "Failed" not in condition_types(step.status) and step.status["failed"] == 0
    fail_on_condition = policy_job(
        {"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    )
    message = failed_condition(plan(fail_on_condition, [evicted]))["message"]
    assert (
        message == "Pod ml/train-a has condition DisruptionTarget matching FailJob rule at index 0"
    )
