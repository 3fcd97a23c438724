"""How a new Production version reaches users (`spec.serving.rollout`), and how its rollout
stands (`status.serving.rollout`).

RollingUpdate replaces the serving pods one by one; Canary runs the new version beside the
stable one behind the same Service, its share of pods raised step by step and judged at each
step against the stable version on their own serving metrics.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from .common import ApiModel

__all__ = [
    "CanaryStep",
    "Judgement",
    "Rollout",
    "RolloutPhase",
    "RolloutState",
    "RolloutStrategy",
    "ShadowState",
]

RolloutStrategy = Literal["RollingUpdate", "Canary", "Shadow"]
RolloutPhase = Literal["Progressing", "Paused", "Completed", "Aborted"]


class CanaryStep(ApiModel):
    """One step of a canary: the new version's share of the serving pods, held for a time."""

    weight: int = Field(ge=1, le=99)
    """Percent of the serving pods that run the new version. With N serving pods the share
    moves in steps of 1/N (the Service spreads connections over ready pods): the canary gets
    round(N x weight / 100) pods, at least 1, and the stable version keeps at least 1, so
    status.serving.rollout.actualWeight says the share really served."""
    pause_seconds: int = Field(default=60, ge=0, le=86400)
    """How long the step is held once its pods are ready, before it is judged and advanced."""


def _default_steps() -> list[CanaryStep]:
    return [CanaryStep(weight=10, pause_seconds=60), CanaryStep(weight=50, pause_seconds=60)]


class Rollout(ApiModel):
    """How a newly promoted version replaces the one serving."""

    strategy: RolloutStrategy = "RollingUpdate"
    """RollingUpdate: the serving pods are replaced one by one, each new pod ready before an
    old one goes. Canary: the new version serves a share of the pods beside the stable one,
    raised at each step and judged against it; it is promoted after the last step or aborted
    back to the stable version. Shadow: the newest Candidate (newer than Production) predicts
    a copy of the serving pods' requests inside them, logged under its own version and never
    answered, so its live metrics stand beside Production's; promotion.policy live promotes it
    when it is better. A version set to Production under Shadow rolls out as RollingUpdate."""
    shadow_share: float = Field(default=1.0, gt=0, le=1)
    """Shadow: the share of the logged requests the candidate predicts too."""
    steps: list[CanaryStep] = Field(default_factory=_default_steps, max_length=20)
    """Canary: the shares of the steps, increasing; after the last step the new version takes
    every pod (100%). Default: 10% for 60 s, 50% for 60 s."""
    max_error_rate: float = Field(default=0.05, ge=0, le=1)
    """Canary: the largest share of the new version's prediction requests answered with a
    5xx; above it the canary is aborted."""
    max_p99_latency_ratio: float = Field(default=2.0, gt=0)
    """Canary: the new version's p99 latency over the stable version's may not exceed this."""
    min_requests: int = Field(default=20, ge=1)
    """Canary: a step is judged once the new version answered at least this many prediction
    requests; a step without them holds (no traffic, no verdict)."""
    min_labelled_samples: int = Field(default=100, ge=1)
    """Canary: once both versions report at least this many labelled live samples
    (ModelVersion status.liveMetrics), their live scores are compared too."""
    max_live_score_drop: float = Field(default=0.05, ge=0)
    """Canary: the largest drop of the new version's live score below the stable version's."""


class Judgement(ApiModel):
    """The figures a canary step was last judged on (prediction requests since each pod
    started: the canary's pods are all new; the stable pods' history is its baseline)."""

    time: datetime
    """When they were read."""
    canary_requests: int = 0
    """Prediction requests the canary's pods answered."""
    canary_error_rate: float | None = None
    """Share of them answered with a 5xx."""
    canary_p99_seconds: float | None = None
    """Their p99 latency, from the pods' histograms."""
    stable_requests: int = 0
    """Prediction requests the stable version's pods answered."""
    stable_error_rate: float | None = None
    """Share of them answered with a 5xx."""
    stable_p99_seconds: float | None = None
    """Their p99 latency."""
    latency_ratio: float | None = None
    """canaryP99Seconds over stableP99Seconds."""
    canary_live_score: float | None = None
    """The canary version's live score, when enough labelled samples exist."""
    stable_live_score: float | None = None
    """The stable version's live score, when enough labelled samples exist."""
    verdict: Literal["Pass", "Hold", "Fail"] = "Hold"
    """Pass (the step may advance), Hold (too little data yet) or Fail (aborted)."""
    message: str = ""
    """Why."""


class ShadowState(ApiModel):
    """The candidate the serving pods shadow, and how it compares with Production."""

    version: str
    """The candidate ModelVersion predicting a copy of the requests."""
    production: str
    """The ModelVersion answering them."""
    share: float = Field(default=1.0, gt=0, le=1)
    """The share of the logged requests it predicts."""
    metric: str | None = None
    """The live metric they are compared on."""
    labelled: int = 0
    """Labelled live requests both answered: the two are compared on these only."""
    candidate_score: float | None = None
    """The candidate's live score on them, once the monitor measured it."""
    production_score: float | None = None
    """Production's live score on the same requests."""
    message: str = ""
    """The comparison in words, or what it waits for."""


class RolloutState(ApiModel):
    """The last canary rollout of the model, as the operator drives it."""

    strategy: RolloutStrategy = "Canary"
    """The strategy it follows."""
    canary_version: str
    """The ModelVersion being rolled out."""
    stable_version: str
    """The ModelVersion serving meanwhile, and again after an abort."""
    phase: RolloutPhase = "Progressing"
    """Progressing (the step's pods are starting, or the promotion rolls out), Paused (the
    step is held and judged), Completed, Aborted."""
    step: int = Field(default=0, ge=0)
    """The current step (0-based); equal to the number of steps while promoting."""
    weight: int = Field(default=0, ge=0, le=100)
    """The step's configured share, in percent."""
    actual_weight: float = Field(default=0, ge=0, le=100)
    """The share of the ready serving pods the canary has, in percent (steps of 1/N)."""
    canary_replicas: int = Field(default=0, ge=0)
    """Pods of the canary Deployment."""
    stable_replicas: int = Field(default=0, ge=0)
    """Pods of the stable Deployment."""
    step_started: datetime | None = None
    """When the current step's pods were all ready: its pause counts from there."""
    reason: str = ""
    """Why the rollout stands where it does (CanaryErrorRate, CanaryLatency, ...)."""
    message: str = ""
    """What a person should know."""
    judgement: Judgement | None = None
    """The figures of the last judgement."""
