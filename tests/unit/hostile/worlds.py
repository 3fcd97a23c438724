"""Each kind's object through the operator's own path — parse, then the pure reconcile over a
synthetic observed world in which a valid object would start work — summed up as a `Verdict`:
the Ready condition and the children the plan would create.

The worlds are the unit tests' (tests/unit/reconcile): a FeatureSet whose sources list one
object and no snapshot yet, a TrainingPipeline asked to run with its FeatureSet's snapshot there,
a ModelVersion whose run recorded it, a RetrainPolicy whose pipeline exists. A hostile object
must come out not Ready, with the field named, and nothing created.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from conveyor.contracts.layouts import RunLayout
from conveyor.contracts.results import RunResult
from conveyor.reconcile import (
    Invalid,
    Plan,
    parse_featureset,
    parse_modelversion,
    parse_retrainpolicy,
    parse_trainingpipeline,
    reconcile_featureset,
    reconcile_modelversion,
    reconcile_retrainpolicy,
    reconcile_trainingpipeline,
)
from conveyor.reconcile.common import Create
from conveyor.reconcile.materialization import FeatureSetWorld
from conveyor.reconcile.modelversion import VersionWorld
from conveyor.reconcile.pipeline_world import PipelineWorld
from conveyor.reconcile.registry import RunRecord
from conveyor.reconcile.retrainpolicy import PolicyWorld
from conveyor.resources.workloads import JobSettings
from tests.conftest import EXAMPLES, load_yaml_documents

__all__ = ["KINDS", "NOW", "Verdict", "example", "verdict"]

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SETTINGS = JobSettings("conveyor:0.1.0", "http://s3:9000", "us-east-1", "conveyor")
RUN = "iris-r1"


@cache
def _example(kind: str) -> dict[str, Any]:
    name = {
        "FeatureSet": "featureset.yaml",
        "TrainingPipeline": "trainingpipeline.yaml",
        "RetrainPolicy": "retrainpolicy.yaml",
    }[kind]
    body: dict[str, Any] = load_yaml_documents(EXAMPLES / "iris" / name)[0]
    body["metadata"].update(
        namespace="default",
        generation=1,
        uid="u-1",
        creationTimestamp="2026-11-27T11:00:00Z",
    )
    if kind == "TrainingPipeline":
        body["metadata"]["annotations"] = {"conveyor.dev/run-requested": "now"}
    return body


def _result() -> RunResult:
    return RunResult.from_json(
        {
            "run": RUN,
            "model": "iris-classifier",
            "pipeline": "iris",
            "featureset": "iris",
            "snapshot": "snap1",
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
                "uri": f"s3://conveyor/models/default/iris-classifier/runs/{RUN}/model.skops",
                "digest": "sha256:" + "0" * 64,
            },
        }
    )


@cache
def _modelversion() -> dict[str, Any]:
    from conveyor.api.v1alpha1 import TrainingPipeline
    from conveyor.resources.modelversion import build_model_version

    pipeline = TrainingPipeline.from_body(_example("TrainingPipeline"))
    body = build_model_version(pipeline, RUN, _result(), 1)
    body["metadata"].update(generation=1)
    return body


def example(kind: str) -> dict[str, Any]:
    """A fresh copy of the iris example of `kind`, as the API server would hand it over."""
    if kind == "ModelVersion":
        return copy.deepcopy(_modelversion())
    return copy.deepcopy(_example(kind))


KINDS = ("FeatureSet", "TrainingPipeline", "ModelVersion", "RetrainPolicy")


@dataclass(frozen=True)
class Verdict:
    """What the operator would decide about one object."""

    ready: str
    """The Ready condition's status ("" when the outcome has none)."""
    reason: str
    message: str
    creates: tuple[str, ...]
    """The kinds of the children the plan would create, in order."""
    conditions: tuple[str, ...]

    @property
    def refused(self) -> bool:
        return self.ready == "False" and not self.creates


def _plan(kind: str, body: Mapping[str, Any]) -> Plan:
    if kind == "FeatureSet":
        featureset = parse_featureset(body)
        if isinstance(featureset, Invalid):
            return featureset.plan()
        world = FeatureSetWorld(
            now=NOW, snapshot_id="snap1", source_objects=1, source_fingerprint="fp1"
        )
        return reconcile_featureset(featureset, world, SETTINGS)
    if kind == "TrainingPipeline":
        pipeline = parse_trainingpipeline(body)
        if isinstance(pipeline, Invalid):
            return pipeline.plan()
        pipeline_world = PipelineWorld(now=NOW, snapshot="snap1", featureset=_example("FeatureSet"))
        return reconcile_trainingpipeline(pipeline, pipeline_world, SETTINGS)
    if kind == "ModelVersion":
        version = parse_modelversion(body)
        if isinstance(version, Invalid):
            return version.plan()
        layout = RunLayout("conveyor", "default", "iris-classifier", RUN)
        record = RunRecord.of(layout, result=_result(), recorded_version="iris-classifier-v1")
        return reconcile_modelversion(
            version, VersionWorld(now=NOW, record=record, bucket="conveyor")
        )
    if kind == "RetrainPolicy":
        policy = parse_retrainpolicy(body)
        if isinstance(policy, Invalid):
            return policy.plan()
        pipeline_body = _example("TrainingPipeline")
        world = PolicyWorld(
            now=NOW,
            pipeline={**pipeline_body, "status": {"productionVersion": "iris-classifier-v1"}},
            featureset={"metadata": {"name": "iris", "namespace": "default"}, "status": {}},
        )
        return reconcile_retrainpolicy(policy, world)
    raise ValueError(f"unknown kind {kind!r}")


def verdict(kind: str, body: Mapping[str, Any]) -> Verdict:
    """`body` through parse and reconcile, as the handler's driver runs them."""
    plan = _plan(kind, body)
    ready = next((c for c in plan.outcome.conditions if c.type == "Ready"), None)
    creates = tuple(
        str(action.resource.kind) for action in plan.actions() if isinstance(action, Create)
    )
    return Verdict(
        ready=ready.status if ready else "",
        reason=ready.reason if ready else "",
        message=ready.message if ready else "",
        creates=creates,
        conditions=tuple(c.type for c in plan.outcome.conditions),
    )
