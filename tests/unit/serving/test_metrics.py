"""The server's metrics as Prometheus reads them: counts kept on the request path, families
built at a scrape."""

from __future__ import annotations

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from conveyor.serving.metrics import ServingMetrics


def _samples(metrics: ServingMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_latency_buckets_are_cumulative_and_a_bound_counts_in_its_own_bucket() -> None:
    metrics = ServingMetrics()
    for seconds in (0.0002, 0.0005, 0.0007, 0.001, 0.3, 9.0):
        metrics.request("infer", 200, seconds)
    samples = _samples(metrics)

    def bucket(le: str) -> float:
        name = "conveyor_serving_request_duration_seconds_bucket"
        return samples[(name, (("endpoint", "infer"), ("le", le)))]

    assert [bucket(le) for le in ("0.0005", "0.001", "0.25", "0.5", "5.0", "+Inf")] == [
        2,
        4,
        4,
        5,
        5,
        6,
    ]
    assert (
        samples[("conveyor_serving_request_duration_seconds_count", (("endpoint", "infer"),))] == 6
    )
    total = samples[("conveyor_serving_request_duration_seconds_sum", (("endpoint", "infer"),))]
    assert abs(total - 9.3024) < 1e-9


def test_requests_predictions_and_in_flight_are_counted() -> None:
    metrics = ServingMetrics()
    metrics.request("infer", 200, 0.001)
    metrics.request("infer", 200, 0.001)
    metrics.request("predict", 422, 0.001)
    metrics.predictions(np.array(["red", "blue", "red"], dtype=object), classified=True)
    metrics.predictions(np.array(["red"], dtype=object), classified=True)
    metrics.predictions(np.array([0.5, 1.5]), classified=False)
    metrics.in_flight = 2
    samples = _samples(metrics)
    requests = "conveyor_serving_requests_total"
    assert samples[(requests, (("code", "200"), ("endpoint", "infer")))] == 2
    assert samples[(requests, (("code", "422"), ("endpoint", "predict")))] == 1
    predictions = "conveyor_serving_predictions_total"
    assert samples[(predictions, (("class", "red"),))] == 3
    assert samples[(predictions, (("class", "blue"),))] == 1
    assert samples[(predictions, (("class", ""),))] == 2
    assert samples[("conveyor_serving_requests_in_flight", ())] == 2
