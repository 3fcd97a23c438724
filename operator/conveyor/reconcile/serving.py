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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ..api.v1alpha1 import TrainingPipeline
from ..api.v1alpha1.trainingpipeline import RolloutFailure, ServingState
from ..contracts.labels import LABEL_VERSION, SPEC_HASH
from ..contracts.results import parse_failure
from ..resources.conditions import ConditionUpdate
from ..resources.kinds import AUTOSCALERS, DEPLOYMENTS, SERVICES, Resource
from ..resources.serving import (
    build_autoscaler,
    build_serving_deployment,
    build_serving_service,
    serving_name,
    serving_url,
)
from ..resources.workloads import JobSettings
from .common import Action, Create, Delete, Event, Patch
from .pipeline_world import RegisteredVersion, ServingWorld

__all__ = ["CRASH_LOOP_RESTARTS", "Rollout", "ServingDecision", "plan_serving", "rollout"]

CRASH_LOOP_RESTARTS = 3
"""Restarts of a new version's container after which it counts as a crash loop."""
FAILURES_KEPT = 10

RolloutState = Literal["complete", "progressing", "failed"]


@dataclass
class ServingDecision:
    """What the pipeline's status says of serving, and the writes that follow it."""

    state: ServingState
    condition: ConditionUpdate
    events: list[Event] = field(default_factory=list)
    writes: list[Action] = field(default_factory=list)
    """After the status: the failure is recorded before the Deployment is put back."""


@dataclass(frozen=True)
class Rollout:
    state: RolloutState
    reason: str = ""
    message: str = ""


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
    events: list[Event] = []
    deployed = _deployed_version(world.deployment)
    if deployed in registered and deployed != served and deployed not in _names(failures):
        outcome = rollout(world.deployment or {}, world.pods, deployed)
        if outcome.state == "complete":
            events.append(Event("Normal", "RolledOut", f"{deployed} serves on every pod"))
            served = deployed
        elif outcome.state == "failed":
            failure = RolloutFailure(
                version=deployed,
                generation=_generation(registered[deployed]),
                reason=outcome.reason,
                message=outcome.message[:1000],
                time=now,
            )
            failures = [failure, *failures][:FAILURES_KEPT]
            back = f"{served} serves instead" if served else "no version serves"
            events.append(
                Event(
                    "Warning",
                    "RolloutFailed",
                    f"{deployed} cannot serve: {outcome.reason}: {outcome.message}; {back}",
                )
            )
    desired = _desired(versions)
    failed = {f.version: f for f in failures}
    target = None if desired is None else (served if desired.name in failed else desired.name)
    if target is not None and target != deployed and target != served:
        events.append(
            Event(
                "Normal",
                "RollingOut",
                f"Rolling out {target}; {served or 'nothing'} answers meanwhile",
            )
        )
    writes = _writes(pipeline, registered.get(target or ""), world, settings)
    exists = world.deployment is not None or bool(writes)
    state = ServingState(
        deployment=serving_name(pipeline.spec.model.name) if exists else None,
        url=serving_url(pipeline.namespace, pipeline.spec.model.name) if exists else None,
        version=served if target is not None else None,
        rolling_out=target if target != served else None,
        replicas=_count(world.deployment, "spec", "replicas"),
        ready_replicas=_count(world.deployment, "status", "readyReplicas"),
        failures=failures,
    )
    condition = _condition(pipeline, desired, failed, state)
    return ServingDecision(state, condition, events, writes)


def rollout(
    deployment: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], version: str
) -> Rollout:
    """How the rollout of `version` stands: its pods' own verdicts first (a server that said
    why it cannot serve, a crash loop), then the Deployment's (progress deadline, complete)."""
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    generation = (deployment.get("metadata") or {}).get("generation", 0)
    for pod in pods:
        if (pod.get("metadata", {}).get("labels") or {}).get(LABEL_VERSION) != version:
            continue
        verdict = _pod_verdict(pod)
        if verdict is not None:
            return verdict
    if status.get("observedGeneration", 0) < generation:
        return Rollout("progressing")
    progressing: Mapping[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Progressing"), {}
    )
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        seconds = spec.get("progressDeadlineSeconds", 600)
        return Rollout(
            "failed",
            "ProgressDeadlineExceeded",
            f"not ready on every pod within {seconds} s (spec.serving.progressDeadlineSeconds): "
            f"{progressing.get('message', '')}",
        )
    replicas = int(spec.get("replicas", 1))
    done = (
        status.get("updatedReplicas", 0) >= replicas
        and status.get("availableReplicas", 0) >= replicas
        and status.get("replicas", 0) == replicas
    )
    return Rollout("complete" if done else "progressing")


def _pod_verdict(pod: Mapping[str, Any]) -> Rollout | None:
    """A failed start the server explained (its termination message), or a crash loop."""
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        for state in (container.get("state") or {}, container.get("lastState") or {}):
            terminated = state.get("terminated") or {}
            failure = parse_failure(str(terminated.get("message") or ""))
            if failure is not None and not failure.retryable:
                return Rollout("failed", failure.reason, failure.message)
        waiting = (container.get("state") or {}).get("waiting") or {}
        restarts = int(container.get("restartCount", 0))
        if waiting.get("reason") == "CrashLoopBackOff" and restarts >= CRASH_LOOP_RESTARTS:
            last = (container.get("lastState") or {}).get("terminated") or {}
            why = last.get("reason", "Error")
            code = last.get("exitCode", "?")
            detail = str(last.get("message") or "").strip().splitlines()[-1:] or [""]
            return Rollout(
                "failed",
                "CrashLoop",
                f"the server restarted {restarts} times (last: {why}, exit code {code}) "
                f"{detail[0]}".strip(),
            )
    return None


def _writes(
    pipeline: TrainingPipeline,
    version: RegisteredVersion | None,
    world: ServingWorld,
    settings: JobSettings,
) -> list[Action]:
    """Create or patch what serves `version`; with none to serve, scale to zero."""
    deployment = world.deployment
    if version is None:
        if deployment is None or (deployment.get("spec") or {}).get("replicas") == 0:
            return []
        stop = {"metadata": {"annotations": {SPEC_HASH: "scaled-to-zero"}}, "spec": {"replicas": 0}}
        return [Patch(DEPLOYMENTS, deployment["metadata"]["name"], stop)]
    autoscaler = build_autoscaler(pipeline)
    replicas = None if autoscaler is not None else pipeline.spec.serving.replicas
    if deployment is None and autoscaler is not None:
        replicas = pipeline.spec.serving.min_replicas  # the autoscaler takes over from there
    writes = _keep(
        DEPLOYMENTS,
        build_serving_deployment(pipeline, version.body, settings, replicas=replicas),
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
