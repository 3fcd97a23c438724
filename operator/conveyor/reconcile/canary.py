"""The canary's step machine: how many pods each version gets, when a step is judged, and
whether the new version advances, is promoted or is aborted. Pure: serving.py passes the
spec, the last state (status.serving.rollout), what is ready, the versions' own serving
figures and the clock; it carries the decision out.

The mechanism is Argo Rollouts' basic canary, without a mesh: the stable Deployment (the
version serving so far) and `<model>-canary` (the new one) behind the model's one Service,
which spreads connections over every ready pod. A step's weight is therefore a share of pods:
with N serving pods it moves in steps of 1/N, the canary never has fewer than 1 pod and the
stable version never fewer than 1 before the promotion (N = 1 serves 1 pod of each: 50%).

A step starts Progressing (its pods starting), is Paused once every pod is ready — its pause
counts from there — and is judged at every reconcile: figures that break a bound abort at once,
however early; figures within bounds advance it when the pause is over; too few requests hold
it. After the last step the new version is promoted: serving.py rolls it out on the stable
Deployment, and the canary Deployment goes once that is done.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ..api.v1alpha1.rollout import Judgement, Rollout, RolloutState
from .common import Event
from .livequality import live_metric_name
from .serving_figures import ServingFigures

__all__ = [
    "CanaryDecision",
    "CanaryWorld",
    "LiveScore",
    "judge",
    "live_score",
    "split_replicas",
    "step_canary",
    "step_problems",
]

Verdict = Literal["hold", "promote", "abort"]


@dataclass(frozen=True)
class LiveScore:
    """A version's live metric from labelled feedback (ModelVersion status.liveMetrics)."""

    score: float
    labelled_samples: int
    higher_is_better: bool = True


@dataclass(frozen=True)
class CanaryWorld:
    """What the step machine observes, reduced to what it decides on."""

    now: datetime
    total_replicas: int
    """N: the serving pods the model runs (spec.serving.replicas, or the autoscaler's count)."""
    canary_ready: int = 0
    """Ready pods of the canary Deployment, when it runs the step's pod template."""
    stable_ready: int = 0
    """Ready pods of the stable Deployment."""
    step_ready: bool = False
    """Both Deployments run the step's replicas, every pod ready."""
    canary: ServingFigures | None = None
    stable: ServingFigures | None = None
    canary_live: LiveScore | None = None
    stable_live: LiveScore | None = None


@dataclass
class CanaryDecision:
    verdict: Verdict
    state: RolloutState
    stable_replicas: int
    canary_replicas: int
    events: list[Event] = field(default_factory=list)


def split_replicas(total: int, weight: int) -> tuple[int, int]:
    """(stable, canary) pods for `weight` percent of `total`: rounded half up, at least one
    each (a share of zero judges nothing, and the stable version keeps answering until the
    promotion)."""
    canary = max(1, min(int(total * weight / 100 + 0.5), total - 1))
    return max(1, total - canary), canary


def step_problems(config: Rollout) -> list[str]:
    """What the schema cannot say of the steps: their weights increase."""
    weights = [step.weight for step in config.steps]
    if config.strategy == "Canary" and weights != sorted(set(weights)):
        return [f"spec.serving.rollout.steps: the weights must increase, not {weights}"]
    return []


def step_canary(
    config: Rollout,
    previous: RolloutState | None,
    stable: str,
    canary: str,
    world: CanaryWorld,
) -> CanaryDecision:
    """The next move of the canary of `canary` beside `stable`."""
    state, events = _current(previous, stable, canary)
    steps = config.steps
    if state.step >= len(steps):
        return _promote(state, world, events)
    weight = steps[state.step].weight
    stable_n, canary_n = split_replicas(world.total_replicas, weight)
    state = state.model_copy(
        update={
            "weight": weight,
            "stable_replicas": stable_n,
            "canary_replicas": canary_n,
            "actual_weight": _share(world.canary_ready, world.stable_ready),
        }
    )
    judgement = judge(config, world)
    state = state.model_copy(update={"judgement": judgement})
    where = f"step {state.step + 1}/{len(steps)} ({weight}%, {_pods(state, world)})"
    if judgement.verdict == "Fail":
        return _abort(state, judgement, where, stable_n, canary_n, events)
    if not world.step_ready:
        message = f"Canary {canary} at {where}: starting its pods; {stable} serves the rest"
        state = state.model_copy(
            update={"phase": "Progressing", "step_started": None, "message": message}
        )
        return CanaryDecision("hold", state, stable_n, canary_n, events)
    started = state.step_started if state.phase == "Paused" else None
    started = started or world.now
    held = (world.now - started).total_seconds()
    pause = steps[state.step].pause_seconds
    if held >= pause and judgement.verdict == "Pass":
        return _advance(state, config, canary, where, world, events)
    wait = f"held {int(held)}/{pause} s" if held < pause else "its pause is over"
    message = f"Canary {canary} at {where}, {wait}: {judgement.message}"
    state = state.model_copy(
        update={"phase": "Paused", "step_started": started, "message": message, "reason": ""}
    )
    return CanaryDecision("hold", state, stable_n, canary_n, events)


def judge(config: Rollout, world: CanaryWorld) -> Judgement:
    """The canary's figures against its bounds and the stable version's."""
    canary, stable = world.canary or ServingFigures(), world.stable or ServingFigures()
    c99, s99 = canary.p99, stable.p99
    ratio = c99 / s99 if c99 is not None and s99 else None
    figures = Judgement(
        time=world.now,
        canary_requests=canary.requests,
        canary_error_rate=canary.error_rate,
        canary_p99_seconds=c99,
        stable_requests=stable.requests,
        stable_error_rate=stable.error_rate,
        stable_p99_seconds=s99,
        latency_ratio=ratio,
        canary_live_score=world.canary_live.score if world.canary_live else None,
        stable_live_score=world.stable_live.score if world.stable_live else None,
    )
    verdict, message = _verdict(config, world, figures)
    return figures.model_copy(update={"verdict": verdict, "message": message})


def _verdict(
    config: Rollout, world: CanaryWorld, f: Judgement
) -> tuple[Literal["Pass", "Hold", "Fail"], str]:
    if f.canary_requests < config.min_requests:
        return "Hold", (
            f"the canary answered {f.canary_requests} of the {config.min_requests} prediction "
            "requests a judgement needs (spec.serving.rollout.minRequests)"
        )
    rate = f.canary_error_rate or 0.0
    errors = (
        f"{rate:.1%} of the canary's {f.canary_requests} prediction requests answered 5xx "
        f"(maxErrorRate {config.max_error_rate:.1%}; stable: {_percent(f.stable_error_rate)})"
    )
    if rate > config.max_error_rate:
        return "Fail", f"CanaryErrorRate: {errors}"
    if f.latency_ratio is None:
        return "Hold", f"{errors}; no p99 latency of the stable version to compare with yet"
    latency = (
        f"p99 {_ms(f.canary_p99_seconds)} against the stable's {_ms(f.stable_p99_seconds)}: "
        f"ratio {f.latency_ratio:.2f} (maxP99LatencyRatio {config.max_p99_latency_ratio:g})"
    )
    if f.latency_ratio > config.max_p99_latency_ratio:
        return "Fail", f"CanaryLatency: {latency}"
    live = _live(config, world)
    if live is not None and live.startswith("CanaryLiveScore"):
        return "Fail", live
    return "Pass", "; ".join(part for part in (errors, latency, live) if part)


def _live(config: Rollout, world: CanaryWorld) -> str | None:
    """The live-score comparison once both versions have enough labelled samples."""
    canary, stable = world.canary_live, world.stable_live
    if canary is None or stable is None:
        return None
    least = min(canary.labelled_samples, stable.labelled_samples)
    if least < config.min_labelled_samples:
        return f"live scores wait for {config.min_labelled_samples} labelled samples ({least})"
    drop = stable.score - canary.score if stable.higher_is_better else canary.score - stable.score
    text = (
        f"live score {canary.score:.4g} against the stable's {stable.score:.4g} on "
        f"{least}+ labelled samples (maxLiveScoreDrop {config.max_live_score_drop:g})"
    )
    return f"CanaryLiveScore: {text}" if drop > config.max_live_score_drop else text


def _current(
    previous: RolloutState | None, stable: str, canary: str
) -> tuple[RolloutState, list[Event]]:
    """The rollout under way for this pair of versions, or a new one from its first step."""
    if (
        previous is not None
        and (previous.canary_version, previous.stable_version) == (canary, stable)
        and previous.phase in ("Progressing", "Paused")
    ):
        return previous, []
    fresh = RolloutState(canary_version=canary, stable_version=stable)
    started = Event("Normal", "CanaryStarted", f"Canary of {canary} beside {stable} started")
    return fresh, [started]


def _advance(
    state: RolloutState,
    config: Rollout,
    canary: str,
    where: str,
    world: CanaryWorld,
    events: list[Event],
) -> CanaryDecision:
    judged = state.judgement.message if state.judgement else ""
    following = state.step + 1
    passed = Event("Normal", "CanaryStepPassed", f"{canary} passed {where}: {judged}")
    state = state.model_copy(
        update={"step": following, "phase": "Progressing", "step_started": None}
    )
    if following >= len(config.steps):
        return _promote(state, world, [*events, passed])
    stable_n, canary_n = split_replicas(world.total_replicas, config.steps[following].weight)
    state = state.model_copy(
        update={
            "weight": config.steps[following].weight,
            "stable_replicas": stable_n,
            "canary_replicas": canary_n,
            "message": f"Canary {canary} advances to step {following + 1}/{len(config.steps)}",
        }
    )
    return CanaryDecision("hold", state, stable_n, canary_n, [*events, passed])


def _promote(state: RolloutState, world: CanaryWorld, events: list[Event]) -> CanaryDecision:
    """Every step passed: the new version goes onto the stable Deployment (rolling update,
    every new pod ready before an old one goes); the canary keeps its pods meanwhile."""
    canary = state.canary_version
    message = f"Canary {canary} passed every step: rolling it out on every pod"
    first = state.phase != "Progressing" or state.weight != 100
    state = state.model_copy(
        update={"phase": "Progressing", "weight": 100, "message": message, "reason": ""}
    )
    if first:
        events = [*events, Event("Normal", "CanaryPromoting", message)]
    return CanaryDecision("promote", state, world.total_replicas, state.canary_replicas, events)


def _abort(
    state: RolloutState,
    judgement: Judgement,
    where: str,
    stable_n: int,
    canary_n: int,
    events: list[Event],
) -> CanaryDecision:
    reason, _, why = judgement.message.partition(": ")
    message = (
        f"Canary {state.canary_version} aborted at {where}: {why}; "
        f"{state.stable_version} serves every pod again"
    )
    state = state.model_copy(update={"phase": "Aborted", "reason": reason, "message": message})
    aborted = Event("Warning", "CanaryAborted", message)
    return CanaryDecision("abort", state, stable_n, canary_n, [*events, aborted])


def _share(canary: int, stable: int) -> float:
    return round(100 * canary / (canary + stable), 1) if canary + stable else 0.0


def _pods(state: RolloutState, world: CanaryWorld) -> str:
    return (
        f"{state.actual_weight:g}% of ready pods: {world.canary_ready} canary, "
        f"{world.stable_ready} stable"
    )


def _percent(rate: float | None) -> str:
    return "no requests" if rate is None else f"{rate:.1%}"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


_LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})


def live_score(live_metrics: Mapping[str, Any] | None, metric: str) -> LiveScore | None:
    """A version's live score from its ModelVersion status.liveMetrics (the monitor's
    `labelledSamples` and `metrics`): the pipeline's metric when the monitor computes it live,
    else accuracy or rmse; None while there is none."""
    if not live_metrics:
        return None
    metrics = live_metrics.get("metrics") or {}
    name = live_metric_name(metrics, metric)
    if name is None or not isinstance(metrics[name], int | float):
        return None
    samples = int(live_metrics.get("labelledSamples") or 0)
    return LiveScore(float(metrics[name]), samples, name not in _LOWER_IS_BETTER)
