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
- `conveyor_serving_ready`: 1 while the server reports ready.

Label children are cached: a request costs two dictionary lookups and five updates.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)

__all__ = ["CONTENT_TYPE", "ServingMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
_PREFIX = "conveyor_serving"
# From a cached single-row answer (~0.1 ms) to a slow forest on a large batch.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            f"{_PREFIX}_requests",
            "Requests answered, by endpoint and HTTP status code.",
            ["endpoint", "code"],
            registry=self.registry,
        )
        self._latency = Histogram(
            f"{_PREFIX}_request_duration_seconds",
            "Time from a request's arrival to its answer, by endpoint.",
            ["endpoint"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self._predictions = Counter(
            f"{_PREFIX}_predictions",
            "Rows predicted, by predicted class (empty for regressors).",
            ["class"],
            registry=self.registry,
        )
        self._info = Info(f"{_PREFIX}_model", "The served model version.", registry=self.registry)
        self.in_flight = 0
        """Requests being answered: the app counts them, the gauge reads the count at a scrape
        (a plain int on the event loop costs a tenth of a Gauge's locked updates)."""
        Gauge(
            f"{_PREFIX}_requests_in_flight",
            "Requests being answered (a scrape counts itself).",
            registry=self.registry,
        ).set_function(lambda: self.in_flight)
        self._ready = Gauge(
            f"{_PREFIX}_ready", "1 while the server reports ready.", registry=self.registry
        )
        self._request_children: dict[tuple[str, int], Any] = {}
        self._latency_children: dict[str, Any] = {}
        self._class_children: dict[str, Any] = {}

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        child = self._request_children.get((endpoint, status))
        if child is None:
            child = self._requests.labels(endpoint, str(status))
            self._request_children[(endpoint, status)] = child
        child.inc()
        latency = self._latency_children.get(endpoint)
        if latency is None:
            latency = self._latency_children[endpoint] = self._latency.labels(endpoint)
        latency.observe(seconds)

    def predictions(self, labels: np.ndarray, classified: bool) -> None:
        """Count one prediction per label (classifiers by class; a regressor's under "")."""
        if not classified:
            self._class_child("").inc(len(labels))
        elif len(labels) == 1:
            self._class_child(str(labels[0])).inc()
        else:  # np.unique: a tenth of a Counter's time over a thousand numpy labels
            classes, counts = np.unique(labels, return_counts=True)
            for label, count in zip(classes.tolist(), counts.tolist(), strict=True):
                self._class_child(str(label)).inc(count)

    def _class_child(self, label: str) -> Any:
        child = self._class_children.get(label)
        if child is None:
            child = self._class_children[label] = self._predictions.labels(label)
        return child

    def model(self, *, model: str, version: str, runtime: str, digest: str) -> None:
        self._info.info({"model": model, "version": version, "runtime": runtime, "digest": digest})

    def ready(self, ready: bool) -> None:
        self._ready.set(1 if ready else 0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
