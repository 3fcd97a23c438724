"""ModelVersion handlers: stages in effect, one Production per model, protected deletion."""

from __future__ import annotations

from typing import Any

import kopf

from ..api.v1alpha1 import GROUP, VERSION, ModelVersion
from ..clients.s3 import StorageError
from ..contracts.labels import LABEL_MODEL
from ..reconcile import Invalid, parse_modelversion, plan_deletion, reconcile_modelversion
from ..reconcile.modelversion import Sibling, VersionWorld
from ..reconcile.registry import RunRecord, recorded_version, registration_problem
from ..resources.kinds import MODEL_VERSIONS, TRAINING_PIPELINES
from .context import Context
from .driver import Controller
from .results import read_run_result, run_layout

__all__ = ["register_modelversion"]


def register_modelversion(registry: kopf.OperatorRegistry, context: Context) -> None:
    # Deleting versions are reconciled too: setting spec.stage away from Production is what
    # lets a blocked deletion finish.
    controller = Controller(
        context,
        ModelVersion,
        parse=parse_modelversion,
        observe=lambda version: observe(context, version),
        reconcile=reconcile_modelversion,
        while_deleting=True,
    )
    controller.register(registry)

    @kopf.on.delete(GROUP, VERSION, ModelVersion.plural, registry=registry, id="protect")
    def protect(namespace: str, name: str, **_: Any) -> None:
        # kopf runs only deletion handlers on a deleting object: reconcile the stage first.
        if not controller.reconcile(namespace, name):
            return
        body = context.kube.get(MODEL_VERSIONS, namespace, name)
        if body is None:
            return
        version = parse_modelversion(body)
        if isinstance(version, Invalid):
            return  # not a registry entry: nothing to protect or clean up
        problem = registration_problem(body, observe_run(context, version))
        plan = plan_deletion(version, context.settings.s3_bucket, problem)
        if plan.blocked:
            kopf.warn(body, reason="DeletionBlocked", message=plan.blocked)
            # kopf keeps the finalizer and retries: the version stays until it stops serving.
            raise kopf.TemporaryError(plan.blocked, delay=15)
        if plan.warning:
            kopf.warn(body, reason="ArtifactsKept", message=plan.warning)
        if plan.delete_prefix:
            try:
                context.storage().delete_prefix(plan.bucket, plan.delete_prefix)
            except StorageError as error:
                raise kopf.TemporaryError(
                    f"Could not delete the artifacts under s3://{plan.bucket}/"
                    f"{plan.delete_prefix}: {error}",
                    delay=30,
                ) from error


def observe(context: Context, version: ModelVersion) -> VersionWorld:
    """What the version's run recorded, and the other versions of the same model."""
    items = context.kube.list(
        MODEL_VERSIONS, version.namespace, selector=f"{LABEL_MODEL}={version.spec.model}"
    )
    siblings = [
        Sibling(i["metadata"]["name"], (i.get("spec") or {}).get("stage", "")) for i in items
    ]
    return VersionWorld(
        now=context.clock(), record=observe_run(context, version), siblings=siblings
    )


def observe_run(context: Context, version: ModelVersion) -> RunRecord:
    """The result of the run the version names, and the version its pipeline's status
    records for that run."""
    lineage = version.spec.lineage
    layout = run_layout(context, version.namespace, version.spec.model, lineage.run)
    pipeline = context.kube.get(TRAINING_PIPELINES, version.namespace, lineage.pipeline)
    recorded = recorded_version(pipeline, lineage.run)
    try:
        result = read_run_result(context, layout)
    except ValueError as error:  # not JSON, or not a RunResult
        return RunRecord.of(layout, unreadable=str(error), recorded_version=recorded)
    return RunRecord.of(layout, result=result, recorded_version=recorded)
