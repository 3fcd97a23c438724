"""The wire between the operator and its programs: what one side builds, the other parses."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from conveyor.api.v1alpha1 import FeatureSet, TrainingPipeline
from conveyor.contracts.invocations import MaterializeArgs, TrainArgs, object_from_env
from conveyor.contracts.layouts import PredictionLogLayout, RunLayout, SnapshotLayout
from conveyor.contracts.results import JobFailure, RunResult, parse_failure
from conveyor.contracts.wire import WireError
from conveyor.errors import SettingsError
from conveyor.resources.jobs import build_materialize_job, build_training_job
from conveyor.resources.workloads import JobSettings
from tests.conftest import EXAMPLES, load_yaml_documents

SETTINGS = JobSettings("conveyor:0.1.0", "http://s3:9000", "us-east-1", "conveyor")


def _example(name: str, **status: Any) -> dict[str, Any]:
    body = load_yaml_documents(EXAMPLES / "iris" / name)[0]
    body["metadata"].update(namespace="team-a", uid="u-1", generation=1)
    body["status"] = status
    return body


def _container(job: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = job["spec"]["template"]["spec"]["containers"][0]
    return container


def _env(job: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in _container(job)["env"] if "value" in e}


def test_the_materialize_job_is_the_invocation_the_program_parses() -> None:
    featureset = FeatureSet.from_body(
        _example("featureset.yaml", latestSnapshot={"id": "older", "uri": "s3://c/o/", "rows": 1})
    )
    featureset.spec.materialization.parallelism = 3
    job = build_materialize_job(featureset, "0123456789abcdef", "partition", SETTINGS)
    command, *argv = _container(job)["args"]
    assert command == "materialize"
    parsed = MaterializeArgs.parse(argv)
    assert parsed == MaterializeArgs(phase="partition", partitions=3, previous_snapshot="older")
    name, namespace, spec = object_from_env(_env(job), parsed.featureset_env, "FeatureSet")
    assert (name, namespace) == ("iris", "team-a")
    assert spec == featureset.spec.to_wire()


def test_the_training_job_is_the_invocation_the_program_parses() -> None:
    pipeline = TrainingPipeline.from_body(_example("trainingpipeline.yaml"))
    featureset = _example("featureset.yaml")
    champion = ("s3://conveyor/models/team-a/iris/runs/r0/model.skops", "sha256:" + "2" * 64)
    job = build_training_job(
        pipeline,
        run="iris-r1",
        snapshot="snap1",
        phase="all",
        featureset=featureset,
        champion=champion,
        settings=SETTINGS,
    )
    command, *argv = _container(job)["args"]
    assert command == "train"
    assert TrainArgs.parse(argv) == TrainArgs(
        run="iris-r1", snapshot="snap1", champion_uri=champion[0], champion_digest=champion[1]
    )
    env = _env(job)
    assert object_from_env(env, "CONVEYOR_PIPELINE", "TrainingPipeline")[2] == (
        pipeline.spec.to_wire()
    )
    assert object_from_env(env, "CONVEYOR_FEATURESET", "FeatureSet")[2] == featureset["spec"]
    assert env["CONVEYOR_S3_BUCKET"] == "conveyor" and env["CONVEYOR_IMAGE"] == "conveyor:0.1.0"


def test_a_flag_the_program_does_not_know_is_refused() -> None:
    with pytest.raises(argparse.ArgumentError):
        MaterializeArgs.parse(["--featureset-json-env", "X", "--phase", "everything"])


def test_an_object_missing_from_the_environment_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="Setting 'CONVEYOR_PIPELINE' is missing"):
        object_from_env({}, "CONVEYOR_PIPELINE", "TrainingPipeline")
    with pytest.raises(SettingsError, match=r"has no metadata\.name"):
        object_from_env({"CONVEYOR_PIPELINE": '{"spec": {}}'}, "CONVEYOR_PIPELINE", "pipeline")


def test_a_failure_round_trips_with_the_programs_verdict() -> None:
    failure = JobFailure(reason="TooManyRejects", message="31 of 150 rows", retryable=False)
    line = json.dumps(failure.to_json())
    assert json.loads(line) == {
        "ok": False,
        "reason": "TooManyRejects",
        "message": "31 of 150 rows",
        "retryable": False,
    }
    assert parse_failure(f"progress...\n{line}\n") == failure
    assert parse_failure('{"ok": true, "snapshot": {}}') is None


def test_a_result_without_its_required_keys_names_them() -> None:
    with pytest.raises(WireError) as caught:
        RunResult.from_json({"run": "r"}, source="s3://conveyor/r/result.json")
    text = str(caught.value)
    assert "RunResult s3://conveyor/r/result.json is malformed" in text
    assert "artifact: Field required" in text and "passed: Field required" in text


def test_layouts_spell_each_key_once_for_every_side() -> None:
    run = RunLayout("conveyor", "team-a", "iris-classifier", "iris-r1")
    assert run.result == "models/team-a/iris-classifier/runs/iris-r1/result.json"
    assert run.holds("s3://conveyor/models/team-a/iris-classifier/runs/iris-r1/model.skops")
    assert not run.holds("s3://conveyor/models/team-a/iris-classifier/runs/iris-r10/model.skops")
    snapshot = SnapshotLayout("conveyor", "team-a", "iris", "0123")
    assert snapshot.manifest == "features/team-a/iris/snapshots/0123/manifest.json"
    assert snapshot.raw == "features/team-a/iris/snapshots/0123/raw/"
    logs = PredictionLogLayout("ml", "iris")
    assert logs.predictions == "logs/ml/predictions/model=iris/"
    assert logs.feedback == "logs/ml/feedback/model=iris/"
