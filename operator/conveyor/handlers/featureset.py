"""FeatureSet handlers: observe the sources, the snapshot and the Jobs; reconcile; apply."""

from __future__ import annotations

import dataclasses
import json
import logging

import kopf
from pydantic import ValidationError

from ..api.v1alpha1 import FeatureSet, ModelVersion
from ..clients.s3 import StorageError
from ..contracts.labels import LABEL_FEATURESET
from ..contracts.layouts import SnapshotLayout
from ..contracts.manifest import SnapshotManifest
from ..features.listing import fingerprint, source_listing
from ..features.snapshots import snapshot_id
from ..reconcile import parse_featureset, reconcile_featureset
from ..reconcile.materialization import FeatureSetWorld, ObservedJob, logs_cutoff
from ..resources.kinds import JOBS, MODEL_VERSIONS
from .context import Context
from .driver import Controller
from .jobs import observe_jobs

__all__ = ["register_featureset"]

logger = logging.getLogger(__name__)


def register_featureset(registry: kopf.OperatorRegistry, context: Context) -> None:
    controller = Controller(
        context,
        FeatureSet,
        parse=parse_featureset,
        observe=lambda featureset: observe(context, featureset),
        reconcile=lambda featureset, world: reconcile_featureset(
            featureset, world, context.job_settings
        ),
    )
    controller.register(registry)
    controller.watch_children(registry, JOBS, LABEL_FEATURESET)
    # A new version, or a stage change, may change the leader; live figures do not.
    controller.watch_children(registry, MODEL_VERSIONS, LABEL_FEATURESET, spec_changes_only=True)


def observe(context: Context, featureset: FeatureSet) -> FeatureSetWorld:
    """The Jobs, the objects the sources match now, the manifest of the snapshot they give, and
    the versions trained on it."""
    return dataclasses.replace(
        _observe_data(context, featureset), versions=_versions(context, featureset)
    )


def _versions(context: Context, featureset: FeatureSet) -> list[ModelVersion]:
    selector = f"{LABEL_FEATURESET}={featureset.name}"
    versions = []
    for body in context.kube.list(MODEL_VERSIONS, featureset.namespace, selector=selector):
        try:
            versions.append(ModelVersion.from_body(body))
        except ValidationError as error:  # its own reconcile reports it; it cannot lead
            logger.debug("Skipping ModelVersion %s: %s", body["metadata"]["name"], error)
    return versions


def _observe_data(context: Context, featureset: FeatureSet) -> FeatureSetWorld:
    now = context.clock()
    selector = f"{LABEL_FEATURESET}={featureset.name}"
    jobs = [
        ObservedJob.from_view(job) for job in observe_jobs(context, featureset.namespace, selector)
    ]
    logs_until = logs_cutoff(featureset, now)
    try:
        storage = context.storage()
        listing = source_listing(
            storage, featureset.spec, featureset.namespace, now=now, logs_until=logs_until
        )
        if not listing:
            return FeatureSetWorld(now=now, jobs=jobs)
        source_fingerprint = fingerprint(listing)
        snapshot = snapshot_id(featureset.spec, source_fingerprint)
        layout = SnapshotLayout(
            context.settings.s3_bucket, featureset.namespace, featureset.name, snapshot
        )
        manifest = None
        if storage.exists(layout.bucket, layout.manifest):
            document = storage.get_bytes(layout.bucket, layout.manifest)
            try:
                manifest = SnapshotManifest.from_json(
                    json.loads(document), source=layout.uri(layout.manifest)
                )
            except ValueError as error:  # not JSON, or not a manifest (WireError)
                problem = ("ManifestUnreadable", str(error))
                return FeatureSetWorld(now=now, listing_error=problem, jobs=jobs)
    except StorageError as error:
        return FeatureSetWorld(now=now, listing_error=(error.reason, str(error)), jobs=jobs)
    return FeatureSetWorld(
        now=now,
        snapshot_id=snapshot,
        source_objects=len(listing),
        source_fingerprint=source_fingerprint,
        manifest=manifest,
        jobs=jobs,
        logs_until=logs_until,
    )
