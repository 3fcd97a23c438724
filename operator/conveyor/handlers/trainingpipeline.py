"""TrainingPipeline handlers: check the pipeline, observe its runs, act on the plan."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import kopf
from kubernetes.client import ApiException

from ..api.v1alpha1 import GROUP, VERSION, FeatureSet, ModelVersion, RetrainPolicy, TrainingPipeline
from ..clients.s3 import StorageError
from ..errors import ClusterUnavailable
from ..metrics import reconcile_timer
from ..reconcile import Outcome, reconcile_trainingpipeline
from ..reconcile.runs import (
    LABEL_MODEL,
    LABEL_PHASE,
    LABEL_PIPELINE,
    LABEL_RUN,
    PipelineWorld,
    RegisteredVersion,
    RunJob,
    plan_runs,
)
from .common import Context, apply_outcome, on_every_change, reconcile_fresh
from .jobs import create_jobs, delete_jobs, job_failure, job_state, list_jobs
from .retrainpolicy import reconcile_policy

__all__ = [
    "reconcile_pipeline_by_name",
    "register_trainingpipeline",
    "run_artifacts_prefix",
]


def register_trainingpipeline(registry: kopf.OperatorRegistry, context: Context) -> None:
    @on_every_change(registry, TrainingPipeline, context.settings.resync_seconds)
    def trainingpipeline(namespace: str, name: str, **_: Any) -> None:
        reconcile_pipeline_by_name(context, namespace, name)

    @kopf.index(GROUP, VERSION, RetrainPolicy.plural, registry=registry, id="policies_by_pipeline")
    def policies_by_pipeline(
        namespace: str, name: str, spec: kopf.Spec, **_: Any
    ) -> dict[tuple[str, str], str]:
        return {(namespace, spec.get("pipeline", "")): name}

    @kopf.on.event(GROUP, VERSION, TrainingPipeline.plural, registry=registry)
    def pipeline_changed(
        namespace: str,
        name: str,
        policies_by_pipeline: kopf.Index[tuple[str, str], str],
        **_: Any,
    ) -> None:
        for policy in policies_by_pipeline.get((namespace, name), []):
            body = context.kube.get(RetrainPolicy, namespace, policy)
            if body is not None:
                reconcile_policy(context, body)

    @kopf.on.event("batch", "v1", "jobs", registry=registry, labels={LABEL_PIPELINE: kopf.PRESENT})
    def training_job_changed(namespace: str, labels: kopf.Labels, **_: Any) -> None:
        reconcile_pipeline_by_name(context, namespace, labels[LABEL_PIPELINE])

    # A version's stage moves (policy, a person, a rollback): the pipeline reports it at once.
    @kopf.on.event(
        GROUP,
        VERSION,
        ModelVersion.plural,
        registry=registry,
        labels={LABEL_PIPELINE: kopf.PRESENT},
    )
    def version_changed(namespace: str, labels: kopf.Labels, **_: Any) -> None:
        reconcile_pipeline_by_name(context, namespace, labels[LABEL_PIPELINE])


def reconcile_pipeline_by_name(context: Context, namespace: str, name: str) -> None:
    """Reconcile the pipeline as it is now, one reconcile at a time per pipeline."""
    reconcile_fresh(context, TrainingPipeline, namespace, name, _reconcile)


def _reconcile(context: Context, body: Mapping[str, Any]) -> None:
    with reconcile_timer(TrainingPipeline.kind_name):
        namespace = body["metadata"]["namespace"]
        featureset_name = (body.get("spec") or {}).get("featureSet", "")
        featureset = context.kube.get(FeatureSet, namespace, featureset_name)
        checked = reconcile_trainingpipeline(body, featureset)
        if not checked.ready:
            apply_outcome(context, TrainingPipeline, body, checked)
            return
        world = observe(context, body, featureset)
        plan = plan_runs(body, world, context.job_settings)
        # Order matters for restarts: versions first (found again by their run label), then the
        # status that records runs, then the Jobs named after those runs.
        _create_versions(context, namespace, plan.create_versions)
        for name in plan.promote:
            _set_stage(context, namespace, name, "Production")
        outcome = Outcome(
            conditions=[*checked.conditions[:1], *plan.outcome.conditions[1:]],
            fields={**checked.fields, **plan.outcome.fields},
            events=[*checked.events, *plan.outcome.events],
        )
        apply_outcome(context, TrainingPipeline, body, outcome)
        delete_jobs(context, namespace, plan.delete_jobs)
        create_jobs(context, namespace, plan.create_jobs)


def run_artifacts_prefix(namespace: str, model: str, run: str) -> str:
    return f"models/{namespace}/{model}/runs/{run}/"


def observe(
    context: Context, body: Mapping[str, Any], featureset: Mapping[str, Any] | None
) -> PipelineWorld:
    pipeline = TrainingPipeline.from_body(body)
    namespace, model = pipeline.namespace, pipeline.spec.model.name
    jobs = []
    for job in list_jobs(context, namespace, f"{LABEL_PIPELINE}={pipeline.name}"):
        labels = job.metadata.labels or {}
        state, finished = job_state(job)
        reason, message = job_failure(context, namespace, job) if state == "Failed" else ("", "")
        jobs.append(
            RunJob(
                job.metadata.name,
                labels.get(LABEL_RUN, ""),
                labels.get(LABEL_PHASE, "all"),
                state,
                finished,
                reason,
                message,
            )
        )
    results = {}
    finished_runs = {job.run for job in jobs if job.state == "Succeeded"} - {
        job.run for job in jobs if job.state != "Succeeded"
    }
    for run in finished_runs:
        result = _read_result(context, namespace, model, run)
        if result is not None:
            results[run] = result
    snapshot = ((featureset or {}).get("status") or {}).get("latestSnapshot") or {}
    return PipelineWorld(
        now=context.clock(),
        snapshot=snapshot.get("id"),
        featureset=featureset,
        jobs=jobs,
        results=results,
        versions=list_versions(context, namespace, model),
    )


def _read_result(context: Context, namespace: str, model: str, run: str) -> dict[str, Any] | None:
    key = run_artifacts_prefix(namespace, model, run) + "result.json"
    try:
        storage = context.storage()
        if not storage.exists(context.settings.s3_bucket, key):
            return None
        data: dict[str, Any] = json.loads(storage.get_bytes(context.settings.s3_bucket, key))
    except StorageError as error:
        raise ClusterUnavailable(
            f"Could not read the result of run {run}: {error}", delay=10
        ) from error
    return data


def list_versions(context: Context, namespace: str, model: str) -> list[RegisteredVersion]:
    items = context.kube.custom.list_namespaced_custom_object(
        GROUP, VERSION, namespace, ModelVersion.plural, label_selector=f"{LABEL_MODEL}={model}"
    )["items"]
    versions = []
    for item in items:
        spec, status = item.get("spec") or {}, item.get("status") or {}
        history = tuple(entry.get("stage", "") for entry in status.get("stageHistory", []))
        artifact = spec.get("artifact") or {}
        versions.append(
            RegisteredVersion(
                name=item["metadata"]["name"],
                version=int(spec.get("version", 0)),
                run=(item["metadata"].get("labels") or {}).get(LABEL_RUN, ""),
                stage=spec.get("stage", "Candidate"),
                stage_history=history,
                artifact_uri=artifact.get("uri", ""),
                digest=artifact.get("digest", ""),
            )
        )
    return versions


def _create_versions(context: Context, namespace: str, bodies: list[dict[str, Any]]) -> None:
    for body in bodies:
        try:
            context.kube.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, ModelVersion.plural, body
            )
        except ApiException as error:
            if error.status == 409:  # the number was taken meanwhile: plan again
                raise ClusterUnavailable(
                    f"ModelVersion {body['metadata']['name']} already exists; renumbering", delay=1
                ) from error
            raise


def _set_stage(context: Context, namespace: str, name: str, stage: str) -> None:
    context.kube.custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, ModelVersion.plural, name, {"spec": {"stage": stage}}
    )
