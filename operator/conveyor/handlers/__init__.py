"""kopf registration: one controller per kind, each observing, reconciling and applying
through `driver.Controller`.

One reconcile per kind runs on create, update, resume and a timer. Cross-references recover by
themselves: each dependent registers the watches of what it references (a TrainingPipeline
watches its FeatureSet, its Jobs and its versions; a RetrainPolicy its pipeline), so a change
there reconciles the dependent; a Job's progress reconciles the object that owns it.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from ..api.v1alpha1 import GROUP
from ..clients.kube import connection_info
from .context import Context
from .featureset import register_featureset
from .modelversion import register_modelversion
from .monitor import register_monitor
from .retrainpolicy import register_retrainpolicy
from .trainingpipeline import register_trainingpipeline

__all__ = ["Context", "register"]

KOPF_PREFIX = f"kopf.{GROUP}"


def register(registry: kopf.OperatorRegistry, context: Context) -> None:
    """Register every handler of the operator on `registry`."""
    _register_settings(registry, context)
    register_featureset(registry, context)
    register_trainingpipeline(registry, context)
    register_modelversion(registry, context)
    register_monitor(registry, context)
    register_retrainpolicy(registry, context)


def _register_settings(registry: kopf.OperatorRegistry, context: Context) -> None:
    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Keep kopf's bookkeeping in annotations: the CRD schemas prune unknown status fields.
        # Its own prefix: kopf ignores annotations under it when diffing, and ours (such as
        # conveyor.dev/run-requested) must count as changes.
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=KOPF_PREFIX, key="last-handled-configuration"
        )
        # kopf runs no deletion handler; its finalizer name differs from the one the
        # ModelVersion reconcile keeps, so kopf never removes that one on its own.
        settings.persistence.finalizer = f"{KOPF_PREFIX}/finalizer"
        # Only warnings become Events automatically; reconciles post their own Normal Events.
        settings.posting.level = logging.WARNING
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330

    @kopf.on.startup(registry=registry)
    def load_estimators(**_: Any) -> None:
        # Discovering scikit-learn's estimators takes seconds: once, before the first reconcile.
        from ..training.estimators import list_estimators

        list_estimators()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        # The same credentials as our own client, whichever kubeconfig the settings name.
        return connection_info(context.kube.api_client)
