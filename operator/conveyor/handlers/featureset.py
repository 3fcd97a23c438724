"""FeatureSet handlers: validate, observe sources, snapshots and Jobs, then act on the plan."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from ..api.v1alpha1 import GROUP, VERSION, FeatureSet, TrainingPipeline
from ..clients.s3 import StorageError, fingerprint, source_listing
from ..features.snapshots import SnapshotLayout, snapshot_id
from ..metrics import reconcile_timer
from ..reconcile import reconcile_featureset
from ..reconcile.materialization import (
    LABEL_FEATURESET,
    LABEL_PHASE,
    LABEL_SNAPSHOT,
    FeatureSetWorld,
    ObservedJob,
    plan_materialization,
)
from .common import Context, apply_outcome, on_every_change, reconcile_fresh
from .jobs import create_jobs, delete_jobs, job_failure, job_state, list_jobs
from .trainingpipeline import reconcile_pipeline_by_name

__all__ = ["reconcile_featureset_by_name", "register_featureset"]

logger = logging.getLogger(__name__)


def register_featureset(registry: kopf.OperatorRegistry, context: Context) -> None:
    @on_every_change(registry, FeatureSet, context.settings.resync_seconds)
    def featureset(namespace: str, name: str, **_: Any) -> None:
        reconcile_featureset_by_name(context, namespace, name)

    @kopf.index(
        GROUP, VERSION, TrainingPipeline.plural, registry=registry, id="pipelines_by_featureset"
    )
    def pipelines_by_featureset(
        namespace: str, name: str, spec: kopf.Spec, **_: Any
    ) -> dict[tuple[str, str], str]:
        return {(namespace, spec.get("featureSet", "")): name}

    @kopf.on.event(GROUP, VERSION, FeatureSet.plural, registry=registry)
    def featureset_changed(
        namespace: str,
        name: str,
        pipelines_by_featureset: kopf.Index[tuple[str, str], str],
        **_: Any,
    ) -> None:
        for pipeline in pipelines_by_featureset.get((namespace, name), []):
            reconcile_pipeline_by_name(context, namespace, pipeline)

    @kopf.on.event(
        "batch", "v1", "jobs", registry=registry, labels={LABEL_FEATURESET: kopf.PRESENT}
    )
    def materialize_job_changed(namespace: str, labels: kopf.Labels, **_: Any) -> None:
        reconcile_featureset_by_name(context, namespace, labels[LABEL_FEATURESET])


def reconcile_featureset_by_name(context: Context, namespace: str, name: str) -> None:
    """Reconcile the FeatureSet as it is now, one reconcile at a time per FeatureSet."""
    reconcile_fresh(context, FeatureSet, namespace, name, _reconcile)


def _reconcile(context: Context, body: Mapping[str, Any]) -> None:
    with reconcile_timer(FeatureSet.kind_name):
        checked = reconcile_featureset(body)
        if not checked.ready:
            apply_outcome(context, FeatureSet, body, checked)
            return
        world = observe(context, body)
        plan = plan_materialization(body, world, context.job_settings)
        namespace = body["metadata"]["namespace"]
        delete_jobs(context, namespace, plan.delete)
        create_jobs(context, namespace, plan.create)
        apply_outcome(context, FeatureSet, body, plan.outcome)


def observe(context: Context, body: Mapping[str, Any]) -> FeatureSetWorld:
    featureset = FeatureSet.from_body(body)
    now = context.clock()
    jobs = _observe_jobs(context, featureset.namespace, featureset.name)
    try:
        storage = context.storage()
        listing = source_listing(storage, featureset.spec, now=now)
    except StorageError as error:
        return FeatureSetWorld(now=now, listing_error=(error.reason, str(error)), jobs=jobs)
    if not listing:
        uris = ", ".join(source.uri for source in featureset.spec.sources)
        message = f"No object matches {uris}: upload data there, or fix spec.sources[].uri"
        return FeatureSetWorld(now=now, listing_error=("SourceNotFound", message), jobs=jobs)
    source_fingerprint = fingerprint(listing)
    snapshot = snapshot_id(featureset.spec, source_fingerprint)
    layout = SnapshotLayout(
        context.settings.s3_bucket, featureset.namespace, featureset.name, snapshot
    )
    try:
        manifest = (
            json.loads(storage.get_bytes(layout.bucket, layout.manifest))
            if storage.exists(layout.bucket, layout.manifest)
            else None
        )
    except StorageError as error:
        return FeatureSetWorld(now=now, listing_error=(error.reason, str(error)), jobs=jobs)
    return FeatureSetWorld(
        now=now,
        snapshot_id=snapshot,
        source_objects=len(listing),
        source_fingerprint=source_fingerprint,
        manifest=manifest,
        jobs=jobs,
    )


def _observe_jobs(context: Context, namespace: str, name: str) -> list[ObservedJob]:
    observed = []
    for job in list_jobs(context, namespace, f"{LABEL_FEATURESET}={name}"):
        labels = job.metadata.labels or {}
        state, finished = job_state(job)
        reason, message = ("", "")
        if state == "Failed":
            reason, message = job_failure(context, namespace, job)
        observed.append(
            ObservedJob(
                name=job.metadata.name,
                snapshot=labels.get(LABEL_SNAPSHOT, ""),
                phase=labels.get(LABEL_PHASE, "all"),
                state=state,
                finished_at=finished,
                reason=reason,
                message=message,
            )
        )
    return observed
