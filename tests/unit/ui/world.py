"""A small registry for the web page's unit tests: objects shaped as the API returns them, held
by a stand-in for `clients.kube.Kube` (get and list, the only calls the page makes), with
hostile text wherever the cluster lets a person write text."""

from __future__ import annotations

import copy
from typing import Any

from conveyor.contracts.layouts import RunLayout, SnapshotLayout
from conveyor.resources.kinds import Resource

NAMESPACE = "ml"
BUCKET = "conveyor"
SCRIPT = "<script>alert(1)</script>"
ATTRIBUTE = '"><img src=x onerror=alert(1)>'
HOSTILE = f"{SCRIPT}{ATTRIBUTE}<b>bold</b>"
SNAPSHOT = "f00d"
RUN = "iris-run-1"


class RegistryKube:
    """get/list over a dict of objects; `failure` makes every call raise it (the API down)."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = objects
        self.failure: Exception | None = None
        self.calls: list[tuple[str, str | None, str | None]] = []

    def get(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        self._called(resource, namespace, name)
        found = [o for o in self._of(resource, namespace) if o["metadata"]["name"] == name]
        return copy.deepcopy(found[0]) if found else None

    def list(
        self, resource: Resource, namespace: str | None = None, *, selector: str = ""
    ) -> list[dict[str, Any]]:
        self._called(resource, namespace, None)
        return copy.deepcopy(self._of(resource, namespace))

    def close(self) -> None:
        pass

    def _called(self, resource: Resource, namespace: str | None, name: str | None) -> None:
        self.calls.append((resource.plural, namespace, name))
        if self.failure is not None:
            raise self.failure

    def _of(self, resource: Resource, namespace: str | None) -> list[dict[str, Any]]:
        return [
            o
            for o in self.objects
            if o["kind"] == resource.kind and namespace in (None, o["metadata"]["namespace"])
        ]


def snapshot_layout(name: str = "iris") -> SnapshotLayout:
    return SnapshotLayout(BUCKET, NAMESPACE, name, SNAPSHOT)


def run_layout(model: str = "iris-classifier", run: str = RUN) -> RunLayout:
    return RunLayout(BUCKET, NAMESPACE, model, run)


def featureset(name: str = "iris", **status: Any) -> dict[str, Any]:
    layout = snapshot_layout(name)
    return {
        "apiVersion": "conveyor.dev/v1alpha1",
        "kind": "FeatureSet",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {"team": "ml"},
            "annotations": {"conveyor.dev/description": HOSTILE},
        },
        "spec": {
            "sources": [{"name": "flowers", "uri": f"s3://raw/{SCRIPT}.csv"}],
            "schema": {"target": "species", "entityKey": "flower_id"},
        },
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "SnapshotReady", "message": HOSTILE}
            ],
            "latestSnapshot": {
                "id": SNAPSHOT,
                "uri": layout.uri(layout.manifest),
                "rows": 150,
                "createdAt": "2026-12-07T10:00:00Z",
                "reportUrl": layout.uri(layout.report),
            },
            "snapshots": [{"id": SNAPSHOT, "uri": layout.uri(layout.manifest), "rows": 150}],
            "profile": {
                "columns": 5,
                "rejectedRows": 0,
                "maxDriftScore": 0.31,
                "driftedColumns": [f"petal_{SCRIPT}"],
            },
            **status,
        },
    }


def pipeline(name: str = "iris", model: str = "iris-classifier") -> dict[str, Any]:
    return {
        "apiVersion": "conveyor.dev/v1alpha1",
        "kind": "TrainingPipeline",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "featureSet": "iris",
            "model": {"name": model, "estimator": "RandomForestClassifier", "params": {}},
            "metric": "f1_macro",
            "split": {"strategy": "holdout", "testSize": 0.25, "seed": 42},
        },
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "Trained"}],
            "runs": [
                {
                    "id": RUN,
                    "phase": "Succeeded",
                    "trigger": {"type": "manual", "reason": HOSTILE},
                    "snapshot": SNAPSHOT,
                    "startTime": "2026-12-07T10:01:00Z",
                    "completionTime": "2026-12-07T10:02:00Z",
                    "bestScore": 0.97,
                    "modelVersion": f"{model}-v1",
                    "message": ATTRIBUTE,
                }
            ],
            "latestVersion": f"{model}-v1",
        },
    }


def version(
    model: str = "iris-classifier",
    number: int = 1,
    *,
    pipeline: str = "iris",
    report_uri: str | None = None,
    card_uri: str | None = None,
) -> dict[str, Any]:
    layout = run_layout(model)
    return {
        "apiVersion": "conveyor.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": f"{model}-v{number}", "namespace": NAMESPACE},
        "spec": {
            "model": model,
            "version": number,
            "stage": "Production",
            "task": "classification",
            "metric": "f1_macro",
            "metrics": {"f1_macro": 0.9736, "accuracy": 0.97, "baseline_f1_macro": 0.17},
            "params": {"n_estimators": 100},
            "artifact": {
                "uri": layout.uri(layout.model_file),
                "digest": "sha256:" + "0" * 64,
                "cardUri": card_uri or layout.uri(layout.card),
                "reportUri": report_uri or layout.uri(layout.report),
            },
            "lineage": {
                "pipeline": pipeline,
                "run": RUN,
                "featureSet": "iris",
                "snapshot": SNAPSHOT,
                "image": "conveyor:dev",
            },
            "gates": [{"name": "threshold:accuracy", "passed": True, "message": HOSTILE}],
        },
        "status": {
            "stage": "Production",
            "stageHistory": [
                {"stage": "Candidate", "time": "2026-12-07T10:02:00Z", "reason": "registered"},
                {"stage": "Production", "time": "2026-12-07T10:02:01Z", "reason": SCRIPT},
            ],
            "liveMetrics": {
                "windowSeconds": 3600,
                "predictions": 40,
                "labelledSamples": 30,
                "metrics": {"accuracy": 0.9, "f1_macro": 0.88},
                "drift": {f"col{ATTRIBUTE}": {"psi": 0.05, "ks": 0.1}},
                "sameRequests": [
                    {
                        "version": 2,
                        "labelledSamples": 25,
                        "metrics": {"f1_macro": 0.88},
                        "otherMetrics": {"f1_macro": 0.91},
                    }
                ],
            },
            "serving": {"deployment": "iris-classifier", "replicas": 2, "readyReplicas": 2},
        },
    }


CARD = {
    "model": "iris-classifier",
    "estimator": f"RandomForest{SCRIPT}",
    "baseline": {"f1_macro": 0.17, "accuracy": 0.33},
    "holdout": {
        "strategy": "holdout",
        "test_size": 0.25,
        "seed": 42,
        "stratified": True,
        "assigned_by": "flower_id",
        "rows": 38,
        "fingerprint": "0123456789abcdef",
    },
    "footprint": {
        "training_seconds": 3.2,
        "model_bytes": 123456,
        "onnx_bytes": None,
        "features": 5,
        "runtime": "sklearn",
        "latency_one_row_seconds": 0.00012,
        "latency_1000_rows_seconds": 0.004,
    },
}


def registry() -> list[dict[str, Any]]:
    """Two pipelines on one FeatureSet, a version each, and a FeatureSet with hostile text."""
    return [
        featureset("iris"),
        pipeline("iris", "iris-classifier"),
        pipeline("iris-logistic", "iris-logistic"),
        version("iris-classifier", 1, pipeline="iris"),
        version("iris-logistic", 1, pipeline="iris-logistic"),
    ]
