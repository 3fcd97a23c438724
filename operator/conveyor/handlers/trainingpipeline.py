"""TrainingPipeline handlers: observe the FeatureSet, the runs' Jobs and results and the model's
versions; reconcile; apply."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from ..api.v1alpha1 import FeatureSet, TrainingPipeline
from ..clients.s3 import StorageError
from ..contracts.labels import LABEL_MODEL, LABEL_PIPELINE, LABEL_VERSION
from ..contracts.layouts import SnapshotLayout
from ..contracts.results import RunResult
from ..contracts.serving import METRICS_PATH, SERVE_PORT
from ..errors import ApiError, ClusterUnavailable
from ..reconcile import parse_trainingpipeline, reconcile_trainingpipeline
from ..reconcile.canary import LiveScore, live_score
from ..reconcile.pipeline_world import (
    PipelineWorld,
    RegisteredVersion,
    RunJob,
    ServingWorld,
    runs_to_collect,
)
from ..reconcile.serving_figures import ServingFigures, parse_serving_metrics
from ..resources.kinds import (
    AUTOSCALERS,
    DEPLOYMENTS,
    FEATURESETS,
    JOBS,
    MODEL_VERSIONS,
    PODS,
    SERVICES,
)
from ..resources.serving import canary_name, serving_labels, serving_name
from .context import Context
from .driver import Controller
from .jobs import observe_jobs
from .results import read_run_result, run_layout

__all__ = ["register_trainingpipeline"]

logger = logging.getLogger(__name__)


def register_trainingpipeline(registry: kopf.OperatorRegistry, context: Context) -> None:
    controller = Controller(
        context,
        TrainingPipeline,
        parse=parse_trainingpipeline,
        observe=lambda pipeline: observe(context, pipeline),
        reconcile=lambda pipeline, world: reconcile_trainingpipeline(
            pipeline, world, context.job_settings
        ),
    )
    controller.register(registry)
    controller.watch_references(registry, FeatureSet, "featureSet")
    controller.watch_children(registry, JOBS, LABEL_PIPELINE)
    # A version's stage moves (policy, a person, a rollback): the pipeline reports it at once.
    controller.watch_children(registry, MODEL_VERSIONS, LABEL_PIPELINE)
    # A rollout progresses, a serving pod crashes: the pipeline follows the Deployment.
    controller.watch_children(registry, DEPLOYMENTS, LABEL_PIPELINE)
    controller.watch_children(registry, PODS, LABEL_PIPELINE)


def observe(context: Context, pipeline: TrainingPipeline) -> PipelineWorld:
    """The FeatureSet; then (when it exists) the Jobs, the results of finished runs and the
    versions of the model."""
    namespace, now = pipeline.namespace, context.clock()
    featureset = context.kube.get(FEATURESETS, namespace, pipeline.spec.feature_set)
    if featureset is None:
        return PipelineWorld(now=now)
    selector = f"{LABEL_PIPELINE}={pipeline.name}"
    jobs = [RunJob.from_view(job) for job in observe_jobs(context, namespace, selector)]
    versions = [
        RegisteredVersion.from_body(body)
        for body in context.kube.list(
            MODEL_VERSIONS, namespace, selector=f"{LABEL_MODEL}={pipeline.spec.model.name}"
        )
    ]
    # Finished runs' results register their versions; the versions' runs' results vouch
    # for them (reconcile/registry.py).
    results: dict[str, RunResult] = {}
    unreadable: dict[str, str] = {}
    wanted = {(pipeline.spec.model.name, run) for run in runs_to_collect(jobs)}
    wanted |= {(version.model, version.run) for version in versions if version.run}
    for model, run in sorted(wanted):
        try:
            result = read_run_result(context, run_layout(context, namespace, model, run))
        except ValueError as error:  # not JSON, or not a RunResult (WireError)
            unreadable[run] = str(error)
            continue
        if result is not None:
            results[run] = result
    latest = (featureset.get("status") or {}).get("latestSnapshot") or {}
    snapshot = latest.get("id")
    return PipelineWorld(
        now=now,
        snapshot=snapshot,
        featureset=featureset,
        jobs=jobs,
        results=results,
        unreadable_results=unreadable,
        versions=versions,
        target_classes=_target_classes(context, pipeline, snapshot) if snapshot else None,
        serving=_observe_serving(context, pipeline, versions),
    )


def _observe_serving(
    context: Context, pipeline: TrainingPipeline, versions: list[RegisteredVersion]
) -> ServingWorld:
    """The model's serving Deployment, Service, autoscaler and pods; while a canary runs, its
    Deployment, the pods' serving figures and the versions' live scores."""
    namespace, name = pipeline.namespace, serving_name(pipeline.spec.model.name)
    deployment = context.kube.get(DEPLOYMENTS, namespace, name)
    if deployment is None:
        return ServingWorld()
    selector = ",".join(f"{key}={value}" for key, value in serving_labels(pipeline).items())
    pods = context.kube.list(PODS, namespace, selector=selector)
    canary = context.kube.get(DEPLOYMENTS, namespace, canary_name(pipeline.spec.model.name))
    metric = pipeline.spec.metric or (
        "rmse" if pipeline.status.resolved_task == "regression" else "accuracy"
    )
    return ServingWorld(
        deployment=deployment,
        service=context.kube.get(SERVICES, namespace, name),
        autoscaler=context.kube.get(AUTOSCALERS, namespace, name),
        pods=pods,
        canary=canary,
        figures=_serving_figures(context, namespace, pods) if canary is not None else {},
        live=_live_scores(versions, metric) if canary is not None else {},
    )


def _serving_figures(
    context: Context, namespace: str, pods: list[dict[str, Any]]
) -> dict[str, ServingFigures]:
    """Version → the summed figures of its ready pods, each read from the pod's /metrics
    through the API server's pod proxy. A pod that cannot be read now is left out: the
    judgement then rests on the others, or waits (too few requests)."""
    figures: dict[str, ServingFigures] = {}
    for pod in pods:
        version = (pod["metadata"].get("labels") or {}).get(LABEL_VERSION)
        if not version or not _ready(pod):
            continue
        name = pod["metadata"]["name"]
        try:
            text = context.kube.pod_get(namespace, name, SERVE_PORT, METRICS_PATH)
            read = parse_serving_metrics(text.decode("utf-8", "replace"))
        except (ApiError, ClusterUnavailable, ValueError) as error:
            logger.info("Serving figures of pod %s/%s not read: %s", namespace, name, error)
            continue
        figures[version] = figures.get(version, ServingFigures()) + read
    return figures


def _ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _live_scores(versions: list[RegisteredVersion], metric: str) -> dict[str, LiveScore]:
    """Version → its live score, from the status.liveMetrics the live-quality monitor writes
    on ModelVersions (absent until it has labelled feedback for the version)."""
    scores = {}
    for version in versions:
        score = live_score((version.body.get("status") or {}).get("liveMetrics"), metric)
        if score is not None:
            scores[version.name] = score
    return scores


def _target_classes(
    context: Context, pipeline: TrainingPipeline, snapshot: str
) -> dict[str, int] | None:
    """Rows per class of the snapshot's target, from its profile (read once per snapshot);
    None for a regression target or when the profile cannot be read now (the trainer checks
    the split again)."""
    layout = SnapshotLayout(
        context.settings.s3_bucket, pipeline.namespace, pipeline.spec.feature_set, snapshot
    )

    def read() -> dict[str, int] | None:
        try:
            profile = json.loads(context.storage().get_bytes(layout.bucket, layout.profile))
        except (StorageError, ValueError):
            return None
        if profile.get("target_kind") != "classification":
            return {}
        classes = (profile.get("target_distribution") or {}).get("classes") or {}
        return {str(label): int(count) for label, count in classes.items()}

    classes = context.remember(("target-classes", layout.profile), read)
    return classes or None
