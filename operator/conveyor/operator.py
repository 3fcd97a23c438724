"""`conveyor operator`: kopf with Conveyor's handlers, plus the HTTP endpoint beside it.

The endpoint serves `/healthz` (the process and its event loop answer), `/readyz` (kopf has
started watching, or this replica stands by for the Lease), `/metrics` (Prometheus text
format) and, with a context, Alertmanager's notifications on `/webhooks/alertmanager`
(handlers/webhook.py) — on every replica: the webhook only annotates RetrainPolicies, so any
replica may take a notification while one leads (clients/leaderelection.py).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import kopf
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .clients.kube import Kube
from .clients.leaderelection import (
    ElectionTimings,
    LeaderElector,
    LeadershipLost,
    default_identity,
)
from .handlers import Context, register
from .handlers.webhook import WEBHOOK_PATH, add_webhook_routes
from .metrics import OPERATOR_LEADING
from .settings import Settings

__all__ = ["build_http_app", "run_operator", "serve_operator"]

logger = logging.getLogger(__name__)


def build_http_app(ready: threading.Event, context: Context | None = None) -> web.Application:
    """The operator's health, metrics and (with `context`) webhook endpoint."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        if ready.is_set():
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "starting"}, status=503)

    async def metrics(_: web.Request) -> web.Response:
        response = web.Response(body=generate_latest())
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        response.charset = "utf-8"
        return response

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    if context is not None:
        add_webhook_routes(app, context)
    return app


async def serve_operator(
    settings: Settings,
    *,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready: threading.Event | None = None,
) -> None:
    """Run the operator until stopped (a signal, or `stop_flag`)."""
    ready = ready or threading.Event()
    context = Context(settings=settings, kube=Kube.from_kubeconfig(settings.kubeconfig))
    runner = web.AppRunner(build_http_app(ready, context), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.http_host, settings.port_http)
    await site.start()
    logger.info(
        "Serving /healthz, /readyz, /metrics and %s on %s:%s",
        WEBHOOK_PATH,
        settings.http_host,
        settings.port_http,
    )
    registry = kopf.OperatorRegistry()
    register(registry, context)

    async def reconcile() -> None:
        await kopf.operator(
            registry=registry,
            standalone=True,
            clusterwide=settings.clusterwide,
            namespaces=list(settings.namespaces),
            ready_flag=ready,
            stop_flag=stop_flag,
        )

    try:
        if settings.leader_election:
            await _lead_when_elected(settings, context.kube, reconcile, ready)
        else:
            await reconcile()
    finally:
        await runner.cleanup()


async def _lead_when_elected(
    settings: Settings,
    kube: Kube,
    reconcile: Callable[[], Coroutine[Any, Any, None]],
    ready: threading.Event,
) -> None:
    """Reconcile only while this replica holds the Lease; stand by (ready) meanwhile."""
    elector = LeaderElector(
        kube,
        settings.operator_namespace,
        settings.lease_name,
        default_identity(settings.pod_name),
        ElectionTimings(
            duration=settings.lease_duration_seconds,
            renew_deadline=settings.lease_renew_deadline_seconds,
            retry=settings.lease_retry_seconds,
        ),
    )

    async def lead() -> None:
        OPERATOR_LEADING.set(1)
        try:
            await reconcile()
        finally:
            OPERATOR_LEADING.set(0)

    await elector.run(lead, standing_by=ready.set)


def run_operator(settings: Settings, **kwargs: Any) -> None:
    """Blocking entry point of `conveyor operator`."""
    # kopf installs the one log handler; the level comes from the settings.
    kopf.configure(debug=settings.log_level.upper() == "DEBUG")
    logging.getLogger().setLevel(settings.log_level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        asyncio.run(serve_operator(settings, **kwargs))
    except LeadershipLost as lost:
        # As controller-runtime does: exit, and come back (restarted) as a standby replica;
        # nothing of this term may reconcile after another replica started to.
        logger.error("Leadership lost: %s; exiting so that one replica reconciles", lost)
        sys.exit(1)
