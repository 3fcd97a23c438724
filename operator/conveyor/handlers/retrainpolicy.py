"""RetrainPolicy handlers: check the policy against its TrainingPipeline."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from ..api.v1alpha1 import RetrainPolicy, TrainingPipeline
from ..metrics import reconcile_timer
from ..reconcile import reconcile_retrainpolicy
from .common import Context, apply_outcome, on_every_change

__all__ = ["reconcile_policy", "register_retrainpolicy"]


def register_retrainpolicy(registry: kopf.OperatorRegistry, context: Context) -> None:
    @on_every_change(registry, RetrainPolicy, context.settings.resync_seconds)
    def retrainpolicy(body: kopf.Body, **_: Any) -> None:
        reconcile_policy(context, body)


def reconcile_policy(context: Context, body: Mapping[str, Any]) -> None:
    with reconcile_timer(RetrainPolicy.kind_name):
        namespace = body["metadata"]["namespace"]
        pipeline_name = (body.get("spec") or {}).get("pipeline", "")
        pipeline = context.kube.get(TrainingPipeline, namespace, pipeline_name)
        outcome = reconcile_retrainpolicy(body, pipeline, now=context.clock())
        apply_outcome(context, RetrainPolicy, body, outcome)
