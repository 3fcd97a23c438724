"""Shadow: which candidate the serving pods shadow, and whether the live figures promote it.

With `spec.serving.rollout.strategy: Shadow` the newest Candidate newer than the version
serving — registered by the operator, not failed, not rolling out — is loaded by the serving
pods beside the served version and predicts a copy of the logged requests (serving/app.py).
Both versions' predictions reach the prediction log under the same request ids, so feedback
labels both and the monitor measures both on the requests both answered (the candidate's
status.liveMetrics.sameRequests): Production's requests from before the shadow started, or
those a shadow share below 1 skipped, do not count.

`promotion.policy: live` promotes the candidate once at least `minLabelledSamples` labelled
live requests were answered by both and the candidate's live score on them beats Production's
by `beatProductionBy` (higher for scores, lower for errors). Pure: the figures come from the
versions' status.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from ..api.v1alpha1 import TrainingPipeline
from ..api.v1alpha1.rollout import ShadowState
from .canary import live_score
from .common import Event
from .livequality import live_metric_name
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
    same = _same_requests(candidate, production)
    ours = live_score(same, metric)
    theirs = live_score({**same, "metrics": same.get("otherMetrics")}, metric)
    state = ShadowState(
        version=candidate.name,
        production=production.name,
        share=pipeline.spec.serving.rollout.shadow_share,
        labelled=int(same.get("labelledSamples") or 0),
        candidate_score=ours.score if ours else None,
        production_score=theirs.score if theirs else None,
    )
    needed = promotion.min_labelled_samples
    if ours is None or theirs is None or state.labelled < needed:
        state.message = (
            f"{candidate.name} shadows {production.name}: waiting for {needed} labelled live "
            f"requests both answered ({state.labelled} so far)"
        )
        return ShadowDecision(state)
    state.metric = live_metric_name(same.get("metrics") or {}, metric)
    gain = ours.score - theirs.score if ours.higher_is_better else theirs.score - ours.score
    margin = promotion.beat_production_by
    better = gain > margin if margin == 0 else gain >= margin
    figures = (
        f"live {state.metric} {ours.score:.4f} against {theirs.score:.4f} on the same "
        f"{state.labelled} labelled requests"
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


def _same_requests(candidate: RegisteredVersion, production: RegisteredVersion) -> dict[str, Any]:
    """The monitor's figures of `candidate` beside `production` on the requests both answered
    (candidate status.liveMetrics.sameRequests); empty until there are any."""
    live = (candidate.body.get("status") or {}).get("liveMetrics") or {}
    for entry in live.get("sameRequests") or []:
        if isinstance(entry, dict) and entry.get("version") == production.version:
            return entry
    return {}
