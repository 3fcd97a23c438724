"""The server's Prometheus metrics, on a registry of its own (one per app, so that tests can
build many apps in one process). Names follow Prometheus' conventions with the prefix
`conveyor_serving_`:

- `conveyor_serving_requests_total{endpoint, code}`: requests answered, by endpoint (the route,
  not the path: `infer`, `predict`, `model_metadata`, ...) and HTTP status code;
- `conveyor_serving_request_duration_seconds{endpoint}`: a histogram of the time from the
  request's arrival to its answer, body reading included;
- `conveyor_serving_predictions_total{class}`: rows predicted, by predicted class (regressors:
  `class=""`);
- `conveyor_serving_model_info{model, version, runtime, digest}`: 1 for the served version
  (runtime: onnx or sklearn; digest: the skops file's);
- `conveyor_serving_requests_in_flight`: requests being answered (a scrape counts itself);
- `conveyor_serving_ready`: 1 while the server reports ready;
- `conveyor_serving_log_records_written_total`, `conveyor_serving_log_records_dropped_total
  {reason}` (buffer_full, shutdown), `conveyor_serving_log_write_failures_total` and
  `conveyor_serving_log_buffered_records`: the prediction and feedback logs (`LogWriter`);
- `conveyor_serving_feedback_total{match}`: feedback records taken, by whether this pod had
  answered their request id recently (`known`) or not (`unknown`);
- `conveyor_serving_shadow_predictions_total{version, outcome}`: requests the shadow candidate
  predicted a copy of (`ok`) or failed to (`error`), and `conveyor_serving_shadow_ready{version}`:
  1 once it is loaded, 0 when it could not be.

A request costs a few dictionary updates: the counts become metric families at a scrape.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, Info, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .recorder import Recorder

__all__ = ["CONTENT_TYPE", "ServingMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
_PREFIX = "conveyor_serving"
# From a cached single-row answer (~0.1 ms) to a slow forest on a large batch.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _Latency:
    """One endpoint's histogram: a count per bucket (the last one +Inf), and the sum."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(_BUCKETS) + 1)
        self.total = 0.0


class ServingMetrics(Collector):
    """The request path's figures are plain counts on the event loop, turned into metric families
    at a scrape (a custom collector, as prometheus_client documents them): a Counter's and a
    Histogram's locked updates cost a microsecond a request, 3% of a single-row answer."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._info = Info(f"{_PREFIX}_model", "The served model version.", registry=self.registry)
        self.in_flight = 0
        """Requests being answered: the app counts them, the gauge reads the count at a scrape."""
        Gauge(
            f"{_PREFIX}_requests_in_flight",
            "Requests being answered (a scrape counts itself).",
            registry=self.registry,
        ).set_function(lambda: self.in_flight)
        self._ready = Gauge(
            f"{_PREFIX}_ready", "1 while the server reports ready.", registry=self.registry
        )
        self._requests: dict[tuple[str, int], int] = {}
        self._latency: dict[str, _Latency] = {}
        self._classes: dict[str, int] = {}
        self.recorder: Recorder | None = None
        """The logs' figures are read from it at a scrape."""
        self.shadow_version: int | None = None
        self.shadow_ready = False
        self.shadow_outcomes = {"ok": 0, "error": 0}
        self.registry.register(self)

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        key = (endpoint, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        latency = self._latency.get(endpoint)
        if latency is None:
            latency = self._latency[endpoint] = _Latency()
        latency.counts[bisect_left(_BUCKETS, seconds)] += 1  # the first bucket with le >= it
        latency.total += seconds

    def predictions(self, labels: np.ndarray, classified: bool) -> None:
        """Count one prediction per label (classifiers by class; a regressor's under "")."""
        if not classified:
            self._count_class("", len(labels))
        elif len(labels) == 1:
            self._count_class(str(labels[0]), 1)
        else:  # np.unique: a tenth of a Counter's time over a thousand numpy labels
            classes, counts = np.unique(labels, return_counts=True)
            for label, count in zip(classes.tolist(), counts.tolist(), strict=True):
                self._count_class(str(label), count)

    def _count_class(self, label: str, count: int) -> None:
        self._classes[label] = self._classes.get(label, 0) + count

    def model(self, *, model: str, version: str, runtime: str, digest: str) -> None:
        self._info.info({"model": model, "version": version, "runtime": runtime, "digest": digest})

    def ready(self, ready: bool) -> None:
        self._ready.set(1 if ready else 0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            f"{_PREFIX}_requests",
            "Requests answered, by endpoint and HTTP status code.",
            labels=["endpoint", "code"],
        )
        for (endpoint, status), count in sorted(self._requests.items()):
            requests.add_metric([endpoint, str(status)], count)
        yield requests
        latency = HistogramMetricFamily(
            f"{_PREFIX}_request_duration_seconds",
            "Time from a request's arrival to its answer, by endpoint.",
            labels=["endpoint"],
        )
        for endpoint, histogram in sorted(self._latency.items()):
            cumulative, buckets = 0, []
            for bound, count in zip([*map(str, _BUCKETS), "+Inf"], histogram.counts, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            latency.add_metric([endpoint], buckets, histogram.total)
        yield latency
        predictions = CounterMetricFamily(
            f"{_PREFIX}_predictions",
            "Rows predicted, by predicted class (empty for regressors).",
            labels=["class"],
        )
        for label, count in sorted(self._classes.items()):
            predictions.add_metric([label], count)
        yield predictions
        if self.recorder is not None:
            yield from _log_metrics(self.recorder)
        if self.shadow_version is not None:
            yield from self._shadow_metrics(str(self.shadow_version))

    def _shadow_metrics(self, version: str) -> Iterator[Metric]:
        predictions = CounterMetricFamily(
            f"{_PREFIX}_shadow_predictions",
            "Requests the shadow candidate predicted a copy of, by outcome.",
            labels=["version", "outcome"],
        )
        for outcome, count in self.shadow_outcomes.items():
            predictions.add_metric([version, outcome], count)
        ready = GaugeMetricFamily(
            f"{_PREFIX}_shadow_ready",
            "1 once the shadow candidate is loaded; 0 when it could not be.",
            labels=["version"],
        )
        ready.add_metric([version], 1 if self.shadow_ready else 0)
        yield from (predictions, ready)


def _log_metrics(recorder: Recorder) -> Iterator[Metric]:
    stats = recorder.writer.stats
    written = CounterMetricFamily(
        f"{_PREFIX}_log_records_written",
        "Prediction and feedback log records written to object storage.",
        value=stats.records_written,
    )
    dropped = CounterMetricFamily(
        f"{_PREFIX}_log_records_dropped",
        "Log records dropped, by reason: buffer_full (storage slow or down), shutdown.",
        labels=["reason"],
    )
    for reason in sorted({"buffer_full", "shutdown", *stats.dropped}):
        dropped.add_metric([reason], stats.dropped.get(reason, 0))
    failures = CounterMetricFamily(
        f"{_PREFIX}_log_write_failures",
        "Log object writes that failed (each is retried with back-off).",
        value=stats.failed_writes,
    )
    buffered = GaugeMetricFamily(
        f"{_PREFIX}_log_buffered_records",
        "Log records waiting to be written.",
        value=recorder.writer.buffered,
    )
    feedback = CounterMetricFamily(
        f"{_PREFIX}_feedback",
        "Feedback records taken, by whether this pod answered their request id recently.",
        labels=["match"],
    )
    feedback.add_metric(["known"], recorder.feedback_known)
    feedback.add_metric(["unknown"], recorder.feedback_unknown)
    yield from (written, dropped, failures, buffered, feedback)
