"""RetrainPolicy handlers: observe the pipeline the policy retrains; reconcile; apply."""

from __future__ import annotations

import kopf

from ..api.v1alpha1 import RetrainPolicy, TrainingPipeline
from ..reconcile import parse_retrainpolicy, reconcile_retrainpolicy
from ..reconcile.retrainpolicy import PolicyWorld
from ..resources.kinds import TRAINING_PIPELINES
from .context import Context
from .driver import Controller

__all__ = ["register_retrainpolicy"]


def register_retrainpolicy(registry: kopf.OperatorRegistry, context: Context) -> None:
    controller = Controller(
        context,
        RetrainPolicy,
        parse=parse_retrainpolicy,
        observe=lambda policy: observe(context, policy),
        reconcile=reconcile_retrainpolicy,
    )
    controller.register(registry)
    controller.watch_references(registry, TrainingPipeline, "pipeline")


def observe(context: Context, policy: RetrainPolicy) -> PolicyWorld:
    pipeline = context.kube.get(TRAINING_PIPELINES, policy.namespace, policy.spec.pipeline)
    return PolicyWorld(now=context.clock(), pipeline=pipeline)
