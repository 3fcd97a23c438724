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
    "LIVE_PATH",
    "METRICS_PATH",
    "READY_PATH",
    "REQUEST_ID_HEADER",
    "SERVE_PORT",
    "SERVE_PORT_NAME",
]

SERVE_PORT = 8080
SERVE_PORT_NAME = "http"
LIVE_PATH = "/v2/health/live"
READY_PATH = "/v2/health/ready"
METRICS_PATH = "/metrics"
CACHE_DIR = "/var/cache/conveyor"
"""The writable emptyDir the server downloads its artifacts to (the root filesystem is
read-only)."""
REQUEST_ID_HEADER = "X-Request-Id"
"""Taken from a request when the caller sends one, generated otherwise; echoed in the answer."""
