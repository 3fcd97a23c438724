"""A version's serving figures, read from its pods' own /metrics (serving/metrics.py):
prediction requests, those answered with a 5xx, and their latency histogram.

Pure: the handler fetches each pod's exposition text; this reads it and sums the pods of one
version. Only the prediction endpoints count (`infer`, `predict`): probes, metadata and
feedback requests say nothing of how the model answers. Counters are totals since each pod
started — a canary's pods are all new, so theirs cover the canary's life; a pod that restarts
starts again from zero, which loses its history but never counts it twice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "PREDICTION_ENDPOINTS",
    "ServingFigures",
    "parse_serving_metrics",
    "quantile",
    "total",
]

PREDICTION_ENDPOINTS = frozenset({"infer", "predict"})
_REQUESTS = "conveyor_serving_requests_total"
_BUCKET = "conveyor_serving_request_duration_seconds_bucket"


@dataclass(frozen=True)
class ServingFigures:
    """One version's prediction requests (over one pod or several)."""

    requests: int = 0
    errors: int = 0
    """Requests answered with a 5xx."""
    buckets: Mapping[float, float] = field(default_factory=dict)
    """The latency histogram: upper bound (seconds, inf last) → cumulative count."""
    pods: int = 0
    """Pods whose figures were read."""

    def __add__(self, other: ServingFigures) -> ServingFigures:
        bounds = set(self.buckets) | set(other.buckets)
        return ServingFigures(
            requests=self.requests + other.requests,
            errors=self.errors + other.errors,
            buckets={b: self.buckets.get(b, 0) + other.buckets.get(b, 0) for b in bounds},
            pods=self.pods + other.pods,
        )

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def p99(self) -> float | None:
        return quantile(0.99, self.buckets)


def total(figures: Iterable[ServingFigures]) -> ServingFigures:
    return sum(figures, ServingFigures())


def parse_serving_metrics(text: str) -> ServingFigures:
    """One pod's figures from its Prometheus exposition; ValueError when it is not one."""
    requests = errors = 0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("endpoint") not in PREDICTION_ENDPOINTS:
                continue
            if sample.name == _REQUESTS:
                count = int(sample.value)
                requests += count
                if sample.labels.get("code", "").startswith("5"):
                    errors += count
            elif sample.name == _BUCKET:
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0) + sample.value
    return ServingFigures(requests, errors, buckets, pods=1)


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The q-quantile of a cumulative histogram, interpolated inside its bucket as
    Prometheus' histogram_quantile does; None without observations. An answer in the +Inf
    bucket is the largest finite bound: the histogram knows no more."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower
