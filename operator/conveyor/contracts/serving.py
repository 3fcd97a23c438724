"""The serving contract: where `conveyor serve` listens and what the operator's Deployment
probes, so the builder (resources/) and the server (serving/) cannot disagree.

The server listens on CONVEYOR_PORT_HTTP (the container port named `http`, SERVE_PORT unless
the runtime says otherwise), answers `LIVE_PATH` as soon as it listens, and `READY_PATH` only
once the model is downloaded, verified, loaded and has answered its warm-up row: the startup and
liveness probes use the first (a slow download is no liveness failure), readiness the second.
"""

from __future__ import annotations

__all__ = [
    "CACHE_DIR",
    "DRAIN_SECONDS",
    "ENV_DRAIN_SECONDS",
    "ENV_GRACE_SECONDS",
    "ENV_LOG_BATCH_RECORDS",
    "ENV_LOG_BUFFER_RECORDS",
    "ENV_LOG_FLUSH_SECONDS",
    "ENV_LOG_PREDICTIONS",
    "ENV_LOG_SAMPLE_RATIO",
    "ENV_MAX_BODY_BYTES",
    "ENV_POD_NAME",
    "ENV_POD_NAMESPACE",
    "ENV_PORT",
    "GRACE_SECONDS",
    "LIVE_PATH",
    "MAX_BODY_BYTES",
    "METRICS_PATH",
    "READY_PATH",
    "REQUEST_ID_HEADER",
    "SERVE_PORT",
    "SERVE_PORT_NAME",
]

SERVE_PORT = 8080
ENV_PORT = "CONVEYOR_PORT_HTTP"
"""Where the port comes from (the sandbox remaps container ports through it)."""
SERVE_PORT_NAME = "http"
LIVE_PATH = "/v2/health/live"
READY_PATH = "/v2/health/ready"
METRICS_PATH = "/metrics"
CACHE_DIR = "/var/cache/conveyor"
"""The writable emptyDir the server downloads its artifacts to (the root filesystem is
read-only)."""
REQUEST_ID_HEADER = "X-Request-Id"
"""Taken from a request when the caller sends one, generated otherwise; echoed in the answer."""

ENV_MAX_BODY_BYTES = "CONVEYOR_SERVE_MAX_BODY_BYTES"
MAX_BODY_BYTES = 8 << 20
"""A request body larger than this is refused with 413."""
ENV_DRAIN_SECONDS = "CONVEYOR_SERVE_DRAIN_SECONDS"
DRAIN_SECONDS = 5.0
"""After SIGTERM the server answers not-ready, yet keeps serving, for this long: time for the
Service's endpoints to drop the pod before it stops accepting connections."""
ENV_GRACE_SECONDS = "CONVEYOR_SERVE_GRACE_SECONDS"
GRACE_SECONDS = 20.0
"""Then the requests in flight have this long to finish. A pod's terminationGracePeriodSeconds
should exceed DRAIN_SECONDS + GRACE_SECONDS."""

# The prediction and feedback logs (TrainingPipeline spec.serving: logPredictions,
# logSampleRatio, logFlushSeconds, logBatchRecords, logBufferRecords).
ENV_LOG_PREDICTIONS = "CONVEYOR_SERVE_LOG_PREDICTIONS"
"""true or false: log predictions (feedback and refused requests are logged either way)."""
ENV_LOG_SAMPLE_RATIO = "CONVEYOR_SERVE_LOG_SAMPLE_RATIO"
ENV_LOG_FLUSH_SECONDS = "CONVEYOR_SERVE_LOG_FLUSH_SECONDS"
"""A log object is written when its oldest record is this old..."""
ENV_LOG_BATCH_RECORDS = "CONVEYOR_SERVE_LOG_BATCH_RECORDS"
"""...or when this many records are buffered."""
ENV_LOG_BUFFER_RECORDS = "CONVEYOR_SERVE_LOG_BUFFER_RECORDS"
"""At most this many records wait in memory (while storage is slow or down); more are dropped
and counted."""
ENV_POD_NAME = "CONVEYOR_POD_NAME"
"""The pod's name (downward API): each pod writes log objects under its own name."""
ENV_POD_NAMESPACE = "CONVEYOR_POD_NAMESPACE"
"""The pod's namespace (downward API): its logs go under the namespace's prefix."""
