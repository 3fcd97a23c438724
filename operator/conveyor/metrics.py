"""The operator's own Prometheus metrics (the serving metrics live with the server)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Histogram

__all__ = ["RECONCILES", "RECONCILE_DURATION", "RECONCILE_ERRORS", "reconcile_timer"]

RECONCILES = Counter("conveyor_reconciles_total", "Reconciles run, by kind.", ["kind"])
RECONCILE_ERRORS = Counter(
    "conveyor_reconcile_errors_total", "Reconciles that raised an error, by kind.", ["kind"]
)
RECONCILE_DURATION = Histogram(
    "conveyor_reconcile_duration_seconds",
    "Time spent in one reconcile, by kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


@contextmanager
def reconcile_timer(kind: str) -> Iterator[None]:
    """Count and time one reconcile; an exception counts as an error and propagates."""
    started = time.perf_counter()
    RECONCILES.labels(kind).inc()
    try:
        yield
    except Exception:
        RECONCILE_ERRORS.labels(kind).inc()
        raise
    finally:
        RECONCILE_DURATION.labels(kind).observe(time.perf_counter() - started)
