"""A version pinned in Git (`spec.promotion.version`): what serves is what the pin names.

GitOps keeps the desired state in Git, so while a pin is set the promotion policy promotes
nothing and a version promoted by hand goes back to the pin (as Argo CD reverts a drifted
object). The operator does not move the pin itself: when a registered Candidate beats the
pinned version on the pipeline's metric, status says so and a person changes Git. Pure: the
pipeline and its registered versions in, a decision out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..api.v1alpha1 import TrainingPipeline
from ..training.metrics import greater_is_better
from .pipeline_world import RegisteredVersion

__all__ = ["Pin", "pin_decision"]

_NEVER_SERVED = ("Rejected",)


@dataclass(frozen=True)
class Pin:
    """What a pin means now."""

    version: RegisteredVersion | None
    """The pinned version, when it is registered and may serve."""
    promote: bool = False
    """Its spec.stage is not Production yet: set it (the rollout follows)."""
    problem: tuple[str, str] | None = None
    """(reason, message) when the pin cannot be served: only a change of the pin helps."""
    better: dict[str, Any] | None = None
    """status.betterCandidate: a Candidate that beats the pinned version."""


def pin_decision(pipeline: TrainingPipeline, versions: Sequence[RegisteredVersion]) -> Pin | None:
    """None without a pin; otherwise the version to serve, or why it cannot be."""
    number = pipeline.spec.promotion.version
    if number is None:
        return None
    model = pipeline.spec.model.name
    pinned = next((v for v in versions if v.version == number), None)
    if pinned is None:
        known = ", ".join(str(v.version) for v in sorted(versions, key=lambda v: v.version))
        return Pin(
            None,
            problem=(
                "PinnedVersionNotFound",
                f"spec.promotion.version {number}: model {model} has no registered version "
                f"{number} (registered: {known or 'none'}); pin one of them, or remove the pin",
            ),
        )
    failed = [gate.get("name", "?") for gate in _gates(pinned) if not gate.get("passed", False)]
    if failed or pinned.stage in _NEVER_SERVED:
        why = f"failed its gates ({', '.join(failed)})" if failed else f"is {pinned.stage}"
        return Pin(
            None,
            problem=(
                "PinnedVersionRejected",
                f"spec.promotion.version {number}: {pinned.name} {why} and is never served; "
                "pin a version that passed its gates",
            ),
        )
    return Pin(
        pinned,
        promote=pinned.stage != "Production",
        better=_better_candidate(pipeline, pinned, versions),
    )


def _better_candidate(
    pipeline: TrainingPipeline, pinned: RegisteredVersion, versions: Sequence[RegisteredVersion]
) -> dict[str, Any] | None:
    """The best Candidate that passed its gates and beats the pinned version's metric."""
    # The metric the runs were judged on: the spec's, else the one the version recorded.
    metric = pipeline.spec.metric or str((pinned.body.get("spec") or {}).get("metric") or "")
    pinned_score = _metric(pinned, metric) if metric else None
    if pinned_score is None:
        return None
    sign = 1.0 if greater_is_better(metric) else -1.0
    scored = [
        (score, v)
        for v in versions
        if v.stage == "Candidate"
        and v.version != pinned.version
        and all(gate.get("passed", False) for gate in _gates(v))
        and (score := _metric(v, metric)) is not None
        and sign * (score - pinned_score) > 0
    ]
    if not scored:
        return None
    score, best = max(scored, key=lambda item: (sign * item[0], item[1].version))
    return {
        "name": best.name,
        "metric": metric,
        "score": score,
        "pinnedScore": pinned_score,
        "message": (
            f"{best.name} ({metric} {score:.4g}) beats the pinned {pinned.name} "
            f"({pinned_score:.4g}): set spec.promotion.version to {best.version} in Git "
            "to roll it out"
        ),
    }


def _metric(version: RegisteredVersion, metric: str) -> float | None:
    value = ((version.body.get("spec") or {}).get("metrics") or {}).get(metric)
    return float(value) if isinstance(value, int | float) else None


def _gates(version: RegisteredVersion) -> list[Mapping[str, Any]]:
    gates = (version.body.get("spec") or {}).get("gates") or []
    return [gate for gate in gates if isinstance(gate, Mapping)]
