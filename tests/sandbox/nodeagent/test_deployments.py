"""The Deployment controller's decisions."""

from conveyor.sandbox.nodeagent.deployments import (
    TEMPLATE_HASH,
    build_deployment_pod,
    plan_deployment,
    resolve_budget,
    template_hash,
)
from conveyor.sandbox.nodeagent.timefmt import format_time

NOW = 1_800_000_000.0
TEMPLATE_V1 = {
    "metadata": {"labels": {"app": "iris"}},
    "spec": {"containers": [{"name": "serve", "image": "conveyor:1"}]},
}
TEMPLATE_V2 = {
    "metadata": {"labels": {"app": "iris"}},
    "spec": {"containers": [{"name": "serve", "image": "conveyor:2"}]},
}


def deployment(template=TEMPLATE_V1, replicas=2, **spec):
    return {
        "metadata": {"name": "iris", "namespace": "ml", "uid": "d-uid", "generation": 1},
        "spec": {"replicas": replicas, "template": template, **spec},
    }


def pod(name, template=TEMPLATE_V1, ready=True, phase="Running", age=100):
    return {
        "metadata": {
            "name": name,
            "uid": name,
            "labels": {TEMPLATE_HASH: template_hash(template)},
            "creationTimestamp": format_time(NOW - age),
        },
        "status": {
            "phase": phase,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "lastTransitionTime": format_time(NOW - age),
                }
            ],
        },
    }


def names(pods):
    return sorted(p["metadata"]["name"] for p in pods)


def test_the_template_hash_is_stable_and_changes_with_the_template():
    assert template_hash(TEMPLATE_V1) == template_hash(dict(TEMPLATE_V1))
    assert template_hash(TEMPLATE_V1) != template_hash(TEMPLATE_V2)


def test_a_new_deployment_creates_its_replicas():
    step = plan_deployment(deployment(replicas=3), [], NOW)
    assert step.create == 3 and step.delete == []
    progressing = step.status["conditions"][1]
    assert progressing["reason"] == "ReplicaSetUpdated"


def test_a_settled_deployment_is_available_and_complete():
    step = plan_deployment(deployment(), [pod("a"), pod("b")], NOW)
    assert step.create == 0 and step.delete == []
    status = step.status
    assert (
        status["replicas"],
        status["updatedReplicas"],
        status["readyReplicas"],
        status["availableReplicas"],
        status["unavailableReplicas"],
    ) == (2, 2, 2, 2, 0)
    available, progressing = status["conditions"]
    assert available["status"] == "True" and available["reason"] == "MinimumReplicasAvailable"
    assert progressing["reason"] == "NewReplicaSetAvailable"


def test_a_rollout_surges_one_pod_then_waits_for_it_to_be_ready():
    old = [pod("a"), pod("b")]
    first = plan_deployment(deployment(TEMPLATE_V2), old, NOW)
    assert first.create == 1 and first.delete == []
    unready_new = pod("c", TEMPLATE_V2, ready=False, age=1)
    waiting = plan_deployment(deployment(TEMPLATE_V2), [*old, unready_new], NOW)
    assert waiting.create == 0 and waiting.delete == []
    ready_new = pod("c", TEMPLATE_V2, ready=True, age=1)
    swap = plan_deployment(deployment(TEMPLATE_V2), [*old, ready_new], NOW)
    assert swap.create == 0 and len(swap.delete) == 1
    assert swap.status["conditions"][1]["reason"] == "ReplicaSetUpdated"


def test_scaling_down_removes_unready_pods_first():
    pods = [pod("a"), pod("b", ready=False), pod("c")]
    step = plan_deployment(deployment(replicas=2), pods, NOW)
    assert names(step.delete) == ["b"]


def test_finished_pods_are_replaced():
    pods = [pod("a"), pod("b", phase="Failed")]
    step = plan_deployment(deployment(), pods, NOW)
    assert names(step.delete) == ["b"] and step.create == 1


def test_recreate_stops_old_pods_before_starting_new_ones():
    spec = {"strategy": {"type": "Recreate"}}
    step = plan_deployment(deployment(TEMPLATE_V2, **spec), [pod("a"), pod("b")], NOW)
    assert names(step.delete) == ["a", "b"] and step.create == 0


def test_no_progress_past_the_deadline_is_reported():
    stuck = deployment(progressDeadlineSeconds=5)
    stale = format_time(NOW - 60)
    stuck["status"] = {
        "observedGeneration": 1,
        "replicas": 2,
        "updatedReplicas": 2,
        "readyReplicas": 0,
        "availableReplicas": 0,
        "conditions": [
            {
                "type": "Progressing",
                "status": "True",
                "reason": "ReplicaSetUpdated",
                "message": "x",
                "lastUpdateTime": stale,
                "lastTransitionTime": stale,
            }
        ],
    }
    pods = [pod("a", ready=False), pod("b", ready=False)]
    progressing = plan_deployment(stuck, pods, NOW).status["conditions"][1]
    assert progressing["status"] == "False"
    assert progressing["reason"] == "ProgressDeadlineExceeded"


def test_budgets_round_like_kubernetes():
    assert resolve_budget("25%", 2, round_up=True, default="25%") == 1
    assert resolve_budget("25%", 2, round_up=False, default="25%") == 0
    assert resolve_budget(None, 8, round_up=False, default="25%") == 2
    assert resolve_budget(3, 8, round_up=True, default="25%") == 3


def test_pods_carry_the_template_labels_hash_and_owner():
    built = build_deployment_pod(deployment(), "abc", "x2b4c")
    assert built["metadata"]["name"] == "iris-abc-x2b4c"
    assert built["metadata"]["labels"] == {"app": "iris", TEMPLATE_HASH: "abc"}
    assert built["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
