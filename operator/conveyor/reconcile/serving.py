"""Plan a model's serving: which version its Deployment serves, a rollout's progress, and the
fall back when a version cannot serve. Pure: the pipeline's handler observes and applies.

The version to serve is the registered ModelVersion whose spec.stage is Production (the newest,
should there be two for a moment). Promoting one is a rolling update: the version serving so
far (`status.serving.version`) keeps answering until every pod of the new one is ready. A new
version that cannot get there — its pods report DigestMismatch, ArtifactUnreadable or
WarmupFailed, crash in a loop, or the Deployment's progress deadline passes — is recorded in
`status.serving.failures` (before the Deployment is touched: a restart remembers it) and the
Deployment goes back to the version serving before. Its spec.stage stays as written: the
ModelVersion's status says what is actually served. A change to the failed version (its stage
set anew) retries it. With no Production version, serving is scaled to zero; the objects stay.

With `spec.serving.rollout.strategy: Canary` a version replacing a serving one first runs in
`<model>-canary` beside the stable Deployment, step by step (canary.py); an aborted canary is a
failure like the others, and the stable Deployment takes every pod again. Once every step has
passed, the new version rolls out on the stable Deployment as above, and the canary Deployment
goes when that is complete. With `Shadow`, the newest Candidate predicts a copy of the
serving pods' requests (shadow.py); a version set to Production still rolls out as above.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ..api.v1alpha1 import TrainingPipeline
from ..api.v1alpha1.rollout import RolloutState as CanaryState
from ..api.v1alpha1.trainingpipeline import RolloutFailure, ServingState
from ..contracts.labels import LABEL_VERSION, SPEC_HASH
from ..resources.conditions import ConditionUpdate
from ..resources.kinds import AUTOSCALERS, DEPLOYMENTS, SERVICES, Resource
from ..resources.serving import (
    build_autoscaler,
    build_serving_deployment,
    build_serving_service,
    canary_name,
    serving_name,
    serving_url,
)
from ..resources.workloads import JobSettings
from .canary import CanaryDecision, CanaryWorld, split_replicas, step_canary
from .common import Action, Create, Delete, Event, Patch
from .deployment_rollout import CRASH_LOOP_RESTARTS, Rollout, rollout
from .pipeline_world import RegisteredVersion, ServingWorld
from .shadow import ShadowDecision, plan_shadow, shadow_candidate

__all__ = ["CRASH_LOOP_RESTARTS", "Rollout", "ServingDecision", "plan_serving", "rollout"]

FAILURES_KEPT = 10


@dataclass
class ServingDecision:
    """What the pipeline's status says of serving, and the writes that follow it."""

    state: ServingState
    condition: ConditionUpdate
    events: list[Event] = field(default_factory=list)
    writes: list[Action] = field(default_factory=list)
    """After the status: the failure is recorded before the Deployment is put back."""
    promote: str | None = None
    """The shadowed candidate promotion.policy live promotes (its spec.stage: Production)."""


def plan_serving(
    pipeline: TrainingPipeline,
    versions: Sequence[RegisteredVersion],
    world: ServingWorld,
    settings: JobSettings,
    now: datetime,
) -> ServingDecision:
    """`versions` are the registered ones (registry.py): nothing else is ever served."""
    previous = pipeline.status.serving or ServingState()
    registered = {v.name: v for v in versions}
    served = previous.version if previous.version in registered else None
    failures = [
        f
        for f in previous.failures
        if f.version in registered and f.generation == _generation(registered[f.version])
    ]
    deployed = _deployed_version(world.deployment)
    served, failures, canary_state, events = _rolled_out(
        registered, world, deployed, served, failures, previous.rollout, now
    )
    desired = _desired(versions)
    failed = {f.version: f for f in failures}
    target = None if desired is None else (served if desired.name in failed else desired.name)
    canary: CanaryDecision | None = None
    strategy = pipeline.spec.serving.rollout.strategy
    if _stepwise(pipeline, target, served, deployed) and strategy == "Canary":
        assert target is not None and served is not None
        canary, aborted = _step(pipeline, registered, served, target, world, canary_state, now)
        canary_state = canary.state
        events += canary.events
        if aborted is not None:
            failures = [aborted, *failures][:FAILURES_KEPT]
            failed[aborted.version] = aborted
            target, canary = served, None
    shadow: ShadowDecision | None = None
    candidate = None
    if target is not None and target == served and canary is None:
        candidate = shadow_candidate(pipeline, versions, registered[served], failed)
    if candidate is not None and served is not None:
        shadow = plan_shadow(pipeline, candidate, registered[served])
        if shadow.event is not None:
            events.append(shadow.event)
    holding = canary is not None and canary.verdict == "hold"
    if target is not None and target != deployed and target != served and not holding:
        events.append(
            Event(
                "Normal",
                "RollingOut",
                f"Rolling out {target}; {served or 'nothing'} answers meanwhile",
            )
        )
    writes = _all_writes(pipeline, registered, target, served, world, settings, canary, candidate)
    exists = world.deployment is not None or bool(writes)
    state = ServingState(
        deployment=serving_name(pipeline.spec.model.name) if exists else None,
        url=serving_url(pipeline.namespace, pipeline.spec.model.name) if exists else None,
        version=served if target is not None else None,
        rolling_out=target if target != served else None,
        replicas=_count(world.deployment, "spec", "replicas"),
        ready_replicas=_count(world.deployment, "status", "readyReplicas"),
        failures=failures,
        rollout=canary_state,
        shadow=shadow.state if shadow is not None else None,
    )
    condition = _condition(pipeline, desired, failed, state)
    if state.rolling_out is not None and deployed == state.rolling_out:
        waiting = rollout(world.deployment or {}, world.pods, deployed)
        if waiting.state == "progressing" and waiting.reason:
            condition = ConditionUpdate(
                "Serving",
                condition.status,
                condition.reason,
                f"{condition.message}; {waiting.reason}: {waiting.message}",
            )
    if holding and canary is not None:
        condition = ConditionUpdate("Serving", "True", "Canary", canary.state.message)
    elif shadow is not None and condition.reason == "Serving":
        condition = ConditionUpdate(
            "Serving", "True", "Shadow", f"{condition.message}; {shadow.state.message}"
        )
    promote = candidate.name if shadow is not None and shadow.promote and candidate else None
    return ServingDecision(state, condition, events, writes, promote)


def _rolled_out(
    registered: Mapping[str, RegisteredVersion],
    world: ServingWorld,
    deployed: str | None,
    served: str | None,
    failures: list[RolloutFailure],
    canary_state: CanaryState | None,
    now: datetime,
) -> tuple[str | None, list[RolloutFailure], CanaryState | None, list[Event]]:
    """A version rolled out on the serving Deployment serves once every pod runs it (a
    canary's promotion completes then); one that cannot get there is a failure."""
    events: list[Event] = []
    if deployed not in registered or deployed == served or deployed in _names(failures):
        return served, failures, canary_state, events
    assert deployed is not None
    outcome = rollout(world.deployment or {}, world.pods, deployed)
    if outcome.state == "complete":
        events.append(Event("Normal", "RolledOut", f"{deployed} serves on every pod"))
        canary_state, completed = _completed(canary_state, deployed)
        return deployed, failures, canary_state, events + completed
    if outcome.state == "failed":
        failure = _failure(registered[deployed], outcome.reason, outcome.message, now)
        failures = [failure, *failures][:FAILURES_KEPT]
        back = f"{served} serves instead" if served else "no version serves"
        message = f"{deployed} cannot serve: {outcome.reason}: {outcome.message}; {back}"
        events.append(Event("Warning", "RolloutFailed", message))
        if canary_state is not None and canary_state.canary_version == deployed:
            # A canary that passed its steps but could not be promoted ends there too.
            update = {"phase": "Aborted", "reason": outcome.reason, "message": message}
            canary_state = canary_state.model_copy(update=update)
    return served, failures, canary_state, events


def _stepwise(
    pipeline: TrainingPipeline, target: str | None, served: str | None, deployed: str | None
) -> bool:
    """A new version replaces a serving one whose pods still run the stable Deployment: a
    canary (or shadow) applies. The first version, or serving scaled to zero, rolls out at
    once; so does the promotion once the canary passed (the stable Deployment runs it)."""
    return (
        target is not None
        and served is not None
        and target != served
        and deployed == served
        and (pipeline.spec.serving.replicas > 0 or pipeline.spec.serving.min_replicas is not None)
    )


def _step(
    pipeline: TrainingPipeline,
    registered: Mapping[str, RegisteredVersion],
    stable: str,
    canary: str,
    world: ServingWorld,
    previous: CanaryState | None,
    now: datetime,
) -> tuple[CanaryDecision, RolloutFailure | None]:
    """The canary's next move; an abort (bad figures, or pods that cannot start) is also a
    RolloutFailure, so the version takes no traffic until its stage is set anew."""
    config = pipeline.spec.serving.rollout
    total = _total_replicas(pipeline, world)
    weight = config.steps[min(previous.step if previous else 0, len(config.steps) - 1)].weight
    stable_n, canary_n = split_replicas(total, weight)
    on_canary = world.canary is not None and _deployed_version(world.canary) == canary
    canary_view = world.canary if on_canary else None
    decision = step_canary(
        config,
        previous,
        stable,
        canary,
        CanaryWorld(
            now=now,
            total_replicas=total,
            canary_ready=_count(canary_view, "status", "readyReplicas"),
            stable_ready=_count(world.deployment, "status", "readyReplicas"),
            step_ready=_step_ready(
                pipeline, world, canary_view, stable, canary, stable_n, canary_n
            ),
            canary=world.figures.get(canary),
            stable=world.figures.get(stable),
            canary_live=world.live.get(canary),
            stable_live=world.live.get(stable),
        ),
    )
    started = rollout(canary_view, world.pods, canary) if canary_view else Rollout("progressing")
    if decision.verdict != "abort" and started.state == "failed":
        message = f"Canary {canary} aborted: its pods cannot serve: {started.message}"
        aborted = decision.state.model_copy(
            update={"phase": "Aborted", "reason": started.reason, "message": message}
        )
        decision = CanaryDecision("abort", aborted, stable_n, canary_n, decision.events)
        decision.events.append(Event("Warning", "CanaryAborted", message))
    if decision.verdict != "abort":
        return decision, None
    state = decision.state
    return decision, _failure(registered[canary], state.reason, state.message, now)


def _step_ready(
    pipeline: TrainingPipeline,
    world: ServingWorld,
    canary_view: Mapping[str, Any] | None,
    stable: str,
    canary: str,
    stable_n: int,
    canary_n: int,
) -> bool:
    """Both Deployments run the step's replicas, every pod ready and no other pod left."""
    if canary_view is None or _count(canary_view, "spec", "replicas") != canary_n:
        return False
    if rollout(canary_view, world.pods, canary).state != "complete":
        return False
    stable_view = world.deployment or {}
    if build_autoscaler(pipeline) is None and _count(stable_view, "spec", "replicas") != stable_n:
        return False
    return rollout(stable_view, world.pods, stable).state == "complete"


def _total_replicas(pipeline: TrainingPipeline, world: ServingWorld) -> int:
    """N: spec.serving.replicas; with an autoscaler, the stable Deployment's current count
    (the canary is added beside the autoscaled pods, which keep their count)."""
    serving = pipeline.spec.serving
    if serving.min_replicas is None:
        return serving.replicas
    return max(_count(world.deployment, "spec", "replicas"), serving.min_replicas)


def _completed(state: CanaryState | None, version: str) -> tuple[CanaryState | None, list[Event]]:
    """A canary's promotion is over once its version serves on the stable Deployment."""
    if state is None or state.canary_version != version or state.phase != "Progressing":
        return state, []
    message = f"Canary {version} completed: it serves every pod, the canary Deployment goes"
    done = state.model_copy(
        update={"phase": "Completed", "weight": 100, "actual_weight": 100.0, "message": message}
    )
    return done, [Event("Normal", "CanaryCompleted", message)]


def _failure(
    version: RegisteredVersion, reason: str, message: str, now: datetime
) -> RolloutFailure:
    return RolloutFailure(
        version=version.name,
        generation=_generation(version),
        reason=reason,
        message=message[:1000],
        time=now,
    )


def _all_writes(
    pipeline: TrainingPipeline,
    registered: Mapping[str, RegisteredVersion],
    target: str | None,
    served: str | None,
    world: ServingWorld,
    settings: JobSettings,
    canary: CanaryDecision | None,
    shadow: RegisteredVersion | None = None,
) -> list[Action]:
    """The stable Deployment (at the step's replicas while a canary holds; shadowed by a
    candidate under strategy Shadow), the canary Deployment while one runs or is being
    promoted, else its deletion."""
    if canary is not None and canary.verdict == "hold" and served is not None:
        stable = registered[served]
        writes = _writes(pipeline, stable, world, settings, replicas=canary.stable_replicas)
        new = registered[canary.state.canary_version].body
        wanted = build_serving_deployment(
            pipeline, new, settings, replicas=canary.canary_replicas, canary=True
        )
        return writes + _keep(DEPLOYMENTS, wanted, world.canary)
    writes = _writes(pipeline, registered.get(target or ""), world, settings, shadow=shadow)
    promoting = (
        world.canary is not None and target != served and _deployed_version(world.canary) == target
    )
    if world.canary is not None and not promoting:
        writes.append(Delete(DEPLOYMENTS, canary_name(pipeline.spec.model.name)))
    return writes


def _writes(
    pipeline: TrainingPipeline,
    version: RegisteredVersion | None,
    world: ServingWorld,
    settings: JobSettings,
    *,
    replicas: int | None = None,
    shadow: RegisteredVersion | None = None,
) -> list[Action]:
    """Create or patch what serves `version` (on `replicas` pods instead of the spec's while
    a canary holds; with `shadow` predicting a copy of its requests); with none to serve,
    scale to zero."""
    deployment = world.deployment
    if version is None:
        if deployment is None or (deployment.get("spec") or {}).get("replicas") == 0:
            return []
        stop = {"metadata": {"annotations": {SPEC_HASH: "scaled-to-zero"}}, "spec": {"replicas": 0}}
        return [Patch(DEPLOYMENTS, deployment["metadata"]["name"], stop)]
    autoscaler = build_autoscaler(pipeline)
    if autoscaler is not None:
        replicas = None
    elif replicas is None:
        replicas = pipeline.spec.serving.replicas
    if deployment is None and autoscaler is not None:
        replicas = pipeline.spec.serving.min_replicas  # the autoscaler takes over from there
    writes = _keep(
        DEPLOYMENTS,
        build_serving_deployment(
            pipeline,
            version.body,
            settings,
            replicas=replicas,
            shadow=shadow.body if shadow is not None else None,
        ),
        deployment,
    )
    writes += _keep(SERVICES, build_serving_service(pipeline), world.service)
    if autoscaler is not None:
        writes += _keep(AUTOSCALERS, autoscaler, world.autoscaler)
    elif world.autoscaler is not None:
        writes.append(Delete(AUTOSCALERS, world.autoscaler["metadata"]["name"]))
    return writes


def _keep(
    resource: Resource, wanted: dict[str, Any], observed: Mapping[str, Any] | None
) -> list[Action]:
    """Create `wanted`, or patch the observed object when the spec it was built from differs."""
    if observed is None:
        return [Create(resource, wanted)]
    current = (observed.get("metadata", {}).get("annotations") or {}).get(SPEC_HASH)
    if current == wanted["metadata"]["annotations"][SPEC_HASH]:
        return []
    return [Patch(resource, wanted["metadata"]["name"], wanted)]


def _condition(
    pipeline: TrainingPipeline,
    desired: RegisteredVersion | None,
    failed: Mapping[str, RolloutFailure],
    state: ServingState,
) -> ConditionUpdate:
    served, rolling = state.version, state.rolling_out
    if desired is None:
        return ConditionUpdate(
            "Serving",
            "False",
            "NoProductionVersion",
            f"No version of model {pipeline.spec.model.name} is Production: serving is scaled "
            "to zero. Promote one (conveyor promote <version>)",
        )
    failure = failed.get(desired.name)
    if failure is not None:
        why = f"{desired.name} cannot serve: {failure.reason}: {failure.message}"
        if served:
            return ConditionUpdate(
                "Serving", "True", "RolledBack", f"{why}; {served} serves instead"
            )
        return ConditionUpdate("Serving", "False", failure.reason, f"{why}; no version serves")
    if rolling is not None:
        meanwhile = f"{served} answers meanwhile" if served else "nothing answers yet"
        status: Literal["True", "False"] = "True" if served else "False"
        return ConditionUpdate(
            "Serving", status, "RollingOut", f"Rolling out {rolling}; {meanwhile}"
        )
    if state.replicas == 0:
        return ConditionUpdate(
            "Serving", "False", "ScaledToZero", f"{served} is rolled out on no pods (replicas 0)"
        )
    return ConditionUpdate(
        "Serving",
        "True",
        "Serving",
        f"{served} serves on {state.ready_replicas}/{state.replicas} ready pods at {state.url}",
    )


def _desired(versions: Sequence[RegisteredVersion]) -> RegisteredVersion | None:
    production = [v for v in versions if v.stage == "Production"]
    return max(production, key=lambda v: v.version, default=None)


def _deployed_version(deployment: Mapping[str, Any] | None) -> str | None:
    if deployment is None:
        return None
    return (deployment.get("metadata", {}).get("annotations") or {}).get(LABEL_VERSION)


def _generation(version: RegisteredVersion) -> int:
    return int((version.body.get("metadata") or {}).get("generation") or 0)


def _names(failures: Sequence[RolloutFailure]) -> set[str]:
    return {f.version for f in failures}


def _count(obj: Mapping[str, Any] | None, part: str, key: str) -> int:
    return int(((obj or {}).get(part) or {}).get(key) or 0)
