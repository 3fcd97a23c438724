"""ModelVersion handlers: stages in effect, one Production per model, protected deletion."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from ..api.v1alpha1 import GROUP, VERSION, ModelVersion
from ..clients.s3 import StorageError, split_uri
from ..metrics import reconcile_timer
from ..reconcile import reconcile_modelversion
from ..reconcile.modelversion import STAGE_REASON, Sibling
from ..reconcile.runs import LABEL_MODEL
from .common import Context, apply_outcome, on_every_change, reconcile_fresh

__all__ = ["register_modelversion"]


def register_modelversion(registry: kopf.OperatorRegistry, context: Context) -> None:
    @on_every_change(registry, ModelVersion, context.settings.resync_seconds)
    def modelversion(namespace: str, name: str, **_: Any) -> None:
        reconcile_fresh(context, ModelVersion, namespace, name, _reconcile, deleting=True)

    @kopf.on.delete(GROUP, VERSION, ModelVersion.plural, registry=registry, id="protect")
    def protect(namespace: str, name: str, **_: Any) -> None:
        # kopf runs only deletion handlers on a deleting object: reconcile the stage here, so
        # setting spec.stage away from Production lets the deletion finish.
        if not reconcile_fresh(context, ModelVersion, namespace, name, _reconcile, deleting=True):
            return
        body = context.kube.get(ModelVersion, namespace, name)
        if body is None:
            return
        if (body.get("status") or {}).get("stage") == "Production":
            message = (
                f"{name} is the Production version of model {body['spec'].get('model')}: "
                "promote another version (or set spec.stage to Archived) before deleting it"
            )
            kopf.warn(body, reason="DeletionBlocked", message=message)
            # kopf keeps the finalizer and retries: the version stays until it stops serving.
            raise kopf.TemporaryError(message, delay=15)
        if (body.get("spec") or {}).get("deleteArtifacts"):
            _delete_artifacts(context, body)


def _reconcile(context: Context, body: Mapping[str, Any]) -> None:
    with reconcile_timer(ModelVersion.kind_name):
        namespace = body["metadata"]["namespace"]
        model = (body.get("spec") or {}).get("model", "")
        items = context.kube.custom.list_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            ModelVersion.plural,
            label_selector=f"{LABEL_MODEL}={model}",
        )["items"]
        siblings = [
            Sibling(i["metadata"]["name"], (i.get("spec") or {}).get("stage", "")) for i in items
        ]
        plan = reconcile_modelversion(body, siblings, now=context.clock())
        for other in plan.archive:
            context.kube.custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                ModelVersion.plural,
                other,
                {
                    "metadata": {
                        "annotations": {
                            STAGE_REASON: f"Archived: replaced by {body['metadata']['name']}"
                        }
                    },
                    "spec": {"stage": "Archived"},
                },
            )
        apply_outcome(context, ModelVersion, body, plan.outcome)


def _delete_artifacts(context: Context, body: Mapping[str, Any]) -> None:
    uri = ((body.get("spec") or {}).get("artifact") or {}).get("uri", "")
    if not uri:
        return
    bucket, key = split_uri(uri)
    prefix = key.rsplit("/", 1)[0] + "/"
    try:
        context.storage().delete_prefix(bucket, prefix)
    except StorageError as error:
        raise kopf.TemporaryError(
            f"Could not delete the artifacts under s3://{bucket}/{prefix}: {error}", delay=30
        ) from error
