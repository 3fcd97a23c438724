"""RetrainPolicy handlers: observe the pipeline, its Production version and its FeatureSet;
reconcile (evaluate the triggers); apply; count the decisions.

Besides the driver's resync, a timer evaluates every policy each policy interval: schedules
fire and performance and drift are judged without any change to watch. An alert (the webhook
annotates the policy) and a manual request (`conveyor retrain`) are changes of the policy
itself, reconciled at once; so is a change of a FeatureSet a policy waits on to refresh.
"""

from __future__ import annotations

from typing import Any

import kopf

from ..api.v1alpha1 import GROUP, VERSION, RetrainPolicy, TrainingPipeline
from ..metrics import RETRAIN_TRIGGERS
from ..reconcile import parse_retrainpolicy, reconcile_retrainpolicy
from ..reconcile.retrainpolicy import PolicyPlan, PolicyWorld
from ..resources.kinds import FEATURESETS, MODEL_VERSIONS, RETRAIN_POLICIES, TRAINING_PIPELINES
from .context import Context
from .driver import Controller

__all__ = ["register_retrainpolicy"]

PENDING_INDEX = "retrainpolicies_by_pending_phase"


def register_retrainpolicy(registry: kopf.OperatorRegistry, context: Context) -> None:
    controller = Controller(
        context,
        RetrainPolicy,
        parse=parse_retrainpolicy,
        observe=lambda policy: observe(context, policy),
        reconcile=lambda policy, world: counted(policy, reconcile_retrainpolicy(policy, world)),
    )
    controller.register(registry)
    controller.watch_references(registry, TrainingPipeline, "pipeline")
    interval = context.settings.policy_interval_seconds

    @kopf.timer(
        GROUP,
        VERSION,
        RETRAIN_POLICIES.plural,
        registry=registry,
        id="evaluate",
        interval=interval,
        initial_delay=interval,
    )
    def evaluate(namespace: str, name: str, **_: Any) -> None:
        controller.reconcile(namespace, name)

    @kopf.index(GROUP, VERSION, RETRAIN_POLICIES.plural, registry=registry, id=PENDING_INDEX)
    def by_pending_phase(namespace: str, name: str, status: kopf.Status, **_: Any) -> Any:
        return {(namespace, (status.get("pending") or {}).get("phase")): name}

    @kopf.on.event(GROUP, VERSION, FEATURESETS.plural, registry=registry, id="refreshed-features")
    def featureset_changed(namespace: str, **kwargs: Any) -> None:
        """A policy waiting for its features to be refreshed goes on as soon as they are."""
        # A copy: the reconcile changes the status the index is kept from, meanwhile.
        for name in list(kwargs[PENDING_INDEX].get((namespace, "Materializing"), [])):
            controller.reconcile(namespace, name)


def observe(context: Context, policy: RetrainPolicy) -> PolicyWorld:
    kube = context.kube
    pipeline = kube.get(TRAINING_PIPELINES, policy.namespace, policy.spec.pipeline)
    if pipeline is None:
        return PolicyWorld(now=context.clock())
    status, spec = pipeline.get("status") or {}, pipeline.get("spec") or {}
    production = status.get("productionVersion")
    # The FeatureSet matters only to the data requirement and to refreshing the features.
    wanted = policy.spec.min_new_rows > 0 or policy.spec.refresh_features
    featureset = spec.get("featureSet") if wanted else None
    return PolicyWorld(
        now=context.clock(),
        pipeline=pipeline,
        production=kube.get(MODEL_VERSIONS, policy.namespace, production) if production else None,
        featureset=kube.get(FEATURESETS, policy.namespace, featureset) if featureset else None,
    )


def counted(policy: RetrainPolicy, plan: PolicyPlan) -> PolicyPlan:
    for decision in plan.decisions:
        result = "fired" if decision["fired"] else "suppressed"
        RETRAIN_TRIGGERS.labels(
            f"{policy.namespace}/{policy.name}", decision["trigger"], result
        ).inc()
    return plan
