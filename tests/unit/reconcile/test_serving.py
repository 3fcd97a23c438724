"""Serving decisions: what the Deployment serves, a rollout's progress, and the fall back to the
version that served before when a new one cannot."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import kubernetes_validate
import pytest

from conveyor.api.v1alpha1 import TrainingPipeline
from conveyor.contracts.invocations import ServeArgs
from conveyor.contracts.labels import LABEL_VERSION, SPEC_HASH
from conveyor.contracts.results import RunResult
from conveyor.reconcile.common import Create, Delete, Patch
from conveyor.reconcile.pipeline_world import RegisteredVersion, ServingWorld
from conveyor.reconcile.serving import ServingDecision, plan_serving, rollout
from conveyor.resources.modelversion import build_model_version
from conveyor.resources.serving import build_serving_deployment, build_serving_service
from conveyor.resources.workloads import JobSettings
from conveyor.serving.settings import LogSettings
from tests.conftest import EXAMPLES, load_yaml_documents

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
SETTINGS = JobSettings("conveyor:0.1.0", "http://s3:9000", "us-east-1", "conveyor")
DIGEST = "sha256:" + "1" * 64


def _pipeline(**serving: Any) -> dict[str, Any]:
    body = load_yaml_documents(EXAMPLES / "iris" / "trainingpipeline.yaml")[0]
    body["metadata"].update(namespace="ml", uid="u-1", generation=1)
    body["spec"]["serving"] = {"replicas": 2, **serving}
    return body


def _version(number: int, stage: str = "Production", generation: int = 1) -> RegisteredVersion:
    run = f"iris-r{number}"
    prefix = f"s3://conveyor/models/ml/iris-classifier/runs/{run}/"
    result = RunResult.from_json(
        {
            "run": run,
            "model": "iris-classifier",
            "pipeline": "iris",
            "featureset": "iris",
            "snapshot": "s1",
            "image": "conveyor:0.1.0",
            "task": "classification",
            "target": "species",
            "estimator": "LogisticRegression",
            "metric": "accuracy",
            "score": 0.95,
            "passed": True,
            "trainingSeconds": 1.0,
            "startedAt": "2026-12-07T11:00:00Z",
            "finishedAt": "2026-12-07T11:01:00Z",
            "artifact": {
                "uri": prefix + "model.skops",
                "digest": DIGEST,
                "cardUri": prefix + "card.json",
                "onnx": {"uri": prefix + "model.onnx", "digest": DIGEST},
            },
        }
    )
    body = build_model_version(TrainingPipeline.from_body(_pipeline()), run, result, number)
    body["metadata"]["generation"] = generation
    body["spec"]["stage"] = stage
    return RegisteredVersion.from_body(body)


def _plan(
    body: dict[str, Any], versions: list[RegisteredVersion], world: ServingWorld
) -> ServingDecision:
    return plan_serving(TrainingPipeline.from_body(body), versions, world, SETTINGS, NOW)


def _with_status(body: dict[str, Any], **serving: Any) -> dict[str, Any]:
    body["status"] = {"serving": serving}
    return body


def _deployment(version: RegisteredVersion, **status: Any) -> dict[str, Any]:
    """The model's Deployment, serving `version` on two pods, observed with `status`."""
    built = build_serving_deployment(
        TrainingPipeline.from_body(_pipeline()), version.body, SETTINGS, replicas=2
    )
    built["metadata"]["generation"] = 3
    built["status"] = {"observedGeneration": 3, **status}
    return built


def _pod(version: str, **container: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": f"{version}-pod", "labels": {LABEL_VERSION: version}},
        "status": {"containerStatuses": [{"name": "main", "restartCount": 0, **container}]},
    }


DONE = {"replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}
SERVICE = build_serving_service(TrainingPipeline.from_body(_pipeline()))


def test_the_first_production_version_gets_a_deployment_and_a_service() -> None:
    v1 = _version(1)
    decision = _plan(_pipeline(), [v1], ServingWorld())
    created = [w for w in decision.writes if isinstance(w, Create)]
    assert [w.resource.kind for w in created] == ["Deployment", "Service"]
    deployment = created[0].body
    kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)
    kubernetes_validate.validate(created[1].body, kubernetes_validate.latest_version(), strict=True)
    assert deployment["metadata"]["name"] == "iris-classifier"
    assert deployment["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert decision.state.rolling_out == "iris-classifier-v1" and decision.state.version is None
    assert decision.state.url == "http://iris-classifier.ml.svc:8080"
    assert (decision.condition.status, decision.condition.reason) == ("False", "RollingOut")


def test_the_pods_serve_the_version_by_its_registered_files_safely() -> None:
    v1 = _version(1)
    deployment = _plan(_pipeline(), [v1], ServingWorld()).writes[0].body  # type: ignore[attr-defined]
    spec = deployment["spec"]
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    args = ServeArgs.parse(container["args"][1:])
    assert args.artifact_uri.endswith("/model.skops") and args.artifact_digest == DIGEST
    assert args.onnx_uri is not None and args.onnx_uri.endswith("/model.onnx")
    assert args.card_uri is not None and args.version == 1
    security = container["securityContext"]
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/tmp", str(args.cache_dir)} <= mounts
    assert all("emptyDir" in v for v in pod["volumes"])
    # A slow download is no liveness failure: startup and liveness ask "live", readiness "ready".
    assert container["startupProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    secrets = [e for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})]
    assert {e["name"] for e in secrets} == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert spec["template"]["metadata"]["labels"][LABEL_VERSION] == "iris-classifier-v1"


def test_the_pods_log_as_spec_serving_says_each_under_its_name_and_namespace() -> None:
    serving = {
        "logPredictions": True,
        "logSampleRatio": 0.25,
        "logFlushSeconds": 2.5,
        "logBatchRecords": 500,
        "logBufferRecords": 20000,
    }
    deployment = _plan(_pipeline(**serving), [_version(1)], ServingWorld()).writes[0].body  # type: ignore[attr-defined]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"] if "value" in e}
    logs = LogSettings.from_env(env)  # what the server reads back
    assert (logs.predictions, logs.sample_ratio, logs.flush_seconds) == (True, 0.25, 2.5)
    assert (logs.batch_records, logs.buffer_records) == (500, 20000)
    downward = {e["name"]: e["valueFrom"] for e in container["env"] if "valueFrom" in e}
    assert downward["CONVEYOR_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert downward["CONVEYOR_POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_a_complete_rollout_serves_and_writes_nothing() -> None:
    v1 = _version(1)
    deployment = _deployment(v1, **DONE)
    world = ServingWorld(
        deployment=deployment, service=_plan(_pipeline(), [v1], ServingWorld()).writes[1].body
    )  # type: ignore[attr-defined]
    decision = _plan(_with_status(_pipeline(), rollingOut="iris-classifier-v1"), [v1], world)
    assert decision.state.version == "iris-classifier-v1" and decision.state.rolling_out is None
    assert decision.writes == []
    assert [e.reason for e in decision.events] == ["RolledOut"]
    assert (decision.condition.status, decision.condition.reason) == ("True", "Serving")


def test_promoting_rolls_out_while_the_old_version_answers() -> None:
    v1, v2 = _version(1, "Archived"), _version(2)
    body = _with_status(_pipeline(), version="iris-classifier-v1")
    decision = _plan(body, [v1, v2], ServingWorld(deployment=_deployment(v1, **DONE)))
    (patch,) = [w for w in decision.writes if isinstance(w, Patch)]
    assert patch.body["metadata"]["annotations"][LABEL_VERSION] == "iris-classifier-v2"
    assert decision.state.version == "iris-classifier-v1"
    assert decision.state.rolling_out == "iris-classifier-v2"
    assert (
        decision.condition.status == "True" and "v1 answers meanwhile" in decision.condition.message
    )


def test_a_server_waiting_for_s3_keeps_rolling_out_and_says_why() -> None:
    """S3 unavailable at start-up passes: however often the pod restarts, the rollout goes on
    (bounded by progressDeadlineSeconds) and the Serving condition names the reason."""
    outage = {
        "exitCode": 7,
        "message": json.dumps(
            {
                "ok": False,
                "reason": "StorageUnavailable",
                "message": "S3 at http://s3:9000 answered 503",
                "retryable": True,
            }
        ),
    }
    pod = _pod(
        "iris-classifier-v2",
        restartCount=5,
        state={"waiting": {"reason": "CrashLoopBackOff"}},
        lastState={"terminated": outage},
    )
    v1, v2 = _version(1, "Archived"), _version(2)
    body = _with_status(_pipeline(), version="iris-classifier-v1", rollingOut="iris-classifier-v2")
    world = ServingWorld(deployment=_deployment(v2), service=SERVICE, pods=[pod])
    decision = _plan(body, [v1, v2], world)
    assert decision.state.failures == [] and decision.state.rolling_out == "iris-classifier-v2"
    assert decision.condition.reason == "RollingOut"
    assert "StorageUnavailable" in decision.condition.message
    assert "restarted 5 times" in decision.condition.message
    assert "answered 503" in decision.condition.message


@pytest.mark.parametrize(
    ("pod", "reason"),
    [
        (
            _pod(
                "iris-classifier-v2",
                state={"waiting": {"reason": "CrashLoopBackOff"}},
                lastState={
                    "terminated": {
                        "exitCode": 2,
                        "message": json.dumps(
                            {
                                "ok": False,
                                "reason": "DigestMismatch",
                                "message": "model.skops digest does not match",
                                "retryable": False,
                            }
                        ),
                    }
                },
            ),
            "DigestMismatch",
        ),
        (
            _pod(
                "iris-classifier-v2",
                restartCount=3,
                state={"waiting": {"reason": "CrashLoopBackOff"}},
                lastState={"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
            ),
            "CrashLoop",
        ),
    ],
)
def test_a_version_that_cannot_serve_is_recorded_then_rolled_back(
    pod: dict[str, Any], reason: str
) -> None:
    v1, v2 = _version(1, "Archived"), _version(2)
    body = _with_status(_pipeline(), version="iris-classifier-v1", rollingOut="iris-classifier-v2")
    world = ServingWorld(deployment=_deployment(v2), service=SERVICE, pods=[pod])
    decision = _plan(body, [v1, v2], world)
    (failure,) = decision.state.failures
    assert (failure.version, failure.reason) == ("iris-classifier-v2", reason)
    (patch,) = [
        w for w in decision.writes if isinstance(w, Patch) and w.resource.kind == "Deployment"
    ]
    assert patch.body["metadata"]["annotations"][LABEL_VERSION] == "iris-classifier-v1"
    assert [e.reason for e in decision.events] == ["RolloutFailed"]
    assert (
        decision.events[0].type == "Warning" and "v1 serves instead" in decision.events[0].message
    )
    assert (decision.condition.status, decision.condition.reason) == ("True", "RolledBack")
    assert decision.state.version == "iris-classifier-v1" and decision.state.rolling_out is None


def test_the_progress_deadline_fails_a_rollout() -> None:
    deployment = _deployment(
        _version(2),
        conditions=[
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": 'ReplicaSet "x" has timed out progressing.',
            }
        ],
    )
    outcome = rollout(deployment, [], "iris-classifier-v2")
    assert (outcome.state, outcome.reason) == ("failed", "ProgressDeadlineExceeded")
    assert "spec.serving.progressDeadlineSeconds" in outcome.message


def test_a_retryable_exit_is_no_verdict_yet() -> None:
    pod = _pod(
        "iris-classifier-v2",
        lastState={
            "terminated": {
                "exitCode": 7,
                "message": '{"ok": false, "reason": "StorageUnavailable", "retryable": true}',
            }
        },
    )
    assert rollout(_deployment(_version(2)), [pod], "iris-classifier-v2").state == "progressing"


def test_a_failed_version_stays_off_until_it_changes() -> None:
    v1, v2 = _version(1, "Archived"), _version(2, generation=1)
    failure = {
        "version": "iris-classifier-v2",
        "generation": 1,
        "reason": "WarmupFailed",
        "message": "the warm-up row failed",
        "time": "2026-12-07T11:00:00Z",
    }
    body = _with_status(_pipeline(), version="iris-classifier-v1", failures=[failure])
    world = ServingWorld(deployment=_deployment(v1, **DONE), service=SERVICE)
    stays = _plan(copy.deepcopy(body), [v1, v2], world)
    assert stays.writes == [] and stays.condition.reason == "RolledBack"
    # Its stage set anew (a new generation): tried again.
    retried = _plan(body, [v1, _version(2, generation=2)], world)
    assert retried.state.rolling_out == "iris-classifier-v2" and retried.state.failures == []


def test_without_a_production_version_serving_scales_to_zero() -> None:
    v1 = _version(1, "Archived")
    body = _with_status(_pipeline(), version="iris-classifier-v1")
    decision = _plan(body, [v1], ServingWorld(deployment=_deployment(v1, **DONE)))
    (patch,) = decision.writes
    assert isinstance(patch, Patch) and patch.body["spec"] == {"replicas": 0}
    assert patch.body["metadata"]["annotations"][SPEC_HASH] == "scaled-to-zero"
    assert (decision.condition.status, decision.condition.reason) == (
        "False",
        "NoProductionVersion",
    )
    assert decision.state.version is None


def test_only_a_registered_version_is_served() -> None:
    # The registered ones are all plan_serving is given (registry.py); here, none.
    decision = _plan(_pipeline(), [], ServingWorld())
    assert decision.writes == [] and decision.condition.reason == "NoProductionVersion"


def test_autoscaling_keeps_an_autoscaler_and_leaves_replicas_to_it() -> None:
    v1 = _version(1)
    body = _pipeline(minReplicas=2, maxReplicas=5, targetCpuUtilization=60)
    created = _plan(body, [v1], ServingWorld()).writes
    deployment, _, autoscaler = (w.body for w in created)  # type: ignore[attr-defined]
    assert deployment["spec"]["replicas"] == 2  # minReplicas at first
    kubernetes_validate.validate(autoscaler, kubernetes_validate.latest_version(), strict=True)
    assert autoscaler["spec"]["minReplicas"] == 2 and autoscaler["spec"]["maxReplicas"] == 5
    metric = autoscaler["spec"]["metrics"][0]["resource"]["target"]
    assert metric == {"type": "Utilization", "averageUtilization": 60}
    # Later patches do not fight the autoscaler over replicas.
    running = _with_status(_pipeline(minReplicas=2, maxReplicas=5), version="iris-classifier-v1")
    world = ServingWorld(deployment=_deployment(_version(1, "Archived"), **DONE))
    patches = _plan(running, [v1, _version(2)], world).writes
    assert "replicas" not in patches[0].body["spec"]  # type: ignore[attr-defined]
    # Autoscaling turned off: the autoscaler goes.
    world = ServingWorld(deployment=_deployment(v1, **DONE), autoscaler=autoscaler)
    writes = _plan(_with_status(_pipeline(), version="iris-classifier-v1"), [v1], world).writes
    assert any(
        isinstance(w, Delete) and w.resource.kind == "HorizontalPodAutoscaler" for w in writes
    )
