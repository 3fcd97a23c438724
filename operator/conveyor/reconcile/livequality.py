"""The live-quality monitor's decisions: which versions of a model it watches, and what its
report becomes in ModelVersion.status.liveMetrics and in the Prometheus gauges.

The monitor runs inside the operator, driven by a timer on each model's Production version:
the operator already holds the S3 credentials and the right to write ModelVersion status, and
the RetrainPolicy triggers read the same figures from that status. One monitor per model
(feedback is logged per model, not per version) watches every version that may have logs in
the window: the Production one, the Candidates (a canary or a shadow serves them), and any
that left Production within the window.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from ..api.v1alpha1.modelversion import FeatureDrift, LiveMetrics, SameRequestsMetrics
from ..features.livequality import VersionReport
from ..training.metrics import live_metric_name

__all__ = [
    "DRIFT_METHODS",
    "Watched",
    "gauge_drift",
    "live_metric_name",
    "live_metrics_status",
    "watched_versions",
]

DRIFT_METHODS = ("psi", "ks", "chi2", "cramers_v")
"""The drift figures exported as gauges (the p-value stays in status)."""
_SERVING_STAGES = frozenset({"Production", "Candidate"})


@dataclass(frozen=True)
class Watched:
    """A version the monitor reads the logs of."""

    name: str
    version: int
    task: str
    card_uri: str | None


def watched_versions(
    items: Iterable[Mapping[str, Any]], now: datetime, window_seconds: float
) -> list[Watched]:
    """The versions of one model that may have logs in the window, by version number."""
    since = now - timedelta(seconds=window_seconds)
    watched = []
    for item in items:
        spec, status = item.get("spec") or {}, item.get("status") or {}
        stages = {spec.get("stage"), status.get("stage")}
        if stages & _SERVING_STAGES or _left_production_since(status, since):
            watched.append(
                Watched(
                    name=item["metadata"]["name"],
                    version=int(spec["version"]),
                    task=str(spec.get("task", "classification")),
                    card_uri=(spec.get("artifact") or {}).get("cardUri"),
                )
            )
    return sorted(watched, key=lambda w: w.version)


def _left_production_since(status: Mapping[str, Any], since: datetime) -> bool:
    history = status.get("stageHistory") or []
    for before, after in pairwise(history):
        if before.get("stage") == "Production" and _time(after.get("time")) >= since:
            return True
    return False


def _time(text: Any) -> datetime:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def live_metrics_status(report: VersionReport, *, read: int, unreadable: int) -> dict[str, Any]:
    """The status.liveMetrics block of a report (wire form); non-finite figures left out."""
    block = LiveMetrics(
        window_seconds=report.window_seconds,
        predictions=report.served,
        labelled_samples=report.labelled,
        metrics=_finite(report.metrics),
        drift={
            name: FeatureDrift.model_validate(_finite(scores))
            for name, scores in report.drift.items()
        },
        same_requests=[
            SameRequestsMetrics(
                version=other,
                labelled_samples=figures.labelled,
                metrics=_finite(figures.metrics),
                other_metrics=_finite(figures.other_metrics),
            )
            for other, figures in sorted(report.same_requests.items())
        ],
        observed_objects=read,
        unreadable_objects=unreadable,
        last_updated=report.updated,
    )
    return block.to_wire()


def gauge_drift(report: VersionReport) -> dict[tuple[str, str], float]:
    """(feature, method) → value of the exported drift figures."""
    return {
        (name, method): value
        for name, scores in report.drift.items()
        for method, value in scores.items()
        if method in DRIFT_METHODS and math.isfinite(value)
    }


def _finite(figures: Mapping[str, float]) -> dict[str, float]:
    return {name: value for name, value in figures.items() if math.isfinite(value)}
