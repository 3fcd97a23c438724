"""kopf registration: observe the world, call the pure reconcile, apply its outcome.

One reconcile per kind runs on create, update, resume and a timer. Cross-references recover by
themselves: when a FeatureSet (or TrainingPipeline) changes, the objects that point at it are
reconciled too, found through kopf indexes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kopf

from .api.v1alpha1 import (
    GROUP,
    VERSION,
    CustomResource,
    FeatureSet,
    ModelVersion,
    RetrainPolicy,
    TrainingPipeline,
)
from .clients.kube import Kube
from .metrics import reconcile_timer
from .reconcile import (
    Outcome,
    reconcile_featureset,
    reconcile_modelversion,
    reconcile_retrainpolicy,
    reconcile_trainingpipeline,
    status_patch,
)
from .settings import Settings

__all__ = ["Context", "register"]

logger = logging.getLogger(__name__)
ANNOTATION_PREFIX = GROUP


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Context:
    """What every handler needs: settings, the API client and a clock (injected in tests)."""

    settings: Settings
    kube: Kube
    clock: Callable[[], datetime] = field(default=_utcnow)


def apply_outcome(
    context: Context, kind: type[CustomResource], body: Mapping[str, Any], outcome: Outcome
) -> None:
    """Write the status that changed and post the Events; a no-op when nothing changed."""
    metadata = body["metadata"]
    patch, events = status_patch(
        body.get("status") or {},
        outcome,
        generation=int(metadata.get("generation") or 0),
        now=context.clock(),
    )
    if patch:
        context.kube.patch_status(kind, metadata["namespace"], metadata["name"], patch)
    for event in events:
        log = logger.info if event.type == "Normal" else logger.warning
        log(
            "%s %s/%s: %s: %s",
            kind.kind_name,
            metadata["namespace"],
            metadata["name"],
            event.reason,
            event.message,
        )
        kopf.event(dict(body), type=event.type, reason=event.reason, message=event.message)


def register(registry: kopf.OperatorRegistry, context: Context) -> None:
    """Register every handler of the operator on `registry`."""
    _register_settings(registry, context)
    _register_featureset(registry, context)
    _register_trainingpipeline(registry, context)
    _register_modelversion(registry, context)
    _register_retrainpolicy(registry, context)


def _register_settings(registry: kopf.OperatorRegistry, context: Context) -> None:
    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Keep kopf's bookkeeping in annotations: the CRD schemas prune unknown status fields.
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
            prefix=ANNOTATION_PREFIX
        )
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
        )
        settings.persistence.finalizer = f"{GROUP}/finalizer"
        # Only warnings become Events automatically; reconciles post their own Normal Events.
        settings.posting.level = logging.WARNING
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        # The same credentials as our own client, whichever kubeconfig the settings name.
        return connection_info(context.kube.api_client.configuration)


def connection_info(configuration: Any) -> kopf.ConnectionInfo:
    """kopf's connection details from a kubernetes client Configuration."""
    authorization = (configuration.api_key or {}).get("authorization", "")
    token = authorization.removeprefix("Bearer ").strip() or None
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        token=token,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


def _on_every_change(
    registry: kopf.OperatorRegistry, kind: type[CustomResource], interval: float
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register one reconcile for create, update, resume and a timer of the kind."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in (kopf.on.create, kopf.on.update, kopf.on.resume):
            decorator(GROUP, VERSION, kind.plural, registry=registry, id="reconcile")(fn)
        kopf.timer(
            GROUP,
            VERSION,
            kind.plural,
            registry=registry,
            id="resync",
            interval=interval,
            initial_delay=interval,
        )(fn)
        return fn

    return decorate


def _register_featureset(registry: kopf.OperatorRegistry, context: Context) -> None:
    @_on_every_change(registry, FeatureSet, context.settings.resync_seconds)
    def featureset(body: kopf.Body, **_: Any) -> None:
        with reconcile_timer(FeatureSet.kind_name):
            apply_outcome(context, FeatureSet, body, reconcile_featureset(body))

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


def reconcile_pipeline_by_name(context: Context, namespace: str, name: str) -> None:
    body = context.kube.get(TrainingPipeline, namespace, name)
    if body is not None:
        reconcile_pipeline(context, body)


def reconcile_pipeline(context: Context, body: Mapping[str, Any]) -> None:
    with reconcile_timer(TrainingPipeline.kind_name):
        namespace = body["metadata"]["namespace"]
        featureset_name = (body.get("spec") or {}).get("featureSet", "")
        featureset = context.kube.get(FeatureSet, namespace, featureset_name)
        apply_outcome(context, TrainingPipeline, body, reconcile_trainingpipeline(body, featureset))


def _register_trainingpipeline(registry: kopf.OperatorRegistry, context: Context) -> None:
    @_on_every_change(registry, TrainingPipeline, context.settings.resync_seconds)
    def trainingpipeline(body: kopf.Body, **_: Any) -> None:
        reconcile_pipeline(context, body)

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


def reconcile_policy(context: Context, body: Mapping[str, Any]) -> None:
    with reconcile_timer(RetrainPolicy.kind_name):
        namespace = body["metadata"]["namespace"]
        pipeline_name = (body.get("spec") or {}).get("pipeline", "")
        pipeline = context.kube.get(TrainingPipeline, namespace, pipeline_name)
        outcome = reconcile_retrainpolicy(body, pipeline, now=context.clock())
        apply_outcome(context, RetrainPolicy, body, outcome)


def _register_modelversion(registry: kopf.OperatorRegistry, context: Context) -> None:
    @_on_every_change(registry, ModelVersion, context.settings.resync_seconds)
    def modelversion(body: kopf.Body, **_: Any) -> None:
        with reconcile_timer(ModelVersion.kind_name):
            apply_outcome(context, ModelVersion, body, reconcile_modelversion(body))


def _register_retrainpolicy(registry: kopf.OperatorRegistry, context: Context) -> None:
    @_on_every_change(registry, RetrainPolicy, context.settings.resync_seconds)
    def retrainpolicy(body: kopf.Body, **_: Any) -> None:
        reconcile_policy(context, body)
