"""ModelVersion handlers: stages in effect, one Production per model, protected deletion."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from ..api.v1alpha1 import ModelVersion, TrainingPipeline
from ..api.v1alpha1.trainingpipeline import ServingState
from ..contracts.labels import LABEL_MODEL, LABEL_PIPELINE
from ..reconcile import parse_modelversion, reconcile_modelversion
from ..reconcile.modelversion import Sibling, VersionWorld
from ..reconcile.registry import RunRecord, recorded_version
from ..resources.kinds import MODEL_VERSIONS, TRAINING_PIPELINES
from .context import Context
from .driver import Controller
from .results import read_run_result, run_layout

__all__ = ["register_modelversion"]


def register_modelversion(registry: kopf.OperatorRegistry, context: Context) -> None:
    # Deleting versions are reconciled too: the version keeps the operator's finalizer while
    # it is Production, and its reconcile removes it (after the run's files, when asked) once
    # it may go. kopf runs no deletion handler, so a blocked deletion is no handler failure.
    controller = Controller(
        context,
        ModelVersion,
        parse=parse_modelversion,
        observe=lambda version: observe(context, version),
        reconcile=reconcile_modelversion,
        while_deleting=True,
    )
    controller.register(registry)
    controller.watch_deletions(registry)
    # What serves is the pipeline's to decide: its status.serving says which version serves.
    controller.watch_labelled_by(registry, TrainingPipeline, LABEL_PIPELINE)


def observe(context: Context, version: ModelVersion) -> VersionWorld:
    """What the version's run recorded, the other versions of the same model, and what its
    pipeline serves."""
    items = context.kube.list(
        MODEL_VERSIONS, version.namespace, selector=f"{LABEL_MODEL}={version.spec.model}"
    )
    siblings = [
        Sibling(i["metadata"]["name"], (i.get("spec") or {}).get("stage", "")) for i in items
    ]
    pipeline = context.kube.get(
        TRAINING_PIPELINES, version.namespace, version.spec.lineage.pipeline
    )
    status = (pipeline or {}).get("status") or {}
    serving = status.get("serving")
    return VersionWorld(
        now=context.clock(),
        record=observe_run(context, version, pipeline),
        siblings=siblings,
        bucket=context.settings.s3_bucket,
        serving=ServingState.model_validate(serving) if serving else None,
    )


def observe_run(
    context: Context, version: ModelVersion, pipeline: Mapping[str, Any] | None
) -> RunRecord:
    """The result of the run the version names, and the version its pipeline's status
    records for that run."""
    lineage = version.spec.lineage
    layout = run_layout(context, version.namespace, version.spec.model, lineage.run)
    recorded = recorded_version(pipeline, lineage.run)
    try:
        result = read_run_result(context, layout)
    except ValueError as error:  # not JSON, or not a RunResult
        return RunRecord.of(layout, unreadable=str(error), recorded_version=recorded)
    return RunRecord.of(layout, result=result, recorded_version=recorded)
