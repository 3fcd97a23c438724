"""Run decisions: triggers, concurrency, snapshot pinning, Jobs, registration, promotion."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conveyor.api.v1alpha1 import TrainingPipeline
from conveyor.contracts.results import RunResult
from conveyor.reconcile.common import Create, Patch, WriteStatus
from conveyor.reconcile.pipeline_world import (
    PipelineWorld,
    RegisteredVersion,
    RunJob,
    runs_to_collect,
)
from conveyor.reconcile.runs import PipelinePlan, spec_hash
from conveyor.reconcile.runs import plan_runs as plan_pipeline_runs
from conveyor.resources.kinds import MODEL_VERSIONS
from conveyor.resources.modelversion import build_model_version
from conveyor.resources.workloads import JobSettings
from tests.conftest import EXAMPLES, load_yaml_documents

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SETTINGS = JobSettings(
    image="conveyor:0.1.0",
    s3_endpoint="http://s3:9000",
    s3_region="us-east-1",
    s3_bucket="conveyor",
)
FEATURESET = {"metadata": {"name": "iris"}, "spec": {"schema": {"columns": []}}}
RESULT = RunResult.from_json(
    {
        "run": "iris-r1",
        "model": "iris-classifier",
        "pipeline": "iris",
        "featureset": "iris",
        "image": "conveyor:0.1.0",
        "target": "species",
        "estimator": "RandomForestClassifier",
        "passed": True,
        "score": 0.97,
        "metric": "f1_macro",
        "task": "classification",
        "metrics": {"f1_macro": 0.97, "accuracy": 0.97},
        "baseline": {"accuracy": 0.33},
        "params": {"n_estimators": 100},
        "snapshot": "snap1",
        "trainingSeconds": 1.5,
        "startedAt": "2026-11-27T11:59:58Z",
        "finishedAt": "2026-11-27T12:00:00Z",
        "gates": [{"name": "threshold:accuracy:min", "passed": True, "message": "ok"}],
        "artifact": {
            "uri": "s3://conveyor/models/default/iris-classifier/runs/iris-r1/model.skops",
            "digest": "sha256:" + "1" * 64,
            "format": "skops",
            "sizeBytes": 10,
        },
    }
)


@pytest.fixture
def pipeline() -> dict[str, Any]:
    body = load_yaml_documents(EXAMPLES / "iris" / "trainingpipeline.yaml")[0]
    body["metadata"].update(namespace="default", generation=1, uid="u-1")
    body["spec"]["runs"] = {"runOnSpecChange": False}
    return body


def _requested(body: dict[str, Any], value: str = "now") -> dict[str, Any]:
    body["metadata"]["annotations"] = {"conveyor.dev/run-requested": value}
    return body


def plan_runs(body: dict[str, Any], world: PipelineWorld, settings: JobSettings) -> PipelinePlan:
    return plan_pipeline_runs(TrainingPipeline.from_body(body), world, settings)


def _result_of(run: str) -> RunResult:
    """What run `run` recorded: RESULT, with the artifact under that run's path."""
    artifact = RESULT.artifact.model_copy(
        update={"uri": f"s3://conveyor/models/default/iris-classifier/runs/{run}/model.skops"}
    )
    return RESULT.model_copy(update={"run": run, "artifact": artifact})


def _registered(
    number: int, run: str, stage: str = "Candidate", history: tuple[str, ...] = ()
) -> RegisteredVersion:
    """A version as the operator registers it from run `run` (see `_world`)."""
    pipeline = TrainingPipeline.from_body(
        {**load_yaml_documents(EXAMPLES / "iris" / "trainingpipeline.yaml")[0]}
        | {"metadata": {"name": "iris", "namespace": "default"}}
    )
    body = build_model_version(pipeline, run, _result_of(run), number)
    body["spec"]["stage"] = stage
    body["status"] = {
        "stageHistory": [{"stage": s, "time": "2026-11-27T11:00:00Z"} for s in history]
    }
    return RegisteredVersion.from_body(body)


def _world(**kwargs: Any) -> PipelineWorld:
    """The world observed; the results of the versions' runs are there, as the handler reads
    them, unless `results` says otherwise."""
    defaults: dict[str, Any] = {"now": NOW, "snapshot": "snap1", "featureset": FEATURESET}
    versions = kwargs.get("versions", ())
    kwargs["results"] = {
        **{v.run: _result_of(v.run) for v in versions if v.body},
        **kwargs.get("results", {}),
    }
    return PipelineWorld(**{**defaults, **kwargs})


def _with_run(body: dict[str, Any], phase: str = "Running", run: str = "iris-r1") -> None:
    body.setdefault("status", {})["runs"] = [
        {"id": run, "trigger": {"type": "manual"}, "phase": phase, "snapshot": "snap1"}
    ]
    body["status"]["lastRunRequest"] = "now"
    body["status"]["specHash"] = spec_hash(body["spec"])


def test_a_request_starts_a_run_and_its_job(pipeline: dict[str, Any]) -> None:
    plan = plan_runs(_requested(pipeline), _world(), SETTINGS)
    (run,) = plan.outcome.fields["runs"]
    assert run["id"] == "iris-20261127-120000" and run["phase"] == "Running"
    assert run["snapshot"] == "snap1" and run["trigger"]["type"] == "manual"
    (job,) = plan.create_jobs
    assert job["metadata"]["name"] == run["id"]
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:6] == ["train", "--run", run["id"], "--snapshot", "snap1", "--phase"]
    assert plan.outcome.fields["lastRunRequest"] == "now"


def test_the_same_request_twice_starts_one_run(pipeline: dict[str, Any]) -> None:
    _requested(pipeline)
    _with_run(pipeline)
    plan = plan_runs(pipeline, _world(), SETTINGS)
    assert len(plan.outcome.fields["runs"]) == 1


def test_spec_change_starts_a_run_when_asked(pipeline: dict[str, Any]) -> None:
    pipeline["spec"]["runs"] = {"runOnSpecChange": True}
    (run,) = plan_runs(pipeline, _world(), SETTINGS).outcome.fields["runs"]
    assert run["trigger"] == {"type": "specChange", "reason": "the spec created (generation 1)"}


def test_forbid_skips_a_trigger_while_a_run_is_active(pipeline: dict[str, Any]) -> None:
    _with_run(pipeline)
    _requested(pipeline, "again")
    plan = plan_runs(
        pipeline, _world(jobs=[RunJob("iris-r1", "iris-r1", "all", "Active")]), SETTINGS
    )
    assert [r["id"] for r in plan.outcome.fields["runs"]] == ["iris-r1"]
    assert [e.reason for e in plan.outcome.events] == ["RunSkipped"]


def test_replace_cancels_the_active_run(pipeline: dict[str, Any]) -> None:
    pipeline["spec"]["runs"] = {"concurrencyPolicy": "Replace"}
    _with_run(pipeline)
    _requested(pipeline, "again")
    plan = plan_runs(
        pipeline, _world(jobs=[RunJob("iris-r1", "iris-r1", "all", "Active")]), SETTINGS
    )
    new, old = plan.outcome.fields["runs"]
    assert old["phase"] == "Cancelled" and new["phase"] == "Running"
    assert plan.delete_jobs == ["iris-r1"]


def test_a_run_waits_for_the_first_snapshot(pipeline: dict[str, Any]) -> None:
    plan = plan_runs(_requested(pipeline), _world(snapshot=None), SETTINGS)
    (run,) = plan.outcome.fields["runs"]
    assert run["phase"] == "Pending" and "to have a snapshot" in run["message"]
    assert plan.create_jobs == []


def test_a_failed_job_fails_the_run_with_the_pods_reason(pipeline: dict[str, Any]) -> None:
    _with_run(pipeline)
    job = RunJob(
        "iris-r1",
        "iris-r1",
        "all",
        "Failed",
        NOW,
        "OOMKilled",
        "the container exceeded its memory limit (OOMKilled)",
    )
    plan = plan_runs(pipeline, _world(jobs=[job]), SETTINGS)
    (run,) = plan.outcome.fields["runs"]
    assert run["phase"] == "Failed" and "OOMKilled" in run["message"]
    assert plan.create_versions == []
    degraded = next(c for c in plan.outcome.conditions if c.type == "Degraded")
    assert degraded.status == "True"


def test_a_job_failed_by_an_outage_runs_again_with_back_off(pipeline: dict[str, Any]) -> None:
    """S3 down longer than the Job's own pod retries: the run is not lost, its Job runs
    again after 30 s, 60 s, 120 s; then it fails for good."""
    job = RunJob("iris-r1", "iris-r1", "all", "Failed", NOW, "StorageUnavailable", "S3 503")
    _with_run(pipeline)
    waiting = plan_runs(pipeline, _world(jobs=[job], now=NOW + timedelta(seconds=10)), SETTINGS)
    (run,) = waiting.outcome.fields["runs"]
    assert run["phase"] == "Running" and waiting.delete_jobs == []
    assert "running it again at 2026-11-27T12:00:30Z (1 of 3)" in run["message"]
    again = plan_runs(pipeline, _world(jobs=[job], now=NOW + timedelta(seconds=30)), SETTINGS)
    (run,) = again.outcome.fields["runs"]
    assert (run["phase"], run["retries"]) == ("Running", 1) and again.delete_jobs == ["iris-r1"]
    assert [e.reason for e in again.outcome.events] == ["RunRetried"]
    pipeline["status"]["runs"][0]["retries"] = 3
    spent = plan_runs(pipeline, _world(jobs=[job], now=NOW + timedelta(hours=1)), SETTINGS)
    assert spent.outcome.fields["runs"][0]["phase"] == "Failed" and spent.delete_jobs == []


def test_a_failure_that_would_repeat_is_not_run_again(pipeline: dict[str, Any]) -> None:
    job = RunJob("iris-r1", "iris-r1", "all", "Failed", NOW, "InternalError", "a bug", "", True)
    _with_run(pipeline)
    plan = plan_runs(pipeline, _world(jobs=[job], now=NOW + timedelta(hours=1)), SETTINGS)
    assert plan.outcome.fields["runs"][0]["phase"] == "Failed" and plan.delete_jobs == []


def test_a_finished_run_registers_the_next_version(pipeline: dict[str, Any]) -> None:
    _with_run(pipeline)
    done = RunJob("iris-r1", "iris-r1", "all", "Succeeded", NOW)
    existing = [
        _registered(1, "iris-r0", "Production"),
        _registered(3, "iris-rx", "Archived"),
    ]
    plan = plan_runs(
        pipeline, _world(jobs=[done], results={"iris-r1": RESULT}, versions=existing), SETTINGS
    )
    (version,) = plan.create_versions
    assert version["metadata"]["name"] == "iris-classifier-v4"
    assert version["metadata"]["labels"]["conveyor.dev/run"] == "iris-r1"
    # Born protected: deleted before kopf first sees it, it still waits for the deletion handler.
    assert version["metadata"]["finalizers"] == ["conveyor.dev/finalizer"]
    assert version["spec"]["stage"] == "Candidate"
    assert version["spec"]["metrics"]["baseline_accuracy"] == 0.33
    assert version["spec"]["lineage"]["image"] == "conveyor:0.1.0"
    (run,) = plan.outcome.fields["runs"]
    assert run["phase"] == "Succeeded" and run["modelVersion"] == "iris-classifier-v4"


def test_a_restart_finds_the_runs_version_instead_of_a_new_number(pipeline: dict[str, Any]) -> None:
    _with_run(pipeline)
    done = RunJob("iris-r1", "iris-r1", "all", "Succeeded", NOW)
    mine = _registered(2, "iris-r1")
    plan = plan_runs(
        pipeline, _world(jobs=[done], results={"iris-r1": RESULT}, versions=[mine]), SETTINGS
    )
    assert plan.create_versions == []
    assert plan.outcome.fields["runs"][0]["modelVersion"] == "iris-classifier-v2"


def test_failed_gates_register_a_rejected_version(pipeline: dict[str, Any]) -> None:
    _with_run(pipeline)
    result = RESULT.model_copy(
        update={"passed": False, "rejection_reasons": ["accuracy 0.5 < 0.9"]}
    )
    done = RunJob("iris-r1", "iris-r1", "all", "Succeeded", NOW)
    plan = plan_runs(pipeline, _world(jobs=[done], results={"iris-r1": result}), SETTINGS)
    assert plan.create_versions[0]["spec"]["stage"] == "Rejected"
    assert plan.outcome.fields["runs"][0]["phase"] == "Rejected"
    assert "accuracy 0.5 < 0.9" in plan.outcome.fields["runs"][0]["message"]


def test_auto_policy_promotes_a_fresh_candidate_once(pipeline: dict[str, Any]) -> None:
    _with_run(pipeline, phase="Succeeded")
    fresh = _registered(2, "iris-r1")
    plan = plan_runs(pipeline, _world(versions=[fresh]), SETTINGS)
    assert plan.promote == ["iris-classifier-v2"]
    assert plan.outcome.fields["productionVersion"] == "iris-classifier-v2"
    demoted = _registered(2, "iris-r1", "Candidate", ("Candidate", "Production", "Archived"))
    assert plan_runs(pipeline, _world(versions=[demoted]), SETTINGS).promote == []


def test_manual_policy_never_promotes(pipeline: dict[str, Any]) -> None:
    pipeline["spec"]["promotion"] = {"policy": "manual"}
    _with_run(pipeline, phase="Succeeded")
    fresh = _registered(2, "iris-r1")
    assert plan_runs(pipeline, _world(versions=[fresh]), SETTINGS).promote == []


def test_champion_is_passed_to_the_trainer(pipeline: dict[str, Any]) -> None:
    champion = _registered(1, "iris-r0", "Production")
    plan = plan_runs(_requested(pipeline), _world(versions=[champion]), SETTINGS)
    args = plan.create_jobs[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--champion-uri") + 1] == champion.artifact_uri
    assert champion.artifact_uri.endswith("/runs/iris-r0/model.skops")


def test_parallel_search_runs_indexed_trials_then_a_final_job(pipeline: dict[str, Any]) -> None:
    pipeline["spec"]["search"]["parallelism"] = 3
    plan = plan_runs(_requested(pipeline), _world(), SETTINGS)
    (trials,) = plan.create_jobs
    assert trials["metadata"]["name"].endswith("-t") and trials["spec"]["completions"] == 3
    run_id = plan.outcome.fields["runs"][0]["id"]
    _with_run(pipeline, run=run_id)
    done = RunJob(f"{run_id}-t", run_id, "trials", "Succeeded", NOW + timedelta(seconds=5))
    (final,) = plan_runs(pipeline, _world(jobs=[done]), SETTINGS).create_jobs
    assert final["metadata"]["name"] == f"{run_id}-f"


def test_a_deleted_versions_number_is_never_given_again(pipeline: dict[str, Any]) -> None:
    _with_run(pipeline)
    pipeline["status"]["latestVersion"] = "iris-classifier-v5"  # v5 was deleted since
    done = RunJob("iris-r1", "iris-r1", "all", "Succeeded", NOW)
    existing = [_registered(4, "iris-r0", "Production")]
    plan = plan_runs(
        pipeline, _world(jobs=[done], results={"iris-r1": RESULT}, versions=existing), SETTINGS
    )
    assert plan.create_versions[0]["metadata"]["name"] == "iris-classifier-v6"


def test_the_version_is_registered_before_the_status_and_jobs_come_last(
    pipeline: dict[str, Any],
) -> None:
    # A restart between two writes must find the run's version by its label and its Job by
    # its name: so versions first, then the status that records the runs, then the Jobs.
    _with_run(pipeline)
    pending = {"id": "iris-r2", "trigger": {"type": "manual"}, "phase": "Pending"}
    pipeline["status"]["runs"].insert(0, pending)  # r1 finishes while r2 starts
    done = RunJob("iris-r1", "iris-r1", "all", "Succeeded", NOW)
    plan = plan_runs(pipeline, _world(jobs=[done], results={"iris-r1": RESULT}), SETTINGS)
    kinds = [type(action).__name__ for action in plan.actions()]
    assert kinds == ["Create", "WriteStatus", "GrantWorkloadAccess", "Create"]
    version, _, _, job = plan.actions()
    assert isinstance(version, Create) and version.resource.kind == "ModelVersion"
    assert version.on_conflict == "replan", "a number taken meanwhile is planned again"
    assert isinstance(job, Create) and job.resource.kind == "Job" and job.on_conflict == "keep"


def test_auto_promotion_patches_the_stage_before_the_status(pipeline: dict[str, Any]) -> None:
    _with_run(pipeline, phase="Succeeded")
    fresh = _registered(2, "iris-r1")
    promote, write = plan_runs(pipeline, _world(versions=[fresh]), SETTINGS).actions()
    assert isinstance(promote, Patch) and promote.name == "iris-classifier-v2"
    assert promote.body == {"spec": {"stage": "Production"}}
    assert isinstance(write, WriteStatus)


def test_an_unreadable_result_fails_the_run_and_says_why(pipeline: dict[str, Any]) -> None:
    _with_run(pipeline)
    done = RunJob("iris-r1", "iris-r1", "all", "Succeeded", NOW)
    problem = "RunResult s3://conveyor/x/result.json is malformed: image: Field required"
    plan = plan_runs(
        pipeline, _world(jobs=[done], unreadable_results={"iris-r1": problem}), SETTINGS
    )
    (run,) = plan.outcome.fields["runs"]
    assert run["phase"] == "Failed" and problem in run["message"]
    assert plan.create_versions == []
    assert [e.reason for e in plan.outcome.events] == ["RunFailed"]


def test_results_are_read_only_for_runs_whose_jobs_all_succeeded() -> None:
    jobs = [
        RunJob("a-t", "a", "trials", "Succeeded"),
        RunJob("a-f", "a", "final", "Active"),
        RunJob("b", "b", "all", "Succeeded"),
        RunJob("c", "c", "all", "Failed"),
    ]
    assert runs_to_collect(jobs) == ["b"]


def _featureset_with(rows: int) -> dict[str, Any]:
    return {**FEATURESET, "status": {"latestSnapshot": {"id": "snap1", "rows": rows}}}


def test_a_split_that_leaves_too_few_rows_fails_the_run_before_any_job(
    pipeline: dict[str, Any],
) -> None:
    pipeline["spec"]["split"] = {"testSize": 0.99}
    plan = plan_runs(_requested(pipeline), _world(featureset=_featureset_with(150)), SETTINGS)
    (run,) = plan.outcome.fields["runs"]
    assert run["phase"] == "Failed" and plan.create_jobs == []
    assert run["message"].startswith("Not started: spec.split.testSize: 0.99 of 150 rows")
    assert "(at most 0.96 here)" in run["message"]
    assert [e.reason for e in plan.outcome.events] == ["RunStarted", "RunFailed"]
    degraded = next(c for c in plan.outcome.conditions if c.type == "Degraded")
    assert degraded.status == "True" and "spec.split" in degraded.message


def test_a_target_with_one_class_fails_the_run_before_any_job(pipeline: dict[str, Any]) -> None:
    world = _world(featureset=_featureset_with(150), target_classes={"setosa": 150})
    plan = plan_runs(_requested(pipeline), world, SETTINGS)
    (run,) = plan.outcome.fields["runs"]
    assert run["phase"] == "Failed" and plan.create_jobs == []
    assert "the target has 1 class(es) in 150 rows" in run["message"]


def test_a_split_that_fits_starts_the_job(pipeline: dict[str, Any]) -> None:
    world = _world(featureset=_featureset_with(150), target_classes={"a": 50, "b": 50, "c": 50})
    plan = plan_runs(_requested(pipeline), world, SETTINGS)
    assert plan.outcome.fields["runs"][0]["phase"] == "Running" and len(plan.create_jobs) == 1


def _forged(number: int, run: str, stage: str = "Production") -> RegisteredVersion:
    """Written by hand: a real version's labels, another bucket's artifact, a zero digest."""
    real = _registered(number, run, stage)
    body = copy.deepcopy(dict(real.body))
    body["spec"]["artifact"] = {
        "uri": "s3://other-bucket/model.skops",
        "digest": "sha256:" + "0" * 64,
    }
    return RegisteredVersion.from_body(body)


def test_a_forged_production_version_is_never_the_champion(pipeline: dict[str, Any]) -> None:
    real = _registered(1, "iris-r0", "Production")
    forged = _forged(2, "iris-never-ran")
    for versions in ([real, forged], [forged, real]):  # whichever the API lists first
        plan = plan_runs(_requested(copy.deepcopy(pipeline)), _world(versions=versions), SETTINGS)
        args = plan.create_jobs[0]["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[args.index("--champion-uri") + 1] == real.artifact_uri
        assert plan.outcome.fields["productionVersion"] == "iris-classifier-v1"
        assert plan.outcome.fields["latestVersion"] == "iris-classifier-v1"


def test_a_forged_candidate_is_never_promoted(pipeline: dict[str, Any]) -> None:
    _with_run(pipeline, phase="Succeeded")  # iris-r1 is one of the pipeline's runs
    forged = _forged(2, "iris-r1", "Candidate")
    assert plan_runs(pipeline, _world(versions=[forged]), SETTINGS).promote == []


def test_a_forged_version_of_a_running_run_does_not_stand_in_for_it(
    pipeline: dict[str, Any],
) -> None:
    # Labelled with the run before the run finished: the run registers its own version, after
    # the number the forged one took.
    _with_run(pipeline)
    done = RunJob("iris-r1", "iris-r1", "all", "Succeeded", NOW)
    forged = _forged(7, "iris-r1", "Candidate")
    plan = plan_runs(
        pipeline, _world(jobs=[done], results={"iris-r1": RESULT}, versions=[forged]), SETTINGS
    )
    (version,) = plan.create_versions
    assert version["metadata"]["name"] == "iris-classifier-v8"
    assert version["spec"]["artifact"] == RESULT.artifact.to_wire()


@pytest.mark.parametrize(
    ("gates", "runs", "deadline"),
    [
        ({}, {}, 7200),
        ({"maxTrainingSeconds": 10}, {}, 610),
        ({"maxTrainingSeconds": 10}, {"activeDeadlineSeconds": 3600}, 3600),
    ],
)
def test_the_jobs_deadline_follows_from_max_training_seconds(
    pipeline: dict[str, Any], gates: dict[str, Any], runs: dict[str, Any], deadline: int
) -> None:
    pipeline["spec"]["gates"] = gates
    pipeline["spec"]["runs"] = runs
    (job,) = plan_runs(_requested(pipeline), _world(), SETTINGS).create_jobs
    assert job["spec"]["activeDeadlineSeconds"] == deadline


def test_serving_writes_come_after_the_status_that_records_a_failed_rollout(
    pipeline: dict[str, Any],
) -> None:
    # A restart between the two must remember the failure, not retry the broken version.
    plan = plan_runs(pipeline, _world(), SETTINGS)
    plan.serving_writes = [Patch(MODEL_VERSIONS, "anything", {})]
    kinds = [type(action).__name__ for action in plan.actions()]
    assert kinds.index("WriteStatus") < kinds.index("Patch")
