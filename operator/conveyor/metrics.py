"""The operator's own Prometheus metrics (the serving metrics live with the server)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "FEATURE_DRIFT",
    "LABELLED_SAMPLES",
    "LIVE_SCORE",
    "MONITOR_LOG_OBJECTS",
    "MONITOR_UNREADABLE_OBJECTS",
    "OPERATOR_LEADING",
    "RECONCILES",
    "RECONCILE_DURATION",
    "RECONCILE_ERRORS",
    "RETRAIN_TRIGGERS",
    "WEBHOOK_ALERTS",
    "reconcile_timer",
]

OPERATOR_LEADING = Gauge(
    "conveyor_operator_leader",
    "1 on the replica that holds the leader-election Lease and reconciles, 0 on standbys.",
)
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


# The live-quality monitor: the figures of ModelVersion.status.liveMetrics, per served version.
# `namespace` is the model's (scrape the operator with honor_labels so it wins).
LIVE_SCORE = Gauge(
    "conveyor_model_live_score",
    "Live metric of a served version over the monitor's window: predictions joined with "
    "feedback labels (accuracy, f1, log_loss; rmse, mae).",
    ["namespace", "model", "version", "metric"],
)
LABELLED_SAMPLES = Gauge(
    "conveyor_model_labelled_samples",
    "Predictions in the monitor's window that have a feedback label.",
    ["namespace", "model", "version"],
)
FEATURE_DRIFT = Gauge(
    "conveyor_model_feature_drift",
    "Drift of a raw input column over the monitor's window against the model card's "
    "reference (psi, ks; psi, chi2, cramers_v).",
    ["namespace", "model", "version", "feature", "method"],
)
RETRAIN_TRIGGERS = Counter(
    "conveyor_retrain_triggers_total",
    "RetrainPolicy decisions: a trigger that fired (a run was requested) or was suppressed "
    "(cooldown, run active, too few new rows, ...; the reason is in the policy's status).",
    ["policy", "trigger", "result"],
)
WEBHOOK_ALERTS = Counter(
    "conveyor_webhook_alerts_total",
    "Alerts received on /webhooks/alertmanager: matched to a policy, unmatched, resolved "
    "(ignored), or refused (a bad token or body).",
    ["result"],
)
MONITOR_LOG_OBJECTS = Counter(
    "conveyor_monitor_log_objects_read_total",
    "Prediction and feedback log objects the monitor read.",
    ["namespace", "model", "kind"],
)
MONITOR_UNREADABLE_OBJECTS = Counter(
    "conveyor_monitor_log_objects_unreadable_total",
    "Log objects the monitor skipped because they could not be decoded.",
    ["namespace", "model", "kind"],
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
