"""Shadow: which candidate the serving pods shadow, and whether the live figures promote it.

With `spec.serving.rollout.strategy: Shadow` the newest Candidate newer than the version
serving — registered by the operator, not failed, not rolling out — is loaded by the serving
pods beside the served version and predicts a copy of the logged requests (serving/app.py).
Both versions' predictions reach the prediction log under the same request ids, so feedback
labels both and the monitor measures both (ModelVersion status.liveMetrics).

`promotion.policy: live` promotes the candidate once both versions have at least
`minLabelledSamples` labelled live requests and the candidate's live score beats Production's by
`beatProductionBy` (higher for scores, lower for errors). Pure: the figures come from the
versions' status.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from ..api.v1alpha1 import TrainingPipeline
from ..api.v1alpha1.rollout import ShadowState
from .canary import LiveScore, live_score
from .common import Event
from .pipeline_world import RegisteredVersion

__all__ = ["ShadowDecision", "plan_shadow", "shadow_candidate", "shadow_problems"]


@dataclass
class ShadowDecision:
    state: ShadowState
    promote: bool = False
    event: Event | None = None


def shadow_problems(pipeline: TrainingPipeline) -> list[str]:
    """promotion.policy live judges live figures only a shadowed candidate has."""
    if pipeline.spec.promotion.policy == "live" and (
        pipeline.spec.serving.rollout.strategy != "Shadow"
    ):
        return [
            "spec.promotion.policy live promotes a candidate on its live figures, which only a "
            "shadow gives it: set spec.serving.rollout.strategy to Shadow, or use auto or manual"
        ]
    return []


def shadow_candidate(
    pipeline: TrainingPipeline,
    versions: Sequence[RegisteredVersion],
    served: RegisteredVersion | None,
    failed: Collection[str],
) -> RegisteredVersion | None:
    """The version the serving pods shadow: the newest Candidate newer than `served`."""
    if pipeline.spec.serving.rollout.strategy != "Shadow" or served is None:
        return None
    candidates = [
        v
        for v in versions
        if v.stage == "Candidate" and v.version > served.version and v.name not in failed
    ]
    return max(candidates, key=lambda v: v.version, default=None)


def plan_shadow(
    pipeline: TrainingPipeline, candidate: RegisteredVersion, production: RegisteredVersion
) -> ShadowDecision:
    """The live comparison of `candidate` with `production`, and whether policy live promotes."""
    promotion = pipeline.spec.promotion
    metric = pipeline.spec.metric or (
        "rmse" if pipeline.status.resolved_task == "regression" else "accuracy"
    )
    ours, theirs = _score(candidate, metric), _score(production, metric)
    state = ShadowState(
        version=candidate.name,
        production=production.name,
        share=pipeline.spec.serving.rollout.shadow_share,
        candidate_score=ours.score if ours else None,
        candidate_labelled=ours.labelled_samples if ours else 0,
        production_score=theirs.score if theirs else None,
        production_labelled=theirs.labelled_samples if theirs else 0,
    )
    needed = promotion.min_labelled_samples
    labelled = min(state.candidate_labelled, state.production_labelled)
    if ours is None or theirs is None or labelled < needed:
        state.message = (
            f"{candidate.name} shadows {production.name}: waiting for {needed} labelled live "
            f"requests each (candidate {state.candidate_labelled}, production "
            f"{state.production_labelled})"
        )
        return ShadowDecision(state)
    state.metric = _metric_name(candidate, metric)
    gain = ours.score - theirs.score if ours.higher_is_better else theirs.score - ours.score
    margin = promotion.beat_production_by
    better = gain > margin if margin == 0 else gain >= margin
    figures = (
        f"live {state.metric} {ours.score:.4f} against {theirs.score:.4f} on "
        f"{state.candidate_labelled} and {state.production_labelled} labelled requests"
    )
    if not better:
        state.message = f"{candidate.name} does not beat {production.name} by {margin}: {figures}"
        return ShadowDecision(state)
    if promotion.policy != "live":
        state.message = (
            f"{candidate.name} beats {production.name}: {figures}; promotion.policy is "
            f"{promotion.policy}, so it waits for a promotion"
        )
        return ShadowDecision(state)
    state.message = f"{candidate.name} promoted over {production.name} (policy live): {figures}"
    return ShadowDecision(state, True, Event("Normal", "Promoted", state.message))


def _score(version: RegisteredVersion, metric: str) -> LiveScore | None:
    return live_score((version.body.get("status") or {}).get("liveMetrics"), metric)


def _metric_name(version: RegisteredVersion, metric: str) -> str | None:
    """The metric live_score compared: the pipeline's when the monitor computes it live."""
    live = (version.body.get("status") or {}).get("liveMetrics") or {}
    metrics = live.get("metrics") or {}
    return next((m for m in (metric, "accuracy", "rmse") if m in metrics), None)
