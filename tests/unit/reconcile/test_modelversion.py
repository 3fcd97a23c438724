"""Stages in effect, one Production per model, and Rejected versions never served."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from conveyor.api.v1alpha1 import ModelVersion, TrainingPipeline
from conveyor.api.v1alpha1.modelversion import GateResult, OnnxArtifact
from conveyor.api.v1alpha1.trainingpipeline import RolloutFailure, ServingState
from conveyor.contracts.layouts import RunLayout
from conveyor.contracts.results import RunResult
from conveyor.reconcile import (
    Invalid,
    Plan,
    parse_modelversion,
    plan_deletion,
    reconcile_modelversion,
)
from conveyor.reconcile.common import DeleteFiles, Patch, SetFinalizer, WriteStatus
from conveyor.reconcile.modelversion import DeletionPlan, Sibling, VersionWorld
from conveyor.reconcile.registry import RunRecord
from conveyor.resources.modelversion import build_model_version
from tests.conftest import EXAMPLES, load_yaml_documents

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
DIGEST = "sha256:" + "0" * 64


RESULT = RunResult.from_json(
    {
        "run": "r1",
        "model": "iris",
        "pipeline": "iris",
        "featureset": "iris",
        "snapshot": "s",
        "image": "conveyor:0.1.0",
        "task": "classification",
        "target": "species",
        "estimator": "RandomForestClassifier",
        "metric": "accuracy",
        "score": 0.95,
        "metrics": {"accuracy": 0.95},
        "passed": True,
        "trainingSeconds": 1.0,
        "startedAt": "2026-11-27T11:00:00Z",
        "finishedAt": "2026-11-27T11:01:00Z",
        "artifact": {
            "uri": "s3://conveyor/models/default/iris/runs/r1/model.skops",
            "digest": DIGEST,
        },
    }
)
PIPELINE = TrainingPipeline.from_body(
    load_yaml_documents(EXAMPLES / "iris" / "trainingpipeline.yaml")[0]
    | {"metadata": {"name": "iris", "namespace": "default"}}
)
PIPELINE.spec.model.name = "iris"


_RECORDED: dict[str, RunResult] = {}
"""run → its result.json, as `_version` made the run record it."""


def _result(number: int, passed: bool = True, onnx: dict[str, Any] | None = None) -> RunResult:
    """What run r<number> recorded (with an ONNX file when `onnx` is given)."""
    gate = GateResult(
        name="threshold:accuracy:min",
        passed=passed,
        message="accuracy 0.95 >= 0.9" if passed else "accuracy 0.5 < 0.9",
    )
    artifact = RESULT.artifact.model_copy(
        update={
            "uri": f"s3://conveyor/models/default/iris/runs/r{number}/model.skops",
            "onnx": None if onnx is None else OnnxArtifact.model_validate(onnx),
        }
    )
    return RESULT.model_copy(
        update={"run": f"r{number}", "artifact": artifact, "gates": [gate], "passed": passed}
    )


def _version(
    number: int,
    stage: str = "Candidate",
    passed: bool = True,
    status: dict[str, Any] | None = None,
    reason: str | None = None,
    onnx: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Version `number`, registered by the operator from run r<number>."""
    _RECORDED[f"r{number}"] = _result(number, passed, onnx)
    body = build_model_version(PIPELINE, f"r{number}", _RECORDED[f"r{number}"], number)
    body["metadata"]["generation"] = 1
    if reason:
        body["metadata"]["annotations"] = {"conveyor.dev/stage-reason": reason}
    body["spec"]["stage"] = stage
    body["status"] = status or {}
    return body


def _record(body: dict[str, Any], recorded_version: str | None = None) -> RunRecord:
    """What the version's run recorded, as the handler observes it: r<n>'s result."""
    run = body["spec"]["lineage"]["run"]
    layout = RunLayout("conveyor", "default", "iris", run)
    return RunRecord.of(layout, result=_RECORDED.get(run), recorded_version=recorded_version)


def _plan(
    body: dict[str, Any],
    siblings: Sequence[Sibling] = (),
    *,
    now: datetime,
    record: RunRecord | None = None,
    serving: ServingState | None = None,
) -> Any:
    """Parse, then reconcile against `siblings` and what the pipeline `serving`: what the
    handler's driver does."""
    version = parse_modelversion(body)
    if isinstance(version, Invalid):
        plan: Plan = version.plan()
        return plan
    world = VersionWorld(
        now=now,
        record=record or _record(body),
        bucket="conveyor",
        siblings=siblings,
        serving=serving,
    )
    return reconcile_modelversion(version, world)


def _serves(name: str, **state: Any) -> ServingState:
    """The pipeline's status.serving while `name` serves."""
    return ServingState(deployment="iris", version=name, replicas=2, ready_replicas=2, **state)


def test_registered_candidate_records_its_stage() -> None:
    plan = _plan(_version(1), now=NOW)
    assert plan.outcome.fields["stage"] == "Candidate"
    assert plan.outcome.fields["stageHistory"] == [
        {"stage": "Candidate", "time": "2026-11-27T12:00:00Z", "reason": "registered"}
    ]
    assert plan.archive == []


def test_promotion_archives_the_other_production_version() -> None:
    body = _version(
        2, "Production", status={"stage": "Candidate"}, reason="Production: promoted by alice"
    )
    siblings = [
        Sibling("iris-v1", "Production"),
        Sibling("iris-v2", "Production"),
        Sibling("iris-v3", "Candidate"),
    ]
    # Archived at once; Production in effect once it serves.
    plan = _plan(body, siblings, now=NOW)
    assert plan.archive == ["iris-v1"]
    assert "stageHistory" not in plan.outcome.fields
    plan = _plan(body, siblings, now=NOW, serving=_serves("iris-v2"))
    assert plan.outcome.fields["stageHistory"][-1]["reason"] == "promoted by alice"


def test_a_stale_reason_for_another_stage_is_not_reused() -> None:
    body = _version(
        1, "Production", status={"stage": "Archived"}, reason="Archived: replaced by iris-v2"
    )
    plan = _plan(body, now=NOW, serving=_serves("iris-v1"))
    assert plan.outcome.fields["stageHistory"][-1]["reason"] == "promoted"


def test_a_rejected_version_is_never_put_in_production() -> None:
    plan = _plan(_version(4, "Production", passed=False, status={"stage": "Rejected"}), now=NOW)
    ready = plan.outcome.conditions[0]
    assert (ready.status, ready.reason) == ("False", "RejectedByGates")
    assert "accuracy 0.5 < 0.9" in ready.message
    assert "stage" not in plan.outcome.fields and plan.archive == []


def test_name_must_follow_model_and_version() -> None:
    body = _version(1)
    body["metadata"]["name"] = "something-else"
    ready = _plan(body, now=NOW).outcome.conditions[0]
    assert ready.status == "False" and "iris-v1" in ready.message


def test_promotion_patches_the_replaced_version_before_its_own_status() -> None:
    body = _version(2, "Production", status={"stage": "Candidate"})
    plan = _plan(body, [Sibling("iris-v1", "Production")], now=NOW)
    patch, write = plan.actions()
    assert (patch.name, patch.body["spec"]) == ("iris-v1", {"stage": "Archived"})
    assert patch.body["metadata"]["annotations"] == {
        "conveyor.dev/stage-reason": "Archived: replaced by iris-v2"
    }
    assert isinstance(write, WriteStatus)


def test_a_production_version_cannot_be_deleted() -> None:
    version = ModelVersion.from_body(_version(1, "Production", status={"stage": "Production"}))
    plan = plan_deletion(version, "conveyor", in_effect="Production")
    assert "is the Production version of model iris" in plan.blocked
    assert plan.delete_prefix == ""


def test_deleting_keeps_the_artifacts_unless_asked() -> None:
    version = ModelVersion.from_body(_version(1, status={"stage": "Archived"}))
    assert plan_deletion(version, "conveyor", in_effect="Archived") == DeletionPlan()


def test_deleting_artifacts_removes_the_runs_path_from_the_run_layout() -> None:
    body = _version(1, status={"stage": "Archived"})
    body["spec"]["deleteArtifacts"] = True
    plan = plan_deletion(ModelVersion.from_body(body), "conveyor", in_effect="Archived")
    assert (plan.bucket, plan.delete_prefix) == ("conveyor", "models/default/iris/runs/r1/")
    assert not plan.blocked and not plan.warning


def test_an_artifact_outside_its_run_is_never_deleted() -> None:
    body = _version(1, status={"stage": "Archived"})
    body["spec"]["deleteArtifacts"] = True
    body["spec"]["artifact"]["uri"] = "s3://other-bucket/models/default/iris/runs/r1/model.skops"
    plan = plan_deletion(ModelVersion.from_body(body), "conveyor", in_effect="Archived")
    assert plan.delete_prefix == ""
    assert "s3://other-bucket/" in plan.warning and "does not delete it" in plan.warning


# The registry trusts only what the operator registered ----------------------------------------


def _forged(**changes: Any) -> dict[str, Any]:
    """A hand-written version: the labels and most fields of a real one, `changes` applied."""
    body = _version(9, "Production")
    body["spec"].update(changes)
    return body


def _not_registered(body: dict[str, Any], record: RunRecord | None = None) -> str:
    siblings = [Sibling("iris-v1", "Production"), Sibling("iris-v9", "Production")]
    plan = _plan(body, siblings, now=NOW, record=record)
    ready = plan.outcome.conditions[0]
    assert (ready.status, ready.reason) == ("False", "NotRegistered"), ready
    assert plan.archive == [], "the real Production version stays"
    assert "stage" not in plan.outcome.fields
    return str(ready.message)


def test_a_version_whose_run_never_ran_is_not_registered() -> None:
    body = _forged()
    body["spec"]["lineage"]["run"] = body["metadata"]["labels"]["conveyor.dev/run"] = "r-never"
    message = _not_registered(body)
    assert (
        "run r-never left no result at s3://conveyor/models/default/iris/runs/r-never/" in message
    )
    assert "never promoted, served or used as a champion" in message


def test_an_artifact_elsewhere_with_a_zero_digest_is_not_registered() -> None:
    message = _not_registered(
        _forged(artifact={"uri": "s3://other-bucket/model.skops", "digest": DIGEST})
    )
    assert "its artifact s3://other-bucket/model.skops is not under the path of run r9" in message


def test_a_rewritten_digest_or_gate_is_not_registered() -> None:
    body = _version(9, "Production")
    body["spec"]["artifact"]["digest"] = "sha256:" + "f" * 64
    assert "spec.artifact" in _not_registered(body)
    body = _version(9, "Production", passed=False)
    body["spec"]["gates"][0]["passed"] = True  # a failed gate marked passed by hand
    assert "its spec.gates differ from what run r9 recorded" in _not_registered(body)


def test_labels_that_disagree_with_the_spec_are_not_registered() -> None:
    body = _version(9, "Production")
    body["metadata"]["labels"]["conveyor.dev/run"] = "r1"
    assert "its labels conveyor.dev/run do not match its spec" in _not_registered(body)


def test_a_copy_under_another_name_is_not_the_runs_version() -> None:
    body = _version(9, "Production")
    record = _record(body, recorded_version="iris-v3")
    assert "run r9 registered iris-v3, not iris-v9" in _not_registered(body, record)


def test_an_unreadable_result_vouches_for_nothing() -> None:
    body = _version(9, "Production")
    record = RunRecord.of(RunLayout("conveyor", "default", "iris", "r9"), unreadable="not JSON")
    assert "the result of run r9 cannot be read (not JSON)" in _not_registered(body, record)


def test_a_version_no_longer_vouched_for_stops_being_in_effect() -> None:
    body = _version(9, "Production", status={"stage": "Production"})
    body["spec"]["metrics"]["accuracy"] = 0.99
    plan = _plan(body, now=NOW)
    assert plan.outcome.conditions[0].reason == "NotRegistered"
    assert plan.outcome.fields == {"stage": None}


def test_deleting_a_version_not_registered_never_deletes_its_runs_files() -> None:
    body = _version(9, status={"stage": "Archived"})
    body["spec"]["deleteArtifacts"] = True
    plan = plan_deletion(
        ModelVersion.from_body(body), "conveyor", "run r9 registered iris-v3", in_effect=None
    )
    assert plan.delete_prefix == ""
    assert "was not registered by Conveyor (run r9 registered iris-v3)" in plan.warning


# Deletion: a Production version waits; otherwise it goes, with its run's files when asked ----


def _deleting(body: dict[str, Any]) -> dict[str, Any]:
    body["metadata"]["deletionTimestamp"] = "2026-11-27T11:59:00Z"
    return body


def test_deleting_the_production_version_waits_and_says_so_once() -> None:
    body = _deleting(_version(1, "Production", status={"stage": "Production"}))
    plan = _plan(body, now=NOW, serving=_serves("iris-v1"))
    blocked = next(c for c in plan.outcome.conditions if c.type == "DeletionBlocked")
    assert blocked.status == "True" and "promote another version" in blocked.message
    assert [e.reason for e in plan.outcome.events] == ["DeletionBlocked"]
    assert not any(isinstance(a, SetFinalizer) for a in plan.actions())
    body["status"]["conditions"] = [
        {"type": "DeletionBlocked", "status": "True", "reason": "ProductionVersion"}
    ]
    # Said once, not at every reconcile.
    assert _plan(body, now=NOW, serving=_serves("iris-v1")).outcome.events == []


def test_a_deletion_removes_the_runs_files_then_the_finalizer() -> None:
    body = _deleting(_version(1, "Archived", status={"stage": "Archived"}))
    body["spec"]["deleteArtifacts"] = True
    actions = _plan(body, now=NOW).actions()
    assert [type(a).__name__ for a in actions] == [
        "WriteStatus",
        "DeleteFiles",
        "SetFinalizer",
    ]
    assert actions[-1] == SetFinalizer(present=False)
    assert actions[1] == DeleteFiles("conveyor", "models/default/iris/runs/r1/")


def test_a_blocked_deletion_resumes_aloud_when_the_version_leaves_production() -> None:
    body = _deleting(_version(1, "Archived", status={"stage": "Production"}))
    body["status"]["conditions"] = [
        {"type": "DeletionBlocked", "status": "True", "reason": "ProductionVersion"}
    ]
    plan = _plan(body, now=NOW)
    assert [e.reason for e in plan.outcome.events] == ["StageArchived", "DeletionResumed"]
    assert "requested at 2026-11-27T11:59:00Z completes now" in plan.outcome.events[1].message
    assert isinstance(plan.actions()[-1], SetFinalizer)


def test_a_version_not_registered_goes_without_touching_the_runs_files() -> None:
    body = _deleting(_version(9, "Archived"))
    body["spec"]["deleteArtifacts"] = True
    body["spec"]["metrics"]["accuracy"] = 0.99
    plan = _plan(body, now=NOW)
    assert [type(a).__name__ for a in plan.actions()] == ["WriteStatus", "SetFinalizer"]
    assert [e.reason for e in plan.outcome.events] == ["ArtifactsKept"]


def test_a_registered_version_gets_back_a_finalizer_taken_off() -> None:
    body = _version(1, status={"stage": "Candidate"})
    body["metadata"]["finalizers"] = []
    assert _plan(body, now=NOW).actions()[-1] == SetFinalizer(present=True)
    forged = _version(9)
    forged["metadata"]["finalizers"] = []
    forged["spec"]["metrics"]["accuracy"] = 0.99  # not the run's: nothing to protect
    assert not any(isinstance(a, SetFinalizer) for a in _plan(forged, now=NOW).actions())


# What serves: the pipeline's status.serving decides; the version reports it ------------------


def _serving_condition(plan: Any) -> Any:
    return next((c for c in plan.outcome.conditions if c.type == "Serving"), None)


def test_the_served_version_is_production_in_effect_with_its_pods() -> None:
    plan = _plan(
        _version(1, "Production", status={"stage": "Candidate"}),
        now=NOW,
        serving=_serves("iris-v1", url="http://iris.default.svc:8080"),
    )
    assert plan.outcome.fields["stage"] == "Production"
    assert plan.outcome.fields["serving"] == {
        "deployment": "iris",
        "service": "iris",
        "url": "http://iris.default.svc:8080",
        "replicas": 2,
        "readyReplicas": 2,
    }
    serving = _serving_condition(plan)
    assert (serving.status, serving.reason) == ("True", "Serving")


def test_while_a_successor_rolls_out_the_old_version_still_serves() -> None:
    state = _serves("iris-v1", rolling_out="iris-v2")
    new = _plan(_version(2, "Production", status={"stage": "Candidate"}), now=NOW, serving=state)
    assert "stage" not in new.outcome.fields  # Candidate until it serves
    assert _serving_condition(new).reason == "RollingOut"
    assert "iris-v1 answers meanwhile" in _serving_condition(new).message
    # v1 was archived by the promotion, but answers until v2 serves on every pod.
    old = _plan(_version(1, "Archived", status={"stage": "Production"}), now=NOW, serving=state)
    assert "stage" not in old.outcome.fields
    assert _serving_condition(old).status == "True"


def test_a_version_that_cannot_serve_says_why_and_keeps_its_spec() -> None:
    failure = RolloutFailure(
        version="iris-v2",
        generation=1,
        reason="DigestMismatch",
        message="model.skops digest sha256:ab does not match",
        time=NOW,
    )
    state = _serves("iris-v1", failures=[failure])
    plan = _plan(_version(2, "Production", status={"stage": "Candidate"}), now=NOW, serving=state)
    serving = _serving_condition(plan)
    assert (serving.status, serving.reason) == ("False", "DigestMismatch")
    assert "iris-v1 serves instead" in serving.message
    assert "stage" not in plan.outcome.fields and plan.outcome.fields["serving"] is None
    assert not any(isinstance(a, Patch) and a.name == "iris-v2" for a in plan.actions())


def test_a_version_no_longer_served_says_so() -> None:
    body = _version(1, "Archived", status={"stage": "Production"})
    body["status"]["conditions"] = [{"type": "Serving", "status": "True", "reason": "Serving"}]
    plan = _plan(body, now=NOW, serving=_serves("iris-v2"))
    assert plan.outcome.fields["stage"] == "Archived"
    assert _serving_condition(plan).reason == "NotServing"


def _onnx_file(number: int) -> dict[str, Any]:
    uri = f"s3://conveyor/models/default/iris/runs/r{number}/model.onnx"
    return {"uri": uri, "digest": "sha256:" + "a" * 64, "sizeBytes": 2048}


def test_the_onnx_file_a_run_recorded_is_registered_with_its_digest() -> None:
    body = _version(7, "Production", status={"stage": "Candidate"}, onnx=_onnx_file(7))
    assert body["spec"]["artifact"]["onnx"] == _onnx_file(7)
    assert ModelVersion.from_body(body).spec.artifact.onnx == OnnxArtifact.model_validate(
        _onnx_file(7)
    )
    plan = _plan(body, now=NOW, serving=_serves("iris-v7"))
    assert plan.outcome.conditions[0].status == "True"
    assert plan.outcome.fields["stage"] == "Production"


def test_an_onnx_file_the_run_did_not_record_is_not_registered() -> None:
    swapped = _version(9, "Production", onnx=_onnx_file(9))
    swapped["spec"]["artifact"]["onnx"]["digest"] = "sha256:" + "b" * 64
    assert "its spec.artifact.onnx differ from what run r9 recorded" in _not_registered(swapped)

    elsewhere = _version(9, "Production", onnx=_onnx_file(9))
    elsewhere["spec"]["artifact"]["onnx"]["uri"] = "s3://other-bucket/model.onnx"
    assert "spec.artifact.onnx differ" in _not_registered(elsewhere)

    added = _version(9, "Production")  # the run exported no ONNX file
    added["spec"]["artifact"]["onnx"] = _onnx_file(9)
    assert "spec.artifact.onnx differ" in _not_registered(added)

    dropped = _version(9, "Production", onnx=_onnx_file(9))
    del dropped["spec"]["artifact"]["onnx"]
    assert "spec.artifact.onnx differ" in _not_registered(dropped)
