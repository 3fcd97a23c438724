"""Which model leads on a FeatureSet's data: the FeatureSet's `status.leader`.

Only metrics computed on the same rows are comparable, so the versions that compete are those
judged on one holdout (equal `spec.lineage.holdout` fingerprints: the same rows of the same
snapshot) — the holdout of the most recently trained version, so the leader follows the newest
data. From each pipeline its newest version on that holdout competes; Rejected and Archived
versions do not (the gates refused them, or a newer one replaced them). They are ranked by the
pipelines' metric — the one most of them use, as each version's card holds every standard
metric — in that metric's direction.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from ..api.v1alpha1 import ModelVersion
from ..api.v1alpha1.featureset import Leader
from ..training.metrics import greater_is_better

__all__ = ["leading_version"]

_RETIRED = frozenset({"Rejected", "Archived"})
_LISTED = 5


def leading_version(versions: Sequence[ModelVersion]) -> Leader | None:
    """The leader among `versions` (every version of the FeatureSet), or None when no version
    with a recorded holdout is in the running."""
    running = [version for version in versions if _competes(version)]
    if not running:
        return None
    newest = max(running, key=_recency)
    holdout = newest.spec.lineage.holdout
    on_holdout = [version for version in running if version.spec.lineage.holdout == holdout]
    per_pipeline: dict[str, ModelVersion] = {}
    for version in sorted(on_holdout, key=_recency):
        per_pipeline[version.spec.lineage.pipeline] = version
    metric = _common_metric(list(per_pipeline.values()), newest)
    scored = [v for v in per_pipeline.values() if _finite(v.spec.metrics.get(metric))]
    if not scored:
        return None
    sign = 1.0 if greater_is_better(metric) else -1.0
    # The best score; on a tie the version that has led longest (trained first) keeps the lead.
    best = max(scored, key=lambda v: (sign * v.spec.metrics[metric], -_recency(v)[0], v.name))
    assert holdout is not None  # _competes kept only versions with a holdout
    return Leader(
        version=best.name,
        pipeline=best.spec.lineage.pipeline,
        metric=metric,
        score=best.spec.metrics[metric],
        snapshot=best.spec.lineage.snapshot,
        holdout=holdout,
        compared=len(scored),
        message=_message(scored, running, holdout, metric, sign),
    )


def _competes(version: ModelVersion) -> bool:
    stage = version.status.stage or version.spec.stage
    deleting = bool(version.metadata.get("deletionTimestamp"))
    return bool(version.spec.lineage.holdout) and stage not in _RETIRED and not deleting


def _recency(version: ModelVersion) -> tuple[float, int]:
    trained = version.spec.lineage.trained_at
    return (trained.timestamp() if trained else 0.0, version.spec.version)


def _common_metric(versions: list[ModelVersion], newest: ModelVersion) -> str:
    counts = Counter(version.spec.metric for version in versions)
    most = max(counts.values())
    tied = sorted(metric for metric, count in counts.items() if count == most)
    return newest.spec.metric if newest.spec.metric in tied else tied[0]


def _message(
    scored: list[ModelVersion],
    running: list[ModelVersion],
    holdout: str,
    metric: str,
    sign: float,
) -> str:
    ranked = sorted(scored, key=lambda v: -sign * v.spec.metrics[metric])
    figures = ", ".join(f"{v.name} {v.spec.metrics[metric]:.4g}" for v in ranked)
    text = f"{metric} on holdout {holdout}: {figures}"
    elsewhere = sorted({v.name for v in running if v.spec.lineage.holdout != holdout})
    if elsewhere:
        listed = ", ".join(elsewhere[:_LISTED])
        more = f" and {len(elsewhere) - _LISTED} more" if len(elsewhere) > _LISTED else ""
        text += f"; not ranked (judged on another holdout): {listed}{more}"
    return text


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
