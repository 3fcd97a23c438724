"""The pure builder of a ModelVersion: the registry entry of one finished run."""

from __future__ import annotations

from typing import Any

from ..api.v1alpha1 import API_VERSION, TrainingPipeline
from ..contracts.labels import (
    FINALIZER,
    LABEL_FEATURESET,
    LABEL_MODEL,
    LABEL_PIPELINE,
    LABEL_RUN,
)
from ..contracts.results import RunResult

__all__ = ["build_model_version", "registry_spec", "version_name"]


def version_name(model: str, number: int) -> str:
    return f"{model}-v{number}"


def registry_spec(result: RunResult) -> dict[str, Any]:
    """The registry fields of the version a run registers: everything in its spec but the
    number and the stages, all taken from the run's result. What a ModelVersion claims is
    checked against this (reconcile/registry.py)."""
    metrics = {k: float(v) for k, v in result.metrics.items() if v is not None}
    metrics.update({f"baseline_{k}": float(v) for k, v in result.baseline.items() if v is not None})
    return {
        "model": result.model,
        "artifact": result.artifact.to_wire(),
        "task": result.task,
        "metric": result.metric,
        "metrics": metrics,
        "params": result.params,
        "lineage": {
            "pipeline": result.pipeline,
            "run": result.run,
            "featureSet": result.featureset,
            "snapshot": result.snapshot,
            "image": result.image,
            "trainedAt": result.model_dump(mode="json", include={"finished_at"})["finished_at"],
            **({"holdout": result.holdout} if result.holdout else {}),
        },
        "gates": [gate.to_wire() for gate in result.gates],
    }


def build_model_version(
    pipeline: TrainingPipeline, run: str, result: RunResult, number: int
) -> dict[str, Any]:
    """Version `number` of the pipeline's model, from the run's result: Candidate when every
    gate passed, else Rejected. Labelled with its run, so a restart finds it again, and its
    FeatureSet, whose leader it may be.

    It is born with the operator's finalizer: kopf would add it only when it first handles the
    object, and a version deleted before that would vanish without its deletion handler (no
    Production check, `deleteArtifacts` ignored)."""
    model = pipeline.spec.model.name
    return {
        "apiVersion": API_VERSION,
        "kind": "ModelVersion",
        "metadata": {
            "name": version_name(model, number),
            "namespace": pipeline.namespace,
            "labels": {
                LABEL_MODEL: model,
                LABEL_PIPELINE: pipeline.name,
                LABEL_RUN: run,
                LABEL_FEATURESET: result.featureset,
            },
            "finalizers": [FINALIZER],
        },
        "spec": {
            **registry_spec(result),
            "version": number,
            "stage": "Candidate" if result.passed else "Rejected",
        },
    }
