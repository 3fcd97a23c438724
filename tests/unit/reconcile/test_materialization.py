"""Materialization decisions: create, follow, publish, fail, back off, retry, on request."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conveyor.api.v1alpha1 import FeatureSet
from conveyor.contracts.labels import MATERIALIZE_REQUEST
from conveyor.contracts.layouts import log_object_time, prediction_key, written_by
from conveyor.contracts.manifest import SnapshotManifest
from conveyor.reconcile import reconcile_featureset
from conveyor.reconcile.jobs import failure_from_output
from conveyor.reconcile.materialization import (
    FeatureSetWorld,
    MaterializationPlan,
    ObservedJob,
    logs_cutoff,
)
from conveyor.resources.jobs import materialize_job_name as job_name
from conveyor.resources.workloads import JobSettings
from tests.conftest import EXAMPLES, load_yaml_documents

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SETTINGS = JobSettings(
    image="conveyor:0.1.0",
    s3_endpoint="http://s3:9000",
    s3_region="us-east-1",
    s3_bucket="conveyor",
)
SNAPSHOT = "0123456789abcdef"
MANIFEST = SnapshotManifest.from_json(
    {
        "id": SNAPSHOT,
        "featureset": "iris",
        "namespace": "default",
        "uri": f"s3://conveyor/features/default/iris/snapshots/{SNAPSHOT}/",
        "rows": 150,
        "input_rows": 152,
        "created": "2026-11-27T11:59:00Z",
        "feature_columns": ["petal_area_cm2"],
        "source_fingerprint": "fp",
        "report": "s3://conveyor/x/report.html",
        "rejected": 2,
        "spec_hash": "abc",
        "transforms": "s3://conveyor/x/transforms.json",
        "transforms_digest": "sha256:0",
        "profile": "s3://conveyor/x/profile.json",
        "code_version": "0.1.0",
        "profile_summary": {
            "columns": 8,
            "nullCells": 0,
            "maxDriftScore": 0.01,
            "driftedColumns": [],
        },
    }
)


@pytest.fixture
def iris() -> dict[str, Any]:
    body = load_yaml_documents(EXAMPLES / "iris" / "featureset.yaml")[0]
    body["metadata"].update(
        namespace="default", generation=1, uid="u-1", creationTimestamp="2026-11-27T10:00:00Z"
    )
    return body


def _world(**kwargs: Any) -> FeatureSetWorld:
    defaults: dict[str, Any] = {
        "now": NOW,
        "snapshot_id": SNAPSHOT,
        "source_objects": 1,
        "source_fingerprint": "fp",
    }
    return FeatureSetWorld(**{**defaults, **kwargs})


def plan_materialization(
    body: dict[str, Any], world: FeatureSetWorld, settings: JobSettings
) -> MaterializationPlan:
    return reconcile_featureset(FeatureSet.from_body(body), world, settings)


def _condition(plan: Any, type_: str) -> Any:
    return next(c for c in plan.outcome.conditions if c.type == type_)


def test_new_definition_starts_one_job_named_after_the_snapshot(iris: dict[str, Any]) -> None:
    plan = plan_materialization(iris, _world(), SETTINGS)
    (job,) = plan.create
    assert job["metadata"]["name"] == "iris-mat-0123456789ab" == job_name("iris", SNAPSHOT, "all")
    assert job["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:3] == ["materialize", "--featureset-json-env", "CONVEYOR_FEATURESET"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    secrets = [e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"] if "valueFrom" in e]
    assert secrets == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
    assert _condition(plan, "Ready").reason == "Materializing"
    assert plan.outcome.fields["activeJob"] == job["metadata"]["name"]


def test_parallel_definition_runs_an_indexed_partition_job_first(iris: dict[str, Any]) -> None:
    iris["spec"]["materialization"] = {"parallelism": 3}
    (job,) = plan_materialization(iris, _world(), SETTINGS).create
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == 3
    assert job["metadata"]["name"].endswith("-p")
    done = ObservedJob(job["metadata"]["name"], SNAPSHOT, "partition", "Succeeded", NOW)
    (combine,) = plan_materialization(iris, _world(jobs=[done]), SETTINGS).create
    assert combine["metadata"]["name"].endswith("-c")
    assert "completionMode" not in combine["spec"]


def test_running_job_is_followed_not_duplicated(iris: dict[str, Any]) -> None:
    running = ObservedJob(job_name("iris", SNAPSHOT, "all"), SNAPSHOT, "all", "Active")
    plan = plan_materialization(iris, _world(jobs=[running]), SETTINGS)
    assert plan.create == [] and plan.delete == []
    assert _condition(plan, "Progressing").status == "True"


def test_existing_snapshot_is_published_to_status(iris: dict[str, Any]) -> None:
    plan = plan_materialization(iris, _world(manifest=MANIFEST), SETTINGS)
    assert plan.create == []
    fields = plan.outcome.fields
    assert fields["latestSnapshot"]["rows"] == 150
    assert fields["latestSnapshot"]["reportUrl"] == "s3://conveyor/x/report.html"
    assert fields["profile"]["rejectedRows"] == 2
    assert [s["id"] for s in fields["snapshots"]] == [SNAPSHOT]
    assert _condition(plan, "Ready").reason == "SnapshotReady"
    assert [e.reason for e in plan.outcome.events] == ["Materialized"]


def test_a_changed_definition_cancels_the_stale_job(iris: dict[str, Any]) -> None:
    stale = ObservedJob("iris-mat-ffffffffffff", "ffffffffffffffff", "all", "Active")
    plan = plan_materialization(iris, _world(jobs=[stale]), SETTINGS)
    assert plan.delete == ["iris-mat-ffffffffffff"]
    assert len(plan.create) == 1


def test_no_source_object_says_where_it_looked(iris: dict[str, Any]) -> None:
    message = "No object matches s3://conveyor-raw/iris/*.csv: upload data there"
    plan = plan_materialization(
        iris, _world(snapshot_id=None, listing_error=("SourceNotFound", message)), SETTINGS
    )
    ready = _condition(plan, "Ready")
    assert (ready.status, ready.reason) == ("False", "SourceNotFound")
    assert "s3://conveyor-raw/iris/*.csv" in ready.message and plan.create == []


def test_too_many_rejects_is_not_retried_until_asked(iris: dict[str, Any]) -> None:
    failed = ObservedJob(
        job_name("iris", SNAPSHOT, "all"),
        SNAPSHOT,
        "all",
        "Failed",
        NOW - timedelta(hours=5),
        "TooManyRejects",
        "31 of 150 rows (20.7%) broke the schema (max 2%)",
        retryable=False,
    )
    plan = plan_materialization(iris, _world(jobs=[failed]), SETTINGS)
    ready = _condition(plan, "Ready")
    assert (ready.status, ready.reason) == ("False", "TooManyRejects")
    assert "31 of 150 rows" in ready.message and plan.delete == [] and plan.create == []
    asked = copy.deepcopy(iris)
    asked["metadata"]["annotations"] = {"conveyor.dev/materialize-requested": "now"}
    asked["status"] = {"failures": 1}
    plan = plan_materialization(asked, _world(jobs=[failed]), SETTINGS)
    assert plan.delete == [failed.name]  # removed, then recreated on the next pass
    assert plan.outcome.fields["lastMaterializeRequest"] == "now"


def test_transient_failure_backs_off_then_retries(iris: dict[str, Any]) -> None:
    failed = ObservedJob(
        job_name("iris", SNAPSHOT, "all"),
        SNAPSHOT,
        "all",
        "Failed",
        NOW - timedelta(seconds=10),
        "StorageUnavailable",
        "S3 is down",
    )
    iris["status"] = {"failures": 1}
    plan = plan_materialization(iris, _world(jobs=[failed]), SETTINGS)
    assert (
        plan.delete == []
        and "retrying at 2026-11-27T12:00:20Z" in _condition(plan, "Ready").message
    )
    later = _world(jobs=[failed], now=NOW + timedelta(seconds=25))
    plan = plan_materialization(iris, later, SETTINGS)
    assert plan.delete == [failed.name] and plan.outcome.fields["failures"] == 2


def test_failure_keeps_the_previous_snapshot_ready(iris: dict[str, Any]) -> None:
    iris["status"] = {"latestSnapshot": {"id": "older", "uri": "s3://conveyor/o/", "rows": 9}}
    failed = ObservedJob(
        job_name("iris", SNAPSHOT, "all"),
        SNAPSHOT,
        "all",
        "Failed",
        NOW,
        "SchemaMismatch",
        "source column 'x' not found",
    )
    plan = plan_materialization(iris, _world(jobs=[failed]), SETTINGS)
    assert _condition(plan, "Ready").status == "True"
    assert _condition(plan, "Degraded").reason == "SchemaMismatch"


def test_schedule_fires_once_per_fire_time(iris: dict[str, Any]) -> None:
    iris["spec"]["materialization"] = {"schedule": "0 * * * *"}
    plan = plan_materialization(iris, _world(manifest=MANIFEST), SETTINGS)
    assert plan.outcome.fields["lastScheduledTime"] == "2026-11-27T12:00:00Z"
    iris["status"] = {"lastScheduledTime": "2026-11-27T12:00:00Z"}
    plan = plan_materialization(iris, _world(manifest=MANIFEST), SETTINGS)
    assert "lastScheduledTime" not in plan.outcome.fields


def parse_job_result(text: str) -> tuple[str, str]:
    failure = failure_from_output(text)
    return failure.reason, failure.message


def test_parse_job_result_reads_the_last_json_line() -> None:
    text = 'reading...\n{"ok": false, "reason": "SourceUnreadable", "message": "bad gzip"}\n'
    assert parse_job_result(text) == ("SourceUnreadable", "bad gzip")
    assert parse_job_result("Traceback ...\nMemoryError") == ("JobFailed", "MemoryError")


def _failed(reason: str, retryable: bool, minutes_ago: int = 60) -> ObservedJob:
    return ObservedJob(
        job_name("iris", SNAPSHOT, "all"),
        SNAPSHOT,
        "all",
        "Failed",
        NOW - timedelta(minutes=minutes_ago),
        reason,
        "what the program said",
        retryable=retryable,
    )


@pytest.mark.parametrize(
    ("reason", "retryable"),
    [
        ("SourceNotFound", False),  # new data changes the snapshot id: a new Job, not a retry
        ("SchemaMismatch", False),
        ("StorageAccessDenied", True),  # fixing the credentials Secret needs no new request
        ("StorageUnavailable", True),
    ],
)
def test_the_programs_verdict_decides_the_retry(
    iris: dict[str, Any], reason: str, retryable: bool
) -> None:
    iris["status"] = {"failures": 1}
    plan = plan_materialization(iris, _world(jobs=[_failed(reason, retryable)]), SETTINGS)
    assert (plan.delete == [job_name("iris", SNAPSHOT, "all")]) is retryable
    if not retryable:
        assert "request a new materialization" in _condition(plan, "Ready").message


def test_jobs_go_after_the_namespace_has_its_access_and_the_status_last(
    iris: dict[str, Any],
) -> None:
    stale = ObservedJob("iris-mat-ffffffffffff", "ffffffffffffffff", "all", "Active")
    kinds = [
        type(a).__name__
        for a in plan_materialization(iris, _world(jobs=[stale]), SETTINGS).actions()
    ]
    assert kinds == ["Delete", "GrantWorkloadAccess", "Create", "WriteStatus"]
    published = plan_materialization(iris, _world(manifest=MANIFEST), SETTINGS).actions()
    assert [type(a).__name__ for a in published] == ["WriteStatus"]


def test_no_matching_object_is_reported_with_the_uris_it_looked_at(iris: dict[str, Any]) -> None:
    plan = plan_materialization(iris, _world(snapshot_id=None, source_objects=0), SETTINGS)
    ready = _condition(plan, "Ready")
    assert (ready.status, ready.reason) == ("False", "SourceNotFound")
    assert iris["spec"]["sources"][0]["uri"] in ready.message and plan.create == []


# The prediction logs' bound ---------------------------------------------------------------------


def test_arriving_prediction_logs_wait_for_the_next_asked_materialization(
    iris: dict[str, Any],
) -> None:
    """Logs arrive every few seconds: a snapshot takes those written by the bound in status,
    which moves to the present only when a materialization is asked for."""
    earlier = NOW - timedelta(hours=2)
    iris["status"] = {"logsReadUntil": "2026-11-27T10:00:00Z"}
    assert logs_cutoff(FeatureSet.from_body(iris), NOW) == earlier
    iris["metadata"]["annotations"] = {MATERIALIZE_REQUEST: "retrain-1"}
    asked = logs_cutoff(FeatureSet.from_body(iris), NOW + timedelta(microseconds=5))
    assert asked == NOW  # whole seconds, as status keeps it
    iris["status"]["lastMaterializeRequest"] = "retrain-1"
    assert logs_cutoff(FeatureSet.from_body(iris), NOW) == earlier
    del iris["spec"]["predictionLogs"]
    assert logs_cutoff(FeatureSet.from_body(iris), NOW) is None


def test_the_job_reads_the_logs_the_operator_listed(iris: dict[str, Any]) -> None:
    plan = plan_materialization(iris, _world(logs_until=NOW), SETTINGS)
    assert plan.outcome.fields["logsReadUntil"] == "2026-11-27T12:00:00Z"
    args = plan.create[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--logs-until") + 1] == "2026-11-27T12:00:00+00:00"


def test_log_objects_are_bounded_by_the_time_in_their_key() -> None:
    when = datetime(2026, 11, 27, 11, 59, 59, 250_000, tzinfo=UTC)
    key = prediction_key("ml", "iris", 3, when, "iris-7f9c-x2", 12)
    assert log_object_time(key) == when
    assert written_by(key, NOW) and not written_by(key, when - timedelta(microseconds=1))
    assert written_by("logs/ml/predictions/model=iris/legacy.jsonl.gz", NOW)


def test_the_leader_is_published_with_an_event_when_it_changes(iris: dict[str, Any]) -> None:
    from tests.unit.reconcile.test_leader import version

    versions = [
        version("forest-v1", pipeline="iris", score=0.94, minute=1),
        version("logistic-v1", pipeline="iris-logistic", score=0.97, minute=2),
    ]
    plan = plan_materialization(iris, _world(manifest=MANIFEST, versions=versions), SETTINGS)
    leader = plan.outcome.fields["leader"]
    assert (leader["version"], leader["pipeline"], leader["compared"]) == (
        "logistic-v1",
        "iris-logistic",
        2,
    )
    assert "LeaderChanged" in [e.reason for e in plan.outcome.events]
    iris["status"] = {"leader": leader}
    again = plan_materialization(iris, _world(manifest=MANIFEST, versions=versions), SETTINGS)
    assert "LeaderChanged" not in [e.reason for e in again.outcome.events]
    # A source that cannot be listed does not hide which model leads.
    failed = plan_materialization(
        iris, _world(listing_error=("AccessDenied", "no"), versions=versions), SETTINGS
    )
    assert failed.outcome.fields["leader"]["version"] == "logistic-v1"
    assert plan_materialization(iris, _world(), SETTINGS).outcome.fields["leader"] is None
