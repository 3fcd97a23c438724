"""POST /webhooks/alertmanager: Alertmanager's notifications, handed to RetrainPolicies.

The bearer token must equal the key `token` of the Secret `settings.webhook_token_secret` in
the operator's namespace (read through the API, kept a minute, read again on a mismatch so a
rotated token works at once). Each firing alert is matched to policies (`reconcile.alerts`) and
written on each as an annotation; the policy's reconcile, started by that change, decides. The
endpoint so answers in the time of a list and a patch, never waiting for a run.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from ..api.v1alpha1 import RetrainPolicy
from ..metrics import WEBHOOK_ALERTS
from ..reconcile.alerts import (
    PayloadError,
    alert_annotation,
    parse_notification,
    policies_for,
)
from ..resources.kinds import RETRAIN_POLICIES, SECRETS
from .context import Context

__all__ = ["MAX_BODY_BYTES", "WEBHOOK_PATH", "add_webhook_routes"]

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/alertmanager"
MAX_BODY_BYTES = 1 << 20
"""Alertmanager's notifications are kilobytes; a megabyte holds a thousand alerts."""
TOKEN_TTL_SECONDS = 60.0
TOKEN_REREAD_SECONDS = 5.0


class TokenSource:
    """The webhook token from its Secret, read again after a minute or on a mismatch (at
    most every few seconds, so a flood of wrong tokens does not flood the API)."""

    def __init__(self, context: Context, clock: Callable[[], float] = time.monotonic) -> None:
        self._context, self._clock = context, clock
        self._token: str | None = None
        self._read_at = -1e9
        self._lock = threading.Lock()

    def accepts(self, offered: str) -> bool:
        # aiohttp keeps a header's non-UTF-8 bytes as surrogates: give them back as bytes.
        raw = offered.encode(errors="surrogateescape")
        token = self._current(force=False)
        if token is not None and hmac.compare_digest(raw, token.encode()):
            return True
        token = self._current(force=True)
        return token is not None and hmac.compare_digest(raw, token.encode())

    def _current(self, *, force: bool) -> str | None:
        with self._lock:
            age = self._clock() - self._read_at
            if age > TOKEN_TTL_SECONDS or (force and age > TOKEN_REREAD_SECONDS):
                self._token, self._read_at = self._read(), self._clock()
            return self._token

    def _read(self) -> str | None:
        settings = self._context.settings
        secret = self._context.kube.get(
            SECRETS, settings.operator_namespace, settings.webhook_token_secret
        )
        encoded = ((secret or {}).get("data") or {}).get("token")
        if not encoded:
            logger.warning(
                "The webhook token Secret %s/%s (key token) is missing: every alert is refused",
                settings.operator_namespace,
                settings.webhook_token_secret,
            )
            return None
        return base64.b64decode(encoded).decode().strip()


def add_webhook_routes(app: web.Application, context: Context) -> None:
    tokens = TokenSource(context)

    async def alertmanager(request: web.Request) -> web.Response:
        scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not offered:
            WEBHOOK_ALERTS.labels("unauthorized").inc()
            return _error(401, "a bearer token is required (Authorization: Bearer <token>)")
        if not await asyncio.to_thread(tokens.accepts, offered.strip()):
            WEBHOOK_ALERTS.labels("unauthorized").inc()
            return _error(401, "the bearer token is wrong")
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return _too_large()
        try:
            raw = await _read_body(request)
        except ValueError:
            return _too_large()
        if raw is None:
            return _too_large()
        try:
            alerts = parse_notification(raw)
        except PayloadError as error:
            WEBHOOK_ALERTS.labels("refused").inc()
            return _error(400, f"not an Alertmanager webhook notification: {error}")
        answer = await asyncio.to_thread(deliver, context, alerts)
        return web.json_response(answer)

    app.router.add_post(WEBHOOK_PATH, alertmanager)


async def _read_body(request: web.Request) -> bytes | None:
    """The whole body, or None past MAX_BODY_BYTES. One read returns what has arrived so far
    (a 200 kB notification came in cut at 128 kB, and was refused as not JSON)."""
    body = bytearray()
    while len(body) <= MAX_BODY_BYTES:
        chunk = await request.content.read(MAX_BODY_BYTES + 1 - len(body))
        if not chunk:
            return bytes(body)
        body += chunk
    return None


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _too_large() -> web.Response:
    WEBHOOK_ALERTS.labels("refused").inc()
    return _error(400, f"the body is over {MAX_BODY_BYTES} bytes")


def deliver(context: Context, alerts: list[Any]) -> dict[str, Any]:
    """Annotate each policy a firing alert matches; what was done, for the answer and logs."""
    policies = _policies(context)
    now: datetime = context.clock()
    delivered: list[dict[str, str]] = []
    for alert in alerts:
        if alert.status != "firing":
            WEBHOOK_ALERTS.labels("resolved").inc()
            continue
        targets = policies_for(alert, policies)
        WEBHOOK_ALERTS.labels("matched" if targets else "unmatched").inc()
        if not targets:
            logger.info("Alert %s (%s) matches no RetrainPolicy", alert.name, alert.fingerprint)
        for policy in targets:
            patch = {"metadata": {"annotations": alert_annotation(alert, now)}}
            context.kube.patch(RETRAIN_POLICIES, policy.namespace, policy.name, patch)
            delivered.append(
                {
                    "alert": alert.name,
                    "fingerprint": alert.fingerprint,
                    "policy": f"{policy.namespace}/{policy.name}",
                }
            )
            logger.info(
                "Alert %s (%s) → RetrainPolicy %s/%s",
                alert.name,
                alert.fingerprint,
                policy.namespace,
                policy.name,
            )
    return {"alerts": len(alerts), "delivered": delivered}


def _policies(context: Context) -> list[RetrainPolicy]:
    namespaces = context.settings.namespaces or (None,)
    bodies = [
        body for namespace in namespaces for body in context.kube.list(RETRAIN_POLICIES, namespace)
    ]
    policies = []
    for body in bodies:
        try:
            policies.append(RetrainPolicy.from_body(body))
        except ValueError:  # an invalid policy: its own status says why
            continue
    return policies
